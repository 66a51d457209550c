//! Whole (non-streaming) successful answers from one API to the other. The upstream's answer
//! must be complete: these read a body, not a stream. Error answers (non-2xx) have the same
//! shape in both APIs and are passed on untranslated.

use serde_json::{Map, Value, json};

use super::error::TranslateError;
use super::wire::{self, Ending, ResponseHead, Tokens};

/// A Responses `response` object as a `chat.completion`. A response that failed (or did not
/// finish) is an error: 502 with the upstream's code and message.
pub fn responses_to_chat_completion(body: &[u8]) -> Result<Vec<u8>, TranslateError> {
    let response = parse(body, "Responses")?;
    let status = response["status"].as_str().unwrap_or("completed");
    match status {
        "completed" | "incomplete" => {}
        "failed" | "cancelled" => {
            let error = &response["error"];
            let code = match &error["code"] {
                Value::String(code) => Some(code.clone()),
                Value::Number(code) => Some(code.to_string()),
                _ => None,
            };
            return Err(TranslateError::upstream(
                code,
                error["message"]
                    .as_str()
                    .unwrap_or("the upstream failed to generate a response"),
            ));
        }
        other => {
            return Err(TranslateError::upstream(
                None,
                format!("the upstream answered with a response that is still '{other}'"),
            ));
        }
    }

    let mut text: Option<String> = None;
    let mut refusal: Option<String> = None;
    let mut tool_calls = Vec::new();
    for item in response["output"].as_array().map_or(&[][..], Vec::as_slice) {
        match item["type"].as_str() {
            Some("message") => {
                for part in item["content"].as_array().map_or(&[][..], Vec::as_slice) {
                    match part["type"].as_str() {
                        Some("output_text") => text
                            .get_or_insert_with(String::new)
                            .push_str(part["text"].as_str().unwrap_or_default()),
                        Some("refusal") => refusal
                            .get_or_insert_with(String::new)
                            .push_str(part["refusal"].as_str().unwrap_or_default()),
                        _ => {}
                    }
                }
            }
            Some("function_call") => tool_calls.push(json!({
                "id": item["call_id"],
                "type": "function",
                "function": { "name": item["name"], "arguments": item["arguments"] },
            })),
            // Reasoning items have no chat form (their token count is in the usage); built-in
            // tool calls cannot occur, built-in tools are refused.
            _ => {}
        }
    }

    let finish_reason = wire::finish_reason(
        status,
        response["incomplete_details"]["reason"].as_str(),
        !tool_calls.is_empty(),
    );
    let mut message = Map::new();
    message.insert("role".into(), "assistant".into());
    message.insert("content".into(), text.map_or(Value::Null, Value::String));
    message.insert("refusal".into(), refusal.map_or(Value::Null, Value::String));
    if !tool_calls.is_empty() {
        message.insert("tool_calls".into(), Value::Array(tool_calls));
    }
    message.insert("annotations".into(), json!([]));

    let mut completion = Map::new();
    completion.insert(
        "id".into(),
        wire::chat_id(response["id"].as_str().unwrap_or_default()).into(),
    );
    completion.insert("object".into(), "chat.completion".into());
    completion.insert("created".into(), response["created_at"].clone());
    completion.insert("model".into(), response["model"].clone());
    completion.insert(
        "choices".into(),
        json!([{
            "index": 0,
            "message": message,
            "logprobs": null,
            "finish_reason": finish_reason,
        }]),
    );
    if let Some(tokens) = Tokens::from_responses(&response["usage"]) {
        completion.insert("usage".into(), json!(tokens.to_chat()));
    }
    if let Some(tier) = response.get("service_tier").filter(|v| !v.is_null()) {
        completion.insert("service_tier".into(), tier.clone());
    }
    Ok(to_vec(&completion))
}

/// A `chat.completion` as a Responses `response` object: the message as a `message` item,
/// each tool call as a `function_call` item.
pub fn chat_completion_to_response(body: &[u8]) -> Result<Vec<u8>, TranslateError> {
    let completion = parse(body, "chat completion")?;
    let chat_id = completion["id"].as_str().unwrap_or_default();
    let choice = &completion["choices"][0];
    let ending = Ending::from_finish_reason(choice["finish_reason"].as_str());
    let message = &choice["message"];

    let mut output = Vec::new();
    let mut content = Vec::new();
    if let Some(text) = message["content"].as_str().filter(|t| !t.is_empty()) {
        content.push(output_text_part(text));
    }
    if let Some(refusal) = message["refusal"].as_str() {
        content.push(json!({ "type": "refusal", "refusal": refusal }));
    }
    if !content.is_empty() {
        output.push(message_item(
            &wire::message_item_id(chat_id),
            ending.item_status(),
            content,
        ));
    }
    for call in message["tool_calls"]
        .as_array()
        .map_or(&[][..], Vec::as_slice)
    {
        let call_id = call["id"].as_str().unwrap_or_default();
        output.push(function_call_item(
            &wire::function_item_id(call_id),
            call_id,
            &call["function"]["name"],
            call["function"]["arguments"].as_str().unwrap_or_default(),
        ));
    }

    let head = ResponseHead {
        id: &wire::response_id(chat_id),
        created_at: completion["created"].as_u64().unwrap_or(0),
        model: &completion["model"],
    };
    let mut response = head.object(
        ending.status(),
        ending.incomplete_details(),
        Value::Null,
        output,
        Tokens::from_chat(&completion["usage"]).map(Tokens::to_responses),
    );
    if let (Some(tier), Value::Object(map)) = (
        completion.get("service_tier").filter(|v| !v.is_null()),
        &mut response,
    ) {
        map.insert("service_tier".into(), tier.clone());
    }
    Ok(to_vec(&response))
}

fn parse(body: &[u8], api: &str) -> Result<Value, TranslateError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(value @ Value::Object(_)) => Ok(value),
        _ => Err(TranslateError::upstream(
            None,
            format!("the upstream's answer is not a {api} object"),
        )),
    }
}

fn to_vec(value: &impl serde::Serialize) -> Vec<u8> {
    // JSON values always serialise.
    serde_json::to_vec(value).unwrap_or_default()
}

pub(crate) fn output_text_part(text: &str) -> Value {
    json!({ "type": "output_text", "text": text, "annotations": [], "logprobs": [] })
}

pub(crate) fn message_item(id: &str, status: &str, content: Vec<Value>) -> Value {
    json!({
        "id": id,
        "type": "message",
        "status": status,
        "role": "assistant",
        "content": content,
    })
}

pub(crate) fn function_call_item(id: &str, call_id: &str, name: &Value, arguments: &str) -> Value {
    json!({
        "id": id,
        "type": "function_call",
        "status": "completed",
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
    })
}
