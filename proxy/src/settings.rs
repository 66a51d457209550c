//! Process settings from the environment: where the config lives, listen overrides, limits.
//! The config file itself is read by `config`; this is only what comes from outside it.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;

pub const DEFAULT_BODY_LIMIT: usize = 52_428_800;

#[derive(Debug, Clone)]
pub struct Settings {
    pub config_path: PathBuf,
    /// Where runtime files (stats.json) go; by default the config file's directory.
    pub data_dir: PathBuf,
    pub body_limit: usize,
    /// `host:port` overriding `server.host`/`server.port`.
    pub listen: Option<String>,
    /// `host:port` overriding `server.ops.host`/`server.ops.port`.
    pub ops_listen: Option<String>,
    /// How often the config file is re-read in case no file event arrived (SMB mounts).
    pub config_poll: Duration,
    /// Whether file-system events are watched as well (polling alone when false).
    pub config_events: bool,
    pub stats_flush: Duration,
    /// How long in-flight requests and streams may run on after SIGTERM.
    pub shutdown_grace: Duration,
    pub workers: Option<usize>,
}

impl Settings {
    pub fn for_config(config_path: PathBuf) -> Settings {
        let data_dir = config_path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map_or_else(|| PathBuf::from("."), PathBuf::from);
        Settings {
            config_path,
            data_dir,
            body_limit: DEFAULT_BODY_LIMIT,
            listen: None,
            ops_listen: None,
            config_poll: Duration::from_secs(2),
            config_events: true,
            stats_flush: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(30),
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
        }
        if let Some(limit) = var("BODY_LIMIT") {
            settings.body_limit = limit
                .trim()
                .parse()
                .with_context(|| format!("BODY_LIMIT must be a number of bytes, got {limit:?}"))?;
        }
        settings.listen = var("PROXY_LISTEN");
        settings.ops_listen = var("PROXY_OPS_LISTEN");
        if let Some(ms) = var("CONFIG_POLL_MS") {
            let ms: u64 = ms
                .trim()
                .parse()
                .context("CONFIG_POLL_MS must be milliseconds")?;
            settings.config_poll = Duration::from_millis(ms.max(100));
        }
        if let Some(mode) = var("CONFIG_WATCH") {
            settings.config_events = match mode.trim() {
                "events" => true,
                "poll" => false,
                other => {
                    anyhow::bail!("CONFIG_WATCH must be \"events\" or \"poll\", got {other:?}")
                }
            };
        }
        if let Some(secs) = var("SHUTDOWN_GRACE_SECS") {
            settings.shutdown_grace = Duration::from_secs(
                secs.trim()
                    .parse()
                    .context("SHUTDOWN_GRACE_SECS must be seconds")?,
            );
        }
        if let Some(n) = var("PROXY_WORKERS") {
            let workers: usize = n.trim().parse().context("PROXY_WORKERS must be a number")?;
            anyhow::ensure!(
                (1..=512).contains(&workers),
                "PROXY_WORKERS must be between 1 and 512, got {workers}"
            );
            settings.workers = Some(workers);
        }
        Ok(settings)
    }

    pub fn stats_path(&self) -> PathBuf {
        self.data_dir.join("stats.json")
    }
}
