//! What the tests that keep `--help` and the docs complete share: the environment variables a
//! crate's sources read, and the blocks of the docs generated from the binaries' tables.

use std::path::Path;

/// The lines between `<!-- begin: {marker} -->` and `<!-- end: {marker} -->` of a document,
/// for tests that check a generated table in the docs.
pub fn generated_block<'a>(document: &'a str, marker: &str) -> Option<&'a str> {
    let begin = format!("<!-- begin: {marker} -->\n");
    let end = format!("<!-- end: {marker} -->");
    let start = document.find(&begin)? + begin.len();
    let length = document[start..].find(&end)?;
    Some(&document[start..start + length])
}

/// Names of the environment variables a binary's sources read: the upper-case string literals
/// on lines that read the environment (`env.text("NAME")`, `std::env::var("NAME")`, ...), in
/// the code above each file's `#[cfg(test)]`. For the tests that keep the tables complete.
pub fn variables_read_by(sources: &[(String, String)]) -> Vec<String> {
    let mut names = Vec::new();
    for (_, text) in sources {
        let code = text.split("\n#[cfg(test)]").next().unwrap_or_default();
        for line in code
            .lines()
            .filter(|l| l.contains("env") || l.contains("var("))
        {
            let pieces: Vec<&str> = line.split('"').collect();
            for (index, literal) in pieces.iter().enumerate().skip(1).step_by(2) {
                // `env!("CARGO_PKG_VERSION")` is read when the binary is built, not run.
                let compile_time = pieces[index - 1].ends_with("env!(");
                let is_name = !compile_time
                    && literal.len() > 2
                    && literal.starts_with(|c: char| c.is_ascii_uppercase())
                    && literal
                        .chars()
                        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
                if is_name && !names.iter().any(|n| n == literal) {
                    names.push((*literal).to_string());
                }
            }
        }
    }
    names
}

/// Every `.rs` file under `dir`, with its text, for `variables_read_by`.
pub fn rust_sources(dir: &Path) -> std::io::Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push((path.display().to_string(), std::fs::read_to_string(&path)?));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_are_found_where_the_environment_is_read_and_not_in_tests() {
        let source = "let a = env.text(\"ALPHA_ONE\");\nlet b = std::env::var(\"BETA\").ok();\n\
                      let c = var(\"GAMMA_2\");\nlet msg = \"NOT_AN_ENV_READ\";\n\
                      let v = env!(\"CARGO_PKG_VERSION\");\n\
                      #[cfg(test)]\nmod tests { fn t() { env.text(\"ONLY_IN_TESTS\"); } }\n";
        let found = variables_read_by(&[("x.rs".into(), source.into())]);
        assert_eq!(found, vec!["ALPHA_ONE", "BETA", "GAMMA_2"]);
    }

    #[test]
    fn the_generated_block_is_found_between_its_markers() {
        let doc = "intro\n<!-- begin: demo -->\n| a |\n<!-- end: demo -->\nafter";
        assert_eq!(generated_block(doc, "demo"), Some("| a |\n"));
        assert_eq!(generated_block(doc, "other"), None);
    }
}
