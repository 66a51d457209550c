//! Raw config → validated `Config`. Collects every problem with its field path in one pass;
//! code after this never re-checks what is validated here.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::time::Duration;

use serde_json::{Map, Value};

use super::model::*;
use super::raw::{RawAuth, RawConfig};

/// One problem in a config, located by its field path (`models[1].upstream`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ConfigIssue {
    pub path: String,
    pub message: String,
}

impl fmt::Display for ConfigIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum ConfigError {
    /// Not JSON, or a value of the wrong type.
    #[error("{}", .0)]
    Syntax(ConfigIssue),
    /// Well-formed, but breaks one or more rules.
    #[error("{}", join_issues(.0))]
    Invalid(Vec<ConfigIssue>),
}

impl ConfigError {
    pub fn issues(&self) -> Vec<ConfigIssue> {
        match self {
            ConfigError::Syntax(issue) => vec![issue.clone()],
            ConfigError::Invalid(issues) => issues.clone(),
        }
    }
}

fn join_issues(issues: &[ConfigIssue]) -> String {
    issues
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Bytes → raw types; a type error names the field path, line and column.
pub fn parse_raw(bytes: &[u8]) -> Result<RawConfig, ConfigError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let raw: RawConfig = serde_path_to_error::deserialize(&mut de).map_err(|err| {
        let path = readable_path(&err.path().to_string());
        let inner = err.into_inner();
        ConfigError::Syntax(ConfigIssue {
            path,
            message: inner.to_string(),
        })
    })?;
    de.end().map_err(|err| {
        ConfigError::Syntax(ConfigIssue {
            path: "(root)".into(),
            message: err.to_string(),
        })
    })?;
    Ok(raw)
}

/// serde_path_to_error writes "." for the document and "?" for a key it could not read (a
/// syntax error); the known part of the path is kept and the rest left to line and column.
fn readable_path(path: &str) -> String {
    let known: Vec<&str> = path
        .split('.')
        .take_while(|segment| !segment.is_empty() && *segment != "?")
        .collect();
    if known.is_empty() {
        "(root)".into()
    } else {
        known.join(".")
    }
}

const PLACEHOLDER_MARKERS: [&str; 2] = ["your-resource-name", "your_resource_name"];

/// Applies every rule; returns the validated config or all problems found.
pub fn validate(raw: RawConfig) -> Result<Config, ConfigError> {
    let mut check = Checker::default();
    let server = check_server(&mut check, &raw);
    let auth = check_auth(&mut check, "auth", &raw.auth);
    let client_keys = check_client_keys(&mut check, &raw);
    let upstreams = check_upstreams(&mut check, &raw);
    let models = check_models(&mut check, &raw, &upstreams);
    if !check.issues.is_empty() {
        return Err(ConfigError::Invalid(check.issues));
    }
    Ok(Config {
        server,
        auth,
        client_keys,
        upstreams,
        models,
        ignored: check.ignored,
        raw,
    })
}

#[derive(Default)]
struct Checker {
    issues: Vec<ConfigIssue>,
    ignored: Vec<String>,
}

impl Checker {
    fn fail(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.issues.push(ConfigIssue {
            path: path.into(),
            message: message.into(),
        });
    }

    fn range(&mut self, path: &str, value: u64, min: u64, max: u64) -> u64 {
        if value < min || value > max {
            self.fail(
                path,
                format!("must be between {min} and {max}, got {value}"),
            );
            return min;
        }
        value
    }

    fn millis(&mut self, path: &str, value: u64, min: u64, max: u64) -> Duration {
        Duration::from_millis(self.range(path, value, min, max))
    }

    fn port(&mut self, path: &str, value: u64) -> u16 {
        u16::try_from(self.range(path, value, 0, 65535)).unwrap_or_default()
    }

    fn non_empty(&mut self, path: &str, value: &str) {
        if value.trim().is_empty() {
            self.fail(path, "must not be empty");
        }
    }
}

const HOUR_MS: u64 = 3_600_000;
const DAY_MS: u64 = 24 * HOUR_MS;

fn check_server(check: &mut Checker, raw: &RawConfig) -> Server {
    let s = &raw.server;
    check.non_empty("server.host", &s.host);
    let port = check.port("server.port", s.port);

    if !s.admin_path.starts_with('/') || s.admin_path.len() < 2 {
        check.fail(
            "server.adminPath",
            "must start with \"/\" and name a path, such as \"/admin\"",
        );
    } else if s.admin_path.ends_with('/')
        || !s.admin_path[1..]
            .split('/')
            .all(|seg| !seg.is_empty() && seg.bytes().all(is_path_byte))
    {
        check.fail(
            "server.adminPath",
            "may hold only letters, digits, \"-\", \"_\", \".\" and \"/\" between segments, without a trailing \"/\"",
        );
    } else if s.admin_path == "/v1"
        || s.admin_path.starts_with("/v1/")
        || s.admin_path == "/healthz"
    {
        check.fail(
            "server.adminPath",
            "must not overlap the API paths (/v1, /healthz)",
        );
    }

    let admin = &s.admin_auth;
    if admin.enabled {
        check.non_empty("server.adminAuth.username", &admin.username);
        check.non_empty("server.adminAuth.password", &admin.password);
    }

    let caddy = check_caddy(check, raw);
    let image_compression = check_images(check, raw);
    let upstream = check_upstream_settings(check, raw);

    check.non_empty("server.ops.host", &s.ops.host);
    let ops_port = check.port("server.ops.port", s.ops.port);

    Server {
        host: s.host.trim().to_string(),
        port,
        admin_path: s.admin_path.clone(),
        admin_auth: AdminAuth {
            enabled: admin.enabled,
            username: admin.username.clone(),
            password: Secret::new(admin.password.clone()),
        },
        caddy,
        image_compression,
        upstream,
        ops: OpsListen {
            host: s.ops.host.trim().to_string(),
            port: ops_port,
        },
    }
}

fn is_path_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')
}

fn check_caddy(check: &mut Checker, raw: &RawConfig) -> Caddy {
    let c = &raw.server.caddy;
    if c.enabled {
        if c.domain.trim().is_empty() {
            check.fail(
                "server.caddy.domain",
                "is required when server.caddy.enabled is true",
            );
        } else if !is_domain_name(&c.domain) {
            check.fail(
                "server.caddy.domain",
                "must be a DNS name such as gateway.example.com (letters, digits, \"-\" and dots)",
            );
        }
    } else if !c.domain.is_empty() && !is_domain_name(&c.domain) {
        check.fail(
            "server.caddy.domain",
            "must be a DNS name such as gateway.example.com",
        );
    }
    if !c.email.is_empty() && !is_email(&c.email) {
        check.fail(
            "server.caddy.email",
            "must be an e-mail address such as ops@example.com",
        );
    }
    let https_port = check.port("server.caddy.httpsPort", c.https_port);
    check.non_empty("server.caddy.upstreamHost", &c.upstream_host);
    if !c
        .upstream_host
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
    {
        check.fail(
            "server.caddy.upstreamHost",
            "must be a host name or IP address",
        );
    }
    let upstream_port = check.port("server.caddy.upstreamPort", c.upstream_port);
    let t = &c.transport;
    Caddy {
        enabled: c.enabled,
        domain: c.domain.trim().to_ascii_lowercase(),
        email: c.email.trim().to_string(),
        https_port,
        upstream_host: c.upstream_host.trim().to_string(),
        upstream_port,
        dial_timeout: check.millis(
            "server.caddy.transport.dialTimeoutMs",
            t.dial_timeout_ms,
            1,
            HOUR_MS,
        ),
        response_header_timeout: check.millis(
            "server.caddy.transport.responseHeaderTimeoutMs",
            t.response_header_timeout_ms,
            0,
            DAY_MS,
        ),
        keep_alive_timeout: check.millis(
            "server.caddy.transport.keepAliveTimeoutMs",
            t.keep_alive_timeout_ms,
            0,
            DAY_MS,
        ),
    }
}

/// A DNS name of letters, digits and hyphens in dot-separated labels (a leading `*.` allowed).
pub fn is_domain_name(s: &str) -> bool {
    let name = s.strip_prefix("*.").unwrap_or(s);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// A plain address `local@domain` with no spaces, quotes, braces or other Caddyfile syntax.
pub fn is_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && local.len() <= 64
        && local
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`|~.".contains(&b))
        && domain.contains('.')
        && is_domain_name(domain)
}

fn check_images(check: &mut Checker, raw: &RawConfig) -> ImageCompression {
    let i = &raw.server.image_compression;
    let max_size = check.range("server.imageCompression.maxSize", i.max_size, 16, 16384);
    if !(i.quality > 0.0 && i.quality <= 1.0) {
        check.fail(
            "server.imageCompression.quality",
            format!("must be greater than 0 and at most 1, got {}", i.quality),
        );
    }
    let format = match i.format.to_ascii_lowercase().as_str() {
        "jpeg" | "jpg" => ImageFormat::Jpeg,
        "webp" => ImageFormat::Webp,
        other => {
            check.fail(
                "server.imageCompression.format",
                format!("must be \"jpeg\" or \"webp\", got \"{other}\""),
            );
            ImageFormat::Jpeg
        }
    };
    ImageCompression {
        enabled: i.enabled,
        max_size: u32::try_from(max_size).unwrap_or(1600),
        quality: i.quality as f32,
        format,
    }
}

fn check_upstream_settings(check: &mut Checker, raw: &RawConfig) -> UpstreamSettings {
    let u = &raw.server.upstream;
    let p = "server.upstream";
    let retry_base = check.millis(&format!("{p}.retryBaseMs"), u.retry_base_ms, 0, HOUR_MS);
    let retry_max = check.millis(&format!("{p}.retryMaxMs"), u.retry_max_ms, 0, HOUR_MS);
    if retry_base > retry_max {
        check.fail(
            format!("{p}.retryBaseMs"),
            "must not be greater than retryMaxMs",
        );
    }
    let mut retry_statuses = Vec::with_capacity(u.retry_statuses.len());
    for (i, status) in u.retry_statuses.iter().enumerate() {
        let status = check.range(&format!("{p}.retryStatuses[{i}]"), *status, 100, 599);
        retry_statuses.push(u16::try_from(status).unwrap_or(500));
    }

    let pool = &u.pool;
    let pp = "server.upstream.pool";
    if pool.headers_timeout_ms.is_some() {
        check.ignored.push(format!(
            "{pp}.headersTimeoutMs is not used: {p}.firstByteTimeoutMs bounds the wait for response headers"
        ));
    }
    if pool.body_timeout_ms.is_some() {
        check.ignored.push(format!(
            "{pp}.bodyTimeoutMs is not used: {p}.idleTimeoutMs bounds the gap between body chunks"
        ));
    }
    if pool.pipelining.is_some_and(|n| n != 1) {
        check.ignored.push(format!(
            "{pp}.pipelining is not used: requests are never pipelined on one connection"
        ));
    }
    UpstreamSettings {
        connect_timeout: check.millis(
            &format!("{p}.connectTimeoutMs"),
            u.connect_timeout_ms,
            1,
            10 * 60_000,
        ),
        request_timeout: check.millis(
            &format!("{p}.requestTimeoutMs"),
            u.request_timeout_ms,
            1,
            DAY_MS,
        ),
        first_byte_timeout: check.millis(
            &format!("{p}.firstByteTimeoutMs"),
            u.first_byte_timeout_ms,
            1,
            DAY_MS,
        ),
        idle_timeout: check.millis(&format!("{p}.idleTimeoutMs"), u.idle_timeout_ms, 1, DAY_MS),
        max_retries: check.range(&format!("{p}.maxRetries"), u.max_retries, 0, 10) as u32,
        retry_base,
        retry_max,
        retry_statuses,
        pool: Pool {
            connections: check.range(&format!("{pp}.connections"), pool.connections, 0, 1_000_000)
                as usize,
            keep_alive: check.millis(
                &format!("{pp}.keepAliveTimeoutMs"),
                pool.keep_alive_timeout_ms,
                0,
                DAY_MS,
            ),
            max_lifetime: check.millis(
                &format!("{pp}.keepAliveMaxTimeoutMs"),
                pool.keep_alive_max_timeout_ms,
                0,
                DAY_MS,
            ),
        },
    }
}

fn check_auth(check: &mut Checker, path: &str, a: &RawAuth) -> AuthConfig {
    let parsed = AuthMode::parse(&a.mode);
    if parsed.is_none() {
        let names: Vec<_> = AuthMode::ALL.iter().map(|m| format!("\"{m}\"")).collect();
        check.fail(
            format!("{path}.mode"),
            format!("must be one of {}, got \"{}\"", names.join(", "), a.mode),
        );
    }
    // An unknown mode is reported once; its other fields are not judged against a guess.
    let mode = parsed.unwrap_or(AuthMode::Default);
    match mode {
        AuthMode::ApiKey if a.api_key.trim().is_empty() => {
            check.fail(
                format!("{path}.apiKey"),
                "is required when mode is \"apiKey\"",
            );
        }
        AuthMode::ServicePrincipal => {
            let set = [&a.tenant_id, &a.client_id, &a.client_secret]
                .iter()
                .filter(|v| !v.trim().is_empty())
                .count();
            if set != 0 && set != 3 {
                check.fail(
                    path,
                    "tenantId, clientId and clientSecret must be given together (or all left empty to use the default credential chain)",
                );
            }
        }
        _ => {}
    }
    if parsed.is_some() && mode != AuthMode::ApiKey && !is_scope(&a.scope) {
        check.fail(
            format!("{path}.scope"),
            "must be an absolute https URL such as https://cognitiveservices.azure.com/.default",
        );
    }
    let authority_host = a.authority_host.trim().trim_end_matches('/').to_string();
    if !authority_host.is_empty() && !is_scope(&authority_host) {
        check.fail(
            format!("{path}.authorityHost"),
            "must be an https URL such as https://login.microsoftonline.us, or empty for the public cloud",
        );
    }
    AuthConfig {
        mode,
        tenant_id: a.tenant_id.trim().to_string(),
        client_id: a.client_id.trim().to_string(),
        client_secret: Secret::new(a.client_secret.clone()),
        managed_identity_client_id: a.managed_identity_client_id.trim().to_string(),
        scope: a.scope.trim().to_string(),
        api_key: Secret::new(a.api_key.trim()),
        authority_host,
    }
}

/// An absolute https URL with a host (token scopes and authority hosts).
fn is_scope(scope: &str) -> bool {
    url::Url::parse(scope.trim()).is_ok_and(|u| u.scheme() == "https" && u.host().is_some())
}

fn check_client_keys(check: &mut Checker, raw: &RawConfig) -> Vec<ClientKeyEntry> {
    let mut ids = HashSet::new();
    let mut keys = HashSet::new();
    let mut entries = Vec::with_capacity(raw.api_keys.len());
    for (i, k) in raw.api_keys.iter().enumerate() {
        let path = format!("apiKeys[{i}]");
        if k.id.trim().is_empty() {
            check.fail(format!("{path}.id"), "must not be empty");
        } else if !ids.insert(k.id.as_str()) {
            check.fail(format!("{path}.id"), format!("duplicate id \"{}\"", k.id));
        }
        if k.key.trim().is_empty() {
            check.fail(format!("{path}.key"), "must not be empty");
        } else if k.key.trim() != k.key {
            check.fail(
                format!("{path}.key"),
                "must not start or end with whitespace",
            );
        } else if !keys.insert(k.key.as_str()) {
            check.fail(
                format!("{path}.key"),
                "the same key is used by another entry",
            );
        }
        let active = match k.status.as_deref() {
            None | Some("active") => true,
            Some("disabled") => false,
            Some(other) => {
                check.fail(
                    format!("{path}.status"),
                    format!("must be \"active\" or \"disabled\", got \"{other}\""),
                );
                false
            }
        };
        entries.push(ClientKeyEntry {
            id: k.id.clone(),
            key: Secret::new(k.key.clone()),
            active,
        });
    }
    entries
}

fn check_upstreams(check: &mut Checker, raw: &RawConfig) -> Vec<Upstream> {
    let mut names = HashSet::new();
    let mut upstreams = Vec::with_capacity(raw.upstreams.len());
    for (i, u) in raw.upstreams.iter().enumerate() {
        let path = format!("upstreams[{i}]");
        if u.name.trim().is_empty() {
            check.fail(format!("{path}.name"), "must not be empty");
        } else if !names.insert(u.name.as_str()) {
            check.fail(
                format!("{path}.name"),
                format!("duplicate name \"{}\"", u.name),
            );
        }
        let base_url = u.base_url.trim().trim_end_matches('/').to_string();
        match url::Url::parse(&base_url) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {
                if url.query().is_some() || url.fragment().is_some() {
                    check.fail(
                        format!("{path}.baseUrl"),
                        "must not have a query or fragment; put query strings in routes",
                    );
                }
                if !url.username().is_empty() || url.password().is_some() {
                    check.fail(format!("{path}.baseUrl"), "must not carry credentials");
                }
            }
            _ => check.fail(
                format!("{path}.baseUrl"),
                "must be an absolute http(s) URL such as https://my-resource.openai.azure.com",
            ),
        }
        let lower = base_url.to_ascii_lowercase();
        let placeholder = PLACEHOLDER_MARKERS.iter().any(|m| lower.contains(m));

        let mut routes = HashMap::new();
        for (key, value) in &u.routes {
            let rpath = format!("{path}.routes[\"{key}\"]");
            let Some(route) = RouteKey::parse(key) else {
                check.fail(
                    &rpath,
                    format!("unknown route; expected one of {}", route_names()),
                );
                continue;
            };
            match value.as_str() {
                Some(p) if p.starts_with('/') && !p.contains(char::is_whitespace) => {
                    routes.insert(route, p.to_string());
                }
                _ => check.fail(
                    &rpath,
                    "must be a path starting with \"/\", such as \"/openai/v1/responses\"",
                ),
            }
        }
        for key in RouteKey::ALL {
            routes.entry(key).or_insert_with(|| key.default_path());
        }
        let auth = u
            .auth
            .as_ref()
            .map(|a| check_auth(check, &format!("{path}.auth"), a));
        upstreams.push(Upstream {
            name: u.name.clone(),
            base_url,
            routes,
            placeholder,
            auth,
        });
    }
    upstreams
}

fn route_names() -> String {
    RouteKey::ALL
        .iter()
        .map(|k| format!("\"{k}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

fn check_models(check: &mut Checker, raw: &RawConfig, upstreams: &[Upstream]) -> Vec<Model> {
    let mut ids = HashSet::new();
    let mut models = Vec::with_capacity(raw.models.len());
    for (i, m) in raw.models.iter().enumerate() {
        let path = format!("models[{i}]");
        if m.id.trim().is_empty() {
            check.fail(format!("{path}.id"), "must not be empty");
        } else if !ids.insert(m.id.as_str()) {
            check.fail(format!("{path}.id"), format!("duplicate id \"{}\"", m.id));
        }
        let upstream = match upstreams.iter().position(|u| u.name == m.upstream) {
            Some(index) => index,
            None => {
                check.fail(
                    format!("{path}.upstream"),
                    format!("no upstream named \"{}\"", m.upstream),
                );
                0
            }
        };
        let deployment = if m.target_model.trim().is_empty() {
            m.id.clone()
        } else {
            m.target_model.trim().to_string()
        };
        let (routes, any_route) = check_model_routes(check, &path, &m.routes);
        models.push(Model {
            id: m.id.clone(),
            upstream,
            deployment,
            routes,
            any_route,
        });
    }
    models
}

fn check_model_routes(
    check: &mut Checker,
    path: &str,
    raw: &Map<String, Value>,
) -> (HashMap<RouteKey, RouteOverride>, Option<RouteOverride>) {
    let mut routes = HashMap::new();
    let mut any = None;
    for (key, value) in raw {
        let rpath = format!("{path}.routes[\"{key}\"]");
        let target = match value.as_str() {
            Some(p) if p.starts_with('/') && !p.contains(char::is_whitespace) => {
                Some(RouteOverride::Path(p.to_string()))
            }
            Some(name) => RouteKey::parse(name).map(RouteOverride::Route),
            None => None,
        };
        let Some(target) = target else {
            check.fail(
                &rpath,
                format!(
                    "must be a route key ({}) or a path starting with \"/\"",
                    route_names()
                ),
            );
            continue;
        };
        if key == "*" {
            any = Some(target);
        } else if let Some(route) = RouteKey::parse(key) {
            routes.insert(route, target);
        } else {
            check.fail(
                &rpath,
                format!("unknown route; expected \"*\" or one of {}", route_names()),
            );
        }
    }
    (routes, any)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> Value {
        json!({
            "server": {"port": 3000},
            "auth": {"mode": "apiKey", "apiKey": "upstream-secret"},
            "apiKeys": [{"id": "team-a", "key": "sk-a", "status": "active"}],
            "upstreams": [{"name": "foundry", "baseUrl": "https://res.openai.azure.com/"}],
            "models": [{"id": "gpt-5-mini", "upstream": "foundry", "targetModel": "gpt-5-mini-dep"}]
        })
    }

    fn load_value(value: Value) -> Result<Config, ConfigError> {
        super::super::load(&serde_json::to_vec(&value).expect("serialize"))
    }

    fn issue_paths(value: Value) -> Vec<String> {
        match load_value(value) {
            Ok(_) => vec![],
            Err(err) => err.issues().into_iter().map(|i| i.path).collect(),
        }
    }

    #[test]
    fn sample_config_loads_with_defaults() {
        let config = load_value(sample()).expect("valid");
        assert_eq!(config.server.host, "0.0.0.0");
        assert_eq!(
            config.server.upstream.connect_timeout,
            Duration::from_secs(10)
        );
        assert_eq!(
            config.server.upstream.retry_statuses,
            vec![408, 409, 425, 429, 500, 502, 503, 504]
        );
        assert_eq!(config.server.upstream.pool.connections, 64);
        assert_eq!(config.server.ops.host, "127.0.0.1");
        assert_eq!(config.upstreams[0].base_url, "https://res.openai.azure.com");
        assert_eq!(
            config.upstreams[0].routes[&RouteKey::Responses],
            "/openai/v1/responses"
        );
        assert_eq!(config.models[0].deployment, "gpt-5-mini-dep");
        assert!(config.client_keys[0].active);
    }

    #[test]
    fn empty_file_object_uses_every_default() {
        let config = load_value(json!({})).expect("valid");
        assert_eq!(config.auth.mode, AuthMode::ServicePrincipal);
        assert_eq!(
            config.auth.scope,
            "https://cognitiveservices.azure.com/.default"
        );
        assert!(config.server.admin_auth.enabled);
        assert_eq!(config.server.image_compression.max_size, 1600);
    }

    #[test]
    fn unknown_upstream_reference_names_the_model_path() {
        let mut v = sample();
        v["models"][0]["upstream"] = json!("x");
        let err = load_value(v).expect_err("invalid");
        assert_eq!(
            err.to_string(),
            "models[0].upstream: no upstream named \"x\""
        );
    }

    #[test]
    fn wrong_type_names_the_field_path() {
        let mut v = sample();
        v["server"]["upstream"] = json!({"maxRetries": "three"});
        assert_eq!(issue_paths(v), vec!["server.upstream.maxRetries"]);
    }

    #[test]
    fn malformed_json_is_a_syntax_error_with_line() {
        let err = super::super::load(b"{\n  \"server\": {,\n}").expect_err("invalid");
        assert!(matches!(err, ConfigError::Syntax(_)));
        assert!(err.to_string().contains("line 2"), "{err}");
    }

    #[test]
    fn syntax_error_keeps_the_known_part_of_the_path() {
        let err = super::super::load(b"{\"server\": {\"port\": 1, oops}}").expect_err("invalid");
        assert_eq!(err.issues()[0].path, "server");
        let err = super::super::load(b"{ oops").expect_err("invalid");
        assert_eq!(err.issues()[0].path, "(root)");
    }

    #[test]
    fn duplicate_model_ids_are_refused() {
        let mut v = sample();
        v["models"] = json!([
            {"id": "m", "upstream": "foundry"},
            {"id": "m", "upstream": "foundry"}
        ]);
        assert_eq!(issue_paths(v), vec!["models[1].id"]);
    }

    #[test]
    fn duplicate_client_keys_and_ids_are_refused() {
        let mut v = sample();
        v["apiKeys"] = json!([
            {"id": "a", "key": "k1"},
            {"id": "a", "key": "k2"},
            {"id": "b", "key": "k1"}
        ]);
        assert_eq!(issue_paths(v), vec!["apiKeys[1].id", "apiKeys[2].key"]);
    }

    #[test]
    fn client_key_status_must_be_known() {
        let mut v = sample();
        v["apiKeys"][0]["status"] = json!("paused");
        assert_eq!(issue_paths(v), vec!["apiKeys[0].status"]);
    }

    #[test]
    fn duplicate_upstream_names_are_refused() {
        let mut v = sample();
        v["upstreams"] = json!([
            {"name": "foundry", "baseUrl": "https://a.example.com"},
            {"name": "foundry", "baseUrl": "https://b.example.com"}
        ]);
        assert_eq!(issue_paths(v), vec!["upstreams[1].name"]);
    }

    #[test]
    fn base_url_must_be_http_url() {
        let mut v = sample();
        v["upstreams"][0]["baseUrl"] = json!("ftp://res");
        assert_eq!(issue_paths(v), vec!["upstreams[0].baseUrl"]);
    }

    #[test]
    fn placeholder_upstream_loads_and_is_marked() {
        let mut v = sample();
        v["upstreams"][0]["baseUrl"] = json!("https://YOUR-RESOURCE-NAME.openai.azure.com");
        let config = load_value(v).expect("valid");
        assert!(config.upstreams[0].placeholder);
    }

    #[test]
    fn numeric_ranges_are_checked() {
        let mut v = sample();
        v["server"]["port"] = json!(70000);
        v["server"]["upstream"] = json!({"maxRetries": 11, "retryStatuses": [429, 99]});
        v["server"]["imageCompression"] = json!({"quality": 1.5});
        assert_eq!(
            issue_paths(v),
            vec![
                "server.port",
                "server.imageCompression.quality",
                "server.upstream.retryStatuses[1]",
                "server.upstream.maxRetries"
            ]
        );
    }

    #[test]
    fn retry_base_above_max_is_refused() {
        let mut v = sample();
        v["server"]["upstream"] = json!({"retryBaseMs": 9000, "retryMaxMs": 1000});
        assert_eq!(issue_paths(v), vec!["server.upstream.retryBaseMs"]);
    }

    #[test]
    fn api_key_mode_needs_a_key() {
        let mut v = sample();
        v["auth"] = json!({"mode": "apiKey"});
        assert_eq!(issue_paths(v), vec!["auth.apiKey"]);
    }

    #[test]
    fn unknown_auth_mode_is_refused() {
        let mut v = sample();
        v["auth"] = json!({"mode": "password"});
        assert_eq!(issue_paths(v), vec!["auth.mode"]);
    }

    #[test]
    fn partial_service_principal_is_refused() {
        let mut v = sample();
        v["auth"] = json!({"mode": "servicePrincipal", "tenantId": "t"});
        assert_eq!(issue_paths(v), vec!["auth"]);
    }

    #[test]
    fn upstream_route_keys_and_paths_are_checked() {
        let mut v = sample();
        v["upstreams"][0]["routes"] =
            json!({"embeddings": "/x", "responses": "openai/v1/responses"});
        assert_eq!(
            issue_paths(v),
            vec![
                "upstreams[0].routes[\"embeddings\"]",
                "upstreams[0].routes[\"responses\"]"
            ]
        );
    }

    #[test]
    fn model_route_overrides_accept_keys_paths_and_star() {
        let mut v = sample();
        v["models"][0]["routes"] =
            json!({"chat/completions": "responses", "*": "/custom/{deployment}"});
        let config = load_value(v).expect("valid");
        let model = &config.models[0];
        assert_eq!(
            model.routes[&RouteKey::ChatCompletions],
            RouteOverride::Route(RouteKey::Responses)
        );
        assert_eq!(
            model.any_route,
            Some(RouteOverride::Path("/custom/{deployment}".into()))
        );
    }

    #[test]
    fn model_route_override_must_name_route_or_path() {
        let mut v = sample();
        v["models"][0]["routes"] = json!({"responses": "nowhere"});
        assert_eq!(issue_paths(v), vec!["models[0].routes[\"responses\"]"]);
    }

    #[test]
    fn caddy_domain_and_email_reject_directive_injection() {
        let mut v = sample();
        v["server"]["caddy"] = json!({
            "enabled": true,
            "domain": "example.com {\n respond 200",
            "email": "a@b.com\n}"
        });
        assert_eq!(
            issue_paths(v),
            vec!["server.caddy.domain", "server.caddy.email"]
        );
    }

    #[test]
    fn caddy_enabled_needs_a_domain() {
        let mut v = sample();
        v["server"]["caddy"] = json!({"enabled": true});
        assert_eq!(issue_paths(v), vec!["server.caddy.domain"]);
    }

    #[test]
    fn admin_path_must_be_a_plain_path() {
        let mut v = sample();
        v["server"]["adminPath"] = json!("admin");
        assert_eq!(issue_paths(v.clone()), vec!["server.adminPath"]);
        v["server"]["adminPath"] = json!("/v1");
        assert_eq!(issue_paths(v), vec!["server.adminPath"]);
    }

    #[test]
    fn image_format_must_be_jpeg_or_webp() {
        let mut v = sample();
        v["server"]["imageCompression"] = json!({"format": "gif"});
        assert_eq!(issue_paths(v), vec!["server.imageCompression.format"]);
    }

    #[test]
    fn explicit_undici_only_pool_keys_are_reported_as_ignored() {
        let mut v = sample();
        v["server"]["upstream"] = json!({"pool": {"headersTimeoutMs": 1000, "pipelining": 4}});
        let config = load_value(v).expect("valid");
        assert_eq!(config.ignored.len(), 2);
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

    #[test]
    fn per_upstream_auth_is_validated_with_its_path() {
        let mut v = sample();
        v["upstreams"][0]["auth"] = json!({"mode": "apiKey"});
        assert_eq!(issue_paths(v), vec!["upstreams[0].auth.apiKey"]);
    }

    #[test]
    fn secrets_never_print_in_debug() {
        let config = load_value(sample()).expect("valid");
        let printed = format!("{config:?}");
        assert!(!printed.contains("sk-a"));
        assert!(printed.contains("Secret(***)"));
    }
}
