//! config.json bytes through `proxy::config::load`: never panics; a config that loads, written
//! back from its raw form (as control writes it), loads again to the same config; and a
//! refused config's error never repeats a secret of the file.
#![no_main]

use libfuzzer_sys::fuzz_target;
use proxy::fuzzing::load_config;
use serde_json::Value;

/// Keys whose string values are secrets, wherever they appear.
const SECRET_KEYS: [&str; 4] = ["clientSecret", "apiKey", "password", "key"];

/// Secret values of the document, and every other string in it (keys included).
fn strings(value: &Value, secret: bool, secrets: &mut Vec<String>, others: &mut Vec<String>) {
    match value {
        Value::String(s) if secret => secrets.push(s.clone()),
        Value::String(s) => others.push(s.clone()),
        Value::Array(items) => items
            .iter()
            .for_each(|v| strings(v, false, secrets, others)),
        Value::Object(map) => {
            for (k, v) in map {
                others.push(k.clone());
                strings(v, SECRET_KEYS.contains(&k.as_str()), secrets, others);
            }
        }
        _ => {}
    }
}

/// The lines of `value`'s pretty debug form, sorted.
fn lines(value: &impl std::fmt::Debug) -> Vec<String> {
    let mut lines: Vec<String> = format!("{value:#?}").lines().map(str::to_string).collect();
    lines.sort();
    lines
}

fuzz_target!(|data: &[u8]| {
    match load_config(data) {
        Ok(config) => {
            let written = serde_json::to_vec_pretty(&config.raw).expect("raw config serialises");
            let again = load_config(&written).unwrap_or_else(|err| {
                panic!(
                    "a loaded config written back does not load: {err}\n{}",
                    String::from_utf8_lossy(&written)
                )
            });
            assert_eq!(
                format!("{:?}", config.server),
                format!("{:?}", again.server)
            );
            assert_eq!(format!("{:?}", config.auth), format!("{:?}", again.auth));
            assert_eq!(
                format!("{:?}", config.client_keys),
                format!("{:?}", again.client_keys)
            );
            // Routes are hash maps, printed in no fixed order: compare their lines as sets.
            assert_eq!(lines(&config.upstreams), lines(&again.upstreams));
            assert_eq!(lines(&config.models), lines(&again.models));
            assert_eq!(config.ignored, again.ignored);
            let raw = serde_json::to_value(&config.raw).expect("raw");
            let raw_again = serde_json::to_value(&again.raw).expect("raw");
            assert_eq!(raw, raw_again);
        }
        Err(err) => {
            let Ok(document) = serde_json::from_slice::<Value>(data) else {
                return;
            };
            let (mut secrets, mut others) = (Vec::new(), Vec::new());
            strings(&document, false, &mut secrets, &mut others);
            let message = format!("{err} {err:?}");
            for secret in secrets.iter().filter(|s| s.len() >= 6) {
                // A secret that is also written elsewhere may be quoted from there.
                if others.iter().any(|o| o.contains(secret.as_str())) {
                    continue;
                }
                assert!(
                    !message.contains(secret.as_str()),
                    "the error repeats the secret {secret:?}: {message}"
                );
            }
        }
    }
});
