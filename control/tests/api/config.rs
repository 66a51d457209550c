//! The config API: masking, ETags and conflicts, validation with field paths, unknown keys,
//! atomic concurrent saves, and the proxy applying what control wrote.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{
    ADMIN_PASSWORD, CLIENT_SECRET, KEY, KEY_ID, StackOptions, UPSTREAM_API_KEY, eventually,
    free_port, spawn_stack, spawn_stack_with, write_json,
};

#[actix_web::test]
async fn the_config_is_served_with_every_secret_masked_and_an_etag() {
    let stack = spawn_stack().await;
    let response = stack.get("config").send().await.expect("request");
    assert_eq!(response.status(), 200);
    let etag = response.headers()["etag"]
        .to_str()
        .unwrap_or_default()
        .to_string();
    let text = response.text().await.expect("body");
    for secret in [ADMIN_PASSWORD, KEY, UPSTREAM_API_KEY, CLIENT_SECRET] {
        assert!(!text.contains(secret), "{secret} leaked");
    }
    let body: Value = serde_json::from_str(&text).expect("json");
    assert_eq!(body["etag"], etag);
    assert_eq!(
        body["config"]["server"]["adminAuth"]["password"],
        "********"
    );
    assert_eq!(body["config"]["apiKeys"][0]["key"], "********");
    assert_eq!(body["config"]["auth"]["apiKey"], "********");
    assert_eq!(
        body["config"]["upstreams"][1]["auth"]["clientSecret"],
        "********"
    );
    // Defaults are filled in for the forms.
    assert_eq!(
        body["config"]["server"]["upstream"]["connectTimeoutMs"],
        10000
    );
    stack.shutdown().await;
}

#[actix_web::test]
async fn masked_secrets_sent_back_keep_the_stored_values() {
    let stack = spawn_stack().await;
    let (mut config, etag) = stack.config().await;
    config["server"]["imageCompression"]["maxSize"] = json!(1024);
    let response = stack.save(&config, &etag).await;
    assert_eq!(
        response.status(),
        200,
        "{}",
        response.text().await.unwrap_or_default()
    );
    let disk = stack.on_disk();
    assert_eq!(disk["server"]["imageCompression"]["maxSize"], 1024);
    assert_eq!(disk["server"]["adminAuth"]["password"], ADMIN_PASSWORD);
    assert_eq!(disk["apiKeys"][0]["key"], KEY);
    assert_eq!(disk["auth"]["apiKey"], UPSTREAM_API_KEY);
    assert_eq!(disk["upstreams"][1]["auth"]["clientSecret"], CLIENT_SECRET);
    stack.shutdown().await;
}

#[actix_web::test]
async fn the_redis_url_shows_its_host_and_keeps_its_password_through_a_save() {
    let port = free_port();
    let url = format!("redis://:redis-secret-pw@127.0.0.1:{port}/0");
    let stored = url.clone();
    let stack = spawn_stack_with(StackOptions {
        edit_config: Box::new(move |c| c["limits"] = json!({"redis": stored})),
        ..StackOptions::default()
    })
    .await;
    let text = stack
        .get("config")
        .send()
        .await
        .expect("GET")
        .text()
        .await
        .expect("body");
    assert!(
        !text.contains("redis-secret-pw"),
        "the password leaked: {text}"
    );
    let (mut config, etag) = stack.config().await;
    let masked = format!("redis://:********@127.0.0.1:{port}/0");
    assert_eq!(config["limits"]["redis"], masked.as_str());
    assert_eq!(config["limits"]["failMode"], "open");

    config["limits"]["failMode"] = json!("closed");
    let validation: Value = stack
        .write(Method::POST, "config/validate")
        .json(&config)
        .send()
        .await
        .expect("validate")
        .json()
        .await
        .expect("json");
    assert_eq!(validation["valid"], true, "{validation}");
    let response = stack.save(&config, &etag).await;
    assert_eq!(response.status(), 200);
    let saved: Value = response.json().await.expect("json");
    assert_eq!(saved["config"]["limits"]["redis"], masked.as_str());
    let disk = stack.on_disk();
    assert_eq!(disk["limits"], json!({"redis": url, "failMode": "closed"}));

    // The overview: counted in Redis, which does not answer, and the warning of failMode closed.
    eventually(
        "the overview to show Redis unreachable",
        Duration::from_secs(5),
        || async {
            let status = stack.get_json("status").await;
            let limits = &status["proxy"]["status"]["limits"];
            limits["store"] == "redis"
                && limits["redis_reachable"] == false
                && limits["fail_mode"] == "closed"
                && status["warnings"]
                    .as_array()
                    .is_some_and(|w| w.iter().any(|w| w["code"] == "redis_unreachable_closed"))
        },
    )
    .await;
    stack.shutdown().await;
}

#[actix_web::test]
async fn a_save_after_a_hand_edit_is_a_conflict_and_changes_nothing() {
    let stack = spawn_stack().await;
    let (mut config, etag) = stack.config().await;
    let mut edited = stack.on_disk();
    edited["server"]["upstream"]["maxRetries"] = json!(3);
    write_json(&stack.config_path, &edited);
    config["server"]["upstream"]["maxRetries"] = json!(5);
    let response = stack.save(&config, &etag).await;
    assert_eq!(response.status(), 409);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["error"]["code"], "config_changed");
    assert!(body["error"]["etag"].is_string());
    assert_eq!(stack.on_disk()["server"]["upstream"]["maxRetries"], 3);
    stack.shutdown().await;
}

#[actix_web::test]
async fn a_save_without_if_match_is_refused() {
    let stack = spawn_stack().await;
    let (config, _) = stack.config().await;
    let response = stack
        .write(Method::PUT, "config")
        .json(&config)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 428);
    stack.shutdown().await;
}

#[actix_web::test]
async fn an_invalid_config_is_refused_with_every_field_path() {
    let stack = spawn_stack().await;
    let before = std::fs::read(&stack.config_path).expect("read");
    let (mut config, etag) = stack.config().await;
    config["models"][0]["upstream"] = json!("nowhere");
    config["server"]["upstream"]["maxRetries"] = json!(11);
    config["server"]["caddy"] = json!({"enabled": true, "domain": "gw.example.com\n}\nevil.com {"});
    let response = stack.save(&config, &etag).await;
    assert_eq!(response.status(), 422);
    let body: Value = response.json().await.expect("json");
    let paths: Vec<&str> = body["error"]["issues"]
        .as_array()
        .expect("issues")
        .iter()
        .filter_map(|i| i["path"].as_str())
        .collect();
    for expected in [
        "models[0].upstream",
        "server.upstream.maxRetries",
        "server.caddy.domain",
    ] {
        assert!(
            paths.contains(&expected),
            "{expected} missing from {paths:?}"
        );
    }
    assert_eq!(std::fs::read(&stack.config_path).expect("read"), before);
    stack.shutdown().await;
}

#[actix_web::test]
async fn a_value_of_the_wrong_type_names_its_path() {
    let stack = spawn_stack().await;
    let (mut config, etag) = stack.config().await;
    config["server"]["port"] = json!("3000");
    let response = stack.save(&config, &etag).await;
    assert_eq!(response.status(), 422);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["error"]["issues"][0]["path"], "server.port");
    stack.shutdown().await;
}

#[actix_web::test]
async fn unknown_keys_are_kept_through_a_save() {
    let stack = spawn_stack().await;
    let (mut config, etag) = stack.config().await;
    assert_eq!(config["notes"]["owner"], "platform team");
    config["server"]["x-future-option"] = json!({"enabled": true});
    config["models"][0]["comment"] = json!("for the chat app");
    let response = stack.save(&config, &etag).await;
    assert_eq!(response.status(), 200);
    let disk = stack.on_disk();
    assert_eq!(disk["notes"]["owner"], "platform team");
    assert_eq!(disk["server"]["x-future-option"]["enabled"], true);
    assert_eq!(disk["models"][0]["comment"], "for the chat app");
    stack.shutdown().await;
}

#[actix_web::test]
async fn a_save_keeps_the_previous_file_as_a_backup() {
    let stack = spawn_stack().await;
    let before = std::fs::read(&stack.config_path).expect("read");
    let (mut config, etag) = stack.config().await;
    config["server"]["imageCompression"]["quality"] = json!(0.5);
    assert_eq!(stack.save(&config, &etag).await.status(), 200);
    let backup = std::fs::read(stack.dir.path().join("config.json.bak")).expect("backup");
    assert_eq!(backup, before);
    stack.shutdown().await;
}

#[actix_web::test]
async fn validate_only_reports_issues_without_writing() {
    let stack = spawn_stack().await;
    let before = std::fs::read(&stack.config_path).expect("read");
    let (mut config, _) = stack.config().await;
    config["apiKeys"][1]["status"] = json!("paused");
    let body: Value = stack
        .write(Method::POST, "config/validate")
        .json(&config)
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    assert_eq!(body["valid"], false);
    assert_eq!(body["issues"][0]["path"], "apiKeys[1].status");
    let text = "{\n  \"server\": {\n    \"port\": 3000,\n  }\n}";
    let body: Value = stack
        .write(Method::POST, "config/validate")
        .body(text)
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    assert_eq!(body["valid"], false);
    assert!(
        body["issues"][0]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("line 4"),
        "{body}"
    );
    assert_eq!(std::fs::read(&stack.config_path).expect("read"), before);
    stack.shutdown().await;
}

#[actix_web::test]
async fn concurrent_saves_never_leave_a_broken_or_half_written_file() {
    let stack = spawn_stack().await;
    let (config, etag) = stack.config().await;

    // A reader that parses the file as fast as it can while the saves run.
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let stop = stop.clone();
        let path = stack.config_path.clone();
        std::thread::spawn(move || {
            let mut reads = 0u32;
            while !stop.load(Ordering::Relaxed) {
                let bytes = std::fs::read(&path).expect("the file always exists");
                proxy::config::load(&bytes).expect("the file is always a valid config");
                reads += 1;
            }
            reads
        })
    };

    // Same ETag: exactly one save wins, the others are conflicts.
    let saves = (0..12).map(|i| {
        let mut c = config.clone();
        c["server"]["upstream"]["retryBaseMs"] = json!(100 + i);
        let stack = &stack;
        let etag = etag.clone();
        async move { stack.save(&c, &etag).await.status().as_u16() }
    });
    let statuses = futures_util::future::join_all(saves).await;
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 409).count(),
        11,
        "{statuses:?}"
    );

    // Overwrites: every save goes through, one after another, and the file is one of them.
    let saves = (0..12).map(|i| {
        let mut c = config.clone();
        c["server"]["upstream"]["retryBaseMs"] = json!(200 + i);
        let stack = &stack;
        async move { stack.save(&c, "*").await.status().as_u16() }
    });
    let statuses = futures_util::future::join_all(saves).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    stop.store(true, Ordering::Relaxed);
    let reads = reader.join().expect("reader");
    assert!(reads > 0);
    let last = stack.on_disk()["server"]["upstream"]["retryBaseMs"]
        .as_u64()
        .unwrap_or_default();
    assert!((200..212).contains(&last), "{last}");
    let leftovers: Vec<_> = std::fs::read_dir(stack.dir.path())
        .expect("dir")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
    stack.shutdown().await;
}

#[actix_web::test]
async fn the_proxy_applies_a_saved_change_within_its_watch_interval() {
    let stack = spawn_stack().await;
    let (mut config, etag) = stack.config().await;
    config["models"]
        .as_array_mut()
        .expect("models")
        .push(json!({"id": "added-by-control", "upstream": "fake"}));
    let started = Instant::now();
    let response = stack.save(&config, &etag).await;
    assert_eq!(response.status(), 200);
    let saved: Value = response.json().await.expect("json");
    eventually(
        "the proxy to apply the saved config",
        Duration::from_secs(5),
        || async {
            let status = stack.ops_json("/status").await;
            status["config"]["sha256"] == saved["sha256"]
        },
    )
    .await;
    let elapsed = started.elapsed();
    eprintln!("save to proxy applying it: {} ms", elapsed.as_millis());
    let models: Value = stack
        .http
        .get(format!("{}/v1/models", stack.proxy))
        .bearer_auth(KEY)
        .send()
        .await
        .expect("models")
        .json()
        .await
        .expect("json");
    assert!(
        models["data"]
            .as_array()
            .expect("data")
            .iter()
            .any(|m| m["id"] == "added-by-control")
    );
    stack.shutdown().await;
}

#[actix_web::test]
async fn an_invalid_file_on_disk_is_reported_and_can_be_replaced() {
    let stack = spawn_stack().await;
    std::fs::write(
        &stack.config_path,
        "{\"models\": [{\"id\": \"x\", \"upstream\": \"none\"}]}",
    )
    .expect("write");
    let body: Value = stack.get_json("config").await;
    assert_eq!(body["valid"], false);
    assert_eq!(body["issues"][0]["path"], "models[0].upstream");
    let status: Value = stack.get_json("status").await;
    let codes: Vec<&str> = status["warnings"]
        .as_array()
        .expect("warnings")
        .iter()
        .filter_map(|w| w["code"].as_str())
        .collect();
    assert!(codes.contains(&"config_invalid"), "{codes:?}");
    let mut fixed = body["config"].clone();
    fixed["models"][0]["upstream"] = json!("");
    fixed["models"] = json!([]);
    // The hand-written file has no password: the default one is never written.
    fixed["server"]["adminAuth"]["password"] = json!(ADMIN_PASSWORD);
    let response = stack
        .save(&fixed, body["etag"].as_str().unwrap_or_default())
        .await;
    assert_eq!(response.status(), 200);
    stack.shutdown().await;
}

#[actix_web::test]
async fn a_config_over_one_mib_is_refused_with_413_before_it_is_read_and_nothing_changes() {
    let stack = spawn_stack().await;
    let (mut config, etag) = stack.config().await;
    let before = std::fs::read(&stack.config_path).expect("read config");
    config["notes"] = json!("x".repeat(2 * 1024 * 1024));
    let response = stack.save(&config, &etag).await;
    assert_eq!(response.status(), 413);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["error"]["code"], "payload_too_large");
    assert_eq!(body["error"]["type"], "invalid_request_error");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("1048576 bytes"), "{message}");
    assert_eq!(
        std::fs::read(&stack.config_path).expect("read config"),
        before
    );

    // The endpoint tester alone takes larger bodies (inline images).
    let large_prompt = json!({"route": "chat/completions", "key_id": KEY_ID,
        "body": {"model": "gpt-5-mini",
                 "messages": [{"role": "user", "content": "y".repeat(2 * 1024 * 1024)}]}});
    let tester = stack
        .write(Method::POST, "tester")
        .json(&large_prompt)
        .send()
        .await
        .expect("tester request");
    assert_eq!(tester.status(), 200);
    stack.shutdown().await;
}

/// A small config written by hand, in its author's order and layout.
const HAND_WRITTEN: &str = r#"{
  "apiKeys": [
    { "id": "team-a", "key": "sk-test-key-0123456789abcdef", "status": "active" },
    { "id": "team-b", "key": "sk-other-key-0123456789", "status": "active", "note": "by hand" }
  ],
  "server": { "adminAuth": { "username": "admin", "password": "correct-horse-battery" } },
  "auth": { "mode": "apiKey", "apiKey": "upstream-secret" },
  "upstreams": [ { "name": "foundry", "baseUrl": "https://res.openai.azure.com" } ],
  "models": [ { "id": "gpt-5-mini", "upstream": "foundry", "targetModel": "dep-mini" } ]
}
"#;

#[actix_web::test]
async fn a_save_from_the_admin_api_keeps_a_small_file_small_and_in_its_order() {
    let stack = spawn_stack().await;
    std::fs::write(&stack.config_path, HAND_WRITTEN).expect("write");
    // What the admin UI does: read the whole config (defaults filled in, secrets masked),
    // change two things, send it all back.
    let (mut config, etag) = stack.config().await;
    assert_eq!(config["server"]["upstream"]["connectTimeoutMs"], 10000);
    config["server"]["upstream"]["maxRetries"] = json!(1);
    config["models"]
        .as_array_mut()
        .expect("models")
        .push(json!({"id": "gpt-5", "upstream": "foundry", "targetModel": "dep-5", "routes": {}}));
    let response = stack.save(&config, &etag).await;
    assert_eq!(
        response.status(),
        200,
        "{}",
        response.text().await.unwrap_or_default()
    );

    let written = std::fs::read_to_string(&stack.config_path).expect("read");
    let golden =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden-config/saved.json");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&golden, &written).expect("write golden");
    }
    let expected = std::fs::read_to_string(&golden).expect("golden file");
    assert_eq!(written, expected, "config.json as written");
    stack.shutdown().await;
}
