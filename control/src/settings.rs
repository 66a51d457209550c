//! Process settings from the environment: where config.json and the data dir are, where control
//! listens, and how it reaches the proxy and Caddy. The config file itself is read by `store`.

use std::path::PathBuf;
use std::time::Duration;

use proxy::blob::PersistenceMode;
use proxy::process::cli::{About, EnvVar};
use proxy::process::env::{Env, data_dir_of};
use proxy::process::telemetry;
use proxy::upstream::credentials;
use url::Url;

use crate::throttle::ThrottlePolicy;

/// Every environment variable control reads, for `--help` and the docs (operations.md).
const ENVIRONMENT: &[EnvVar] = &[
    EnvVar {
        name: "CONFIG_PATH",
        default: "`data/config.json` (relative to the working directory)",
        meaning: "the config file (the one the proxy reads); created from the example (`data/config.example.json`) when missing",
    },
    EnvVar {
        name: "CONFIG_EXAMPLE",
        default: "the built-in `data/config.example.json`",
        meaning: "a config file to create `CONFIG_PATH` from when it is missing (docker-compose.yml's `fake` profile uses one)",
    },
    EnvVar {
        name: "DATA_DIR",
        default: "the config file's directory",
        meaning: "where the Caddyfile, Caddy's storage (`caddy/`) and its TLS log (`caddy-tls.log`) go",
    },
    EnvVar {
        name: "CONTROL_LISTEN",
        default: "`127.0.0.1:3001`",
        meaning: "admin listener `host:port` (`:0` picks a free port)",
    },
    EnvVar {
        name: "PROXY_LISTEN",
        default: "`server.host:server.port` (`127.0.0.1:3003`)",
        meaning: "the proxy's API address, read as the proxy reads it: where the endpoint tester sends requests and Caddy forwards API traffic (a wildcard host is reached on loopback)",
    },
    EnvVar {
        name: "PROXY_OPS_LISTEN",
        default: "`server.ops.host:server.ops.port` (`127.0.0.1:3002`)",
        meaning: "the proxy's ops listener, read as the proxy reads it: statistics, recent requests, status",
    },
    EnvVar {
        name: "PROXY_URL",
        default: "from `PROXY_LISTEN`",
        meaning: "the proxy's API as control reaches it, when that is not its listen address (another host, a port mapping)",
    },
    EnvVar {
        name: "PROXY_OPS_URL",
        default: "from `PROXY_OPS_LISTEN`",
        meaning: "the proxy's ops listener as control reaches it, when that is not its listen address",
    },
    EnvVar {
        name: "PROXY_UPSTREAM",
        default: "from `PROXY_LISTEN`, else `server.caddy.upstreamHost:upstreamPort`",
        meaning: "where Caddy forwards API traffic, when that is not the proxy's listen address",
    },
    EnvVar {
        name: "CADDY_ADMIN",
        default: "`127.0.0.1:2019`",
        meaning: "Caddy's admin API, `host:port` as Caddy itself reads this variable (an `http://` URL works too); `off`: the Caddyfile is written but never loaded",
    },
    EnvVar {
        name: "CADDYFILE_PATH",
        default: "`<DATA_DIR>/Caddyfile`",
        meaning: "where the rendered Caddyfile is written",
    },
    EnvVar {
        name: "CADDY_HTTP_PORT",
        default: "`3000`",
        meaning: "port of Caddy's plain-HTTP site",
    },
    EnvVar {
        name: "CONTROL_UPSTREAM",
        default: "the admin listener's address",
        meaning: "where Caddy forwards the admin path",
    },
    EnvVar {
        name: "CADDY_TLS",
        default: "`acme`",
        meaning: "`internal`: the HTTPS site gets a certificate from Caddy's own local CA (tests, private networks)",
    },
    EnvVar {
        name: "CADDY_TEMPLATE",
        default: "the built-in `caddy/Caddyfile.template`",
        meaning: "a template file to render instead (for example to add DNS-01, see [caddy.md](caddy.md))",
    },
    EnvVar {
        name: "CONFIG_POLL_MS",
        default: "`2000`",
        meaning: "how often control re-reads `config.json` to notice hand edits, in ms (at least 100)",
    },
    EnvVar {
        name: "CONTROL_WORKERS",
        default: "`2`",
        meaning: "HTTP worker threads (1–64)",
    },
    EnvVar {
        name: "CONTROL_ALLOWED_HOSTS",
        default: "empty",
        meaning: "host names (comma-separated) the admin UI answers to besides IP addresses, `localhost` and `server.caddy.domain`; `*`: any name",
    },
];

/// What `control --help` says.
pub fn about() -> About {
    About {
        name: "control",
        version: env!("CARGO_PKG_VERSION"),
        summary: "The gateway's admin UI and API: writes config.json and the Caddyfile, and loads the Caddyfile into Caddy.",
        environment: [
            ENVIRONMENT,
            telemetry::ENVIRONMENT,
            credentials::ENVIRONMENT,
            proxy::blob::settings::ENVIRONMENT,
        ]
        .concat(),
    }
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub config_path: PathBuf,
    /// What a missing config.json is created from (`CONFIG_EXAMPLE`); `None`: the built-in
    /// example.
    pub config_example: Option<PathBuf>,
    /// Runtime files: the Caddyfile, Caddy's storage and TLS log; by default the config's directory.
    pub data_dir: PathBuf,
    /// `host:port` of the admin listener (`CONTROL_LISTEN`).
    pub listen: String,
    /// Base URL of the proxy's ops listener (`PROXY_OPS_URL`, else `PROXY_OPS_LISTEN`, the
    /// variable the proxy reads); `None`: from `server.ops` in the config.
    pub proxy_ops_url: Option<Url>,
    /// The variable `proxy_ops_url` came from, for messages.
    pub proxy_ops_from: &'static str,
    /// Base URL of the proxy's API for the endpoint tester (`PROXY_URL`, else `PROXY_LISTEN`);
    /// `None`: from `server.host`/`server.port` in the config.
    pub proxy_url: Option<Url>,
    /// The variable `proxy_url` came from, for messages.
    pub proxy_from: &'static str,
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
    /// Whether a missing config.json is created from the example at start-up (always, except
    /// in tests of control without a config file).
    pub create_missing_config: bool,
}

/// How control renders the Caddyfile and reaches Caddy's admin API.
#[derive(Debug, Clone)]
pub struct CaddySettings {
    /// Caddy's admin API (`CADDY_ADMIN`, `host:port` as Caddy itself reads it, or an http URL);
    /// `None` (`CADDY_ADMIN=off`): the Caddyfile is written but never loaded.
    pub admin_url: Option<Url>,
    /// Where the rendered Caddyfile is written (`CADDYFILE_PATH`).
    pub caddyfile_path: PathBuf,
    /// Port of the plain-HTTP site (`CADDY_HTTP_PORT`, default 3000).
    pub http_port: u16,
    /// `host:port` Caddy forwards the admin path to (`CONTROL_UPSTREAM`); `None`: the listen
    /// address, with a wildcard host replaced by loopback.
    pub control_upstream: Option<String>,
    /// `host:port` Caddy forwards API traffic to (`PROXY_UPSTREAM`, else `PROXY_LISTEN`, the
    /// proxy's own listen address, a wildcard host reached on loopback); `None`:
    /// `server.caddy.upstreamHost:upstreamPort` from the config.
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
pub const DEFAULT_CADDY_ADMIN: &str = "127.0.0.1:2019";
pub const DEFAULT_CADDY_HTTP_PORT: u16 = 3000;
/// Polling faster than this would re-read config.json for nothing.
const MIN_CONFIG_POLL: Duration = Duration::from_millis(100);

impl Settings {
    pub fn for_config(config_path: PathBuf) -> Settings {
        let data_dir = data_dir_of(&config_path);
        let caddyfile_path = data_dir.join("Caddyfile");
        Settings {
            config_path,
            config_example: None,
            data_dir,
            listen: DEFAULT_LISTEN.into(),
            proxy_ops_url: None,
            proxy_ops_from: "PROXY_OPS_URL",
            proxy_url: None,
            proxy_from: "PROXY_URL",
            caddy: CaddySettings {
                admin_url: Url::parse(&format!("http://{DEFAULT_CADDY_ADMIN}")).ok(),
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
            create_missing_config: true,
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
        settings.config_example = env.path("CONFIG_EXAMPLE");
        if let Some(listen) = env.text("CONTROL_LISTEN") {
            settings.listen = listen;
        }
        // The proxy's addresses: the variables the proxy itself reads, unless control reaches
        // it some other way (another host, a port mapping).
        (settings.proxy_ops_url, settings.proxy_ops_from) = first_of(
            env,
            &[("PROXY_OPS_URL", url), ("PROXY_OPS_LISTEN", listen_url)],
        )?;
        (settings.proxy_url, settings.proxy_from) =
            first_of(env, &[("PROXY_URL", url), ("PROXY_LISTEN", listen_url)])?;
        if env.text("CADDY_ADMIN").as_deref() == Some("off") {
            settings.caddy.admin_url = None;
        } else if let Some(admin) = address_or_url(env, "CADDY_ADMIN")? {
            settings.caddy.admin_url = Some(admin);
        }
        if let Some(path) = env.path("CADDYFILE_PATH") {
            settings.caddy.caddyfile_path = path;
        }
        if let Some(port) = env.parse("CADDY_HTTP_PORT", "a port number")? {
            settings.caddy.http_port = port;
        }
        settings.caddy.control_upstream = env.text("CONTROL_UPSTREAM");
        settings.caddy.proxy_upstream = match env.text("PROXY_UPSTREAM") {
            Some(upstream) => Some(upstream),
            None => listen_url(env, "PROXY_LISTEN")?.and_then(|url| host_port_of(&url)),
        };
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

type UrlSetting = fn(&Env, &str) -> anyhow::Result<Option<Url>>;

/// The first of `choices` that is set, with its name (the first name when none is).
fn first_of(
    env: &Env,
    choices: &[(&'static str, UrlSetting)],
) -> anyhow::Result<(Option<Url>, &'static str)> {
    for (name, read) in choices {
        if let Some(url) = read(env, name)? {
            return Ok((Some(url), name));
        }
    }
    Ok((None, choices.first().map_or("", |(name, _)| *name)))
}

/// A listen address `host:port` as the proxy reads it, as the URL to reach it at (a wildcard
/// host reached on loopback).
fn listen_url(env: &Env, name: &str) -> anyhow::Result<Option<Url>> {
    let Some(value) = env.text(name) else {
        return Ok(None);
    };
    let url = value
        .rsplit_once(':')
        .filter(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok())
        .and_then(|(host, port)| Url::parse(&format!("http://{}:{port}", loopback_for(host))).ok());
    match url {
        Some(url) => Ok(Some(url)),
        None => anyhow::bail!("{name} must be host:port such as 127.0.0.1:3003, got {value:?}"),
    }
}

/// `host:port` (as Caddy reads `CADDY_ADMIN`) or an http(s) URL.
fn address_or_url(env: &Env, name: &str) -> anyhow::Result<Option<Url>> {
    match env.text(name) {
        Some(value) if !value.contains("://") => {
            let url = Url::parse(&format!("http://{value}"))
                .ok()
                .filter(|url| url.host().is_some() && url.port().is_some() && url.path() == "/");
            match url {
                Some(url) => Ok(Some(url)),
                None => anyhow::bail!(
                    "{name} must be host:port such as 127.0.0.1:2019 (or an http URL), got {value:?}"
                ),
            }
        }
        _ => url(env, name),
    }
}

/// `host:port` of an http URL, as Caddy's `admin` option and `reverse_proxy` take it.
pub fn host_port_of(url: &Url) -> Option<String> {
    let port = url.port_or_known_default()?;
    let host = match url.host()? {
        url::Host::Ipv6(ip) => format!("[{ip}]"),
        other => other.to_string(),
    };
    Some(format!("{host}:{port}"))
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
    fn every_variable_control_reads_is_listed_once() {
        let sources = test_support::env_docs::rust_sources(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        )
        .expect("sources");
        // Read only by tests, to rewrite their golden files.
        let test_only = ["UPDATE_GOLDEN"];
        let listed: Vec<&str> = about().environment.iter().map(|v| v.name).collect();
        for name in test_support::env_docs::variables_read_by(&sources) {
            assert!(
                listed.contains(&name.as_str()) || test_only.contains(&name.as_str()),
                "{name} is read but not listed"
            );
        }
        // What control reads through the proxy's code: the config's location, logging and
        // the credentials of the upstream auth check.
        for shared in [
            "CONFIG_PATH",
            "DATA_DIR",
            "LOG_LEVEL",
            "AZURE_CLIENT_SECRET",
        ] {
            assert!(listed.contains(&shared), "{shared}");
        }
        let mut unique = listed.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), listed.len(), "listed twice: {listed:?}");
    }

    #[test]
    fn the_docs_list_the_environment_as_help_does() {
        let docs = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/operations.md"),
        )
        .expect("operations.md");
        let expected = proxy::process::cli::markdown(&about().environment);
        assert_eq!(
            test_support::env_docs::generated_block(&docs, "control --help"),
            Some(expected.as_str()),
            "docs/operations.md must hold, between its control --help markers:\n{expected}"
        );
    }

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
    fn control_finds_the_proxy_through_the_variables_the_proxy_reads() {
        let env = Env::from_pairs(&[
            ("PROXY_LISTEN", "0.0.0.0:4100"),
            ("PROXY_OPS_LISTEN", "127.0.0.1:4102"),
        ]);
        let settings = Settings::read(&env).expect("valid settings");
        assert_eq!(
            settings.proxy_url.map(String::from).as_deref(),
            Some("http://127.0.0.1:4100/")
        );
        assert_eq!(settings.proxy_from, "PROXY_LISTEN");
        assert_eq!(
            settings.proxy_ops_url.map(String::from).as_deref(),
            Some("http://127.0.0.1:4102/")
        );
        assert_eq!(settings.proxy_ops_from, "PROXY_OPS_LISTEN");
        assert_eq!(
            settings.caddy.proxy_upstream.as_deref(),
            Some("127.0.0.1:4100")
        );

        let env = Env::from_pairs(&[
            ("PROXY_LISTEN", "0.0.0.0:4100"),
            ("PROXY_UPSTREAM", "proxy:8080"),
            ("PROXY_OPS_LISTEN", "127.0.0.1:4102"),
            ("PROXY_OPS_URL", "http://10.0.0.2:4102"),
        ]);
        let settings = Settings::read(&env).expect("valid settings");
        assert_eq!(settings.caddy.proxy_upstream.as_deref(), Some("proxy:8080"));
        assert_eq!(settings.proxy_ops_from, "PROXY_OPS_URL");

        let settings = Settings::read(&Env::from_pairs(&[])).expect("valid settings");
        assert!(settings.proxy_url.is_none() && settings.proxy_ops_url.is_none());
        assert!(settings.caddy.proxy_upstream.is_none());

        let err =
            Settings::read(&Env::from_pairs(&[("PROXY_LISTEN", "4100")])).expect_err("no host");
        assert!(
            err.to_string()
                .starts_with("PROXY_LISTEN must be host:port"),
            "{err}"
        );
    }

    #[test]
    fn caddy_admin_is_the_address_caddy_reads_or_a_url() {
        let admin = |value: &str| {
            Settings::read(&Env::from_pairs(&[("CADDY_ADMIN", value)]))
                .map(|s| s.caddy.admin_url.map(String::from))
        };
        assert_eq!(
            admin("127.0.0.1:2020").ok().flatten().as_deref(),
            Some("http://127.0.0.1:2020/")
        );
        assert_eq!(
            admin("localhost:2019").ok().flatten().as_deref(),
            Some("http://localhost:2019/")
        );
        assert_eq!(
            admin("http://127.0.0.1:2021").ok().flatten().as_deref(),
            Some("http://127.0.0.1:2021/")
        );
        let default = Settings::read(&Env::from_pairs(&[])).expect("valid settings");
        assert_eq!(
            default.caddy.admin_url.map(String::from).as_deref(),
            Some("http://127.0.0.1:2019/")
        );
        assert!(admin("2019").is_err());
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
