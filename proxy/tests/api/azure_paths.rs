//! The paths Azure's SDKs call (`/openai/deployments/{model}/...`, `/openai/v1/...`), embeddings,
//! and one model by id.

use serde_json::{Value, json};

use crate::helpers::*;

async fn post_azure(app: &TestApp, path: &str, body: &Value) -> reqwest::Response {
    app.http
        .post(app.url(path))
        .header("api-key", KEY)
        .json(body)
        .send()
        .await
        .expect("request")
}

#[actix_web::test]
async fn an_azure_client_calls_a_deployment_path_without_model_in_the_body() {
    let app = spawn_app().await;
    let body = json!({"messages": [{"role": "user", "content": "Say hi"}]});
    let response = post_azure(
        &app,
        "/openai/deployments/gpt-5-mini/chat/completions?api-version=2024-10-21",
        &body,
    )
    .await;
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.expect("json");
    assert_eq!(answer["object"], "chat.completion");
    let sent = &app.fake.requests()[0];
    assert_eq!(sent.path, "/openai/v1/chat/completions");
    assert_eq!(
        sent.query, None,
        "the SDK's api-version is not the upstream's"
    );
    assert_eq!(sent.json()["model"], "dep-mini");
    assert_eq!(sent.json()["messages"][0]["content"], "Say hi");
    let stats = app
        .wait_for_stats(|s| s["by_model"]["gpt-5-mini"]["requests"] == 1)
        .await;
    assert_eq!(stats["by_model"]["gpt-5-mini"]["succeeded"], 1);
}

#[actix_web::test]
async fn the_path_names_the_model_even_when_the_body_has_another() {
    let app = spawn_app().await;
    let mut body = chat_body(true);
    body["model"] = json!("something-else");
    let response = post_azure(
        &app,
        "/openai/deployments/gpt-5-mini/chat/completions?api-version=2025-04-01-preview",
        &body,
    )
    .await;
    assert_eq!(response.status(), 200);
    assert!(
        response
            .text()
            .await
            .expect("stream")
            .contains("data: [DONE]")
    );
    assert_eq!(app.fake.requests()[0].json()["model"], "dep-mini");
}

#[actix_web::test]
async fn an_unknown_deployment_or_operation_is_an_openai_shaped_404() {
    let app = spawn_app().await;
    let (status, error) = error_of(
        post_azure(
            &app,
            "/openai/deployments/nope/chat/completions",
            &json!({}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(error["code"], "model_not_found");
    let (status, error) = error_of(
        post_azure(
            &app,
            "/openai/deployments/gpt-5-mini/audio/speech",
            &json!({}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(error["code"], "unknown_url");
    assert_eq!(app.fake.request_count(), 0);
}

#[actix_web::test]
async fn openai_v1_and_the_preview_responses_path_are_served() {
    let app = spawn_app().await;
    let response = app
        .post("/openai/v1/chat/completions", &chat_body(false))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    let mut body = chat_body(false);
    body.as_object_mut().expect("object").remove("messages");
    body["input"] = json!("Say hi");
    let response = post_azure(&app, "/openai/responses?api-version=preview", &body).await;
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.expect("json");
    assert_eq!(answer["object"], "response");
    assert_eq!(app.fake.requests()[1].path, "/openai/v1/responses");
}

#[actix_web::test]
async fn embeddings_pass_through_with_their_usage_counted() {
    let app = spawn_app().await;
    let body = json!({"model": "gpt-5-mini", "input": "The food was delicious"});
    let response = app
        .post("/v1/embeddings", &body)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.expect("json");
    assert_eq!(answer["object"], "list");
    assert!(answer["data"][0]["embedding"].is_array());
    let response = post_azure(
        &app,
        "/openai/deployments/gpt-5-mini/embeddings?api-version=2024-10-21",
        &json!({"input": ["a", "b"]}),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(app.fake.requests()[1].path, "/openai/v1/embeddings");
    let stats = app
        .wait_for_stats(|s| s["by_model"]["gpt-5-mini"]["requests"] == 2)
        .await;
    assert!(stats["by_model"]["gpt-5-mini"]["prompt_tokens"].as_u64() > Some(0));
    let recent = app.ops_json("/requests").await;
    assert_eq!(recent["data"][0]["route"], "embeddings");
}

#[actix_web::test]
async fn one_model_by_id_or_an_openai_shaped_404() {
    let app = spawn_app_with_config(|config| {
        config["apiKeys"][0]["models"] = json!(["gpt-5*"]);
    })
    .await;
    let get = |path: &str| app.http.get(app.url(path)).bearer_auth(KEY).send();
    let response = get("/v1/models/gpt-5-mini").await.expect("request");
    assert_eq!(response.status(), 200);
    let model: Value = response.json().await.expect("json");
    assert_eq!(model["id"], "gpt-5-mini");
    assert_eq!(model["object"], "model");
    let response = get("/openai/v1/models/gpt-5-mini").await.expect("request");
    assert_eq!(response.status(), 200);
    for missing in ["/v1/models/nope", "/v1/models/legacy-model"] {
        let (status, error) = error_of(get(missing).await.expect("request")).await;
        assert_eq!(status, 404, "{missing}");
        assert_eq!(error["code"], "model_not_found");
    }
}
