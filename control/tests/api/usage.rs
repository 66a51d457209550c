//! `GET <admin>/api/usage`: the proxy's usage history passed through, JSON and CSV, with
//! control's checks of the query, the proxy's own refusals, and its failures.

use std::time::Duration;

use actix_web::{App, HttpResponse, HttpServer, web};
use serde_json::Value;

use crate::helpers::{
    KEY, StackOptions, TestStack, chat_body, free_port, spawn_stack_with, wait_for,
};

pub(crate) const OTHER_KEY: &str = "sk-other-key-0123456789";

/// Waits until the history holds `requests` requests in the last hour.
pub(crate) async fn history_holds(stack: &TestStack, requests: u64) -> Value {
    wait_for(
        "the usage history to count the requests",
        Duration::from_secs(10),
        || async {
            let page = stack.get_json("usage?group_by=key").await;
            (page["total"]["requests"] == requests).then_some(page)
        },
    )
    .await
    .expect("usage")
}

#[actix_web::test]
async fn the_usage_history_comes_from_the_proxy_as_json_and_csv() {
    let stack = spawn_stack_with(StackOptions::default()).await;
    for _ in 0..2 {
        assert_eq!(stack.chat(KEY, chat_body(false)).await.status(), 200);
    }
    assert_eq!(stack.chat(OTHER_KEY, chat_body(false)).await.status(), 200);
    let page = history_holds(&stack, 3).await;
    assert_eq!(page["group_by"], "key");
    assert_eq!(page["series"][0]["group"], "team-a", "{page}");
    assert_eq!(page["series"][0]["total"]["requests"], 2);
    assert_eq!(page["series"][1]["group"], "team-b");
    assert_eq!(page["total"]["prompt_tokens"], 33);

    let filtered = stack.get_json("usage?key=team-b&step=1m").await;
    assert_eq!(filtered["step_ms"], 60_000);
    assert_eq!(filtered["total"]["requests"], 1);

    let csv = stack
        .get("usage?group_by=model&format=csv")
        .send()
        .await
        .expect("request");
    assert_eq!(csv.status(), 200);
    let header = |name: &str| {
        csv.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    assert!(header("content-type").starts_with("text/csv"));
    assert!(header("content-disposition").starts_with("attachment; filename=\"usage-"));
    assert_eq!(header("cache-control"), "no-store");
    let text = csv.text().await.expect("csv");
    let mut lines = text.lines();
    assert!(
        lines
            .next()
            .is_some_and(|h| h.starts_with("time,group,requests,"))
    );
    let requests: u64 = lines
        .filter(|l| l.split(',').nth(1) == Some("gpt-5-mini"))
        .filter_map(|l| l.split(',').nth(2)?.parse::<u64>().ok())
        .sum();
    assert_eq!(requests, 3, "{text}");

    // A client that asks for CSV gets CSV.
    let accepted = stack
        .get("usage")
        .header("accept", "text/csv")
        .send()
        .await
        .expect("request");
    assert!(
        accepted.headers()["content-type"]
            .to_str()
            .unwrap_or_default()
            .starts_with("text/csv")
    );
    stack.shutdown().await;
}

#[actix_web::test]
async fn a_query_control_or_the_proxy_refuses_is_a_400_that_says_why() {
    let stack = spawn_stack_with(StackOptions::default()).await;
    let unknown = stack.get("usage?window=1h").send().await.expect("request");
    assert_eq!(unknown.status(), 400);
    let body: Value = unknown.json().await.expect("json");
    assert_eq!(body["error"]["code"], "bad_request");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("\"window\"")),
        "{body}"
    );
    let long_key = stack
        .get(&format!("usage?key={}", "k".repeat(300)))
        .send()
        .await
        .expect("request");
    assert_eq!(long_key.status(), 400);

    // The proxy's own refusal comes back as it gave it.
    for (query, param) in [("step=7s", "step"), ("from=2000&to=1000", "from")] {
        let refused = stack
            .get(&format!("usage?{query}"))
            .send()
            .await
            .expect("request");
        assert_eq!(refused.status(), 400, "{query}");
        let body: Value = refused.json().await.expect("json");
        assert_eq!(body["error"]["type"], "invalid_request_error", "{body}");
        assert_eq!(body["error"]["param"], param, "{body}");
        assert_ne!(body["error"]["code"], "bad_request", "{body}");
    }
    stack.shutdown().await;
}

#[actix_web::test]
async fn an_unreachable_proxy_is_a_502_in_the_admin_error_shape() {
    let closed = free_port();
    let stack = spawn_stack_with(StackOptions {
        edit_control: Box::new(move |settings| {
            settings.proxy_ops_url =
                Some(format!("http://127.0.0.1:{closed}").parse().expect("url"));
        }),
        ..StackOptions::default()
    })
    .await;
    let response = stack.get("usage").send().await.expect("request");
    assert_eq!(response.status(), 502);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["error"]["code"], "proxy_ops_unreachable");
    stack.shutdown().await;
}

/// An ops listener whose `/usage` answers `status` with `size` bytes of CSV, streamed without a
/// content-length.
async fn fake_ops(size: usize, status: u16) -> (String, actix_web::dev::ServerHandle) {
    let server = HttpServer::new(move || {
        App::new().route(
            "/usage",
            web::get().to(move || async move {
                let chunks = (0..size).step_by(64 * 1024).map(move |at| {
                    let len = (size - at).min(64 * 1024);
                    Ok::<_, actix_web::Error>(bytes::Bytes::from(vec![b'1'; len]))
                });
                HttpResponse::build(actix_web::http::StatusCode::from_u16(status).expect("status"))
                    .content_type("text/csv; charset=utf-8")
                    .streaming(futures_util::stream::iter(chunks))
            }),
        )
    })
    .workers(1)
    .bind("127.0.0.1:0")
    .expect("bind");
    let url = format!("http://{}", server.addrs()[0]);
    let server = server.run();
    let handle = server.handle();
    actix_rt::spawn(server);
    (url, handle)
}

#[actix_web::test]
async fn an_answer_over_8_mib_or_a_proxy_failure_is_not_passed_on() {
    for (size, status, code) in [
        (8 * 1024 * 1024 + 1, 200, 502),
        (8 * 1024 * 1024, 200, 200),
        (10, 500, 502),
        (10, 404, 502),
    ] {
        let (url, ops) = fake_ops(size, status).await;
        let stack = spawn_stack_with(StackOptions {
            edit_control: Box::new(move |settings| {
                settings.proxy_ops_url = Some(url.parse().expect("url"));
            }),
            ..StackOptions::default()
        })
        .await;
        let response = stack.get("usage").send().await.expect("request");
        assert_eq!(response.status(), code, "{size} bytes, status {status}");
        if code == 200 {
            assert_eq!(response.bytes().await.expect("body").len(), size);
        } else {
            let body: Value = response.json().await.expect("json");
            assert_eq!(body["error"]["code"], "proxy_ops_unreachable", "{body}");
            if size > 10 {
                assert!(
                    body["error"]["message"]
                        .as_str()
                        .is_some_and(|m| m.contains("8 MiB")),
                    "{body}"
                );
            }
        }
        stack.shutdown().await;
        ops.stop(true).await;
    }
}

#[actix_web::test]
async fn with_the_history_off_the_proxy_s_503_says_so() {
    let stack = spawn_stack_with(StackOptions {
        proxy_env: &[("USAGE_HISTORY", "off")],
        ..StackOptions::default()
    })
    .await;
    let response = stack.get("usage").send().await.expect("request");
    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["error"]["code"], "usage_history_off", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("USAGE_HISTORY=off"))
    );
    stack.shutdown().await;
}
