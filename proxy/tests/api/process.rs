//! The `proxy` binary as an operator runs it: environment settings, JSON logs, SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fake_foundry::{Behaviour, FakeFoundry};
use serde_json::Value;

use crate::helpers::*;

pub struct Running {
    pub child: Child,
    pub port: u16,
    /// The ops listener, `http://ip:port`.
    pub ops: String,
    pub lines: std::sync::mpsc::Receiver<String>,
    /// The lines logged before "proxy listening", that one included.
    pub startup: Vec<String>,
}

impl Running {
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn start_binary(config_path: &std::path::Path) -> Running {
    start_binary_with(config_path, &[])
}

/// Starts the binary with extra environment variables (credentials, CA file, PATH).
pub fn start_binary_with(config_path: &std::path::Path, env: &[(&str, String)]) -> Running {
    let mut command = Command::new(env!("CARGO_BIN_EXE_proxy"));
    command
        .env("CONFIG_PATH", config_path)
        .env("PROXY_LISTEN", "127.0.0.1:0")
        .env("PROXY_OPS_LISTEN", "127.0.0.1:0")
        .env("LOG_FORMAT", "json")
        .env("LOG_LEVEL", "info")
        .env("SHUTDOWN_GRACE_SECS", "10");
    for (name, value) in env {
        command.env(name, value);
    }
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("proxy binary starts");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut startup = Vec::new();
    let (port, ops) = loop {
        let line = lines
            .recv_timeout(Duration::from_secs(20))
            .expect("a start-up log line");
        let Ok(json) = serde_json::from_str::<Value>(&line) else {
            panic!("log line is not JSON: {line}");
        };
        startup.push(line);
        if json["message"] == "proxy listening" {
            let port = json["port"].as_u64().expect("port") as u16;
            let ops = json["ops"].as_str().expect("ops address");
            break (port, format!("http://{ops}"));
        }
    };
    Running {
        child,
        port,
        ops,
        lines,
        startup,
    }
}

#[actix_web::test]
async fn sigterm_lets_a_stream_finish_then_writes_stats() {
    let fake = FakeFoundry::start_with(Behaviour {
        stream_chunks: 10,
        chunk_gap_ms: 100,
        ..Behaviour::default()
    })
    .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config_path = dir.path().join("config.json");
    write_json(&config_path, &base_config(&fake));
    let mut running = start_binary(&config_path);

    let http = reqwest::Client::new();
    let response = http
        .post(format!(
            "http://127.0.0.1:{}/v1/chat/completions",
            running.port
        ))
        .bearer_auth(KEY)
        .json(&chat_body(true))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    let status = Command::new("kill")
        .args(["-TERM", &running.child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    // While the stream drains, the ops listener still answers, and says not ready.
    eventually(
        "readyz to report draining",
        Duration::from_secs(5),
        || async {
            match http.get(format!("{}/readyz", running.ops)).send().await {
                Ok(answer) if answer.status() == 503 => answer
                    .json::<Value>()
                    .await
                    .is_ok_and(|body| body["reason"] == "draining"),
                _ => false,
            }
        },
    )
    .await;
    let text = response
        .text()
        .await
        .expect("the stream finishes after SIGTERM");
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");

    let (exit, running) = tokio::task::spawn_blocking(move || {
        let exit = running.child.wait();
        (exit, running)
    })
    .await
    .expect("join");
    let exit = exit.expect("wait");
    assert!(exit.success(), "{exit:?}");
    let stats: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("stats.json")).expect("stats.json"))
            .expect("json");
    assert_eq!(stats["by_model"]["gpt-5-mini"]["succeeded"], 1);

    let logged: Vec<String> = running.lines.try_iter().collect();
    assert!(logged.iter().any(|l| l.contains("request finished")));
    for line in &logged {
        assert!(
            !line.contains(KEY) && !line.contains(UPSTREAM_API_KEY),
            "secret in log: {line}"
        );
        assert!(!line.contains("Say hi"), "prompt text in log: {line}");
    }
}

#[actix_web::test]
async fn a_retry_is_logged_with_the_request_id() {
    let fake = FakeFoundry::start().await;
    fake.enqueue(fake_foundry::ScriptedReply::Status {
        status: 429,
        headers: vec![("retry-after-ms".into(), "10".into())],
        body: fake_foundry::error_body("429", "try again"),
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let config_path = dir.path().join("config.json");
    let mut config = base_config(&fake);
    config["server"]["upstream"]["maxRetries"] = serde_json::json!(1);
    write_json(&config_path, &config);
    let running = start_binary_with(&config_path, &[("LOG_LEVEL", "proxy=debug".into())]);

    let response = reqwest::Client::new()
        .post(running.url("/v1/chat/completions"))
        .bearer_auth(KEY)
        .header("x-request-id", "retry-trace-1")
        .json(&chat_body(false))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);

    let retry_line =
        std::iter::from_fn(|| running.lines.recv_timeout(Duration::from_secs(10)).ok())
            .filter_map(|line| serde_json::from_str::<Value>(&line).ok())
            .find(|line| line["message"] == "upstream attempt failed")
            .expect("a log line for the retry");
    assert_eq!(retry_line["request_id"], "retry-trace-1");
    assert_eq!(retry_line["status"], 429);
}

#[actix_web::test]
async fn a_megabyte_model_id_is_bounded_in_the_answer_the_log_line_and_recent_requests() {
    let fake = FakeFoundry::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config_path = dir.path().join("config.json");
    write_json(&config_path, &base_config(&fake));
    let running = start_binary(&config_path);
    let long_model = "m".repeat(1 << 20);
    let mut body = chat_body(false);
    body["model"] = Value::from(long_model.as_str());

    let response = reqwest::Client::new()
        .post(running.url("/v1/chat/completions"))
        .bearer_auth(KEY)
        .header("x-request-id", "long-model-1")
        .json(&body)
        .send()
        .await
        .expect("request");
    let (status, error) = error_of(response).await;
    assert_eq!(status, 404);
    assert_eq!(error["code"], "model_not_found");
    let message = error["message"].as_str().expect("message");
    assert!(message.len() < 1024, "{} bytes", message.len());
    assert!(message.contains("…(truncated)"), "{message}");

    let line = std::iter::from_fn(|| running.lines.recv_timeout(Duration::from_secs(10)).ok())
        .find(|line| line.contains("long-model-1"))
        .expect("the request's log line");
    assert!(line.len() < 4096, "log line of {} bytes", line.len());
    assert!(line.contains("…(truncated)"), "{line}");

    let recent: Value = reqwest::get(format!("{}/requests?request_id=long-model-1", running.ops))
        .await
        .expect("ops request")
        .json()
        .await
        .expect("ops json");
    let entry = recent["data"][0].to_string();
    assert!(entry.len() < 4096, "recent entry of {} bytes", entry.len());
    assert!(entry.contains("…(truncated)"), "{entry}");
}

#[actix_web::test]
async fn the_first_start_creates_config_json_from_the_example_and_says_so() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config_path = dir.path().join("data/config.json");
    let running = start_binary(&config_path);

    let created = std::fs::read_to_string(&config_path).expect("config.json was created");
    let example = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/config.example.json"),
    )
    .expect("the example");
    assert_eq!(created, example);
    let notice = running
        .startup
        .iter()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .find(|line| {
            line["message"]
                .as_str()
                .is_some_and(|m| m.contains("created it from the example"))
        })
        .expect("a log line on the created file");
    assert_eq!(notice["level"], "WARN");
    assert_eq!(notice["path"], config_path.display().to_string());
    let models: Value = reqwest::Client::new()
        .get(running.url("/v1/models"))
        .bearer_auth("CHANGEME")
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    assert_eq!(models["data"][0]["id"], "gpt-5-mini");
    drop(running);

    // A second start keeps the file, whatever it holds now.
    write_json(&config_path, &serde_json::json!({"models": []}));
    let running = start_binary(&config_path);
    assert!(
        !running
            .startup
            .iter()
            .any(|l| l.contains("created it from the example")),
        "{:?}",
        running.startup
    );
    let kept: Value =
        serde_json::from_slice(&std::fs::read(&config_path).expect("read")).expect("json");
    assert_eq!(kept, serde_json::json!({"models": []}));
}

#[actix_web::test]
async fn an_invalid_config_at_start_up_exits_with_the_field_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config_path = dir.path().join("config.json");
    std::fs::write(
        &config_path,
        br#"{"models":[{"id":"m","upstream":"nowhere"}]}"#,
    )
    .expect("write");
    let output = Command::new(env!("CARGO_BIN_EXE_proxy"))
        .env("CONFIG_PATH", &config_path)
        .env("PROXY_LISTEN", "127.0.0.1:0")
        .env("PROXY_OPS_LISTEN", "127.0.0.1:0")
        .output()
        .expect("run");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("models[0].upstream: no upstream named \"nowhere\""),
        "{stderr}"
    );
}

fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

#[actix_web::test]
async fn a_client_that_stops_reading_does_not_grow_the_proxy_memory() {
    use std::io::{Read, Write};
    // 192 MB of events: far more than the socket buffers between the fake and the client.
    let fake = FakeFoundry::start_with(Behaviour {
        stream_chunks: 6000,
        text: "abcdefghijklmnop".repeat(12 * 1024 * 1024),
        ..Behaviour::default()
    })
    .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config_path = dir.path().join("config.json");
    write_json(&config_path, &base_config(&fake));
    let running = start_binary(&config_path);
    let pid = running.child.id();
    let before = rss_kb(pid);

    let port = running.port;
    let body = serde_json::to_string(&chat_body(true)).expect("json");
    let mut client = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    write!(
        client,
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .expect("write");
    let mut head = [0u8; 1024];
    let n = client.read(&mut head).expect("response head");
    assert!(head[..n].starts_with(b"HTTP/1.1 200"));

    // The client reads nothing more; give the proxy time to buffer if it would.
    let mut peak = 0;
    for _ in 0..15 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        peak = peak.max(rss_kb(pid));
    }
    assert!(
        peak < before + 32 * 1024,
        "proxy RSS grew from {before} kB to {peak} kB"
    );
    drop(client);
}

/// The process's resident anonymous memory (heap, stacks), in kB: what it holds, without the
/// pages of its own executable, which are as large as the build profile makes them.
fn anonymous_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("RssAnon:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("RssAnon")
}

/// After a burst of large images the image workers' buffers (a few hundred MB of pixels went
/// through them) are released, and the allocator gives the memory back, within 30 seconds of
/// the last image: at most 12 MiB of anonymous memory, which with a release build's 11 MiB of
/// code and data pages keeps the idle proxy under 20 MiB (measured: 17 MiB). Counted as
/// anonymous memory because this binary is a debug build, whose code pages alone are about
/// 22 MiB; at start the proxy holds about 3 MiB of anonymous memory.
#[actix_web::test]
async fn the_idle_proxy_gives_image_memory_back() {
    use base64::Engine as _;
    const IDLE_BOUND_KB: u64 = 12 * 1024;
    let fake = FakeFoundry::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config_path = dir.path().join("config.json");
    write_json(&config_path, &base_config(&fake));
    // As the container's entrypoint sets them (docs/images.md).
    let running = start_binary_with(
        &config_path,
        &[
            ("MIMALLOC_PURGE_DELAY", "0".into()),
            ("MALLOC_MMAP_THRESHOLD_", "131072".into()),
        ],
    );
    let pid = running.child.id();
    let at_start = anonymous_kb(pid);

    let http = reqwest::Client::new();
    let photo = crate::images::jpeg(&crate::images::photo(3000, 2000), 95);
    let url = format!(
        "data:image/jpeg;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(&photo)
    );
    let body = serde_json::json!({"model": "gpt-5-mini", "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": url}}
    ]}]});
    let sends = (0..4).map(|_| {
        http.post(running.url("/v1/chat/completions"))
            .bearer_auth(KEY)
            .json(&body)
            .send()
    });
    for response in futures_util::future::join_all(sends).await {
        assert_eq!(response.expect("request").status(), 200);
    }
    let last_image = std::time::Instant::now();
    let peak = anonymous_kb(pid);
    let stats: Value = reqwest::get(format!("{}/stats", running.ops))
        .await
        .expect("ops request")
        .json()
        .await
        .expect("ops json");
    assert_eq!(stats["images"]["compressed"], 4, "{stats}");
    assert!(
        peak > at_start + 32 * 1024,
        "the images were held in memory: {peak} kB after them, {at_start} kB at start"
    );

    let released = test_support::wait_until(
        "the idle proxy's memory to be given back",
        Duration::from_secs(30).saturating_sub(last_image.elapsed()),
        || async { anonymous_kb(pid) <= IDLE_BOUND_KB },
    )
    .await;
    assert!(
        released.is_ok(),
        "{} kB of anonymous memory 30 s after the last image ({at_start} kB at start, {peak} kB after the images)",
        anonymous_kb(pid)
    );
}

#[test]
fn help_and_version_answer_without_starting_or_touching_the_config() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config_path = dir.path().join("config.json");
    let run = |arg: &str| {
        Command::new(env!("CARGO_BIN_EXE_proxy"))
            .arg(arg)
            .env("CONFIG_PATH", &config_path)
            .output()
            .expect("runs")
    };
    let help = run("--help");
    assert!(help.status.success());
    let text = String::from_utf8_lossy(&help.stdout);
    for name in [
        "CONFIG_PATH",
        "PROXY_LISTEN",
        "BODY_LIMIT",
        "LOG_FORMAT",
        "AZURE_CLIENT_ID",
    ] {
        assert!(
            text.contains(&format!("  {name}\n      default: ")),
            "{name}: {text}"
        );
    }
    let version = run("--version");
    assert!(version.status.success());
    assert_eq!(
        String::from_utf8_lossy(&version.stdout).trim(),
        format!("proxy {}", env!("CARGO_PKG_VERSION"))
    );
    let refused = run("--port");
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("unknown argument \"--port\""));
    assert!(!config_path.exists(), "the config was created");
}

/// The next log line with `message`, within ten seconds.
fn next_logged(running: &Running, message: &str) -> Value {
    std::iter::from_fn(|| running.lines.recv_timeout(Duration::from_secs(10)).ok())
        .filter_map(|line| serde_json::from_str::<Value>(&line).ok())
        .find(|line| line["message"] == message)
        .unwrap_or_else(|| panic!("no {message:?} line"))
}

#[actix_web::test]
async fn reloads_log_what_changed_and_when_the_file_is_valid_again() {
    let fake = FakeFoundry::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config_path = dir.path().join("config.json");
    let mut config = base_config(&fake);
    write_json(&config_path, &config);
    let running = start_binary_with(&config_path, &[("CONFIG_POLL_MS", "100".into())]);

    config["models"]
        .as_array_mut()
        .expect("models")
        .push(serde_json::json!({"id": "added-model", "upstream": "fake", "targetModel": "d"}));
    config["auth"]["apiKey"] = serde_json::json!("a-new-upstream-secret");
    write_json(&config_path, &config);
    let reloaded = next_logged(&running, "config reloaded");
    assert_eq!(reloaded["generation"], 2);
    assert_eq!(
        reloaded["changes"],
        "models added: added-model; changed: auth"
    );

    std::fs::write(
        &config_path,
        b"{\"models\": [{\"id\": \"x\", \"upstream\": 5}]}",
    )
    .expect("write");
    next_logged(
        &running,
        "config file refused; the previous config keeps serving",
    );
    config["apiKeys"].as_array_mut().expect("keys").remove(0);
    write_json(&config_path, &config);
    let valid_again = next_logged(&running, "config valid again and reloaded");
    assert_eq!(valid_again["generation"], 3);
    let changes = valid_again["changes"].as_str().expect("changes");
    assert!(changes.starts_with("keys removed: "), "{changes}");
    for line in [&reloaded, &valid_again] {
        let text = line.to_string();
        assert!(
            !text.contains("a-new-upstream-secret") && !text.contains(KEY),
            "{text}"
        );
    }
}

#[test]
fn every_problem_of_the_config_is_reported_at_start_up() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config_path = dir.path().join("config.json");
    std::fs::write(
        &config_path,
        "{\n  \"server\": {\"port\": \"3000\", \"upstream\": {\"maxRetries\": \"two\"}},\n  \"models\": [{\"id\": \"m\", \"upstream\": \"nowhere\"}]\n}\n",
    )
    .expect("write");
    let output = Command::new(env!("CARGO_BIN_EXE_proxy"))
        .env("CONFIG_PATH", &config_path)
        .env("PROXY_LISTEN", "127.0.0.1:0")
        .env("PROXY_OPS_LISTEN", "127.0.0.1:0")
        .env("LOG_FORMAT", "json")
        .output()
        .expect("run");
    assert!(!output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    let fields: Vec<String> = stdout
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line["message"] == "config file invalid")
        .map(|line| line["field"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(
        fields,
        vec![
            "server.port",
            "server.upstream.maxRetries",
            "models[0].upstream"
        ],
        "{stdout}"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("at line 2 column 22"), "{stderr}");
    assert!(stderr.contains("no upstream named \"nowhere\""), "{stderr}");
}
