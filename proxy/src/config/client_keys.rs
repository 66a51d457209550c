//! `apiKeys`: the keys clients present to the gateway.

use std::collections::HashSet;

use super::issues::Checker;
use super::key_policy::{self, KeyPolicy};
use super::raw::RawClientKey;
use super::secret::Secret;

#[derive(Debug, Clone)]
pub struct ClientKeyEntry {
    /// Unique, not empty.
    pub id: String,
    /// Unique, not empty, without surrounding whitespace.
    pub key: Secret,
    /// `status` is "active" or absent (a "disabled" key is kept but refused).
    pub active: bool,
    pub policy: KeyPolicy,
}

/// `apiKeys`: ids and keys unique, keys without surrounding whitespace.
pub(super) fn parse(check: &mut Checker, raw: &[RawClientKey]) -> Vec<ClientKeyEntry> {
    let mut ids = HashSet::new();
    let mut keys = HashSet::new();
    let mut entries = Vec::with_capacity(raw.len());
    for (i, k) in raw.iter().enumerate() {
        let path = format!("apiKeys[{i}]");
        if k.id.trim().is_empty() {
            check.fail(format!("{path}.id"), "must not be empty");
        } else if !ids.insert(k.id.as_str()) {
            check.fail(format!("{path}.id"), format!("duplicate id \"{}\"", k.id));
        }
        if k.key.trim().is_empty() {
            check.fail(format!("{path}.key"), "must not be empty");
        } else if k.key.trim() != k.key {
            check.fail(
                format!("{path}.key"),
                "must not start or end with whitespace",
            );
        } else if !keys.insert(k.key.as_str()) {
            check.fail(
                format!("{path}.key"),
                "the same key is used by another entry",
            );
        }
        let active = match k.status.as_deref() {
            None | Some("active") => true,
            Some("disabled") => false,
            Some(other) => {
                check.fail(
                    format!("{path}.status"),
                    format!("must be \"active\" or \"disabled\", got \"{other}\""),
                );
                false
            }
        };
        let policy = key_policy::parse(check, &path, k);
        entries.push(ClientKeyEntry {
            id: k.id.clone(),
            key: Secret::new(k.key.clone()),
            active,
            policy,
        });
    }
    entries
}

#[cfg(test)]
mod tests {
    use super::super::parse_raw;
    use super::super::testing::{issue_paths, load_value, sample};
    use serde_json::json;

    #[test]
    fn duplicate_client_keys_and_ids_are_refused() {
        let mut v = sample();
        v["apiKeys"] = json!([
            {"id": "a", "key": "k1"},
            {"id": "a", "key": "k2"},
            {"id": "b", "key": "k1"}
        ]);
        assert_eq!(issue_paths(v), vec!["apiKeys[1].id", "apiKeys[2].key"]);
    }

    #[test]
    fn client_key_status_must_be_known() {
        let mut v = sample();
        v["apiKeys"][0]["status"] = json!("paused");
        assert_eq!(issue_paths(v), vec!["apiKeys[0].status"]);
    }

    #[test]
    fn keys_with_surrounding_whitespace_are_refused() {
        let mut v = sample();
        v["apiKeys"][0]["key"] = json!(" sk-a");
        assert_eq!(issue_paths(v), vec!["apiKeys[0].key"]);
    }

    #[test]
    fn a_disabled_key_is_kept_inactive() {
        let mut v = sample();
        v["apiKeys"][0]["status"] = json!("disabled");
        let config = load_value(v).expect("valid");
        assert!(!config.client_keys[0].active);
    }

    #[test]
    fn client_keys_keep_their_json_name() {
        let raw = parse_raw(br#"{"apiKeys": [{"id": "a", "key": "k"}]}"#).expect("parses");
        assert_eq!(raw.client_keys[0].id, "a");
        let back = serde_json::to_value(&raw).expect("serialize");
        assert_eq!(back["apiKeys"][0]["key"], "k");
        assert!(back.get("clientKeys").is_none(), "{back}");
    }
}
