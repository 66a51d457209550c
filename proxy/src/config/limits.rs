//! `limits`: where the client keys' windows and budgets are counted (in the process, or in a
//! Redis shared by every replica) and what happens while that Redis cannot be reached.

use super::issues::Checker;
use super::raw::RawLimits;
use super::secret::Secret;

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
    pub fail_mode: FailMode,
    /// Estimate each prompt's tokens before sending (keys with token windows or a budget).
    pub estimate_prompt_tokens: bool,
}

pub(super) fn parse(check: &mut Checker, raw: &RawLimits) -> Limits {
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
    Limits {
        redis: redis.map(Secret::new),
        fail_mode,
        estimate_prompt_tokens: raw.estimate_prompt_tokens,
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
}
