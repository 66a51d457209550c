//! Client keys: a new key is shown once and works through the proxy; disabling, renaming and
//! deleting follow through to the proxy.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{KEY, KEY_ID, TestStack, chat_body, eventually, spawn_stack};

/// Waits until the proxy answers a request with `key` with `status`.
async fn wait_for_proxy_answer(stack: &TestStack, key: &str, status: u16) {
    let what = format!("the proxy to answer {status} to the key");
    eventually(&what, Duration::from_secs(5), || async {
        stack.chat(key, chat_body(false)).await.status().as_u16() == status
    })
    .await;
}

#[actix_web::test]
async fn a_created_key_is_shown_once_and_works_through_the_proxy() {
    let stack = spawn_stack().await;
    let response = stack
        .write(Method::POST, "keys")
        .json(&json!({"id": "mobile-app"}))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 201);
    let created: Value = response.json().await.expect("json");
    let key = created["key"].as_str().expect("key").to_string();
    assert!(key.starts_with("sk-") && key.len() >= 40, "{key}");
    assert_eq!(created["status"], "active");

    let listed = stack
        .get("keys")
        .send()
        .await
        .expect("request")
        .text()
        .await
        .expect("body");
    assert!(!listed.contains(&key), "the key is listed again");
    assert!(listed.contains("mobile-app"));
    let config = stack
        .get("config")
        .send()
        .await
        .expect("request")
        .text()
        .await
        .expect("body");
    assert!(!config.contains(&key), "the key is in the config view");
    assert_eq!(stack.on_disk()["apiKeys"][2]["key"], key.as_str());

    wait_for_proxy_answer(&stack, &key, 200).await;
    stack.shutdown().await;
}

#[actix_web::test]
async fn a_disabled_key_is_refused_by_the_proxy_and_can_be_enabled_again() {
    let stack = spawn_stack().await;
    let path = format!("keys/{KEY_ID}");
    let response = stack
        .write(Method::PATCH, &path)
        .json(&json!({"status": "disabled"}))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    wait_for_proxy_answer(&stack, KEY, 401).await;
    stack
        .write(Method::PATCH, &path)
        .json(&json!({"status": "active"}))
        .send()
        .await
        .expect("request");
    wait_for_proxy_answer(&stack, KEY, 200).await;
    stack.shutdown().await;
}

#[actix_web::test]
async fn a_renamed_key_keeps_its_value_and_counts_under_its_new_id() {
    let stack = spawn_stack().await;
    let response = stack
        .write(Method::PATCH, &format!("keys/{KEY_ID}"))
        .json(&json!({"id": "team-a-renamed"}))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    assert_eq!(stack.on_disk()["apiKeys"][0]["id"], "team-a-renamed");
    assert_eq!(stack.on_disk()["apiKeys"][0]["key"], KEY);
    eventually(
        "requests counted under the new id",
        Duration::from_secs(5),
        || async {
            stack.chat(KEY, chat_body(false)).await;
            stack.ops_json("/stats").await["by_key"]["team-a-renamed"]["requests"]
                .as_u64()
                .unwrap_or(0)
                > 0
        },
    )
    .await;
    stack.shutdown().await;
}

#[actix_web::test]
async fn a_deleted_key_is_refused_and_unknown_or_duplicate_ids_are_errors() {
    let stack = spawn_stack().await;
    let deleted = stack
        .write(Method::DELETE, &format!("keys/{KEY_ID}"))
        .send()
        .await
        .expect("request");
    assert_eq!(deleted.status(), 200);
    wait_for_proxy_answer(&stack, KEY, 401).await;
    let missing = stack
        .write(Method::DELETE, &format!("keys/{KEY_ID}"))
        .send()
        .await
        .expect("request");
    assert_eq!(missing.status(), 404);
    let duplicate = stack
        .write(Method::POST, "keys")
        .json(&json!({"id": "team-b"}))
        .send()
        .await
        .expect("request");
    assert_eq!(duplicate.status(), 409);
    stack.shutdown().await;
}
