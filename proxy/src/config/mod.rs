//! The one config schema of the gateway, used by both binaries; free of actix and awc.
//!
//! `raw` is config.json as written (serde, original key names, defaults, unknown keys kept);
//! `syntax` reads it from bytes; `validate` parses the raw sections into the typed `Config`,
//! collecting every problem with its field path (`issues`). Each section keeps its types, its
//! rules and their tests together: `server` (with `admin`, `caddy`, `images`,
//! `upstream_settings`), `auth`, `client_keys`, `upstreams`, `models`, `limits`, `stats`.
//! `changes` tells what differs between two configs, by name, for the reload's log. Values with
//! a shape of their own (`AdminPath`, `DomainName`, `EmailAddress`, `Host`, `HostPort`) are built
//! only by parsing, so code after validation never re-checks them.

use std::fmt;

mod admin;
mod auth;
mod caddy;
mod changes;
mod client_keys;
mod host_port;
mod images;
mod issues;
mod key_policy;
mod limits;
mod models;
pub mod raw;
mod routes;
mod secret;
mod server;
mod stats;
mod syntax;
#[cfg(test)]
mod testing;
mod upstream_settings;
mod upstreams;

pub use admin::{AdminAuth, AdminPath};
pub use auth::{
    AuthConfig, AuthMode, ClientSecret, DefaultChain, EntraAuth, EntraIdentity, ServicePrincipal,
};
pub use caddy::{Caddy, DomainName, EmailAddress};
pub use changes::{ConfigChanges, EntryChanges};
pub use client_keys::ClientKeyEntry;
pub use host_port::{Host, HostPort};
pub use images::{ImageCompression, ImageFormat};
pub use issues::{ConfigError, ConfigIssue};
pub use key_policy::{Budget, BudgetPeriod, KeyLimits, KeyPolicy, Metered, ModelPattern, Window};
pub use limits::{FailMode, Limits, REDIS_SCOPE};
pub use models::{Deployment, Model, RouteOverride};
pub use routes::RouteKey;
pub use secret::Secret;
pub use server::Server;
pub use stats::{Retention, Stats};
pub use syntax::parse_raw;
pub use upstream_settings::{Failover, Pool, UpstreamSettings};
pub use upstreams::Upstream;

use issues::Checker;
use raw::RawConfig;

/// The validated config: everything a request needs, already checked, in the types the code
/// uses.
#[derive(Clone)]
pub struct Config {
    pub server: Server,
    pub auth: AuthConfig,
    pub client_keys: Vec<ClientKeyEntry>,
    pub upstreams: Vec<Upstream>,
    pub models: Vec<Model>,
    pub limits: Limits,
    /// The usage history's retention and how often statistics are written.
    pub stats: Stats,
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

/// Applies every rule; returns the validated config or all problems found, in file order.
pub fn validate(raw: RawConfig) -> Result<Config, ConfigError> {
    let mut check = Checker::default();
    let server = server::parse(&mut check, &raw.server);
    let auth = auth::parse(&mut check, "auth", &raw.auth);
    let client_keys = client_keys::parse(&mut check, &raw.client_keys);
    let upstreams = upstreams::parse(&mut check, &raw.upstreams);
    let models = models::parse(&mut check, &raw.models, &upstreams);
    let limits = limits::parse(&mut check, &raw.limits, &auth);
    let stats = stats::parse(&mut check, &raw.stats);
    let ignored = check.finish().map_err(ConfigError::Invalid)?;
    // `server` is missing only when a problem was recorded; this names the section regardless.
    let server = server.ok_or_else(|| {
        ConfigError::Invalid(vec![ConfigIssue {
            path: "server".into(),
            message: "is invalid".into(),
        }])
    })?;
    Ok(Config {
        server,
        auth,
        client_keys,
        upstreams,
        models,
        limits,
        stats,
        ignored,
        raw,
    })
}

/// Parses and validates config.json bytes in one step. Every problem of the file is reported
/// at once: values of the wrong type first, then the rules the rest breaks.
pub fn load(bytes: &[u8]) -> Result<Config, ConfigError> {
    match parse_raw(bytes) {
        Ok(raw) => validate(raw),
        Err(first) => match syntax::every_type_error(bytes) {
            Some((rest, mut issues)) => {
                if let Err(err) = validate(rest) {
                    // A value taken out may break a rule at its own path: that one is told.
                    let told: Vec<String> = issues.iter().map(|i| i.path.clone()).collect();
                    issues.extend(err.issues().into_iter().filter(|issue| {
                        !told.iter().any(|path| {
                            issue.path == *path
                                || issue.path.starts_with(&format!("{path}."))
                                || issue.path.starts_with(&format!("{path}["))
                        })
                    }));
                }
                Err(ConfigError::Invalid(issues))
            }
            None => Err(first),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{load_value, sample};
    use super::*;
    use serde_json::json;
    use std::time::Duration;

    #[test]
    fn sample_config_loads_with_defaults() {
        let config = load_value(sample()).expect("valid");
        assert_eq!(config.server.listen.host(), "127.0.0.1");
        assert_eq!(
            config.server.upstream.connect_timeout,
            Duration::from_secs(10)
        );
        assert_eq!(
            config.server.upstream.retry_statuses,
            vec![408, 409, 425, 429, 500, 502, 503, 504]
        );
        assert_eq!(config.server.upstream.pool.connections, 64);
        assert_eq!(config.server.ops.host(), "127.0.0.1");
        assert_eq!(config.upstreams[0].base_url, "https://res.openai.azure.com");
        assert_eq!(
            config.upstreams[0].routes[&RouteKey::Responses],
            "/openai/v1/responses"
        );
        assert_eq!(config.models[0].deployments[0].name, "gpt-5-mini-dep");
        assert!(config.client_keys[0].active);
    }

    #[test]
    fn empty_file_object_uses_every_default() {
        let config = load_value(json!({})).expect("valid");
        assert_eq!(config.auth.mode(), AuthMode::ServicePrincipal);
        let AuthConfig::Entra(entra) = &config.auth else {
            panic!("an Entra ID mode: {:?}", config.auth);
        };
        assert_eq!(entra.scope, "https://cognitiveservices.azure.com/.default");
        assert!(config.server.admin_auth.enabled);
        assert_eq!(config.server.image_compression.max_size, 1600);
    }

    #[test]
    fn issues_of_every_section_are_reported_together_in_file_order() {
        let mut v = sample();
        v["server"]["adminPath"] = json!("admin");
        v["auth"] = json!({"mode": "apiKey"});
        v["apiKeys"][0]["key"] = json!("");
        v["upstreams"][0]["baseUrl"] = json!("res");
        v["models"][0]["upstream"] = json!("x");
        let paths: Vec<String> = load_value(v)
            .expect_err("invalid")
            .issues()
            .into_iter()
            .map(|i| i.path)
            .collect();
        assert_eq!(
            paths,
            vec![
                "server.adminPath",
                "auth.apiKey",
                "apiKeys[0].key",
                "upstreams[0].baseUrl",
                "models[0].upstream"
            ]
        );
    }

    #[test]
    fn unknown_keys_are_kept_in_raw() {
        let mut v = sample();
        v["notes"] = json!("kept");
        v["models"][0]["comment"] = json!({"a": 1});
        let config = load_value(v).expect("valid");
        let back = serde_json::to_value(&config.raw).expect("serialize");
        assert_eq!(back["notes"], "kept");
        assert_eq!(back["models"][0]["comment"]["a"], 1);
    }
}
