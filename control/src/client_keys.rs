//! Client keys in the config: generating a new key from the operating system's secure random
//! source, renaming, enabling, disabling and deleting entries. A key's value leaves control
//! only once, in the answer that creates it.

use std::fmt::Write as _;

use proxy::config::raw::{RawClientKey, RawConfig};
use proxy::downstream::bounded::{MAX_ID_CHARS, bounded};
use rand::TryRngCore as _;
use rand::rngs::OsRng;
use serde::{Deserialize, Serialize};

use crate::errors::AdminError;

/// Random bytes in a generated key (192 bits).
const KEY_BYTES: usize = 24;
pub const KEY_PREFIX: &str = "sk-";

/// A new client key: `sk-` and 48 hex digits from the OS random source.
pub fn generate_key() -> anyhow::Result<String> {
    let mut bytes = [0u8; KEY_BYTES];
    OsRng
        .try_fill_bytes(&mut bytes)
        .map_err(|e| anyhow::anyhow!("the OS random source failed: {e}"))?;
    let mut key = String::with_capacity(KEY_PREFIX.len() + 2 * KEY_BYTES);
    key.push_str(KEY_PREFIX);
    for b in bytes {
        let _ = write!(key, "{b:02x}");
    }
    Ok(key)
}

/// A key as listed: never its value, only a hint to tell long keys apart.
#[derive(Debug, Clone, Serialize)]
pub struct KeySummary {
    pub id: String,
    pub status: String,
    /// The last four characters of a key of at least 20, e.g. "…3f9a".
    pub hint: Option<String>,
}

pub fn summaries(raw: &RawConfig) -> Vec<KeySummary> {
    raw.client_keys
        .iter()
        .map(|k| KeySummary {
            id: k.id.clone(),
            status: k.status.clone().unwrap_or_else(|| "active".into()),
            hint: (k.key.chars().count() >= 20).then(|| {
                let tail: String = k
                    .key
                    .chars()
                    .rev()
                    .take(4)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect();
                format!("…{tail}")
            }),
        })
        .collect()
}

#[derive(Debug, Clone, Deserialize)]
pub struct NewKey {
    pub id: String,
    #[serde(default)]
    pub status: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct KeyChange {
    /// A new id (rename).
    #[serde(default)]
    pub id: Option<String>,
    /// "active" or "disabled".
    #[serde(default)]
    pub status: Option<String>,
}

fn check_id(id: &str) -> Result<String, AdminError> {
    let id = id.trim();
    if id.is_empty() || id.len() > 128 || id.chars().any(char::is_control) {
        return Err(AdminError::InvalidKeyId);
    }
    Ok(id.to_string())
}

fn check_status(status: &str) -> Result<String, AdminError> {
    match status {
        "active" | "disabled" => Ok(status.to_string()),
        other => Err(AdminError::InvalidKeyStatus {
            got: bounded(other, MAX_ID_CHARS).into_owned(),
        }),
    }
}

fn position(raw: &RawConfig, id: &str) -> Result<usize, AdminError> {
    raw.client_keys
        .iter()
        .position(|k| k.id == id)
        .ok_or_else(|| AdminError::KeyNotFound {
            id: bounded(id, MAX_ID_CHARS).into_owned(),
        })
}

/// Adds a key with a fresh value; returns the value (shown once).
pub fn create(raw: &mut RawConfig, new: &NewKey, key: String) -> Result<String, AdminError> {
    let id = check_id(&new.id)?;
    if raw.client_keys.iter().any(|k| k.id == id) {
        return Err(AdminError::KeyExists { id });
    }
    let status = check_status(new.status.as_deref().unwrap_or("active"))?;
    raw.client_keys.push(RawClientKey {
        id,
        key: key.clone(),
        status: Some(status),
        ..RawClientKey::default()
    });
    Ok(key)
}

pub fn change(raw: &mut RawConfig, id: &str, change: &KeyChange) -> Result<(), AdminError> {
    let index = position(raw, id)?;
    if let Some(new_id) = &change.id {
        let new_id = check_id(new_id)?;
        if new_id != id && raw.client_keys.iter().any(|k| k.id == new_id) {
            return Err(AdminError::KeyExists { id: new_id });
        }
        raw.client_keys[index].id = new_id;
    }
    if let Some(status) = &change.status {
        raw.client_keys[index].status = Some(check_status(status)?);
    }
    Ok(())
}

pub fn delete(raw: &mut RawConfig, id: &str) -> Result<(), AdminError> {
    let index = position(raw, id)?;
    raw.client_keys.remove(index);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config_with(ids: &[&str]) -> RawConfig {
        let mut raw = RawConfig::default();
        for id in ids {
            raw.client_keys.push(RawClientKey {
                id: (*id).into(),
                key: format!("sk-{id}-0123456789abcdef"),
                status: None,
                ..RawClientKey::default()
            });
        }
        raw
    }

    #[test]
    fn generated_keys_are_long_prefixed_and_distinct() {
        let a = generate_key().expect("key");
        let b = generate_key().expect("key");
        assert!(a.starts_with(KEY_PREFIX));
        assert_eq!(a.len(), KEY_PREFIX.len() + 48);
        assert_ne!(a, b);
    }

    #[test]
    fn creating_a_key_with_an_existing_id_is_refused() {
        let mut raw = config_with(&["a"]);
        let new = NewKey {
            id: "a".into(),
            status: None,
        };
        assert!(matches!(
            create(&mut raw, &new, "sk-x".into()),
            Err(AdminError::KeyExists { .. })
        ));
    }

    #[test]
    fn renaming_and_disabling_change_only_that_entry() {
        let mut raw = config_with(&["a", "b"]);
        let edit = KeyChange {
            id: Some("a2".into()),
            status: Some("disabled".into()),
        };
        change(&mut raw, "a", &edit).expect("changes");
        assert_eq!(raw.client_keys[0].id, "a2");
        assert_eq!(raw.client_keys[0].status.as_deref(), Some("disabled"));
        assert_eq!(raw.client_keys[0].key, "sk-a-0123456789abcdef");
        assert_eq!(raw.client_keys[1].status, None);
    }

    #[test]
    fn an_unknown_status_is_refused() {
        let mut raw = config_with(&["a"]);
        let edit = KeyChange {
            id: None,
            status: Some("paused".into()),
        };
        assert!(matches!(
            change(&mut raw, "a", &edit),
            Err(AdminError::InvalidKeyStatus { .. })
        ));
    }

    #[test]
    fn deleting_an_unknown_key_is_not_found() {
        let mut raw = config_with(&["a"]);
        assert!(matches!(
            delete(&mut raw, "zz"),
            Err(AdminError::KeyNotFound { .. })
        ));
    }

    #[test]
    fn summaries_never_show_a_key_and_hint_only_long_ones() {
        let mut raw = config_with(&["a"]);
        raw.client_keys.push(RawClientKey {
            id: "short".into(),
            key: "CHANGEME".into(),
            status: Some("active".into()),
            ..RawClientKey::default()
        });
        let list = summaries(&raw);
        assert_eq!(list[0].hint.as_deref(), Some("…cdef"));
        assert_eq!(list[1].hint, None);
        let text = serde_json::to_string(&list).unwrap_or_default();
        assert!(!text.contains("CHANGEME") && !text.contains("0123456789abcdef"));
    }
}
