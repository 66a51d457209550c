use std::time::Duration;

use fake_foundry::{Behaviour, ScriptedReply, USAGE_CACHED_TOKENS, USAGE_TOTAL_TOKENS};
use futures_util::StreamExt;
use serde_json::{Value, json};

use crate::helpers::*;

/// The `data:` payloads of an event stream, with their `event:` names.
fn events(text: &str) -> Vec<(Option<String>, String)> {
    text.split("\n\n")
        .filter(|block| !block.trim().is_empty())
        .map(|block| {
            let mut name = None;
            let mut data = String::new();
            for line in block.lines() {
                if let Some(n) = line.strip_prefix("event: ") {
                    name = Some(n.to_string());
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data.push_str(d);
                }
            }
            (name, data)
        })
        .collect()
}

fn chat_text(events: &[(Option<String>, String)]) -> String {
    events
        .iter()
        .filter(|(_, d)| d != "[DONE]")
        .filter_map(|(_, d)| serde_json::from_str::<Value>(d).ok())
        .filter_map(|v| {
            v["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_string)
        })
        .collect()
}

fn streaming_chat() -> Value {
    let mut body = chat_body(true);
    body["stream_options"] = json!({"include_usage": true});
    body
}

#[actix_web::test]
async fn chat_stream_passes_through_and_its_usage_is_counted() {
    let app = spawn_app().await;
    let response = app.chat(streaming_chat()).await;
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .expect("ct")
            .starts_with("text/event-stream")
    );
    let text = response.text().await.expect("body");
    let events = events(&text);
    assert_eq!(events.last().map(|e| e.1.as_str()), Some("[DONE]"));
    assert_eq!(chat_text(&events), Behaviour::default().text);
    let stats = app
        .wait_for_stats(|s| s["by_model"]["gpt-5-mini"]["total_tokens"] == USAGE_TOTAL_TOKENS)
        .await;
    assert_eq!(
        stats["by_model"]["gpt-5-mini"]["cached_tokens"],
        USAGE_CACHED_TOKENS
    );
    assert_eq!(stats["by_key"][KEY_ID]["succeeded"], 1);
}

#[actix_web::test]
async fn stream_bytes_reach_the_client_before_the_upstream_has_finished() {
    let behaviour = Behaviour {
        stream_chunks: 6,
        chunk_gap_ms: 300,
        ..Behaviour::default()
    };
    let app = spawn_app_with(behaviour, |_| {}, &[]).await;
    let response = app.chat(streaming_chat()).await;
    let mut body = response.bytes_stream();
    let first = body.next().await.expect("a first chunk").expect("bytes");
    assert!(!first.is_empty());
    assert_eq!(
        app.fake.streams_completed(),
        0,
        "the first bytes arrived only after the upstream finished"
    );
    let mut rest = Vec::new();
    while let Some(chunk) = body.next().await {
        rest.extend_from_slice(&chunk.expect("bytes"));
    }
    assert!(String::from_utf8_lossy(&rest).ends_with("data: [DONE]\n\n"));
    assert_eq!(app.fake.streams_completed(), 1);
}

#[actix_web::test]
async fn events_and_characters_split_across_reads_arrive_whole_and_usage_is_read() {
    let app = spawn_app().await;
    app.fake.enqueue(ScriptedReply::Fragmented {
        piece_bytes: 3,
        piece_gap_ms: 1,
    });
    let text = app
        .chat(streaming_chat())
        .await
        .text()
        .await
        .expect("valid UTF-8 body");
    assert_eq!(chat_text(&events(&text)), Behaviour::default().text);
    app.wait_for_stats(|s| s["by_model"]["gpt-5-mini"]["total_tokens"] == USAGE_TOTAL_TOKENS)
        .await;
}

#[actix_web::test]
async fn responses_stream_usage_is_read_from_terminal_events() {
    let app = spawn_app().await;
    for final_event in [
        "response.completed",
        "response.incomplete",
        "response.failed",
    ] {
        let body = json!({"model": "gpt-5-mini", "input": "hi", "stream": true, "fake": {"final_event": final_event}});
        let text = app
            .post("/v1/responses", &body)
            .send()
            .await
            .expect("request")
            .text()
            .await
            .expect("body");
        let events = events(&text);
        assert_eq!(
            events.last().and_then(|e| e.0.clone()).as_deref(),
            Some(final_event)
        );
    }
    app.wait_for_stats(|s| s["by_model"]["gpt-5-mini"]["total_tokens"] == 3 * USAGE_TOTAL_TOKENS)
        .await;
}

#[actix_web::test]
async fn upstream_error_before_any_byte_keeps_its_status_and_body() {
    let app = spawn_app().await;
    let upstream_body = fake_foundry::error_body("content_filter", "The response was filtered");
    app.fake.enqueue(ScriptedReply::Status {
        status: 400,
        headers: vec![],
        body: upstream_body.clone(),
    });
    let response = app.chat(streaming_chat()).await;
    assert_eq!(response.status(), 400);
    assert_eq!(response.text().await.expect("body"), upstream_body);
    let stats = app.wait_for_stats(|s| s["total"]["requests"] == 1).await;
    assert_eq!(stats["total"]["errors"]["upstream_4xx"], 1);
}

#[actix_web::test]
async fn a_chat_stream_cut_mid_way_ends_with_one_error_event() {
    let app = spawn_app().await;
    app.fake
        .enqueue(ScriptedReply::CutAfter { after_chunks: 3 });
    let text = app.chat(streaming_chat()).await.text().await.expect("body");
    let events = events(&text);
    let last: Value = serde_json::from_str(&events.last().expect("events").1).expect("json");
    assert_eq!(last["error"]["code"], "upstream_stream_interrupted");
    assert_eq!(
        events.iter().filter(|e| e.1.contains("\"error\"")).count(),
        1
    );
    assert!(!text.contains("[DONE]"));
    let stats = app.wait_for_stats(|s| s["total"]["requests"] == 1).await;
    assert_eq!(stats["total"]["errors"]["stream_interrupted"], 1);
}

#[actix_web::test]
async fn a_responses_stream_cut_mid_way_ends_with_an_error_event() {
    let app = spawn_app().await;
    app.fake
        .enqueue(ScriptedReply::CutAfter { after_chunks: 4 });
    let body = json!({"model": "gpt-5-mini", "input": "hi", "stream": true});
    let text = app
        .post("/v1/responses", &body)
        .send()
        .await
        .expect("request")
        .text()
        .await
        .expect("body");
    let (name, data) = events(&text).pop().expect("events");
    assert_eq!(name.as_deref(), Some("error"));
    let data: Value = serde_json::from_str(&data).expect("json");
    assert_eq!(data["type"], "error");
    assert_eq!(data["code"], "upstream_stream_interrupted");
}

#[actix_web::test]
async fn a_client_disconnect_closes_the_upstream_request_and_counts_as_cancelled() {
    let behaviour = Behaviour {
        stream_chunks: 50,
        chunk_gap_ms: 100,
        ..Behaviour::default()
    };
    let app = spawn_app_with(behaviour, |_| {}, &[]).await;
    let response = app.chat(streaming_chat()).await;
    let mut body = response.bytes_stream();
    body.next().await.expect("first chunk").expect("bytes");
    drop(body);
    let fake = &app.fake;
    eventually(
        "the upstream stream to be dropped",
        Duration::from_secs(3),
        || async { fake.streams_cancelled() == 1 },
    )
    .await;
    let stats = app.wait_for_stats(|s| s["total"]["cancelled"] == 1).await;
    assert_eq!(stats["by_model"]["gpt-5-mini"]["cancelled"], 1);
}

#[actix_web::test]
async fn an_in_flight_stream_survives_a_config_reload() {
    let behaviour = Behaviour {
        stream_chunks: 8,
        chunk_gap_ms: 100,
        ..Behaviour::default()
    };
    let app = spawn_app_with(behaviour, |_| {}, &[]).await;
    let response = app.chat(streaming_chat()).await;
    let mut config = base_config(&app.fake);
    config["models"][0]["targetModel"] = json!("dep-mini-2");
    write_json(&app.config_path, &config);
    let text = response.text().await.expect("body");
    assert!(text.ends_with("data: [DONE]\n\n"));
    assert_eq!(chat_text(&events(&text)), Behaviour::default().text);
}
