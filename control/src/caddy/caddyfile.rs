//! Renders the Caddyfile from the validated config and control's settings with the template in
//! `caddy/`. Nothing can add a directive: the config's values reach the text in types that only
//! validation builds (DNS name, e-mail address, admin path, host:port), and the settings' values
//! (from the environment) are checked here. Never reads or writes files.

use std::path::Path;
use std::time::Duration;

use minijinja::{Environment, UndefinedBehavior};
use proxy::config::Config;
use serde::Serialize;

/// The template shipped in `caddy/`, built into the binary.
pub const BUILTIN_TEMPLATE: &str = include_str!("../../../caddy/Caddyfile.template");

/// A reload keeps the streams of the previous config open this long before closing them.
pub const STREAM_CLOSE_DELAY: &str = "1h";

/// Margin added to the proxy's own deadlines, so that the proxy answers a timeout itself (with
/// an OpenAI-shaped 504) before Caddy gives up on it.
const PROXY_DEADLINE_MARGIN: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("{field} cannot go into the Caddyfile: {reason}")]
    Unsafe { field: String, reason: &'static str },
    #[error("the Caddyfile template failed: {0}")]
    Template(#[from] minijinja::Error),
}

/// Everything the template needs that does not come from config.json.
#[derive(Debug, Clone)]
pub struct RenderSettings<'a> {
    pub config_path: &'a Path,
    /// `host:port` of Caddy's admin API.
    pub admin_listen: String,
    pub http_port: u16,
    /// `host:port` of control.
    pub control_upstream: String,
    /// `host:port` of the proxy when it is not the config's `server.caddy.upstreamHost:upstreamPort`.
    pub proxy_upstream: Option<String>,
    pub storage_dir: &'a Path,
    pub tls_log: &'a Path,
    pub tls_internal: bool,
}

#[derive(Serialize)]
struct Context {
    config_path: String,
    admin_listen: String,
    storage_dir: String,
    tls_log: String,
    http_port: u16,
    https_port: u16,
    tls: bool,
    tls_internal: bool,
    domain: String,
    email: String,
    admin_path: String,
    control_upstream: String,
    proxy_upstream: String,
    dial_timeout: String,
    response_header_timeout: Option<String>,
    keepalive: String,
    stream_close_delay: &'static str,
}

pub fn render(
    template: &str,
    config: &Config,
    settings: &RenderSettings,
) -> Result<String, RenderError> {
    let caddy = &config.server.caddy;
    // Validation gives an enabled site its domain.
    let tls_domain = caddy.domain.as_ref().filter(|_| caddy.enabled);
    let tls = tls_domain.is_some();
    let context = Context {
        config_path: quoted_path("CONFIG_PATH", settings.config_path)?,
        admin_listen: host_port("CADDY_ADMIN", &settings.admin_listen)?,
        storage_dir: quoted_path("DATA_DIR", settings.storage_dir)?,
        tls_log: quoted_path("DATA_DIR", settings.tls_log)?,
        http_port: settings.http_port,
        https_port: caddy.https_port,
        tls,
        tls_internal: settings.tls_internal,
        domain: tls_domain.map(ToString::to_string).unwrap_or_default(),
        email: match &caddy.email {
            Some(email) if tls => email.to_string(),
            _ => String::new(),
        },
        admin_path: config.server.admin_path.to_string(),
        control_upstream: host_port("CONTROL_UPSTREAM", &settings.control_upstream)?,
        proxy_upstream: match &settings.proxy_upstream {
            Some(upstream) => host_port("PROXY_UPSTREAM", upstream)?,
            None => caddy.upstream.to_string(),
        },
        dial_timeout: millis(caddy.dial_timeout),
        response_header_timeout: response_header_timeout(config).map(millis),
        keepalive: if caddy.keep_alive_timeout.is_zero() {
            "off".into()
        } else {
            millis(caddy.keep_alive_timeout)
        },
        stream_close_delay: STREAM_CLOSE_DELAY,
    };
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    env.set_keep_trailing_newline(true);
    let template = env.template_from_str(template)?;
    Ok(template.render(&context)?)
}

/// Caddy waits for the proxy's response head at least as long as the proxy itself may take
/// (every try of a non-streaming exchange, with backoff), so Caddy never cuts a long call. 0
/// in the config means no limit.
fn response_header_timeout(config: &Config) -> Option<Duration> {
    let configured = config.server.caddy.response_header_timeout;
    if configured.is_zero() {
        return None;
    }
    let u = &config.server.upstream;
    let tries = u.max_retries + 1;
    let first_byte = u.request_timeout.min(u.first_byte_timeout);
    let proxy_worst = first_byte.saturating_mul(tries) + u.retry_max.saturating_mul(u.max_retries);
    Some(configured.max(proxy_worst + PROXY_DEADLINE_MARGIN))
}

fn millis(d: Duration) -> String {
    format!("{}ms", d.as_millis())
}

fn unsafe_value(field: &str, reason: &'static str) -> RenderError {
    RenderError::Unsafe {
        field: field.into(),
        reason,
    }
}

/// `host:port` of letters, digits, dots, hyphens, underscores, colons, `%` and brackets only.
fn host_port(field: &str, value: &str) -> Result<String, RenderError> {
    let ok = !value.is_empty()
        && value.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':' | b'%' | b'[' | b']')
        });
    if ok {
        Ok(value.to_string())
    } else {
        Err(unsafe_value(field, "not a host:port"))
    }
}

/// A path as one double-quoted Caddyfile token. Quotes, backslashes, braces (placeholders) and
/// control characters are refused rather than escaped.
fn quoted_path(field: &str, path: &Path) -> Result<String, RenderError> {
    let text = path
        .to_str()
        .ok_or_else(|| unsafe_value(field, "the path is not UTF-8"))?;
    if text.is_empty()
        || text
            .chars()
            .any(|c| c.is_control() || matches!(c, '"' | '\\' | '{' | '}' | '`'))
    {
        return Err(unsafe_value(
            field,
            "the path holds quotes, backslashes, braces or control characters",
        ));
    }
    Ok(format!("\"{text}\""))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};
    use std::path::PathBuf;

    fn config(value: Value) -> Config {
        proxy::config::load(value.to_string().as_bytes()).expect("valid config")
    }

    fn settings() -> (PathBuf, PathBuf, PathBuf) {
        (
            PathBuf::from("/app/data/config.json"),
            PathBuf::from("/app/data/caddy"),
            PathBuf::from("/app/data/caddy-tls.log"),
        )
    }

    fn render_with(value: Value, tls_internal: bool) -> Result<String, RenderError> {
        render_for_proxy(value, tls_internal, None)
    }

    fn render_for_proxy(
        value: Value,
        tls_internal: bool,
        proxy_upstream: Option<&str>,
    ) -> Result<String, RenderError> {
        let (config_path, storage, log) = settings();
        render(
            BUILTIN_TEMPLATE,
            &config(value),
            &RenderSettings {
                config_path: &config_path,
                admin_listen: "localhost:2019".into(),
                http_port: 3000,
                control_upstream: "127.0.0.1:3001".into(),
                proxy_upstream: proxy_upstream.map(str::to_string),
                storage_dir: &storage,
                tls_log: &log,
                tls_internal,
            },
        )
    }

    /// Compares with `control/tests/golden/<name>`; `UPDATE_GOLDEN=1` rewrites the file.
    fn assert_golden(name: &str, rendered: &str) {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/golden")
            .join(name);
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::write(&path, rendered).expect("write golden file");
        }
        let expected = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e}; run with UPDATE_GOLDEN=1", path.display()));
        assert_eq!(
            rendered,
            expected,
            "{} differs; run with UPDATE_GOLDEN=1 to accept",
            path.display()
        );
    }

    #[test]
    fn plain_http_site_only_when_tls_is_off() {
        let text = render_with(json!({}), false).expect("renders");
        assert_golden("http-only.Caddyfile", &text);
    }

    #[test]
    fn acme_tls_site_with_email_on_the_https_port() {
        let text = render_with(
            json!({"server": {"caddy": {"enabled": true, "domain": "gw.example.com",
                "email": "ops@example.com", "httpsPort": 443}}}),
            false,
        )
        .expect("renders");
        assert_golden("acme.Caddyfile", &text);
    }

    #[test]
    fn internal_tls_site_for_tests_and_private_networks() {
        let text = render_with(
            json!({"server": {"adminPath": "/ops/admin", "caddy": {"enabled": true,
                "domain": "localhost", "httpsPort": 8443, "upstreamHost": "::1",
                "upstreamPort": 3100, "transport": {"responseHeaderTimeoutMs": 0,
                "keepAliveTimeoutMs": 0}}}}),
            true,
        )
        .expect("renders");
        assert_golden("internal-tls.Caddyfile", &text);
    }

    #[test]
    fn acme_on_another_https_port_names_the_alternate_tls_alpn_port() {
        let text = render_with(
            json!({"server": {"caddy": {"enabled": true, "domain": "gw.example.com", "httpsPort": 8443}}}),
            false,
        )
        .expect("renders");
        assert!(text.contains("alt_tlsalpn_port 8443"), "{text}");
        assert!(text.contains("disable_http_challenge"), "{text}");
        assert!(
            !text.contains("email"),
            "no email line without an e-mail: {text}"
        );
    }

    #[test]
    fn response_header_timeout_never_undercuts_the_proxy() {
        let text = render_with(
            json!({"server": {"upstream": {"requestTimeoutMs": 600000, "firstByteTimeoutMs": 120000,
                "maxRetries": 2, "retryMaxMs": 8000},
                "caddy": {"transport": {"responseHeaderTimeoutMs": 45000}}}}),
            false,
        )
        .expect("renders");
        // 3 tries of 120 s + 2 backoffs of 8 s + 5 s margin.
        assert!(text.contains("response_header_timeout 381000ms"), "{text}");
    }

    #[test]
    fn a_longer_configured_response_header_timeout_is_kept() {
        let text = render_with(
            json!({"server": {"upstream": {"firstByteTimeoutMs": 1000},
                "caddy": {"transport": {"responseHeaderTimeoutMs": 3600000}}}}),
            false,
        )
        .expect("renders");
        assert!(text.contains("response_header_timeout 3600000ms"), "{text}");
    }

    #[test]
    fn the_tls_site_is_absent_while_caddy_is_disabled_even_with_a_domain() {
        let text = render_with(
            json!({"server": {"caddy": {"enabled": false, "domain": "gw.example.com"}}}),
            false,
        )
        .expect("renders");
        assert!(!text.contains("gw.example.com"), "{text}");
    }

    fn injected(value: Value) -> Result<Config, Vec<String>> {
        proxy::config::load(value.to_string().as_bytes())
            .map_err(|e| e.issues().into_iter().map(|i| i.path).collect())
    }

    #[test]
    fn directive_injection_through_domain_or_email_is_refused_by_validation() {
        for (domain, email) in [
            ("gw.example.com {\n}\nevil.com", "a@b.co"),
            ("gw.example.com\timport x", "a@b.co"),
            ("gw.example.com", "a@b.co\n\tacme_ca https://evil"),
            ("gw.example.com", "a@b.co }"),
            ("gw.example.com", "\"a\"@b.co"),
            ("{env.HOME}", ""),
            ("gw.example.com:443", ""),
        ] {
            let result = injected(json!({"server": {"caddy": {"enabled": true,
                "domain": domain, "email": email}}}));
            assert!(
                result.is_err(),
                "accepted domain {domain:?} email {email:?}"
            );
        }
    }

    #[test]
    fn proxy_upstream_from_the_environment_wins_over_the_config() {
        let config =
            json!({"server": {"caddy": {"upstreamHost": "10.0.0.9", "upstreamPort": 3000}}});
        let rendered =
            render_for_proxy(config.clone(), false, Some("127.0.0.1:8080")).expect("renders");
        assert!(
            rendered.contains("reverse_proxy 127.0.0.1:8080 {"),
            "{rendered}"
        );
        assert!(!rendered.contains("10.0.0.9"), "{rendered}");
        let refused = render_for_proxy(config, false, Some("127.0.0.1:8080 {\n}"));
        assert!(
            matches!(&refused, Err(RenderError::Unsafe { field, .. }) if field == "PROXY_UPSTREAM"),
            "{refused:?}"
        );
    }

    #[test]
    fn a_data_dir_with_braces_or_quotes_is_refused() {
        for bad in ["/data/{env.X}", "/data/\"x", "/data/a\nb"] {
            let path = PathBuf::from(bad);
            assert!(quoted_path("DATA_DIR", &path).is_err(), "{bad}");
        }
        assert_eq!(
            quoted_path("DATA_DIR", Path::new("/my data/caddy")).ok(),
            Some("\"/my data/caddy\"".into())
        );
    }

    #[test]
    fn an_unsafe_control_upstream_is_refused() {
        assert!(host_port("CONTROL_UPSTREAM", "127.0.0.1:3001 {").is_err());
        assert!(host_port("CONTROL_UPSTREAM", "[::1]:3001").is_ok());
    }
}
