//! Slow and large uploads: a body must keep arriving at a minimum rate, and the bodies held in
//! memory at once are capped.

use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::task::JoinHandle;

use crate::helpers::*;

/// A chat body of exactly `len` bytes.
fn chat_body_of_len(len: usize) -> Vec<u8> {
    let head = br#"{"model":"gpt-5-mini","messages":[{"role":"user","content":""#;
    let tail = br#""}]}"#;
    let mut body = head.to_vec();
    body.resize(len - tail.len(), b'x');
    body.extend_from_slice(tail);
    body
}

/// A connection that has sent the head of a chat request with `Content-Length: length`.
async fn upload_head(app: &TestApp, length: usize) -> TcpStream {
    upload_head_framed(app, &format!("Content-Length: {length}")).await
}

/// A connection that has sent the head of a chat request with the body framing header `framing`.
async fn upload_head_framed(app: &TestApp, framing: &str) -> TcpStream {
    let address = app.address.trim_start_matches("http://");
    let mut stream = TcpStream::connect(address).await.expect("connect");
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {KEY}\r\n\
         Content-Type: application/json\r\n{framing}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.expect("head");
    stream
}

/// Writes `pieces` one every 100 ms until they run out or the gateway stops reading.
fn trickle(mut writer: OwnedWriteHalf, pieces: Vec<Vec<u8>>) -> JoinHandle<()> {
    tokio::spawn(async move {
        for piece in pieces {
            if writer.write_all(&piece).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
}

/// Everything the server sends until it closes the connection (at most `limit` to wait).
async fn read_until_closed(stream: &mut (impl AsyncRead + Unpin), limit: Duration) -> String {
    let mut answer = Vec::new();
    tokio::time::timeout(limit, stream.read_to_end(&mut answer))
        .await
        .expect("the gateway closes the connection")
        .expect("read");
    String::from_utf8_lossy(&answer).into_owned()
}

fn error_code(answer: &str) -> Value {
    let (_, body) = answer.split_once("\r\n\r\n").expect("head and body");
    let body: Value = serde_json::from_str(body).expect("json body");
    body["error"]["code"].clone()
}

/// The answer is a 408 `request_timeout`, sent within 3 s of `started` (the tests allow 1 s).
fn assert_timed_out(answer: &str, started: Instant) {
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert_eq!(error_code(answer), "request_timeout");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

async fn body_bytes_in_flight(app: &TestApp) -> Value {
    app.ops_json("/status").await["body_bytes_in_flight"].clone()
}

#[actix_web::test]
async fn a_body_that_stalls_gets_408_and_the_connection_is_closed() {
    let app = spawn_app_with(
        Default::default(),
        |_| {},
        &[("BODY_READ_TIMEOUT_SECS", "1")],
    )
    .await;
    let body = chat_body_of_len(1000);
    let mut stream = upload_head(&app, body.len()).await;
    stream.write_all(&body[..100]).await.expect("part");
    let started = Instant::now();

    let answer = read_until_closed(&mut stream, Duration::from_secs(5)).await;
    assert_timed_out(&answer, started);
    let stats = app.wait_for_stats(|s| s["total"]["requests"] == 1).await;
    assert_eq!(stats["total"]["errors"]["bad_request"], 1);
    assert_eq!(body_bytes_in_flight(&app).await, 0);
}

#[actix_web::test]
async fn a_trickling_body_is_cut_at_the_minimum_rate() {
    let app = spawn_app_with(
        Default::default(),
        |_| {},
        &[("BODY_READ_TIMEOUT_SECS", "1"), ("BODY_MIN_RATE", "1000")],
    )
    .await;
    let body = chat_body_of_len(1000);
    let stream = upload_head(&app, body.len()).await;
    let (mut reader, writer) = stream.into_split();
    // Ten bytes a second, each well within the pause allowed: only the rate cuts it.
    let trickle = trickle(writer, body.chunks(1).map(<[u8]>::to_vec).collect());
    let started = Instant::now();

    let answer = read_until_closed(&mut reader, Duration::from_secs(5)).await;
    assert_timed_out(&answer, started);
    trickle.abort();
}

#[actix_web::test]
async fn a_trickling_chunked_body_is_cut_and_its_connection_closed() {
    let app = spawn_app_with(
        Default::default(),
        |_| {},
        &[("BODY_READ_TIMEOUT_SECS", "1"), ("BODY_MIN_RATE", "1000")],
    )
    .await;
    let stream = upload_head_framed(&app, "Transfer-Encoding: chunked").await;
    let (mut reader, writer) = stream.into_split();
    let trickle = trickle(writer, vec![b"1\r\n \r\n".to_vec(); 100]);
    let started = Instant::now();

    let answer = read_until_closed(&mut reader, Duration::from_secs(5)).await;
    assert_timed_out(&answer, started);
    trickle.abort();
}

#[actix_web::test]
async fn a_body_over_the_memory_limit_gets_503_while_the_first_completes() {
    let app = spawn_app_with(
        Default::default(),
        |_| {},
        &[("BODY_LIMIT", "100000"), ("BODY_MEMORY_LIMIT", "150000")],
    )
    .await;
    let first = chat_body_of_len(100_000);
    let mut stream = upload_head(&app, first.len()).await;
    stream
        .write_all(&first[..50_000])
        .await
        .expect("first half");
    eventually(
        "the first body to be reserved",
        Duration::from_secs(5),
        || async { body_bytes_in_flight(&app).await == 100_000 },
    )
    .await;

    let second = app
        .http
        .post(app.url("/v1/chat/completions"))
        .bearer_auth(KEY)
        .header("content-type", "application/json")
        .body(chat_body_of_len(60_000))
        .send()
        .await
        .expect("second request");
    assert_eq!(second.headers()["retry-after"], "1");
    let (status, error) = error_of(second).await;
    assert_eq!(status, 503);
    assert_eq!(error["code"], "server_busy");

    stream
        .write_all(&first[50_000..])
        .await
        .expect("second half");
    let answer = read_until_closed(&mut stream, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    eventually(
        "the bodies to leave memory",
        Duration::from_secs(5),
        || async { body_bytes_in_flight(&app).await == 0 },
    )
    .await;
    let stats = app.wait_for_stats(|s| s["total"]["requests"] == 2).await;
    assert_eq!(stats["total"]["errors"]["busy"], 1);
    assert_eq!(stats["total"]["succeeded"], 1);
}

#[actix_web::test]
async fn a_chunked_body_over_the_limit_gets_413_and_its_connection_closed_unread() {
    let app = spawn_app_with(Default::default(), |_| {}, &[("BODY_LIMIT", "1000")]).await;
    let stream = upload_head_framed(&app, "Transfer-Encoding: chunked").await;
    let (mut reader, writer) = stream.into_split();
    let mut pieces = vec![format!("7d0\r\n{}\r\n", "x".repeat(2000)).into_bytes()];
    // The rest keeps coming for 10 s: the gateway must not wait for it.
    pieces.extend(vec![b"1\r\n \r\n".to_vec(); 100]);
    let trickle = trickle(writer, pieces);
    let started = Instant::now();

    let answer = read_until_closed(&mut reader, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert_eq!(error_code(&answer), "request_too_large");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    trickle.abort();
}
