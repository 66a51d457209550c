//! A `redis-server` child on a free loopback port, without persistence, for the proxy to count
//! key limits in; and the two commands the benchmark sends it itself (`PING`, `DBSIZE`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::Context as _;
use test_support::{free_port, wait_for};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::processes::Child;

pub struct RedisServer {
    pub child: Child,
    pub addr: SocketAddr,
    pub version: String,
}

/// `redis-server` on PATH, else in /usr/bin or /usr/sbin (where Debian puts it).
pub fn find() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/bin".into(), "/usr/sbin".into()])
        .map(|dir| dir.join("redis-server"))
        .find(|candidate| candidate.is_file())
}

impl RedisServer {
    /// Starts `bin` with `work` as its directory (it writes nothing there: no snapshots, no
    /// append-only file) and waits until it answers `PING`.
    pub async fn start(bin: &Path, work: &Path) -> anyhow::Result<RedisServer> {
        let version = Command::new(bin)
            .arg("--version")
            .output()
            .context("running `redis-server --version`")?;
        // "Redis server v=7.0.15 sha=... bits=64 ..."
        let version = String::from_utf8_lossy(&version.stdout)
            .split_whitespace()
            .find_map(|word| word.strip_prefix("v="))
            .unwrap_or("unknown")
            .to_string();
        std::fs::create_dir_all(work)?;
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let mut child = Child::spawn(
            "redis-server",
            Command::new(bin)
                .args(["--port", &addr.port().to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no"])
                .arg("--dir")
                .arg(work)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        )?;
        wait_for(
            "redis-server to answer PING",
            Duration::from_secs(10),
            || {
                let exited = child.check_running().err();
                async move {
                    match exited {
                        Some(err) => Some(Err(err)),
                        None => matches!(command(addr, "PING").await.as_deref(), Ok("+PONG"))
                            .then_some(Ok(())),
                    }
                }
            },
        )
        .await??;
        Ok(RedisServer {
            child,
            addr,
            version,
        })
    }

    pub fn url(&self) -> String {
        format!("redis://{}", self.addr)
    }

    /// How many keys the server holds.
    pub async fn dbsize(&self) -> anyhow::Result<u64> {
        let reply = command(self.addr, "DBSIZE").await?;
        reply
            .strip_prefix(':')
            .and_then(|n| n.parse().ok())
            .with_context(|| format!("DBSIZE answered {reply:?}"))
    }
}

/// Sends one inline command on a new connection and returns the first line of the reply.
async fn command(addr: SocketAddr, command: &str) -> anyhow::Result<String> {
    let mut stream = TcpStream::connect(addr).await?;
    stream
        .write_all(format!("{command}\r\n").as_bytes())
        .await?;
    let mut reply = Vec::new();
    let mut buf = [0u8; 256];
    while !reply.ends_with(b"\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(1), stream.read(&mut buf))
            .await
            .context("redis-server did not answer")??;
        anyhow::ensure!(n > 0, "redis-server closed the connection");
        reply.extend_from_slice(&buf[..n]);
    }
    let line = String::from_utf8_lossy(&reply);
    Ok(line.lines().next().unwrap_or_default().to_string())
}
