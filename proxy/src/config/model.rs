//! The validated config: everything a request needs, already checked, in the types the code uses.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use super::admin::AdminPath;
use super::caddy::{DomainName, EmailAddress};
use super::host_port::HostPort;
use super::raw::RawConfig;

/// The three OpenAI routes the gateway serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RouteKey {
    ChatCompletions,
    Responses,
    ImagesGenerations,
}

impl RouteKey {
    pub const ALL: [RouteKey; 3] = [
        RouteKey::ChatCompletions,
        RouteKey::Responses,
        RouteKey::ImagesGenerations,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RouteKey::ChatCompletions => "chat/completions",
            RouteKey::Responses => "responses",
            RouteKey::ImagesGenerations => "images/generations",
        }
    }

    pub fn parse(s: &str) -> Option<RouteKey> {
        RouteKey::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The Foundry v1 path used when an upstream does not list the route.
    pub fn default_path(self) -> String {
        format!("/openai/v1/{}", self.as_str())
    }

    /// Which route an explicit upstream path speaks, so that errors in a stream use its format.
    pub fn guess_from_path(path: &str) -> RouteKey {
        let path = path.split('?').next().unwrap_or(path);
        if path.contains("/responses") {
            RouteKey::Responses
        } else if path.contains("/images/") {
            RouteKey::ImagesGenerations
        } else {
            RouteKey::ChatCompletions
        }
    }
}

impl fmt::Display for RouteKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that must never be printed: Debug shows only that it is set.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            f.write_str("Secret(empty)")
        } else {
            f.write_str("Secret(***)")
        }
    }
}

#[derive(Clone)]
pub struct Config {
    pub server: Server,
    pub auth: AuthConfig,
    pub client_keys: Vec<ClientKeyEntry>,
    pub upstreams: Vec<Upstream>,
    pub models: Vec<Model>,
    /// Keys that were set but have no effect in this gateway, with the reason (logged on load).
    pub ignored: Vec<String>,
    /// The file as parsed, unknown keys included, for writers that must keep them.
    pub raw: RawConfig,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("server", &self.server)
            .field("auth", &self.auth)
            .field("client_keys", &self.client_keys)
            .field("upstreams", &self.upstreams)
            .field("models", &self.models)
            .finish_non_exhaustive()
    }
}

impl Config {
    pub fn model(&self, id: &str) -> Option<&Model> {
        self.models.iter().find(|m| m.id == id)
    }
}

#[derive(Debug, Clone)]
pub struct Server {
    /// `server.host` and `server.port`: where clients reach the API.
    pub listen: HostPort,
    pub admin_path: AdminPath,
    pub admin_auth: AdminAuth,
    pub caddy: Caddy,
    pub image_compression: ImageCompression,
    pub upstream: UpstreamSettings,
    /// `server.ops.host` and `server.ops.port`: the ops listener.
    pub ops: HostPort,
}

#[derive(Debug, Clone)]
pub struct AdminAuth {
    pub enabled: bool,
    pub username: String,
    pub password: Secret,
}

#[derive(Debug, Clone)]
pub struct Caddy {
    pub enabled: bool,
    /// Set whenever `enabled` is true.
    pub domain: Option<DomainName>,
    pub email: Option<EmailAddress>,
    pub https_port: u16,
    /// `upstreamHost` and `upstreamPort`: where Caddy forwards API traffic.
    pub upstream: HostPort,
    pub dial_timeout: Duration,
    pub response_header_timeout: Duration,
    pub keep_alive_timeout: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageFormat {
    Jpeg,
    Webp,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ImageCompression {
    pub enabled: bool,
    pub max_size: u32,
    pub quality: f32,
    pub format: ImageFormat,
}

/// Timeouts, retries and pool of the gateway → Azure leg.
#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamSettings {
    /// TCP connect and TLS handshake, nothing more.
    pub connect_timeout: Duration,
    /// The whole non-streaming exchange, body included.
    pub request_timeout: Duration,
    /// From sending the request until the response head arrives.
    pub first_byte_timeout: Duration,
    /// Longest gap between two chunks of a response body.
    pub idle_timeout: Duration,
    pub max_retries: u32,
    pub retry_base: Duration,
    pub retry_max: Duration,
    pub retry_statuses: Vec<u16>,
    pub pool: Pool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Pool {
    /// Simultaneous upstream connections; 0 means no limit.
    pub connections: usize,
    pub keep_alive: Duration,
    pub max_lifetime: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub enum AuthMode {
    ServicePrincipal,
    ManagedIdentity,
    WorkloadIdentity,
    AzureCli,
    Default,
    ApiKey,
}

impl AuthMode {
    pub const ALL: [AuthMode; 6] = [
        AuthMode::ServicePrincipal,
        AuthMode::ManagedIdentity,
        AuthMode::WorkloadIdentity,
        AuthMode::AzureCli,
        AuthMode::Default,
        AuthMode::ApiKey,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AuthMode::ServicePrincipal => "servicePrincipal",
            AuthMode::ManagedIdentity => "managedIdentity",
            AuthMode::WorkloadIdentity => "workloadIdentity",
            AuthMode::AzureCli => "azureCli",
            AuthMode::Default => "default",
            AuthMode::ApiKey => "apiKey",
        }
    }

    pub fn parse(s: &str) -> Option<AuthMode> {
        AuthMode::ALL.into_iter().find(|m| m.as_str() == s)
    }
}

impl fmt::Display for AuthMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How the gateway signs its calls to one upstream: an API key, or an Entra ID token. Each
/// variant carries only the settings its mode uses.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AuthConfig {
    /// `mode: "apiKey"`: sent as the `api-key` header; never empty.
    ApiKey { api_key: Secret },
    /// Every other mode: an Entra ID bearer token.
    Entra(EntraAuth),
}

impl AuthConfig {
    pub fn mode(&self) -> AuthMode {
        match self {
            AuthConfig::ApiKey { .. } => AuthMode::ApiKey,
            AuthConfig::Entra(entra) => entra.identity.mode(),
        }
    }
}

/// Who asks Entra ID for a token, for which scope, from which authority.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EntraAuth {
    pub identity: EntraIdentity,
    /// An absolute https URL.
    pub scope: String,
    /// Entra ID authority for the token request (an https URL without a trailing slash); `None`
    /// means `AZURE_AUTHORITY_HOST` or the public cloud (https://login.microsoftonline.com).
    pub authority_host: Option<String>,
}

/// The identity behind an Entra ID token, one variant per `auth.mode`. Optional ids are
/// trimmed and never empty.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum EntraIdentity {
    ServicePrincipal(ServicePrincipal),
    /// `managedIdentityClientId` names a user-assigned identity; `None` is the system-assigned one.
    ManagedIdentity {
        client_id: Option<String>,
    },
    WorkloadIdentity {
        tenant_id: Option<String>,
        client_id: Option<String>,
    },
    AzureCli {
        tenant_id: Option<String>,
    },
    Default(DefaultChain),
}

impl EntraIdentity {
    pub fn mode(&self) -> AuthMode {
        match self {
            EntraIdentity::ServicePrincipal(_) => AuthMode::ServicePrincipal,
            EntraIdentity::ManagedIdentity { .. } => AuthMode::ManagedIdentity,
            EntraIdentity::WorkloadIdentity { .. } => AuthMode::WorkloadIdentity,
            EntraIdentity::AzureCli { .. } => AuthMode::AzureCli,
            EntraIdentity::Default(_) => AuthMode::Default,
        }
    }
}

/// `servicePrincipal`: tenantId, clientId and clientSecret all given, or all left empty for the
/// default credential chain (as the original fell back to).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ServicePrincipal {
    ClientSecret(ClientSecret),
    DefaultChain(DefaultChain),
}

/// An app registration's client secret; every field is non-empty.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClientSecret {
    pub tenant_id: String,
    pub client_id: String,
    pub secret: Secret,
}

/// The settings the links of the default credential chain use.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DefaultChain {
    /// Workload identity and the Azure CLI.
    pub tenant_id: Option<String>,
    /// Workload identity.
    pub client_id: Option<String>,
    /// Managed identity: a user-assigned identity's client id.
    pub managed_identity_client_id: Option<String>,
}

#[derive(Debug, Clone)]
pub struct ClientKeyEntry {
    pub id: String,
    pub key: Secret,
    pub active: bool,
}

#[derive(Debug, Clone)]
pub struct Upstream {
    pub name: String,
    /// Scheme, host and optional path prefix, without a trailing slash.
    pub base_url: String,
    /// Paths per route (may hold `{deployment}` and a query string); every route is present.
    pub routes: HashMap<RouteKey, String>,
    /// The sample's `YOUR-RESOURCE-NAME` is still in `baseUrl`.
    pub placeholder: bool,
    /// Overrides the global `auth` for this upstream.
    pub auth: Option<AuthConfig>,
}

/// Where a model sends a route instead of the upstream's own path for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteOverride {
    Route(RouteKey),
    Path(String),
}

#[derive(Debug, Clone)]
pub struct Model {
    pub id: String,
    /// Index into `Config::upstreams`.
    pub upstream: usize,
    pub deployment: String,
    pub routes: HashMap<RouteKey, RouteOverride>,
    pub any_route: Option<RouteOverride>,
}
