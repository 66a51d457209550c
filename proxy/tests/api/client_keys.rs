use std::io::{Read, Write};
use std::time::Duration;

use crate::helpers::*;

#[actix_web::test]
async fn bearer_api_key_and_x_api_key_headers_are_accepted() {
    let app = spawn_app().await;
    let body = chat_body(false);
    let url = app.url("/v1/chat/completions");
    for request in [
        app.http.post(&url).bearer_auth(KEY),
        app.http.post(&url).header("api-key", KEY),
        app.http.post(&url).header("x-api-key", KEY),
    ] {
        let response = request.json(&body).send().await.expect("request");
        assert_eq!(response.status(), 200);
    }
}

#[actix_web::test]
async fn missing_api_key_returns_401_in_openai_format() {
    let app = spawn_app().await;
    let response = app
        .http
        .post(app.url("/v1/chat/completions"))
        .json(&chat_body(false))
        .send()
        .await
        .expect("request");
    let (status, error) = error_of(response).await;
    assert_eq!(status, 401);
    assert_eq!(error["code"], "invalid_api_key");
    assert_eq!(error["type"], "invalid_request_error");
}

#[actix_web::test]
async fn wrong_and_disabled_keys_are_refused_and_never_reach_upstream() {
    let app = spawn_app().await;
    for key in ["sk-wrong", DISABLED_KEY, &KEY[..KEY.len() - 1]] {
        let response = app
            .http
            .post(app.url("/v1/chat/completions"))
            .bearer_auth(key)
            .json(&chat_body(false))
            .send()
            .await
            .expect("request");
        assert_eq!(error_of(response).await.0, 401, "{key}");
    }
    assert_eq!(app.fake.request_count(), 0);
}

#[actix_web::test]
async fn the_key_is_checked_before_the_body_is_read() {
    let app = spawn_app().await;
    let port = app.address.rsplit(':').next().expect("port").to_string();
    // Announce a 40 MB body, send none of it: a refusal can only come from the headers.
    let response = tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(format!("127.0.0.1:{port}")).expect("connect");
        stream.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
        write!(
            stream,
            "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer sk-wrong\r\nContent-Type: application/json\r\nContent-Length: 40000000\r\n\r\n"
        )
        .expect("write");
        let mut buf = [0u8; 4096];
        let n = stream.read(&mut buf).expect("a response before any body byte");
        String::from_utf8_lossy(&buf[..n]).to_string()
    })
    .await
    .expect("join");
    assert!(response.starts_with("HTTP/1.1 401"), "{response}");
    assert!(response.contains("invalid_api_key"));
}

#[actix_web::test]
async fn client_credentials_and_cookies_never_go_upstream() {
    let app = spawn_app().await;
    let response = app
        .post("/v1/chat/completions", &chat_body(false))
        .header("cookie", "session=secret")
        .header("x-api-key", "also-secret")
        .header("x-forwarded-for", "10.0.0.1")
        .header("user-agent", "OpenAI/Python 1.0")
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    let received = &app.fake.requests()[0];
    assert_eq!(received.header("api-key"), Some(UPSTREAM_API_KEY));
    assert_eq!(received.header("authorization"), None);
    assert_eq!(received.header("cookie"), None);
    assert_eq!(received.header("x-api-key"), None);
    assert_eq!(received.header("x-forwarded-for"), None);
    assert_eq!(received.header("user-agent"), Some("OpenAI/Python 1.0"));
}
