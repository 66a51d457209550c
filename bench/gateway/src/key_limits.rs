//! Scenario 9: what a client key's limits cost. Scenario 1's method (one request at a time,
//! interleaved rounds) on the same model through the proxy, with a key without limits and a key
//! with windows and a budget counted in the process; and, when a `redis-server` binary is
//! found, through a second proxy whose config differs only in `limits.redis`, pointing at a
//! redis-server started for the run.
//!
//! `limits.redis` is config-wide, so the Redis case runs on a second proxy rather than by
//! reloading the first one between rounds: every case then keeps its own warm process and
//! connection for the whole run, and no reload (which starts new windows) falls between the
//! rounds being compared.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use test_support::wait_for;

use crate::load::{self, Dist, Failures};
use crate::redis_server::RedisServer;
use crate::scenarios::{Bench, Via, chat_request_for};
use crate::stack::{self, Binaries, CLIENT_KEY, LIMITED_KEY, MODEL};

/// Who answers, with which key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LimitCase {
    /// The benchmark's proxy, a key without limits.
    NoLimits,
    /// The benchmark's proxy, the key with limits, counted in the process.
    InProcess,
    /// The proxy with `limits.redis`, a key without limits (which never asks Redis).
    RedisProxyNoLimits,
    /// The proxy with `limits.redis`, the key with limits, counted in Redis.
    Redis,
}

impl LimitCase {
    pub fn key(self) -> &'static str {
        match self {
            LimitCase::NoLimits | LimitCase::RedisProxyNoLimits => "without limits",
            LimitCase::InProcess => "limits counted in the process",
            LimitCase::Redis => "limits counted in Redis",
        }
    }

    pub fn proxy(self) -> &'static str {
        match self {
            LimitCase::NoLimits | LimitCase::InProcess => "the benchmark's proxy",
            LimitCase::RedisProxyNoLimits | LimitCase::Redis => "second proxy, `limits.redis` set",
        }
    }
}

pub struct KeyLimitsResult {
    pub rows: Vec<(LimitCase, Dist)>,
    pub failures: Failures,
    pub rounds: usize,
    /// redis-server's version, when the Redis rows were measured.
    pub redis_version: Option<String>,
    /// Why the Redis rows are missing, or what is wrong with them.
    pub redis_note: Option<String>,
}

impl KeyLimitsResult {
    pub fn row(&self, case: LimitCase) -> Option<&Dist> {
        self.rows.iter().find(|(c, _)| *c == case).map(|(_, d)| d)
    }
}

/// The second proxy and the Redis it counts in; both stop when this is dropped.
struct RedisSide {
    server: RedisServer,
    proxy: stack::Proxy,
}

pub async fn key_limits(
    bench: &mut Bench<'_>,
    bins: &Binaries,
    redis_bin: Option<&Path>,
) -> KeyLimitsResult {
    let mut redis_note = None;
    let mut redis = match redis_bin {
        None => {
            redis_note = Some(
                "no redis-server found (install it with `apt-get install redis-server`, or pass \
                 --redis-server PATH); the Redis rows are missing"
                    .to_string(),
            );
            None
        }
        Some(bin) => match start_redis_side(bench, bins, bin).await {
            Ok(side) => Some(side),
            Err(err) => {
                redis_note = Some(format!("the Redis rows are missing: {err:#}"));
                None
            }
        },
    };

    let proxy = bench.stack.proxy_addr;
    let mut cases = vec![
        (LimitCase::NoLimits, proxy, CLIENT_KEY),
        (LimitCase::InProcess, proxy, LIMITED_KEY),
    ];
    if let Some(side) = &redis {
        cases.push((LimitCase::RedisProxyNoLimits, side.proxy.addr, CLIENT_KEY));
        cases.push((LimitCase::Redis, side.proxy.addr, LIMITED_KEY));
    }
    let requests: Vec<Vec<u8>> = cases
        .iter()
        .map(|&(_, addr, key)| chat_request_for(MODEL, key, Via::Proxy, addr, "", None))
        .collect();

    let rounds = 10;
    let per_round = bench.plan.sequential_requests / rounds;
    let mut failures = Failures::default();
    for (&(_, addr, _), request) in cases.iter().zip(&requests) {
        failures.merge(load::sequential(addr, request, 300).await.failures);
    }
    let mut samples: Vec<Vec<u64>> = vec![Vec::new(); cases.len()];
    // Interleaved rounds, so that a slow moment of the machine hits every case alike; each
    // round starts with the next case, so that none always follows the same one.
    for round in 0..rounds {
        for k in 0..cases.len() {
            let i = (round + k) % cases.len();
            let run = load::sequential(cases[i].1, &requests[i], per_round).await;
            failures.merge(run.failures);
            samples[i].extend_from_slice(run.latency.samples());
        }
    }

    let mut redis_version = None;
    if let Some(side) = &mut redis {
        match check_counted_in_redis(side).await {
            Ok(()) => redis_version = Some(side.server.version.clone()),
            Err(err) => redis_note = Some(format!("the Redis rows are not valid: {err:#}")),
        }
    }
    let rows: Vec<(LimitCase, Dist)> = cases
        .iter()
        .zip(samples)
        .map(|(&(case, _, _), s)| (case, Dist::new(s)))
        .collect();
    for (case, dist) in &rows {
        eprintln!(
            "  {:<32} {:<36} p50 {:>6} µs  p90 {:>6} µs  p99 {:>6} µs",
            case.key(),
            case.proxy(),
            dist.q(0.5) / 1000,
            dist.q(0.9) / 1000,
            dist.q(0.99) / 1000
        );
    }
    if let Some(note) = &redis_note {
        eprintln!("  {note}");
    }
    KeyLimitsResult {
        rows,
        failures,
        rounds,
        redis_version,
        redis_note,
    }
}

/// Starts redis-server, then a second proxy on the benchmark's config with `limits.redis`
/// pointing at it, and waits until that proxy has reached Redis.
async fn start_redis_side(
    bench: &Bench<'_>,
    bins: &Binaries,
    redis_bin: &Path,
) -> anyhow::Result<RedisSide> {
    let work = &bench.stack.work;
    let server = RedisServer::start(redis_bin, &work.join("redis"))
        .await
        .context("starting redis-server")?;
    let data = work.join("proxy-redis-data");
    let _ = std::fs::remove_dir_all(&data);
    std::fs::create_dir_all(&data)?;
    let mut config = stack::proxy_config(
        bench.stack.fake_addr,
        bench.stack.tap.addr,
        bench.stack.pool_b,
        bench.stack.config(),
    );
    config["limits"] = serde_json::json!({ "redis": server.url() });
    let config_path = data.join("config.json");
    std::fs::write(&config_path, config.to_string())?;
    let log = bins
        .proxy_log
        .as_ref()
        .map(|path| path.with_extension("redis.log"));
    let proxy = stack::start_proxy(bins, "proxy (Redis)", &config_path, log.as_deref(), &[])
        .await
        .context("starting the second proxy")?;
    let ops = proxy.ops_addr;
    wait_for(
        "the second proxy to reach Redis",
        Duration::from_secs(10),
        || async move {
            limits_status(ops)
                .await
                .ok()
                .filter(|s| s["store"] == "redis" && s["redis_reachable"] == true)
                .map(|_| ())
        },
    )
    .await?;
    Ok(RedisSide { server, proxy })
}

/// Fails unless both processes still run, the second proxy still counts in a reachable Redis,
/// and Redis holds counters.
async fn check_counted_in_redis(side: &mut RedisSide) -> anyhow::Result<()> {
    side.server.child.check_running()?;
    side.proxy.child.check_running()?;
    let status = limits_status(side.proxy.ops_addr).await?;
    anyhow::ensure!(
        status["store"] == "redis" && status["redis_reachable"] == true,
        "the second proxy's /status says limits {status}"
    );
    let keys = side.server.dbsize().await?;
    anyhow::ensure!(keys > 0, "Redis holds no counter after the run");
    Ok(())
}

/// The `limits` object of a proxy's `GET /status`.
async fn limits_status(ops: SocketAddr) -> anyhow::Result<serde_json::Value> {
    let (status, body) = crate::client::get(ops, "/status").await?;
    anyhow::ensure!(status == 200, "/status answered {status}");
    let mut value: serde_json::Value = serde_json::from_slice(&body)?;
    Ok(value["limits"].take())
}
