use serde_json::{Value, json};

use crate::helpers::*;

#[actix_web::test]
async fn healthz_answers_without_a_key_and_reveals_nothing() {
    let app = spawn_app().await;
    let response = app
        .http
        .get(app.url("/healthz"))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body, json!({"status": "ok"}));
}

#[actix_web::test]
async fn models_lists_configured_ids_in_openai_list_shape() {
    let app = spawn_app().await;
    let response = app
        .http
        .get(app.url("/v1/models"))
        .bearer_auth(KEY)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["object"], "list");
    let ids: Vec<&str> = body["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|m| m["id"].as_str().expect("id"))
        .collect();
    assert_eq!(
        ids,
        vec![
            "gpt-5-mini",
            "gpt-image-1",
            "legacy-model",
            "via-responses",
            "unset"
        ]
    );
    assert_eq!(body["data"][0]["object"], "model");
    assert!(body["data"][0]["created"].is_u64());
}

#[actix_web::test]
async fn models_needs_a_key() {
    let app = spawn_app().await;
    let response = app
        .http
        .get(app.url("/v1/models"))
        .send()
        .await
        .expect("request");
    assert_eq!(error_of(response).await.0, 401);
}

#[actix_web::test]
async fn unknown_path_is_an_openai_shaped_404() {
    let app = spawn_app().await;
    let response = app
        .http
        .post(app.url("/v1/audio/speech"))
        .bearer_auth(KEY)
        .send()
        .await
        .expect("request");
    let (status, error) = error_of(response).await;
    assert_eq!(status, 404);
    assert_eq!(error["code"], "unknown_url");
}

#[actix_web::test]
async fn missing_model_is_400_and_never_a_default() {
    let app = spawn_app().await;
    let (status, error) = error_of(app.chat(json!({"messages": []})).await).await;
    assert_eq!(status, 400);
    assert_eq!(error["param"], "model");
    assert_eq!(app.fake.request_count(), 0);
}

#[actix_web::test]
async fn unknown_model_is_404_model_not_found() {
    let app = spawn_app().await;
    let (status, error) = error_of(app.chat(json!({"model": "gpt-9"})).await).await;
    assert_eq!(status, 404);
    assert_eq!(error["code"], "model_not_found");
    assert!(
        error["message"]
            .as_str()
            .expect("message")
            .contains("gpt-9")
    );
}

#[actix_web::test]
async fn malformed_json_is_400_saying_where() {
    let app = spawn_app().await;
    let response = app
        .http
        .post(app.url("/v1/chat/completions"))
        .bearer_auth(KEY)
        .header("content-type", "application/json")
        .body("{\"model\": \"gpt-5-mini\",\n \"messages\": [}")
        .send()
        .await
        .expect("request");
    let (status, error) = error_of(response).await;
    assert_eq!(status, 400);
    assert_eq!(error["code"], "invalid_json");
    assert!(
        error["message"]
            .as_str()
            .expect("message")
            .contains("line 2"),
        "{error}"
    );
}

#[actix_web::test]
async fn a_body_with_model_or_stream_twice_is_400_and_never_forwarded() {
    let app = spawn_app().await;
    for (body, param) in [
        (
            r#"{"model":"gpt-image-1","model":"gpt-5-mini","messages":[]}"#,
            "model",
        ),
        (
            r#"{"model":"gpt-5-mini","stream":false,"messages":[],"stream":true}"#,
            "stream",
        ),
    ] {
        let response = app
            .http
            .post(app.url("/v1/chat/completions"))
            .bearer_auth(KEY)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("request");
        let (status, error) = error_of(response).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(error["code"], "duplicate_parameter");
        assert_eq!(error["param"], param);
        assert_eq!(error["type"], "invalid_request_error");
    }
    assert_eq!(app.fake.request_count(), 0);
}

#[actix_web::test]
async fn body_over_the_limit_is_413_while_reading() {
    let app = spawn_app_with(Default::default(), |_| {}, &[("BODY_LIMIT", "4096")]).await;
    let big = json!({"model": "gpt-5-mini", "messages": [{"role": "user", "content": "x".repeat(10_000)}]});
    let (status, error) = error_of(app.chat(big.clone()).await).await;
    assert_eq!(status, 413);
    assert_eq!(error["code"], "request_too_large");

    // Without a Content-Length (chunked upload) the limit applies while reading.
    let bytes = serde_json::to_vec(&big).expect("json");
    let stream = futures_util::stream::iter(
        bytes
            .chunks(1000)
            .map(|c| Ok::<_, std::io::Error>(c.to_vec()))
            .collect::<Vec<_>>(),
    );
    let response = app
        .http
        .post(app.url("/v1/chat/completions"))
        .bearer_auth(KEY)
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .expect("request");
    assert_eq!(error_of(response).await.0, 413);
    assert_eq!(app.fake.request_count(), 0);
}

#[actix_web::test]
async fn placeholder_upstream_answers_503_naming_the_field() {
    let app = spawn_app().await;
    let (status, error) = error_of(app.chat(json!({"model": "unset"})).await).await;
    assert_eq!(status, 503);
    assert_eq!(error["code"], "upstream_not_configured");
    assert!(
        error["message"]
            .as_str()
            .expect("message")
            .contains("upstreams[2].baseUrl")
    );
}

#[actix_web::test]
async fn images_generations_pass_through_with_usage() {
    let app = spawn_app().await;
    let response = app
        .post(
            "/v1/images/generations",
            &json!({"model": "gpt-image-1", "prompt": "a cat", "n": 2}),
        )
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["data"].as_array().expect("data").len(), 2);
    assert!(body["data"][0]["b64_json"].is_string());
    let received = &app.fake.requests()[0];
    assert_eq!(received.path, "/openai/v1/images/generations");
    assert_eq!(received.json()["model"], "dep-image");
    app.wait_for_stats(|s| s["by_model"]["gpt-image-1"]["total_tokens"].as_u64() > Some(0))
        .await;
}

#[actix_web::test]
async fn responses_non_streaming_passes_through() {
    let app = spawn_app().await;
    let response = app
        .post(
            "/v1/responses",
            &json!({"model": "gpt-5-mini", "input": "hi"}),
        )
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["object"], "response");
    assert_eq!(app.fake.requests()[0].path, "/openai/v1/responses");
}
