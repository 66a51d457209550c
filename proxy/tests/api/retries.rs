use fake_foundry::ScriptedReply;
use serde_json::json;

use crate::helpers::*;

fn status(status: u16, headers: &[(&str, &str)]) -> ScriptedReply {
    ScriptedReply::Status {
        status,
        headers: headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect(),
        body: fake_foundry::error_body(&status.to_string(), "try again"),
    }
}

#[actix_web::test]
async fn a_429_with_retry_after_ms_is_retried_and_succeeds() {
    let app = spawn_app_with_config(|c| c["server"]["upstream"]["maxRetries"] = json!(2)).await;
    app.fake.enqueue(status(429, &[("retry-after-ms", "50")]));
    app.fake.enqueue(status(503, &[]));
    let response = app.chat(chat_body(false)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(app.fake.request_count(), 3);
    let recent = app.ops_json("/requests").await;
    assert_eq!(recent["data"][0]["status"], 200);
}

#[actix_web::test]
async fn a_wait_longer_than_retry_max_passes_the_429_through() {
    let app = spawn_app_with_config(|c| c["server"]["upstream"]["maxRetries"] = json!(3)).await;
    app.fake.enqueue(status(429, &[("retry-after", "30")]));
    let response = app.chat(chat_body(false)).await;
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "30");
    assert_eq!(app.fake.request_count(), 1);
}

#[actix_web::test]
async fn without_retries_an_upstream_500_passes_through() {
    let app = spawn_app().await;
    app.fake.enqueue(status(500, &[]));
    let response = app.chat(chat_body(false)).await;
    assert_eq!(response.status(), 500);
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(body["error"]["code"], "500");
    assert_eq!(app.fake.request_count(), 1);
    let stats = app.wait_for_stats(|s| s["total"]["requests"] == 1).await;
    assert_eq!(stats["by_model"]["gpt-5-mini"]["errors"]["upstream_5xx"], 1);
}

#[actix_web::test]
async fn statuses_not_listed_are_not_retried() {
    let app = spawn_app_with_config(|c| c["server"]["upstream"]["maxRetries"] = json!(2)).await;
    app.fake.enqueue(status(400, &[]));
    assert_eq!(app.chat(chat_body(false)).await.status(), 400);
    assert_eq!(app.fake.request_count(), 1);
}

#[actix_web::test]
async fn retries_give_up_after_max_retries() {
    let app = spawn_app_with_config(|c| c["server"]["upstream"]["maxRetries"] = json!(1)).await;
    app.fake.enqueue(status(503, &[]));
    app.fake.enqueue(status(503, &[]));
    app.fake.enqueue(status(503, &[]));
    assert_eq!(app.chat(chat_body(false)).await.status(), 503);
    assert_eq!(app.fake.request_count(), 2);
}
