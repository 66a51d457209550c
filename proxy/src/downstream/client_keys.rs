//! Client keys: found in the request headers and matched in constant time against every
//! configured key. Only key ids ever leave this module.

use std::sync::Arc;
use std::time::SystemTime;

use actix_web::http::header::{AUTHORIZATION, HeaderMap};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::{ClientKeyEntry, KeyPolicy};
use crate::errors::ProxyError;

/// A configured key as a digest, so every comparison takes the same time whatever the length.
pub struct ClientKey {
    pub id: Arc<str>,
    pub policy: KeyPolicy,
    digest: [u8; 32],
    active: bool,
}

pub struct ClientKeyTable {
    keys: Vec<ClientKey>,
}

impl ClientKeyTable {
    pub fn new(entries: &[ClientKeyEntry]) -> Self {
        ClientKeyTable {
            keys: entries
                .iter()
                .map(|e| ClientKey {
                    id: Arc::from(e.id.as_str()),
                    policy: e.policy.clone(),
                    digest: Sha256::digest(e.key.expose().as_bytes()).into(),
                    active: e.active,
                })
                .collect(),
        }
    }

    /// The active, unexpired key the request presents.
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<&ClientKey, ProxyError> {
        let presented = presented_key(headers).ok_or(ProxyError::MissingClientKey)?;
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let mut matched: Option<&ClientKey> = None;
        for key in &self.keys {
            // Every key is compared; no early exit reveals which one matched.
            if bool::from(key.digest.ct_eq(&digest)) {
                matched = Some(key);
            }
        }
        match matched {
            Some(key) if !key.active => Err(ProxyError::DisabledClientKey),
            Some(key)
                if key
                    .policy
                    .expires_at
                    .is_some_and(|at| SystemTime::now() >= at) =>
            {
                Err(ProxyError::ExpiredClientKey)
            }
            Some(key) => Ok(key),
            None => Err(ProxyError::InvalidClientKey),
        }
    }
}

/// The key from `Authorization: Bearer`, `api-key` or `x-api-key`, in that order.
fn presented_key(headers: &HeaderMap) -> Option<&str> {
    if let Some(value) = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        let value = value.trim();
        if value.len() > 7 && value[..7].eq_ignore_ascii_case("bearer ") {
            let key = value[7..].trim();
            if !key.is_empty() {
                return Some(key);
            }
        }
    }
    ["api-key", "x-api-key"].into_iter().find_map(|name| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|k| !k.is_empty())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;
    use actix_web::http::header::{HeaderName, HeaderValue};

    fn table() -> ClientKeyTable {
        ClientKeyTable::new(&[
            ClientKeyEntry {
                id: "a".into(),
                key: Secret::new("sk-a"),
                active: true,
                policy: KeyPolicy::default(),
            },
            ClientKeyEntry {
                id: "old".into(),
                key: Secret::new("sk-old"),
                active: true,
                policy: KeyPolicy {
                    expires_at: Some(SystemTime::now() - std::time::Duration::from_secs(1)),
                    ..KeyPolicy::default()
                },
            },
            ClientKeyEntry {
                id: "off".into(),
                key: Secret::new("sk-off"),
                active: false,
                policy: KeyPolicy::default(),
            },
        ])
    }

    fn headers(name: &'static str, value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            HeaderName::from_static(name),
            HeaderValue::from_str(value).expect("value"),
        );
        h
    }

    #[test]
    fn all_three_header_styles_are_accepted() {
        let t = table();
        for (name, value) in [
            ("authorization", "Bearer sk-a"),
            ("authorization", "bearer  sk-a "),
            ("api-key", "sk-a"),
            ("x-api-key", "sk-a"),
        ] {
            assert_eq!(
                &*t.authenticate(&headers(name, value)).expect(value).id,
                "a"
            );
        }
    }

    #[test]
    fn disabled_expired_unknown_and_missing_keys_are_refused() {
        let t = table();
        assert!(matches!(
            t.authenticate(&headers("api-key", "sk-old")),
            Err(ProxyError::ExpiredClientKey)
        ));
        assert!(matches!(
            t.authenticate(&headers("api-key", "sk-off")),
            Err(ProxyError::DisabledClientKey)
        ));
        assert!(matches!(
            t.authenticate(&headers("api-key", "sk-a2")),
            Err(ProxyError::InvalidClientKey)
        ));
        assert!(matches!(
            t.authenticate(&headers("authorization", "Basic x")),
            Err(ProxyError::MissingClientKey)
        ));
    }
}
