//! The operator's views: overview, statistics, client key limits and recent requests from the
//! proxy, upstream auth verification, and the endpoint tester's relay.

use std::time::{Duration, Instant};

use fake_foundry::Behaviour;
use futures_util::StreamExt as _;
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{
    KEY, KEY_ID, StackOptions, UPSTREAM_API_KEY, chat_body, eventually, spawn_stack,
    spawn_stack_with, wait_for,
};

#[actix_web::test]
async fn statistics_and_recent_requests_come_from_the_proxy_with_its_filters() {
    let stack = spawn_stack().await;
    assert_eq!(stack.chat(KEY, chat_body(false)).await.status(), 200);
    let mut unknown = chat_body(false);
    unknown["model"] = json!("no-such-model");
    assert_eq!(stack.chat(KEY, unknown).await.status(), 404);

    eventually(
        "statistics to show the requests",
        Duration::from_secs(5),
        || async {
            let stats: Value = stack.get_json("stats").await;
            stats["by_key"][KEY_ID]["requests"] == 2
                && stats["by_model"]["gpt-5-mini"]["requests"] == 1
        },
    )
    .await;

    let errors: Value = stack
        .get_json("requests?level=error&key_id=team-a&bogus=1")
        .await;
    let rows = errors["data"].as_array().expect("rows");
    assert_eq!(rows.len(), 1, "{errors}");
    assert_eq!(rows[0]["status"], 404);
    let by_model: Value = stack.get_json("requests?model=gpt-5-mini").await;
    assert_eq!(by_model["data"].as_array().expect("rows").len(), 1);
    stack.shutdown().await;
}

#[actix_web::test]
async fn key_limits_come_from_the_proxy_in_key_id_order() {
    let stack = spawn_stack_with(StackOptions {
        edit_config: Box::new(|c| {
            c["apiKeys"][1]["limits"] = json!([{"requests": 9, "per": "1h"}]);
            c["apiKeys"][0]["limits"] = json!([{"requests": 5, "per": "1m"}]);
            c["apiKeys"][0]["budget"] = json!({"tokens": 1000, "per": "day"});
            c["apiKeys"][0]["id"] = json!("z-last");
        }),
        ..StackOptions::default()
    })
    .await;
    assert_eq!(stack.chat(KEY, chat_body(false)).await.status(), 200);

    // Tokens are counted once the answer has been relayed.
    let page = wait_for(
        "the budget to count the answer's tokens",
        Duration::from_secs(5),
        || async {
            let page = stack.get_json("limits").await;
            (page["keys"][1]["budget"]["used"] == 18).then_some(page)
        },
    )
    .await
    .expect("limits");
    let ids: Vec<&str> = page["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .filter_map(|k| k["key_id"].as_str())
        .collect();
    assert_eq!(ids, ["team-b", "z-last"], "{page}");
    let key = &page["keys"][1];
    assert_eq!(
        key["windows"][0],
        json!({"metered": "requests", "limit": 5, "per_s": 60, "used": 1, "reset_ms": key["windows"][0]["reset_ms"]})
    );
    assert!(
        key["windows"][0]["reset_ms"]
            .as_u64()
            .is_some_and(|ms| ms > 0)
    );
    assert_eq!(key["budget"]["tokens"], 1000);
    assert_eq!(key["budget"]["per"], "day");
    assert_eq!(page["keys"][0]["windows"][0]["used"], 0);
    stack.shutdown().await;
}

#[actix_web::test]
async fn the_overview_shows_the_proxy_applying_the_file_and_the_warnings() {
    let stack = spawn_stack_with(StackOptions {
        edit_config: Box::new(|c| {
            c["apiKeys"][1]["key"] = json!("CHANGEME");
        }),
        ..StackOptions::default()
    })
    .await;
    let status: Value = stack.get_json("status").await;
    assert_eq!(status["proxy"]["reachable"], true);
    assert_eq!(status["proxy"]["applied"], true);
    assert_eq!(status["config"]["valid"], true);
    let codes: Vec<&str> = status["warnings"]
        .as_array()
        .expect("warnings")
        .iter()
        .filter_map(|w| w["code"].as_str())
        .collect();
    assert!(codes.contains(&"sample_client_key"), "{codes:?}");
    assert!(!codes.contains(&"default_password"), "{codes:?}");
    stack.shutdown().await;
}

#[actix_web::test]
async fn verifying_upstream_auth_reports_the_mode_and_never_a_secret() {
    let stack = spawn_stack().await;
    let response = stack
        .write(Method::POST, "auth/verify")
        .json(&json!({"auth": {"mode": "apiKey", "apiKey": "********"}}))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    let text = response.text().await.expect("body");
    assert!(!text.contains(UPSTREAM_API_KEY), "{text}");
    let body: Value = serde_json::from_str(&text).expect("json");
    assert_eq!(body["mode"], "apiKey");
    assert_eq!(body["ok"], true);

    let invalid = stack
        .write(Method::POST, "auth/verify")
        .json(&json!({"auth": {"mode": "apiKey", "apiKey": ""}}))
        .send()
        .await
        .expect("request");
    assert_eq!(invalid.status(), 422);
    let body: Value = invalid.json().await.expect("json");
    assert_eq!(body["error"]["issues"][0]["path"], "auth.apiKey");
    stack.shutdown().await;
}

#[actix_web::test]
async fn the_tester_relays_a_stream_as_it_arrives() {
    let stack = spawn_stack_with(StackOptions {
        behaviour: Behaviour {
            stream_chunks: 10,
            chunk_gap_ms: 150,
            ..Behaviour::default()
        },
        ..StackOptions::default()
    })
    .await;
    let started = Instant::now();
    let response = stack
        .write(Method::POST, "tester")
        .json(&json!({"route": "chat/completions", "key_id": KEY_ID, "body": chat_body(true)}))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap_or_default()
            .starts_with("text/event-stream")
    );
    let mut body = response.bytes_stream();
    let first = body.next().await.expect("a first chunk").expect("chunk");
    let first_at = started.elapsed();
    let mut text = String::from_utf8_lossy(&first).into_owned();
    while let Some(chunk) = body.next().await {
        text.push_str(&String::from_utf8_lossy(&chunk.expect("chunk")));
    }
    let total = started.elapsed();
    assert!(text.contains("data: [DONE]"), "{text}");
    // Ten events 150 ms apart: the first arrives long before the last.
    assert!(
        total - first_at >= Duration::from_millis(900),
        "first {first_at:?}, total {total:?}"
    );
    stack.shutdown().await;
}

#[actix_web::test]
async fn the_tester_needs_a_known_key_and_route() {
    let stack = spawn_stack().await;
    let unknown_key = stack
        .write(Method::POST, "tester")
        .json(&json!({"route": "chat/completions", "key_id": "nobody", "body": chat_body(false)}))
        .send()
        .await
        .expect("request");
    assert_eq!(unknown_key.status(), 404);
    let unknown_route = stack
        .write(Method::POST, "tester")
        .json(&json!({"route": "embeddings", "key_id": KEY_ID, "body": {}}))
        .send()
        .await
        .expect("request");
    assert_eq!(unknown_route.status(), 400);
    let images = stack
        .write(Method::POST, "tester")
        .json(&json!({"route": "images/generations", "key_id": KEY_ID,
            "body": {"model": "gpt-image-1", "prompt": "a lighthouse", "n": 1}}))
        .send()
        .await
        .expect("request");
    assert_eq!(images.status(), 200);
    let body: Value = images.json().await.expect("json");
    assert!(body["data"][0]["b64_json"].is_string(), "{body}");
    let _ = KEY;
    stack.shutdown().await;
}
