//! The gateway as the container runs it: supervisord with Caddy, proxy and control, in front of
//! a fake Foundry upstream. See `stack_tests` for what the stack needs.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use fake_foundry::{Behaviour, FakeFoundry, ScriptedReply};
use futures_util::StreamExt as _;
use serde_json::{Value, json};
use stack_tests::{
    Ports, Stack, StackOptions, Tools, example_config, example_config_bytes, signal,
};
use test_support::{chat_body, eventually, wait_for, wait_until, write_json};

const KEY: &str = "CHANGEME";
const UPSTREAM_KEY: &str = "upstream-secret";
const DOMAIN: &str = "gateway.test";
const ADMIN_PASSWORD: &str = "stack-admin-password";

/// The shipped example, pointed at the fake upstream, with an admin password of its own and the
/// TLS site on this stack's port.
fn config_for(fake: &FakeFoundry, ports: &Ports, tls: bool) -> Value {
    let mut config = example_config();
    config["upstreams"][0]["baseUrl"] = json!(fake.base_url());
    config["auth"] = json!({"mode": "apiKey", "apiKey": UPSTREAM_KEY});
    config["server"]["adminAuth"]["password"] = json!(ADMIN_PASSWORD);
    config["server"]["caddy"]["enabled"] = json!(tls);
    config["server"]["caddy"]["domain"] = json!(if tls { DOMAIN } else { "" });
    config["server"]["caddy"]["httpsPort"] = json!(ports.https);
    config
}

fn chat(model: &str, stream: bool) -> Value {
    let mut body = chat_body(stream);
    body["model"] = json!(model);
    body
}

async fn chat_status(http: &reqwest::Client, stack: &Stack, model: &str) -> Option<u16> {
    http.post(stack.http_url("/v1/chat/completions"))
        .bearer_auth(KEY)
        .json(&chat(model, false))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .ok()
        .map(|r| r.status().as_u16())
}

/// A streamed chat completion through Caddy, once its head has arrived.
async fn stream(http: &reqwest::Client, stack: &Stack) -> reqwest::Response {
    let response = http
        .post(stack.http_url("/v1/chat/completions"))
        .bearer_auth(KEY)
        .json(&chat("gpt-5-mini", true))
        .send()
        .await
        .expect("stream");
    assert_eq!(response.status(), 200);
    response
}

fn admin(
    http: &reqwest::Client,
    stack: &Stack,
    method: reqwest::Method,
    path: &str,
) -> reqwest::RequestBuilder {
    http.request(method, stack.http_url(&format!("/admin/api/{path}")))
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .header("x-requested-with", "stack-test")
        .header("origin", stack.http_url(""))
}

async fn admin_json(http: &reqwest::Client, stack: &Stack, path: &str) -> Value {
    let response = admin(http, stack, reqwest::Method::GET, path)
        .send()
        .await
        .expect("admin API");
    assert_eq!(response.status(), 200, "GET /admin/api/{path}");
    response.json().await.expect("json")
}

/// A client that trusts Caddy's local CA and finds the TLS site on loopback.
fn tls_client(data_dir: &Path, https_port: u16) -> reqwest::Client {
    let root = std::fs::read(data_dir.join("caddy/pki/authorities/local/root.crt"))
        .expect("Caddy's local CA root is in the data dir");
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&root).expect("PEM"))
        .resolve(DOMAIN, SocketAddr::from(([127, 0, 0, 1], https_port)))
        .tls_info(true)
        .build()
        .expect("client")
}

/// The DER of the certificate the TLS site presents, after a successful API call over it.
async fn served_certificate(data_dir: &Path, https_port: u16) -> Option<Vec<u8>> {
    let response = tls_client(data_dir, https_port)
        .get(format!("https://{DOMAIN}:{https_port}/v1/models"))
        .bearer_auth(KEY)
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .ok()
        .filter(|r| r.status() == 200)?;
    let info = response.extensions().get::<reqwest::tls::TlsInfo>()?;
    info.peer_certificate().map(<[u8]>::to_vec)
}

async fn wait_for_certificate(stack: &Stack) -> Vec<u8> {
    let root = stack.data_dir.join("caddy/pki/authorities/local/root.crt");
    let served = wait_for("the TLS site to serve", Duration::from_secs(30), || async {
        if !root.is_file() {
            return None;
        }
        served_certificate(&stack.data_dir, stack.ports.https).await
    })
    .await;
    served.unwrap_or_else(|timed_out| panic!("{timed_out}; log:\n{}", stack.log()))
}

fn total_requests(stats: &Value) -> u64 {
    stats["total"]["requests"].as_u64().unwrap_or(0)
}

#[tokio::test]
async fn the_stack_serves_applies_saved_config_stops_cleanly_and_keeps_its_state() {
    let Some(tools) = Tools::find() else { return };
    let fake = FakeFoundry::start().await;
    fake.set_required_api_key(Some(UPSTREAM_KEY.into()));
    let ports = Ports::free();
    let data = tempfile::tempdir().expect("tempdir");
    let options = StackOptions {
        data_dir: data.path(),
        ports: &ports,
        tls_internal: true,
    };
    let http = reqwest::Client::new();

    let stack = Stack::start(&tools, &options);
    stack.wait_ready(&http).await;
    let config_path = data.path().join("config.json");
    assert_eq!(
        std::fs::read(&config_path).expect("read"),
        example_config_bytes(),
        "first start creates config.json from the example"
    );

    // Edited by hand: the fake upstream, a password, a TLS site. The proxy applies it.
    write_json(&config_path, &config_for(&fake, &ports, true));
    eventually(
        "the proxy to apply the edited config",
        Duration::from_secs(20),
        || async { chat_status(&http, &stack, "gpt-5-mini").await == Some(200) },
    )
    .await;

    // The API through Caddy's HTTP port, signed with the upstream key.
    let last = fake.requests().pop().expect("the fake saw the request");
    assert_eq!(last.header("api-key"), Some(UPSTREAM_KEY));
    assert_eq!(last.json()["model"], "gpt-5-mini");
    let text = stream(&http, &stack)
        .await
        .text()
        .await
        .expect("stream body");
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");

    // The admin UI through Caddy, with the password of the edited file once control read it.
    // Control reloads Caddy for the edited TLS site meanwhile, and a reload closes idle
    // keep-alive connections: a request racing that close fails and is sent again.
    let page = || async {
        let response = http
            .get(stack.http_url("/admin/"))
            .basic_auth("admin", Some(ADMIN_PASSWORD))
            .send()
            .await
            .ok()?;
        if response.status() != 200 {
            return None;
        }
        response.text().await.ok()
    };
    eventually(
        "control to read the edited config",
        Duration::from_secs(10),
        || async { page().await.is_some_and(|html| html.contains("<html")) },
    )
    .await;

    // The TLS site, with a certificate from Caddy's local CA kept in the data dir.
    let certificate = wait_for_certificate(&stack).await;

    // A config saved through the admin API is applied by the proxy.
    let current = admin_json(&http, &stack, "config").await;
    let mut edited = current["config"].clone();
    edited["models"].as_array_mut().expect("models").push(
        json!({"id": "stack-model", "upstream": "foundry", "targetModel": "stack-deployment"}),
    );
    let saved = admin(&http, &stack, reqwest::Method::PUT, "config")
        .header("if-match", current["etag"].as_str().expect("etag"))
        .json(&edited)
        .send()
        .await
        .expect("save");
    assert_eq!(
        saved.status(),
        200,
        "{}",
        saved.text().await.unwrap_or_default()
    );
    eventually(
        "the proxy to serve the saved model",
        Duration::from_secs(10),
        || async { chat_status(&http, &stack, "stack-model").await == Some(200) },
    )
    .await;
    assert_eq!(
        fake.requests().pop().expect("request").json()["model"],
        "stack-deployment"
    );
    let stats_before = admin_json(&http, &stack, "stats").await;
    let requests_before = total_requests(&stats_before);
    assert!(requests_before >= 3, "{stats_before}");

    // SIGTERM while a stream runs: the stream finishes, then everything stops cleanly.
    fake.enqueue(ScriptedReply::With(Behaviour {
        stream_chunks: 10,
        chunk_gap_ms: 200,
        ..Behaviour::default()
    }));
    let mut body = stream(&http, &stack).await.bytes_stream();
    let first = body.next().await.expect("a first event").expect("bytes");
    let stopping = tokio::task::spawn_blocking(move || stack.stop(Duration::from_secs(60)));
    let mut text = String::from_utf8_lossy(&first).into_owned();
    while let Some(chunk) = body.next().await {
        text.push_str(&String::from_utf8_lossy(
            &chunk.expect("the stream is not cut"),
        ));
    }
    assert!(
        text.trim_end().ends_with("data: [DONE]"),
        "the stream was cut by the stop: {text}"
    );
    let stopped = stopping.await.expect("stop");
    assert!(
        stopped.status.success(),
        "supervisord exited with {:?}",
        stopped.status
    );
    for line in [
        "stopped: proxy (exit status 0)",
        "stopped: control (exit status 0)",
        "stopped: caddy (exit status 0)",
    ] {
        assert!(
            stopped.log.contains(line),
            "no {line:?} in:\n{}",
            stopped.log
        );
    }
    for prefix in ["\nproxy   | {", "\ncontrol | {", "\ncaddy   | {"] {
        assert!(
            stopped.log.contains(prefix),
            "no {prefix:?} lines in:\n{}",
            stopped.log
        );
    }
    let persisted: Value =
        serde_json::from_slice(&std::fs::read(data.path().join("stats.json")).expect("stats.json"))
            .expect("json");
    assert!(
        total_requests(&persisted) > requests_before,
        "stats.json misses the last requests: {persisted}"
    );

    // Started again on the same data dir: config, statistics and certificate are still there.
    let stack = Stack::start(&tools, &options);
    stack.wait_ready(&http).await;
    assert_eq!(chat_status(&http, &stack, "stack-model").await, Some(200));
    let stats_after = admin_json(&http, &stack, "stats").await;
    assert!(
        total_requests(&stats_after) > total_requests(&persisted),
        "statistics restarted from zero: {stats_after}"
    );
    assert_eq!(
        wait_for_certificate(&stack).await,
        certificate,
        "the TLS site got a new certificate after the restart"
    );
    assert!(stack.stop(Duration::from_secs(60)).status.success());
}

#[tokio::test]
async fn supervisord_restarts_a_killed_program_and_traffic_resumes() {
    let Some(tools) = Tools::find() else { return };
    let fake = FakeFoundry::start().await;
    fake.set_required_api_key(Some(UPSTREAM_KEY.into()));
    let ports = Ports::free();
    let data = tempfile::tempdir().expect("tempdir");
    write_json(
        &data.path().join("config.json"),
        &config_for(&fake, &ports, false),
    );
    let options = StackOptions {
        data_dir: data.path(),
        ports: &ports,
        tls_internal: false,
    };
    let http = reqwest::Client::new();
    let stack = Stack::start(&tools, &options);
    stack.wait_ready(&http).await;

    // The entrypoint's allocator settings reach the proxy (image memory goes back when idle).
    let proxy = stack.pid("proxy").expect("running");
    let environ = std::fs::read(format!("/proc/{proxy}/environ")).expect("environ");
    for setting in ["MIMALLOC_PURGE_DELAY=0", "MALLOC_MMAP_THRESHOLD_=131072"] {
        assert!(
            environ.split(|&b| b == 0).any(|v| v == setting.as_bytes()),
            "{setting} not in the proxy's environment"
        );
    }

    for program in ["proxy", "caddy", "control"] {
        // Traffic runs while the program is killed.
        let answered = Arc::new(AtomicUsize::new(0));
        let traffic = {
            let http = http.clone();
            let url = stack.http_url("/v1/chat/completions");
            let answered = answered.clone();
            tokio::spawn(async move {
                let mut outcomes = Vec::new();
                let until = Instant::now() + Duration::from_secs(8);
                while Instant::now() < until {
                    let ok = http
                        .post(&url)
                        .bearer_auth(KEY)
                        .json(&chat("gpt-5-mini", false))
                        .timeout(Duration::from_secs(2))
                        .send()
                        .await
                        .is_ok_and(|r| r.status() == 200);
                    if ok {
                        answered.fetch_add(1, Ordering::SeqCst);
                    }
                    outcomes.push((Instant::now(), ok));
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                outcomes
            })
        };
        eventually(
            "the traffic's first answer",
            Duration::from_secs(5),
            || async { answered.load(Ordering::SeqCst) > 0 },
        )
        .await;
        let old = stack.pid(program).expect("running");
        signal(old, "KILL");
        let killed = Instant::now();
        let restarted = wait_until(
            &format!("{program} to be restarted"),
            Duration::from_secs(20),
            || async { stack.pid(program).is_some_and(|pid| pid != old) },
        )
        .await;
        if let Err(timed_out) = restarted {
            panic!("{timed_out}; log:\n{}", stack.log());
        }
        let serving = wait_until(
            &format!("traffic after {program} restarted"),
            Duration::from_secs(20),
            || async {
                let admin = http.get(stack.http_url("/admin/")).send().await;
                chat_status(&http, &stack, "gpt-5-mini").await == Some(200)
                    && admin.is_ok_and(|r| r.status() == 401)
            },
        )
        .await;
        if let Err(timed_out) = serving {
            panic!("{timed_out}; log:\n{}", stack.log());
        }
        let recovered = Instant::now();
        let outcomes = traffic.await.expect("traffic");
        let after: Vec<bool> = outcomes
            .iter()
            .filter(|(at, _)| *at > recovered)
            .map(|(_, ok)| *ok)
            .collect();
        assert!(!after.is_empty(), "no traffic after recovery");
        assert!(
            after.iter().all(|ok| *ok),
            "{} of {} requests failed after {program} was back",
            after.iter().filter(|ok| !**ok).count(),
            after.len()
        );
        let failed = outcomes.iter().filter(|(_, ok)| !ok).count();
        eprintln!(
            "{program}: killed, serving again after {} ms; {failed} of {} requests failed meanwhile",
            recovered.duration_since(killed).as_millis(),
            outcomes.len()
        );
    }
}
