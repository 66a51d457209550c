//! Usage statistics per model and per client key: requests, errors by class, cancellations,
//! tokens and latency. Kept in memory, served as JSON and Prometheus text, and snapshotted to
//! `stats.json` so that counters survive restarts. Never holds its lock across I/O.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::encoding::EncodeMetric;
use prometheus_client::metrics::counter::ConstCounter;
use serde::Serialize;

use crate::downstream::limits::local::BudgetUsage;
use crate::ops::contract::{Counters, StatsData};
use crate::ops::metrics;

use crate::process::atomic_file::{remove_stale_temporaries, write_atomically};
use crate::process::clock::now_ms;
use crate::process::regular_file::{FileError, read_regular_file};
use crate::relay::usage::Usage;

/// Why a request did not succeed. Upstream statuses are split from failures of our own making.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    Unauthorized,
    /// The key may not use the model.
    Forbidden,
    /// Refused by the key's own limits or budget.
    KeyLimited,
    BadRequest,
    NotConfigured,
    Upstream4xx,
    Upstream5xx,
    Unreachable,
    Timeout,
    UpstreamAuth,
    StreamInterrupted,
    /// Every deployment of the model was cooling after 429s.
    RateLimited,
    /// No deployment of the model could take the request (open circuits).
    Unavailable,
    /// Refused because the gateway was at a capacity limit (request bodies in memory).
    Busy,
}

impl ErrorClass {
    /// Every class, in declaration order (`index` is the position here).
    pub const ALL: [ErrorClass; 14] = [
        ErrorClass::Unauthorized,
        ErrorClass::Forbidden,
        ErrorClass::KeyLimited,
        ErrorClass::BadRequest,
        ErrorClass::NotConfigured,
        ErrorClass::Upstream4xx,
        ErrorClass::Upstream5xx,
        ErrorClass::Unreachable,
        ErrorClass::Timeout,
        ErrorClass::UpstreamAuth,
        ErrorClass::StreamInterrupted,
        ErrorClass::RateLimited,
        ErrorClass::Unavailable,
        ErrorClass::Busy,
    ];

    pub fn index(self) -> usize {
        self as usize
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Unauthorized => "unauthorized",
            ErrorClass::Forbidden => "forbidden",
            ErrorClass::KeyLimited => "key_limited",
            ErrorClass::BadRequest => "bad_request",
            ErrorClass::NotConfigured => "not_configured",
            ErrorClass::Upstream4xx => "upstream_4xx",
            ErrorClass::Upstream5xx => "upstream_5xx",
            ErrorClass::Unreachable => "unreachable",
            ErrorClass::Timeout => "timeout",
            ErrorClass::UpstreamAuth => "upstream_auth",
            ErrorClass::StreamInterrupted => "stream_interrupted",
            ErrorClass::RateLimited => "rate_limited",
            ErrorClass::Unavailable => "unavailable",
            ErrorClass::Busy => "busy",
        }
    }
}

/// Upper bounds (ms) of the latency histogram buckets; the last bucket is unbounded.
pub const LATENCY_BUCKETS_MS: [u64; 12] = [
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000, 60_000, 120_000, 300_000,
];

/// Adds one finished request to `counters`.
fn count(counters: &mut Counters, outcome: &Outcome, usage: Option<Usage>, latency: Duration) {
    counters.requests += 1;
    match outcome {
        Outcome::Succeeded => counters.succeeded += 1,
        Outcome::Failed(class) => {
            *counters
                .errors
                .entry(class.as_str().to_string())
                .or_default() += 1
        }
        Outcome::Cancelled => counters.cancelled += 1,
    }
    if let Some(u) = usage {
        counters.prompt_tokens += u.prompt_tokens;
        counters.completion_tokens += u.completion_tokens;
        counters.total_tokens += u.total_tokens;
        counters.cached_tokens += u.cached_tokens;
    }
    let ms = u64::try_from(latency.as_millis()).unwrap_or(u64::MAX);
    counters.latency_ms_sum = counters.latency_ms_sum.saturating_add(ms);
    counters.latency_ms_max = counters.latency_ms_max.max(ms);
    if counters.latency_buckets.len() != LATENCY_BUCKETS_MS.len() + 1 {
        counters
            .latency_buckets
            .resize(LATENCY_BUCKETS_MS.len() + 1, 0);
    }
    let bucket = LATENCY_BUCKETS_MS
        .iter()
        .position(|bound| ms <= *bound)
        .unwrap_or(LATENCY_BUCKETS_MS.len());
    counters.latency_buckets[bucket] += 1;
}

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Succeeded,
    Failed(ErrorClass),
    /// The downstream client went away before the response was complete.
    Cancelled,
}

/// The largest stats.json read at start: far above what thousands of keys and models need.
const STATS_FILE_LIMIT: usize = 64 * 1024 * 1024;

pub struct Stats {
    data: Mutex<StatsData>,
    dirty: AtomicBool,
    path: Option<PathBuf>,
}

impl Stats {
    /// Counters loaded from `path` when it holds a snapshot, else fresh ones. Temporary files of
    /// snapshots a kill interrupted are removed.
    pub fn load(path: Option<PathBuf>) -> Stats {
        if let Some(path) = &path {
            remove_stale_temporaries(path);
        }
        let data = path
            .as_deref()
            .and_then(|p| match read_regular_file(p, STATS_FILE_LIMIT) {
                Ok(bytes) => match serde_json::from_slice::<StatsData>(&bytes) {
                    Ok(data) => Some(data),
                    Err(err) => {
                        tracing::warn!(path = %p.display(), error = %err, "stats snapshot unreadable; starting from zero");
                        None
                    }
                },
                Err(FileError::Missing) => None,
                Err(err) => {
                    tracing::warn!(path = %p.display(), error = %err, "stats snapshot unreadable; starting from zero");
                    None
                }
            })
            .unwrap_or_else(|| StatsData {
                since_ms: now_ms(),
                ..StatsData::default()
            });
        Stats {
            data: Mutex::new(data),
            dirty: AtomicBool::new(false),
            path,
        }
    }

    pub fn record(
        &self,
        model: Option<&str>,
        key_id: Option<&str>,
        outcome: Outcome,
        usage: Option<Usage>,
        latency: Duration,
    ) {
        let mut data = self.data.lock().unwrap_or_else(|e| e.into_inner());
        count(&mut data.total, &outcome, usage, latency);
        if let Some(model) = model {
            bump(&mut data.by_model, model, &outcome, usage, latency);
        }
        if let Some(key_id) = key_id {
            bump(&mut data.by_key, key_id, &outcome, usage, latency);
        }
        drop(data);
        self.dirty.store(true, Ordering::Relaxed);
    }

    /// Replaces the budget use kept in stats.json (marked for writing when it changed).
    pub fn set_budgets(&self, budgets: BTreeMap<String, BudgetUsage>) {
        let mut data = self.data.lock().unwrap_or_else(|e| e.into_inner());
        if data.budgets != budgets {
            data.budgets = budgets;
            self.dirty.store(true, Ordering::Relaxed);
        }
    }

    pub fn snapshot(&self) -> StatsData {
        self.data.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Writes the counters to their file if they changed since the last write. Blocking I/O:
    /// call from a blocking thread.
    pub fn persist(&self) -> anyhow::Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        if !self.dirty.swap(false, Ordering::Relaxed) {
            return Ok(());
        }
        let bytes = serde_json::to_vec_pretty(&self.snapshot()).context("serialising stats")?;
        write_atomically(path, &bytes).inspect_err(|_| self.dirty.store(true, Ordering::Relaxed))
    }

    /// Encodes the counters for `/metrics`: per model and per client key, requests, errors by
    /// class, cancellations and tokens. (The latency histograms come from the usage history.)
    pub fn encode_metrics(&self, encoder: &mut DescriptorEncoder) -> fmt::Result {
        let data = self.snapshot();
        let groups = [("model", &data.by_model), ("key_id", &data.by_key)];
        let each = || {
            groups.into_iter().flat_map(|(label, map)| {
                map.iter()
                    .map(move |(name, counters)| ((label, name.as_str()), counters))
            })
        };
        let mut requests = metrics::counter(encoder, "gateway_requests", "Requests handled")?;
        for (owner, c) in each() {
            metrics::labelled(&mut requests, &[owner], c.requests)?;
        }
        let mut errors = metrics::counter(encoder, "gateway_errors", "Failed requests by class")?;
        for (owner, c) in each() {
            for (class, n) in &c.errors {
                metrics::labelled(&mut errors, &[owner, ("class", class.as_str())], *n)?;
            }
        }
        let mut cancelled = metrics::counter(
            encoder,
            "gateway_cancelled",
            "Requests the client abandoned",
        )?;
        for (owner, c) in each() {
            metrics::labelled(&mut cancelled, &[owner], c.cancelled)?;
        }
        let mut tokens =
            metrics::counter(encoder, "gateway_tokens", "Tokens reported by the upstream")?;
        for (owner, c) in each() {
            for (kind, n) in [
                ("prompt", c.prompt_tokens),
                ("completion", c.completion_tokens),
                ("total", c.total_tokens),
                ("cached", c.cached_tokens),
            ] {
                metrics::labelled(&mut tokens, &[owner, ("kind", kind)], n)?;
            }
        }
        let all = metrics::counter(
            encoder,
            "gateway_all_requests",
            "Every request, refused ones included",
        )?;
        ConstCounter::new(data.total.requests).encode(all)?;
        let mut all_errors = metrics::counter(
            encoder,
            "gateway_all_errors",
            "Every failed request by class, refused ones included",
        )?;
        for (class, n) in &data.total.errors {
            metrics::labelled(&mut all_errors, &[("class", class.as_str())], *n)?;
        }
        Ok(())
    }
}

/// Adds to the counters of `name`, allocating its key only the first time it is seen.
fn bump(
    map: &mut BTreeMap<String, Counters>,
    name: &str,
    outcome: &Outcome,
    usage: Option<Usage>,
    latency: Duration,
) {
    if let Some(counters) = map.get_mut(name) {
        count(counters, outcome, usage, latency);
    } else {
        let mut counters = Counters::default();
        count(&mut counters, outcome, usage, latency);
        map.insert(name.to_string(), counters);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(total: u64) -> Option<Usage> {
        Some(Usage {
            prompt_tokens: total - 1,
            completion_tokens: 1,
            total_tokens: total,
            cached_tokens: 0,
            reasoning_tokens: 0,
        })
    }

    #[test]
    fn every_class_sits_at_its_index() {
        for (i, class) in ErrorClass::ALL.iter().enumerate() {
            assert_eq!(class.index(), i, "{}", class.as_str());
        }
    }

    #[test]
    fn counts_per_model_and_key() {
        let stats = Stats::load(None);
        stats.record(
            Some("m"),
            Some("k"),
            Outcome::Succeeded,
            usage(10),
            Duration::from_millis(30),
        );
        stats.record(
            Some("m"),
            Some("k2"),
            Outcome::Failed(ErrorClass::Upstream5xx),
            None,
            Duration::from_millis(700),
        );
        stats.record(
            Some("m"),
            Some("k"),
            Outcome::Cancelled,
            None,
            Duration::from_secs(1),
        );
        let data = stats.snapshot();
        let m = &data.by_model["m"];
        assert_eq!(
            (m.requests, m.succeeded, m.cancelled, m.error_total()),
            (3, 1, 1, 1)
        );
        assert_eq!(m.total_tokens, 10);
        assert_eq!(data.by_key["k"].requests, 2);
        assert_eq!(data.by_key["k2"].errors["upstream_5xx"], 1);
        assert_eq!(m.latency_buckets[0], 1);
    }

    #[test]
    fn snapshot_survives_a_restart() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("stats.json");
        let stats = Stats::load(Some(path.clone()));
        stats.record(
            Some("m"),
            Some("k"),
            Outcome::Succeeded,
            usage(5),
            Duration::from_millis(3),
        );
        stats.persist().expect("persist");
        let again = Stats::load(Some(path));
        assert_eq!(again.snapshot().by_model["m"].total_tokens, 5);
        assert_eq!(again.snapshot().since_ms, stats.snapshot().since_ms);
    }

    #[test]
    fn a_stats_file_that_is_no_regular_file_starts_from_zero_without_blocking() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("stats.json");
        let made = std::process::Command::new("mkfifo")
            .arg(&path)
            .status()
            .expect("mkfifo runs");
        assert!(made.success());
        // A blocked read would hang the test; it must return at once.
        let stats = Stats::load(Some(path));
        assert_eq!(stats.snapshot().total.requests, 0);
    }

    #[test]
    fn prometheus_text_has_the_counters() {
        let stats = Stats::load(None);
        stats.record(
            Some("m\"x"),
            Some("k"),
            Outcome::Succeeded,
            usage(4),
            Duration::from_millis(60),
        );
        let text = metrics::render_with(move |encoder| stats.encode_metrics(encoder));
        assert!(
            text.contains("gateway_requests_total{model=\"m\\\"x\"} 1"),
            "{text}"
        );
        assert!(text.contains("gateway_tokens_total{key_id=\"k\",kind=\"total\"} 4"));
        assert!(text.starts_with(
            "# HELP gateway_requests_total Requests handled\n# TYPE gateway_requests_total counter\n"
        ));
    }

    #[test]
    fn requests_outside_any_model_or_key_count_in_the_all_metrics() {
        let stats = Stats::load(None);
        stats.record(
            Some("m"),
            Some("k"),
            Outcome::Succeeded,
            None,
            Duration::ZERO,
        );
        let refused = Outcome::Failed(ErrorClass::Unauthorized);
        stats.record(None, None, refused, None, Duration::ZERO);
        let text = metrics::render_with(move |encoder| stats.encode_metrics(encoder));
        assert!(text.contains("\ngateway_all_requests_total 2\n"), "{text}");
        assert!(text.contains("\ngateway_all_errors_total{class=\"unauthorized\"} 1\n"));
        assert!(text.contains("gateway_requests_total{model=\"m\"} 1\n"));
        assert!(!text.contains("class=\"unauthorized\"} 1\ngateway_errors"));
    }
}
