//! Child processes under test (started, read from /proc, stopped when dropped) and what the
//! kernel says about them: resident memory and CPU time.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context as _, bail};

/// A child process that is stopped (SIGTERM, then SIGKILL) when dropped.
pub struct Child {
    pub name: &'static str,
    child: std::process::Child,
}

impl Child {
    pub fn spawn(name: &'static str, command: &mut Command) -> anyhow::Result<Child> {
        let child = command
            .spawn()
            .with_context(|| format!("starting {name} ({command:?})"))?;
        Ok(Child { name, child })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Fails when the process has already exited.
    pub fn check_running(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!("{} exited: {status}", self.name);
        }
        Ok(())
    }

    pub fn measured(&self) -> Measured {
        Measured {
            name: self.name,
            probe: Probe::Process(self.pid()),
        }
    }

    /// Resident set size now, in KiB.
    pub fn rss_kib(&self) -> u64 {
        status_field(self.pid(), "VmRSS:").unwrap_or(0)
    }
}

/// Something whose CPU time (and memory, for a process of its own) can be read.
#[derive(Debug, Clone, Copy)]
pub struct Measured {
    pub name: &'static str,
    pub probe: Probe,
}

#[derive(Debug, Clone, Copy)]
pub enum Probe {
    Process(u32),
    /// The threads of this process that serve the in-process fake.
    FakeThreads,
    /// The threads of this process that do not.
    LoadGenerator,
}

impl Measured {
    pub fn usage(&self) -> Usage {
        match self.probe {
            Probe::Process(pid) => Usage::of(pid),
            Probe::FakeThreads => Usage {
                cpu_ticks: own_threads_cpu_ticks(true),
                rss_kib: None,
            },
            Probe::LoadGenerator => Usage {
                cpu_ticks: own_threads_cpu_ticks(false),
                rss_kib: None,
            },
        }
    }
}

/// Names (as the kernel keeps them, 15 bytes) of the threads the in-process fake runs on: its
/// actix System thread, the server's workers and its acceptor.
pub const FAKE_THREAD: &str = "fake-foundry";
fn is_fake_thread(comm: &str) -> bool {
    comm == FAKE_THREAD || comm.starts_with("actix-")
}

/// CPU ticks of this process's threads that serve the fake (`fake` true) or of the others.
fn own_threads_cpu_ticks(fake: bool) -> u64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    tasks
        .flatten()
        .filter(|task| {
            let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
            is_fake_thread(comm.trim()) == fake
        })
        .filter_map(|task| cpu_ticks(&task.path().join("stat").to_string_lossy()))
        .sum()
}

impl Drop for Child {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .stderr(Stdio::null())
            .status();
        let exited = test_support::wait_until_blocking(
            "the process to exit",
            Duration::from_secs(3),
            || matches!(self.child.try_wait(), Ok(Some(_))),
        );
        if exited.is_ok() {
            return;
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// CPU time and memory at one instant.
#[derive(Debug, Clone, Copy)]
pub struct Usage {
    /// User plus system time, in clock ticks.
    pub cpu_ticks: u64,
    /// Resident memory, for a process of its own.
    pub rss_kib: Option<u64>,
}

impl Usage {
    pub fn of(pid: u32) -> Usage {
        Usage {
            cpu_ticks: cpu_ticks(&format!("/proc/{pid}/stat")).unwrap_or(0),
            rss_kib: status_field(pid, "VmRSS:"),
        }
    }

    /// CPU seconds used between `earlier` and `self`.
    pub fn cpu_seconds_since(&self, earlier: &Usage) -> f64 {
        self.cpu_ticks.saturating_sub(earlier.cpu_ticks) as f64 / ticks_per_second() as f64
    }
}

fn cpu_ticks(stat_path: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(stat_path).ok()?;
    // Fields after the command name, which may itself hold spaces and parentheses.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line; `rest` starts at field 3.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

fn status_field(pid: u32, name: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(name))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// USER_HZ, the unit of the CPU times in /proc.
pub fn ticks_per_second() -> u64 {
    static TICKS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|out| String::from_utf8(out.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100)
    })
}

/// Resident memory of the `fake-foundry` binary after a second of idling.
pub fn idle_rss_of_fake_binary(bin: &Path) -> anyhow::Result<u64> {
    let mut child = Child::spawn(
        "fake-foundry",
        Command::new(bin)
            .args(["--port", "0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null()),
    )?;
    let stdout = child
        .child
        .stdout
        .take()
        .context("fake-foundry stdout is piped")?;
    let mut lines = BufReader::new(stdout).lines();
    lines
        .next()
        .context("fake-foundry exited before it listened")??;
    std::thread::sleep(Duration::from_secs(1));
    child.check_running()?;
    Ok(child.rss_kib())
}

/// Serves the fake with `behaviour` in this process, on its own actix System thread and worker
/// threads, from a listener with room for 4,096 pending connections (as the `fake-foundry`
/// binary binds; the standard library's 128 overflows in a burst of 1,000 new connections).
pub async fn start_fake_in_process(
    workers: usize,
    behaviour: fake_foundry::Behaviour,
) -> anyhow::Result<SocketAddr> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
    let listener = socket.listen(4096)?.into_std()?;
    let addr = listener.local_addr()?;
    let (started, wait) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name(FAKE_THREAD.into())
        .spawn(move || {
            actix_rt::System::new().block_on(async move {
                let options = fake_foundry::ServeOptions {
                    behaviour,
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

/// The maximum number of open files this process may have.
pub fn open_files_limit() -> Option<u64> {
    std::fs::read_to_string("/proc/self/limits")
        .ok()?
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse().ok())
}
