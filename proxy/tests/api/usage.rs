//! `GET /usage` on the ops listener: known traffic with known usage read back exactly, per
//! range, per group, as JSON and CSV, and the same after a restart on the same data dir.

use std::time::Duration;

use fake_foundry::{
    ScriptedReply, USAGE_CACHED_TOKENS, USAGE_COMPLETION_TOKENS, USAGE_PROMPT_TOKENS,
};
use proxy::ops::contract::UsagePage;
use proxy::process::clock::now_ms;
use serde_json::{Value, json};

use crate::helpers::*;

/// A chat answer with usage of our choosing, reasoning tokens included.
fn answer_with_usage() -> ScriptedReply {
    ScriptedReply::Status {
        status: 200,
        headers: vec![],
        body: json!({
            "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "dep-mini",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 100, "completion_tokens": 50, "total_tokens": 150,
                      "prompt_tokens_details": {"cached_tokens": 20},
                      "completion_tokens_details": {"reasoning_tokens": 30}}
        })
        .to_string(),
    }
}

async fn send(app: &TestApp, key: &str, body: Value) -> u16 {
    let response = app
        .http
        .post(app.url("/v1/chat/completions"))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .expect("request");
    let status = response.status().as_u16();
    response.bytes().await.expect("body");
    status
}

/// Ten requests: six answered by the fake, one answer with scripted usage, one 429 from the
/// upstream (answered as the gateway's own: the model's only deployment cools), one unknown
/// model, one unknown key.
async fn known_traffic(app: &TestApp) {
    for _ in 0..3 {
        assert_eq!(send(app, KEY, chat_body(false)).await, 200);
    }
    for _ in 0..2 {
        assert_eq!(send(app, "sk-other-key", chat_body(false)).await, 200);
    }
    app.fake.enqueue(answer_with_usage());
    assert_eq!(send(app, KEY, chat_body(false)).await, 200);
    app.fake
        .enqueue(status_reply(429, &[("retry-after-ms", "10")]));
    assert_eq!(send(app, "sk-other-key", chat_body(false)).await, 429);
    assert_eq!(
        send(app, KEY, json!({"model": "nope", "messages": []})).await,
        404
    );
    assert_eq!(send(app, "sk-wrong", chat_body(false)).await, 401);
    let stream = json!({"model": "legacy-model", "messages": [{"role": "user", "content": "hi"}],
                        "stream": true, "stream_options": {"include_usage": true}});
    assert_eq!(send(app, KEY, stream).await, 200);
}

async fn usage(app: &TestApp, query: &str) -> UsagePage {
    let response = app
        .http
        .get(format!("{}/usage?{query}", app.ops))
        .send()
        .await
        .expect("usage");
    assert_eq!(response.status(), 200, "{query}");
    response.json().await.expect("a usage page")
}

/// (group, requests, prompt tokens) per series, in the order served.
fn groups(page: &UsagePage) -> Vec<(String, u64, u64)> {
    page.series
        .iter()
        .map(|s| (s.group.clone(), s.total.requests, s.total.prompt_tokens))
        .collect()
}

const FAKE_PROMPT: u64 = USAGE_PROMPT_TOKENS;

#[actix_web::test]
async fn known_traffic_reads_back_exactly_per_range_group_and_format_across_a_restart() {
    let app = spawn_app().await;
    let started = now_ms();
    known_traffic(&app).await;
    let range = format!("from={}&to={}", started - 60_000, now_ms() + 60_000);
    let all = format!("{range}&step=1m");
    wait_for(
        "the ten requests in /usage",
        Duration::from_secs(5),
        || async { (usage(&app, &all).await.total.requests == 10).then_some(()) },
    )
    .await
    .expect("counted");

    let page = usage(&app, &all).await;
    let t = &page.total;
    assert_eq!(
        (t.requests, t.successes, t.cancelled, t.rate_limited),
        (10, 7, 0, 1)
    );
    assert_eq!(
        t.errors,
        [
            ("bad_request".to_string(), 1),
            // The only deployment of the model is cooling after Azure's 429: the gateway's.
            ("rate_limited".to_string(), 1),
            ("unauthorized".to_string(), 1)
        ]
        .into()
    );
    assert_eq!(t.prompt_tokens, 6 * FAKE_PROMPT + 100);
    assert_eq!(t.completion_tokens, 6 * USAGE_COMPLETION_TOKENS + 50);
    assert_eq!(t.cached_tokens, 6 * USAGE_CACHED_TOKENS + 20);
    assert_eq!(t.reasoning_tokens, 30);
    assert!(t.latency_ms.p50.is_some() && t.ttfb_ms.p99.is_some());
    let in_points: u64 = page.series[0]
        .points
        .iter()
        .map(|p| p.counts.requests)
        .sum();
    assert_eq!(in_points, 10, "the points add up to the total");
    for step in ["1h", "1d", "auto"] {
        let coarser = usage(&app, &format!("{range}&step={step}")).await;
        assert_eq!(coarser.total, page.total, "step {step}");
    }
    let before = usage(
        &app,
        &format!(
            "from={}&to={}",
            started - 3 * 3_600_000,
            started - 3_600_000
        ),
    )
    .await;
    assert!(before.series.is_empty());
    assert_eq!(before.total.requests, 0);

    let by_model = usage(&app, &format!("{all}&group_by=model")).await;
    assert_eq!(
        groups(&by_model),
        vec![
            ("gpt-5-mini".into(), 7, 5 * FAKE_PROMPT + 100),
            ("".into(), 2, 0),
            ("legacy-model".into(), 1, FAKE_PROMPT),
        ]
    );
    let by_key = usage(&app, &format!("{all}&group_by=key")).await;
    assert_eq!(
        groups(&by_key),
        vec![
            (KEY_ID.into(), 6, 4 * FAKE_PROMPT + 100),
            ("team-b".into(), 3, 2 * FAKE_PROMPT),
            ("".into(), 1, 0),
        ]
    );
    let by_deployment = usage(&app, &format!("{all}&group_by=deployment")).await;
    assert_eq!(
        groups(&by_deployment),
        vec![
            ("fake/dep-mini".into(), 7, 5 * FAKE_PROMPT + 100),
            ("".into(), 2, 0),
            ("legacy/legacy dep/1".into(), 1, FAKE_PROMPT),
        ]
    );
    let legacy = usage(&app, &format!("{all}&deployment=legacy%2Flegacy%20dep%2F1")).await;
    assert_eq!(legacy.total.requests, 1);
    let team_b_by_model = usage(&app, &format!("{all}&group_by=model&key=team-b")).await;
    assert_eq!(
        groups(&team_b_by_model),
        vec![("gpt-5-mini".into(), 3, 2 * FAKE_PROMPT)]
    );
    assert_eq!(team_b_by_model.total.rate_limited, 1);
    assert_eq!(
        team_b_by_model.total.latency_ms.p50, None,
        "no histogram per key and model"
    );

    // CSV: the same numbers, one row per point.
    let response = app
        .http
        .get(format!("{}/usage?{all}&group_by=key&format=csv", app.ops))
        .send()
        .await
        .expect("csv");
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/csv; charset=utf-8"
    );
    let disposition = response.headers()["content-disposition"]
        .to_str()
        .expect("ascii")
        .to_string();
    assert!(
        disposition.starts_with("attachment; filename=\"usage-") && disposition.ends_with(".csv\""),
        "{disposition}"
    );
    let text = response.text().await.expect("text");
    let csv_totals = csv_totals(&text);
    assert_eq!(
        csv_totals,
        vec![
            ("".to_string(), 1, 0),
            (KEY_ID.to_string(), 6, 4 * FAKE_PROMPT + 100),
            ("team-b".to_string(), 3, 2 * FAKE_PROMPT),
        ]
    );
    let accepted = app
        .http
        .get(format!("{}/usage?{all}", app.ops))
        .header("accept", "text/csv")
        .send()
        .await
        .expect("csv");
    assert!(
        accepted
            .text()
            .await
            .expect("text")
            .starts_with("time,group,requests,")
    );

    let metrics = app
        .http
        .get(format!("{}/metrics", app.ops))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains(
            "gateway_request_duration_seconds_bucket{model=\"gpt-5-mini\",le=\"+Inf\"} 7"
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            "gateway_request_duration_seconds_bucket{model=\"gpt-5-mini\",le=\"0.0012\"}"
        )
    );
    // The 429 passed on as the gateway's own has no upstream answer to time.
    assert!(metrics.contains("gateway_request_ttfb_seconds_count{model=\"gpt-5-mini\"} 6"));

    // Stopped and started again on the same data dir: the same answers.
    let queries: Vec<String> = [
        "",
        "&group_by=model",
        "&group_by=key",
        "&group_by=deployment",
    ]
    .iter()
    .flat_map(|g| ["1m", "1h", "1d"].map(|step| format!("{range}&step={step}{g}")))
    .collect();
    let mut answers = Vec::new();
    for query in &queries {
        answers.push(usage(&app, query).await);
    }
    let (fake, dir, config_path) = app.shutdown().await;
    assert!(
        dir.path().join("usage-recent.bin").exists(),
        "the history is written at stop"
    );
    let app = start(fake, dir, config_path, &[]).await;
    for (query, before) in queries.iter().zip(&answers) {
        assert_eq!(&usage(&app, query).await, before, "{query}");
    }
}

/// (group, requests, prompt tokens) summed over the rows of a CSV answer, by group name.
fn csv_totals(text: &str) -> Vec<(String, u64, u64)> {
    let mut lines = text.split("\r\n");
    let header: Vec<&str> = lines.next().expect("header").split(',').collect();
    let column = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .unwrap_or_else(|| panic!("no {name} column"))
    };
    let (group, requests, prompt) = (column("group"), column("requests"), column("prompt_tokens"));
    let mut totals: std::collections::BTreeMap<String, (u64, u64)> = Default::default();
    for line in lines.filter(|l| !l.is_empty()) {
        // No group in this test holds a comma or a quote.
        let fields: Vec<&str> = line.split(',').collect();
        assert_eq!(fields.len(), header.len(), "{line}");
        let entry = totals.entry(fields[group].to_string()).or_default();
        entry.0 += fields[requests].parse::<u64>().expect("requests");
        entry.1 += fields[prompt].parse::<u64>().expect("prompt tokens");
    }
    totals
        .into_iter()
        .map(|(group, (requests, prompt))| (group, requests, prompt))
        .collect()
}

#[actix_web::test]
async fn a_bad_usage_query_is_refused_in_the_openai_error_shape() {
    let app = spawn_app().await;
    let now = now_ms();
    let cases = [
        ("since=1".to_string(), "unknown_parameter", Value::Null),
        (
            format!("from={now}&to={}", now - 1),
            "invalid_range",
            json!("from"),
        ),
        (
            format!("from={}&step=1m", now - 10 * 86_400_000),
            "step_too_fine",
            json!("step"),
        ),
        (
            "group_by=region".to_string(),
            "invalid_group_by",
            json!("group_by"),
        ),
        ("to=tomorrow".to_string(), "invalid_time", json!("to")),
    ];
    for (query, code, param) in cases {
        let response = app
            .http
            .get(format!("{}/usage?{query}", app.ops))
            .send()
            .await
            .expect("usage");
        let (status, error) = error_of(response).await;
        assert_eq!(status, 400, "{query}");
        assert_eq!(error["type"], "invalid_request_error", "{query}");
        assert_eq!(error["code"], code, "{query}");
        assert_eq!(error["param"], param, "{query}");
    }
}

#[actix_web::test]
async fn with_the_history_off_nothing_is_kept_and_usage_says_so() {
    let app = spawn_app_with(
        fake_foundry::Behaviour::default(),
        |_| {},
        &[("USAGE_HISTORY", "off")],
    )
    .await;
    assert_eq!(send(&app, KEY, chat_body(false)).await, 200);
    app.wait_for_stats(|s| s["total"]["requests"] == 1).await;
    let response = app
        .http
        .get(format!("{}/usage", app.ops))
        .send()
        .await
        .expect("usage");
    let (status, error) = error_of(response).await;
    assert_eq!(status, 503);
    assert_eq!(error["code"], "usage_history_off");
    let (_fake, dir, _config) = app.shutdown().await;
    assert!(dir.path().join("stats.json").exists());
    let written: Vec<String> = std::fs::read_dir(dir.path())
        .expect("dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("usage"))
        .collect();
    assert!(written.is_empty(), "{written:?}");
}
