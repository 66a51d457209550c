//! The proxy started inside the test process, on free loopback ports, with its settings read
//! the way the binary reads its environment (`Settings::read`), so that tests run the settings
//! code the binary runs. Must be started on an actix system (`#[actix_web::test]`).

use std::path::Path;
use std::time::Duration;

use proxy::process::env::Env;
use proxy::settings::Settings;
use proxy::startup::{Application, StopHandle};

/// What every test proxy runs with unless the test says otherwise: both listeners on free
/// loopback ports, config.json polled often, two workers, a short drain at stop.
const TEST_ENV: &[(&str, &str)] = &[
    ("PROXY_LISTEN", "127.0.0.1:0"),
    ("PROXY_OPS_LISTEN", "127.0.0.1:0"),
    ("CONFIG_POLL_MS", "200"),
    ("PROXY_WORKERS", "2"),
    ("SHUTDOWN_GRACE_SECS", "2"),
];

/// How long [`InProcessProxy::stop`] waits for the proxy to drain and write its statistics.
const STOP_LIMIT: Duration = Duration::from_secs(10);

/// A running proxy; stopped by [`InProcessProxy::stop`].
pub struct InProcessProxy {
    /// `http://127.0.0.1:PORT` of the API listener.
    pub address: String,
    /// `http://127.0.0.1:PORT` of the ops listener.
    pub ops: String,
    stop: StopHandle,
    stopped: tokio::sync::oneshot::Receiver<()>,
}

impl InProcessProxy {
    /// Starts the proxy on `config_path`; `env` adds to or overrides the test defaults
    /// (`BODY_LIMIT`, `CONFIG_WATCH`, `PROXY_WORKERS`, ...).
    pub async fn start(config_path: &Path, env: &[(&str, &str)]) -> InProcessProxy {
        let settings = settings(config_path, env);
        let app = Application::build(settings)
            .await
            .expect("the proxy builds");
        let address = format!("http://127.0.0.1:{}", app.port());
        let ops = format!("http://127.0.0.1:{}", app.ops_port());
        let stop = app.stop_handle();
        let (tx, stopped) = tokio::sync::oneshot::channel();
        actix_rt::spawn(async move {
            app.run_until_stopped().await.expect("the proxy runs");
            let _ = tx.send(());
        });
        InProcessProxy {
            address,
            ops,
            stop,
            stopped,
        }
    }

    /// The API listener's port.
    pub fn port(&self) -> u16 {
        port_of(&self.address)
    }

    /// Stops both listeners and waits until the proxy has drained and written stats.json.
    pub async fn stop(self) {
        self.stop.stop().await;
        let finished = tokio::time::timeout(STOP_LIMIT, self.stopped).await;
        assert!(
            finished.is_ok(),
            "the proxy did not stop within {STOP_LIMIT:?}"
        );
    }
}

/// The proxy's settings for `config_path`: `env` over [`TEST_ENV`], read by `Settings::read`.
pub fn settings(config_path: &Path, env: &[(&str, &str)]) -> Settings {
    let config_path = config_path.display().to_string();
    let mut pairs: Vec<(&str, &str)> = vec![("CONFIG_PATH", &config_path)];
    for (name, value) in TEST_ENV.iter().chain(env) {
        pairs.retain(|(n, _)| n != name);
        pairs.push((*name, *value));
    }
    Settings::read(&Env::from_pairs(&pairs)).expect("valid test settings")
}

fn port_of(address: &str) -> u16 {
    address
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("an address ends in its port")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_test_setting_overrides_its_default() {
        let s = settings(Path::new("/tmp/x/config.json"), &[("PROXY_WORKERS", "1")]);
        assert_eq!(s.workers, Some(1));
        assert_eq!(s.config_poll, Duration::from_millis(200));
        assert_eq!(s.listen.as_deref(), Some("127.0.0.1:0"));
        assert_eq!(s.stats_path(), Path::new("/tmp/x/stats.json"));
    }

    #[test]
    fn the_port_is_read_from_the_address() {
        assert_eq!(port_of("http://127.0.0.1:4321"), 4321);
    }
}
