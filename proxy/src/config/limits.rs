//! `limits`: where the client keys' windows and budgets are counted (in the process, or in a
//! Redis shared by every replica) and what happens while that Redis cannot be reached.

use std::time::Duration;

use super::auth::{AuthConfig, EntraAuth};
use super::issues::Checker;
use super::raw::RawLimits;
use super::secret::Secret;

/// The token audience of Azure Cache for Redis (and Azure Managed Redis).
pub const REDIS_SCOPE: &str = "https://redis.azure.com/.default";

/// `limits.redisTimeoutMs` when not set: a Redis in the same region answers in about 1 ms.
pub const DEFAULT_REDIS_TIMEOUT_MS: u64 = 250;
const REDIS_TIMEOUT_RANGE_MS: std::ops::RangeInclusive<u64> = 10..=10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailMode {
    /// Keep serving, counting in the process until Redis is back.
    Open,
    /// Refuse requests of keys with limits until Redis is back.
    Closed,
}

#[derive(Debug, Clone)]
pub struct Limits {
    /// `redis://` or `rediss://` URL; it may hold a password, so it is a secret.
    pub redis: Option<Secret>,
    /// `redisAuth: "entra"`: sign in to that Redis with a Microsoft Entra token of the
    /// gateway's `auth` identity, for [`REDIS_SCOPE`].
    pub redis_entra: Option<EntraAuth>,
    pub fail_mode: FailMode,
    /// How long one Redis call may take before Redis counts as unreachable.
    pub redis_timeout: Duration,
    /// Estimate each prompt's tokens before sending (keys with token windows or a budget).
    pub estimate_prompt_tokens: bool,
}

pub(super) fn parse(check: &mut Checker, raw: &RawLimits, auth: &AuthConfig) -> Limits {
    let redis = raw
        .redis
        .as_deref()
        .map(str::trim)
        .filter(|u| !u.is_empty());
    if let Some(url) = redis {
        if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
            check.fail("limits.redis", "must start with redis:// or rediss://");
        } else if redis::IntoConnectionInfo::into_connection_info(url).is_err() {
            // The URL is not quoted: it may hold a password.
            check.fail(
                "limits.redis",
                "is not a valid Redis URL: redis[s]://[[user]:password@]host[:port][/db]",
            );
        }
    }
    let redis_entra = match raw.redis_auth.as_deref() {
        None | Some("password") => None,
        Some("entra") => entra_for_redis(check, redis, auth),
        Some(other) => {
            check.fail(
                "limits.redisAuth",
                format!(
                    "must be \"password\" or \"entra\", got \"{}\"",
                    crate::downstream::bounded::bounded(other, 40)
                ),
            );
            None
        }
    };
    let fail_mode = match raw.fail_mode.as_str() {
        "open" => FailMode::Open,
        "closed" => FailMode::Closed,
        other => {
            check.fail(
                "limits.failMode",
                format!("must be \"open\" or \"closed\", got \"{other}\""),
            );
            FailMode::Open
        }
    };
    let redis_timeout_ms = raw.redis_timeout_ms.unwrap_or(DEFAULT_REDIS_TIMEOUT_MS);
    if !REDIS_TIMEOUT_RANGE_MS.contains(&redis_timeout_ms) {
        check.fail(
            "limits.redisTimeoutMs",
            format!(
                "must be between {} and {} ms",
                REDIS_TIMEOUT_RANGE_MS.start(),
                REDIS_TIMEOUT_RANGE_MS.end()
            ),
        );
    }
    Limits {
        redis: redis.map(Secret::new),
        redis_entra,
        fail_mode,
        redis_timeout: Duration::from_millis(redis_timeout_ms),
        estimate_prompt_tokens: raw.estimate_prompt_tokens,
    }
}

/// The gateway's Entra identity, asking for a Redis token; the URL names the user (the
/// identity's object id) or leaves it to the token, and holds no password.
fn entra_for_redis(check: &mut Checker, url: Option<&str>, auth: &AuthConfig) -> Option<EntraAuth> {
    let Some(url) = url else {
        check.fail("limits.redisAuth", "\"entra\" needs limits.redis");
        return None;
    };
    if let Ok(info) = redis::IntoConnectionInfo::into_connection_info(url)
        && info.redis.password.is_some()
    {
        check.fail(
            "limits.redis",
            "holds a password, but limits.redisAuth is \"entra\": a token is the password",
        );
    }
    match auth {
        AuthConfig::Entra(entra) => Some(EntraAuth {
            scope: REDIS_SCOPE.to_string(),
            ..entra.clone()
        }),
        AuthConfig::ApiKey { .. } => {
            check.fail(
                "limits.redisAuth",
                "\"entra\" signs in with the gateway's Entra ID identity; auth.mode is \"apiKey\"",
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{issue_paths, load_value, sample};
    use super::*;
    use serde_json::json;

    #[test]
    fn counting_is_in_process_and_open_by_default() {
        let config = load_value(sample()).expect("valid");
        assert!(config.limits.redis.is_none());
        assert_eq!(config.limits.fail_mode, FailMode::Open);
        let written = serde_json::to_value(&config.raw).expect("json");
        assert!(written.get("limits").is_none(), "{written}");
    }

    #[test]
    fn redis_url_and_fail_mode_are_checked() {
        let mut v = sample();
        v["limits"] = json!({"redis": "http://cache:6379", "failMode": "maybe"});
        assert_eq!(issue_paths(v), vec!["limits.redis", "limits.failMode"]);
        let mut v = sample();
        v["limits"] = json!({"redis": "redis://:p@cache:notaport"});
        assert_eq!(issue_paths(v), vec!["limits.redis"]);
        let mut v = sample();
        v["limits"] = json!({"redis": "rediss://:secret@cache.redis.cache.windows.net:6380", "failMode": "closed"});
        let config = load_value(v).expect("valid");
        assert_eq!(config.limits.fail_mode, FailMode::Closed);
        assert!(!format!("{:?}", config.limits).contains("secret@"));
    }

    #[test]
    fn the_redis_timeout_defaults_to_250_ms_and_is_bounded() {
        let config = load_value(sample()).expect("valid");
        assert_eq!(config.limits.redis_timeout, Duration::from_millis(250));
        for bad in [0, 9, 10_001] {
            let mut v = sample();
            v["limits"] = json!({"redisTimeoutMs": bad});
            assert_eq!(issue_paths(v), vec!["limits.redisTimeoutMs"], "{bad}");
        }
        let mut v = sample();
        v["limits"] = json!({"redis": "redis://cache:6379", "redisTimeoutMs": 1000});
        let config = load_value(v).expect("valid");
        assert_eq!(config.limits.redis_timeout, Duration::from_secs(1));
    }

    #[test]
    fn entra_for_redis_takes_the_gateways_identity_with_the_redis_scope() {
        let mut v = sample();
        v["auth"] = json!({"mode": "managedIdentity"});
        v["limits"] = json!({"redis": "rediss://0000-oid@cache.redis.cache.windows.net:6380", "redisAuth": "entra"});
        let config = load_value(v).expect("valid");
        let entra = config.limits.redis_entra.expect("entra");
        assert_eq!(entra.scope, REDIS_SCOPE);

        let mut v = sample();
        v["auth"] = json!({"mode": "apiKey", "apiKey": "k"});
        v["limits"] = json!({"redis": "rediss://:pw@cache:6380", "redisAuth": "entra"});
        assert_eq!(issue_paths(v), vec!["limits.redis", "limits.redisAuth"]);
        let mut v = sample();
        v["limits"] = json!({"redisAuth": "token"});
        assert_eq!(issue_paths(v), vec!["limits.redisAuth"]);
    }
}
