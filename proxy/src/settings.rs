//! Process settings from the environment: where the config lives, listen overrides, limits.
//! The config file itself is read by `config`; this is only what comes from outside it.

use std::path::PathBuf;
use std::time::Duration;

use crate::blob::PersistenceMode;
use crate::downstream::body::BodyRules;
use crate::process::env::{Env, data_dir_of};

pub const DEFAULT_BODY_LIMIT: usize = 52_428_800;
/// The bodies of this many uploads of the default limit fit in memory at once.
pub const DEFAULT_BODY_MEMORY_LIMIT: usize = 8 * DEFAULT_BODY_LIMIT;
const DEFAULT_BODY_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// 64 KiB/s: a 50 MiB body may take some 13 minutes.
const DEFAULT_BODY_MIN_RATE: u64 = 65_536;
/// Polling faster than this would re-read config.json for nothing.
const MIN_CONFIG_POLL: Duration = Duration::from_millis(100);

#[derive(Debug, Clone)]
pub struct Settings {
    pub config_path: PathBuf,
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
    fn too_many_workers_are_refused() {
        let env = Env::from_pairs(&[("PROXY_WORKERS", "1000")]);
        let err = Settings::read(&env).expect_err("out of range");
        assert!(
            err.to_string()
                .starts_with("PROXY_WORKERS must be a number from 1 to 512")
        );
    }
}
