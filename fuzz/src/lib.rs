//! What the fuzz targets share: an allocator that counts (and can cap) the heap, the settings
//! the Caddyfile is rendered with, and a reading of a Caddyfile into its lines of tokens.

use std::alloc::System;
use std::path::Path;

use cap::Cap;

/// Every Rust allocation of a target goes through this; `limited` caps it for a while.
#[global_allocator]
pub static HEAP: Cap<System> = Cap::new(System, usize::MAX);

/// Runs `work` with the heap allowed to grow by at most `budget` bytes over what it holds now:
/// an allocation past that fails, and the process aborts with "memory allocation ... failed",
/// which libFuzzer reports as a crash.
pub fn limited<T>(budget: usize, work: impl FnOnce() -> T) -> T {
    let _ = HEAP.set_limit(HEAP.allocated().saturating_add(budget));
    let out = work();
    let _ = HEAP.set_limit(usize::MAX);
    out
}

/// The settings every Caddyfile target and test renders with (the container's).
pub fn render_settings(tls_internal: bool) -> control::caddy::caddyfile::RenderSettings<'static> {
    control::caddy::caddyfile::RenderSettings {
        config_path: Path::new("/app/data/config.json"),
        admin_listen: "localhost:2019".into(),
        http_port: 3000,
        control_upstream: "127.0.0.1:3001".into(),
        proxy_upstream: None,
        storage_dir: Path::new("/app/data/caddy"),
        tls_log: Path::new("/app/data/caddy-tls.log"),
        tls_internal,
    }
}

/// One token of a Caddyfile: its text as Caddy reads it (quotes removed) and its line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub text: String,
    pub line: usize,
    /// Written in quotes or backticks (then `{` and `}` are no braces).
    pub quoted: bool,
}

/// The Caddyfile lexer's rules: tokens split at whitespace; `"..."` (with `\"`) and `` `...` ``
/// quote; a token starting with `#` begins a comment to the end of the line; `\` before a
/// newline continues the line. Heredocs (`<<`) are refused: the renderer never writes one.
pub fn tokens(text: &str) -> Result<Vec<Token>, String> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    let mut line = 1;
    while let Some(&c) = chars.peek() {
        match c {
            '\n' => {
                line += 1;
                chars.next();
            }
            c if c.is_whitespace() => {
                chars.next();
            }
            '#' => while chars.next_if(|&c| c != '\n').is_some() {},
            '"' | '`' => {
                chars.next();
                let start_line = line;
                let mut token = String::new();
                loop {
                    match chars.next() {
                        None => return Err(format!("unterminated quote on line {start_line}")),
                        Some(q) if q == c => break,
                        Some('\\') if c == '"' && chars.peek() == Some(&'"') => {
                            chars.next();
                            token.push('"');
                        }
                        Some(other) => {
                            if other == '\n' {
                                line += 1;
                            }
                            token.push(other);
                        }
                    }
                }
                out.push(Token {
                    text: token,
                    line: start_line,
                    quoted: true,
                });
            }
            _ => {
                let mut token = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_whitespace() {
                        break;
                    }
                    chars.next();
                    if c == '\\' && chars.peek() == Some(&'\n') {
                        return Err(format!("line continuation on line {line}"));
                    }
                    token.push(c);
                }
                if token.starts_with("<<") {
                    return Err(format!("heredoc on line {line}"));
                }
                out.push(Token {
                    text: token,
                    line,
                    quoted: false,
                });
            }
        }
    }
    Ok(out)
}

/// One line of directives: its nesting depth (blocks opened before it), the words of its
/// first token (a site address at depth 0 is read as `<address>`: its text is a value) and
/// how many tokens it has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directive {
    pub depth: usize,
    pub name: String,
    pub tokens: usize,
}

/// The Caddyfile's directive skeleton, line by line. A value that added a directive, a
/// block, a comment or a line would change it.
pub fn skeleton(text: &str) -> Result<Vec<Directive>, String> {
    let tokens = tokens(text)?;
    let mut lines: Vec<Vec<Token>> = Vec::new();
    for token in tokens {
        match lines.last_mut() {
            Some(last) if last[0].line == token.line => last.push(token),
            _ => lines.push(vec![token]),
        }
    }
    let mut depth: usize = 0;
    let mut out = Vec::new();
    for line in lines {
        let is_brace = |t: &Token, b: &str| !t.quoted && t.text == b;
        if is_brace(&line[0], "}") {
            depth = depth
                .checked_sub(1)
                .ok_or_else(|| format!("unbalanced '}}' on line {}", line[0].line))?;
            if line.len() > 1 {
                return Err(format!("tokens after '}}' on line {}", line[0].line));
            }
            out.push(Directive {
                depth,
                name: "}".into(),
                tokens: 1,
            });
            continue;
        }
        let name = if depth == 0 && !is_brace(&line[0], "{") && !line[0].text.starts_with('(') {
            "<address>".to_string()
        } else {
            line[0].text.clone()
        };
        out.push(Directive {
            depth,
            name,
            tokens: line.len(),
        });
        for (i, token) in line.iter().enumerate() {
            if is_brace(token, "{") {
                if i + 1 != line.len() {
                    return Err(format!("tokens after '{{' on line {}", token.line));
                }
                depth += 1;
            } else if is_brace(token, "}") {
                return Err(format!("'}}' inside line {}", token.line));
            }
        }
    }
    if depth != 0 {
        return Err(format!("{depth} block(s) left open"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skeleton_reads_blocks_and_values() {
        let text = "{\n\tadmin localhost:2019\n}\n# note\nexample.com:443 {\n\ttls {\n\t\temail \"a b\"\n\t}\n}\n";
        let s = skeleton(text).expect("skeleton");
        let names: Vec<&str> = s.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(
            names,
            ["{", "admin", "}", "<address>", "tls", "email", "}", "}"]
        );
        assert_eq!(s[5].depth, 2);
        assert_eq!(s[5].tokens, 2);
    }

    #[test]
    fn injected_lines_change_the_skeleton() {
        let good = skeleton("a.com {\n\ttls {\n\t\temail x@a.com\n\t}\n}\n").expect("good");
        let bad =
            skeleton("a.com {\n\ttls {\n\t\temail x@a.com\n\t\tca evil\n\t}\n}\n").expect("bad");
        assert_ne!(good, bad);
        assert!(skeleton("a.com {\n\temail x@a.com }\n}\n").is_err());
    }
}
