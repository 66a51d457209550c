//! Turns the figures into the "## Gateway" section of docs/benchmarks.md (between its own
//! markers, so other sections of the file are left as they are) and checks them against the
//! targets of the issue.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use crate::key_limits::{KeyLimitsResult, LimitCase};
use crate::load::Dist;
use crate::scenarios::{
    IdleRow, ImageResult, LatencyResult, ManyStreamsResult, POOL_CONNECTIONS, PoolResult, PoolRow,
    ReloadResult, SLOW_UPSTREAM_MS, STREAM_CHUNKS, STREAM_GAP_MS, StreamResult, ThroughputRow, Via,
};
use crate::stack::{self, PoolSettings};
use crate::translation::{TranslationCase, TranslationResult};
use crate::usage_history::{self, HistoryCase, UsageHistoryResult};

const BEGIN: &str = "<!-- gateway:begin -->";
const END: &str = "<!-- gateway:end -->";
const INTRO: &str = "# Benchmarks\n\nMeasured performance of the gateway; each section says how and on what machine.\n";

pub struct Machine {
    pub cpu: String,
    pub cores: usize,
    pub memory_gib: f64,
    pub kernel: String,
    pub date: String,
    pub load_start: String,
    pub load_end: String,
    pub rustc: String,
    pub caddy: String,
    pub open_files: Option<u64>,
}

impl Machine {
    pub fn read() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .and_then(|l| l.split_once(':'))
            .map_or_else(|| "unknown".into(), |(_, v)| v.trim().to_string());
        let memory_gib = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| {
                m.lines()
                    .find_map(|l| l.strip_prefix("MemTotal:"))
                    .and_then(|v| v.split_whitespace().next())
                    .and_then(|v| v.parse::<f64>().ok())
            })
            .map_or(0.0, |kib| kib / 1024.0 / 1024.0);
        let date = std::process::Command::new("date")
            .args(["-u", "+%Y-%m-%d %H:%M UTC"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default();
        Machine {
            cpu,
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            memory_gib,
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .unwrap_or_default()
                .trim()
                .to_string(),
            date,
            load_start: load_average(),
            load_end: String::new(),
            rustc: std::env::var("RUSTC_VERSION").unwrap_or_else(|_| "rustc".into()),
            caddy: String::new(),
            open_files: crate::processes::open_files_limit(),
        }
    }
}

pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

#[derive(Default)]
pub struct Results {
    pub latency: Option<LatencyResult>,
    pub throughput: Vec<ThroughputRow>,
    pub streaming: Vec<StreamResult>,
    pub many_streams: Vec<ManyStreamsResult>,
    /// Scenario 4 again through the proxy, with the original gateway's pool settings.
    pub many_streams_original: Option<ManyStreamsResult>,
    pub idle: Vec<IdleRow>,
    pub reload: Option<ReloadResult>,
    pub image: Option<ImageResult>,
    pub pool: Option<PoolResult>,
    pub key_limits: Option<KeyLimitsResult>,
    pub translation: Option<TranslationResult>,
    pub usage_history: Option<UsageHistoryResult>,
    pub errors: Vec<String>,
}

/// One target of the issue and whether this run met it.
pub struct Verdict {
    pub target: String,
    pub measured: String,
    pub met: bool,
}

fn us(ns: u64) -> String {
    let us = ns as f64 / 1000.0;
    if us.abs() >= 100.0 {
        format!("{us:.0} µs")
    } else {
        format!("{us:.1} µs")
    }
}

fn us_signed(ns: i64) -> String {
    let us = ns as f64 / 1000.0;
    if us.abs() >= 100.0 {
        format!("{us:+.0} µs")
    } else {
        format!("{us:+.1} µs")
    }
}

fn ms(ns: u64) -> String {
    format!("{:.1} ms", ns as f64 / 1e6)
}

fn ms2(ns: u64) -> String {
    format!("{:.2} ms", ns as f64 / 1e6)
}

fn ms2_signed(ns: i64) -> String {
    format!("{:+.2} ms", ns as f64 / 1e6)
}

fn secs(d: Option<Duration>) -> String {
    d.map_or_else(|| "–".into(), |d| format!("{:.2} s", d.as_secs_f64()))
}

/// Tolerances of the targets of scenarios 4 (with the original pool settings) and 8.
const SLOWEST_STREAM_MARGIN: Duration = Duration::from_millis(500);
const POOL_P50_MARGIN_NS: u64 = 1_000_000;

/// Target of scenario 11: what the usage history may add to the p50.
const HISTORY_NS: i64 = 5_000;

/// Scenario 10's p50 difference, history on against off.
fn history_cost(r: &UsageHistoryResult) -> Option<i64> {
    let on = r.row(HistoryCase::On)?.q(0.5);
    let off = r.row(HistoryCase::Off)?.q(0.5);
    Some(diff(on, off))
}

/// Targets of scenario 9: what counting a key's limits may add to the p50.
const IN_PROCESS_LIMITS_NS: i64 = 5_000;
const REDIS_LIMITS_NS: i64 = 150_000;
const TRANSLATION_NS: i64 = 50_000;

/// Scenario 9's p50 differences: limits in the process against no limits, and limits in Redis
/// against limits in the process (when measured, and valid).
struct LimitsCosts {
    in_process: Option<i64>,
    redis: Option<i64>,
}

fn limits_costs(r: &KeyLimitsResult) -> LimitsCosts {
    let p50 = |case| r.row(case).map(|d| d.q(0.5));
    let none = p50(LimitCase::NoLimits);
    let in_process = p50(LimitCase::InProcess);
    let redis = p50(LimitCase::Redis).filter(|_| r.redis_version.is_some());
    LimitsCosts {
        in_process: in_process.zip(none).map(|(a, b)| diff(a, b)),
        redis: redis.zip(in_process).map(|(a, b)| diff(a, b)),
    }
}

/// The slowest stream of the run with the original pool settings, and direct's.
fn original_pool_streams(results: &Results) -> Option<(&ManyStreamsResult, Option<Duration>)> {
    let original = results.many_streams_original.as_ref()?;
    let direct = results
        .many_streams
        .iter()
        .find(|r| r.via == Via::Direct)
        .and_then(|r| r.slowest);
    Some((original, direct))
}

fn original_pool_met(original: &ManyStreamsResult, direct: Option<Duration>) -> bool {
    original.completed == original.started
        && matches!(
            (original.slowest, direct),
            (Some(slowest), Some(direct)) if slowest <= direct + SLOWEST_STREAM_MARGIN
        )
}

/// The pool without 429s and the one with them.
fn pool_rows(pool: &PoolResult) -> Option<(&PoolRow, &PoolRow)> {
    let clean = pool.rows.iter().find(|r| !r.throttled)?;
    let throttled = pool.rows.iter().find(|r| r.throttled)?;
    Some((clean, throttled))
}

/// 429s the throttling deployment sent during the run.
fn throttles_sent(row: &PoolRow) -> u64 {
    row.deployments.iter().map(|d| d.throttled).sum()
}

fn pool_met(clean: &PoolRow, throttled: &PoolRow) -> bool {
    let p50 = diff(throttled.run.latency.q(0.5), clean.run.latency.q(0.5));
    throttled.run.failures.total() == 0
        && throttled.run.ok > 0
        && throttles_sent(throttled) > 0
        && p50.unsigned_abs() <= POOL_P50_MARGIN_NS
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn diff(a: u64, b: u64) -> i64 {
    a as i64 - b as i64
}

fn find(rows: &[(Via, Dist)], via: Via) -> Option<&Dist> {
    rows.iter().find(|(v, _)| *v == via).map(|(_, d)| d)
}

pub fn verdicts(results: &Results) -> Vec<Verdict> {
    let mut out = Vec::new();
    if let Some(lat) = &results.latency
        && let (Some(d), Some(p)) = (find(&lat.rows, Via::Direct), find(&lat.rows, Via::Proxy))
    {
        let p50 = diff(p.q(0.5), d.q(0.5));
        let p99 = diff(p.q(0.99), d.q(0.99));
        out.push(Verdict {
            target: "added latency p50 ≤ 100 µs, p99 ≤ 300 µs (one request at a time)".into(),
            measured: format!("p50 {}, p99 {}", us_signed(p50), us_signed(p99)),
            met: p50 <= 100_000 && p99 <= 300_000,
        });
    }
    let at32 = |via: Via| {
        results
            .throughput
            .iter()
            .find(|r| r.connections == 32 && r.via == via && r.upstream_ms == 0)
    };
    if let (Some(d), Some(p)) = (at32(Via::Direct), at32(Via::Proxy)) {
        let ratio = p.run.rps() / d.run.rps().max(1e-9);
        out.push(Verdict {
            target: "at 32 connections, at least half the direct throughput".into(),
            measured: format!(
                "{:.0} vs {:.0} req/s: {:.2} of direct",
                p.run.rps(),
                d.run.rps(),
                ratio
            ),
            met: ratio >= 0.5,
        });
    }
    let stream = |via: Via| results.streaming.iter().find(|r| r.via == via);
    if let (Some(d), Some(p)) = (stream(Via::Direct), stream(Via::Proxy)) {
        let added = diff(p.event_delay.q(0.99), d.event_delay.q(0.99));
        out.push(Verdict {
            target: "per-chunk delay added ≤ 1 ms at p99; no chunk held back".into(),
            measured: format!(
                "p99 {}; {} of {} events held back until the next (direct: {}); slowest event {} \
                 (chunks are {STREAM_GAP_MS} ms apart); {} streams failed",
                us_signed(added),
                p.held_back,
                p.event_delay.len(),
                d.held_back,
                us(p.event_delay.max()),
                p.failures.total()
            ),
            met: added <= 1_000_000 && p.held_back == 0 && p.failures.total() == 0,
        });
    }
    if let Some(p) = results.many_streams.iter().find(|r| r.via == Via::Proxy) {
        let rss = p
            .processes
            .iter()
            .find(|x| x.name == "proxy")
            .and_then(|x| x.rss_peak_kib)
            .unwrap_or(0);
        out.push(Verdict {
            target: format!(
                "{} concurrent streams all complete in ≤ 100 MB RSS",
                p.started
            ),
            measured: format!(
                "{} of {} complete, proxy peak RSS {}",
                p.completed,
                p.started,
                mib(rss)
            ),
            met: p.completed == p.started && rss * 1024 <= 100 * 1000 * 1000,
        });
    }
    if let Some((original, direct)) = original_pool_streams(results) {
        out.push(Verdict {
            target: format!(
                "{} concurrent streams with the original's pool settings (`connections` 64): all \
                 complete, the slowest ends no later than direct's slowest + 0.5 s",
                original.started
            ),
            measured: format!(
                "{} of {} complete; slowest {} (direct {})",
                original.completed,
                original.started,
                secs(original.slowest),
                secs(direct)
            ),
            met: original_pool_met(original, direct),
        });
    }
    if let Some((clean, throttled)) = results.pool.as_ref().and_then(pool_rows) {
        let p50 = diff(throttled.run.latency.q(0.5), clean.run.latency.q(0.5));
        out.push(Verdict {
            target: "a pool whose second deployment refuses every second request (429): no 429 \
                     or other failure reaches the client, p50 within 1 ms of the same pool \
                     without 429s"
                .into(),
            measured: format!(
                "{} requests, {} client 429s, {} other failures; {} 429s absorbed; p50 {} vs {} \
                 ({})",
                throttled.requests(),
                throttled.client_429s(),
                throttled.run.failures.total() - throttled.client_429s(),
                throttles_sent(throttled),
                ms2(throttled.run.latency.q(0.5)),
                ms2(clean.run.latency.q(0.5)),
                ms2_signed(p50)
            ),
            met: pool_met(clean, throttled),
        });
    }
    if let Some(r) = &results.key_limits {
        let costs = limits_costs(r);
        let p50 = |case| r.row(case).map_or_else(|| "–".into(), |d| us(d.q(0.5)));
        if let Some(added) = costs.in_process {
            out.push(Verdict {
                target: "a key with limits counted in the process: p50 within 5 µs of a key \
                         without limits (one request at a time)"
                    .into(),
                measured: format!(
                    "p50 {} vs {} ({})",
                    p50(LimitCase::InProcess),
                    p50(LimitCase::NoLimits),
                    us_signed(added)
                ),
                met: added <= IN_PROCESS_LIMITS_NS,
            });
        }
        if r.row(LimitCase::Redis).is_some() {
            out.push(Verdict {
                target: "the same limits counted in Redis: p50 ≤ 150 µs more than counted in \
                         the process"
                    .into(),
                measured: match costs.redis {
                    Some(added) => format!(
                        "p50 {} vs {} ({})",
                        p50(LimitCase::Redis),
                        p50(LimitCase::InProcess),
                        us_signed(added)
                    ),
                    None => r.redis_note.clone().unwrap_or_default(),
                },
                met: costs.redis.is_some_and(|added| added <= REDIS_LIMITS_NS),
            });
        }
    }
    if let Some(r) = &results.translation {
        out.extend(translation_verdicts(r));
    }
    if let Some(r) = &results.usage_history
        && let Some(added) = history_cost(r)
    {
        let p50 = |case| r.row(case).map_or_else(|| "–".into(), |d| us(d.q(0.5)));
        out.push(Verdict {
            target:
                "usage history on: p50 within 5 µs of the proxy without it (one request at a time)"
                    .into(),
            measured: format!(
                "p50 {} vs {} ({})",
                p50(HistoryCase::On),
                p50(HistoryCase::Off),
                us_signed(added)
            ),
            met: added <= HISTORY_NS,
        });
    }
    for row in &results.idle {
        if let Some(kib) = row.rss_kib
            && (row.name == "proxy" || row.name == "control")
            && row.note.contains("start")
        {
            out.push(Verdict {
                target: format!("idle RSS ≤ 20 MB ({})", row.name),
                measured: mib(kib),
                met: kib * 1024 <= 20 * 1000 * 1000,
            });
        }
    }
    if let Some(r) = &results.reload {
        out.push(Verdict {
            target: "zero failed requests during reloads".into(),
            measured: format!(
                "{} failed of {}; {} reloads applied",
                r.run.failures.total(),
                r.run.ok + r.run.failures.total(),
                r.applied
            ),
            met: r.run.failures.total() == 0 && r.applied > 0 && r.last_applied,
        });
    }
    out
}

pub fn render(machine: &Machine, results: &Results, command: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "{BEGIN}\n## Gateway\n");
    let _ = writeln!(
        s,
        "The proxy measured against the fake upstream it fronts, and Caddy + proxy (the full \
         stack) against the proxy alone, all in one run of `{command}`."
    );
    let _ = writeln!(s);
    let _ = writeln!(s, "### Machine and method\n");
    let _ = writeln!(
        s,
        "- Machine: {}, {} cores, {:.0} GiB; Linux {}; {}. Load average (1, 5, 15 min) {} at \
         the start, {} at the end.",
        machine.cpu,
        machine.cores,
        machine.memory_gib,
        machine.kernel,
        machine.date,
        machine.load_start,
        machine.load_end
    );
    let _ = writeln!(
        s,
        "- Built with {}, release profile. Caddy: {}.",
        machine.rustc,
        if machine.caddy.is_empty() {
            "not run"
        } else {
            &machine.caddy
        }
    );
    let _ = writeln!(
        s,
        "- Processes, all on the same {} cores and none pinned: the `proxy` release binary \
         (default workers: one per core; default log level, a JSON line per request, written \
         to /dev/null), Caddy (`reverse_proxy` with `flush_interval -1`), and the load \
         generator `gateway-bench` (tokio, {} threads, its own HTTP/1.1 keep-alive client). \
         The fake upstream is `fake_foundry::serve` with 2 workers on its own threads inside \
         `gateway-bench`, listening with a backlog of 4,096 (as the `fake-foundry` binary \
         does); its CPU is read from its threads.",
        machine.cores, machine.cores
    );
    let _ = writeln!(
        s,
        "- Proxy config: `auth.mode` `apiKey`, `server.upstream.pool.connections` 0 and \
         `keepAliveTimeoutMs` 4000 (below the fake's 5 s idle timeout, as it must be below any \
         upstream's; the last run of scenario 4 changes them), image \
         compression on (the default; a body without images costs it two substring searches). The client sends model `bench`, which the proxy \
         maps to deployment `bench-deployment`, so every body is rewritten. Requests are a small \
         chat completion (about 250 bytes; the answer about 600 bytes, no delay in the fake)."
    );
    let _ = writeln!(
        s,
        "- \"Added\" figures subtract quantiles of the direct path from the same quantiles \
         through the gateway, measured in the same run. Latency runs from writing the request \
         to reading the last byte of the answer."
    );
    if let Some(limit) = machine.open_files {
        let _ = writeln!(s, "- Open files limit of the run: {limit}.");
    }
    let _ = writeln!(s);

    let verdicts = verdicts(results);
    if !verdicts.is_empty() {
        let _ = writeln!(s, "### Targets\n");
        let _ = writeln!(s, "| target | this run | |\n| --- | --- | --- |");
        for v in &verdicts {
            let _ = writeln!(
                s,
                "| {} | {} | {} |",
                v.target,
                v.measured,
                if v.met { "met" } else { "**missed**" }
            );
        }
        let _ = writeln!(s);
    }

    render_misses(&mut s, machine, results, &verdicts);

    if let Some(lat) = &results.latency {
        render_latency(&mut s, lat);
    }
    if !results.throughput.is_empty() {
        render_throughput(&mut s, &results.throughput);
    }
    if !results.streaming.is_empty() {
        render_streaming(&mut s, &results.streaming);
    }
    if !results.many_streams.is_empty() || results.many_streams_original.is_some() {
        render_many(&mut s, results);
    }
    if !results.idle.is_empty() {
        let _ = writeln!(s, "### 5. Idle memory (RSS)\n");
        let _ = writeln!(s, "| binary | RSS | when |\n| --- | ---: | --- |");
        for row in &results.idle {
            let rss = row.rss_kib.map_or_else(|| "not measured".into(), mib);
            let _ = writeln!(s, "| {} | {} | {} |", row.name, rss, row.note);
        }
        let _ = writeln!(
            s,
            "\nAfter load, the proxy keeps what its allocator and its image workers have taken: \
             freed connection buffers stay with the allocator, and each image worker keeps its \
             pixel buffers for the next image."
        );
        let _ = writeln!(s);
    }
    if let Some(r) = &results.reload {
        render_reload(&mut s, r, &results.throughput);
    }
    if let Some(img) = &results.image {
        render_image(&mut s, img);
    }
    if let Some(pool) = &results.pool {
        render_pool(&mut s, pool);
    }
    if let Some(r) = &results.key_limits {
        render_key_limits(&mut s, r);
    }
    if let Some(r) = &results.translation {
        render_translation(&mut s, r);
    }
    if let Some(r) = &results.usage_history {
        render_usage_history(&mut s, r);
    }
    if !results.errors.is_empty() {
        let _ = writeln!(s, "### Not measured\n");
        for e in &results.errors {
            let _ = writeln!(s, "- {e}");
        }
        let _ = writeln!(s);
    }
    let _ = writeln!(s, "{END}");
    s
}

/// What the figures of this run say about each missed target.
fn render_misses(s: &mut String, machine: &Machine, results: &Results, verdicts: &[Verdict]) {
    let missed = |prefix: &str| {
        verdicts
            .iter()
            .any(|v| !v.met && v.target.starts_with(prefix))
    };
    let mut notes = Vec::new();
    if missed("added latency")
        && let Some(lat) = &results.latency
        && let (Some(d), Some(p)) = (find(&lat.rows, Via::Direct), find(&lat.rows, Via::Proxy))
    {
        notes.push(format!(
            "Added latency: through the proxy a request makes two more loopback hops (client → \
             proxy → fake and back), and each wakes a sleeping thread. The direct path, two hops \
             and the fake's own work, takes {} at p50; the proxy path {}.",
            us(d.q(0.5)),
            us(p.q(0.5))
        ));
    }
    let row = |via: Via, upstream_ms: u64| {
        results
            .throughput
            .iter()
            .find(|r| r.connections == 32 && r.via == via && r.upstream_ms == upstream_ms)
    };
    let cpu = |r: &ThroughputRow, name: &str| {
        r.cpu
            .iter()
            .find(|(n, _)| *n == name)
            .map_or(0.0, |(_, secs)| secs * 1e6 / r.run.ok.max(1) as f64)
    };
    if missed("at 32 connections")
        && let (Some(d), Some(p)) = (row(Via::Direct, 0), row(Via::Proxy, 0))
    {
        let direct = cpu(d, "fake-foundry") + cpu(d, "load generator");
        let around = cpu(p, "fake-foundry") + cpu(p, "load generator");
        let proxy = cpu(p, "proxy");
        let proxied = around + proxy;
        // Half the direct rate on the same cores needs at most twice the direct CPU in all.
        let allowed = (2.0 * direct - around).max(0.0);
        let fake = cpu(d, "fake-foundry");
        let compared = if allowed < 0.85 * fake {
            "less than what"
        } else if allowed > 1.15 * fake {
            "more than what"
        } else {
            "about what"
        };
        let mut note = format!(
            "Throughput: with no delay in the fake, the closed loop is bound by the CPU of the \
             {} shared cores. A direct request costs {direct:.0} µs of CPU in all (fake and load \
             generator); through the proxy it costs {proxied:.0} µs, of which the proxy's own \
             {proxy:.0} µs (two receives and two sends on loopback, HTTP parsing and encoding on \
             both sides, the log line). That bounds the ratio near {:.2}. The fake and the load \
             generator alone take {around:.0} µs per request on this path ({direct:.0} µs on the \
             direct one), so half the direct rate would leave the proxy {allowed:.0} µs: \
             {compared} the fake spends on one plain exchange ({fake:.0} µs), while the proxy \
             serves one HTTP exchange and makes another. Profiled, about half of the proxy's CPU \
             is in the kernel (loopback TCP sends and receives, waking the threads of the other \
             processes), and most of its own instructions are in actix-web's HTTP/1 server and \
             awc's client.",
            machine.cores,
            direct / proxied.max(1e-9),
        );
        if let (Some(d20), Some(p20)) = (
            row(Via::Direct, SLOW_UPSTREAM_MS),
            row(Via::Proxy, SLOW_UPSTREAM_MS),
        ) {
            let _ = write!(
                note,
                " With an upstream that takes {SLOW_UPSTREAM_MS} ms, the proxy sustains {:.2} of \
                 the direct throughput.",
                p20.run.rps() / d20.run.rps().max(1e-9)
            );
        }
        notes.push(note);
    }
    for note in notes {
        let _ = writeln!(s, "- {note}");
    }
    if verdicts.iter().any(|v| !v.met) {
        let _ = writeln!(s);
    }
}

fn render_latency(s: &mut String, lat: &LatencyResult) {
    let n = lat.rows.first().map_or(0, |(_, d)| d.len());
    let _ = writeln!(s, "### 1. Added latency, one request at a time\n");
    let _ = writeln!(
        s,
        "{n} non-streaming requests per path on one keep-alive connection, in 10 interleaved \
         rounds. Failed requests: {}.\n",
        lat.failures.describe()
    );
    let _ = writeln!(
        s,
        "| path | p50 | p90 | p99 | mean |\n| --- | ---: | ---: | ---: | ---: |"
    );
    for (via, d) in &lat.rows {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} |",
            via.label(),
            us(d.q(0.5)),
            us(d.q(0.9)),
            us(d.q(0.99)),
            us(d.mean())
        );
    }
    let mut added = |label: &str, a: Via, b: Via| {
        if let (Some(x), Some(y)) = (find(&lat.rows, a), find(&lat.rows, b)) {
            let _ = writeln!(
                s,
                "| **{label}** | **{}** | {} | **{}** | {} |",
                us_signed(diff(x.q(0.5), y.q(0.5))),
                us_signed(diff(x.q(0.9), y.q(0.9))),
                us_signed(diff(x.q(0.99), y.q(0.99))),
                us_signed(diff(x.mean(), y.mean()))
            );
        }
    };
    added("added by the proxy", Via::Proxy, Via::Direct);
    added("added by Caddy", Via::Caddy, Via::Proxy);
    let _ = writeln!(s);
}

fn render_throughput(s: &mut String, all: &[ThroughputRow]) {
    let _ = writeln!(s, "### 2. Throughput, non-streaming\n");
    let _ = writeln!(
        s,
        "Each connection sends its next request as soon as the last is answered, for a fixed \
         time after a warm-up. CPU is user + system time of each process during the run, \
         divided by the successful requests. With no delay in the fake, every process competes \
         for the same 2 cores and the figures measure CPU cost; with a {SLOW_UPSTREAM_MS} ms \
         upstream, they measure what the gateway holds back when the upstream is not free.\n"
    );
    let mut delays: Vec<u64> = all.iter().map(|r| r.upstream_ms).collect();
    delays.dedup();
    for delay in delays {
        let rows: Vec<&ThroughputRow> = all.iter().filter(|r| r.upstream_ms == delay).collect();
        render_throughput_table(s, &rows, delay);
    }
}

fn render_throughput_table(s: &mut String, rows: &[&ThroughputRow], delay: u64) {
    let secs = rows.first().map_or(0.0, |r| r.run.elapsed.as_secs_f64());
    let what = if delay == 0 {
        "no delay in the fake".to_string()
    } else {
        format!("the fake answers after {delay} ms")
    };
    let _ = writeln!(s, "**{what}** ({secs:.0} s per row):\n");
    let _ = writeln!(
        s,
        "| connections | path | req/s | of direct | p50 | p99 | p99 vs direct | failed | CPU µs/request: fake · proxy · Caddy · load generator |\n| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
    );
    for row in rows {
        let direct = rows
            .iter()
            .find(|r| r.connections == row.connections && r.via == Via::Direct);
        let (ratio, p99_ratio) = direct.map_or((String::new(), String::new()), |d| {
            (
                format!("{:.2}", row.run.rps() / d.run.rps().max(1e-9)),
                format!(
                    "{:.2}×",
                    row.run.latency.q(0.99) as f64 / d.run.latency.q(0.99).max(1) as f64
                ),
            )
        });
        let per_request = |name: &str| {
            row.cpu
                .iter()
                .find(|(n, _)| *n == name)
                .map_or("–".to_string(), |(_, secs)| {
                    format!("{:.0}", secs * 1e6 / (row.run.ok.max(1) as f64))
                })
        };
        let caddy = if row.via == Via::Caddy {
            per_request("caddy")
        } else {
            "–".into()
        };
        let proxy = if row.via == Via::Direct {
            "–".into()
        } else {
            per_request("proxy")
        };
        let _ = writeln!(
            s,
            "| {} | {} | {:.0} | {} | {} | {} | {} | {} | {} · {} · {} · {} |",
            row.connections,
            row.via.label(),
            row.run.rps(),
            ratio,
            us(row.run.latency.q(0.5)),
            us(row.run.latency.q(0.99)),
            p99_ratio,
            row.run.failures.total(),
            per_request("fake-foundry"),
            proxy,
            caddy,
            per_request("load generator")
        );
    }
    let _ = writeln!(s);
}

fn render_streaming(s: &mut String, rows: &[StreamResult]) {
    let _ = writeln!(
        s,
        "### 3. Streaming: {STREAM_CHUNKS} chunks {STREAM_GAP_MS} ms apart, 32 concurrent streams\n"
    );
    let events = rows.first().map_or(0, |r| r.events_per_stream);
    let _ = writeln!(
        s,
        "A timing relay in front of the fake notes when each SSE event leaves it; the client \
         notes when the same event arrives ({events} events per stream). The event delay is \
         the time between the two, over every event of every stream; the relay is on every \
         path, so its own cost cancels out of the added figures. The 32 connections start \
         spread over the length of one stream, as independent clients would, and each starts \
         its next stream when the last ends. An event is held back when it reaches the client \
         in the same read as the next one although the fake sent them at least half a gap \
         apart. TTFB runs from writing the request to the first byte of the response.\n"
    );
    let _ = writeln!(
        s,
        "| path | streams | failed | events held back | TTFB p50 | TTFB p99 | event delay p50 | p99 | max |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    for r in rows {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.via.label(),
            r.streams,
            r.failures.total() + r.unmatched as u64,
            r.held_back,
            us(r.ttfb.q(0.5)),
            us(r.ttfb.q(0.99)),
            us(r.event_delay.q(0.5)),
            us(r.event_delay.q(0.99)),
            us(r.event_delay.max())
        );
    }
    let find = |via: Via| rows.iter().find(|r| r.via == via);
    let mut added = |label: &str, a: Via, b: Via| {
        if let (Some(x), Some(y)) = (find(a), find(b)) {
            let _ = writeln!(
                s,
                "| **{label}** | | | | **{}** | {} | **{}** | **{}** | |",
                us_signed(diff(x.ttfb.q(0.5), y.ttfb.q(0.5))),
                us_signed(diff(x.ttfb.q(0.99), y.ttfb.q(0.99))),
                us_signed(diff(x.event_delay.q(0.5), y.event_delay.q(0.5))),
                us_signed(diff(x.event_delay.q(0.99), y.event_delay.q(0.99)))
            );
        }
    };
    added("added by the proxy", Via::Proxy, Via::Direct);
    added("added by Caddy", Via::Caddy, Via::Proxy);
    let _ = writeln!(s);
}

fn render_many(s: &mut String, results: &Results) {
    let rows: Vec<&ManyStreamsResult> = results
        .many_streams
        .iter()
        .chain(&results.many_streams_original)
        .collect();
    let started = rows.first().map_or(0, |r| r.started);
    let _ = writeln!(s, "### 4. {started} concurrent streams, chunks 1 s apart\n");
    let _ = writeln!(
        s,
        "All clients connect and send at the same moment, each on a new connection. The slowest \
         stream runs from that moment to the last event of the stream that ended last. RSS is \
         sampled every 100 ms; \
         CPU is the average over the run, in percent of one core. The fake runs inside the \
         load generator's process, so it has no RSS of its own here.\n"
    );
    let _ = writeln!(
        s,
        "| path | complete | failed | slowest stream | wall time | process | RSS before | RSS peak | CPU |\n| --- | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: |"
    );
    for r in &rows {
        let relevant: Vec<_> = r
            .processes
            .iter()
            .filter(|p| match r.via {
                Via::Direct => p.name == "fake-foundry",
                Via::Proxy => p.name == "fake-foundry" || p.name == "proxy",
                Via::Caddy => p.name != "load generator",
            })
            .collect();
        let label = match r.pool {
            PoolSettings::Original => format!("{}, the original's pool settings", r.via.label()),
            PoolSettings::Unbounded => r.via.label().to_string(),
        };
        for (i, p) in relevant.iter().enumerate() {
            let head = if i == 0 {
                format!(
                    "{label} | {} of {} | {} | {} | {:.1} s",
                    r.completed,
                    r.started,
                    r.failures.total(),
                    secs(r.slowest),
                    r.elapsed.as_secs_f64()
                )
            } else {
                " | | | | ".into()
            };
            let _ = writeln!(
                s,
                "| {head} | {} | {} | {} | {:.0} % |",
                p.name,
                p.rss_before_kib.map_or_else(|| "–".into(), mib),
                p.rss_peak_kib.map_or_else(|| "–".into(), mib),
                p.cpu_seconds * 100.0 / r.elapsed.as_secs_f64().max(1e-9)
            );
        }
    }
    let _ = writeln!(s);
    if let Some((original, direct)) = original_pool_streams(results) {
        let verdict = if original_pool_met(original, direct) {
            "met"
        } else {
            "**missed**"
        };
        let _ = writeln!(
            s,
            "The last row is the same burst through the proxy after a reload to the original \
             gateway's `server.upstream.pool`, all six keys as it shipped them: `{}`. The proxy \
             keeps at most 64 connections per worker thread for reuse; every stream beyond them \
             goes out at once on a connection of its own. Those settings keep an idle connection \
             60 s, longer than the fake's 5 s, but no request of the burst can meet a connection \
             the fake closed: nothing goes upstream between the reload and the burst, and every \
             stream starts at once, so none finds an idle connection. Target: all complete, and \
             the slowest ends no later than direct's slowest + 0.5 s: {verdict} ({} of {} \
             complete, slowest {} against direct's {}).\n",
            PoolSettings::Original.json(),
            original.completed,
            original.started,
            secs(original.slowest),
            secs(direct)
        );
    }
}

fn render_key_limits(s: &mut String, r: &KeyLimitsResult) {
    let n = r.rows.first().map_or(0, |(_, d)| d.len());
    let _ = writeln!(s, "### 9. Key limits: the cost of counting\n");
    let _ = writeln!(
        s,
        "Scenario 1's method through the proxy only: model `{model}`, the same small chat \
         completion, one request at a time on one keep-alive connection, {n} requests per case \
         after 300 warm-up requests, in {rounds} interleaved rounds (each round starting with the \
         next case). The config holds two client keys: one without limits, and one with `{policy}`, \
         far above what the run sends, so every request is checked and counted and none is \
         refused. Failed requests: {failures}.\n",
        model = stack::MODEL,
        rounds = r.rounds,
        policy = stack::limited_key_policy(),
        failures = r.failures.describe()
    );
    match &r.redis_version {
        Some(version) => {
            let _ = writeln!(
                s,
                "`limits.redis` applies to the whole config, so the Redis cases run on a second \
                 proxy (a process of its own, same binary and same config plus `\"limits\": \
                 {{\"redis\": \"redis://127.0.0.1:<port>\"}}`) rather than by reloading the \
                 first one between rounds: each case keeps its warm process and connection, and \
                 no reload (which starts new windows) falls between the rounds compared. Redis is \
                 redis-server {version} on loopback, without persistence, on the same cores; \
                 after the run the second proxy's `/status` still reported Redis reachable and \
                 Redis held the counters.\n"
            );
        }
        None => {
            let _ = writeln!(
                s,
                "Note: {}.\n",
                r.redis_note
                    .as_deref()
                    .unwrap_or("the Redis rows are missing")
            );
        }
    }
    let _ = writeln!(
        s,
        "| key | proxy | p50 | p90 | p99 | mean | p50 − no limits |\n| --- | --- | ---: | ---: | ---: | ---: | ---: |"
    );
    let none = r.row(LimitCase::NoLimits).map(|d| d.q(0.5));
    for (case, d) in &r.rows {
        let added = match none {
            Some(none) if *case != LimitCase::NoLimits => us_signed(diff(d.q(0.5), none)),
            _ => String::new(),
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} |",
            case.key(),
            case.proxy(),
            us(d.q(0.5)),
            us(d.q(0.9)),
            us(d.q(0.99)),
            us(d.mean()),
            added
        );
    }
    let costs = limits_costs(r);
    let mut lines = Vec::new();
    if let Some(added) = costs.in_process {
        let verdict = if added <= IN_PROCESS_LIMITS_NS {
            "met"
        } else {
            "**missed**"
        };
        lines.push(format!(
            "Counting in the process adds {} at p50 (target: within 5 µs: {verdict}).",
            us_signed(added)
        ));
    }
    if let Some(added) = costs.redis {
        let verdict = if added <= REDIS_LIMITS_NS {
            "met"
        } else {
            "**missed**"
        };
        let same_proxy = r
            .row(LimitCase::Redis)
            .zip(r.row(LimitCase::RedisProxyNoLimits))
            .map_or_else(String::new, |(a, b)| {
                format!(
                    "; against the key without limits on the same second proxy, {}",
                    us_signed(diff(a.q(0.5), b.q(0.5)))
                )
            });
        lines.push(format!(
            "Counting in Redis instead adds {} at p50 over counting in the process (target: ≤ \
             150 µs: {verdict}){same_proxy}. A request of a key with limits makes one round trip \
             to Redis before it goes upstream; the tokens are added after the answer, without \
             making it wait.",
            us_signed(added)
        ));
    } else if r.redis_version.is_none() && r.row(LimitCase::Redis).is_some() {
        lines.push(format!(
            "The Redis rows are shown but not judged: {}.",
            r.redis_note.as_deref().unwrap_or("unknown")
        ));
    }
    if !lines.is_empty() {
        let _ = writeln!(s, "\n{}", lines.join(" "));
    }
    let _ = writeln!(s);
}

/// Translated minus untranslated, at p50: of the non-stream latency, and of the event delay.
fn translation_costs(r: &TranslationResult) -> (Option<i64>, Option<i64>) {
    let p50 = |d: &Dist| d.q(0.5);
    let latency = r
        .latency_of(TranslationCase::Translated)
        .zip(r.latency_of(TranslationCase::Untranslated))
        .map(|(t, u)| diff(p50(t), p50(u)));
    let events = r
        .event_delay_of(TranslationCase::Translated)
        .zip(r.event_delay_of(TranslationCase::Untranslated))
        .map(|(t, u)| diff(p50(t), p50(u)));
    (latency, events)
}

fn translation_verdicts(r: &TranslationResult) -> Vec<Verdict> {
    let (latency, events) = translation_costs(r);
    let mut out = Vec::new();
    let stream_failures: u64 = r.streams.iter().map(|s| s.failures.total()).sum();
    if let Some(added) = latency {
        out.push(Verdict {
            target: "a translated non-stream request (chat → Responses): p50 ≤ 50 µs more than \
                     the same deployment untranslated"
                .into(),
            measured: format!(
                "{} ({} failed requests)",
                us_signed(added),
                r.latency_failures.total()
            ),
            met: added <= TRANSLATION_NS && r.latency_failures.total() == 0,
        });
    }
    if let Some(added) = events {
        out.push(Verdict {
            target: "a translated stream: event delay p50 ≤ 50 µs more than untranslated".into(),
            measured: format!("{} ({stream_failures} failed streams)", us_signed(added)),
            met: added <= TRANSLATION_NS && stream_failures == 0,
        });
    }
    out
}

fn render_translation(s: &mut String, r: &TranslationResult) {
    let n = r.latency.first().map_or(0, |(_, d)| d.len());
    let _ = writeln!(
        s,
        "### 10. Chat ⇄ Responses translation
"
    );
    let _ = writeln!(
        s,
        "Both cases reach the same Responses-only deployment of the fake through the proxy and \
         get the same answer: a Responses client (`POST /v1/responses`) on a model without \
         translation, and a chat client (`POST /v1/chat/completions`, the same system and user \
         text) on a model with `\"routes\": {{\"chat/completions\": \"responses\"}}`, whose \
         request, answer and stream the proxy translates. Non-stream: scenario 1's method, one \
         request at a time on one keep-alive connection, {n} requests per case after 300 \
         warm-up requests, in {rounds} interleaved rounds. Failed requests: {failures}.\n",
        rounds = r.rounds,
        failures = r.latency_failures.describe()
    );
    let _ = writeln!(
        s,
        "| case | p50 | p90 | p99 | mean |\n| --- | ---: | ---: | ---: | ---: |"
    );
    for (case, d) in &r.latency {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} |",
            case.label(),
            us(d.q(0.5)),
            us(d.q(0.9)),
            us(d.q(0.99)),
            us(d.mean())
        );
    }
    let _ = writeln!(
        s,
        "\nStreams: {connections} connections streaming for the scenario's time in {rounds} \
         interleaved rounds, each stream {chunks} text deltas {gap} ms apart, through the timing tap. A translated stream has fewer events \
         than the one it comes from (the Responses bookkeeping events have no chat chunk), so \
         each event the client receives is paired with the last event that left the fake before \
         it arrived (the deltas are {gap} ms apart, far more than any delay measured), in both \
         cases alike.\n",
        connections = r.connections,
        rounds = r.stream_rounds,
        chunks = r.chunks,
        gap = r.gap_ms
    );
    let _ = writeln!(
        s,
        "| case | streams | events per stream | failed | event delay p50 | p90 | p99 |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    for row in &r.streams {
        let d = &row.event_delay;
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} |",
            row.case.label(),
            row.streams,
            row.events_per_stream,
            row.failures.total(),
            us(d.q(0.5)),
            us(d.q(0.9)),
            us(d.q(0.99))
        );
    }
    let (latency, events) = translation_costs(r);
    let verdict = |added: i64| {
        if added <= TRANSLATION_NS {
            "met"
        } else {
            "**missed**"
        }
    };
    let mut lines = Vec::new();
    if let Some(added) = latency {
        lines.push(format!(
            "Translating a non-stream request and its answer adds {} at p50 (target: ≤ 50 µs: {}).",
            us_signed(added),
            verdict(added)
        ));
    }
    if let Some(added) = events {
        lines.push(format!(
            "Translating a stream adds {} to each event's delay at p50 (target: ≤ 50 µs: {}).",
            us_signed(added),
            verdict(added)
        ));
    }
    if !lines.is_empty() {
        let _ = writeln!(s, "\n{}", lines.join(" "));
    }
    let _ = writeln!(s);
}

fn render_usage_history(s: &mut String, r: &UsageHistoryResult) {
    let n = r.rows.first().map_or(0, |(_, d)| d.len());
    let _ = writeln!(
        s,
        "### 11. Usage history: the cost of counting, and a year on disk and in memory\n"
    );
    let _ = writeln!(
        s,
        "Scenario 1's method through the proxy only: model `{model}`, one request at a time on \
         one keep-alive connection, {n} requests per case after 300 warm-up requests, in \
         {rounds} interleaved rounds. The history is on in the benchmark's proxy (its default); \
         a second proxy runs the same binary and config with `USAGE_HISTORY=off`. Failed \
         requests: {failures}.\n",
        model = stack::MODEL,
        rounds = r.rounds,
        failures = r.failures.describe()
    );
    if !r.rows.is_empty() {
        let _ = writeln!(
            s,
            "| history | p50 | p90 | p99 | mean | p50 − off |\n| --- | ---: | ---: | ---: | ---: | ---: |"
        );
        let off = r.row(HistoryCase::Off).map(|d| d.q(0.5));
        for (case, d) in &r.rows {
            let added = match off {
                Some(off) if *case != HistoryCase::Off => us_signed(diff(d.q(0.5), off)),
                _ => String::new(),
            };
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} |",
                case.label(),
                us(d.q(0.5)),
                us(d.q(0.9)),
                us(d.q(0.99)),
                us(d.mean()),
                added
            );
        }
        if let Some(added) = history_cost(r) {
            let verdict = if added <= HISTORY_NS {
                "met"
            } else {
                "**missed**"
            };
            let _ = writeln!(
                s,
                "\nThe history adds {} at p50 (target: within 5 µs: {verdict}).",
                us_signed(added)
            );
        }
        let _ = writeln!(s);
    }
    match &r.year {
        Err(err) => {
            let _ = writeln!(s, "The year was not measured: {err}.\n");
        }
        Ok(y) => {
            let _ = writeln!(
                s,
                "**A year of history.** {keys} client keys × {models} models (one deployment \
                 each): 1,000 series, every one of them in every bucket, which is what makes \
                 the history large (buckets hold only the series that had traffic). One request \
                 per series per minute in the last 48 hours, {per_hour} per series per hour in \
                 the 363 days before; {requests} requests with log-normal latencies around \
                 1.5 s, 1 % 429s, 0.5 % 5xx, 1 % cancelled. Default retention (minutes 48 h, \
                 hours 90 days, days for ever). Filled in `gateway-bench` through the proxy \
                 library's `History`: the hook's `record_at`, then `maintain` (sealing, roll-up, \
                 retention) and `persist`, as the proxy runs them, on a clock the filler sets; \
                 the proxy binary was then started on the data dir written.\n",
                keys = usage_history::KEYS,
                models = usage_history::MODELS,
                per_hour = usage_history::PER_HOUR,
                requests = y.requests,
            );
            let _ = writeln!(s, "| | |\n| --- | ---: |");
            let row = |s: &mut String, what: &str, value: String| {
                let _ = writeln!(s, "| {what} | {value} |");
            };
            for (name, bytes) in &y.files {
                row(s, &format!("`{name}`"), mb(*bytes));
            }
            row(
                s,
                "on disk, all files",
                format!("**{}**", mb(y.disk_bytes())),
            );
            row(
                s,
                "buckets kept (minutes, hours, days)",
                format!("{}, {}, {}", y.frames[0], y.frames[1], y.frames[2]),
            );
            row(s, "encoded buckets in memory", mb(y.frame_bytes as u64));
            row(
                s,
                "proxy RSS, 2 s after start: empty history → the year",
                format!(
                    "{} → {} (**+{}**)",
                    mib(y.rss_empty_kib),
                    mib(y.rss_year_kib),
                    mib(y.rss_year_kib.saturating_sub(y.rss_empty_kib))
                ),
            );
            row(
                s,
                "proxy RSS after the queries below",
                mib(y.rss_after_queries_kib),
            );
            row(
                s,
                "start until the ops listener answers: empty → the year",
                format!(
                    "{:.2} s → {:.2} s",
                    y.start_empty.as_secs_f64(),
                    y.start_year.as_secs_f64()
                ),
            );
            row(
                s,
                "time in the hook (`record_at`), per request",
                format!("{:.0} ns", y.record_ns),
            );
            row(
                s,
                "sealing, roll-up and retention over the year (`maintain`)",
                format!("{:.1} s", y.maintain.as_secs_f64()),
            );
            row(
                s,
                "writing all four files (`persist`)",
                format!("{:.2} s", y.persist.as_secs_f64()),
            );
            let _ = writeln!(
                s,
                "\n| query on the year | time | answer |\n| --- | ---: | ---: |"
            );
            for (query, took, bytes) in &y.queries {
                let _ = writeln!(
                    s,
                    "| {} | {} | {} |",
                    query,
                    ms(took.as_nanos() as u64),
                    kb(*bytes as u64)
                );
            }
            let _ = writeln!(s);
        }
    }
}

fn mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

fn kb(bytes: u64) -> String {
    format!("{:.0} kB", bytes as f64 / 1e3)
}

fn render_reload(s: &mut String, r: &ReloadResult, throughput: &[ThroughputRow]) {
    let _ = writeln!(s, "### 6. Hot reload under load\n");
    let baseline = throughput
        .iter()
        .find(|t| t.connections == r.connections && t.via == Via::Proxy && t.upstream_ms == 0)
        .map_or_else(|| "–".into(), |t| format!("{:.0}", t.run.rps()));
    let _ = writeln!(
        s,
        "Scenario 2's load through the proxy ({} connections) while config.json is rewritten \
         ten times a second (temporary file and rename, as the admin UI writes it; each write \
         changes the model list).\n",
        r.connections
    );
    let _ = writeln!(
        s,
        "| duration | requests | failed | config writes | reloads applied | last write serves | config refused | req/s | req/s without reloads |\n| ---: | ---: | ---: | ---: | ---: | --- | --- | ---: | ---: |"
    );
    let _ = writeln!(
        s,
        "| {:.1} s | {} | {} | {} | {} | {} | {} | {:.0} | {} |",
        r.run.elapsed.as_secs_f64(),
        r.run.ok + r.run.failures.total(),
        r.run.failures.describe(),
        r.writes,
        r.applied,
        if r.last_applied { "yes" } else { "**no**" },
        if r.rejected { "yes" } else { "no" },
        r.run.rps(),
        baseline
    );
    let _ = writeln!(
        s,
        "\nThe watcher waits 100 ms after a file event before it reads the file, so writes that \
         close together are applied as one reload."
    );
    let _ = writeln!(s);
}

fn render_image(s: &mut String, img: &ImageResult) {
    let _ = writeln!(s, "### 7. A request carrying a 2 MB image\n");
    let _ = writeln!(
        s,
        "A chat request with one {}×{} photo-like JPEG of {:.2} MB inline as a base64 data URL \
         (request body {:.2} MB), sent one at a time; {} requests per row after 2 warm-up \
         requests. Compression uses the default settings (longest edge 1600, JPEG quality 0.85).\n",
        img.width,
        img.height,
        img.image_bytes as f64 / 1e6,
        img.body_bytes as f64 / 1e6,
        img.rows.first().map_or(0, |r| r.latency.len())
    );
    let direct = img.rows.iter().find(|r| r.via == Via::Direct);
    let _ = writeln!(
        s,
        "| path | p50 | max | added p50 vs direct | failed |\n| --- | ---: | ---: | ---: | ---: |"
    );
    for r in &img.rows {
        let added = direct.map_or_else(String::new, |d| {
            if r.via == Via::Direct {
                String::new()
            } else {
                let d = diff(r.latency.q(0.5), d.latency.q(0.5));
                let sign = if d < 0 { "−" } else { "+" };
                format!("{sign}{}", ms(d.unsigned_abs()))
            }
        });
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} |",
            r.label,
            ms(r.latency.q(0.5)),
            ms(r.latency.max()),
            added,
            r.failures.total()
        );
    }
    if let Some((before, after)) = img.compressed {
        let _ = writeln!(
            s,
            "\nWith compression on, the image went upstream as {:.0}% of its size ({:.2} MB of \
             image data instead of {:.2} MB over the \"proxy, compression on\" row, by the \
             proxy's own counters).",
            after as f64 * 100.0 / before.max(1) as f64,
            after as f64 / 1e6,
            before as f64 / 1e6
        );
    }
    if let Some(note) = &img.note {
        let _ = writeln!(s, "\nNote: {note}.");
    }
    let _ = writeln!(s);
}

/// "second", "third", ... for `every` of "every second request".
fn ordinal(n: u64) -> String {
    match n {
        1 => "single".into(),
        2 => "second".into(),
        3 => "third".into(),
        n => format!("{n}th"),
    }
}

fn render_pool(s: &mut String, pool: &PoolResult) {
    let _ = writeln!(
        s,
        "### 8. A pool with throttling: one deployment refuses every {} request\n",
        ordinal(stack::THROTTLE_EVERY)
    );
    let secs_per_pool = pool.round_secs * pool.rounds;
    let _ = writeln!(
        s,
        "Model `{throttled}` is served by two deployments of equal priority and weight: \
         `fake/{deployment}` (the fake of the other scenarios) and `{b_throttled}/{deployment}`, \
         a second fake (1 worker) that answers every {every} request it receives at once, \
         before any model latency, with Azure's 429 (its error body, `retry-after-ms: {after}`, \
         `retry-after: 1`). Model `{clean}` is the same pool whose second fake, `{b}`, never \
         refuses. The same load runs on each: {POOL_CONNECTIONS} connections in a closed loop \
         through the proxy, the fakes answering after {SLOW_UPSTREAM_MS} ms, {secs_per_pool} s \
         per pool in {rounds} rounds of {round} s, the pools taking turns. What each deployment \
         did is read from the proxy's `/stats` (`deployments`) before and after each round: \
         attempts sent to it, answers it gave the client, its 429s, and the requests that moved \
         on from it.\n",
        throttled = stack::THROTTLED_POOL_MODEL,
        clean = stack::POOL_MODEL,
        deployment = stack::DEPLOYMENT,
        b = stack::POOL_B,
        b_throttled = stack::POOL_B_THROTTLED,
        every = ordinal(stack::THROTTLE_EVERY),
        after = stack::THROTTLE_RETRY_AFTER_MS,
        rounds = pool.rounds,
        round = pool.round_secs,
    );
    let _ = writeln!(
        s,
        "| pool | requests | req/s | client 429s | other failures | p50 | p90 | p99 | max |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    for row in &pool.rows {
        let what = if row.throttled {
            "second deployment throttling"
        } else {
            "no 429s"
        };
        let _ = writeln!(
            s,
            "| `{}` ({what}) | {} | {:.0} | {} | {} | {} | {} | {} | {} |",
            row.model,
            row.requests(),
            row.run.rps(),
            row.client_429s(),
            row.run.failures.total() - row.client_429s(),
            ms2(row.run.latency.q(0.5)),
            ms2(row.run.latency.q(0.9)),
            ms2(row.run.latency.q(0.99)),
            ms2(row.run.latency.max())
        );
    }
    if let Some((clean, throttled)) = pool_rows(pool) {
        let d = |q: f64| ms2_signed(diff(throttled.run.latency.q(q), clean.run.latency.q(q)));
        let _ = writeln!(
            s,
            "| **with throttling − without** | | | | | **{}** | {} | {} | {} |",
            d(0.5),
            d(0.9),
            d(0.99),
            ms2_signed(diff(throttled.run.latency.max(), clean.run.latency.max()))
        );
    }
    let _ = writeln!(
        s,
        "\n| pool | deployment | attempts | answers to the client | share of answers | 429s | failovers out |\n| --- | --- | ---: | ---: | ---: | ---: | ---: |"
    );
    for row in &pool.rows {
        let answered: u64 = row.deployments.iter().map(|d| d.succeeded).sum();
        for d in &row.deployments {
            let _ = writeln!(
                s,
                "| `{}` | `{}` | {} | {} | {:.1} % | {} | {} |",
                row.model,
                d.name,
                d.requests,
                d.succeeded,
                d.succeeded as f64 * 100.0 / answered.max(1) as f64,
                d.throttled,
                d.failovers_out
            );
        }
    }
    if let Some((clean, throttled)) = pool_rows(pool) {
        let verdict = if pool_met(clean, throttled) {
            "met"
        } else {
            "**missed**"
        };
        let _ = writeln!(
            s,
            "\nTarget: no 429 and no other failure reaches the client, and the p50 stays within \
             1 ms of the pool without 429s: {verdict}. A 429 cools its deployment for the \
             {after} ms it asks for, so the throttling fake sees about two requests per cooling \
             period, and the request it refuses goes at once to the other deployment.",
            after = stack::THROTTLE_RETRY_AFTER_MS
        );
    }
    let _ = writeln!(s);
}

/// Puts `section` in place of the previous one in `path` (or at its end), leaving every other
/// section as it is.
pub fn write_section(path: &Path, section: &str) -> anyhow::Result<()> {
    let mut doc = std::fs::read_to_string(path).unwrap_or_else(|_| INTRO.to_string());
    match (doc.find(BEGIN), doc.find(END)) {
        (Some(start), Some(end)) if end > start => {
            let mut stop = end + END.len();
            if doc[stop..].starts_with('\n') {
                stop += 1;
            }
            doc.replace_range(start..stop, section);
        }
        _ => {
            let trimmed = doc.trim_end().len();
            doc.truncate(trimmed);
            doc.push_str("\n\n");
            doc.push_str(section);
        }
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let temp = path.with_extension("md.tmp");
    std::fs::write(&temp, doc)?;
    std::fs::rename(&temp, path)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::{Failures, Run};
    use crate::scenarios::DeploymentCounts;

    fn pool_row(throttled: bool, p50_ms: f64, throttles: u64, failures: &[&str]) -> PoolRow {
        let p50 = (p50_ms * 1e6) as u64;
        let mut run = Run {
            latency: Dist::new(vec![p50 - 1000, p50, p50 + 1000]),
            ok: 3,
            ..Run::default()
        };
        let mut failed = Failures::default();
        for kind in failures {
            failed.add((*kind).to_string());
        }
        run.failures = failed;
        PoolRow {
            model: "m",
            throttled,
            run,
            deployments: vec![DeploymentCounts {
                name: "b/d".into(),
                throttled: throttles,
                ..DeploymentCounts::default()
            }],
        }
    }

    #[test]
    fn pool_target_needs_no_client_failure_absorbed_429s_and_close_p50s() {
        let clean = pool_row(false, 20.0, 0, &[]);
        assert!(pool_met(&clean, &pool_row(true, 20.9, 10, &[])));
        assert!(pool_met(&clean, &pool_row(true, 19.2, 10, &[])));
        assert!(!pool_met(&clean, &pool_row(true, 21.2, 10, &[])));
        assert!(!pool_met(&clean, &pool_row(true, 20.1, 0, &[])));
        let leaked = pool_row(true, 20.1, 10, &["HTTP 429", "io: connection reset"]);
        assert_eq!(leaked.client_429s(), 1);
        assert!(!pool_met(&clean, &leaked));
    }

    fn limits_result(p50s_us: &[(LimitCase, u64)], redis_valid: bool) -> KeyLimitsResult {
        let rows = p50s_us
            .iter()
            .map(|&(case, us)| {
                (
                    case,
                    Dist::new(vec![us * 1000 - 500, us * 1000, us * 1000 + 500]),
                )
            })
            .collect();
        let with_redis = p50s_us.iter().any(|(c, _)| *c == LimitCase::Redis);
        KeyLimitsResult {
            rows,
            failures: Failures::default(),
            rounds: 10,
            redis_version: (with_redis && redis_valid).then(|| "7.0.15".into()),
            redis_note: (!with_redis || !redis_valid).then(|| "no redis-server found".into()),
        }
    }

    fn key_limits_verdicts(r: KeyLimitsResult) -> Vec<bool> {
        let results = Results {
            key_limits: Some(r),
            ..Results::default()
        };
        verdicts(&results).iter().map(|v| v.met).collect()
    }

    #[test]
    fn key_limits_targets_compare_in_process_to_none_and_redis_to_in_process() {
        use LimitCase::*;
        let met = |none, in_process, redis| {
            key_limits_verdicts(limits_result(
                &[
                    (NoLimits, none),
                    (InProcess, in_process),
                    (RedisProxyNoLimits, none),
                    (Redis, redis),
                ],
                true,
            ))
        };
        assert_eq!(met(200, 205, 355), vec![true, true]);
        assert_eq!(met(200, 190, 300), vec![true, true]);
        assert_eq!(met(200, 206, 300), vec![false, true]);
        assert_eq!(met(200, 200, 351), vec![true, false]);
        let invalid = limits_result(&[(NoLimits, 200), (InProcess, 200), (Redis, 210)], false);
        assert_eq!(key_limits_verdicts(invalid), vec![true, false]);
    }

    #[test]
    fn without_redis_the_section_says_so_and_has_no_redis_row() {
        let r = limits_result(
            &[(LimitCase::NoLimits, 200), (LimitCase::InProcess, 203)],
            true,
        );
        let mut s = String::new();
        render_key_limits(&mut s, &r);
        assert!(s.contains("Note: no redis-server found."), "{s}");
        assert!(!s.contains("| limits counted in Redis |"), "{s}");
        assert!(
            s.contains("| limits counted in the process | the benchmark's proxy |"),
            "{s}"
        );
    }

    fn burst(completed: usize, slowest_ms: u64) -> ManyStreamsResult {
        ManyStreamsResult {
            via: Via::Proxy,
            pool: PoolSettings::Original,
            started: 1000,
            completed,
            failures: Failures::default(),
            elapsed: Duration::from_millis(slowest_ms),
            slowest: Some(Duration::from_millis(slowest_ms)),
            processes: Vec::new(),
        }
    }

    #[test]
    fn original_pool_target_allows_half_a_second_over_direct() {
        let direct = Some(Duration::from_millis(9160));
        assert!(original_pool_met(&burst(1000, 9660), direct));
        assert!(!original_pool_met(&burst(1000, 9661), direct));
        assert!(!original_pool_met(&burst(999, 9200), direct));
        assert!(!original_pool_met(&burst(1000, 9200), None));
    }
}
