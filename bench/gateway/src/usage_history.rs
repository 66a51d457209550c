//! Scenario 11: what the usage history costs. (a) The request path: scenario 1's method through
//! the benchmark's proxy (history on) and a second proxy on the same config with
//! `USAGE_HISTORY=off`, in interleaved rounds. (b) A year of history for 50 keys × 20 models:
//! filled in this process through the proxy library's own `History` (the hook's `record_at`,
//! then `maintain` and `persist`, as the proxy runs them, on a clock the filler sets), written to
//! a data dir; then the proxy binary started on that dir and on an empty one, to read what the
//! year costs on disk, in memory, at start-up and per query.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use proxy::bookkeeping::history::{History, Sample, file_paths};
use proxy::bookkeeping::stats::{ErrorClass, Outcome};
use proxy::config::Retention;
use proxy::relay::usage::Usage;

use crate::load::{self, Dist, Failures};
use crate::scenarios::{Bench, Via, chat_request_for};
use crate::stack::{self, Binaries, CLIENT_KEY, MODEL};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HistoryCase {
    On,
    Off,
}

impl HistoryCase {
    pub fn label(self) -> &'static str {
        match self {
            HistoryCase::On => "on (the benchmark's proxy)",
            HistoryCase::Off => "off (second proxy, `USAGE_HISTORY=off`)",
        }
    }
}

pub struct UsageHistoryResult {
    pub rows: Vec<(HistoryCase, Dist)>,
    pub failures: Failures,
    pub rounds: usize,
    pub year: Result<YearFigures, String>,
}

impl UsageHistoryResult {
    pub fn row(&self, case: HistoryCase) -> Option<&Dist> {
        self.rows.iter().find(|(c, _)| *c == case).map(|(_, d)| d)
    }
}

/// The shape of the generated year.
pub const KEYS: usize = 50;
pub const MODELS: usize = 20;
/// Requests per series (key × model) in each hour older than the minute retention.
pub const PER_HOUR: usize = 12;
const HOUR_MS: u64 = 3_600_000;
const MINUTE_MS: u64 = 60_000;
const DAYS: u64 = 365;

pub struct YearFigures {
    pub requests: u64,
    pub fill: Duration,
    /// Time inside `record_at`, per call.
    pub record_ns: f64,
    /// Time inside `maintain` (sealing, roll-up, retention) over the whole year.
    pub maintain: Duration,
    pub persist: Duration,
    /// (file name, bytes).
    pub files: Vec<(String, u64)>,
    /// Bytes of the encoded frames in memory.
    pub frame_bytes: usize,
    /// Buckets kept: minutes, hours, days.
    pub frames: [usize; 3],
    pub rss_empty_kib: u64,
    pub rss_year_kib: u64,
    pub rss_after_queries_kib: u64,
    /// From spawning the proxy to its ops listener answering, empty dir and year.
    pub start_empty: Duration,
    pub start_year: Duration,
    /// (what was asked, time, bytes of the answer).
    pub queries: Vec<(&'static str, Duration, usize)>,
}

impl YearFigures {
    pub fn disk_bytes(&self) -> u64 {
        self.files.iter().map(|(_, b)| b).sum()
    }
}

pub async fn usage_history(bench: &mut Bench<'_>, bins: &Binaries) -> UsageHistoryResult {
    let mut failures = Failures::default();
    let rounds = 10;
    let mut rows = Vec::new();
    match start_without_history(bench, bins).await {
        Ok(off) => {
            let cases = [
                (HistoryCase::On, bench.stack.proxy_addr),
                (HistoryCase::Off, off.addr),
            ];
            let requests: Vec<Vec<u8>> = cases
                .iter()
                .map(|&(_, addr)| chat_request_for(MODEL, CLIENT_KEY, Via::Proxy, addr, "", None))
                .collect();
            for (&(_, addr), request) in cases.iter().zip(&requests) {
                failures.merge(load::sequential(addr, request, 300).await.failures);
            }
            let per_round = bench.plan.sequential_requests / rounds;
            let mut samples: Vec<Vec<u64>> = vec![Vec::new(); cases.len()];
            for round in 0..rounds {
                for k in 0..cases.len() {
                    let i = (round + k) % cases.len();
                    let run = load::sequential(cases[i].1, &requests[i], per_round).await;
                    failures.merge(run.failures);
                    samples[i].extend_from_slice(run.latency.samples());
                }
            }
            rows = cases
                .iter()
                .zip(samples)
                .map(|(&(case, _), s)| (case, Dist::new(s)))
                .collect();
            for (case, dist) in &rows {
                eprintln!(
                    "  history {:<42} p50 {:>6} µs  p90 {:>6} µs  p99 {:>6} µs",
                    case.label(),
                    dist.q(0.5) / 1000,
                    dist.q(0.9) / 1000,
                    dist.q(0.99) / 1000
                );
            }
        }
        Err(err) => failures.add(format!("the proxy without history did not start: {err:#}")),
    }
    eprintln!("  a year of history: {KEYS} keys × {MODELS} models, filled in this process");
    let year = year(bench, bins).await.map_err(|err| format!("{err:#}"));
    match &year {
        Ok(y) => eprintln!(
            "  {} requests in {:.1} s; {:.0} ns per record; {:.1} MB on disk; RSS {} → {} KiB",
            y.requests,
            y.fill.as_secs_f64(),
            y.record_ns,
            y.disk_bytes() as f64 / 1e6,
            y.rss_empty_kib,
            y.rss_year_kib
        ),
        Err(err) => eprintln!("  the year was not measured: {err}"),
    }
    UsageHistoryResult {
        rows,
        failures,
        rounds,
        year,
    }
}

/// A second proxy on the benchmark's config, with `USAGE_HISTORY=off`.
async fn start_without_history(bench: &Bench<'_>, bins: &Binaries) -> anyhow::Result<stack::Proxy> {
    let data = bench.stack.work.join("proxy-no-history-data");
    let config_path = write_config(bench, &data)?;
    stack::start_proxy(
        bins,
        "proxy (no history)",
        &config_path,
        None,
        &[("USAGE_HISTORY", "off")],
    )
    .await
}

/// A fresh data dir holding the benchmark's config.json.
fn write_config(bench: &Bench<'_>, data: &Path) -> anyhow::Result<std::path::PathBuf> {
    let _ = std::fs::remove_dir_all(data);
    std::fs::create_dir_all(data)?;
    let config = stack::proxy_config(
        bench.stack.fake_addr,
        bench.stack.tap.addr,
        bench.stack.pool_b,
        bench.stack.config(),
    );
    let config_path = data.join("config.json");
    std::fs::write(&config_path, config.to_string())?;
    Ok(config_path)
}

async fn year(bench: &Bench<'_>, bins: &Binaries) -> anyhow::Result<YearFigures> {
    let year_dir = bench.stack.work.join("proxy-year-data");
    let config_path = write_config(bench, &year_dir)?;
    let empty_dir = bench.stack.work.join("proxy-empty-data");
    let empty_config = write_config(bench, &empty_dir)?;
    let dir = year_dir.clone();
    let filled = tokio::task::spawn_blocking(move || fill_year(&dir))
        .await
        .context("the filler panicked")??;

    let files = file_paths(&year_dir)
        .into_iter()
        .map(|path| {
            let size = std::fs::metadata(&path).map_or(0, |m| m.len());
            let name = path
                .file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
            (name, size)
        })
        .collect();

    let started = Instant::now();
    let empty = stack::start_proxy(bins, "proxy (empty history)", &empty_config, None, &[]).await?;
    let start_empty = started.elapsed();
    let started = Instant::now();
    let loaded =
        stack::start_proxy(bins, "proxy (a year of history)", &config_path, None, &[]).await?;
    let start_year = started.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_empty_kib = empty.child.rss_kib();
    let rss_year_kib = loaded.child.rss_kib();
    drop(empty);

    let now = filled.end;
    let day = 86_400_000;
    let queries = [
        (
            "the last hour by model (the defaults: 1 min steps)",
            format!("from={}&to={now}&group_by=model", now - HOUR_MS),
        ),
        (
            "the last 24 hours by key (auto: 5 min steps)",
            format!("from={}&to={now}&group_by=key", now - day),
        ),
        (
            "the last 90 days by key (auto: 6 h steps from the hours)",
            format!("from={}&to={now}&group_by=key", now - 90 * day),
        ),
        (
            "the year by model, `step=1d`",
            format!("from={}&to={now}&step=1d&group_by=model", now - DAYS * day),
        ),
        (
            "the year by key for one model, `step=1d`, CSV",
            format!(
                "from={}&to={now}&step=1d&group_by=key&model=model-00&format=csv",
                now - DAYS * day
            ),
        ),
    ];
    let mut timed = Vec::new();
    for (what, query) in queries {
        let (took, bytes) = timed_get(loaded.ops_addr, &format!("/usage?{query}")).await?;
        timed.push((what, took, bytes));
    }
    let rss_after_queries_kib = loaded.child.rss_kib();
    Ok(YearFigures {
        requests: filled.requests,
        fill: filled.fill,
        record_ns: filled.record.as_nanos() as f64 / filled.requests.max(1) as f64,
        maintain: filled.maintain,
        persist: filled.persist,
        files,
        frame_bytes: filled.frame_bytes,
        frames: filled.frames,
        rss_empty_kib,
        rss_year_kib,
        rss_after_queries_kib,
        start_empty,
        start_year,
        queries: timed,
    })
}

async fn timed_get(ops: SocketAddr, path: &str) -> anyhow::Result<(Duration, usize)> {
    let started = Instant::now();
    let (status, body) = crate::client::get(ops, path).await?;
    let took = started.elapsed();
    anyhow::ensure!(
        status == 200,
        "{path} answered {status}: {}",
        String::from_utf8_lossy(&body)
    );
    Ok((took, body.len()))
}

struct Filled {
    end: u64,
    requests: u64,
    fill: Duration,
    record: Duration,
    maintain: Duration,
    persist: Duration,
    frame_bytes: usize,
    frames: [usize; 3],
}

/// Every series (key × model, one deployment per model) in every bucket: one request per minute
/// in the last 48 hours (the minutes kept), `PER_HOUR` requests in every hour before. The year
/// ends at the last whole hour before now, so that the proxy started on it keeps all of it.
fn fill_year(dir: &Path) -> anyhow::Result<Filled> {
    let keys: Vec<String> = (0..KEYS).map(|i| format!("team-{i:02}")).collect();
    let models: Vec<String> = (0..MODELS).map(|i| format!("model-{i:02}")).collect();
    let deployments: Vec<String> = models.iter().map(|m| format!("{m}-dep")).collect();
    let now = proxy::process::clock::now_ms();
    let end = now - now % HOUR_MS;
    let start = end - DAYS * 24 * HOUR_MS;
    let retention = Retention::default();
    let minutes_kept = u64::try_from(retention.minutes.as_millis()).unwrap_or(0);
    let history = History::load(dir, start);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let (mut record, mut maintain) = (Duration::ZERO, Duration::ZERO);
    let mut requests = 0u64;
    let filling = Instant::now();
    let mut at = start;
    while at < end {
        let recent = at >= end - minutes_kept;
        // A batch: one minute in the recent part, an hour (in one of its minutes) before.
        let (per_series, step) = if recent {
            (1, MINUTE_MS)
        } else {
            (PER_HOUR, HOUR_MS)
        };
        let t0 = Instant::now();
        for (m, model) in models.iter().enumerate() {
            for key in &keys {
                for _ in 0..per_series {
                    history.record_at(at + 1_000, &sample(&mut rng, model, key, &deployments[m]));
                    requests += 1;
                }
            }
        }
        record += t0.elapsed();
        let t0 = Instant::now();
        history.maintain(at + step, &retention);
        maintain += t0.elapsed();
        at += step;
    }
    let fill = filling.elapsed();
    let t0 = Instant::now();
    history.persist(end).context("writing the year")?;
    let persist = t0.elapsed();
    Ok(Filled {
        end,
        requests,
        fill,
        record,
        maintain,
        persist,
        frame_bytes: history.frame_bytes(),
        frames: history.frame_counts(),
    })
}

fn sample<'a>(rng: &mut Rng, model: &'a str, key: &'a str, deployment: &'a str) -> Sample<'a> {
    let roll = rng.below(1000);
    let (outcome, status) = match roll {
        0..=9 => (Outcome::Failed(ErrorClass::RateLimited), 429),
        10..=14 => (Outcome::Failed(ErrorClass::Upstream5xx), 500),
        15..=24 => (Outcome::Cancelled, 200),
        _ => (Outcome::Succeeded, 200),
    };
    let answered = !matches!(outcome, Outcome::Failed(_));
    // Latency log-normal around 1.5 s; time to first byte a tenth to a half of it.
    let latency_ms = (1500.0 * (0.6 * rng.normal()).exp()).max(1.0);
    let ttfb_ms = latency_ms * (0.1 + 0.4 * rng.unit());
    let prompt = 200 + rng.below(3800);
    let completion = 50 + rng.below(950);
    Sample {
        model: Some(model),
        key: Some(key),
        upstream: Some("foundry"),
        deployment: Some(deployment),
        outcome,
        status,
        usage: answered.then(|| Usage {
            prompt_tokens: prompt,
            completion_tokens: completion,
            total_tokens: prompt + completion,
            cached_tokens: if rng.below(3) == 0 { prompt / 2 } else { 0 },
            reasoning_tokens: if model.ends_with('0') {
                completion / 2
            } else {
                0
            },
        }),
        latency: Duration::from_micros((latency_ms * 1000.0) as u64),
        ttfb: answered.then(|| Duration::from_micros((ttfb_ms * 1000.0) as u64)),
    }
}

/// xorshift64*: the same year in every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// Uniform in (0, 1].
    fn unit(&mut self) -> f64 {
        ((self.next() >> 11) as f64 + 1.0) / (1u64 << 53) as f64
    }

    /// Standard normal (Box–Muller).
    fn normal(&mut self) -> f64 {
        (-2.0 * self.unit().ln()).sqrt() * (std::f64::consts::TAU * self.unit()).cos()
    }
}
