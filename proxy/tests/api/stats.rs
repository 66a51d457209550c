use fake_foundry::{
    USAGE_CACHED_TOKENS, USAGE_COMPLETION_TOKENS, USAGE_PROMPT_TOKENS, USAGE_TOTAL_TOKENS,
};
use serde_json::json;

use crate::helpers::*;

#[actix_web::test]
async fn non_streaming_usage_is_counted_per_model_and_key() {
    let app = spawn_app().await;
    app.chat(chat_body(false))
        .await
        .bytes()
        .await
        .expect("body");
    app.http
        .post(app.url("/v1/chat/completions"))
        .bearer_auth("sk-other-key")
        .json(&chat_body(false))
        .send()
        .await
        .expect("request")
        .bytes()
        .await
        .expect("body");
    let stats = app.wait_for_stats(|s| s["total"]["requests"] == 2).await;
    let model = &stats["by_model"]["gpt-5-mini"];
    assert_eq!(model["requests"], 2);
    assert_eq!(model["prompt_tokens"], 2 * USAGE_PROMPT_TOKENS);
    assert_eq!(model["completion_tokens"], 2 * USAGE_COMPLETION_TOKENS);
    assert_eq!(model["total_tokens"], 2 * USAGE_TOTAL_TOKENS);
    assert_eq!(model["cached_tokens"], 2 * USAGE_CACHED_TOKENS);
    assert_eq!(stats["by_key"][KEY_ID]["requests"], 1);
    assert_eq!(
        stats["by_key"]["team-b"]["total_tokens"],
        USAGE_TOTAL_TOKENS
    );
}

#[actix_web::test]
async fn prometheus_metrics_expose_the_counters() {
    let app = spawn_app().await;
    app.chat(chat_body(false))
        .await
        .bytes()
        .await
        .expect("body");
    app.wait_for_stats(|s| s["total"]["requests"] == 1).await;
    let text = app
        .http
        .get(format!("{}/metrics", app.ops))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        text.contains("gateway_requests_total{model=\"gpt-5-mini\"} 1"),
        "{text}"
    );
    assert!(text.contains(&format!(
        "gateway_tokens_total{{key_id=\"{KEY_ID}\",kind=\"total\"}} {USAGE_TOTAL_TOKENS}"
    )));
    assert!(text.contains("gateway_config_rejected 0"));
}

#[actix_web::test]
async fn recent_requests_keep_ids_and_filter() {
    let app = spawn_app().await;
    let ok = app.chat(chat_body(false)).await;
    let ok_id = ok.headers()["x-request-id"]
        .to_str()
        .expect("id")
        .to_string();
    ok.bytes().await.expect("body");
    app.chat(json!({"model": "nope"}))
        .await
        .bytes()
        .await
        .expect("body");
    app.wait_for_stats(|s| s["total"]["requests"] == 2).await;

    let all = app.ops_json("/requests").await;
    assert_eq!(all["data"].as_array().expect("data").len(), 2);
    let errors = app.ops_json("/requests?level=error").await;
    assert_eq!(errors["data"].as_array().expect("data").len(), 1);
    assert_eq!(errors["data"][0]["status"], 404);
    let by_id = app.ops_json(&format!("/requests?request_id={ok_id}")).await;
    let entry = &by_id["data"][0];
    assert_eq!(entry["key_id"], KEY_ID);
    assert_eq!(entry["model"], "gpt-5-mini");
    assert_eq!(entry["deployment"], "dep-mini");
    assert_eq!(entry["usage"]["total_tokens"], USAGE_TOTAL_TOKENS);
    assert!(entry["upstream_request_id"].is_string());
    let text = serde_json::to_string(&all).expect("json");
    assert!(!text.contains(KEY), "a client key leaked into the record");
    let by_model = app.ops_json("/requests?model=gpt-5-mini&limit=5").await;
    assert_eq!(by_model["data"].as_array().expect("data").len(), 1);
}

#[actix_web::test]
async fn statistics_survive_a_restart() {
    let app = spawn_app().await;
    app.chat(chat_body(false))
        .await
        .bytes()
        .await
        .expect("body");
    app.wait_for_stats(|s| s["total"]["requests"] == 1).await;
    let (fake, dir, config_path) = app.shutdown().await;
    assert!(
        dir.path().join("stats.json").exists(),
        "stats.json written at shutdown"
    );

    let app = start(fake, dir, config_path, &[]).await;
    let stats = app.ops_json("/stats").await;
    assert_eq!(stats["by_model"]["gpt-5-mini"]["requests"], 1);
    assert_eq!(
        stats["by_model"]["gpt-5-mini"]["total_tokens"],
        USAGE_TOTAL_TOKENS
    );
}
