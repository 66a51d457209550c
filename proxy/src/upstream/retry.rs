//! How long to wait: exponential backoff with jitter before a retry, and the time an upstream's
//! 429 asks for (`retry-after-ms`, `retry-after`, the rate-limit reset headers).

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

/// How long a 429 leaves its deployment out: the upstream's `retry-after-ms` or `retry-after`,
/// else its `x-ratelimit-reset-requests` / `-tokens` (the exhausted one's, the longer if both
/// or neither say `remaining: 0`), else `None`.
pub fn throttled_for(headers: &HeaderMap) -> Option<Duration> {
    if let Some(wait) = retry_after(headers) {
        return Some(wait);
    }
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    let resets: Vec<(Duration, bool)> = ["requests", "tokens"]
        .iter()
        .filter_map(|kind| {
            let reset = go_duration(text(&format!("x-ratelimit-reset-{kind}"))?)?;
            let exhausted = text(&format!("x-ratelimit-remaining-{kind}")) == Some("0");
            Some((reset, exhausted))
        })
        .collect();
    let exhausted = resets.iter().filter(|(_, e)| *e).map(|(d, _)| *d).max();
    exhausted.or_else(|| resets.iter().map(|(d, _)| *d).max())
}

/// A duration as OpenAI's rate-limit headers write it (`"20ms"`, `"6m0s"`, `"1.5s"`), or a bare
/// number of seconds.
fn go_duration(text: &str) -> Option<Duration> {
    if let Ok(secs) = text.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs));
    }
    let mut total = 0f64;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .filter(|&n| n > 0)?;
        let value: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 0.001,
            "us" | "µs" => 0.000_001,
            "ns" => 0.000_000_001,
            _ => return None,
        };
        total += value * scale;
        rest = &rest[unit_len..];
    }
    (total.is_finite() && total <= 86_400.0 * 365.0).then(|| Duration::from_secs_f64(total))
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
    fn throttled_for_reads_retry_headers_then_rate_limit_resets() {
        assert_eq!(
            throttled_for(&headers("retry-after-ms", "1500")),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(
            throttled_for(&headers("x-ratelimit-reset-requests", "1m30.5s")),
            Some(Duration::from_millis(90_500))
        );
        let mut h = headers("x-ratelimit-reset-requests", "20ms");
        for (name, value) in [
            ("x-ratelimit-reset-tokens", "6m0s"),
            ("x-ratelimit-remaining-requests", "0"),
            ("x-ratelimit-remaining-tokens", "1200"),
        ] {
            h.insert(
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        }
        assert_eq!(throttled_for(&h), Some(Duration::from_millis(20)));
        h.remove("x-ratelimit-remaining-requests");
        assert_eq!(throttled_for(&h), Some(Duration::from_secs(360)));
        assert_eq!(
            throttled_for(&headers("x-ratelimit-reset-tokens", "soon")),
            None
        );
        assert_eq!(throttled_for(&HeaderMap::new()), None);
    }
}
