//! When and how long to wait before trying an upstream call again: exponential backoff with
//! jitter, and the upstream's own `retry-after-ms` / `retry-after` when it gives one.

use std::time::{Duration, SystemTime};

use actix_web::http::header::HeaderMap;
use rand::Rng;

use crate::config::UpstreamSettings;

/// Backoff before retry number `attempt` (0-based): base·2^attempt capped at max, then a random
/// point in its upper half so that clients retrying together spread out.
pub fn backoff(attempt: u32, settings: &UpstreamSettings) -> Duration {
    let base = settings.retry_base.as_millis() as u64;
    let max = settings.retry_max.as_millis() as u64;
    let full = base.saturating_mul(1u64 << attempt.min(20)).min(max);
    let jittered = if full < 2 {
        full
    } else {
        rand::rng().random_range(full / 2..=full)
    };
    Duration::from_millis(jittered)
}

/// The wait the upstream asked for, if any.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    if let Some(ms) = text("retry-after-ms").and_then(|v| v.parse::<f64>().ok())
        && ms.is_finite()
        && ms >= 0.0
    {
        return Some(Duration::from_millis(ms as u64));
    }
    let value = text("retry-after")?;
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(
        at.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// What to do with a response whose status may be retried.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    RetryAfter(Duration),
    PassThrough,
}

pub fn decide(
    attempt: u32,
    status: u16,
    headers: &HeaderMap,
    settings: &UpstreamSettings,
) -> Decision {
    if attempt >= settings.max_retries || !settings.retry_statuses.contains(&status) {
        return Decision::PassThrough;
    }
    match retry_after(headers) {
        Some(wait) if wait > settings.retry_max => Decision::PassThrough,
        Some(wait) => Decision::RetryAfter(wait),
        None => Decision::RetryAfter(backoff(attempt, settings)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::{HeaderName, HeaderValue};

    fn settings(max_retries: u32) -> UpstreamSettings {
        let mut s = crate::config::load(b"{}")
            .expect("defaults")
            .server
            .upstream;
        s.max_retries = max_retries;
        s
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
    fn backoff_grows_and_stays_under_max() {
        let s = settings(3);
        for attempt in 0..10 {
            let d = backoff(attempt, &s);
            let full = (800u64 << attempt).min(8000);
            assert!(
                d.as_millis() as u64 >= full / 2 && d.as_millis() as u64 <= full,
                "{attempt}: {d:?}"
            );
        }
    }

    #[test]
    fn retry_after_ms_wins_over_retry_after() {
        let mut h = headers("retry-after-ms", "250");
        h.insert(
            HeaderName::from_static("retry-after"),
            HeaderValue::from_static("9"),
        );
        assert_eq!(retry_after(&h), Some(Duration::from_millis(250)));
        assert_eq!(
            retry_after(&headers("retry-after", "2")),
            Some(Duration::from_secs(2))
        );
        let date = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(30));
        let wait = retry_after(&headers("retry-after", &date)).expect("date");
        assert!(wait > Duration::from_secs(25) && wait <= Duration::from_secs(30));
    }

    #[test]
    fn a_wait_longer_than_retry_max_passes_the_response_through() {
        let s = settings(2);
        assert_eq!(
            decide(0, 429, &headers("retry-after", "60"), &s),
            Decision::PassThrough
        );
        assert_eq!(
            decide(0, 429, &headers("retry-after-ms", "10"), &s),
            Decision::RetryAfter(Duration::from_millis(10))
        );
    }

    #[test]
    fn only_listed_statuses_and_remaining_attempts_retry() {
        let s = settings(1);
        assert_eq!(decide(0, 400, &HeaderMap::new(), &s), Decision::PassThrough);
        assert!(matches!(
            decide(0, 503, &HeaderMap::new(), &s),
            Decision::RetryAfter(_)
        ));
        assert_eq!(decide(1, 503, &HeaderMap::new(), &s), Decision::PassThrough);
    }
}
