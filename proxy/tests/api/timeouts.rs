use std::time::{Duration, Instant};

use fake_foundry::{Behaviour, ScriptedReply};
use serde_json::{Value, json};

use crate::helpers::*;

#[actix_web::test]
async fn no_first_byte_within_the_timeout_is_504() {
    let app =
        spawn_app_with_config(|c| c["server"]["upstream"]["firstByteTimeoutMs"] = json!(300)).await;
    app.fake.enqueue(ScriptedReply::With(Behaviour {
        latency_ms: 3000,
        ..Behaviour::default()
    }));
    let started = Instant::now();
    let (status, error) = error_of(app.chat(chat_body(false)).await).await;
    assert_eq!(status, 504);
    assert_eq!(error["code"], "upstream_timeout");
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[actix_web::test]
async fn a_slow_answer_within_the_timeouts_is_not_cut_by_the_connect_timeout() {
    let app =
        spawn_app_with_config(|c| c["server"]["upstream"]["connectTimeoutMs"] = json!(200)).await;
    app.fake.enqueue(ScriptedReply::With(Behaviour {
        latency_ms: 700,
        ..Behaviour::default()
    }));
    assert_eq!(app.chat(chat_body(false)).await.status(), 200);
}

#[actix_web::test]
async fn a_stream_idle_longer_than_the_idle_timeout_ends_with_an_error_event() {
    let app =
        spawn_app_with_config(|c| c["server"]["upstream"]["idleTimeoutMs"] = json!(300)).await;
    app.fake.enqueue(ScriptedReply::With(Behaviour {
        stream_chunks: 3,
        chunk_gap_ms: 2000,
        ..Behaviour::default()
    }));
    let text = app.chat(chat_body(true)).await.text().await.expect("body");
    let last = text.trim_end().rsplit("\n\n").next().expect("event");
    let error: Value =
        serde_json::from_str(last.strip_prefix("data: ").expect("data line")).expect("json");
    assert_eq!(error["error"]["code"], "upstream_timeout");
    let stats = app.wait_for_stats(|s| s["total"]["requests"] == 1).await;
    assert_eq!(stats["total"]["errors"]["timeout"], 1);
}

#[actix_web::test]
async fn slow_chunks_within_the_idle_timeout_all_arrive() {
    let app =
        spawn_app_with_config(|c| c["server"]["upstream"]["idleTimeoutMs"] = json!(500)).await;
    app.fake.enqueue(ScriptedReply::With(Behaviour {
        stream_chunks: 5,
        chunk_gap_ms: 200,
        ..Behaviour::default()
    }));
    let text = app.chat(chat_body(true)).await.text().await.expect("body");
    assert!(text.ends_with("data: [DONE]\n\n"));
}

#[actix_web::test]
async fn a_non_streaming_exchange_over_the_request_timeout_is_504() {
    let app =
        spawn_app_with_config(|c| c["server"]["upstream"]["requestTimeoutMs"] = json!(300)).await;
    app.fake.enqueue(ScriptedReply::With(Behaviour {
        latency_ms: 2000,
        ..Behaviour::default()
    }));
    let (status, _) = error_of(app.chat(chat_body(false)).await).await;
    assert_eq!(status, 504);
}

#[actix_web::test]
async fn an_unreachable_upstream_is_502() {
    let closed_port = free_port();
    let app = spawn_app_with_config(|c| {
        c["upstreams"][0]["baseUrl"] = json!(format!("http://127.0.0.1:{closed_port}"));
    })
    .await;
    let (status, error) = error_of(app.chat(chat_body(false)).await).await;
    assert_eq!(status, 502);
    assert_eq!(error["code"], "upstream_unreachable");
    assert!(
        !error["message"]
            .as_str()
            .expect("message")
            .contains("127.0.0.1")
    );
}

#[actix_web::test]
async fn a_non_streaming_body_cut_mid_way_is_not_completed() {
    let app = spawn_app().await;
    app.fake
        .enqueue(ScriptedReply::CutAfter { after_chunks: 1 });
    // The connection is cut: before the head was flushed or after part of the body.
    let sent = app
        .post("/v1/chat/completions", &chat_body(false))
        .send()
        .await;
    let completed = match sent {
        Ok(response) => response.bytes().await.is_ok(),
        Err(_) => false,
    };
    assert!(!completed, "a truncated body must not look complete");
    let stats = app.wait_for_stats(|s| s["total"]["requests"] == 1).await;
    assert_eq!(stats["total"]["errors"]["stream_interrupted"], 1);
}

#[actix_web::test]
async fn an_answer_slower_than_five_seconds_is_not_cut() {
    let app = spawn_app().await;
    app.fake.enqueue(ScriptedReply::With(Behaviour {
        latency_ms: 5_500,
        ..Behaviour::default()
    }));
    assert_eq!(app.chat(chat_body(false)).await.status(), 200);
}
