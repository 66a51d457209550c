//! Client key limits counted in Redis (`limits.redis`), against a real `redis-server`: the
//! admission script against `decide()`, the counters' names and expiry, two replicas sharing
//! one window, an outage (fail open, then closed) and the way back, and config reloads.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fake_foundry::FakeFoundry;
use proxy::config::{Budget, BudgetPeriod, FailMode, KeyLimits, Metered, Secret, Window};
use proxy::downstream::limits::redis::RedisStore;
use proxy::downstream::limits::{Counts, Refusal, Verdict, decide};
use proxy::process::clock::now_ms;
use serde_json::{Value, json};
use tokio::runtime::Handle;

use crate::helpers::*;
use crate::process::{Running, start_binary, start_binary_with};
use crate::redis_server::RedisServer;

const DAY_MS: u64 = 86_400_000;

async fn connected_store(server: &RedisServer) -> Arc<RedisStore> {
    let store = RedisStore::start(
        &Secret::new(server.url()),
        None,
        FailMode::Open,
        Duration::from_secs(2),
        Handle::current(),
        Arc::new(AtomicU64::new(0)),
    );
    eventually("the store to connect", Duration::from_secs(10), || async {
        store.health().reachable
    })
    .await;
    store
}

async fn redis_connection(server: &RedisServer) -> redis::aio::MultiplexedConnection {
    redis::Client::open(server.url())
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("connection")
}

/// Admits one request through the script and checks it against `decide()`: the script
/// answers the counts it found, and counted the request exactly when `decide` admits it.
async fn admit_checked(store: &Arc<RedisStore>, id: &str, limits: &KeyLimits, now: u64) -> Verdict {
    admit_estimated(store, id, limits, now, 0).await
}

/// [`admit_checked`] for a prompt estimated at `estimate` tokens.
async fn admit_estimated(
    store: &Arc<RedisStore>,
    id: &str,
    limits: &KeyLimits,
    now: u64,
    estimate: u64,
) -> Verdict {
    let read = |store: Arc<RedisStore>| async move {
        store.read(&[(id, limits)], now).await.expect("read")[0].clone()
    };
    let before: Counts = read(store.clone()).await;
    let counts = store
        .admit(id, limits, now, estimate)
        .await
        .expect("an answer");
    assert_eq!(
        counts, before,
        "the script answers the counts before the request"
    );
    let verdict = decide(limits, counts, estimate);
    let after = read(store.clone()).await;
    match &verdict {
        Verdict::Admitted(counted) => assert_eq!(&after, counted),
        Verdict::Refused { .. } => assert_eq!(after, before, "a refusal counts nothing"),
    }
    verdict
}

fn refusal(verdict: &Verdict) -> Option<Refusal> {
    match verdict {
        Verdict::Admitted(_) => None,
        Verdict::Refused { refusal, .. } => Some(*refusal),
    }
}

#[actix_web::test]
async fn the_admission_script_decides_as_decide_does_and_counters_expire_with_their_span() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let store = connected_store(&server).await;
    let limits = KeyLimits {
        windows: vec![
            Window {
                metered: Metered::Requests,
                limit: 3,
                per: Duration::from_secs(60),
            },
            Window {
                metered: Metered::Tokens,
                limit: 100,
                per: Duration::from_secs(60),
            },
        ],
        budget: Some(Budget {
            tokens: 150,
            period: BudgetPeriod::Day,
            reset_at_ms: None,
        }),
    };
    // One o'clock today (UTC): every step below stays within the day.
    let t0 = now_ms() / DAY_MS * DAY_MS + 3_600_000;
    let id = "team/a{1}";

    for _ in 0..3 {
        assert_eq!(refusal(&admit_checked(&store, id, &limits, t0).await), None);
    }
    assert_eq!(
        refusal(&admit_checked(&store, id, &limits, t0).await),
        Some(Refusal::Window(0))
    );

    let mut connection = redis_connection(&server).await;
    let name = format!("gateway:limits:{{team%2Fa%7B1%7D}}:requests:3:60s:{t0}");
    let ttl: i64 = redis::cmd("PTTL")
        .arg(&name)
        .query_async(&mut connection)
        .await
        .expect("pttl");
    assert!(
        (55_000..=65_000).contains(&ttl),
        "{name} lives to its window's end and a grace: {ttl}"
    );

    let t1 = t0 + 60_000;
    assert_eq!(refusal(&admit_checked(&store, id, &limits, t1).await), None);
    store.charge(id, &limits, 100, t1).await.expect("charged");
    assert_eq!(
        refusal(&admit_checked(&store, id, &limits, t1).await),
        Some(Refusal::Window(1)),
        "a spent token window refuses"
    );
    let budget_name = format!(
        "gateway:limits:{{team%2Fa%7B1%7D}}:budget:day:{}",
        t0 - 3_600_000
    );
    let (used, ttl): (u64, i64) = redis::pipe()
        .get(&budget_name)
        .cmd("PTTL")
        .arg(&budget_name)
        .query_async(&mut connection)
        .await
        .expect("budget");
    assert_eq!(used, 100);
    assert!(ttl > 0 && ttl as u64 <= DAY_MS, "{ttl}");

    let t2 = t1 + 60_000;
    store.charge(id, &limits, 60, t2).await.expect("charged");
    assert_eq!(
        refusal(&admit_checked(&store, id, &limits, t2).await),
        Some(Refusal::Budget),
        "the budget outlasts the windows"
    );
    let restarted = connected_store(&server).await;
    let counts = restarted.read(&[(id, &limits)], t2).await.expect("read");
    assert_eq!(
        counts[0].budget.map(|(used, _)| used),
        Some(160),
        "a restarted replica finds the budget use in Redis"
    );
    let mut reset = limits.clone();
    if let Some(budget) = reset.budget.as_mut() {
        budget.reset_at_ms = Some(t2);
    }
    assert_eq!(
        refusal(&admit_checked(&store, id, &reset, t2).await),
        None,
        "a reset starts the budget again"
    );
    let mut more = limits.clone();
    more.windows[0].limit = 4;
    more.budget = None;
    let Verdict::Admitted(counts) = admit_checked(&store, id, &more, t0).await else {
        panic!("a changed window counts anew");
    };
    assert_eq!(counts.windows[0].0, 1);
    assert_eq!(
        counts.windows[1].0, 0,
        "the unchanged window keeps its count"
    );
}

#[actix_web::test]
async fn the_admission_script_refuses_an_estimated_prompt_that_does_not_fit_as_decide_does() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let store = connected_store(&server).await;
    let limits = KeyLimits {
        windows: vec![Window {
            metered: Metered::Tokens,
            limit: 100,
            per: Duration::from_secs(60),
        }],
        budget: Some(Budget {
            tokens: 1000,
            period: BudgetPeriod::Day,
            reset_at_ms: None,
        }),
    };
    let t0 = now_ms() / DAY_MS * DAY_MS + 3_600_000;
    let id = "estimated";
    store.charge(id, &limits, 60, t0).await.expect("charged");
    let admitted = admit_estimated(&store, id, &limits, t0, 40).await;
    assert_eq!(refusal(&admitted), None, "40 more fit in 100");
    assert_eq!(
        refusal(&admit_estimated(&store, id, &limits, t0, 41).await),
        Some(Refusal::Window(0))
    );
    let later = t0 + 60_000;
    store
        .charge(id, &limits, 900, later)
        .await
        .expect("charged");
    assert_eq!(
        refusal(&admit_estimated(&store, id, &limits, later, 41).await),
        Some(Refusal::Budget),
        "960 of 1000 used: the budget has no room for 41"
    );
}

#[actix_web::test]
async fn one_admission_is_one_evalsha() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let store = connected_store(&server).await;
    let limits = KeyLimits {
        windows: vec![
            Window {
                metered: Metered::Requests,
                limit: 1_000_000,
                per: Duration::from_secs(60),
            },
            Window {
                metered: Metered::Tokens,
                limit: 1_000_000,
                per: Duration::from_secs(60),
            },
        ],
        budget: Some(Budget {
            tokens: 1_000_000,
            period: BudgetPeriod::Month,
            reset_at_ms: None,
        }),
    };
    let mut connection = redis_connection(&server).await;
    let _: () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query_async(&mut connection)
        .await
        .expect("resetstat");
    const ADMISSIONS: usize = 300;
    let mut took = Vec::with_capacity(ADMISSIONS);
    for _ in 0..ADMISSIONS {
        let started = Instant::now();
        store
            .admit("bench", &limits, now_ms(), 0)
            .await
            .expect("admitted");
        took.push(started.elapsed());
    }
    took.sort();
    eprintln!(
        "one admission against a local Redis: median {:?}, p99 {:?}",
        took[ADMISSIONS / 2],
        took[ADMISSIONS * 99 / 100]
    );
    let stats: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut connection)
        .await
        .expect("info");
    assert!(
        stats.contains(&format!("cmdstat_evalsha:calls={ADMISSIONS},")),
        "{stats}"
    );
    assert!(!stats.contains("cmdstat_eval:"), "{stats}");
}

/// One answer of the hammering: which replica, when (ms) it was sent and answered, its
/// status and the window end it names.
#[derive(Debug, Clone, Copy)]
struct Sample {
    replica: usize,
    sent_ms: u64,
    status: u16,
    window_end_ms: u64,
}

const WINDOW_MS: u64 = 2_000;

/// `x-ratelimit-reset-requests` in ms: `"250ms"`, `"1.5s"`, `"2s"`.
fn reset_ms(text: &str) -> Option<u64> {
    if let Some(ms) = text.strip_suffix("ms") {
        return ms.parse().ok();
    }
    let seconds: f64 = text.strip_suffix('s')?.parse().ok()?;
    Some((seconds * 1000.0).round() as u64)
}

/// Requests through every replica from `per_replica` loops each, until `stop`. A loop that
/// is refused waits until the window it was refused in ends, as a client honouring the
/// reset header does.
fn hammer(
    replicas: &[String],
    per_replica: usize,
    stop: Arc<AtomicBool>,
    samples: Arc<Mutex<Vec<Sample>>>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let http = reqwest::Client::new();
    let mut tasks = Vec::new();
    for (replica, url) in replicas.iter().enumerate() {
        for _ in 0..per_replica {
            let (http, url, stop, samples) =
                (http.clone(), url.clone(), stop.clone(), samples.clone());
            tasks.push(tokio::spawn(async move {
                let deadline = Instant::now() + Duration::from_secs(120);
                while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                    let sent_ms = now_ms();
                    let Ok(response) = http
                        .post(&url)
                        .bearer_auth(KEY)
                        .json(&chat_body(false))
                        .send()
                        .await
                    else {
                        continue;
                    };
                    let status = response.status().as_u16();
                    let reset = response
                        .headers()
                        .get("x-ratelimit-reset-requests")
                        .and_then(|v| v.to_str().ok())
                        .and_then(reset_ms);
                    let _ = response.bytes().await;
                    let received_ms = now_ms();
                    let window_end_ms = reset.map_or(0, |reset| {
                        let end = (sent_ms + received_ms) / 2 + reset;
                        (end + WINDOW_MS / 2) / WINDOW_MS * WINDOW_MS
                    });
                    samples
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(Sample {
                            replica,
                            sent_ms,
                            status,
                            window_end_ms,
                        });
                    if status == 429
                        && let Some(reset) = reset
                    {
                        tokio::time::sleep(Duration::from_millis(reset + 1)).await;
                    }
                }
            }));
        }
    }
    tasks
}

/// Successes per window, of the windows wholly within `from..to` (Unix ms).
fn successes_per_window(samples: &[Sample], from: u64, to: u64) -> Vec<(u64, usize)> {
    let first_end = from.div_ceil(WINDOW_MS) * WINDOW_MS + WINDOW_MS;
    (0..)
        .map(|i| first_end + i * WINDOW_MS)
        .take_while(|end| *end <= to)
        .map(|end| {
            let ok = samples
                .iter()
                .filter(|s| s.status == 200 && s.window_end_ms == end)
                .count();
            (end, ok)
        })
        .collect()
}

fn samples_now(samples: &Mutex<Vec<Sample>>) -> Vec<Sample> {
    samples.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

async fn status_of(http: &reqwest::Client, replica: &Running) -> Value {
    http.get(format!("{}/status", replica.ops))
        .send()
        .await
        .expect("status")
        .json()
        .await
        .expect("json")
}

async fn wait_reachable(http: &reqwest::Client, replicas: &[Running], reachable: bool) {
    eventually(
        &format!("every replica's /status to say redis_reachable {reachable}"),
        Duration::from_secs(20),
        || async {
            for replica in replicas {
                let limits = &status_of(http, replica).await["limits"];
                if limits["store"] != "redis" || limits["redis_reachable"] != reachable {
                    return false;
                }
            }
            true
        },
    )
    .await;
}

/// Waits until `count` whole windows after `from` have passed (by the answers seen).
async fn wait_windows(samples: &Mutex<Vec<Sample>>, from: u64, count: u64) {
    let until = from.div_ceil(WINDOW_MS) * WINDOW_MS + (count + 1) * WINDOW_MS;
    eventually(
        &format!("{count} whole windows of answers"),
        Duration::from_secs(30),
        || async { samples_now(samples).iter().any(|s| s.sent_ms > until) },
    )
    .await;
}

fn assert_shared_bound(samples: &[Sample], from: u64, to: u64, phase: &str) {
    let windows = successes_per_window(samples, from, to);
    eprintln!("{phase}: successes per window: {windows:?}");
    assert!(
        windows.len() >= 2,
        "{phase}: too few whole windows: {windows:?}"
    );
    for (end, ok) in &windows {
        assert!(
            (20..=21).contains(ok),
            "{phase}: the window ending at {end} had {ok} successes (20 allowed across both replicas): {windows:?}"
        );
    }
}

#[actix_web::test]
async fn two_replicas_share_one_window_through_redis_and_ride_out_its_outage() {
    let Some(mut server) = RedisServer::start() else {
        return;
    };
    let fake = FakeFoundry::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config_path = dir.path().join("config.json");
    let mut config = base_config(&fake);
    config["apiKeys"][0]["limits"] = json!([{"requests": 20, "per": "2s"}]);
    // A loaded test machine may hold a call for longer than the default 250 ms, which would be
    // an outage this test did not make.
    config["limits"] = json!({"redis": server.url(), "redisTimeoutMs": 2000});
    write_json(&config_path, &config);
    let replicas = [start_binary(&config_path), start_binary(&config_path)];
    let http = reqwest::Client::new();
    wait_reachable(&http, &replicas, true).await;

    let stop = Arc::new(AtomicBool::new(false));
    let samples = Arc::new(Mutex::new(Vec::new()));
    let urls: Vec<String> = replicas
        .iter()
        .map(|r| r.url("/v1/chat/completions"))
        .collect();
    let tasks = hammer(&urls, 3, stop.clone(), samples.clone());

    let started = now_ms();
    wait_windows(&samples, started, 3).await;
    let killed = now_ms();
    server.kill();
    wait_reachable(&http, &replicas, false).await;
    for replica in &replicas {
        let limits = &status_of(&http, replica).await["limits"];
        assert!(limits["since_ms"].as_u64() >= Some(killed), "{limits}");
    }
    let noticed = now_ms();
    eventually(
        "both replicas to serve while Redis is down",
        Duration::from_secs(10),
        || async {
            let seen = samples_now(&samples);
            (0..replicas.len()).all(|r| {
                seen.iter()
                    .any(|s| s.replica == r && s.status == 200 && s.sent_ms > noticed)
            })
        },
    )
    .await;

    server.restart();
    wait_reachable(&http, &replicas, true).await;
    let back = now_ms();
    wait_windows(&samples, back, 3).await;
    let stopped = now_ms();
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await.expect("hammer loop");
    }

    let samples = samples_now(&samples);
    let odd: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.status != 200 && s.status != 429)
        .collect();
    assert!(odd.is_empty(), "only 200 and 429 answers: {odd:?}");
    assert_shared_bound(&samples, started, killed, "before the outage");
    assert_shared_bound(&samples, back, stopped, "after Redis came back");

    for replica in replicas {
        let logged: Vec<String> = replica.lines.try_iter().collect();
        let count = |needle: &str| logged.iter().filter(|l| l.contains(needle)).count();
        assert_eq!(count("Redis is unreachable"), 1, "one warning per outage");
        assert_eq!(count("Redis is reachable again"), 1);
        assert!(logged.iter().all(|l| !l.contains(KEY)));
    }
}

async fn metric(app: &TestApp, name: &str) -> Option<f64> {
    let text = app
        .http
        .get(format!("{}/metrics", app.ops))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

#[actix_web::test]
async fn the_store_follows_reloads_and_failing_closed_refuses_while_redis_is_down() {
    let Some(mut server) = RedisServer::start() else {
        return;
    };
    let limits = json!([{"requests": 1000, "per": "1h"}, {"tokens": 1000000, "per": "1h"}]);
    let app = spawn_app_with_config(|config| {
        config["apiKeys"][0]["limits"] = limits.clone();
    })
    .await;
    let status = app.ops_json("/status").await;
    assert_eq!(status["limits"]["store"], "process");
    assert_eq!(status["limits"]["redis_reachable"], Value::Null);
    assert_eq!(metric(&app, "gateway_limits_redis_up").await, None);
    assert_eq!(app.chat(chat_body(false)).await.status(), 200);

    let mut config = base_config(&app.fake);
    config["apiKeys"][0]["limits"] = limits;
    config["limits"] = json!({"redis": server.url(), "failMode": "closed", "redisTimeoutMs": 2000});
    write_json(&app.config_path, &config);
    eventually(
        "the reload to count in a reachable Redis",
        Duration::from_secs(10),
        || async {
            let limits = &app.ops_json("/status").await["limits"];
            limits["store"] == "redis"
                && limits["redis_reachable"] == true
                && limits["fail_mode"] == "closed"
        },
    )
    .await;
    assert_eq!(app.chat(chat_body(false)).await.status(), 200);
    let limits = app.ops_json("/limits").await;
    assert_eq!(
        limits["keys"][0]["windows"][0]["used"], 1,
        "/limits reads the shared counters"
    );
    eventually(
        "the request's tokens to be charged in Redis",
        Duration::from_secs(5),
        || async {
            let used = &app.ops_json("/limits").await["keys"][0]["windows"][1]["used"];
            used.as_u64().is_some_and(|used| used > 0)
        },
    )
    .await;
    assert_eq!(metric(&app, "gateway_limits_redis_up").await, Some(1.0));

    server.kill();
    let response = app.chat(chat_body(false)).await;
    assert!(response.headers().contains_key("retry-after"));
    let (status, error) = error_of(response).await;
    assert_eq!(status, 503);
    assert_eq!(error["code"], "limits_unavailable");
    let unlimited = app
        .http
        .post(app.url("/v1/chat/completions"))
        .bearer_auth("sk-other-key")
        .json(&chat_body(false))
        .send()
        .await
        .expect("request");
    assert_eq!(unlimited.status(), 200, "keys without limits are served");
    let status = app.ops_json("/status").await;
    assert_eq!(status["limits"]["redis_reachable"], false);
    assert_eq!(metric(&app, "gateway_limits_redis_up").await, Some(0.0));
    assert!(metric(&app, "gateway_limits_redis_errors_total").await >= Some(1.0));

    server.restart();
    eventually("Redis reachable again", Duration::from_secs(10), || async {
        app.ops_json("/status").await["limits"]["redis_reachable"] == true
    })
    .await;
    assert_eq!(app.chat(chat_body(false)).await.status(), 200);

    config["limits"] = json!({});
    write_json(&app.config_path, &config);
    eventually(
        "the reload to count in the process again",
        Duration::from_secs(10),
        || async { app.ops_json("/status").await["limits"]["store"] == "process" },
    )
    .await;
    server.kill();
    assert_eq!(app.chat(chat_body(false)).await.status(), 200);
}

/// A Redis that stops answering holds a request for `limits.redisTimeoutMs` at most, and a
/// reload's new timeout applies to the running store.
#[actix_web::test]
async fn a_hung_redis_holds_a_request_for_the_configured_timeout_only() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let limits = json!([{"requests": 1000, "per": "1h"}]);
    let redis = json!({"redis": server.url(), "redisTimeoutMs": 1500});
    let app = spawn_app_with_config(|config| {
        config["apiKeys"][0]["limits"] = limits.clone();
        config["limits"] = redis;
    })
    .await;
    let reachable = |want: bool| {
        let app = &app;
        async move {
            eventually(
                &format!("/status to say redis_reachable {want}"),
                Duration::from_secs(15),
                || async { app.ops_json("/status").await["limits"]["redis_reachable"] == want },
            )
            .await;
        }
    };
    reachable(true).await;
    assert_eq!(app.chat(chat_body(false)).await.status(), 200);

    let timed = || async {
        let started = Instant::now();
        let status = app.chat(chat_body(false)).await.status();
        (status, started.elapsed())
    };
    server.signal("-STOP");
    let (status, took) = timed().await;
    assert_eq!(status, 200, "failMode open serves on");
    assert!(
        took >= Duration::from_millis(1500) && took < Duration::from_secs(6),
        "{took:?}"
    );
    reachable(false).await;
    server.signal("-CONT");
    reachable(true).await;

    let mut config = base_config(&app.fake);
    config["apiKeys"][0]["limits"] = limits;
    config["limits"] = json!({"redis": server.url(), "redisTimeoutMs": 100});
    write_json(&app.config_path, &config);
    eventually("the reload", Duration::from_secs(10), || async {
        let generation = app.ops_json("/status").await["config"]["generation"].as_u64();
        generation.is_some_and(|g| g >= 2)
    })
    .await;
    server.signal("-STOP");
    let (status, took) = timed().await;
    server.signal("-CONT");
    assert_eq!(status, 200);
    assert!(took < Duration::from_millis(1500), "{took:?}");
}

#[actix_web::test]
async fn limits_count_in_a_redis_over_tls_whose_certificate_is_verified() {
    let Some(server) = RedisServer::start_tls() else {
        return;
    };
    let ca = server
        .ca_file()
        .expect("a TLS server")
        .display()
        .to_string();
    let fake = FakeFoundry::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config_path = dir.path().join("config.json");
    let mut config = base_config(&fake);
    config["apiKeys"][0]["limits"] = json!([{"requests": 100, "per": "1m"}]);
    config["limits"] = json!({"redis": server.url(), "redisTimeoutMs": 2000});
    write_json(&config_path, &config);
    let http = reqwest::Client::new();

    // With the public roots only (not the test CA) the certificate is refused: nothing falls
    // back to an unverified connection.
    let public_roots = "/etc/ssl/certs/ca-certificates.crt".to_string();
    let untrusting = start_binary_with(&config_path, &[("SSL_CERT_FILE", public_roots)]);
    eventually(
        "the replica without the CA to give up a first connection",
        Duration::from_secs(10),
        || async {
            let status = status_of(&http, &untrusting).await;
            metric_value(&http, &untrusting, "gateway_limits_redis_errors_total").await > 0.0
                && status["limits"]["redis_reachable"] == false
        },
    )
    .await;
    drop(untrusting);

    let replica = start_binary_with(&config_path, &[("SSL_CERT_FILE", ca)]);
    wait_reachable(&http, std::slice::from_ref(&replica), true).await;
    let response = http
        .post(replica.url("/v1/chat/completions"))
        .bearer_auth(KEY)
        .json(&chat_body(false))
        .send()
        .await
        .expect("chat");
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["x-ratelimit-remaining-requests"],
        "99",
        "counted in the Redis over TLS"
    );
    let limits = &status_of(&http, &replica).await["limits"];
    assert_eq!(limits["store"], "redis");
    assert_eq!(limits["redis_reachable"], true);
}

/// A counter or gauge of the replica's `/metrics`, 0 when absent.
async fn metric_value(http: &reqwest::Client, replica: &Running, name: &str) -> f64 {
    let text = http
        .get(format!("{}/metrics", replica.ops))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or(0.0)
}
