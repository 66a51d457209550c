//! Child processes under test (started, read from /proc, stopped when dropped) and what the
//! kernel says about them: resident memory and CPU time.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

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

    pub fn usage(&self) -> Usage {
        Usage::of(self.pid())
    }

    /// Resident set size now, in KiB.
    pub fn rss_kib(&self) -> u64 {
        status_field(self.pid(), "VmRSS:").unwrap_or(0)
    }
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
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// CPU time and memory of a process at one instant.
#[derive(Debug, Clone, Copy)]
pub struct Usage {
    /// User plus system time, in clock ticks.
    pub cpu_ticks: u64,
    pub rss_kib: u64,
}

impl Usage {
    pub fn of(pid: u32) -> Usage {
        Usage {
            cpu_ticks: cpu_ticks(&format!("/proc/{pid}/stat")).unwrap_or(0),
            rss_kib: status_field(pid, "VmRSS:").unwrap_or(0),
        }
    }

    pub fn of_self() -> Usage {
        Usage {
            cpu_ticks: cpu_ticks("/proc/self/stat").unwrap_or(0),
            rss_kib: 0,
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

/// A loopback port that was free a moment ago.
pub fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

/// Starts the fake upstream and returns it with the address it printed.
pub fn start_fake(bin: &Path, workers: usize) -> anyhow::Result<(Child, SocketAddr)> {
    let mut child = Child::spawn(
        "fake-foundry",
        Command::new(bin)
            .args(["--port", "0", "--workers", &workers.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit()),
    )?;
    let stdout = child
        .child
        .stdout
        .take()
        .context("fake-foundry stdout is piped")?;
    let mut lines = BufReader::new(stdout).lines();
    let line = lines
        .next()
        .context("fake-foundry exited before it listened")??;
    let addr: SocketAddr = line
        .strip_prefix("listening on ")
        .and_then(|a| a.trim().parse().ok())
        .with_context(|| format!("fake-foundry printed {line:?}"))?;
    // Keep draining, so that the fake never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Ok((child, addr))
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
