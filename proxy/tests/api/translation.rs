//! Chat ⇄ Responses translation end to end: a chat client of a Responses-only deployment and a
//! Responses client of a chat-only one (the fake refuses the other route, as Azure does).

use serde_json::{Value, json};

use crate::helpers::*;

async fn app() -> TestApp {
    spawn_app_with_config(|config| {
        let models = config["models"].as_array_mut().expect("models");
        models.push(json!({"id": "codex", "upstream": "fake",
            "targetModel": "responses-only-codex", "routes": {"chat/completions": "responses"}}));
        models.push(json!({"id": "llama", "upstream": "fake",
            "targetModel": "chat-only-llama", "routes": {"responses": "chat/completions"}}));
        models.push(json!({"id": "codex-direct", "upstream": "fake",
            "targetModel": "responses-only-codex"}));
    })
    .await
}

fn chat(model: &str, stream: bool) -> Value {
    json!({"model": model, "stream": stream,
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hi"}]})
}

/// The `data:` payloads of an event stream, in order.
fn data_of(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(str::to_string)
        .collect()
}

#[actix_web::test]
async fn the_other_route_is_refused_without_translation() {
    let app = app().await;
    let response = app.chat(chat("codex-direct", false)).await;
    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.expect("json");
    assert_eq!(error["error"]["code"], "OperationNotSupported");
}

#[actix_web::test]
async fn a_chat_client_gets_a_chat_completion_from_a_responses_only_deployment() {
    let app = app().await;
    let response = app.chat(chat("codex", false)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["x-gateway-deployment"],
        "fake/responses-only-codex"
    );
    let answer: Value = response.json().await.expect("json");
    assert_eq!(answer["object"], "chat.completion");
    assert_eq!(answer["choices"][0]["message"]["role"], "assistant");
    assert_eq!(
        answer["choices"][0]["message"]["content"],
        fake_foundry::Behaviour::default().text
    );
    assert_eq!(answer["choices"][0]["finish_reason"], "stop");
    assert!(answer["usage"]["prompt_tokens"].as_u64() > Some(0));

    let sent = &app.fake.requests()[0];
    assert_eq!(sent.path, "/openai/v1/responses");
    let body = sent.json();
    assert_eq!(body["model"], "responses-only-codex");
    assert!(body.get("messages").is_none(), "{body}");
    assert!(
        body["input"].is_array() || body["input"].is_string(),
        "{body}"
    );
    let stats = app
        .wait_for_stats(|s| s["by_model"]["codex"]["succeeded"] == 1)
        .await;
    assert!(stats["by_model"]["codex"]["completion_tokens"].as_u64() > Some(0));
}

#[actix_web::test]
async fn a_chat_stream_is_translated_event_by_event_with_its_usage_chunk() {
    let app = app().await;
    let mut body = chat("codex", true);
    body["stream_options"] = json!({"include_usage": true});
    let response = app.chat(body).await;
    assert_eq!(response.status(), 200);
    let text = response.text().await.expect("stream");
    let data = data_of(&text);
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"), "{text}");
    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).unwrap_or_else(|e| panic!("{e}: {d}")))
        .collect();
    assert!(
        chunks
            .iter()
            .all(|c| c["object"] == "chat.completion.chunk"),
        "{text}"
    );
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let content: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(content, fake_foundry::Behaviour::default().text);
    assert!(
        chunks
            .iter()
            .any(|c| c["choices"][0]["finish_reason"] == "stop")
    );
    let usage = chunks.last().expect("usage chunk");
    assert!(usage["usage"]["total_tokens"].as_u64() > Some(0), "{usage}");
    app.wait_for_stats(|s| s["by_model"]["codex"]["total_tokens"].as_u64() > Some(0))
        .await;
}

#[actix_web::test]
async fn a_function_call_comes_back_as_tool_calls() {
    let app = app().await;
    let mut body = chat("codex", false);
    body["tools"] = json!([{"type": "function", "function": {"name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]);
    body["fake"] =
        json!({"tool_calls": [{"name": "get_weather", "arguments": "{\"city\":\"Oslo\"}"}]});
    let response = app.chat(body).await;
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.expect("json");
    let call = &answer["choices"][0]["message"]["tool_calls"][0];
    assert_eq!(call["type"], "function");
    assert_eq!(call["function"]["name"], "get_weather");
    assert_eq!(call["function"]["arguments"], "{\"city\":\"Oslo\"}");
    assert_eq!(answer["choices"][0]["finish_reason"], "tool_calls");
    let sent = app.fake.requests()[0].json();
    assert_eq!(sent["tools"][0]["name"], "get_weather", "{sent}");
}

#[actix_web::test]
async fn a_responses_client_gets_a_response_from_a_chat_only_deployment() {
    let app = app().await;
    let body = json!({"model": "llama", "input": "Say hi", "instructions": "Be brief."});
    let response = app
        .post("/v1/responses", &body)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.expect("json");
    assert_eq!(answer["object"], "response");
    assert_eq!(answer["status"], "completed");
    let sent = &app.fake.requests()[0];
    assert_eq!(sent.path, "/openai/v1/chat/completions");
    assert_eq!(sent.json()["model"], "chat-only-llama");
    assert_eq!(sent.json()["messages"][0]["content"], "Be brief.");

    let mut body = body;
    body["stream"] = json!(true);
    let response = app
        .post("/v1/responses", &body)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    let text = response.text().await.expect("stream");
    let events: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("event: "))
        .collect();
    assert_eq!(events.first(), Some(&"response.created"), "{text}");
    assert_eq!(events.last(), Some(&"response.completed"), "{text}");
    assert!(events.contains(&"response.output_text.delta"), "{text}");
}

#[actix_web::test]
async fn a_parameter_without_an_equivalent_is_a_400_naming_it() {
    let app = app().await;
    let mut body = chat("codex", false);
    body["n"] = json!(2);
    let (status, error) = error_of(app.chat(body).await).await;
    assert_eq!(status, 400);
    assert_eq!(error["param"], "n");
    assert_eq!(app.fake.request_count(), 0);
}
