//! The command line of the binaries: `--help` prints what the binary does and every environment
//! variable it reads, with its default, from the binary's one table of them (the table the
//! docs are checked against); `--version` prints the version; any other argument is refused.
//! Neither starts the binary's work nor reads its config.

use std::process::ExitCode;

/// One environment variable a binary reads. `default` and `meaning` are written as in the docs
/// (Markdown, `code` in backticks); `--help` prints them without the backticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnvVar {
    pub name: &'static str,
    pub default: &'static str,
    pub meaning: &'static str,
}

/// What `--help` and `--version` say about a binary.
pub struct About {
    pub name: &'static str,
    pub version: &'static str,
    /// One or two sentences on what the binary does.
    pub summary: &'static str,
    pub environment: Vec<EnvVar>,
}

/// What to do after the command line was read.
#[derive(Debug, PartialEq)]
pub enum Action {
    Run,
    /// `--help`, `--version` or a refused argument, already answered.
    Exit(ExitCode),
}

/// Answers `--help`/`-h` and `--version`/`-V` on stdout and refuses anything else on stderr;
/// without arguments the binary runs.
pub fn handle(about: &About, args: impl IntoIterator<Item = String>) -> Action {
    let args: Vec<String> = args.into_iter().collect();
    match args.first().map(String::as_str) {
        None => Action::Run,
        Some("--help" | "-h") => {
            print!("{}", help(about));
            Action::Exit(ExitCode::SUCCESS)
        }
        Some("--version" | "-V") => {
            println!("{} {}", about.name, about.version);
            Action::Exit(ExitCode::SUCCESS)
        }
        Some(other) => {
            eprintln!(
                "{}: unknown argument {:?}; it takes none: settings come from environment variables and config.json (see {} --help)",
                about.name,
                bounded(other),
                about.name
            );
            Action::Exit(ExitCode::from(2))
        }
    }
}

/// The `--help` text.
pub fn help(about: &About) -> String {
    let mut out = format!(
        "{} {}\n{}\n\nUsage: {} [--help | --version]\n\nEnvironment (a blank value counts as unset):\n",
        about.name, about.version, about.summary, about.name
    );
    for var in &about.environment {
        out.push_str(&format!(
            "  {}\n      default: {}\n      {}\n",
            var.name,
            plain(var.default),
            plain(var.meaning)
        ));
    }
    out
}

/// The environment as a Markdown table, as the docs show it.
pub fn markdown(environment: &[EnvVar]) -> String {
    let mut out = String::from("| variable | default | meaning |\n| --- | --- | --- |\n");
    for var in environment {
        out.push_str(&format!(
            "| `{}` | {} | {} |\n",
            var.name, var.default, var.meaning
        ));
    }
    out
}

fn plain(text: &str) -> String {
    text.replace('`', "")
}

/// An argument as echoed back: at most 64 characters.
fn bounded(arg: &str) -> String {
    match arg.char_indices().nth(64) {
        Some((cut, _)) => format!("{}…", &arg[..cut]),
        None => arg.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn about() -> About {
        About {
            name: "demo",
            version: "1.2.3",
            summary: "Does one thing.",
            environment: vec![EnvVar {
                name: "DEMO_PORT",
                default: "`8080`",
                meaning: "where `demo` listens",
            }],
        }
    }

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|a| a.to_string()).collect()
    }

    #[test]
    fn help_and_version_answer_and_anything_else_is_refused() {
        assert_eq!(handle(&about(), args(&[])), Action::Run);
        assert_eq!(
            handle(&about(), args(&["--version"])),
            Action::Exit(ExitCode::SUCCESS)
        );
        assert_eq!(
            handle(&about(), args(&["-h"])),
            Action::Exit(ExitCode::SUCCESS)
        );
        assert_eq!(
            handle(&about(), args(&["--port", "1"])),
            Action::Exit(ExitCode::from(2))
        );
    }

    #[test]
    fn help_lists_each_variable_with_its_default_in_plain_text() {
        let text = help(&about());
        assert!(text.starts_with("demo 1.2.3\nDoes one thing.\n"), "{text}");
        assert!(
            text.contains("  DEMO_PORT\n      default: 8080\n      where demo listens\n"),
            "{text}"
        );
    }

    #[test]
    fn the_markdown_table_keeps_the_markup() {
        assert_eq!(
            markdown(&about().environment),
            "| variable | default | meaning |\n| --- | --- | --- |\n| `DEMO_PORT` | `8080` | where `demo` listens |\n"
        );
    }
}
