//! What a reload changed, for its log line: client keys, upstreams and models added, removed or
//! changed, by id or name only, and which other sections changed (`server.upstream`, `auth`,
//! ...). Never carries a value: a changed secret shows only as its entry or section changing.

use std::fmt;

use serde::Serialize;
use serde_json::Value;

use super::raw::RawConfig;

/// Names listed per kind of change; the rest are counted.
const MAX_NAMES: usize = 20;
/// Characters kept of one name.
const MAX_NAME_CHARS: usize = 64;

/// The difference between two configs, by entry and section.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ConfigChanges {
    pub client_keys: EntryChanges,
    pub upstreams: EntryChanges,
    pub models: EntryChanges,
    /// Sections other than the three lists, by path: `server.caddy`, `auth`, `limits`, ...
    pub sections: Vec<String>,
}

/// Entries of one list, by id or name.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct EntryChanges {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<String>,
}

impl EntryChanges {
    fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

impl ConfigChanges {
    pub fn between(old: &RawConfig, new: &RawConfig) -> ConfigChanges {
        let key_id = |k: &super::raw::RawClientKey| k.id.clone();
        let upstream_name = |u: &super::raw::RawUpstream| u.name.clone();
        let model_id = |m: &super::raw::RawModel| m.id.clone();
        let mut sections = Vec::new();
        let (old_server, new_server) = (to_value(&old.server), to_value(&new.server));
        if old_server != new_server {
            sections.extend(changed_keys("server", &old_server, &new_server));
        }
        for (name, old, new) in [
            ("auth", to_value(&old.auth), to_value(&new.auth)),
            ("limits", to_value(&old.limits), to_value(&new.limits)),
        ] {
            if old != new {
                sections.push(name.to_string());
            }
        }
        let extra = |raw: &RawConfig| Value::Object(raw.extra.clone());
        sections.extend(changed_keys("", &extra(old), &extra(new)));
        ConfigChanges {
            client_keys: entries(&old.client_keys, &new.client_keys, key_id),
            upstreams: entries(&old.upstreams, &new.upstreams, upstream_name),
            models: entries(&old.models, &new.models, model_id),
            sections,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.client_keys.is_empty()
            && self.upstreams.is_empty()
            && self.models.is_empty()
            && self.sections.is_empty()
    }
}

/// `models added: a, b; keys removed: c; server.upstream changed`, or `none`.
impl fmt::Display for ConfigChanges {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        for (kind, entries) in [
            ("keys", &self.client_keys),
            ("upstreams", &self.upstreams),
            ("models", &self.models),
        ] {
            for (what, names) in [
                ("added", &entries.added),
                ("removed", &entries.removed),
                ("changed", &entries.changed),
            ] {
                if !names.is_empty() {
                    parts.push(format!("{kind} {what}: {}", listed(names)));
                }
            }
        }
        if !self.sections.is_empty() {
            parts.push(format!("changed: {}", listed(&self.sections)));
        }
        if parts.is_empty() {
            f.write_str("none")
        } else {
            f.write_str(&parts.join("; "))
        }
    }
}

fn listed(names: &[String]) -> String {
    let mut shown: Vec<String> = names
        .iter()
        .take(MAX_NAMES)
        .map(|name| match name.char_indices().nth(MAX_NAME_CHARS) {
            Some((cut, _)) => format!("{}…", &name[..cut]),
            None => name.clone(),
        })
        .collect();
    if names.len() > MAX_NAMES {
        shown.push(format!("and {} more", names.len() - MAX_NAMES));
    }
    shown.join(", ")
}

fn to_value(value: &impl Serialize) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

/// The keys of two objects whose values differ, as `prefix.key`.
fn changed_keys(prefix: &str, old: &Value, new: &Value) -> Vec<String> {
    let (Value::Object(old), Value::Object(new)) = (old, new) else {
        return vec![prefix.to_string()];
    };
    let mut keys: Vec<&String> = old.keys().chain(new.keys()).collect();
    keys.sort_unstable();
    keys.dedup();
    keys.into_iter()
        .filter(|key| old.get(*key) != new.get(*key))
        .map(|key| {
            if prefix.is_empty() {
                key.clone()
            } else {
                format!("{prefix}.{key}")
            }
        })
        .collect()
}

/// Entries matched by `name_of`, in the new list's order (removed ones in the old list's).
fn entries<T: Serialize>(old: &[T], new: &[T], name_of: impl Fn(&T) -> String) -> EntryChanges {
    let old: Vec<(String, Value)> = old.iter().map(|e| (name_of(e), to_value(e))).collect();
    let new: Vec<(String, Value)> = new.iter().map(|e| (name_of(e), to_value(e))).collect();
    let find = |list: &[(String, Value)], name: &str| {
        list.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone())
    };
    let mut changes = EntryChanges::default();
    for (name, value) in &new {
        match find(&old, name) {
            None => changes.added.push(name.clone()),
            Some(before) if before != *value => changes.changed.push(name.clone()),
            Some(_) => {}
        }
    }
    for (name, _) in &old {
        if find(&new, name).is_none() {
            changes.removed.push(name.clone());
        }
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn raw(value: Value) -> RawConfig {
        serde_json::from_value(value).expect("raw config")
    }

    #[test]
    fn entries_and_sections_are_named_never_their_values() {
        let old = raw(json!({
            "server": {"upstream": {"maxRetries": 1}, "adminAuth": {"password": "old-secret"}},
            "auth": {"mode": "apiKey", "apiKey": "azure-secret-1"},
            "apiKeys": [{"id": "a", "key": "sk-a"}, {"id": "b", "key": "sk-b"}],
            "upstreams": [{"name": "u", "baseUrl": "https://one.openai.azure.com"}],
            "models": [{"id": "m1", "upstream": "u", "targetModel": "d1"}]
        }));
        let new = raw(json!({
            "server": {"upstream": {"maxRetries": 2}, "adminAuth": {"password": "new-secret"}},
            "auth": {"mode": "apiKey", "apiKey": "azure-secret-2"},
            "apiKeys": [{"id": "a", "key": "sk-a2"}, {"id": "c", "key": "sk-c"}],
            "upstreams": [{"name": "u", "baseUrl": "https://one.openai.azure.com"}],
            "models": [{"id": "m1", "upstream": "u", "targetModel": "d1"},
                       {"id": "m2", "upstream": "u", "targetModel": "d2"}],
            "notes": "kept"
        }));
        let changes = ConfigChanges::between(&old, &new);
        assert_eq!(changes.client_keys.added, vec!["c"]);
        assert_eq!(changes.client_keys.removed, vec!["b"]);
        assert_eq!(changes.client_keys.changed, vec!["a"]);
        assert!(changes.upstreams.is_empty());
        assert_eq!(changes.models.added, vec!["m2"]);
        assert_eq!(
            changes.sections,
            vec!["server.adminAuth", "server.upstream", "auth", "notes"]
        );
        let text = changes.to_string();
        assert_eq!(
            text,
            "keys added: c; keys removed: b; keys changed: a; models added: m2; \
             changed: server.adminAuth, server.upstream, auth, notes"
        );
        for secret in ["secret", "sk-", "azure.com", "d2"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
    }

    #[test]
    fn the_same_config_changes_nothing_and_long_lists_are_cut() {
        let config = raw(json!({"models": [{"id": "m", "upstream": "u"}]}));
        let changes = ConfigChanges::between(&config, &config);
        assert!(changes.is_empty());
        assert_eq!(changes.to_string(), "none");

        let many: Vec<Value> = (0..25)
            .map(|i| json!({"id": format!("k{i}"), "key": "s"}))
            .collect();
        let changes = ConfigChanges::between(&raw(json!({})), &raw(json!({"apiKeys": many})));
        let text = changes.to_string();
        assert!(text.ends_with("k19, and 5 more"), "{text}");
    }
}
