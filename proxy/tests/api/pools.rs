//! Deployment pools against three fake upstreams: weights, 429 cooldown, spillover, failover,
//! circuit breaker, streams, reloads and the connection limit that never queues.

use std::time::{Duration, Instant};

use fake_foundry::{Behaviour, FakeFoundry};
use serde_json::{Value, json};

use crate::helpers::*;

const POOLED: &str = "pooled";

/// The app's own fake (upstream `a`) and two more (`b`, `c`), with the model `pooled` on
/// `deployments` and the config after `edit`.
struct Pool {
    app: TestApp,
    b: FakeFoundry,
    c: FakeFoundry,
}

async fn pool_with(deployments: Value, edit: impl FnOnce(&mut Value)) -> Pool {
    pool_with_env(deployments, edit, &[]).await
}

async fn pool_with_env(
    deployments: Value,
    edit: impl FnOnce(&mut Value),
    env: &[(&str, &str)],
) -> Pool {
    let b = FakeFoundry::start().await;
    let c = FakeFoundry::start().await;
    let (b_url, c_url) = (b.base_url(), c.base_url());
    let app = spawn_app_with(
        Behaviour::default(),
        |config| {
            let upstreams = config["upstreams"].as_array_mut().expect("upstreams");
            upstreams[0]["name"] = json!("a");
            upstreams.push(json!({"name": "b", "baseUrl": b_url}));
            upstreams.push(json!({"name": "c", "baseUrl": c_url}));
            for model in config["models"].as_array_mut().expect("models") {
                if model["upstream"] == "fake" {
                    model["upstream"] = json!("a");
                }
            }
            config["models"]
                .as_array_mut()
                .expect("models")
                .push(json!({"id": POOLED, "deployments": deployments}));
            edit(config);
        },
        env,
    )
    .await;
    Pool { app, b, c }
}

/// What `check` gives once it gives something (10 s at most).
async fn until<T, F, Fut>(what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    wait_for(what, Duration::from_secs(10), check)
        .await
        .unwrap_or_else(|timed_out| panic!("{timed_out}"))
}

fn body(stream: bool) -> Value {
    let mut body = chat_body(stream);
    body["model"] = json!(POOLED);
    body
}

impl Pool {
    /// Sends one request and returns its status and the deployment that served it.
    async fn send(&self) -> (u16, String) {
        let response = self.app.chat(body(false)).await;
        let served_by = response
            .headers()
            .get("x-gateway-deployment")
            .map(|v| v.to_str().expect("ascii").to_string())
            .unwrap_or_default();
        let status = response.status().as_u16();
        response.bytes().await.expect("body");
        (status, served_by)
    }

    /// The ops view of the pool's deployment on `upstream`.
    async fn deployment(&self, upstream: &str) -> Value {
        let stats = self.app.ops_json("/stats").await;
        stats["deployments"]
            .as_array()
            .expect("deployments")
            .iter()
            .find(|d| d["upstream"] == upstream && d["models"] == json!([POOLED]))
            .cloned()
            .unwrap_or_else(|| panic!("no deployment on {upstream}: {stats:#}"))
    }

    /// The attempts of the newest request, once `requests` requests have been recorded.
    async fn last_attempts(&self, requests: usize) -> Vec<Value> {
        until("the request to be recorded", || async {
            let page = self.app.ops_json("/requests?limit=1000").await;
            let data = page["data"].as_array()?;
            (data.len() == requests).then(|| data[0]["attempts"].as_array().cloned())?
        })
        .await
    }
}

fn three(weights: [u64; 3], priorities: [u64; 3]) -> Value {
    json!([
        {"upstream": "a", "targetModel": "dep-a", "weight": weights[0], "priority": priorities[0]},
        {"upstream": "b", "targetModel": "dep-b", "weight": weights[1], "priority": priorities[1]},
        {"upstream": "c", "targetModel": "dep-c", "weight": weights[2], "priority": priorities[2]}
    ])
}

#[actix_web::test]
async fn weights_share_the_traffic_and_every_answer_names_its_deployment() {
    let pool = pool_with(three([1, 2, 1], [0, 0, 0]), |_| {}).await;
    let mut served = std::collections::BTreeMap::new();
    for _ in 0..40 {
        let (status, by) = pool.send().await;
        assert_eq!(status, 200);
        *served.entry(by).or_insert(0) += 1;
    }
    assert_eq!(
        served,
        [("a/dep-a", 10), ("b/dep-b", 20), ("c/dep-c", 10)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect()
    );
    assert_eq!(pool.app.fake.request_count(), 10);
    assert_eq!(pool.b.request_count(), 20);
    assert_eq!(pool.b.requests()[0].json()["model"], "dep-b");
}

#[actix_web::test]
async fn a_429_with_retry_after_ms_takes_the_deployment_out_for_that_long_and_no_longer() {
    let pool = pool_with(three([1, 1, 0], [0, 0, 0]), |_| {}).await;
    pool.app
        .fake
        .enqueue(status_reply(429, &[("retry-after-ms", "1500")]));
    let throttled_at = Instant::now();
    let (status, by) = pool.send().await;
    assert_eq!((status, by.as_str()), (200, "b/dep-b"));
    let attempts = pool.last_attempts(1).await;
    assert_eq!(attempts.len(), 2, "{attempts:?}");
    assert_eq!(attempts[0]["deployment"], "a/dep-a");
    assert_eq!(attempts[0]["outcome"], "throttled");
    assert_eq!(attempts[0]["status"], 429);
    assert_eq!(attempts[1]["outcome"], "answered");

    let a = pool.deployment("a").await;
    assert_eq!(a["state"], "cooling");
    assert_eq!(a["throttled"], 1);
    assert_eq!(a["failovers_out"], 1);
    let until_ms = a["until_ms"].as_u64().expect("until");
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64;
    assert!(until_ms > now_ms && until_ms <= now_ms + 1500, "{a}");

    // While cooling, every request goes to b; then a takes its share again at once.
    let back = until("a to serve again", || async {
        let (status, by) = pool.send().await;
        assert_eq!(status, 200);
        (by == "a/dep-a").then(Instant::now)
    })
    .await;
    let out_for = back - throttled_at;
    assert!(
        out_for >= Duration::from_millis(1500) && out_for < Duration::from_millis(2500),
        "{out_for:?}"
    );
    assert_eq!(pool.app.fake.request_count(), 2);
    assert_eq!(pool.deployment("a").await["state"], "available");
}

#[actix_web::test]
async fn a_higher_priority_takes_traffic_only_while_the_lower_is_cooling() {
    let pool = pool_with(three([1, 1, 1], [0, 1, 2]), |_| {}).await;
    assert_eq!(pool.send().await.1, "a/dep-a");
    pool.app
        .fake
        .enqueue(status_reply(429, &[("retry-after-ms", "800")]));
    assert_eq!(pool.send().await.1, "b/dep-b");
    assert_eq!(pool.send().await.1, "b/dep-b");
    until("the traffic to come back to priority 0", || async {
        (pool.send().await.1 == "a/dep-a").then_some(())
    })
    .await;
    assert_eq!(pool.c.request_count(), 0);
}

#[actix_web::test]
async fn when_every_deployment_is_cooling_the_client_gets_one_429_with_the_earliest_return() {
    let pool = pool_with(three([1, 1, 0], [0, 0, 0]), |_| {}).await;
    pool.app
        .fake
        .enqueue(status_reply(429, &[("retry-after-ms", "4000")]));
    pool.b.enqueue(status_reply(429, &[("retry-after", "2")]));
    let response = pool.app.chat(body(false)).await;
    assert_eq!(response.status(), 429);
    let retry_ms: u64 = response.headers()["retry-after-ms"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("ms");
    assert!(retry_ms > 1500 && retry_ms <= 2000, "{retry_ms}");
    assert_eq!(response.headers()["retry-after"], "2");
    assert!(response.headers().get("x-gateway-deployment").is_none());
    let (_, error) = error_of(response).await;
    assert_eq!(error["code"], "rate_limit_exceeded");

    // Another request while both cool is answered at once, without an upstream call.
    assert_eq!(pool.send().await.0, 429);
    assert_eq!(pool.app.fake.request_count() + pool.b.request_count(), 2);
    let stats = pool
        .app
        .wait_for_stats(|s| s["by_model"][POOLED]["requests"] == 2)
        .await;
    assert_eq!(stats["by_model"][POOLED]["errors"]["rate_limited"], 2);
}

#[actix_web::test]
async fn a_5xx_and_a_refused_connection_move_the_request_to_the_next_deployment() {
    let dead = format!("http://127.0.0.1:{}", free_port());
    let pool = pool_with(
        json!([
            {"upstream": "dead", "targetModel": "d", "priority": 0},
            {"upstream": "a", "targetModel": "dep-a", "priority": 1},
            {"upstream": "b", "targetModel": "dep-b", "priority": 2}
        ]),
        |config| {
            config["upstreams"]
                .as_array_mut()
                .expect("upstreams")
                .push(json!({"name": "dead", "baseUrl": dead}));
        },
    )
    .await;
    pool.app.fake.enqueue(status_reply(503, &[]));
    let (status, by) = pool.send().await;
    assert_eq!((status, by.as_str()), (200, "b/dep-b"));
    let outcomes: Vec<Value> = pool
        .last_attempts(1)
        .await
        .iter()
        .map(|a| a["outcome"].clone())
        .collect();
    assert_eq!(outcomes, vec!["unreachable", "upstream_5xx", "answered"]);
    assert_eq!(pool.deployment("dead").await["failures"]["unreachable"], 1);
    assert_eq!(pool.deployment("a").await["failures"]["upstream_5xx"], 1);
}

#[actix_web::test]
async fn a_4xx_of_the_client_is_returned_as_it_is_without_failover() {
    let pool = pool_with(three([1, 1, 1], [0, 1, 2]), |_| {}).await;
    pool.app.fake.enqueue(status_reply(400, &[]));
    let (status, by) = pool.send().await;
    assert_eq!((status, by.as_str()), (400, "a/dep-a"));
    assert_eq!(pool.b.request_count(), 0);
}

#[actix_web::test]
async fn failures_in_a_row_open_the_circuit_and_a_trial_closes_it_again() {
    let pool = pool_with(three([1, 1, 0], [0, 1, 0]), |config| {
        config["server"]["upstream"]["failover"] =
            json!({"circuitFailures": 2, "circuitOpenMs": 400, "circuitMaxOpenMs": 10000});
    })
    .await;
    for _ in 0..2 {
        pool.app.fake.enqueue(status_reply(500, &[]));
        assert_eq!(pool.send().await, (200, "b/dep-b".to_string()));
    }
    let a = pool.deployment("a").await;
    assert_eq!(a["state"], "circuit_open", "{a}");
    assert_eq!(a["consecutive_failures"], 2);
    // While open, a is not tried at all.
    assert_eq!(pool.send().await.1, "b/dep-b");
    assert_eq!(pool.last_attempts(3).await.len(), 1);
    assert_eq!(pool.app.fake.request_count(), 2);

    // After the wait, one trial: it fails, and the circuit opens for twice as long.
    pool.app.fake.enqueue(status_reply(502, &[]));
    until("the half-open trial", || async {
        pool.send().await;
        (pool.app.fake.request_count() == 3).then_some(())
    })
    .await;
    let a = pool.deployment("a").await;
    assert_eq!(a["state"], "circuit_open", "{a}");
    // The next trial succeeds and closes the circuit.
    until("a successful trial", || async {
        (pool.send().await.1 == "a/dep-a").then_some(())
    })
    .await;
    let a = pool.deployment("a").await;
    assert_eq!(a["state"], "available", "{a}");
    assert_eq!(a["consecutive_failures"], 0);
}

#[actix_web::test]
async fn a_stream_is_served_whole_by_the_second_deployment_after_a_429() {
    let pool = pool_with(three([1, 1, 0], [0, 1, 0]), |_| {}).await;
    pool.app
        .fake
        .enqueue(status_reply(429, &[("retry-after-ms", "5000")]));
    let response = pool.app.chat(body(true)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-gateway-deployment"], "b/dep-b");
    assert!(
        response.headers()["content-type"]
            .to_str()
            .expect("ascii")
            .starts_with("text/event-stream")
    );
    let text = response.text().await.expect("stream");
    let data: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .collect();
    assert_eq!(data.last(), Some(&"[DONE]"));
    assert_eq!(data.iter().filter(|d| **d == "[DONE]").count(), 1);
    let content: String = data
        .iter()
        .filter(|d| **d != "[DONE]")
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|e| {
            e["choices"][0]["delta"]["content"]
                .as_str()
                .map(String::from)
        })
        .collect();
    assert_eq!(content, Behaviour::default().text);
    assert!(!text.contains("error"), "{text}");
}

#[actix_web::test]
async fn a_reload_keeps_the_state_of_deployments_that_did_not_change() {
    let pool = pool_with(three([1, 1, 1], [0, 0, 0]), |_| {}).await;
    pool.app
        .fake
        .enqueue(status_reply(429, &[("retry-after-ms", "60000")]));
    pool.send().await;
    assert_eq!(pool.deployment("a").await["state"], "cooling");

    let mut config: Value =
        serde_json::from_slice(&std::fs::read(&pool.app.config_path).expect("read")).expect("json");
    config["models"]
        .as_array_mut()
        .expect("models")
        .push(json!({"id": "another", "upstream": "b"}));
    let pooled = config["models"]
        .as_array_mut()
        .expect("models")
        .iter_mut()
        .find(|m| m["id"] == POOLED)
        .expect("pooled");
    pooled["deployments"][2]["targetModel"] = json!("dep-c2");
    write_json(&pool.app.config_path, &config);
    until("the reload", || async {
        (pool.app.ops_json("/status").await["config"]["generation"] == 2).then_some(())
    })
    .await;

    let a = pool.deployment("a").await;
    assert_eq!(a["state"], "cooling", "{a}");
    assert_eq!(a["throttled"], 1);
    let c = pool.deployment("c").await;
    assert_eq!(c["deployment"], "dep-c2");
    assert_eq!(c["requests"], 0);
    for _ in 0..4 {
        assert_ne!(pool.send().await.1, "a/dep-a");
    }
}

#[actix_web::test]
async fn requests_beyond_the_kept_connections_go_out_at_once_on_their_own() {
    let pool = pool_with_env(
        json!([{"upstream": "a", "targetModel": "dep-a"}]),
        |config| config["server"]["upstream"]["pool"] = json!({"connections": 1}),
        &[("PROXY_WORKERS", "1")],
    )
    .await;
    let mut slow = body(true);
    slow["fake"] = json!({"stream_chunks": 20, "chunk_gap_ms": 1000});
    let streams: Vec<_> = (0..6)
        .map(|_| {
            let request = pool.app.post("/v1/chat/completions", &slow);
            actix_rt::spawn(async move {
                let response = request.send().await.expect("request");
                let mut response = response;
                while let Ok(Some(_)) = response.chunk().await {}
            })
        })
        .collect();
    // With a queue behind the one kept connection, only one stream would start in 20 s.
    until("all six streams to start upstream", || async {
        (pool.app.fake.streams_started() == 6).then_some(())
    })
    .await;
    for stream in streams {
        stream.abort();
    }
}
