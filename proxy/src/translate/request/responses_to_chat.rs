//! A Responses request as a chat completions request: `instructions` and `input` become
//! `messages` (function calls join the assistant message before them), tools and `text.format`
//! change shape. The gateway is stateless: anything that refers to a stored response or
//! conversation is refused.

use serde_json::{Map, Value, json};

use super::{
    Members, TranslatedRequest, expected, is_false, is_zero, object, require_string_in, serialize,
    take_string_in,
};
use crate::translate::error::TranslateError;

/// The `include` values a chat answer satisfies (it has no reasoning items to include).
const INCLUDABLE: [&str; 1] = ["reasoning.encrypted_content"];

/// Translates a Responses request body into a chat completions request body.
pub fn responses_to_chat(body: Value) -> Result<TranslatedRequest, TranslateError> {
    let mut members = Members::from_body(body)?;
    refuse_what_chat_lacks(&mut members)?;
    let mut out = Map::new();
    members.carry("model", &mut out);

    let mut messages = Vec::new();
    if let Some(instructions) = members.take("instructions") {
        let content = match instructions {
            Value::String(text) => Value::String(text),
            _ => return Err(expected("instructions", "a string")),
        };
        messages.push(json!({ "role": "system", "content": content }));
    }
    match members.take("input") {
        Some(Value::String(text)) => messages.push(json!({ "role": "user", "content": text })),
        Some(Value::Array(items)) => input_items(items, &mut messages)?,
        Some(_) => return Err(expected("input", "a string or an array of input items")),
        None => return Err(TranslateError::missing("input")),
    }
    out.insert("messages".into(), Value::Array(messages));

    let stream = members.take_bool("stream")?.unwrap_or(false);
    // Responses streams take no options chat has (`include_obfuscation` has no chat meaning).
    members.take("stream_options");
    if stream {
        out.insert("stream".into(), true.into());
        // The final usage chunk fills `response.completed`'s usage.
        out.insert("stream_options".into(), json!({ "include_usage": true }));
    }

    if let Some(tools) = members.take_array("tools")? {
        out.insert("tools".into(), Value::Array(translate_tools(tools)?));
    }
    if let Some(choice) = members.take("tool_choice") {
        out.insert("tool_choice".into(), tool_choice(choice)?);
    }
    members.carry("parallel_tool_calls", &mut out);

    if let Some(mut text) = members.take_object("text")? {
        if let Some(format) = text.remove("format").filter(|v| !v.is_null()) {
            out.insert(
                "response_format".into(),
                response_format(object(format, "text.format")?)?,
            );
        }
        if let Some(verbosity) = text.remove("verbosity").filter(|v| !v.is_null()) {
            out.insert("verbosity".into(), verbosity);
        }
        if let Some(other) = text.keys().next() {
            return Err(TranslateError::unsupported(
                format!("text.{other}"),
                format!("'text.{other}' is not supported for this model"),
            ));
        }
    }
    if let Some(limit) = members.take("max_output_tokens") {
        out.insert("max_completion_tokens".into(), limit);
    }
    if let Some(mut reasoning) = members.take_object("reasoning")? {
        if let Some(effort) = reasoning.remove("effort").filter(|v| !v.is_null()) {
            out.insert("reasoning_effort".into(), effort);
        }
        // `summary` (and its older name) asks for reasoning summaries a chat answer does not
        // have: accepted, and the answer simply carries none.
        reasoning.remove("summary");
        reasoning.remove("generate_summary");
        if let Some((other, _)) = reasoning.iter().find(|(_, v)| !v.is_null()) {
            return Err(TranslateError::unsupported(
                format!("reasoning.{other}"),
                format!("'reasoning.{other}' is not supported for this model"),
            ));
        }
    }
    for same in [
        "temperature",
        "top_p",
        "user",
        "metadata",
        "store",
        "service_tier",
        "prompt_cache_key",
        "safety_identifier",
    ] {
        members.carry(same, &mut out);
    }
    members.carry_rest(&mut out);
    Ok(TranslatedRequest {
        body: serialize(out),
        stream,
        include_usage: false,
    })
}

fn refuse_what_chat_lacks(members: &mut Members) -> Result<(), TranslateError> {
    const STATELESS: &str = "the gateway is stateless: send the whole conversation in 'input'";
    members.refuse_unless("previous_response_id", |_| false, STATELESS)?;
    members.refuse_unless("conversation", |_| false, STATELESS)?;
    members.refuse_unless(
        "background",
        is_false,
        "background responses need a stored response",
    )?;
    members.refuse_unless("prompt", |_| false, "stored prompts are not available")?;
    members.refuse_unless(
        "max_tool_calls",
        |_| false,
        "chat completions have no limit on tool calls",
    )?;
    members.refuse_unless("top_logprobs", is_zero, "logprobs are not translated")?;
    members.refuse_unless(
        "truncation",
        |v| v.as_str() == Some("disabled"),
        "chat completions do not truncate the input",
    )?;
    if let Some(include) = members.take_array("include")? {
        for (i, value) in include.iter().enumerate() {
            if !value.as_str().is_some_and(|v| INCLUDABLE.contains(&v)) {
                return Err(TranslateError::unsupported(
                    format!("include[{i}]"),
                    format!("'include' value {value} is not supported for this model"),
                ));
            }
        }
    }
    Ok(())
}

fn input_items(items: Vec<Value>, messages: &mut Vec<Value>) -> Result<(), TranslateError> {
    for (i, item) in items.into_iter().enumerate() {
        let path = format!("input[{i}]");
        let mut item = object(item, &path)?;
        let kind = match take_string_in(&mut item, "type", &path)? {
            Some(kind) => kind,
            None if item.contains_key("role") => "message".into(),
            None => return Err(TranslateError::missing(format!("{path}.type"))),
        };
        match kind.as_str() {
            "message" => messages.push(message(item, &path)?),
            "function_call" => function_call(item, &path, messages)?,
            "function_call_output" => {
                let call_id = require_string_in(&mut item, "call_id", &path)?;
                let content = tool_content(item.remove("output"), &format!("{path}.output"))?;
                messages
                    .push(json!({ "role": "tool", "tool_call_id": call_id, "content": content }));
            }
            // Earlier reasoning is the model's own state; a chat model cannot take it back.
            "reasoning" => {}
            "item_reference" => {
                return Err(TranslateError::unsupported(
                    format!("{path}.type"),
                    format!(
                        "'{path}' refers to a stored item: the gateway is stateless, send the item itself"
                    ),
                ));
            }
            other => {
                return Err(TranslateError::unsupported(
                    format!("{path}.type"),
                    format!(
                        "input items of type '{other}' are not supported for this model: only messages, function calls and their outputs are translated"
                    ),
                ));
            }
        }
    }
    Ok(())
}

fn message(mut item: Map<String, Value>, path: &str) -> Result<Value, TranslateError> {
    let role = require_string_in(&mut item, "role", path)?;
    let content_path = format!("{path}.content");
    let content = item
        .remove("content")
        .ok_or_else(|| TranslateError::missing(&content_path))?;
    match role.as_str() {
        "user" | "system" | "developer" => {
            let content = match content {
                Value::String(_) => content,
                Value::Array(parts) => Value::Array(input_parts(parts, &content_path)?),
                _ => return Err(expected(&content_path, "a string or an array of parts")),
            };
            Ok(json!({ "role": role, "content": content }))
        }
        "assistant" => {
            let (text, refusal) = match content {
                Value::String(text) => (text, None),
                Value::Array(parts) => assistant_parts(parts, &content_path)?,
                _ => return Err(expected(&content_path, "a string or an array of parts")),
            };
            let mut message = Map::new();
            message.insert("role".into(), "assistant".into());
            message.insert("content".into(), text.into());
            if let Some(refusal) = refusal {
                message.insert("refusal".into(), refusal.into());
            }
            Ok(Value::Object(message))
        }
        other => Err(TranslateError::invalid(
            format!("{path}.role"),
            format!("invalid value for '{path}.role': '{other}'"),
        )),
    }
}

fn input_parts(parts: Vec<Value>, path: &str) -> Result<Vec<Value>, TranslateError> {
    let mut out = Vec::with_capacity(parts.len());
    for (j, part) in parts.into_iter().enumerate() {
        let path = format!("{path}[{j}]");
        let mut part = object(part, &path)?;
        let kind = require_string_in(&mut part, "type", &path)?;
        let translated = match kind.as_str() {
            "input_text" | "output_text" => {
                json!({ "type": "text", "text": require_string_in(&mut part, "text", &path)? })
            }
            "input_image" => {
                let Some(url) = take_string_in(&mut part, "image_url", &path)? else {
                    return Err(TranslateError::unsupported(
                        format!("{path}.file_id"),
                        format!(
                            "'{path}' has no 'image_url': images by file id are not supported for this model"
                        ),
                    ));
                };
                let mut image = Map::new();
                image.insert("url".into(), url.into());
                if let Some(detail) = take_string_in(&mut part, "detail", &path)? {
                    image.insert("detail".into(), detail.into());
                }
                json!({ "type": "image_url", "image_url": image })
            }
            "input_file" => {
                let mut file = Map::new();
                for (key, value) in part {
                    match key.as_str() {
                        "file_data" | "file_id" | "filename" => {
                            if !value.is_null() {
                                file.insert(key, value);
                            }
                        }
                        _ if value.is_null() => {}
                        other => {
                            return Err(TranslateError::unsupported(
                                format!("{path}.{other}"),
                                format!("'{path}.{other}' is not supported for this model"),
                            ));
                        }
                    }
                }
                json!({ "type": "file", "file": file })
            }
            other => {
                return Err(TranslateError::unsupported(
                    format!("{path}.type"),
                    format!("content parts of type '{other}' are not supported for this model"),
                ));
            }
        };
        out.push(translated);
    }
    Ok(out)
}

/// An assistant message's parts: its text joined, and its refusal.
fn assistant_parts(
    parts: Vec<Value>,
    path: &str,
) -> Result<(String, Option<String>), TranslateError> {
    let mut text = String::new();
    let mut refusal: Option<String> = None;
    for (j, part) in parts.into_iter().enumerate() {
        let path = format!("{path}[{j}]");
        let mut part = object(part, &path)?;
        let kind = require_string_in(&mut part, "type", &path)?;
        match kind.as_str() {
            "output_text" | "input_text" => {
                text.push_str(&require_string_in(&mut part, "text", &path)?);
            }
            "refusal" => {
                let more = require_string_in(&mut part, "refusal", &path)?;
                refusal.get_or_insert_with(String::new).push_str(&more);
            }
            other => {
                return Err(TranslateError::unsupported(
                    format!("{path}.type"),
                    format!(
                        "assistant content parts of type '{other}' are not supported for this model"
                    ),
                ));
            }
        }
    }
    Ok((text, refusal))
}

/// A `function_call` item as a tool call of the assistant message just before it, or of a
/// new assistant message.
fn function_call(
    mut item: Map<String, Value>,
    path: &str,
    messages: &mut Vec<Value>,
) -> Result<(), TranslateError> {
    let call_id = require_string_in(&mut item, "call_id", path)?;
    let name = require_string_in(&mut item, "name", path)?;
    let arguments = take_string_in(&mut item, "arguments", path)?.unwrap_or_default();
    let call = json!({
        "id": call_id,
        "type": "function",
        "function": { "name": name, "arguments": arguments },
    });
    let last_is_assistant = messages
        .last()
        .is_some_and(|m| m.get("role").and_then(Value::as_str) == Some("assistant"));
    if !last_is_assistant {
        messages.push(json!({ "role": "assistant", "content": null }));
    }
    if let Some(Value::Object(message)) = messages.last_mut() {
        match message.get_mut("tool_calls") {
            Some(Value::Array(calls)) => calls.push(call),
            _ => {
                message.insert("tool_calls".into(), Value::Array(vec![call]));
            }
        }
    }
    Ok(())
}

/// A function call's output as a tool message's content: a string, or its text parts.
fn tool_content(output: Option<Value>, path: &str) -> Result<Value, TranslateError> {
    match output {
        None | Some(Value::Null) => Ok(Value::String(String::new())),
        Some(Value::String(text)) => Ok(Value::String(text)),
        Some(Value::Array(parts)) => {
            let mut out = Vec::with_capacity(parts.len());
            for (j, part) in parts.into_iter().enumerate() {
                let path = format!("{path}[{j}]");
                let mut part = object(part, &path)?;
                let kind = require_string_in(&mut part, "type", &path)?;
                if kind != "input_text" && kind != "output_text" {
                    return Err(TranslateError::unsupported(
                        format!("{path}.type"),
                        format!(
                            "function call outputs with '{kind}' parts are not supported for this model: chat tool messages hold text only"
                        ),
                    ));
                }
                let text = require_string_in(&mut part, "text", &path)?;
                out.push(json!({ "type": "text", "text": text }));
            }
            Ok(Value::Array(out))
        }
        Some(_) => Err(expected(path, "a string or an array of parts")),
    }
}

fn translate_tools(tools: Vec<Value>) -> Result<Vec<Value>, TranslateError> {
    let mut out = Vec::with_capacity(tools.len());
    for (i, tool) in tools.into_iter().enumerate() {
        let path = format!("tools[{i}]");
        let mut tool = object(tool, &path)?;
        let kind = require_string_in(&mut tool, "type", &path)?;
        if kind != "function" {
            return Err(TranslateError::unsupported(
                format!("{path}.type"),
                format!(
                    "tool type '{kind}' is not supported for this model: only function tools are translated to chat completions"
                ),
            ));
        }
        tool.retain(|_, v| !v.is_null());
        if !tool.contains_key("name") {
            return Err(TranslateError::missing(format!("{path}.name")));
        }
        out.push(json!({ "type": "function", "function": tool }));
    }
    Ok(out)
}

fn tool_choice(choice: Value) -> Result<Value, TranslateError> {
    match choice {
        Value::String(_) => Ok(choice),
        Value::Object(mut choice) => {
            let kind = require_string_in(&mut choice, "type", "tool_choice")?;
            if kind != "function" {
                return Err(TranslateError::unsupported(
                    "tool_choice.type",
                    format!(
                        "tool_choice type '{kind}' is not supported for this model: only 'none', 'auto', 'required' and a function are translated"
                    ),
                ));
            }
            let name = require_string_in(&mut choice, "name", "tool_choice")?;
            Ok(json!({ "type": "function", "function": { "name": name } }))
        }
        _ => Err(expected("tool_choice", "a string or an object")),
    }
}

/// `text.format` as `response_format`: a schema's members move down into `json_schema`.
fn response_format(mut format: Map<String, Value>) -> Result<Value, TranslateError> {
    let kind = require_string_in(&mut format, "type", "text.format")?;
    match kind.as_str() {
        "text" | "json_object" => Ok(json!({ "type": kind })),
        "json_schema" => {
            format.retain(|_, v| !v.is_null());
            Ok(json!({ "type": "json_schema", "json_schema": format }))
        }
        other => Err(TranslateError::invalid(
            "text.format.type",
            format!("invalid value for 'text.format.type': '{other}'"),
        )),
    }
}
