//! Process settings from the environment: where the config lives, listen overrides, limits.
//! The config file itself is read by `config`; this is only what comes from outside it.

use std::path::PathBuf;
use std::time::Duration;

use crate::blob::PersistenceMode;
use crate::downstream::body::BodyRules;
use crate::process::cli::{About, EnvVar};
use crate::process::env::{Env, data_dir_of};
use crate::process::telemetry;
use crate::upstream::credentials;

pub const DEFAULT_BODY_LIMIT: usize = 52_428_800;
/// The bodies of this many uploads of the default limit fit in memory at once.
pub const DEFAULT_BODY_MEMORY_LIMIT: usize = 8 * DEFAULT_BODY_LIMIT;
const DEFAULT_BODY_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// 64 KiB/s: a 50 MiB body may take some 13 minutes.
const DEFAULT_BODY_MIN_RATE: u64 = 65_536;
/// Polling faster than this would re-read config.json for nothing.
const MIN_CONFIG_POLL: Duration = Duration::from_millis(100);

/// Every environment variable the proxy reads, for `--help` and the docs (operations.md).
const ENVIRONMENT: &[EnvVar] = &[
    EnvVar {
        name: "CONFIG_PATH",
        default: "`data/config.json` (relative to the working directory)",
        meaning: "the config file; created from the example (`data/config.example.json`) when missing",
    },
    EnvVar {
        name: "CONFIG_EXAMPLE",
        default: "the built-in `data/config.example.json`",
        meaning: "a config file to create `CONFIG_PATH` from when it is missing (docker-compose.yml's `fake` profile uses one)",
    },
    EnvVar {
        name: "DATA_DIR",
        default: "the config file's directory",
        meaning: "where `stats.json` and the usage history (`usage-*.bin`) are written",
    },
    EnvVar {
        name: "PROXY_LISTEN",
        default: "`server.host:server.port` (`127.0.0.1:3003`)",
        meaning: "API listen address `host:port`, over the config; control reads it too, to find the proxy",
    },
    EnvVar {
        name: "PROXY_OPS_LISTEN",
        default: "`server.ops.host:server.ops.port` (`127.0.0.1:3002`)",
        meaning: "ops listen address `host:port`, over the config; control reads it too",
    },
    EnvVar {
        name: "BODY_LIMIT",
        default: "`52428800` (50 MiB)",
        meaning: "largest request body in bytes; larger bodies get `413`",
    },
    EnvVar {
        name: "BODY_READ_TIMEOUT_SECS",
        default: "`10`",
        meaning: "longest pause while a request body arrives, and the grace before `BODY_MIN_RATE` applies (1–3600); a slower body gets `408`",
    },
    EnvVar {
        name: "BODY_MIN_RATE",
        default: "`65536` (64 KiB/s)",
        meaning: "bytes per second a request body must average after the first `BODY_READ_TIMEOUT_SECS`; `0` for no minimum",
    },
    EnvVar {
        name: "BODY_MEMORY_LIMIT",
        default: "`419430400` (400 MiB), at least `BODY_LIMIT`",
        meaning: "bytes all request bodies may hold in memory at once; a body that does not fit gets `503 server_busy`",
    },
    EnvVar {
        name: "CONFIG_POLL_MS",
        default: "`2000`",
        meaning: "how often the config file is re-read and hashed, in ms (at least 100)",
    },
    EnvVar {
        name: "CONFIG_WATCH",
        default: "`events`",
        meaning: "`events`: file-system events plus polling; `poll`: polling only",
    },
    EnvVar {
        name: "SHUTDOWN_GRACE_SECS",
        default: "`30`",
        meaning: "after SIGTERM/SIGINT, how long in-flight requests and streams may still run",
    },
    EnvVar {
        name: "PROXY_WORKERS",
        default: "one per available CPU",
        meaning: "API worker threads (1–512)",
    },
    EnvVar {
        name: "USAGE_HISTORY",
        default: "`on`",
        meaning: "`off`: no usage history (its files are neither read nor written, `/usage` answers `503 usage_history_off`, `/metrics` has no latency histograms)",
    },
];

/// What `proxy --help` says.
pub fn about() -> About {
    About {
        name: "proxy",
        version: env!("CARGO_PKG_VERSION"),
        summary: "The gateway's data plane: the OpenAI API in front of Azure AI Foundry, configured by config.json.",
        environment: [
            ENVIRONMENT,
            telemetry::ENVIRONMENT,
            credentials::ENVIRONMENT,
            crate::blob::settings::ENVIRONMENT,
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
    /// Where runtime files (stats.json, the usage history) go; by default the config file's
    /// directory.
    pub data_dir: PathBuf,
    pub body_limit: usize,
    /// The longest pause in a request body, and the grace before `body_min_rate` applies.
    pub body_read_timeout: Duration,
    /// Bytes per second a request body must average after `body_read_timeout`; 0 for none.
    pub body_min_rate: u64,
    /// The bytes all request bodies in memory may hold at once; at least `body_limit`.
    pub body_memory_limit: usize,
    /// `host:port` overriding `server.host`/`server.port`.
    pub listen: Option<String>,
    /// `host:port` overriding `server.ops.host`/`server.ops.port`.
    pub ops_listen: Option<String>,
    /// How often the config file is re-read in case no file event arrived (SMB mounts).
    pub config_poll: Duration,
    /// Whether file-system events are watched as well (polling alone when false).
    pub config_events: bool,
    /// Whether requests are counted in the usage history (`USAGE_HISTORY=off` turns it off).
    pub usage_history: bool,
    /// How long in-flight requests and streams may run on after SIGTERM.
    pub shutdown_grace: Duration,
    pub workers: Option<usize>,
    /// `PERSISTENCE_MODE`: config.json, or a blob with config.json as its local cache.
    pub persistence: PersistenceMode,
}

impl Settings {
    pub fn for_config(config_path: PathBuf) -> Settings {
        Settings {
            data_dir: data_dir_of(&config_path),
            config_path,
            config_example: None,
            body_limit: DEFAULT_BODY_LIMIT,
            body_read_timeout: DEFAULT_BODY_READ_TIMEOUT,
            body_min_rate: DEFAULT_BODY_MIN_RATE,
            body_memory_limit: DEFAULT_BODY_MEMORY_LIMIT,
            listen: None,
            ops_listen: None,
            config_poll: Duration::from_secs(2),
            config_events: true,
            usage_history: true,
            shutdown_grace: Duration::from_secs(30),
            workers: None,
            persistence: PersistenceMode::File,
        }
    }

    pub fn from_env() -> anyhow::Result<Settings> {
        Settings::read(&Env::from_process())
    }

    pub fn read(env: &Env) -> anyhow::Result<Settings> {
        let (config_path, data_dir) = env.config_location();
        let mut settings = Settings::for_config(config_path);
        settings.data_dir = data_dir;
        settings.config_example = env.path("CONFIG_EXAMPLE");
        if let Some(limit) = env.parse("BODY_LIMIT", "a number of bytes")? {
            settings.body_limit = limit;
        }
        if let Some(secs) = env.number_in("BODY_READ_TIMEOUT_SECS", 1..=3600)? {
            settings.body_read_timeout = Duration::from_secs(secs);
        }
        if let Some(rate) = env.parse("BODY_MIN_RATE", "a number of bytes per second")? {
            settings.body_min_rate = rate;
        }
        match env.parse::<usize>("BODY_MEMORY_LIMIT", "a number of bytes")? {
            Some(memory) if memory < settings.body_limit => anyhow::bail!(
                "BODY_MEMORY_LIMIT must be at least BODY_LIMIT ({} bytes), got {memory}",
                settings.body_limit
            ),
            Some(memory) => settings.body_memory_limit = memory,
            None => settings.body_memory_limit = DEFAULT_BODY_MEMORY_LIMIT.max(settings.body_limit),
        }
        settings.listen = env.text("PROXY_LISTEN");
        settings.ops_listen = env.text("PROXY_OPS_LISTEN");
        if let Some(poll) = env.millis("CONFIG_POLL_MS", MIN_CONFIG_POLL)? {
            settings.config_poll = poll;
        }
        if let Some(events) = env.choice("CONFIG_WATCH", &[("events", true), ("poll", false)])? {
            settings.config_events = events;
        }
        if let Some(on) = env.choice("USAGE_HISTORY", &[("on", true), ("off", false)])? {
            settings.usage_history = on;
        }
        if let Some(grace) = env.seconds("SHUTDOWN_GRACE_SECS")? {
            settings.shutdown_grace = grace;
        }
        settings.workers = env.number_in("PROXY_WORKERS", 1..=512)?;
        settings.persistence = crate::blob::settings::read(env)?;
        Ok(settings)
    }

    pub fn body_rules(&self) -> BodyRules {
        BodyRules {
            limit: self.body_limit,
            read_timeout: self.body_read_timeout,
            min_rate: self.body_min_rate,
        }
    }

    pub fn stats_path(&self) -> PathBuf {
        self.data_dir.join("stats.json")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_read_from_the_environment() {
        let env = Env::from_pairs(&[
            ("CONFIG_PATH", "/app/data/config.json"),
            ("BODY_LIMIT", "1024"),
            ("CONFIG_WATCH", "poll"),
            ("PROXY_WORKERS", "3"),
            ("USAGE_HISTORY", "off"),
        ]);
        let settings = Settings::read(&env).expect("valid settings");
        assert!(!settings.usage_history);
        assert_eq!(settings.stats_path(), PathBuf::from("/app/data/stats.json"));
        assert_eq!(settings.body_limit, 1024);
        assert!(!settings.config_events);
        assert_eq!(settings.workers, Some(3));
    }

    #[test]
    fn the_body_memory_limit_holds_at_least_one_body() {
        let big_body = Env::from_pairs(&[("BODY_LIMIT", "500000000")]);
        let settings = Settings::read(&big_body).expect("valid settings");
        assert_eq!(settings.body_memory_limit, 500_000_000);

        let env = Env::from_pairs(&[("BODY_LIMIT", "1000"), ("BODY_MEMORY_LIMIT", "999")]);
        let err = Settings::read(&env).expect_err("below the body limit");
        assert!(
            err.to_string()
                .starts_with("BODY_MEMORY_LIMIT must be at least BODY_LIMIT"),
            "{err}"
        );
    }

    #[test]
    fn every_variable_the_proxy_reads_is_listed_once() {
        let sources = test_support::env_docs::rust_sources(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        )
        .expect("sources");
        // Read only by tests, to rewrite their golden files.
        let test_only = ["GOLDEN_BLESS"];
        let listed: Vec<&str> = about().environment.iter().map(|v| v.name).collect();
        for name in test_support::env_docs::variables_read_by(&sources) {
            assert!(
                listed.contains(&name.as_str()) || test_only.contains(&name.as_str()),
                "{name} is read but not listed"
            );
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
        let expected = crate::process::cli::markdown(&about().environment);
        assert_eq!(
            test_support::env_docs::generated_block(&docs, "proxy --help"),
            Some(expected.as_str()),
            "docs/operations.md must hold, between its proxy --help markers:\n{expected}"
        );
    }

    #[test]
    fn too_many_workers_are_refused() {
        let env = Env::from_pairs(&[("PROXY_WORKERS", "1000")]);
        let err = Settings::read(&env).expect_err("out of range");
        assert!(
            err.to_string()
                .starts_with("PROXY_WORKERS must be a number from 1 to 512")
        );
    }
}
