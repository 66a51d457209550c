//! The config.json file as written: serde types with the original's key names and defaults.
//! Unknown keys are captured in `extra` so a rewrite carries them through. Never validates.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub type Extra = Map<String, Value>;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RawConfig {
    pub server: RawServer,
    pub auth: RawAuth,
    /// The client keys (`apiKeys` in the file; not to be confused with `auth.apiKey`).
    #[serde(rename = "apiKeys")]
    pub client_keys: Vec<RawClientKey>,
    pub upstreams: Vec<RawUpstream>,
    pub models: Vec<RawModel>,
    #[serde(skip_serializing_if = "RawLimits::is_default")]
    pub limits: RawLimits,
    #[serde(skip_serializing_if = "RawStats::is_default")]
    pub stats: RawStats,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RawServer {
    pub host: String,
    pub port: u64,
    pub admin_path: String,
    pub admin_auth: RawAdminAuth,
    pub caddy: RawCaddy,
    pub image_compression: RawImageCompression,
    pub upstream: RawUpstreamSettings,
    pub ops: RawOps,
    #[serde(flatten)]
    pub extra: Extra,
}

impl Default for RawServer {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".into(),
            port: 3003,
            admin_path: "/admin".into(),
            admin_auth: RawAdminAuth::default(),
            caddy: RawCaddy::default(),
            image_compression: RawImageCompression::default(),
            upstream: RawUpstreamSettings::default(),
            ops: RawOps::default(),
            extra: Extra::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RawAdminAuth {
    pub enabled: bool,
    pub username: String,
    pub password: String,
    #[serde(flatten)]
    pub extra: Extra,
}

impl Default for RawAdminAuth {
    fn default() -> Self {
        Self {
            enabled: true,
            username: "admin".into(),
            password: "admin".into(),
            extra: Extra::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RawCaddy {
    pub enabled: bool,
    pub domain: String,
    pub email: String,
    pub https_port: u64,
    pub upstream_host: String,
    pub upstream_port: u64,
    pub transport: RawCaddyTransport,
    #[serde(flatten)]
    pub extra: Extra,
}

impl Default for RawCaddy {
    fn default() -> Self {
        Self {
            enabled: false,
            domain: String::new(),
            email: String::new(),
            https_port: 443,
            upstream_host: "127.0.0.1".into(),
            upstream_port: 3003,
            transport: RawCaddyTransport::default(),
            extra: Extra::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RawCaddyTransport {
    pub dial_timeout_ms: u64,
    pub response_header_timeout_ms: u64,
    pub keep_alive_timeout_ms: u64,
    #[serde(flatten)]
    pub extra: Extra,
}

impl Default for RawCaddyTransport {
    fn default() -> Self {
        Self {
            dial_timeout_ms: 5_000,
            response_header_timeout_ms: 45_000,
            keep_alive_timeout_ms: 120_000,
            extra: Extra::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RawImageCompression {
    pub enabled: bool,
    pub max_size: u64,
    pub min_bytes: u64,
    pub quality: f64,
    pub format: String,
    #[serde(flatten)]
    pub extra: Extra,
}

impl Default for RawImageCompression {
    fn default() -> Self {
        Self {
            enabled: true,
            max_size: 1600,
            min_bytes: 32 * 1024,
            quality: 0.85,
            format: "jpeg".into(),
            extra: Extra::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RawUpstreamSettings {
    pub connect_timeout_ms: u64,
    pub request_timeout_ms: u64,
    pub first_byte_timeout_ms: u64,
    pub idle_timeout_ms: u64,
    pub max_retries: u64,
    pub retry_base_ms: u64,
    pub retry_max_ms: u64,
    pub retry_statuses: Vec<u64>,
    pub pool: RawPool,
    pub failover: RawFailover,
    #[serde(flatten)]
    pub extra: Extra,
}

impl Default for RawUpstreamSettings {
    fn default() -> Self {
        Self {
            connect_timeout_ms: 10_000,
            request_timeout_ms: 900_000,
            first_byte_timeout_ms: 300_000,
            idle_timeout_ms: 900_000,
            max_retries: 0,
            retry_base_ms: 800,
            retry_max_ms: 8_000,
            retry_statuses: vec![408, 409, 425, 429, 500, 502, 503, 504],
            pool: RawPool::default(),
            failover: RawFailover::default(),
            extra: Extra::new(),
        }
    }
}

/// How a pool treats a throttled or failing deployment.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RawFailover {
    pub cooldown_ms: u64,
    pub circuit_failures: u64,
    pub circuit_open_ms: u64,
    pub circuit_max_open_ms: u64,
    #[serde(flatten)]
    pub extra: Extra,
}

impl Default for RawFailover {
    fn default() -> Self {
        Self {
            cooldown_ms: 10_000,
            circuit_failures: 3,
            circuit_open_ms: 5_000,
            circuit_max_open_ms: 300_000,
            extra: Extra::new(),
        }
    }
}

/// Pool keys keep the original's (undici) names. `headersTimeoutMs`, `bodyTimeoutMs` and
/// `pipelining` have no awc counterpart; they are optional so that only an explicit value is
/// reported as ignored.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RawPool {
    pub connections: u64,
    pub keep_alive_timeout_ms: u64,
    pub keep_alive_max_timeout_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub headers_timeout_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_timeout_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pipelining: Option<u64>,
    #[serde(flatten)]
    pub extra: Extra,
}

impl Default for RawPool {
    fn default() -> Self {
        Self {
            connections: 64,
            keep_alive_timeout_ms: 60_000,
            keep_alive_max_timeout_ms: 300_000,
            headers_timeout_ms: None,
            body_timeout_ms: None,
            pipelining: None,
            extra: Extra::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RawOps {
    pub host: String,
    pub port: u64,
    #[serde(flatten)]
    pub extra: Extra,
}

impl Default for RawOps {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".into(),
            port: 3002,
            extra: Extra::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RawAuth {
    pub mode: String,
    pub tenant_id: String,
    pub client_id: String,
    pub client_secret: String,
    pub managed_identity_client_id: String,
    pub scope: String,
    pub api_key: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub authority_host: String,
    #[serde(flatten)]
    pub extra: Extra,
}

impl Default for RawAuth {
    fn default() -> Self {
        Self {
            mode: "servicePrincipal".into(),
            tenant_id: String::new(),
            client_id: String::new(),
            client_secret: String::new(),
            managed_identity_client_id: String::new(),
            scope: "https://cognitiveservices.azure.com/.default".into(),
            api_key: String::new(),
            authority_host: String::new(),
            extra: Extra::new(),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RawClientKey {
    pub id: String,
    pub key: String,
    pub status: Option<String>,
    /// Model ids (exact or with `*`) the key may use; absent: every model.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub models: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub limits: Vec<RawWindow>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub budget: Option<RawBudget>,
    /// RFC 3339.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// A rate window: `requests` or `tokens` (one of them) `per` a duration (`"1m"`, `"2s"`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RawWindow {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requests: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokens: Option<u64>,
    pub per: String,
    #[serde(flatten)]
    pub extra: Extra,
}

/// A token budget per calendar `day` or `month` (UTC).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RawBudget {
    pub tokens: u64,
    pub per: String,
    /// RFC 3339: when the budget was last reset (by the admin UI).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reset_at: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// Where the limits' counters live and what happens when that store is down.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RawLimits {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis: Option<String>,
    /// How the gateway signs in to that Redis: `"password"` (what the URL holds) or `"entra"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis_auth: Option<String>,
    pub fail_mode: String,
    /// How long one Redis call may take before Redis counts as unreachable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis_timeout_ms: Option<u64>,
    /// Refuse a request whose prompt, estimated before sending, would overshoot a token
    /// window or budget of its key.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub estimate_prompt_tokens: bool,
    #[serde(flatten)]
    pub extra: Extra,
}

impl RawLimits {
    fn is_default(&self) -> bool {
        *self == RawLimits::default()
    }
}

impl Default for RawLimits {
    fn default() -> Self {
        Self {
            redis: None,
            redis_auth: None,
            fail_mode: "open".into(),
            redis_timeout_ms: None,
            estimate_prompt_tokens: false,
            extra: Extra::new(),
        }
    }
}

/// How long the usage history keeps each resolution, and how often it and stats.json are
/// written. Durations as text: `"48h"`, `"90d"`, `"30s"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RawStats {
    pub retention: RawRetention,
    pub flush_interval: String,
    #[serde(flatten)]
    pub extra: Extra,
}

impl RawStats {
    fn is_default(&self) -> bool {
        *self == RawStats::default()
    }
}

impl Default for RawStats {
    fn default() -> Self {
        Self {
            retention: RawRetention::default(),
            flush_interval: "30s".into(),
            extra: Extra::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RawRetention {
    pub minutes: String,
    pub hours: String,
    /// `null`: day buckets are kept for ever.
    pub days: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

impl Default for RawRetention {
    fn default() -> Self {
        Self {
            minutes: "48h".into(),
            hours: "90d".into(),
            days: None,
            extra: Extra::new(),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RawUpstream {
    pub name: String,
    pub base_url: String,
    pub routes: Map<String, Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth: Option<RawAuth>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RawModel {
    pub id: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub upstream: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub target_model: String,
    /// A pool of deployments, instead of `upstream` + `targetModel`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deployments: Option<Vec<RawDeployment>>,
    pub routes: Map<String, Value>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RawDeployment {
    pub upstream: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub target_model: String,
    pub priority: u64,
    pub weight: u64,
    #[serde(flatten)]
    pub extra: Extra,
}

impl Default for RawDeployment {
    fn default() -> Self {
        Self {
            upstream: String::new(),
            target_model: String::new(),
            priority: 0,
            weight: 1,
            extra: Extra::new(),
        }
    }
}
