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
    /// Where the config blob stands (`PERSISTENCE_MODE=blob`); absent in file mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blob: Option<BlobStatus>,
}

/// The config blob as the proxy follows it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BlobStatus {
    /// `<account URL>/<container>/<blob name>` (never a SAS).
    pub url: String,
    /// `sas`, or the Entra ID mode (`managedIdentity`, ...).
    pub auth_mode: String,
    /// The name of this replica's statistics blob.
    pub replica: String,
    /// Whether the last call to Blob Storage succeeded (null before the first one ended).
    pub reachable: Option<bool>,
    /// Unix ms since which `reachable` is what it is.
    pub since_ms: u64,
    /// Why the last call failed, while Blob Storage is unreachable.
    pub error: Option<String>,
    /// What the serving config was read from.
    pub serving_from: ServingFrom,
    /// The ETag of the blob version last read.
    pub etag: Option<String>,
    /// A change saved by control while Blob Storage was unreachable, waiting in the local cache
    /// to be pushed.
    pub pending_local_change: bool,
    /// Hand edits of the local cache that were set aside (never applied), newest first.
    pub local_edits: Vec<crate::blob::cache::SetAside>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServingFrom {
    /// Nothing valid yet: the proxy is not ready.
    #[default]
    Nothing,
    /// The local cache, because Blob Storage was not reachable (yet).
    LocalCache,
    /// A change saved while Blob Storage was unreachable, not pushed yet.
    PendingLocalChange,
    Blob,
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
    /// In blob mode, as control serves it: the replicas whose counters the usage figures add
    /// up (the proxy itself never sets it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replicas: Vec<ReplicaStats>,
}

/// One replica's share of merged statistics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplicaStats {
    pub name: String,
    pub requests: u64,
    pub total_tokens: u64,
    /// Whether the figures are this control's own proxy, read live (the others are copies the
    /// replicas write to Blob Storage every 30 s and when they stop).
    pub live: bool,
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

    /// Adds `other`'s counts (several replicas' statistics as one).
    pub fn merge(&mut self, other: &Counters) {
        self.requests += other.requests;
        self.succeeded += other.succeeded;
        for (class, count) in &other.errors {
            *self.errors.entry(class.clone()).or_default() += count;
        }
        self.cancelled += other.cancelled;
        self.prompt_tokens += other.prompt_tokens;
        self.completion_tokens += other.completion_tokens;
        self.total_tokens += other.total_tokens;
        self.cached_tokens += other.cached_tokens;
        self.latency_ms_sum += other.latency_ms_sum;
        self.latency_ms_max = self.latency_ms_max.max(other.latency_ms_max);
        if self.latency_buckets.len() < other.latency_buckets.len() {
            self.latency_buckets.resize(other.latency_buckets.len(), 0);
        }
        for (mine, theirs) in self.latency_buckets.iter_mut().zip(&other.latency_buckets) {
            *mine += theirs;
        }
    }
}

impl StatsData {
    /// Adds `other`'s counters: totals, per model and per key; the earliest start. Budgets
    /// are not added (each replica reports the same shared budgets, or its own share).
    pub fn merge(&mut self, other: &StatsData) {
        if other.since_ms != 0 && (self.since_ms == 0 || other.since_ms < self.since_ms) {
            self.since_ms = other.since_ms;
        }
        self.total.merge(&other.total);
        for (model, counters) in &other.by_model {
            self.by_model
                .entry(model.clone())
                .or_default()
                .merge(counters);
        }
        for (key, counters) in &other.by_key {
            self.by_key.entry(key.clone()).or_default().merge(counters);
        }
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

/// `GET /usage`: the usage history over a range, one series per group, points only for the
/// buckets with traffic. `from` and `to` are the range as answered: the query's, widened to whole
/// steps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UsagePage {
    pub from: u64,
    pub to: u64,
    pub step_ms: u64,
    pub group_by: Option<UsageGroupBy>,
    /// By total requests, most first.
    pub series: Vec<UsageSeries>,
    /// Every series together.
    pub total: UsageCounts,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UsageGroupBy {
    Model,
    Key,
    Deployment,
}

impl UsageGroupBy {
    pub fn as_str(self) -> &'static str {
        match self {
            UsageGroupBy::Model => "model",
            UsageGroupBy::Key => "key",
            UsageGroupBy::Deployment => "deployment",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UsageSeries {
    /// The model id, key id or `upstream/deployment`; `""` for requests that ended before it
    /// was known; `"all"` without `group_by`.
    pub group: String,
    pub points: Vec<UsagePoint>,
    pub total: UsageCounts,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UsagePoint {
    /// The bucket's start, Unix ms (UTC), aligned to the step.
    pub t: u64,
    #[serde(flatten)]
    pub counts: UsageCounts,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UsageCounts {
    pub requests: u64,
    pub successes: u64,
    pub cancelled: u64,
    /// Failed requests by class (`ErrorClass::as_str`), zeros left out.
    pub errors: BTreeMap<String, u64>,
    /// Answers with status 429, the gateway's own or the upstream's.
    pub rate_limited: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub cached_tokens: u64,
    pub reasoning_tokens: u64,
    pub latency_ms: Percentiles,
    pub ttfb_ms: Percentiles,
}

/// Quantiles read from a histogram (about 10 % error); `null` when there is nothing to read
/// them from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    pub p50: Option<f64>,
    pub p90: Option<f64>,
    pub p99: Option<f64>,
}

/// A refused ops query (`/usage`), in the OpenAI error shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpsErrorBody {
    pub error: OpsError,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpsError {
    pub message: String,
    /// `invalid_request_error`, or `server_error`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The query parameter at fault, if one is.
    pub param: Option<String>,
    pub code: String,
}

/// `GET /readyz`: 200 when ready, 503 with the reason when not.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Readiness {
    pub ready: bool,
    /// Why the proxy is not ready: `no_config` (none loaded yet), `blob_first_read` (the first
    /// read of the config blob has not finished), `draining` (stopping after SIGTERM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
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
