//! Secrets in the admin API: every secret of a config is replaced by a mask before it leaves
//! control, and a mask sent back means "keep the value on disk". Never returns a secret. The
//! Redis URL of `limits.redis` is masked in its password only, so its host stays readable.

use std::ops::Range;

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

/// Where the password of a `scheme://[user]:password@host...` URL is: after the first `:` of
/// the user info, up to the last `@` (a password may hold `:` and `@`). `None` without a
/// password. An `@` further on (in a query) makes more of the URL count as the password: more
/// is masked, never less.
fn password_range(url: &str) -> Option<Range<usize>> {
    let start = url.find("://").map_or(0, |i| i + 3);
    let at = start + url[start..].rfind('@')?;
    let colon = start + url[start..at].find(':')?;
    (colon + 1 < at).then_some(colon + 1..at)
}

/// `rediss://:********@cache.example.net:6380`: the URL with its password masked.
fn mask_url_password(url: &mut String) {
    if let Some(range) = password_range(url) {
        url.replace_range(range, MASK);
    }
}

/// The config with client keys, the admin password, client secrets, upstream api-keys and the
/// Redis URL's password masked.
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
    if let Some(url) = raw.limits.redis.as_mut() {
        mask_url_password(url);
    }
    raw
}

/// Whether a JSON key names a secret in a file that cannot be parsed: any key that mentions a
/// key, secret, password, token or credential. Masks more than `masked` would, never less.
fn is_secret_name(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    ["key", "secret", "password", "token", "credential"]
        .iter()
        .any(|word| name.contains(word))
}

/// The end of the JSON string that opens at `text[0]` (a `"`): the index of its closing quote,
/// or of the line's end when it is not closed there (JSON strings hold no raw newline, so a
/// broken string ends with its line and the next line is read afresh).
fn string_end(text: &str) -> (usize, bool) {
    let mut chars = text.char_indices().skip(1);
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return (i, true),
            '\n' => return (i, false),
            '\\' => {
                if let Some((_, '\n')) = chars.next() {
                    return (i + 1, false);
                }
            }
            _ => {}
        }
    }
    (text.len(), false)
}

/// The text of a config file that is not readable as a config, for showing in the raw editor:
/// the string value of every secret-looking key and the password of every URL masked, line
/// breaks kept so that line numbers of errors still match. Works on broken JSON too.
pub fn masked_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut secret_value_next = false;
    while let Some(open) = rest.find('"') {
        let between = &rest[..open];
        out.push_str(between);
        if !between.chars().all(|c| c.is_whitespace() || c == ':') {
            secret_value_next = false;
        }
        let (end, closed) = string_end(&rest[open..]);
        let end = open + end;
        let content = &rest[open + 1..end];
        let after = if closed { end + 1 } else { end };
        let is_key = closed && rest[after..].trim_start().starts_with(':');
        out.push('"');
        if is_key {
            out.push_str(content);
            secret_value_next = is_secret_name(content);
        } else if secret_value_next && !content.is_empty() {
            out.push_str(MASK);
            secret_value_next = false;
        } else {
            let mut value = content.to_string();
            mask_url_password(&mut value);
            out.push_str(&value);
            secret_value_next = false;
        }
        if closed {
            out.push('"');
        }
        rest = &rest[after..];
    }
    out.push_str(rest);
    out
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

    if let Some(url) = submitted.limits.redis.as_mut() {
        let stored_url = stored.and_then(|s| s.limits.redis.as_deref());
        if let Err(issue) = restore_url_password(url, stored_url) {
            issues.push(issue);
        }
    }
    issues
}

/// Puts the stored URL's password in place of a masked one, whatever else of the URL changed
/// (as a masked api-key stays with its upstream when the base URL changes).
fn restore_url_password(submitted: &mut String, stored: Option<&str>) -> Result<(), ConfigIssue> {
    let Some(range) = password_range(submitted).filter(|r| submitted[r.clone()] == *MASK) else {
        return Ok(());
    };
    match stored.and_then(|url| password_range(url).map(|r| &url[r])) {
        Some(password) => {
            submitted.replace_range(range, password);
            Ok(())
        }
        None => Err(ConfigIssue {
            path: "limits.redis".into(),
            message: "has a masked password, but there is no stored password it stands for; \
                      enter the password"
                .into(),
        }),
    }
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

    #[test]
    fn unparseable_text_has_its_secrets_masked_and_its_lines_kept() {
        let text = "{\n  \"server\": {\"adminAuth\": {\"password\": \"hunter2\"}},\n  \"auth\": {\"apiKey\": \"azure-secret\", \"mode\": \"apiKey\"},\n  \"apiKeys\": [{\"id\": \"team\", \"key\": \"sk-team\" \"broken\": 1}],\n  \"limits\": {\"redis\": \"rediss://:redis-pw@cache:6380\"},\n  \"clientSecret\": \"unterminated\n  \"upstreams\": []\n}";
        let shown = masked_text(text);
        for secret in [
            "hunter2",
            "azure-secret",
            "sk-team",
            "redis-pw",
            "unterminated",
        ] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        assert!(shown.contains("\"mode\": \"apiKey\""), "{shown}");
        assert!(shown.contains("\"id\": \"team\""), "{shown}");
        assert!(shown.contains("rediss://:********@cache:6380"), "{shown}");
        assert_eq!(shown.lines().count(), text.lines().count());
    }

    #[test]
    fn a_key_after_broken_quotes_is_still_masked() {
        let shown = masked_text("{\"key\": \"sk-a\\\"b\", \"password\":\n\"pw\"}");
        assert!(
            !shown.contains("sk-a") && !shown.contains("pw\""),
            "{shown}"
        );
    }
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
                ],
                "limits": {"redis": "rediss://:redis-pw-stored@cache.redis.cache.windows.net:6380"}
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
            "redis-pw-stored",
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
        assert_eq!(submitted.limits.redis, stored.limits.redis);
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

    fn masked_url(url: &str) -> String {
        let mut url = url.to_string();
        mask_url_password(&mut url);
        url
    }

    #[test]
    fn a_redis_url_shows_everything_but_its_password() {
        assert_eq!(
            masked(&stored()).limits.redis.as_deref(),
            Some("rediss://:********@cache.redis.cache.windows.net:6380")
        );
        assert_eq!(
            masked_url("redis://gateway:pw@10.0.0.4:6379/2"),
            "redis://gateway:********@10.0.0.4:6379/2"
        );
        // A password may hold `:` and `@` when written without percent-encoding.
        assert_eq!(
            masked_url("redis://:p:w@rd@cache:6379"),
            "redis://:********@cache:6379"
        );
        for plain in [
            "redis://cache:6379",
            "redis://gateway@cache:6379/1",
            "redis://:@cache",
        ] {
            assert_eq!(masked_url(plain), plain);
        }
    }

    #[test]
    fn a_masked_redis_password_keeps_the_stored_one_when_the_host_changes() {
        let stored = stored();
        let mut submitted = masked(&stored);
        submitted.limits.redis =
            Some("rediss://:********@other.redis.cache.windows.net:6380".into());
        assert!(unmask(&mut submitted, Some(&stored)).is_empty());
        assert_eq!(
            submitted.limits.redis.as_deref(),
            Some("rediss://:redis-pw-stored@other.redis.cache.windows.net:6380")
        );
    }

    #[test]
    fn a_typed_redis_url_is_taken_as_sent() {
        let stored = stored();
        let mut submitted = masked(&stored);
        submitted.limits.redis = Some("redis://:new-pw@cache:6379".into());
        assert!(unmask(&mut submitted, Some(&stored)).is_empty());
        assert_eq!(
            submitted.limits.redis.as_deref(),
            Some("redis://:new-pw@cache:6379")
        );
    }

    #[test]
    fn a_masked_redis_password_without_a_stored_one_is_an_issue() {
        let mut stored = stored();
        stored.limits.redis = Some("redis://cache:6379".into());
        let mut submitted = masked(&stored);
        submitted.limits.redis = Some("redis://:********@cache:6379".into());
        let issues = unmask(&mut submitted, Some(&stored));
        assert_eq!(issues.len(), 1, "{issues:?}");
        assert_eq!(issues[0].path, "limits.redis");
        assert!(
            unmask(&mut submitted, None)
                .iter()
                .any(|i| i.path == "limits.redis")
        );
    }
}
