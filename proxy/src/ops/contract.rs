//! The ops listener's wire format, shared with control: every body the listener serves and the
//! query of its recent-requests endpoint. The proxy serialises these types and control
//! deserialises the same ones, so a field renamed or added changes both sides at once
//! (`tests/api/ops_contract.rs` round-trips every endpoint through them). None of them holds a
//! secret or request content.

use std::collections::BTreeMap;
use std::fmt::Display;
use std::str::FromStr;
use std::time::SystemTime;

use serde::{Deserialize, Deserializer, Serialize};

use crate::config::{ConfigIssue, RouteKey};
use crate::downstream::limits::local::BudgetUsage;
use crate::relay::usage::Usage;

/// `GET /status`: the running proxy and the config it serves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub version: String,
    pub uptime_s: u64,
    pub config: ConfigStatus,
    pub models: usize,
    pub upstreams: usize,
    pub client_keys: usize,
    /// Bytes of request bodies held in memory right now (being read or sent upstream).
    pub body_bytes_in_flight: u64,
    /// The most they may hold at once (`BODY_MEMORY_LIMIT`).
    pub body_memory_limit: u64,
    /// Where the client keys' windows and budgets are counted.
    #[serde(default)]
    pub limits: LimitsStatus,
}

/// Where the client keys' windows and budgets are counted, and whether that store answers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LimitsStatus {
    /// `process` without `limits.redis`, `redis` with it.
    pub store: LimitsStore,
    /// Whether that Redis answers (null without one). While it does not, the limits are
    /// counted in the process (`fail_mode` open) or keys with limits are refused (closed).
    pub redis_reachable: Option<bool>,
    /// Unix ms since which the store and its reachability are what they are.
    pub since_ms: u64,
    pub fail_mode: LimitsFailMode,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LimitsStore {
    #[default]
    Process,
    Redis,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LimitsFailMode {
    #[default]
    Open,
    Closed,
}

/// What the proxy reports about its config file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConfigStatus {
    pub path: String,
    /// How many configs have been applied since start (1 = the one loaded at start).
    pub generation: u64,
    pub loaded_at_ms: u64,
    pub sha256: String,
    /// Set while the file on disk is invalid and an older config is serving.
    pub rejected: Option<RejectedConfig>,
    pub ignored_keys: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RejectedConfig {
    pub at_ms: u64,
    pub sha256: String,
    pub issues: Vec<ConfigIssue>,
}

/// `GET /stats`: the usage counters, with the image compressor's under `images`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpsStats {
    #[serde(flatten)]
    pub usage: StatsData,
    pub images: ImageStatsData,
    /// Every deployment of the serving config's pools, with its state and counters.
    pub deployments: Vec<DeploymentStats>,
}

/// One deployment (an upstream's deployment name, which several models may share): where it
/// stands now and what it did since the proxy started.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeploymentStats {
    pub upstream: String,
    pub deployment: String,
    /// The model ids whose pools hold it.
    pub models: Vec<String>,
    pub state: DeploymentState,
    /// Unix time (ms) a cooling deployment comes back or an open circuit lets a trial through.
    pub until_ms: Option<u64>,
    /// Failures in a row since its last success.
    pub consecutive_failures: u32,
    /// Attempts sent to it.
    pub requests: u64,
    /// Answers passed to the client (any status the pool does not fail over on).
    pub succeeded: u64,
    /// 429 answers.
    pub throttled: u64,
    /// Failed attempts by class (`unreachable`, `timeout`, `upstream_5xx`, `upstream_auth`,
    /// `upstream_4xx` for 408 and 409).
    pub failures: BTreeMap<String, u64>,
    /// Requests that moved on from it to another deployment.
    pub failovers_out: u64,
    /// Time it spent cooling after 429s, in total.
    pub cooling_ms: u64,
    /// Time to the response head of its answers counted in `succeeded` and `throttled` (the
    /// average is `ttfb_ms_sum / (succeeded + throttled)`).
    pub ttfb_ms_sum: u64,
    pub ttfb_ms_max: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeploymentState {
    Available,
    /// Left out after a 429 until `until_ms`.
    Cooling,
    /// Left out after failures in a row until `until_ms`.
    CircuitOpen,
    /// Its circuit's wait is over: the next request is a trial.
    HalfOpen,
}

impl DeploymentState {
    pub const ALL: [DeploymentState; 4] = [
        DeploymentState::Available,
        DeploymentState::Cooling,
        DeploymentState::CircuitOpen,
        DeploymentState::HalfOpen,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DeploymentState::Available => "available",
            DeploymentState::Cooling => "cooling",
            DeploymentState::CircuitOpen => "circuit_open",
            DeploymentState::HalfOpen => "half_open",
        }
    }
}

/// The usage counters; also the content of `stats.json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StatsData {
    /// Unix time (ms) the counters were first started; kept across restarts.
    pub since_ms: u64,
    pub total: Counters,
    pub by_model: BTreeMap<String, Counters>,
    pub by_key: BTreeMap<String, Counters>,
    /// Token budget use per key id in its current period (keys with a `budget`).
    pub budgets: BTreeMap<String, BudgetUsage>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Counters {
    pub requests: u64,
    pub succeeded: u64,
    /// Failed requests by error class (`ErrorClass::as_str`).
    pub errors: BTreeMap<String, u64>,
    pub cancelled: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
    pub cached_tokens: u64,
    pub latency_ms_sum: u64,
    pub latency_ms_max: u64,
    /// Counts per bucket of `LATENCY_BUCKETS_MS`, plus one for slower requests.
    pub latency_buckets: Vec<u64>,
}

impl Counters {
    pub fn error_total(&self) -> u64 {
        self.errors.values().sum()
    }
}

/// The image compressor's counters, since the process started.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageStatsData {
    /// Unix time (ms) the counters started (process start).
    pub since_ms: u64,
    /// Requests whose body held at least one inline image.
    pub requests: u64,
    /// Inline images found (every occurrence, duplicates included).
    pub seen: u64,
    /// Images replaced by a smaller re-encoding.
    pub compressed: u64,
    /// Images forwarded as they came, by reason (`SkipReason::as_str`).
    pub skipped: BTreeMap<String, u64>,
    /// Occurrences that reused the result of an identical image in the same request.
    pub duplicates: u64,
    /// Decoded image bytes as received, and as forwarded.
    pub bytes_before: u64,
    pub bytes_after: u64,
    /// Worker time spent decoding, resizing and encoding.
    pub work_ms: u64,
    /// Wall-clock time added to requests with images, in total and at most.
    pub delay_ms: u64,
    pub delay_ms_max: u64,
    /// Requests forwarded unexamined because the worker queue was full.
    pub busy_requests: u64,
}

/// `GET /limits`: every client key with limits, and where it stands against each of them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LimitsPage {
    pub keys: Vec<KeyLimitsUsage>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyLimitsUsage {
    pub key_id: String,
    pub windows: Vec<WindowUsage>,
    pub budget: Option<BudgetUsageView>,
    /// Unix ms after which the key is refused.
    pub expires_at_ms: Option<u64>,
}

/// One window of a key, in its current span.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowUsage {
    /// `requests` or `tokens`.
    pub metered: String,
    pub limit: u64,
    pub per_s: u64,
    pub used: u64,
    /// Unix ms the current span ends.
    pub reset_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BudgetUsageView {
    pub tokens: u64,
    /// `day` or `month`.
    pub per: String,
    pub used: u64,
    /// Unix ms the current period started (the last reset, if later) and ends.
    pub since_ms: u64,
    pub reset_ms: u64,
}

/// `GET /requests`: matching recent requests, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecentPage {
    pub data: Vec<RecentEntry>,
}

/// One finished request as the recent-requests record keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecentEntry {
    /// Unix time in ms when the request arrived.
    pub time_ms: u64,
    /// The same moment in RFC 3339, formatted only when the entry is served.
    #[serde(rename = "time", with = "rfc3339_millis")]
    pub arrived: SystemTime,
    pub request_id: String,
    pub upstream_request_id: Option<String>,
    pub key_id: Option<String>,
    pub model: Option<String>,
    /// The model the client asked for (bounded), when it is not a configured one the key may
    /// use, so `model` is unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_model: Option<String>,
    pub deployment: Option<String>,
    pub upstream: Option<String>,
    #[serde(with = "route_key")]
    pub route: RouteKey,
    pub stream: bool,
    pub status: u16,
    pub latency_ms: u64,
    pub ttfb_ms: Option<u64>,
    pub usage: Option<Usage>,
    pub outcome: RecentOutcome,
    /// Why the request failed, for operators (no secrets).
    pub error: Option<String>,
    /// Every upstream attempt, in order: the deployment, what came of it and when.
    #[serde(default)]
    pub attempts: Vec<RecentAttempt>,
}

/// One attempt of a request at one deployment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecentAttempt {
    /// `<upstream>/<deployment>`.
    pub deployment: String,
    /// `answered` (passed to the client), `throttled` (429), or the failure class.
    pub outcome: String,
    /// The upstream's status, when it answered.
    pub status: Option<u16>,
    /// When the attempt started, in ms after the request arrived, and how long it took to
    /// the response head or the failure.
    pub start_ms: u64,
    pub duration_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecentOutcome {
    Ok,
    Error,
    Cancelled,
}

impl RecentOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            RecentOutcome::Ok => "ok",
            RecentOutcome::Error => "error",
            RecentOutcome::Cancelled => "cancelled",
        }
    }
}

/// The query string of `GET /requests`. A blank value is no filter; other parameters are
/// ignored.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecentQuery {
    /// "error" for failures only, "ok" for the rest; absent for both.
    #[serde(default, deserialize_with = "blank_as_none")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub level: Option<String>,
    #[serde(default, deserialize_with = "blank_as_none")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Matches the gateway's request id or the upstream's.
    #[serde(default, deserialize_with = "blank_as_none")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    #[serde(default, deserialize_with = "blank_as_none")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// Unix time in ms; only requests that arrived at or after it.
    #[serde(default, deserialize_with = "blank_as_none")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<u64>,
    #[serde(default, deserialize_with = "blank_as_none")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
}

/// `GET /readyz`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Readiness {
    pub ready: bool,
}

/// A query value parsed as `T`, or `None` when it is blank.
fn blank_as_none<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: FromStr,
    T::Err: Display,
{
    match Option::<String>::deserialize(deserializer)? {
        Some(value) if !value.trim().is_empty() => {
            value.parse().map(Some).map_err(serde::de::Error::custom)
        }
        _ => Ok(None),
    }
}

mod rfc3339_millis {
    use std::time::SystemTime;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(at: &SystemTime, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&humantime::format_rfc3339_millis(*at))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<SystemTime, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        humantime::parse_rfc3339(&text).map_err(serde::de::Error::custom)
    }
}

mod route_key {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::config::RouteKey;

    pub fn serialize<S: Serializer>(route: &RouteKey, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(route.as_str())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<RouteKey, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        RouteKey::parse(&text)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown route \"{text}\"")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_filters_are_no_filters_and_numbers_are_parsed() {
        let query: RecentQuery =
            parse_query("level=error&model=&key_id=%20&since=5&limit=2&other=x");
        assert_eq!(
            query,
            RecentQuery {
                level: Some("error".into()),
                since: Some(5),
                limit: Some(2),
                ..RecentQuery::default()
            }
        );
    }

    #[test]
    fn a_recent_entry_reads_back_what_it_wrote() {
        let entry = RecentEntry {
            time_ms: 1_700_000_000_123,
            arrived: SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(1_700_000_000_123),
            request_id: "r".into(),
            upstream_request_id: None,
            key_id: Some("k".into()),
            model: None,
            requested_model: Some("gpt-unknown".into()),
            deployment: None,
            upstream: None,
            route: RouteKey::Responses,
            stream: true,
            status: 499,
            latency_ms: 3,
            ttfb_ms: None,
            usage: None,
            outcome: RecentOutcome::Cancelled,
            error: Some("gone".into()),
            attempts: vec![RecentAttempt {
                deployment: "east/d".into(),
                outcome: "throttled".into(),
                status: Some(429),
                start_ms: 1,
                duration_ms: 2,
            }],
        };
        let json = serde_json::to_value(&entry).expect("json");
        assert_eq!(json["time"], "2023-11-14T22:13:20.123Z");
        assert_eq!(json["route"], "responses");
        assert_eq!(json["outcome"], "cancelled");
        let back: RecentEntry = serde_json::from_value(json).expect("entry");
        assert_eq!(back, entry);
    }

    /// Parses a query string the way actix's `web::Query` does.
    fn parse_query(query: &str) -> RecentQuery {
        actix_web::web::Query::<RecentQuery>::from_query(query)
            .expect("query")
            .into_inner()
    }
}
