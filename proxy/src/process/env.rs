//! Settings from environment variables, read alike by both binaries: a blank value counts as
//! unset, values are trimmed, and a bad value stops start-up with a message that names the
//! variable and what it must be. Never logs a value.

use std::fmt::Display;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

/// Where config.json is when `CONFIG_PATH` is not set.
pub const DEFAULT_CONFIG_PATH: &str = "data/config.json";

type Lookup = Box<dyn Fn(&str) -> Option<String>>;

/// A source of variables: the process environment, or a fixed list in tests.
pub struct Env {
    lookup: Lookup,
}

impl Env {
    pub fn from_process() -> Env {
        Env {
            lookup: Box::new(|name| std::env::var(name).ok()),
        }
    }

    pub fn from_pairs(pairs: &[(&str, &str)]) -> Env {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Env {
            lookup: Box::new(move |name| {
                pairs
                    .iter()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.clone())
            }),
        }
    }

    /// The trimmed value, or `None` when unset or blank.
    pub fn text(&self, name: &str) -> Option<String> {
        (self.lookup)(name)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    }

    pub fn path(&self, name: &str) -> Option<PathBuf> {
        self.text(name).map(PathBuf::from)
    }

    /// The value parsed as `T`; `expected` completes "NAME must be ...".
    pub fn parse<T: FromStr>(&self, name: &str, expected: &str) -> anyhow::Result<Option<T>> {
        self.text(name)
            .map(|value| {
                value
                    .parse()
                    .map_err(|_| anyhow::anyhow!("{name} must be {expected}, got {value:?}"))
            })
            .transpose()
    }

    /// A whole number within `range`.
    pub fn number_in<T>(&self, name: &str, range: RangeInclusive<T>) -> anyhow::Result<Option<T>>
    where
        T: FromStr + PartialOrd + Display + Copy,
    {
        let expected = format!("a number from {} to {}", range.start(), range.end());
        let value = self.parse::<T>(name, &expected)?;
        match value {
            Some(v) if !range.contains(&v) => {
                anyhow::bail!("{name} must be {expected}, got {v}")
            }
            _ => Ok(value),
        }
    }

    /// Milliseconds, raised to `floor` when smaller.
    pub fn millis(&self, name: &str, floor: Duration) -> anyhow::Result<Option<Duration>> {
        let ms = self.parse::<u64>(name, "a number of milliseconds")?;
        Ok(ms.map(|ms| Duration::from_millis(ms).max(floor)))
    }

    pub fn seconds(&self, name: &str) -> anyhow::Result<Option<Duration>> {
        let secs = self.parse::<u64>(name, "a number of seconds")?;
        Ok(secs.map(Duration::from_secs))
    }

    /// One of the named choices.
    pub fn choice<T: Copy>(&self, name: &str, choices: &[(&str, T)]) -> anyhow::Result<Option<T>> {
        let Some(value) = self.text(name) else {
            return Ok(None);
        };
        match choices.iter().find(|(word, _)| *word == value) {
            Some((_, choice)) => Ok(Some(*choice)),
            None => {
                let words: Vec<String> = choices.iter().map(|(w, _)| format!("{w:?}")).collect();
                anyhow::bail!("{name} must be {}, got {value:?}", words.join(" or "))
            }
        }
    }

    /// `CONFIG_PATH` and `DATA_DIR`: config.json, and the directory runtime files go to (by
    /// default the config file's own).
    pub fn config_location(&self) -> (PathBuf, PathBuf) {
        let config_path = self
            .path("CONFIG_PATH")
            .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG_PATH));
        let data_dir = self
            .path("DATA_DIR")
            .unwrap_or_else(|| data_dir_of(&config_path));
        (config_path, data_dir)
    }
}

/// The directory holding `config_path` (`.` for a bare file name).
pub fn data_dir_of(config_path: &Path) -> PathBuf {
    config_path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), PathBuf::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_values_count_as_unset_and_values_are_trimmed() {
        let env = Env::from_pairs(&[("A", "  "), ("B", " x ")]);
        assert_eq!(env.text("A"), None);
        assert_eq!(env.text("B").as_deref(), Some("x"));
        assert_eq!(env.text("C"), None);
    }

    #[test]
    fn a_bad_number_names_the_variable_and_what_it_must_be() {
        let env = Env::from_pairs(&[("BODY_LIMIT", "lots")]);
        let err = env
            .parse::<usize>("BODY_LIMIT", "a number of bytes")
            .expect_err("not a number");
        assert_eq!(
            err.to_string(),
            "BODY_LIMIT must be a number of bytes, got \"lots\""
        );
    }

    #[test]
    fn a_number_outside_its_range_is_refused() {
        let env = Env::from_pairs(&[("W", "0"), ("V", "4")]);
        let err = env
            .number_in("W", 1..=8usize)
            .expect_err("0 is out of range");
        assert_eq!(err.to_string(), "W must be a number from 1 to 8, got 0");
        assert_eq!(env.number_in("V", 1..=8usize).ok().flatten(), Some(4));
    }

    #[test]
    fn milliseconds_are_raised_to_their_floor() {
        let env = Env::from_pairs(&[("POLL", "5")]);
        let poll = env.millis("POLL", Duration::from_millis(100));
        assert_eq!(poll.ok().flatten(), Some(Duration::from_millis(100)));
    }

    #[test]
    fn a_choice_outside_the_list_names_the_choices() {
        let env = Env::from_pairs(&[("MODE", "sometimes")]);
        let err = env
            .choice("MODE", &[("events", true), ("poll", false)])
            .expect_err("not a choice");
        assert_eq!(
            err.to_string(),
            "MODE must be \"events\" or \"poll\", got \"sometimes\""
        );
    }

    #[test]
    fn the_data_dir_defaults_to_the_config_files_directory() {
        let env = Env::from_pairs(&[("CONFIG_PATH", "/app/data/config.json")]);
        assert_eq!(env.config_location().1, PathBuf::from("/app/data"));
        let env = Env::from_pairs(&[("CONFIG_PATH", "config.json"), ("DATA_DIR", "/var/gw")]);
        assert_eq!(env.config_location().1, PathBuf::from("/var/gw"));
        assert_eq!(data_dir_of(Path::new("config.json")), PathBuf::from("."));
    }
}
