//! Process settings from the environment: where config.json and the data dir are, where control
//! listens, and how it reaches the proxy and Caddy. The config file itself is read by `store`.

use std::path::PathBuf;
use std::time::Duration;

use proxy::blob::PersistenceMode;
use proxy::process::env::{Env, data_dir_of};
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
    /// Host names the admin UI answers to besides IP addresses, localhost and the configured
    /// domain (`CONTROL_ALLOWED_HOSTS`, comma-separated; `*`: any).
    pub allowed_hosts: Vec<String>,
    /// `PERSISTENCE_MODE`: config.json, or the config blob with config.json as its local cache.
    pub persistence: PersistenceMode,
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
/// Polling faster than this would re-read config.json for nothing.
const MIN_CONFIG_POLL: Duration = Duration::from_millis(100);

impl Settings {
    pub fn for_config(config_path: PathBuf) -> Settings {
        let data_dir = data_dir_of(&config_path);
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
            allowed_hosts: Vec::new(),
            persistence: PersistenceMode::File,
        }
    }

    pub fn from_env() -> anyhow::Result<Settings> {
        Settings::read(&Env::from_process())
    }

    pub fn read(env: &Env) -> anyhow::Result<Settings> {
        let (config_path, data_dir) = env.config_location();
        let mut settings = Settings::for_config(config_path);
        settings.caddy.caddyfile_path = data_dir.join("Caddyfile");
        settings.data_dir = data_dir;
        if let Some(listen) = env.text("CONTROL_LISTEN") {
            settings.listen = listen;
        }
        settings.proxy_ops_url = url(env, "PROXY_OPS_URL")?;
        settings.proxy_url = url(env, "PROXY_URL")?;
        if env.text("CADDY_ADMIN").as_deref() == Some("off") {
            settings.caddy.admin_url = None;
        } else if let Some(admin) = url(env, "CADDY_ADMIN")? {
            settings.caddy.admin_url = Some(admin);
        }
        if let Some(path) = env.path("CADDYFILE_PATH") {
            settings.caddy.caddyfile_path = path;
        }
        if let Some(port) = env.parse("CADDY_HTTP_PORT", "a port number")? {
            settings.caddy.http_port = port;
        }
        settings.caddy.control_upstream = env.text("CONTROL_UPSTREAM");
        settings.caddy.proxy_upstream = env.text("PROXY_UPSTREAM");
        if let Some(internal) = env.choice("CADDY_TLS", &[("acme", false), ("internal", true)])? {
            settings.caddy.tls_internal = internal;
        }
        settings.caddy.template_path = env.path("CADDY_TEMPLATE");
        if let Some(poll) = env.millis("CONFIG_POLL_MS", MIN_CONFIG_POLL)? {
            settings.config_poll = poll;
        }
        settings.workers = env.number_in("CONTROL_WORKERS", 1..=64)?;
        settings.allowed_hosts = env
            .text("CONTROL_ALLOWED_HOSTS")
            .map(|list| {
                list.split(',')
                    .map(|h| h.trim().trim_end_matches('.').to_ascii_lowercase())
                    .filter(|h| !h.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        settings.persistence = proxy::blob::settings::read(env)?;
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

/// An http(s) URL with a host, such as `http://127.0.0.1:2019`.
fn url(env: &Env, name: &str) -> anyhow::Result<Option<Url>> {
    let Some(value) = env.text(name) else {
        return Ok(None);
    };
    let url = Url::parse(&value)
        .ok()
        .filter(|url| matches!(url.scheme(), "http" | "https") && url.host().is_some());
    match url {
        Some(url) => Ok(Some(url)),
        None => anyhow::bail!(
            "{name} must be an http(s) URL such as http://127.0.0.1:2019, got {value:?}"
        ),
    }
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

    #[test]
    fn caddy_admin_off_leaves_caddy_unloaded() {
        let env = Env::from_pairs(&[("CADDY_ADMIN", "off")]);
        let settings = Settings::read(&env).expect("valid settings");
        assert!(settings.caddy.admin_url.is_none());
    }

    #[test]
    fn a_url_setting_that_is_not_http_is_refused_with_its_name() {
        let env = Env::from_pairs(&[("PROXY_OPS_URL", "ftp://127.0.0.1:3002")]);
        let err = Settings::read(&env).expect_err("not an http URL");
        assert!(
            err.to_string()
                .starts_with("PROXY_OPS_URL must be an http(s) URL")
        );
    }

    #[test]
    fn data_dir_moves_the_caddyfile_with_it() {
        let env = Env::from_pairs(&[
            ("CONFIG_PATH", "/etc/gw/config.json"),
            ("DATA_DIR", "/var/gw"),
        ]);
        let settings = Settings::read(&env).expect("valid settings");
        assert_eq!(settings.config_path, PathBuf::from("/etc/gw/config.json"));
        assert_eq!(
            settings.caddy.caddyfile_path,
            PathBuf::from("/var/gw/Caddyfile")
        );
    }
}
