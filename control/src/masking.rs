//! Secrets in the admin API: every secret of a config is replaced by a mask before it leaves
//! control, and a mask sent back means "keep the value on disk". Never returns a secret.

use proxy::config::ConfigIssue;
use proxy::config::raw::{RawAuth, RawConfig};

/// What a set secret reads as in the admin API. Empty secrets stay empty, so "not set" shows.
pub const MASK: &str = "********";

fn mask(value: &mut String) {
    if !value.is_empty() {
        *value = MASK.to_string();
    }
}

fn mask_auth(auth: &mut RawAuth) {
    mask(&mut auth.client_secret);
    mask(&mut auth.api_key);
}

/// The config with client keys, the admin password, client secrets and upstream api-keys masked.
pub fn masked(raw: &RawConfig) -> RawConfig {
    let mut raw = raw.clone();
    mask(&mut raw.server.admin_auth.password);
    mask_auth(&mut raw.auth);
    for key in &mut raw.client_keys {
        mask(&mut key.key);
    }
    for upstream in &mut raw.upstreams {
        if let Some(auth) = upstream.auth.as_mut() {
            mask_auth(auth);
        }
    }
    raw
}

/// Puts the stored secret back wherever `submitted` holds a mask. Entries of lists are matched
/// by their id (client keys) or name (upstreams), then by position when the entry there was
/// renamed. A mask that stands for no stored secret is an issue at its path.
pub fn unmask(submitted: &mut RawConfig, stored: Option<&RawConfig>) -> Vec<ConfigIssue> {
    let mut issues = Vec::new();
    let mut restore = |value: &mut String, stored: Option<&String>, path: String| {
        if value != MASK {
            return;
        }
        match stored {
            Some(secret) if !secret.is_empty() => value.clone_from(secret),
            _ => issues.push(ConfigIssue {
                path,
                message: "is masked, but there is no stored value it stands for; enter the value"
                    .into(),
            }),
        }
    };

    restore(
        &mut submitted.server.admin_auth.password,
        stored.map(|s| &s.server.admin_auth.password),
        "server.adminAuth.password".into(),
    );
    restore(
        &mut submitted.auth.client_secret,
        stored.map(|s| &s.auth.client_secret),
        "auth.clientSecret".into(),
    );
    restore(
        &mut submitted.auth.api_key,
        stored.map(|s| &s.auth.api_key),
        "auth.apiKey".into(),
    );

    let submitted_ids: Vec<String> = submitted.client_keys.iter().map(|k| k.id.clone()).collect();
    for (i, key) in submitted.client_keys.iter_mut().enumerate() {
        let stored_key = stored.and_then(|s| {
            let ids: Vec<&str> = s.client_keys.iter().map(|k| k.id.as_str()).collect();
            let index = match_entry(&key.id, i, &ids, &submitted_ids);
            index.map(|j| &s.client_keys[j].key)
        });
        restore(&mut key.key, stored_key, format!("apiKeys[{i}].key"));
    }

    let submitted_names: Vec<String> = submitted.upstreams.iter().map(|u| u.name.clone()).collect();
    for (i, upstream) in submitted.upstreams.iter_mut().enumerate() {
        let Some(auth) = upstream.auth.as_mut() else {
            continue;
        };
        let stored_auth = stored.and_then(|s| {
            let names: Vec<&str> = s.upstreams.iter().map(|u| u.name.as_str()).collect();
            match_entry(&upstream.name, i, &names, &submitted_names)
                .and_then(|j| s.upstreams[j].auth.as_ref())
        });
        restore(
            &mut auth.client_secret,
            stored_auth.map(|a| &a.client_secret),
            format!("upstreams[{i}].auth.clientSecret"),
        );
        restore(
            &mut auth.api_key,
            stored_auth.map(|a| &a.api_key),
            format!("upstreams[{i}].auth.apiKey"),
        );
    }
    issues
}

/// The stored entry a submitted entry continues: the one with the same name, else the one at
/// the same position if its name no longer appears in the submission (a rename).
fn match_entry(
    name: &str,
    index: usize,
    stored_names: &[&str],
    submitted_names: &[String],
) -> Option<usize> {
    if let Some(j) = stored_names.iter().position(|n| *n == name) {
        return Some(j);
    }
    let renamed = stored_names
        .get(index)
        .is_some_and(|old| !submitted_names.iter().any(|n| n == old));
    renamed.then_some(index)
}

/// Restores the masked secrets of a submitted `auth` block (the "verify" button) from the
/// stored global block or from the named upstream's block.
pub fn unmask_auth(
    submitted: &mut RawAuth,
    stored: Option<&RawConfig>,
    upstream: Option<&str>,
) -> Vec<ConfigIssue> {
    let stored_auth = stored.and_then(|s| match upstream {
        Some(name) => s
            .upstreams
            .iter()
            .find(|u| u.name == name)
            .and_then(|u| u.auth.as_ref()),
        None => Some(&s.auth),
    });
    let mut issues = Vec::new();
    for (value, stored, field) in [
        (
            &mut submitted.client_secret,
            stored_auth.map(|a| &a.client_secret),
            "clientSecret",
        ),
        (
            &mut submitted.api_key,
            stored_auth.map(|a| &a.api_key),
            "apiKey",
        ),
    ] {
        if value != MASK {
            continue;
        }
        match stored {
            Some(secret) if !secret.is_empty() => value.clone_from(secret),
            _ => issues.push(ConfigIssue {
                path: format!("auth.{field}"),
                message: "is masked, but there is no stored value it stands for".into(),
            }),
        }
    }
    issues
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn stored() -> RawConfig {
        proxy::config::parse_raw(
            json!({
                "server": {"adminAuth": {"enabled": true, "username": "admin", "password": "pw-stored"}},
                "auth": {"mode": "servicePrincipal", "tenantId": "t", "clientId": "c", "clientSecret": "cs-stored"},
                "apiKeys": [
                    {"id": "a", "key": "sk-a-stored", "status": "active"},
                    {"id": "b", "key": "sk-b-stored", "status": "active"}
                ],
                "upstreams": [
                    {"name": "u1", "baseUrl": "https://x.openai.azure.com",
                     "auth": {"mode": "apiKey", "apiKey": "azure-key-stored"}}
                ]
            })
            .to_string()
            .as_bytes(),
        )
        .expect("parses")
    }

    #[test]
    fn every_secret_is_masked() {
        let text = serde_json::to_string(&masked(&stored())).unwrap_or_default();
        for secret in [
            "pw-stored",
            "cs-stored",
            "sk-a-stored",
            "sk-b-stored",
            "azure-key-stored",
        ] {
            assert!(!text.contains(secret), "{secret} leaked: {text}");
        }
        assert!(text.contains(MASK));
    }

    #[test]
    fn empty_secrets_stay_empty_when_masked() {
        let m = masked(&stored());
        assert_eq!(m.auth.api_key, "");
    }

    #[test]
    fn masks_sent_back_restore_the_stored_secrets() {
        let stored = stored();
        let mut submitted = masked(&stored);
        let issues = unmask(&mut submitted, Some(&stored));
        assert!(issues.is_empty(), "{issues:?}");
        assert_eq!(submitted.server.admin_auth.password, "pw-stored");
        assert_eq!(submitted.auth.client_secret, "cs-stored");
        assert_eq!(submitted.client_keys[1].key, "sk-b-stored");
        let upstream_auth = submitted.upstreams[0]
            .auth
            .as_ref()
            .map(|a| a.api_key.as_str());
        assert_eq!(upstream_auth, Some("azure-key-stored"));
    }

    #[test]
    fn masked_keys_follow_their_id_when_entries_move() {
        let stored = stored();
        let mut submitted = masked(&stored);
        submitted.client_keys.reverse();
        assert!(unmask(&mut submitted, Some(&stored)).is_empty());
        assert_eq!(submitted.client_keys[0].id, "b");
        assert_eq!(submitted.client_keys[0].key, "sk-b-stored");
    }

    #[test]
    fn a_renamed_entry_keeps_its_secret() {
        let stored = stored();
        let mut submitted = masked(&stored);
        submitted.client_keys[0].id = "a-renamed".into();
        assert!(unmask(&mut submitted, Some(&stored)).is_empty());
        assert_eq!(submitted.client_keys[0].key, "sk-a-stored");
    }

    #[test]
    fn a_mask_for_a_new_entry_is_an_issue_at_its_path() {
        let stored = stored();
        let mut submitted = masked(&stored);
        let mut extra = submitted.client_keys[0].clone();
        extra.id = "new".into();
        submitted.client_keys.push(extra);
        let issues = unmask(&mut submitted, Some(&stored));
        assert_eq!(issues.len(), 1);
        assert_eq!(issues[0].path, "apiKeys[2].key");
    }

    #[test]
    fn changed_secrets_are_taken_as_sent() {
        let stored = stored();
        let mut submitted = masked(&stored);
        submitted.server.admin_auth.password = "new-password".into();
        assert!(unmask(&mut submitted, Some(&stored)).is_empty());
        assert_eq!(submitted.server.admin_auth.password, "new-password");
    }

    #[test]
    fn verify_restores_the_named_upstreams_secret() {
        let stored = stored();
        let mut auth = masked(&stored).upstreams[0]
            .auth
            .clone()
            .unwrap_or_default();
        assert!(unmask_auth(&mut auth, Some(&stored), Some("u1")).is_empty());
        assert_eq!(auth.api_key, "azure-key-stored");
    }
}
