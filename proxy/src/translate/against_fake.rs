//! The translators against the fake upstream's wire output, as the gateway will run them:
//! translate the request, send it to a deployment that serves only the other API, translate
//! the answer or the stream chunk by chunk as the bytes arrive.

use futures_util::StreamExt;
use serde_json::{Value, json};

use super::stream::{Frame, Frames, StreamTranslator};
use super::{TranslatedRequest, answer, chat_to_responses, responses_to_chat};
use fake_foundry::{CHAT_ONLY_PREFIX, FakeFoundry, RESPONSES_ONLY_PREFIX};

const WEATHER: &str = "{\"city\":\"東京\"}";

fn with_model(translated: &TranslatedRequest, deployment: &str) -> Value {
    let mut body: Value = serde_json::from_slice(&translated.body).expect("json");
    body["model"] = deployment.into();
    body
}

async fn send(fake: &FakeFoundry, path: &str, body: &Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}{path}", fake.base_url()))
        .json(body)
        .send()
        .await
        .expect("send")
}

/// The client's stream: the upstream body translated chunk by chunk as it arrives.
async fn translated_stream(
    response: reqwest::Response,
    mut translator: StreamTranslator,
) -> Vec<u8> {
    assert_eq!(response.status(), 200);
    let mut body = response.bytes_stream();
    let mut out = Vec::new();
    while let Some(chunk) = body.next().await {
        out.extend(translator.feed(&chunk.expect("chunk")));
    }
    assert!(translator.finished());
    out
}

fn events(bytes: &[u8]) -> Vec<(Option<String>, String)> {
    let mut frames = Frames::default();
    let mut events = Vec::new();
    frames.feed(bytes, |frame| {
        if let Frame::Event(e) = frame {
            events.push((
                e.name.map(str::to_owned),
                String::from_utf8(e.data.to_vec()).expect("utf8"),
            ));
        }
    });
    events
}

#[tokio::test]
async fn a_chat_client_reaches_a_responses_only_deployment() {
    let fake = FakeFoundry::start().await;
    let deployment = format!("{RESPONSES_ONLY_PREFIX}gpt-5-codex");
    let client_body = json!({
        "model": "codex",
        "messages": [{"role": "user", "content": "Weather in Tokyo?"}],
        "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}],
        "stream": true,
        "stream_options": {"include_usage": true},
        "fake": {"text": "Checking 東京 👀", "stream_chunks": 7, "piece_bytes": 5,
            "tool_calls": [{"name": "get_weather", "arguments": WEATHER}]},
    });

    // Untranslated, the deployment refuses the chat request.
    let mut direct = client_body.clone();
    direct["model"] = deployment.clone().into();
    let refused = send(&fake, "/openai/v1/chat/completions", &direct).await;
    assert_eq!(refused.status(), 400);

    let translated = chat_to_responses(client_body).expect("translate");
    assert!(translated.include_usage);
    let upstream = send(
        &fake,
        "/openai/v1/responses",
        &with_model(&translated, &deployment),
    )
    .await;
    let out = translated_stream(
        upstream,
        StreamTranslator::responses_to_chat(translated.include_usage),
    )
    .await;

    let events = events(&out);
    assert_eq!(events.last().map(|(_, d)| d.as_str()), Some("[DONE]"));
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|(name, data)| {
            assert!(name.is_none());
            serde_json::from_str(data).expect("chunk")
        })
        .collect();
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, "Checking 東京 👀");
    let arguments: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"].as_str())
        .collect();
    assert_eq!(arguments, WEATHER);
    let finish = &chunks[chunks.len() - 2];
    assert_eq!(finish["choices"][0]["finish_reason"], "tool_calls");
    let usage = &chunks[chunks.len() - 1];
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(
        usage["usage"]["total_tokens"],
        fake_foundry::USAGE_TOTAL_TOKENS
    );
    assert_eq!(chunks[0]["model"], deployment.as_str());

    let whole = chat_to_responses(json!({
        "model": "codex", "messages": [{"role": "user", "content": "hi"}],
    }))
    .expect("translate");
    let upstream = send(
        &fake,
        "/openai/v1/responses",
        &with_model(&whole, &deployment),
    )
    .await;
    let completion: Value = serde_json::from_slice(
        &answer::responses_to_chat_completion(&upstream.bytes().await.expect("body"))
            .expect("answer"),
    )
    .expect("json");
    assert_eq!(completion["object"], "chat.completion");
    assert_eq!(
        completion["choices"][0]["message"]["content"],
        fake_foundry::Behaviour::default().text
    );
    assert_eq!(
        completion["usage"]["prompt_tokens_details"]["cached_tokens"],
        fake_foundry::USAGE_CACHED_TOKENS
    );
}

#[tokio::test]
async fn a_responses_client_reaches_a_chat_only_deployment() {
    let fake = FakeFoundry::start().await;
    let deployment = format!("{CHAT_ONLY_PREFIX}gpt-4o");
    let client_body = json!({
        "model": "gpt-4o",
        "instructions": "Be brief.",
        "input": [{"role": "user", "content": [{"type": "input_text", "text": "Weather?"}]}],
        "tools": [{"type": "function", "name": "get_weather", "parameters": {"type": "object"}}],
        "store": false,
        "stream": true,
        "fake": {"text": "Checking 東京 👀", "stream_chunks": 4, "piece_bytes": 3,
            "tool_calls": [{"name": "get_weather", "arguments": WEATHER}]},
    });
    let mut direct = client_body.clone();
    direct["model"] = deployment.clone().into();
    assert_eq!(
        send(&fake, "/openai/v1/responses", &direct).await.status(),
        400
    );

    let translated = responses_to_chat(client_body).expect("translate");
    let upstream = send(
        &fake,
        "/openai/v1/chat/completions",
        &with_model(&translated, &deployment),
    )
    .await;
    let out = translated_stream(upstream, StreamTranslator::chat_to_responses()).await;

    let events = events(&out);
    let mut text = String::new();
    for (n, (name, data)) in events.iter().enumerate() {
        let data: Value = serde_json::from_str(data).expect("event");
        assert_eq!(name.as_deref(), data["type"].as_str());
        assert_eq!(data["sequence_number"], n as u64);
        if data["type"] == "response.output_text.delta" {
            text.push_str(data["delta"].as_str().expect("delta"));
        }
    }
    assert_eq!(text, "Checking 東京 👀");
    let (name, last) = events.last().expect("events");
    assert_eq!(name.as_deref(), Some("response.completed"));
    let last: Value = serde_json::from_str(last).expect("json");
    let output = &last["response"]["output"];
    assert_eq!(output[0]["content"][0]["text"], "Checking 東京 👀");
    assert_eq!(output[1]["type"], "function_call");
    assert_eq!(output[1]["arguments"], WEATHER);
    assert_eq!(
        last["response"]["usage"]["input_tokens"],
        fake_foundry::USAGE_PROMPT_TOKENS
    );
    // The upstream was asked for the usage chunk the final event needs.
    let sent = fake.requests().last().expect("request").json();
    assert_eq!(sent["stream_options"]["include_usage"], true);
    assert_eq!(sent["messages"][0]["role"], "system");

    let whole = responses_to_chat(json!({"model": "gpt-4o", "input": "hi"})).expect("translate");
    let upstream = send(
        &fake,
        "/openai/v1/chat/completions",
        &with_model(&whole, &deployment),
    )
    .await;
    let response: Value = serde_json::from_slice(
        &answer::chat_completion_to_response(&upstream.bytes().await.expect("body"))
            .expect("answer"),
    )
    .expect("json");
    assert_eq!(response["object"], "response");
    assert_eq!(response["status"], "completed");
    assert_eq!(
        response["output"][0]["content"][0]["text"],
        fake_foundry::Behaviour::default().text
    );
}
