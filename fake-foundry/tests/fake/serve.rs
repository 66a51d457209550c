//! Black-box tests: a started fake answering real HTTP/1.1 over raw TCP.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use fake_foundry::{
    Behaviour, CHAT_ONLY_PREFIX, FakeFoundry, RESPONSES_ONLY_PREFIX, ScriptedReply, Throttle,
    ToolCall, USAGE_CACHED_TOKENS, USAGE_TOTAL_TOKENS, error_body,
};
use serde_json::{Value, json};
use test_support::eventually;

/// A response read until the server closed the connection.
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
    /// Whether the body ended properly (last chunk or full `content-length`).
    complete: bool,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).expect("json body")
    }

    /// The `data:` payloads of an SSE body.
    fn sse_data(&self) -> Vec<&str> {
        self.body
            .split("\n\n")
            .filter(|event| !event.is_empty())
            .filter_map(|event| event.lines().find_map(|l| l.strip_prefix("data: ")))
            .collect()
    }
}

fn connect(fake: &FakeFoundry) -> TcpStream {
    let socket = TcpStream::connect(("127.0.0.1", fake.port())).expect("connect");
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("read timeout");
    socket
}

fn send(socket: &mut TcpStream, path: &str, headers: &[(&str, &str)], body: &str) {
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\ncontent-type: application/json\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    socket.write_all(request.as_bytes()).expect("send request");
}

fn post(fake: &FakeFoundry, path: &str, headers: &[(&str, &str)], body: &Value) -> Reply {
    let mut socket = connect(fake);
    send(&mut socket, path, headers, &body.to_string());
    let mut raw = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        match socket.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if e.kind() == ErrorKind::ConnectionReset => break,
            Err(e) => panic!("read failed: {e}"),
        }
    }
    parse(&raw)
}

fn parse(raw: &[u8]) -> Reply {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("response head");
    let head = std::str::from_utf8(&raw[..split]).expect("ascii head");
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(": "))
        .map(|(n, v)| (n.to_ascii_lowercase(), v.to_owned()))
        .collect();
    let mut rest = &raw[split + 4..];
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v == "chunked");
    let (body, complete) = if chunked {
        let mut body = Vec::new();
        let mut complete = false;
        while let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") {
            let size_hex = std::str::from_utf8(&rest[..eol]).expect("chunk size");
            let size = usize::from_str_radix(size_hex, 16).expect("hex chunk size");
            if size == 0 {
                complete = true;
                break;
            }
            let data = &rest[eol + 2..];
            if data.len() < size + 2 {
                body.extend_from_slice(&data[..size.min(data.len())]);
                break;
            }
            body.extend_from_slice(&data[..size]);
            rest = &data[size + 2..];
        }
        (body, complete)
    } else {
        let length: Option<usize> = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .and_then(|(_, v)| v.parse().ok());
        (rest.to_vec(), length == Some(rest.len()))
    };
    Reply {
        status,
        headers,
        body: String::from_utf8(body).expect("utf-8 body"),
        complete,
    }
}

#[actix_web::test]
async fn chat_stream_is_recorded_and_delivered() {
    let fake = FakeFoundry::start_with(Behaviour {
        chunk_gap_ms: 1,
        ..Behaviour::default()
    })
    .await;
    let reply = post(
        &fake,
        "/openai/deployments/my-gpt/chat/completions?api-version=2024-10-21",
        &[("api-key", "k")],
        &json!({
            "messages": [{"role": "user", "content": "hi"}],
            "stream": true,
            "stream_options": {"include_usage": true}
        }),
    );
    assert_eq!(reply.status, 200);
    assert!(reply.complete);
    assert_eq!(
        reply.header("content-type"),
        Some("text/event-stream; charset=utf-8")
    );
    assert_eq!(reply.header("cache-control"), Some("no-cache"));
    assert_eq!(reply.header("x-ms-region"), Some("Sweden Central"));
    assert!(reply.header("x-request-id").is_some() && reply.header("apim-request-id").is_some());

    let events = reply.sse_data();
    assert_eq!(events.last(), Some(&"[DONE]"));
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).expect("json event"))
        .collect();
    assert!(chunks[0]["prompt_filter_results"].is_array());
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, Behaviour::default().text);
    assert!(chunks.iter().skip(1).all(|c| c["model"] == "my-gpt"));
    let usage = &chunks[chunks.len() - 1]["usage"];
    assert_eq!(usage["total_tokens"], USAGE_TOTAL_TOKENS);
    assert_eq!(
        usage["prompt_tokens_details"]["cached_tokens"],
        USAGE_CACHED_TOKENS
    );

    assert_eq!(fake.streams_started(), 1);
    assert_eq!(fake.streams_completed(), 1);
    assert_eq!(fake.streams_cancelled(), 0);
    let requests = fake.requests();
    assert_eq!((requests.len(), fake.request_count()), (1, 1));
    let request = &requests[0];
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/openai/deployments/my-gpt/chat/completions");
    assert_eq!(request.query.as_deref(), Some("api-version=2024-10-21"));
    assert_eq!(request.header("API-Key"), Some("k"));
    assert_eq!(request.json()["stream"], true);
}

#[tokio::test]
async fn enqueued_429_answers_one_request() {
    let fake = FakeFoundry::start().await;
    fake.enqueue(ScriptedReply::Status {
        status: 429,
        headers: vec![("retry-after-ms".into(), "10".into())],
        body: error_body("429", "Rate limit is exceeded."),
    });
    let path = "/openai/v1/responses";
    let request = json!({"model": "gpt-4.1", "input": "hi"});

    let limited = post(&fake, path, &[], &request);
    assert_eq!(limited.status, 429);
    assert_eq!(limited.header("retry-after-ms"), Some("10"));
    assert_eq!(limited.header("content-type"), Some("application/json"));
    assert!(limited.header("x-request-id").is_some());
    assert_eq!(limited.json()["error"]["code"], "429");

    let ok = post(&fake, path, &[], &request);
    assert_eq!(ok.status, 200);
    let response = ok.json();
    assert_eq!(response["object"], "response");
    assert_eq!(response["model"], "gpt-4.1");
    assert_eq!(response["usage"]["total_tokens"], USAGE_TOTAL_TOKENS);

    // The same from the body alone.
    let failed = post(
        &fake,
        path,
        &[],
        &json!({"input": "hi", "fake": {"status": 503}}),
    );
    assert_eq!(failed.status, 503);
    assert_eq!(failed.json()["error"]["code"], "503");
    assert_eq!(fake.request_count(), 3);
}

#[tokio::test]
async fn throttle_refuses_every_second_request() {
    let fake = FakeFoundry::start_with(Behaviour {
        latency_ms: 500,
        throttle: Some(Throttle {
            every: 2,
            retry_after_ms: 100,
        }),
        ..Behaviour::default()
    })
    .await;
    fake.set_required_api_key(Some("k".into()));
    let path = "/openai/v1/chat/completions";
    let request = json!({"model": "gpt-4o", "messages": []});

    // Refused credentials and scripted replies are not counted.
    assert_eq!(post(&fake, path, &[], &request).status, 401);
    fake.enqueue(ScriptedReply::Status {
        status: 500,
        headers: Vec::new(),
        body: error_body("500", "boom"),
    });
    assert_eq!(post(&fake, path, &[("api-key", "k")], &request).status, 500);

    let mut statuses = Vec::new();
    for _ in 0..4 {
        let sent = std::time::Instant::now();
        let reply = post(&fake, path, &[("api-key", "k")], &request);
        let took = sent.elapsed();
        if reply.status == 429 {
            assert_eq!(reply.header("retry-after-ms"), Some("100"));
            assert_eq!(reply.header("retry-after"), Some("1"));
            assert_eq!(reply.header("content-type"), Some("application/json"));
            assert!(reply.header("x-request-id").is_some());
            let error = &reply.json()["error"];
            assert_eq!(error["code"], "429");
            assert!(
                error["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("exceeded token rate limit"))
            );
            // Refused at once, without the behaviour's latency.
            assert!(took < Duration::from_millis(500), "{took:?}");
        } else {
            assert_eq!(reply.json()["object"], "chat.completion");
        }
        statuses.push(reply.status);
    }
    assert_eq!(statuses, [200, 429, 200, 429]);
}

#[tokio::test]
async fn required_credentials_are_enforced() {
    let fake = FakeFoundry::start().await;
    fake.set_required_bearer(Some("t0ken".into()));
    let path = "/openai/v1/chat/completions";
    let request = json!({"model": "gpt-4o", "messages": []});

    let missing = post(&fake, path, &[], &request);
    assert_eq!(missing.status, 401);
    assert_eq!(missing.json()["error"]["code"], "401");
    let wrong = post(&fake, path, &[("authorization", "Bearer nope")], &request);
    assert_eq!(wrong.status, 401);
    let right = post(&fake, path, &[("authorization", "Bearer t0ken")], &request);
    assert_eq!(right.status, 200);
    let completion = right.json();
    assert_eq!(completion["object"], "chat.completion");
    assert_eq!(
        completion["choices"][0]["message"]["content"],
        Behaviour::default().text
    );

    fake.set_required_bearer(None);
    fake.set_required_api_key(Some("key".into()));
    assert_eq!(post(&fake, path, &[], &request).status, 401);
    assert_eq!(
        post(&fake, path, &[("api-key", "key")], &request).status,
        200
    );

    let unknown = post(&fake, "/openai/v1/nope", &[], &request);
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.json()["error"]["message"], "Resource not found");
}

#[tokio::test]
async fn cut_and_fragmented_replies() {
    let fake = FakeFoundry::start().await;
    let path = "/openai/v1/chat/completions";
    let request = json!({"model": "gpt-4o", "messages": [], "stream": true});

    fake.enqueue(ScriptedReply::CutAfter { after_chunks: 2 });
    let cut = post(&fake, path, &[], &request);
    assert_eq!(cut.status, 200);
    assert!(!cut.complete, "a cut stream must not end cleanly");
    assert_eq!(cut.sse_data().len(), 2);

    fake.enqueue(ScriptedReply::Fragmented {
        piece_bytes: 3,
        piece_gap_ms: 0,
    });
    let fragmented = post(&fake, path, &[], &request);
    assert!(fragmented.complete);
    assert_eq!(fragmented.sse_data().last(), Some(&"[DONE]"));

    let half = post(
        &fake,
        path,
        &[],
        &json!({"messages": [], "fake": {"cut_after_chunks": 0}}),
    );
    assert_eq!(half.status, 200);
    assert!(!half.complete, "a cut body must be shorter than its length");

    assert_eq!(fake.streams_started(), 2);
    assert_eq!(fake.streams_completed(), 1);
    assert_eq!(fake.streams_cancelled(), 0);
}

#[tokio::test]
async fn client_disconnect_cancels_the_stream() {
    let fake = FakeFoundry::start_with(Behaviour {
        stream_chunks: 1000,
        chunk_gap_ms: 5,
        ..Behaviour::default()
    })
    .await;
    let mut socket = connect(&fake);
    send(
        &mut socket,
        "/openai/v1/responses",
        &[],
        r#"{"model":"gpt-4.1","input":"hi","stream":true}"#,
    );
    let mut head = [0u8; 512];
    let read = socket.read(&mut head).expect("read the first bytes");
    assert!(head[..read].starts_with(b"HTTP/1.1 200 OK"));
    assert_eq!(fake.streams_started(), 1);
    drop(socket);

    eventually("the cancelled stream", Duration::from_secs(10), || async {
        fake.streams_cancelled() == 1
    })
    .await;
    assert_eq!(fake.streams_completed(), 0);
}

#[tokio::test]
async fn route_restricted_deployments_refuse_the_other_api_like_azure() {
    let fake = FakeFoundry::start().await;
    let chat = json!({"messages": [{"role": "user", "content": "hi"}]});
    let responses = json!({"input": "hi"});
    let codex = format!("{RESPONSES_ONLY_PREFIX}gpt-5-codex");
    let refused = post(
        &fake,
        &format!("/openai/deployments/{codex}/chat/completions?api-version=2025-04-01-preview"),
        &[],
        &chat,
    );
    assert_eq!(refused.status, 400);
    assert_eq!(refused.json()["error"]["code"], "OperationNotSupported");
    let message = refused.json()["error"]["message"].to_string();
    assert!(
        message.contains(&format!(
            "The chatCompletion operation does not work with the specified model, {codex}."
        )),
        "{message}"
    );
    let mut body = responses.clone();
    body["model"] = codex.clone().into();
    assert_eq!(post(&fake, "/openai/v1/responses", &[], &body).status, 200);

    let legacy = format!("{CHAT_ONLY_PREFIX}gpt-4o");
    let mut body = responses;
    body["model"] = legacy.clone().into();
    let refused = post(&fake, "/openai/v1/responses", &[], &body);
    assert_eq!(refused.status, 400);
    assert!(
        refused.json()["error"]["message"]
            .to_string()
            .contains("The responses operation does not work")
    );
    let mut body = chat;
    body["model"] = legacy.into();
    assert_eq!(
        post(&fake, "/openai/v1/chat/completions", &[], &body).status,
        200
    );
}

#[tokio::test]
async fn answers_call_the_functions_asked_for() {
    let fake = FakeFoundry::start_with(Behaviour {
        tool_calls: vec![ToolCall::new("now", "{}")],
        ..Behaviour::default()
    })
    .await;
    let chat = post(
        &fake,
        "/openai/v1/chat/completions",
        &[],
        &json!({"model": "m", "messages": [], "stream": true,
            "fake": {"text": "", "tool_calls": [{"name": "get_weather", "arguments": "{\"city\":\"東京\"}"}]}}),
    );
    assert_eq!(chat.status, 200);
    let chunks: Vec<Value> = chat
        .sse_data()
        .iter()
        .filter(|d| **d != "[DONE]")
        .map(|d| serde_json::from_str(d).expect("json"))
        .collect();
    let arguments: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"].as_str())
        .collect();
    assert_eq!(arguments, "{\"city\":\"東京\"}");
    assert_eq!(
        chunks[chunks.len() - 1]["choices"][0]["finish_reason"],
        "tool_calls"
    );

    let response = post(
        &fake,
        "/openai/v1/responses",
        &[],
        &json!({"model": "m", "input": "time?"}),
    )
    .json();
    let output = response["output"].as_array().expect("output");
    assert_eq!(output[0]["type"], "message");
    assert_eq!(output[1]["type"], "function_call");
    assert_eq!(output[1]["name"], "now");
}
