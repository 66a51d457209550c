//! config.json on first start: when the file is missing, either binary creates it from the
//! shipped example (`data/config.example.json`, built into the binary), atomically and never
//! over an existing file, and says so in the log. Nothing ever writes to the example.

use std::path::Path;

use anyhow::Context as _;

use crate::process::atomic_file::create_new;

/// The example config, as tracked in the repository.
pub const EXAMPLE_CONFIG: &str = include_str!("../../../data/config.example.json");

/// Creates `path` from the example when nothing is there; returns whether it did.
/// Blocking: call off the async workers.
pub fn create_config_if_missing(path: &Path) -> anyhow::Result<bool> {
    let created = create_new(path, EXAMPLE_CONFIG.as_bytes())
        .with_context(|| format!("creating {} from the example config", path.display()))?;
    if created {
        tracing::warn!(
            path = %path.display(),
            "config.json did not exist: created it from the example config; its admin login is admin/admin and its client key CHANGEME: change both"
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
        assert!(create_config_if_missing(&path).expect("creates"));
        assert_eq!(
            std::fs::read_to_string(&path).expect("read"),
            EXAMPLE_CONFIG
        );
        std::fs::write(&path, "{}").expect("write");
        assert!(!create_config_if_missing(&path).expect("no error"));
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "{}");
    }
}
