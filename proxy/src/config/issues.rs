//! What validation reports: `ConfigIssue` (one problem at a field path) and `ConfigError`, and
//! the `Checker` the section parsers share to record every problem of a file in one pass.

use std::fmt;
use std::time::Duration;

use super::host_port::Host;

/// One problem in a config, located by its field path (`models[1].upstream`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ConfigIssue {
    pub path: String,
    pub message: String,
}

impl fmt::Display for ConfigIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum ConfigError {
    /// Not JSON, or a value of the wrong type.
    #[error("{}", .0)]
    Syntax(ConfigIssue),
    /// Well-formed, but breaks one or more rules.
    #[error("{}", join_issues(.0))]
    Invalid(Vec<ConfigIssue>),
}

impl ConfigError {
    pub fn issues(&self) -> Vec<ConfigIssue> {
        match self {
            ConfigError::Syntax(issue) => vec![issue.clone()],
            ConfigError::Invalid(issues) => issues.clone(),
        }
    }
}

fn join_issues(issues: &[ConfigIssue]) -> String {
    issues
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

pub(super) const HOUR_MS: u64 = 3_600_000;
pub(super) const DAY_MS: u64 = 24 * HOUR_MS;

/// Collects the problems (and the keys without effect) while the sections are parsed. A check
/// that fails records its issue and returns a stand-in, so parsing goes on to find the rest;
/// the stand-ins never leave validation, which fails as soon as one issue is recorded.
#[derive(Default)]
pub(super) struct Checker {
    issues: Vec<ConfigIssue>,
    ignored: Vec<String>,
}

impl Checker {
    pub(super) fn fail(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.issues.push(ConfigIssue {
            path: path.into(),
            message: message.into(),
        });
    }

    /// Notes a key that is set but has no effect in this gateway, with the reason.
    pub(super) fn ignore(&mut self, note: String) {
        self.ignored.push(note);
    }

    /// The issues found, or the notes on ignored keys when there are none.
    pub(super) fn finish(self) -> Result<Vec<String>, Vec<ConfigIssue>> {
        if self.issues.is_empty() {
            Ok(self.ignored)
        } else {
            Err(self.issues)
        }
    }

    pub(super) fn range(&mut self, path: &str, value: u64, min: u64, max: u64) -> u64 {
        if value < min || value > max {
            self.fail(
                path,
                format!("must be between {min} and {max}, got {value}"),
            );
            return min;
        }
        value
    }

    pub(super) fn millis(&mut self, path: &str, value: u64, min: u64, max: u64) -> Duration {
        Duration::from_millis(self.range(path, value, min, max))
    }

    pub(super) fn port(&mut self, path: &str, value: u64) -> u16 {
        u16::try_from(self.range(path, value, 0, 65535)).unwrap_or_default()
    }

    /// A host name or IP address; `None` (with the problem recorded) when it is not one.
    pub(super) fn host(&mut self, path: &str, value: &str) -> Option<Host> {
        let host = Host::parse(value);
        if host.is_none() {
            if value.trim().is_empty() {
                self.fail(path, "must not be empty");
            } else {
                self.fail(path, "must be a host name or IP address");
            }
        }
        host
    }

    pub(super) fn non_empty(&mut self, path: &str, value: &str) {
        if value.trim().is_empty() {
            self.fail(path, "must not be empty");
        }
    }
}
