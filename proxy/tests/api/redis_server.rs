//! A `redis-server` child process on a free loopback port, without persistence, that a test
//! can kill and start again on the same port; plain, or TLS-only with a certificate of a test CA.

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
    tls: Option<TlsFiles>,
}

/// A test CA and the server's certificate and key it signed, as PEM files.
pub struct TlsFiles {
    _dir: tempfile::TempDir,
    pub ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

impl TlsFiles {
    fn generate() -> TlsFiles {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_cert = ca.self_signed(&ca_key).expect("CA certificate");
        let key = KeyPair::generate().expect("server key");
        let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
        let cert = CertificateParams::new(names)
            .expect("server params")
            .signed_by(&key, &ca_cert, &ca_key)
            .expect("server certificate");
        let dir = tempfile::tempdir().expect("tempdir");
        let write = |name: &str, pem: String| {
            let path = dir.path().join(name);
            std::fs::write(&path, pem).expect("PEM file");
            path
        };
        TlsFiles {
            ca: write("ca.pem", ca_cert.pem()),
            cert: write("server.pem", cert.pem()),
            key: write("server.key", key.serialize_pem()),
            _dir: dir,
        }
    }
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
            tls: None,
        };
        server.restart();
        Some(server)
    }

    /// [`start`](Self::start), serving TLS only, with a certificate for `localhost` and
    /// `127.0.0.1` signed by a CA of its own ([`ca_file`](Self::ca_file)).
    pub fn start_tls() -> Option<RedisServer> {
        let mut server = RedisServer::start()?;
        server.tls = Some(TlsFiles::generate());
        server.restart();
        Some(server)
    }

    pub fn url(&self) -> String {
        match self.tls {
            None => format!("redis://127.0.0.1:{}", self.port),
            Some(_) => format!("rediss://localhost:{}", self.port),
        }
    }

    /// The CA that signed the certificate of a TLS server.
    pub fn ca_file(&self) -> Option<&std::path::Path> {
        self.tls.as_ref().map(|tls| tls.ca.as_path())
    }

    /// Kills the server at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops (SIGSTOP) or continues (SIGCONT) the server: stopped, it keeps its connections
    /// open and answers nothing, as a hung Redis does.
    pub fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().expect("running").id();
        let status = Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill {signal} {pid}");
    }

    /// Starts the server (again) on its port, empty, and waits until it answers PING.
    pub fn restart(&mut self) {
        self.kill();
        let port = self.port.to_string();
        let mut command = Command::new(&self.binary);
        match &self.tls {
            None => command.args(["--port", &port]),
            Some(tls) => command
                .args([
                    "--port",
                    "0",
                    "--tls-port",
                    &port,
                    "--tls-auth-clients",
                    "no",
                ])
                .arg("--tls-cert-file")
                .arg(&tls.cert)
                .arg("--tls-key-file")
                .arg(&tls.key)
                .arg("--tls-ca-cert-file")
                .arg(&tls.ca),
        };
        let child = command
            .args(["--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .args(["--dir", &std::env::temp_dir().display().to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        self.child = Some(child);
        let port = self.port;
        let tls = self.tls.is_some();
        // A TLS port is ready once it accepts connections (PING would need a handshake).
        if let Err(timed_out) = wait_until_blocking(
            "redis-server to answer PING",
            Duration::from_secs(10),
            || {
                if tls {
                    TcpStream::connect(("127.0.0.1", port)).is_ok()
                } else {
                    answers_ping(port)
                }
            },
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
