use serde_json::{Value, json};

use crate::helpers::*;

#[actix_web::test]
async fn model_becomes_the_deployment_and_the_rest_of_the_body_is_byte_identical() {
    let app = spawn_app().await;
    let sent = "{\"messages\":[{\"role\":\"user\",\"content\":\"caf\u{e9} \\\"quoted\\\" undefined\"}],\n  \"model\": \"gpt-5-mini\", \"temperature\": 0.70000000000000001, \"user\": null, \"tools\": []}";
    let response = app
        .http
        .post(app.url("/v1/chat/completions"))
        .bearer_auth(KEY)
        .header("content-type", "application/json")
        .body(sent)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    let received = &app.fake.requests()[0];
    assert_eq!(
        std::str::from_utf8(&received.body).expect("utf8"),
        sent.replace("\"gpt-5-mini\"", "\"dep-mini\"")
    );
    assert_eq!(received.path, "/openai/v1/chat/completions");
}

#[actix_web::test]
async fn stream_options_is_removed_only_from_non_streaming_requests() {
    let app = spawn_app().await;
    let mut body = chat_body(false);
    body["stream_options"] = json!({"include_usage": true});
    assert_eq!(app.chat(body.clone()).await.status(), 200);
    body["stream"] = json!(true);
    let response = app.chat(body).await;
    assert_eq!(response.status(), 200);
    response.bytes().await.expect("stream");
    let requests = app.fake.requests();
    assert!(requests[0].json().get("stream_options").is_none());
    assert_eq!(requests[1].json()["stream_options"]["include_usage"], true);
}

#[actix_web::test]
async fn request_id_is_generated_sent_upstream_and_returned() {
    let app = spawn_app().await;
    let response = app.chat(chat_body(false)).await;
    let id = response.headers()["x-request-id"]
        .to_str()
        .expect("id")
        .to_string();
    assert_eq!(id.len(), 36);
    assert_eq!(
        app.fake.requests()[0].header("x-request-id"),
        Some(id.as_str())
    );

    let response = app
        .post("/v1/chat/completions", &chat_body(false))
        .header("x-request-id", "client-chosen-1")
        .send()
        .await
        .expect("request");
    assert_eq!(response.headers()["x-request-id"], "client-chosen-1");
    assert_eq!(
        app.fake.requests()[1].header("x-request-id"),
        Some("client-chosen-1")
    );
}

#[actix_web::test]
async fn errors_the_gateway_makes_also_carry_the_request_id() {
    let app = spawn_app().await;
    let response = app.chat(json!({"model": "nope"})).await;
    assert_eq!(response.headers()["x-request-id"].len(), 36);
}

#[actix_web::test]
async fn useful_upstream_headers_come_back() {
    let app = spawn_app().await;
    let response = app.chat(chat_body(false)).await;
    let headers = response.headers();
    assert!(headers.contains_key("apim-request-id"));
    assert!(headers.contains_key("x-ms-region"));
    assert!(headers.contains_key("x-ratelimit-remaining-requests"));
    assert!(headers.contains_key("x-upstream-request-id"));
    assert!(!headers.contains_key("keep-alive"));
}

#[actix_web::test]
async fn deployment_in_a_path_template_is_url_encoded_and_query_strings_kept() {
    let app = spawn_app().await;
    let response = app
        .http
        .post(app.url("/v1/chat/completions?trace=1"))
        .bearer_auth(KEY)
        .json(&json!({"model": "legacy-model", "messages": []}))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    let received = &app.fake.requests()[0];
    assert_eq!(
        received.path,
        "/openai/deployments/legacy%20dep%2F1/chat/completions"
    );
    assert_eq!(
        received.query.as_deref(),
        Some("api-version=2024-10-21&trace=1")
    );
    assert_eq!(received.json()["model"], "legacy dep/1");
}

#[actix_web::test]
async fn client_credentials_in_the_query_are_dropped_and_api_version_is_the_routes_once() {
    let app = spawn_app().await;
    let query =
        "api-key=sk-client&API-VERSION=evil&api-version=1&Subscription-Key=s&code=c&trace=1";
    let response = app
        .post(
            &format!("/v1/chat/completions?{query}"),
            &json!({"model": "legacy-model", "messages": []}),
        )
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    let received = &app.fake.requests()[0];
    assert_eq!(
        received.query.as_deref(),
        Some("api-version=2024-10-21&trace=1")
    );
}

#[actix_web::test]
async fn a_model_path_override_changes_only_the_url() {
    let app = spawn_app_with_config(|config| {
        config["models"].as_array_mut().expect("models").push(
            json!({"id": "to-path", "upstream": "fake", "targetModel": "dep-p",
                "routes": {"chat/completions": "/openai/v1/responses"}}),
        );
    })
    .await;
    let sent = json!({"model": "to-path", "input": "hi"});
    let response = app.chat(sent.clone()).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["object"], "response");
    let received = &app.fake.requests()[0];
    assert_eq!(received.path, "/openai/v1/responses");
    assert_eq!(received.json(), json!({"model": "dep-p", "input": "hi"}));
}
