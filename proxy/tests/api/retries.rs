use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use fake_foundry::Behaviour;
use serde_json::json;

use crate::helpers::*;

#[actix_web::test]
async fn a_429_with_retry_after_ms_is_retried_and_succeeds() {
    let app = spawn_app_with_config(|c| c["server"]["upstream"]["maxRetries"] = json!(2)).await;
    app.fake
        .enqueue(status_reply(429, &[("retry-after-ms", "50")]));
    app.fake.enqueue(status_reply(503, &[]));
    let response = app.chat(chat_body(false)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(app.fake.request_count(), 3);
    response.bytes().await.expect("body");
    app.wait_for_stats(|s| s["total"]["requests"] == 1).await;
    let recent = app.ops_json("/requests").await;
    assert_eq!(recent["data"][0]["status"], 200);
}

#[actix_web::test]
async fn a_wait_longer_than_retry_max_passes_the_429_through() {
    let app = spawn_app_with_config(|c| c["server"]["upstream"]["maxRetries"] = json!(3)).await;
    app.fake
        .enqueue(status_reply(429, &[("retry-after", "30")]));
    let response = app.chat(chat_body(false)).await;
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "30");
    assert_eq!(app.fake.request_count(), 1);
}

#[actix_web::test]
async fn without_retries_an_upstream_500_passes_through() {
    let app = spawn_app().await;
    app.fake.enqueue(status_reply(500, &[]));
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
    app.fake.enqueue(status_reply(400, &[]));
    assert_eq!(app.chat(chat_body(false)).await.status(), 400);
    assert_eq!(app.fake.request_count(), 1);
}

#[actix_web::test]
async fn retries_give_up_after_max_retries() {
    let app = spawn_app_with_config(|c| c["server"]["upstream"]["maxRetries"] = json!(1)).await;
    app.fake.enqueue(status_reply(503, &[]));
    app.fake.enqueue(status_reply(503, &[]));
    app.fake.enqueue(status_reply(503, &[]));
    assert_eq!(app.chat(chat_body(false)).await.status(), 503);
    assert_eq!(app.fake.request_count(), 2);
}

/// An upstream that answers the first request on each connection and keeps the connection,
/// then closes it when the next request arrives on it without answering: what an upstream
/// closing an idle connection does to a request that is already on its way.
fn upstream_closing_kept_connections() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let connections = Arc::new(AtomicUsize::new(0));
    let counter = connections.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            counter.fetch_add(1, Ordering::SeqCst);
            std::thread::spawn(move || {
                if read_request(&mut stream).is_some() {
                    let body = r#"{"id":"c1","object":"chat.completion","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}"#;
                    let head = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                        body.len()
                    );
                    let _ = stream.write_all(format!("{head}{body}").as_bytes());
                    let _ = read_request(&mut stream);
                }
                // Dropping the stream closes the connection without an answer.
            });
        }
    });
    (url, connections)
}

/// Reads one request (head and `content-length` body); `None` at the end of the stream.
fn read_request(stream: &mut std::net::TcpStream) -> Option<()> {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&data[..end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if data.len() >= end + 4 + length {
                return Some(());
            }
        }
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return None,
            Ok(n) => data.extend_from_slice(&buf[..n]),
        }
    }
}

#[actix_web::test]
async fn a_pooled_connection_closed_by_the_upstream_is_replaced_without_retries_configured() {
    let (url, connections) = upstream_closing_kept_connections();
    let app = spawn_app_with(
        Behaviour::default(),
        |c| c["upstreams"][0]["baseUrl"] = json!(url),
        // One worker, so the second request finds the first one's connection in the pool.
        &[("PROXY_WORKERS", "1")],
    )
    .await;
    let first = app.chat(chat_body(false)).await;
    assert_eq!(first.status(), 200);
    first.text().await.expect("body");
    // Finished requests have handed their connection back to the pool.
    app.wait_for_stats(|s| s["total"]["requests"] == 1).await;
    assert_eq!(connections.load(Ordering::SeqCst), 1);

    let second = app.chat(chat_body(false)).await;
    assert_eq!(second.status(), 200);
    assert_eq!(connections.load(Ordering::SeqCst), 2);
}
