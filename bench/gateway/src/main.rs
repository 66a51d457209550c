//! `gateway-bench`: starts the fake upstream, the proxy and Caddy, measures each scenario of
//! the gateway benchmark against the direct path in the same run, and writes the "## Gateway"
//! section of docs/benchmarks.md. `bench/gateway/run.sh` builds everything and runs it.

mod client;
mod events;
mod key_limits;
mod load;
mod processes;
mod redis_server;
mod report;
mod scenarios;
mod stack;
mod tap;
mod translation;
mod usage_history;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;

use crate::report::{Machine, Results};
use crate::scenarios::{Bench, IdleRow, Plan};
use crate::stack::{Binaries, Stack};

const USAGE: &str = "usage: gateway-bench [--bin-dir DIR] [--out FILE] [--work DIR] \
[--caddy PATH] [--control PATH] [--redis-server PATH] [--proxy-log FILE] [--quick] \
[--only 1,2,3,4,5,6,7,8,9,10,11] [--command TEXT]";

struct Args {
    bin_dir: PathBuf,
    out: Option<PathBuf>,
    work: PathBuf,
    caddy: Option<PathBuf>,
    control: Option<PathBuf>,
    /// `redis-server` for scenario 9; found on PATH (or in /usr/bin, /usr/sbin) when not given.
    redis_server: Option<PathBuf>,
    proxy_log: Option<PathBuf>,
    plan: Plan,
    only: Option<Vec<u8>>,
    command: String,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        bin_dir: PathBuf::from("target/release"),
        out: None,
        work: PathBuf::from("bench/gateway/.work"),
        caddy: None,
        control: None,
        redis_server: None,
        proxy_log: None,
        plan: Plan::full(),
        only: None,
        command: "bench/gateway/run.sh".into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--bin-dir" => args.bin_dir = PathBuf::from(value()?),
            "--out" => args.out = Some(PathBuf::from(value()?)),
            "--work" => args.work = PathBuf::from(value()?),
            "--caddy" => args.caddy = Some(PathBuf::from(value()?)).filter(|p| p.exists()),
            "--control" => args.control = Some(PathBuf::from(value()?)).filter(|p| p.exists()),
            "--redis-server" => {
                args.redis_server = Some(PathBuf::from(value()?)).filter(|p| p.exists());
            }
            "--command" => args.command = value()?,
            "--proxy-log" => args.proxy_log = Some(PathBuf::from(value()?)),
            "--quick" => args.plan = Plan::quick(),
            "--only" => {
                let list = value()?;
                let parsed: Result<Vec<u8>, _> =
                    list.split(',').map(|n| n.trim().parse::<u8>()).collect();
                args.only = Some(parsed.map_err(|_| format!("--only: bad list {list:?}"))?);
            }
            "--help" | "-h" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(args)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            if !message.is_empty() {
                eprintln!("gateway-bench: {message}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("gateway-bench: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("gateway-bench: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let wanted = |n: u8| args.only.as_ref().is_none_or(|only| only.contains(&n));
    let mut machine = Machine::read();
    let bins = Binaries {
        proxy: args.bin_dir.join("proxy"),
        fake: args.bin_dir.join("fake-foundry"),
        control: args.control.clone(),
        caddy: args.caddy.clone(),
        proxy_log: args.proxy_log.clone(),
    };
    eprintln!(
        "starting the fake, the proxy and Caddy (work dir {})",
        args.work.display()
    );
    let mut stack = Stack::start(&bins, &args.work)
        .await
        .context("starting the stack")?;
    machine.caddy = match &stack.caddy {
        Some(_) => stack.caddy_note.clone(),
        None => String::new(),
    };
    let mut results = Results::default();
    if stack.caddy.is_none() {
        results.errors.push(format!(
            "Full stack through Caddy: {}. The Caddy rows are missing.",
            stack.caddy_note
        ));
    }

    if wanted(5) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let at_start = "at start, before any request";
        results
            .idle
            .push(scenarios::idle_row("proxy", &stack.proxy, at_start));
        if let Some(bin) = &bins.control {
            match stack::start_control(bin, &stack).await {
                Ok(control) => {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    results
                        .idle
                        .push(scenarios::idle_row("control", &control, at_start));
                }
                Err(err) => results.idle.push(IdleRow {
                    name: "control".into(),
                    rss_kib: None,
                    note: format!("did not start: {err:#}"),
                }),
            }
        } else {
            results.idle.push(IdleRow {
                name: "control".into(),
                rss_kib: None,
                note: "binary not built".into(),
            });
        }
        results.idle.push(match processes::idle_rss_of_fake_binary(&bins.fake) {
            Ok(kib) => IdleRow {
                name: "fake-foundry".into(),
                rss_kib: Some(kib),
                note: "the binary, 1 s after start (the scenarios serve the fake inside the load generator)".into(),
            },
            Err(err) => IdleRow {
                name: "fake-foundry".into(),
                rss_kib: None,
                note: format!("did not start: {err:#}"),
            },
        });
        if let Some((caddy, _)) = &stack.caddy {
            results
                .idle
                .push(scenarios::idle_row("caddy", caddy, at_start));
        }
    }

    let plan = args.plan;
    let mut bench = Bench {
        stack: &mut stack,
        plan,
    };
    if wanted(1) {
        eprintln!("1. added latency, one request at a time");
        results.latency = Some(scenarios::latency(&mut bench).await);
    }
    if wanted(2) {
        eprintln!("2. throughput");
        let fast = Duration::from_secs(plan.throughput_secs);
        results.throughput = scenarios::throughput(&mut bench, &[32, 256], 0, fast).await;
        let slow = Duration::from_secs(plan.slow_upstream_secs);
        let upstream_ms = scenarios::SLOW_UPSTREAM_MS;
        results
            .throughput
            .extend(scenarios::throughput(&mut bench, &[32, 256], upstream_ms, slow).await);
    }
    if wanted(6) {
        eprintln!("6. hot reload under load");
        match scenarios::reload_under_load(&mut bench).await {
            Ok(r) => results.reload = Some(r),
            Err(err) => results.errors.push(format!("Hot reload: {err:#}")),
        }
    }
    if wanted(3) {
        eprintln!("3. streaming");
        match scenarios::streaming(&mut bench).await {
            Ok(r) => results.streaming = r,
            Err(err) => results.errors.push(format!("Streaming: {err:#}")),
        }
    }
    if wanted(4) {
        eprintln!("4. {} concurrent streams", plan.long_streams);
        match scenarios::many_streams(&mut bench).await {
            Ok(r) => results.many_streams = r,
            Err(err) => results.errors.push(format!("Concurrent streams: {err:#}")),
        }
        eprintln!("4. again through the proxy, with the original's server.upstream.pool");
        match scenarios::many_streams_original_pool(&mut bench).await {
            Ok(r) => results.many_streams_original = Some(r),
            Err(err) => results.errors.push(format!(
                "Concurrent streams with the original's pool settings: {err:#}"
            )),
        }
    }
    let mut proxy_after = Vec::new();
    if wanted(5) && wanted(4) {
        tokio::time::sleep(Duration::from_secs(2)).await;
        proxy_after.push(scenarios::idle_row(
            "proxy",
            &bench.stack.proxy,
            "idle, 2 s after scenarios 1 to 4 (before any image)",
        ));
    }
    if wanted(7) {
        eprintln!("7. a request with a 2 MB image");
        match scenarios::image_request(&mut bench).await {
            Ok(r) => results.image = Some(r),
            Err(err) => results.errors.push(format!("Image request: {err:#}")),
        }
    }
    if wanted(5) && wanted(7) {
        tokio::time::sleep(Duration::from_secs(2)).await;
        proxy_after.push(scenarios::idle_row(
            "proxy",
            &stack.proxy,
            "idle, 2 s after the image requests of scenario 7",
        ));
    }
    if wanted(8) {
        eprintln!("8. a pool with throttling");
        let mut bench = Bench {
            stack: &mut stack,
            plan,
        };
        match scenarios::pool_throttling(&mut bench).await {
            Ok(r) => results.pool = Some(r),
            Err(err) => results
                .errors
                .push(format!("Pool with throttling: {err:#}")),
        }
    }
    if !results.idle.is_empty() {
        for (i, row) in proxy_after.into_iter().enumerate() {
            results.idle.insert(1 + i, row);
        }
    }
    if wanted(9) {
        eprintln!("9. key limits, one request at a time");
        let redis = args.redis_server.clone().or_else(redis_server::find);
        let mut bench = Bench {
            stack: &mut stack,
            plan,
        };
        results.key_limits =
            Some(key_limits::key_limits(&mut bench, &bins, redis.as_deref()).await);
    }
    if wanted(10) {
        eprintln!("10. chat ⇄ Responses translation");
        let mut bench = Bench {
            stack: &mut stack,
            plan,
        };
        match translation::translation(&mut bench).await {
            Ok(r) => results.translation = Some(r),
            Err(err) => results.errors.push(format!("Translation: {err:#}")),
        }
    }
    if wanted(11) {
        eprintln!("11. usage history: the request path, and a year on disk and in memory");
        let mut bench = Bench {
            stack: &mut stack,
            plan,
        };
        results.usage_history = Some(usage_history::usage_history(&mut bench, &bins).await);
    }
    stack.check_running()?;
    machine.load_end = report::load_average();

    let section = report::render(&machine, &results, &args.command);
    let copy = args.work.join("gateway.md");
    std::fs::write(&copy, &section)?;
    for verdict in report::verdicts(&results) {
        eprintln!(
            "{:<8} {} — {}",
            if verdict.met { "met" } else { "MISSED" },
            verdict.target,
            verdict.measured
        );
    }
    match &args.out {
        Some(out) => {
            report::write_section(out, &section)?;
            eprintln!("wrote the Gateway section of {}", out.display());
        }
        None => eprintln!("wrote {}", copy.display()),
    }
    Ok(())
}
