//! config.json on first start: when the file is missing, either binary creates it from the
//! shipped example (`data/config.example.json`, built into the binary) or from the file
//! `CONFIG_EXAMPLE` names, atomically and never over an existing file, and says so in the log.
//! Nothing ever writes to an example.

use std::path::Path;

use anyhow::Context as _;

use crate::process::atomic_file::create_new;
use crate::process::regular_file::{CONFIG_FILE_LIMIT, read_regular_file};

/// The example config, as tracked in the repository.
pub const EXAMPLE_CONFIG: &str = include_str!("../../../data/config.example.json");

/// Creates `path` when nothing is there, from `example` (a file that must hold a valid config)
/// or else the built-in example; returns whether it did. Blocking: call off the async workers.
pub fn create_config_if_missing(path: &Path, example: Option<&Path>) -> anyhow::Result<bool> {
    if std::fs::symlink_metadata(path).is_ok() {
        return Ok(false);
    }
    let bytes = match example {
        None => EXAMPLE_CONFIG.as_bytes().to_vec(),
        Some(example) => {
            let bytes = read_regular_file(example, CONFIG_FILE_LIMIT)
                .with_context(|| format!("reading CONFIG_EXAMPLE {}", example.display()))?;
            crate::config::load(&bytes).with_context(|| {
                format!("CONFIG_EXAMPLE {} is not a valid config", example.display())
            })?;
            bytes
        }
    };
    let created = create_new(path, &bytes)
        .with_context(|| format!("creating {} from the example config", path.display()))?;
    if created {
        let example = example.map_or_else(
            || "data/config.example.json (built in)".to_string(),
            |p| p.display().to_string(),
        );
        tracing::warn!(
            path = %path.display(),
            example = %example,
            "config.json did not exist: created it from the example config; change its admin password and client keys"
        );
    }
    Ok(created)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_is_a_valid_config() {
        let config = crate::config::load(EXAMPLE_CONFIG.as_bytes()).expect("valid");
        assert!(config.upstreams[0].placeholder);
        assert_eq!(config.client_keys[0].id, "default");
    }

    #[test]
    fn a_missing_config_is_created_from_the_example_and_an_existing_one_is_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("data/config.json");
        assert!(create_config_if_missing(&path, None).expect("creates"));
        assert_eq!(
            std::fs::read_to_string(&path).expect("read"),
            EXAMPLE_CONFIG
        );
        std::fs::write(&path, "{}").expect("write");
        assert!(!create_config_if_missing(&path, None).expect("no error"));
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "{}");
    }

    #[test]
    fn another_example_can_be_named_and_must_be_a_valid_config() {
        let dir = tempfile::tempdir().expect("tempdir");
        let example = dir.path().join("fake.json");
        std::fs::write(&example, r#"{"server": {"port": 4000}}"#).expect("write");
        let path = dir.path().join("config.json");
        assert!(create_config_if_missing(&path, Some(&example)).expect("creates"));
        assert_eq!(
            std::fs::read(&path).expect("read"),
            std::fs::read(&example).expect("read")
        );

        std::fs::write(&example, r#"{"models": [{"id": "m", "upstream": "none"}]}"#)
            .expect("write");
        let other = dir.path().join("other.json");
        let err = create_config_if_missing(&other, Some(&example)).expect_err("invalid");
        assert!(format!("{err:#}").contains("models[0].upstream"), "{err:#}");
        assert!(!other.exists());
    }
}
