//! Soak test of the release proxy (not run in CI): a million requests of mixed kinds (see
//! [`mix`]) over 32 connections while config.json is saved every 3 s, then checks that no
//! answer was unexpected, that every save was applied, and that the proxy's resident memory and
//! open descriptors at the end are within 10% of their values after the first 100,000
//! requests. Both probes are taken once the load has stopped and the proxy holds no request
//! body. Prints the figures, writes them as the "## Soak" section of `--out` when given, and
//! exits non-zero when a target is missed.
//!
//! `soak --proxy <bin> --work <dir> [--out docs/benchmarks.md] [--requests N] [--connections C]`

mod mix;
mod report;
mod stack;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use mix::Kind;
use stack::{Probe, Stack};

/// Where the first probe is taken.
const FIRST_PROBE_AFTER: u64 = 100_000;
const SAVE_EVERY: Duration = Duration::from_secs(3);
/// How many unexpected answers are printed in full.
const PRINTED_FAILURES: usize = 10;
/// The largest change allowed between the two probes, in %.
const MAX_GROWTH_PERCENT: f64 = 10.0;
/// Descriptors above the idle count that still count as settled.
const SETTLED_FDS: u64 = 2;
const SETTLE_LIMIT: Duration = Duration::from_secs(15);

struct Args {
    proxy: PathBuf,
    work: PathBuf,
    out: Option<PathBuf>,
    requests: u64,
    connections: usize,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        proxy: PathBuf::new(),
        work: PathBuf::from("bench/soak/.work"),
        out: None,
        requests: 1_000_000,
        connections: 32,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--proxy" => args.proxy = value()?.into(),
            "--work" => args.work = value()?.into(),
            "--out" => args.out = Some(value()?.into()),
            "--requests" => args.requests = value()?.parse().context("--requests")?,
            "--connections" => args.connections = value()?.parse().context("--connections")?,
            other => bail!("unknown argument {other}"),
        }
    }
    if args.proxy.as_os_str().is_empty() {
        bail!("--proxy <path of the release proxy binary> is required");
    }
    if args.requests == 0 || args.connections == 0 {
        bail!("--requests and --connections must be at least 1");
    }
    Ok(args)
}

/// Answers per kind, and the unexpected ones.
#[derive(Default)]
pub struct Tally {
    pub sent: [AtomicU64; 7],
    pub unexpected: [AtomicU64; 7],
    pub first_failures: Mutex<Vec<String>>,
}

impl Tally {
    fn record(&self, kind: Kind, outcome: Result<(), String>) {
        self.sent[kind.index()].fetch_add(1, Ordering::Relaxed);
        if let Err(failure) = outcome {
            self.unexpected[kind.index()].fetch_add(1, Ordering::Relaxed);
            if let Ok(mut first) = self.first_failures.lock()
                && first.len() < PRINTED_FAILURES
            {
                eprintln!("unexpected: {failure}");
                first.push(failure);
            }
        }
    }

    pub fn total_unexpected(&self) -> u64 {
        self.unexpected
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum()
    }
}

/// Config saves made and applied while the load ran.
#[derive(Default)]
pub struct Saves {
    pub made: AtomicU64,
    pub applied: AtomicU64,
    pub errors: Mutex<Vec<String>>,
}

/// Sends requests `range` over `connections` concurrent clients.
async fn load(
    http: &reqwest::Client,
    proxy: SocketAddr,
    range: std::ops::Range<u64>,
    connections: usize,
    tally: &Arc<Tally>,
) {
    let next = Arc::new(AtomicU64::new(range.start));
    let mut tasks = Vec::with_capacity(connections);
    for _ in 0..connections {
        let (http, next, tally, end) = (http.clone(), next.clone(), tally.clone(), range.end);
        tasks.push(tokio::spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= end {
                    break;
                }
                let outcome = mix::run(&http, proxy, n).await;
                tally.record(Kind::of(n), outcome);
            }
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
}

/// Saves the config every [`SAVE_EVERY`] until `stop`, checking that each save is applied.
async fn save_periodically(stack: Arc<Stack>, saves: Arc<Saves>, stop: Arc<AtomicBool>) {
    let mut ticks = tokio::time::interval(SAVE_EVERY);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        if stop.load(Ordering::Relaxed) {
            return;
        }
        saves.made.fetch_add(1, Ordering::Relaxed);
        match stack.save_config().await {
            Ok(_) => {
                saves.applied.fetch_add(1, Ordering::Relaxed);
            }
            Err(err) => {
                eprintln!("config save not applied: {err:#}");
                if let Ok(mut errors) = saves.errors.lock() {
                    errors.push(format!("{err:#}"));
                }
            }
        }
    }
}

/// Waits until the proxy holds no request body and its descriptors are back to within
/// [`SETTLED_FDS`] of `idle` (the count before any load; the load's own connections are closed
/// by then), or for at most [`SETTLE_LIMIT`]: the proxy may keep idle upstream connections
/// until its pool next looks at them. Then reads its memory and descriptors.
async fn probe_when_quiet(stack: &Stack, idle: Probe) -> anyhow::Result<Probe> {
    stack.wait_quiet().await?;
    let settled =
        test_support::wait_until("the proxy's descriptors to settle", SETTLE_LIMIT, || {
            let fds = stack.probe().map(|p| p.fds).unwrap_or(u64::MAX);
            async move { fds <= idle.fds + SETTLED_FDS }
        })
        .await;
    if let Err(err) = settled {
        eprintln!("note: {err}");
    }
    stack.check_running()?;
    stack.probe()
}

/// A fresh client per part of the load, dropped (its connections closed) before each probe.
fn load_client(connections: usize) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .pool_max_idle_per_host(connections)
        .build()?)
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

async fn soak(args: Args) -> anyhow::Result<bool> {
    let load_before = load_average();
    let stack = Arc::new(Stack::start(&args.proxy, &args.work).await?);
    let version = stack.status().await?["version"]
        .as_str()
        .unwrap_or("unknown")
        .to_string();
    let idle = stack.probe()?;
    let tally = Arc::new(Tally::default());
    let saves = Arc::new(Saves::default());
    let stop = Arc::new(AtomicBool::new(false));
    let saver = tokio::spawn(save_periodically(
        stack.clone(),
        saves.clone(),
        stop.clone(),
    ));
    eprintln!(
        "soak: {} requests over {} connections against proxy {version} (pid {})",
        args.requests,
        args.connections,
        stack.pid()
    );

    let started = Instant::now();
    let first_part = args.requests.min(FIRST_PROBE_AFTER);
    let http = load_client(args.connections)?;
    load(
        &http,
        stack.proxy_addr,
        0..first_part,
        args.connections,
        &tally,
    )
    .await;
    drop(http);
    let mut busy = started.elapsed();
    let at_first = probe_when_quiet(&stack, idle).await?;
    eprintln!(
        "after {first_part} requests ({:.0} s): RSS {} KiB, {} open fds, {} unexpected",
        busy.as_secs_f64(),
        at_first.rss_kib,
        at_first.fds,
        tally.total_unexpected()
    );
    let resumed = Instant::now();
    let http = load_client(args.connections)?;
    load(
        &http,
        stack.proxy_addr,
        first_part..args.requests,
        args.connections,
        &tally,
    )
    .await;
    drop(http);
    busy += resumed.elapsed();
    stop.store(true, Ordering::Relaxed);
    let _ = saver.await;
    let at_end = probe_when_quiet(&stack, idle).await?;
    let generation = stack.generation().await?;

    let figures = report::Figures {
        requests: args.requests,
        connections: args.connections,
        first_part,
        busy,
        tally: &tally,
        saves: &saves,
        generation,
        idle,
        at_first,
        at_end,
        max_growth_percent: MAX_GROWTH_PERCENT,
        proxy_version: version,
        load_before,
        load_after: load_average(),
    };
    let section = report::section(&figures);
    println!("{section}");
    if let Some(out) = &args.out {
        report::write_section(out, &section)?;
        eprintln!("wrote the Soak section of {}", out.display());
    }
    Ok(figures.all_met())
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> std::process::ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(err) => {
            eprintln!("soak: {err:#}");
            return std::process::ExitCode::from(2);
        }
    };
    match soak(args).await {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("soak: a target was missed");
            std::process::ExitCode::FAILURE
        }
        Err(err) => {
            eprintln!("soak: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
