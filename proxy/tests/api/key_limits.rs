//! Client key policies: allowed models, expiry, request and token windows, budgets, the
//! x-ratelimit headers, reloads and restarts.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::*;

/// The app with the test key's entry extended by `policy`.
async fn app_with_key(policy: Value) -> TestApp {
    spawn_app_with_config(|config| {
        let key = config["apiKeys"][0].as_object_mut().expect("key");
        for (name, value) in policy.as_object().expect("policy") {
            key.insert(name.clone(), value.clone());
        }
    })
    .await
}

fn header(response: &reqwest::Response, name: &str) -> String {
    response
        .headers()
        .get(name)
        .unwrap_or_else(|| panic!("no {name}"))
        .to_str()
        .expect("ascii")
        .to_string()
}

#[actix_web::test]
async fn a_key_sees_and_uses_only_its_models() {
    let app = app_with_key(json!({"models": ["gpt-5*", "via-*"]})).await;
    let list: Value = app
        .http
        .get(app.url("/v1/models"))
        .bearer_auth(KEY)
        .send()
        .await
        .expect("models")
        .json()
        .await
        .expect("json");
    let ids: Vec<&str> = list["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter_map(|m| m["id"].as_str())
        .collect();
    assert_eq!(ids, vec!["gpt-5-mini", "via-responses"]);

    let mut body = chat_body(false);
    body["model"] = json!("legacy-model");
    let (status, error) = error_of(app.chat(body).await).await;
    assert_eq!(status, 403);
    assert_eq!(error["code"], "model_not_allowed");
    assert_eq!(error["param"], "model");
    assert_eq!(app.fake.request_count(), 0);
    assert_eq!(app.chat(chat_body(false)).await.status(), 200);
}

#[actix_web::test]
async fn an_expired_key_is_refused_with_401() {
    let app = app_with_key(json!({"expiresAt": "2020-01-01T00:00:00Z"})).await;
    let (status, error) = error_of(app.chat(chat_body(false)).await).await;
    assert_eq!(status, 401);
    assert_eq!(error["code"], "api_key_expired");
    assert_eq!(app.fake.request_count(), 0);
}

#[actix_web::test]
async fn a_request_window_counts_down_in_headers_then_refuses_until_it_ends() {
    let app = app_with_key(json!({"limits": [{"requests": 3, "per": "2s"}]})).await;
    // Start at the beginning of a window, so that the three fit in one.
    until_window_start(Duration::from_secs(2)).await;
    for remaining in ["2", "1", "0"] {
        let response = app.chat(chat_body(false)).await;
        assert_eq!(response.status(), 200);
        assert_eq!(header(&response, "x-ratelimit-limit-requests"), "3");
        assert_eq!(
            header(&response, "x-ratelimit-remaining-requests"),
            remaining
        );
        assert!(header(&response, "x-ratelimit-reset-requests").ends_with('s'));
    }
    let response = app.chat(chat_body(false)).await;
    assert_eq!(response.status(), 429);
    let retry_after: u64 = header(&response, "retry-after").parse().expect("secs");
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    assert_eq!(header(&response, "x-ratelimit-remaining-requests"), "0");
    let (_, error) = error_of(response).await;
    assert_eq!(error["code"], "rate_limit_exceeded");
    assert_eq!(error["type"], "requests");
    assert_eq!(app.fake.request_count(), 3);

    eventually("the next window", Duration::from_secs(5), || async {
        app.chat(chat_body(false)).await.status() == 200
    })
    .await;
    app.wait_for_stats(|s| {
        s["by_key"][KEY_ID]["errors"]["key_limited"].as_u64() >= Some(1)
            && s["by_key"][KEY_ID]["succeeded"].as_u64() >= Some(4)
    })
    .await;
}

/// Waits until a new window of length `per` has just begun (windows are aligned on the epoch).
async fn until_window_start(per: Duration) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock");
    let into = Duration::from_millis((now.as_millis() % per.as_millis()) as u64);
    if into > per / 4 {
        actix_rt::time::sleep(per - into).await;
    }
}

#[actix_web::test]
async fn a_token_window_is_spent_by_the_usage_of_answers_and_streams() {
    for stream in [false, true] {
        let app = app_with_key(json!({"limits": [{"tokens": 5, "per": "1h"}]})).await;
        let mut body = chat_body(stream);
        if stream {
            body["stream_options"] = json!({"include_usage": true});
        }
        let response = app.chat(body.clone()).await;
        assert_eq!(response.status(), 200);
        assert_eq!(header(&response, "x-ratelimit-limit-tokens"), "5");
        assert_eq!(header(&response, "x-ratelimit-remaining-tokens"), "5");
        response.bytes().await.expect("body");
        let limits = wait_for(
            "the tokens to be charged",
            Duration::from_secs(5),
            || async {
                let page = app.ops_json("/limits").await;
                (page["keys"][0]["windows"][0]["used"].as_u64() > Some(5)).then_some(page)
            },
        )
        .await
        .expect("charged");
        assert_eq!(limits["keys"][0]["key_id"], KEY_ID);

        let response = app.chat(body).await;
        assert_eq!(response.status(), 429, "stream: {stream}");
        assert_eq!(header(&response, "x-ratelimit-remaining-tokens"), "0");
        let (_, error) = error_of(response).await;
        assert_eq!(error["code"], "rate_limit_exceeded");
        assert_eq!(app.fake.request_count(), 1);
    }
}

#[actix_web::test]
async fn a_spent_budget_is_insufficient_quota_and_survives_a_restart() {
    let app = app_with_key(json!({"budget": {"tokens": 5, "per": "month"}})).await;
    assert_eq!(app.chat(chat_body(false)).await.status(), 200);
    app.wait_for_stats(|s| s["budgets"][KEY_ID]["used"].as_u64() > Some(5))
        .await;
    let response = app.chat(chat_body(false)).await;
    assert_eq!(response.status(), 429);
    let retry_after: u64 = header(&response, "retry-after").parse().expect("secs");
    assert!(
        retry_after > 0 && retry_after <= 31 * 86_400,
        "{retry_after}"
    );
    let (_, error) = error_of(response).await;
    assert_eq!(error["code"], "insufficient_quota");
    assert_eq!(error["type"], "insufficient_quota");

    let (fake, dir, config_path) = app.shutdown().await;
    let app = start(fake, dir, config_path, &[]).await;
    assert_eq!(app.chat(chat_body(false)).await.status(), 429);

    // A reset from the admin UI (budget.resetAt) starts the budget again.
    let mut config: Value =
        serde_json::from_slice(&std::fs::read(&app.config_path).expect("read")).expect("json");
    let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    config["apiKeys"][0]["budget"]["resetAt"] = json!(now);
    write_json(&app.config_path, &config);
    eventually("the reset to apply", Duration::from_secs(5), || async {
        app.chat(chat_body(false)).await.status() == 200
    })
    .await;
}

async fn chat_with_rotated_key(app: &TestApp) -> reqwest::Response {
    app.http
        .post(app.url("/v1/chat/completions"))
        .bearer_auth("sk-rotated-key")
        .json(&chat_body(false))
        .send()
        .await
        .expect("request")
}

#[actix_web::test]
async fn a_reload_keeps_the_counters_of_a_key_that_got_a_new_secret() {
    let app = app_with_key(json!({"limits": [{"requests": 2, "per": "1h"}]})).await;
    for _ in 0..2 {
        assert_eq!(app.chat(chat_body(false)).await.status(), 200);
    }
    let mut config: Value =
        serde_json::from_slice(&std::fs::read(&app.config_path).expect("read")).expect("json");
    config["apiKeys"][0]["key"] = json!("sk-rotated-key");
    write_json(&app.config_path, &config);
    eventually("the reload", Duration::from_secs(5), || async {
        app.ops_json("/status").await["config"]["generation"] == 2
    })
    .await;
    let response = chat_with_rotated_key(&app).await;
    assert_eq!(response.status(), 429);

    // New limits start new windows.
    config["apiKeys"][0]["limits"] = json!([{"requests": 3, "per": "1h"}]);
    write_json(&app.config_path, &config);
    eventually("the second reload", Duration::from_secs(5), || async {
        app.ops_json("/status").await["config"]["generation"] == 3
    })
    .await;
    let response = chat_with_rotated_key(&app).await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-ratelimit-remaining-requests"), "2");
}

/// A chat request whose prompt is `words` words long.
fn chat_of_words(words: usize) -> Value {
    let mut body = chat_body(false);
    body["messages"] = json!([{"role": "user", "content": "gateway ".repeat(words)}]);
    body
}

#[actix_web::test]
async fn an_estimated_prompt_that_cannot_fit_a_token_window_is_refused_before_sending() {
    for estimate in [false, true] {
        let app = spawn_app_with_config(|config| {
            config["apiKeys"][0]["limits"] = json!([{"tokens": 500, "per": "1h"}]);
            config["limits"] = json!({"estimatePromptTokens": estimate});
        })
        .await;
        let response = app.chat(chat_of_words(2000)).await;
        if !estimate {
            assert_eq!(
                response.status(),
                200,
                "without the estimate it goes upstream"
            );
            continue;
        }
        assert_eq!(response.status(), 429);
        assert!(
            response.headers().get("retry-after").is_none(),
            "waiting cannot help"
        );
        assert_eq!(header(&response, "x-ratelimit-limit-tokens"), "500");
        let (_, error) = error_of(response).await;
        assert_eq!(error["code"], "rate_limit_exceeded");
        assert_eq!(error["type"], "tokens");
        let message = error["message"].as_str().expect("message");
        let estimated: u64 = message
            .split("about ")
            .nth(1)
            .and_then(|rest| rest.split(' ').next())
            .and_then(|n| n.parse().ok())
            .expect("the estimate in the message");
        assert!((2000..2100).contains(&estimated), "{message}");
        assert!(message.contains("limit of 500 tokens"), "{message}");
        assert_eq!(app.fake.request_count(), 0);

        assert_eq!(app.chat(chat_of_words(20)).await.status(), 200);
        assert_eq!(app.fake.request_count(), 1);
    }
}
