//! Process settings from the environment: where config.json and the data dir are, where control
//! listens, and how it reaches the proxy and Caddy. The config file itself is read by `store`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use url::Url;

use crate::throttle::ThrottlePolicy;

#[derive(Debug, Clone)]
pub struct Settings {
    pub config_path: PathBuf,
    /// Runtime files: the Caddyfile, Caddy's storage and TLS log; by default the config's directory.
    pub data_dir: PathBuf,
    /// `host:port` of the admin listener (`CONTROL_LISTEN`).
    pub listen: String,
    /// Base URL of the proxy's ops listener; `None`: from `server.ops` in the config.
    pub proxy_ops_url: Option<Url>,
    /// Base URL of the proxy's API for the endpoint tester; `None`: from `server.port`.
    pub proxy_url: Option<Url>,
    pub caddy: CaddySettings,
    pub throttle: ThrottlePolicy,
    /// How often config.json is re-read to notice hand edits.
    pub config_poll: Duration,
    pub workers: Option<usize>,
}

/// How control renders the Caddyfile and reaches Caddy's admin API.
#[derive(Debug, Clone)]
pub struct CaddySettings {
    /// Caddy's admin API (`CADDY_ADMIN`); `None` (`CADDY_ADMIN=off`): the Caddyfile is written
    /// but never loaded.
    pub admin_url: Option<Url>,
    /// Where the rendered Caddyfile is written (`CADDYFILE_PATH`).
    pub caddyfile_path: PathBuf,
    /// Port of the plain-HTTP site (`CADDY_HTTP_PORT`, default 3000).
    pub http_port: u16,
    /// `host:port` Caddy forwards the admin path to (`CONTROL_UPSTREAM`); `None`: the listen
    /// address, with a wildcard host replaced by loopback.
    pub control_upstream: Option<String>,
    /// `host:port` Caddy forwards API traffic to (`PROXY_UPSTREAM`); `None`:
    /// `server.caddy.upstreamHost:upstreamPort` from the config. The container sets it, because
    /// there the proxy listens on its own loopback port while Caddy takes the config's port.
    pub proxy_upstream: Option<String>,
    /// `internal` issues the TLS site's certificate from Caddy's own local CA instead of ACME
    /// (`CADDY_TLS`), for tests and private networks.
    pub tls_internal: bool,
    /// A template file used instead of the built-in one (`CADDY_TEMPLATE`).
    pub template_path: Option<PathBuf>,
}

impl CaddySettings {
    /// Caddy's certificate and ACME storage.
    pub fn storage_dir(&self, data_dir: &std::path::Path) -> PathBuf {
        data_dir.join("caddy")
    }

    /// The log file Caddy writes its TLS and ACME lines to.
    pub fn tls_log_path(&self, data_dir: &std::path::Path) -> PathBuf {
        data_dir.join("caddy-tls.log")
    }
}

pub const DEFAULT_LISTEN: &str = "127.0.0.1:3001";
pub const DEFAULT_CADDY_ADMIN: &str = "http://127.0.0.1:2019";
pub const DEFAULT_CADDY_HTTP_PORT: u16 = 3000;

impl Settings {
    pub fn for_config(config_path: PathBuf) -> Settings {
        let data_dir = config_path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map_or_else(|| PathBuf::from("."), PathBuf::from);
        let caddyfile_path = data_dir.join("Caddyfile");
        Settings {
            config_path,
            data_dir,
            listen: DEFAULT_LISTEN.into(),
            proxy_ops_url: None,
            proxy_url: None,
            caddy: CaddySettings {
                admin_url: Url::parse(DEFAULT_CADDY_ADMIN).ok(),
                caddyfile_path,
                http_port: DEFAULT_CADDY_HTTP_PORT,
                control_upstream: None,
                proxy_upstream: None,
                tls_internal: false,
                template_path: None,
            },
            throttle: ThrottlePolicy::default(),
            config_poll: Duration::from_secs(2),
            workers: None,
        }
    }

    pub fn from_env() -> anyhow::Result<Settings> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let config_path =
            var("CONFIG_PATH").map_or_else(|| PathBuf::from("data/config.json"), PathBuf::from);
        let mut settings = Settings::for_config(config_path);
        if let Some(dir) = var("DATA_DIR") {
            settings.data_dir = PathBuf::from(dir);
            settings.caddy.caddyfile_path = settings.data_dir.join("Caddyfile");
        }
        if let Some(listen) = var("CONTROL_LISTEN") {
            settings.listen = listen.trim().to_string();
        }
        if let Some(url) = var("PROXY_OPS_URL") {
            settings.proxy_ops_url = Some(parse_url("PROXY_OPS_URL", &url)?);
        }
        if let Some(url) = var("PROXY_URL") {
            settings.proxy_url = Some(parse_url("PROXY_URL", &url)?);
        }
        if let Some(admin) = var("CADDY_ADMIN") {
            settings.caddy.admin_url = match admin.trim() {
                "off" => None,
                url => Some(parse_url("CADDY_ADMIN", url)?),
            };
        }
        if let Some(path) = var("CADDYFILE_PATH") {
            settings.caddy.caddyfile_path = PathBuf::from(path);
        }
        if let Some(port) = var("CADDY_HTTP_PORT") {
            settings.caddy.http_port = port
                .trim()
                .parse()
                .with_context(|| format!("CADDY_HTTP_PORT must be a port number, got {port:?}"))?;
        }
        settings.caddy.control_upstream = var("CONTROL_UPSTREAM").map(|v| v.trim().to_string());
        settings.caddy.proxy_upstream = var("PROXY_UPSTREAM").map(|v| v.trim().to_string());
        if let Some(tls) = var("CADDY_TLS") {
            settings.caddy.tls_internal = match tls.trim() {
                "acme" => false,
                "internal" => true,
                other => anyhow::bail!("CADDY_TLS must be \"acme\" or \"internal\", got {other:?}"),
            };
        }
        settings.caddy.template_path = var("CADDY_TEMPLATE").map(PathBuf::from);
        if let Some(ms) = var("CONFIG_POLL_MS") {
            let ms: u64 = ms
                .trim()
                .parse()
                .context("CONFIG_POLL_MS must be milliseconds")?;
            settings.config_poll = Duration::from_millis(ms.max(100));
        }
        if let Some(n) = var("CONTROL_WORKERS") {
            let workers: usize = n
                .trim()
                .parse()
                .context("CONTROL_WORKERS must be a number")?;
            anyhow::ensure!(
                (1..=64).contains(&workers),
                "CONTROL_WORKERS must be between 1 and 64, got {workers}"
            );
            settings.workers = Some(workers);
        }
        Ok(settings)
    }

    /// Where Caddy forwards the admin path: `CONTROL_UPSTREAM`, else the listen address with a
    /// wildcard host replaced by loopback.
    pub fn control_upstream(&self, bound_port: u16) -> String {
        if let Some(upstream) = &self.caddy.control_upstream {
            return upstream.clone();
        }
        let host = self
            .listen
            .rsplit_once(':')
            .map_or("127.0.0.1", |(host, _)| host);
        format!("{}:{bound_port}", loopback_for(host))
    }
}

fn parse_url(name: &str, value: &str) -> anyhow::Result<Url> {
    let url = Url::parse(value.trim()).with_context(|| format!("{name} must be a URL"))?;
    anyhow::ensure!(
        matches!(url.scheme(), "http" | "https") && url.host().is_some(),
        "{name} must be an http(s) URL such as http://127.0.0.1:2019, got {value:?}"
    );
    Ok(url)
}

/// A host to connect to for a listen host: wildcards become loopback.
pub fn loopback_for(host: &str) -> String {
    match host.trim() {
        "" | "0.0.0.0" => "127.0.0.1".into(),
        "::" | "[::]" => "[::1]".into(),
        h if h.contains(':') && !h.starts_with('[') => format!("[{h}]"),
        h => h.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_listen_hosts_are_reached_on_loopback() {
        assert_eq!(loopback_for("0.0.0.0"), "127.0.0.1");
        assert_eq!(loopback_for("::"), "[::1]");
        assert_eq!(loopback_for("10.0.0.5"), "10.0.0.5");
        assert_eq!(loopback_for("::1"), "[::1]");
    }

    #[test]
    fn control_upstream_defaults_to_the_bound_listen_address() {
        let mut settings = Settings::for_config(PathBuf::from("data/config.json"));
        settings.listen = "0.0.0.0:0".into();
        assert_eq!(settings.control_upstream(4123), "127.0.0.1:4123");
        settings.caddy.control_upstream = Some("control:3001".into());
        assert_eq!(settings.control_upstream(4123), "control:3001");
    }

    #[test]
    fn data_dir_defaults_to_the_config_directory() {
        let settings = Settings::for_config(PathBuf::from("/app/data/config.json"));
        assert_eq!(settings.data_dir, PathBuf::from("/app/data"));
        assert_eq!(
            settings.caddy.caddyfile_path,
            PathBuf::from("/app/data/Caddyfile")
        );
    }
}
