//! Helpers for the section tests: a small valid config and the issue paths of a variant of it.

use serde_json::{Value, json};

use super::{Config, ConfigError, load};

/// A valid config with one client key, upstream and model.
pub(super) fn sample() -> Value {
    json!({
        "server": {"port": 3000},
        "auth": {"mode": "apiKey", "apiKey": "upstream-secret"},
        "apiKeys": [{"id": "team-a", "key": "sk-a", "status": "active"}],
        "upstreams": [{"name": "foundry", "baseUrl": "https://res.openai.azure.com/"}],
        "models": [{"id": "gpt-5-mini", "upstream": "foundry", "targetModel": "gpt-5-mini-dep"}]
    })
}

pub(super) fn load_value(value: Value) -> Result<Config, ConfigError> {
    load(&serde_json::to_vec(&value).expect("serialize"))
}

/// The field paths of the issues `value` has, in the order they are reported.
pub(super) fn issue_paths(value: Value) -> Vec<String> {
    match load_value(value) {
        Ok(_) => vec![],
        Err(err) => err.issues().into_iter().map(|i| i.path).collect(),
    }
}
