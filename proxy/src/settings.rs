//! Process settings from the environment: where the config lives, listen overrides, limits.
//! The config file itself is read by `config`; this is only what comes from outside it.

use std::path::PathBuf;
use std::time::Duration;

use crate::process::env::{Env, data_dir_of};

pub const DEFAULT_BODY_LIMIT: usize = 52_428_800;
/// Polling faster than this would re-read config.json for nothing.
const MIN_CONFIG_POLL: Duration = Duration::from_millis(100);

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
        Settings {
            data_dir: data_dir_of(&config_path),
            config_path,
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
        Settings::read(&Env::from_process())
    }

    pub fn read(env: &Env) -> anyhow::Result<Settings> {
        let (config_path, data_dir) = env.config_location();
        let mut settings = Settings::for_config(config_path);
        settings.data_dir = data_dir;
        if let Some(limit) = env.parse("BODY_LIMIT", "a number of bytes")? {
            settings.body_limit = limit;
        }
        settings.listen = env.text("PROXY_LISTEN");
        settings.ops_listen = env.text("PROXY_OPS_LISTEN");
        if let Some(poll) = env.millis("CONFIG_POLL_MS", MIN_CONFIG_POLL)? {
            settings.config_poll = poll;
        }
        if let Some(events) = env.choice("CONFIG_WATCH", &[("events", true), ("poll", false)])? {
            settings.config_events = events;
        }
        if let Some(grace) = env.seconds("SHUTDOWN_GRACE_SECS")? {
            settings.shutdown_grace = grace;
        }
        settings.workers = env.number_in("PROXY_WORKERS", 1..=512)?;
        Ok(settings)
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
        ]);
        let settings = Settings::read(&env).expect("valid settings");
        assert_eq!(settings.stats_path(), PathBuf::from("/app/data/stats.json"));
        assert_eq!(settings.body_limit, 1024);
        assert!(!settings.config_events);
        assert_eq!(settings.workers, Some(3));
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
