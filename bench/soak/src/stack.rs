//! The system under test: the fake upstream served in this process, the release proxy as a
//! child process on a generated config.json, config saves the way control writes them, and what
//! /proc and the ops listener say about the proxy (resident memory, open descriptors, config
//! generation, request bytes in flight).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context as _, bail};
use test_support::{free_ports, wait_for};

pub const CLIENT_KEY: &str = "sk-soak-0123456789abcdef";
/// The model every request but the unknown-model ones asks for.
pub const MODEL: &str = "soak";
const DEPLOYMENT: &str = "soak-deployment";

pub struct Stack {
    config_path: PathBuf,
    fake_addr: SocketAddr,
    proxy: Mutex<Child>,
    pid: u32,
    pub proxy_addr: SocketAddr,
    pub ops_addr: SocketAddr,
    /// Raised by one at each save, so that each save is a real change.
    revision: AtomicU64,
    http: reqwest::Client,
}

impl Stack {
    pub async fn start(proxy_bin: &Path, work: &Path) -> anyhow::Result<Stack> {
        let data = work.join("proxy-data");
        let _ = std::fs::remove_dir_all(&data);
        std::fs::create_dir_all(&data)?;
        let fake_addr = start_fake_in_process(2).await?;
        let config_path = data.join("config.json");
        std::fs::write(&config_path, proxy_config(fake_addr, 0).to_string())?;
        let ports = free_ports(2);
        let proxy_addr = SocketAddr::from(([127, 0, 0, 1], ports[0]));
        let ops_addr = SocketAddr::from(([127, 0, 0, 1], ports[1]));
        let proxy = Command::new(proxy_bin)
            .env("CONFIG_PATH", &config_path)
            .env("PROXY_LISTEN", proxy_addr.to_string())
            .env("PROXY_OPS_LISTEN", ops_addr.to_string())
            .env("LOG_LEVEL", "warn")
            .env_remove("RUST_LOG")
            .env_remove("PROXY_WORKERS")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting {}", proxy_bin.display()))?;
        let stack = Stack {
            config_path,
            fake_addr,
            pid: proxy.id(),
            proxy: Mutex::new(proxy),
            proxy_addr,
            ops_addr,
            revision: AtomicU64::new(0),
            http: reqwest::Client::new(),
        };
        wait_for(
            "the proxy to answer /status",
            Duration::from_secs(20),
            || {
                let exited = stack.check_running().err();
                let status = stack.status();
                async move {
                    match exited {
                        Some(err) => Some(Err(err)),
                        None => status.await.ok().map(|_| Ok(())),
                    }
                }
            },
        )
        .await??;
        Ok(stack)
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub fn check_running(&self) -> anyhow::Result<()> {
        let mut proxy = self
            .proxy
            .lock()
            .map_err(|_| anyhow::anyhow!("poisoned lock"))?;
        if let Some(status) = proxy.try_wait()? {
            bail!("the proxy exited: {status}");
        }
        Ok(())
    }

    /// Writes the config with the next revision the way control does (temporary file, rename)
    /// and waits until the proxy has applied it; returns the new generation.
    /// Only one save at a time.
    pub async fn save_config(&self) -> anyhow::Result<u64> {
        let before = self.generation().await?;
        let revision = self.revision.fetch_add(1, Ordering::Relaxed) + 1;
        let temp = self.config_path.with_extension("json.tmp");
        std::fs::write(&temp, proxy_config(self.fake_addr, revision).to_string())?;
        std::fs::rename(&temp, &self.config_path)?;
        let what = format!("the proxy to apply config revision {revision}");
        wait_for(&what, Duration::from_secs(10), || async {
            match self.generation().await {
                Ok(generation) => (generation > before).then_some(Ok(generation)),
                Err(err) => Some(Err(err)),
            }
        })
        .await?
    }

    /// The ops `/status` body.
    pub fn status(&self) -> impl Future<Output = anyhow::Result<serde_json::Value>> + 'static {
        let request = self.http.get(format!("http://{}/status", self.ops_addr));
        async move {
            let response = request.send().await?.error_for_status()?;
            Ok(response.json().await?)
        }
    }

    /// The proxy's config generation (1 at start, +1 per applied save).
    pub async fn generation(&self) -> anyhow::Result<u64> {
        let status = self.status().await?;
        status["config"]["generation"]
            .as_u64()
            .context("/status has no config.generation")
    }

    /// Waits until the proxy holds no request body in memory: every request is done with.
    pub async fn wait_quiet(&self) -> anyhow::Result<()> {
        wait_for(
            "the proxy's body_bytes_in_flight to fall to 0",
            Duration::from_secs(30),
            || async {
                match self.status().await {
                    Ok(status) => {
                        (status["body_bytes_in_flight"].as_u64() == Some(0)).then_some(Ok(()))
                    }
                    Err(err) => Some(Err(err)),
                }
            },
        )
        .await?
    }

    /// Resident memory (KiB) and open descriptors of the proxy now.
    pub fn probe(&self) -> anyhow::Result<Probe> {
        let pid = self.pid();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        let rss_kib = status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .context("no VmRSS in /proc/<pid>/status")?;
        let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))?.count() as u64;
        Ok(Probe { rss_kib, fds })
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        if let Ok(proxy) = self.proxy.get_mut() {
            let _ = proxy.kill();
            let _ = proxy.wait();
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Probe {
    pub rss_kib: u64,
    pub fds: u64,
}

/// The proxy's config.json: the fake as the one upstream, image compression on, and failover
/// settings under which the soak's upstream 500s reach the client as they are: no extra round
/// (`maxRetries` 0), and a circuit that the interleaved 500s never open.
pub fn proxy_config(fake: SocketAddr, revision: u64) -> serde_json::Value {
    serde_json::json!({
        "server": {
            "host": "127.0.0.1",
            "imageCompression": { "enabled": true },
            "upstream": {
                "maxRetries": 0,
                "pool": { "connections": 0, "keepAliveTimeoutMs": 4000 },
                "failover": { "circuitFailures": 1000 }
            }
        },
        "auth": { "mode": "apiKey", "apiKey": "soak-azure-key" },
        "apiKeys": [ { "id": "soak", "key": CLIENT_KEY, "status": "active" } ],
        "upstreams": [ { "name": "fake", "baseUrl": format!("http://{fake}") } ],
        "models": [
            { "id": MODEL, "upstream": "fake", "targetModel": DEPLOYMENT },
            { "id": format!("revision-{revision}"), "upstream": "fake" }
        ]
    })
}

/// Serves the fake in this process, on its own actix System thread and `workers` worker
/// threads, from a listener with room for 4,096 pending connections. (The same few lines as
/// `start_fake_in_process` of bench/gateway.)
async fn start_fake_in_process(workers: usize) -> anyhow::Result<SocketAddr> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
    let listener = socket.listen(4096)?.into_std()?;
    let addr = listener.local_addr()?;
    let (started, wait) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("fake-foundry".into())
        .spawn(move || {
            actix_rt::System::new().block_on(async move {
                let options = fake_foundry::ServeOptions {
                    behaviour: fake_foundry::Behaviour::default(),
                    workers,
                    record_requests: false,
                    handle_signals: false,
                };
                match fake_foundry::serve(listener, options) {
                    Ok(server) => {
                        let _ = started.send(Ok(()));
                        // Serves until the process ends.
                        let _ = server.await;
                    }
                    Err(err) => {
                        let _ = started.send(Err(err));
                    }
                }
            });
        })
        .context("starting the fake's thread")?;
    wait.await.context("the fake's thread ended")??;
    Ok(addr)
}
