//! The official OpenAI clients against the gateway: each test starts a gateway in front of the
//! fake upstream, runs one group of client cases (python/test_conformance.py, node/conformance.mjs)
//! and then checks what reached the fake.

use sdk_tests::{Client, Gateway, run};
use serde_json::Value;

const RESPONSES_PATH: &str = "/openai/v1/responses";
const CHAT_PATH: &str = "/openai/v1/chat/completions";

#[actix_rt::test]
async fn python_chat_client_on_a_responses_only_model() {
    if !Client::Python.available() {
        return;
    }
    let gateway = Gateway::start().await;
    run(&gateway, Client::Python, &["ChatOnResponsesOnlyModel"]).await;

    assert!(gateway.bodies_sent_to(CHAT_PATH).is_empty());
    let sent = gateway.bodies_sent_to(RESPONSES_PATH);
    assert!(sent.iter().all(|b| b["model"] == "responses-only-codex"));
    let format = sent
        .iter()
        .filter_map(|b| b.pointer("/text/format"))
        .find(|format| format["name"] == "weather")
        .unwrap_or_else(|| panic!("no request with the weather text.format: {sent:#?}"));
    assert_eq!(format["type"], "json_schema", "{format}");
    assert_eq!(format["strict"], true, "{format}");
    assert_eq!(format["schema"]["required"][0], "temperature_c", "{format}");

    let image = input_parts(&sent)
        .find(|part| part["type"] == "input_image")
        .unwrap_or_else(|| panic!("no input_image: {sent:#?}"));
    assert!(
        image["image_url"]
            .as_str()
            .is_some_and(|url| url.starts_with("data:image/")),
        "{image}"
    );
    assert_eq!(image["detail"], "low");

    let output = input_items(&sent)
        .find(|item| item["type"] == "function_call_output")
        .unwrap_or_else(|| panic!("no function_call_output: {sent:#?}"));
    let call = input_items(&sent)
        .find(|item| item["type"] == "function_call")
        .unwrap_or_else(|| panic!("the assistant's call did not go back: {sent:#?}"));
    assert_eq!(output["call_id"], call["call_id"]);
    assert_eq!(output["output"], "{\"temperature_c\": 12}");
    gateway.stop().await;
}

#[actix_rt::test]
async fn python_responses_client_on_a_chat_only_model() {
    if !Client::Python.available() {
        return;
    }
    let gateway = Gateway::start().await;
    run(&gateway, Client::Python, &["ResponsesOnChatOnlyModel"]).await;

    assert!(gateway.bodies_sent_to(RESPONSES_PATH).is_empty());
    let sent = gateway.bodies_sent_to(CHAT_PATH);
    assert!(sent.iter().all(|b| b["model"] == "chat-only-llama"));
    let tool_message = sent
        .iter()
        .flat_map(|b| b["messages"].as_array().into_iter().flatten())
        .find(|m| m["role"] == "tool")
        .unwrap_or_else(|| panic!("no tool message: {sent:#?}"));
    assert_eq!(tool_message["content"], "{\"temperature_c\": 12}");
    let format = sent
        .iter()
        .find_map(|b| b.get("response_format"))
        .unwrap_or_else(|| panic!("no request with response_format: {sent:#?}"));
    assert_eq!(format["type"], "json_schema", "{format}");
    assert_eq!(format["json_schema"]["name"], "Weather", "{format}");
    assert_eq!(
        format["json_schema"]["schema"]["required"][0], "temperature_c",
        "{format}"
    );
    gateway.stop().await;
}

#[actix_rt::test]
async fn python_embeddings_and_models() {
    if !Client::Python.available() {
        return;
    }
    let gateway = Gateway::start().await;
    run(&gateway, Client::Python, &["EmbeddingsAndModels"]).await;
    let sent = gateway.bodies_sent_to("/openai/v1/embeddings");
    assert_eq!(sent.len(), 2, "{sent:#?}");
    assert!(sent.iter().all(|b| b["model"] == "dep-embed"));
    gateway.stop().await;
}

#[actix_rt::test]
async fn python_azure_client() {
    if !Client::Python.available() {
        return;
    }
    let gateway = Gateway::start().await;
    run(&gateway, Client::Python, &["AzureClient"]).await;
    let requests = gateway.fake.requests();
    let paths: Vec<&str> = requests.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(
        paths.iter().filter(|p| **p == RESPONSES_PATH).count(),
        2,
        "{paths:?}"
    );
    assert_eq!(
        paths.iter().filter(|p| **p == CHAT_PATH).count(),
        1,
        "{paths:?}"
    );
    assert!(paths.contains(&"/openai/v1/embeddings"), "{paths:?}");
    gateway.stop().await;
}

#[actix_rt::test]
async fn python_errors() {
    if !Client::Python.available() {
        return;
    }
    let gateway = Gateway::start().await;
    run(&gateway, Client::Python, &["Errors"]).await;
    assert_eq!(gateway.fake.request_count(), 0, "no error reached the fake");
    gateway.stop().await;
}

#[actix_rt::test]
async fn node_streams_through_both_translations() {
    if !Client::Node.available() {
        return;
    }
    let gateway = Gateway::start().await;
    run(
        &gateway,
        Client::Node,
        &[
            "chat-stream",
            "chat-tool-call-helper",
            "azure-chat-stream",
            "responses-stream",
            "responses-helper",
        ],
    )
    .await;
    let requests = gateway.fake.requests();
    assert!(requests.iter().all(|r| {
        let model = r.json()["model"].clone();
        (r.path == RESPONSES_PATH && model == "responses-only-codex")
            || (r.path == CHAT_PATH && model == "chat-only-llama")
    }));
    assert_eq!(
        requests.len(),
        5,
        "{:?}",
        requests.iter().map(|r| &r.path).collect::<Vec<_>>()
    );
    gateway.stop().await;
}

/// The Responses input items of `bodies`.
fn input_items(bodies: &[Value]) -> impl Iterator<Item = &Value> {
    bodies
        .iter()
        .flat_map(|b| b["input"].as_array().into_iter().flatten())
}

/// The content parts of the Responses input items of `bodies`.
fn input_parts(bodies: &[Value]) -> impl Iterator<Item = &Value> {
    input_items(bodies).flat_map(|item| item["content"].as_array().into_iter().flatten())
}
