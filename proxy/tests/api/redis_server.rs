//! A `redis-server` child process on a free loopback port, without persistence, that a test
//! can kill and start again on the same port.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use test_support::{free_port, wait_until_blocking};

pub struct RedisServer {
    pub port: u16,
    binary: PathBuf,
    child: Option<Child>,
}

impl RedisServer {
    /// A running server, or `None` (the test skips) where `redis-server` is not installed;
    /// in CI, where .ci/run installs it, its absence fails the test.
    pub fn start() -> Option<RedisServer> {
        let Some(binary) = find("redis-server") else {
            if std::env::var_os("CI").is_some() {
                panic!("redis-server is required in CI but was not found; .ci/run installs it");
            }
            eprintln!("skipping: redis-server not found (apt-get install redis-server)");
            return None;
        };
        let mut server = RedisServer {
            port: free_port(),
            binary,
            child: None,
        };
        server.restart();
        Some(server)
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the server at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server (again) on its port, empty, and waits until it answers PING.
    pub fn restart(&mut self) {
        self.kill();
        let child = Command::new(&self.binary)
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .args(["--dir", &std::env::temp_dir().display().to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        self.child = Some(child);
        let port = self.port;
        if let Err(timed_out) = wait_until_blocking(
            "redis-server to answer PING",
            Duration::from_secs(10),
            || answers_ping(port),
        ) {
            panic!("{timed_out}");
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn answers_ping(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    let mut reply = [0u8; 7];
    stream.write_all(b"PING\r\n").is_ok()
        && stream.read_exact(&mut reply).is_ok()
        && &reply == b"+PONG\r\n"
}

fn find(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain(["/usr/bin".into(), "/usr/sbin".into()])
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}
