//! A chat completions request as a Responses request: `messages` become `input` items (in
//! order, system and developer messages included with their role), tools and output formats
//! change shape, token limits and reasoning effort change names.

use serde_json::{Map, Value, json};

use super::{
    Members, TranslatedRequest, array, expected, is_empty, is_false, is_zero, object,
    require_string_in, serialize, take_string_in,
};
use crate::translate::error::TranslateError;

/// Translates a chat completions request body into a Responses request body.
pub fn chat_to_responses(body: Value) -> Result<TranslatedRequest, TranslateError> {
    let mut members = Members::from_body(body)?;
    refuse_what_responses_lacks(&mut members)?;
    let mut out = Map::new();
    members.carry("model", &mut out);

    let messages = members
        .take_array("messages")?
        .ok_or_else(|| TranslateError::missing("messages"))?;
    out.insert("input".into(), Value::Array(input(messages)?));

    let stream = members.take_bool("stream")?.unwrap_or(false);
    if stream {
        out.insert("stream".into(), true.into());
    }
    let include_usage = match members.take_object("stream_options")? {
        Some(mut options) => match options.remove("include_usage") {
            None | Some(Value::Null) => false,
            Some(value) => super::boolean(value, "stream_options.include_usage")?,
        },
        None => false,
    };

    if let Some(tools) = members.take_array("tools")? {
        out.insert("tools".into(), Value::Array(translate_tools(tools)?));
    }
    if let Some(choice) = members.take("tool_choice") {
        out.insert("tool_choice".into(), tool_choice(choice)?);
    }
    members.carry("parallel_tool_calls", &mut out);

    let mut text = Map::new();
    if let Some(format) = members.take_object("response_format")? {
        text.insert("format".into(), text_format(format)?);
    }
    if let Some(verbosity) = members.take("verbosity") {
        text.insert("verbosity".into(), verbosity);
    }
    if !text.is_empty() {
        out.insert("text".into(), Value::Object(text));
    }

    let max_tokens = members.take("max_tokens");
    if let Some(limit) = members.take("max_completion_tokens").or(max_tokens) {
        out.insert("max_output_tokens".into(), limit);
    }
    if let Some(effort) = members.take("reasoning_effort") {
        out.insert("reasoning".into(), json!({ "effort": effort }));
    }
    // Chat completions are not stored unless asked; Responses are stored unless told not to.
    let store = members.take_bool("store")?.unwrap_or(false);
    out.insert("store".into(), store.into());
    for same in [
        "temperature",
        "top_p",
        "user",
        "metadata",
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
        include_usage: stream && include_usage,
    })
}

fn refuse_what_responses_lacks(members: &mut Members) -> Result<(), TranslateError> {
    members.refuse_unless(
        "n",
        |v| v.as_u64() == Some(1),
        "the model answers through the Responses API, which returns one choice",
    )?;
    members.refuse_unless(
        "logprobs",
        is_false,
        "the Responses API returns no logprobs here",
    )?;
    members.refuse_unless(
        "top_logprobs",
        is_zero,
        "the Responses API returns no logprobs here",
    )?;
    members.refuse_unless(
        "logit_bias",
        is_empty,
        "the Responses API has no logit bias",
    )?;
    members.refuse_unless("audio", |_| false, "the Responses API has no audio output")?;
    members.refuse_unless(
        "modalities",
        |v| v == &json!(["text"]),
        "the Responses API answers with text only",
    )?;
    members.refuse_unless(
        "presence_penalty",
        is_zero,
        "the Responses API has no presence penalty",
    )?;
    members.refuse_unless(
        "frequency_penalty",
        is_zero,
        "the Responses API has no frequency penalty",
    )?;
    members.refuse_unless("seed", |_| false, "the Responses API has no seed")?;
    members.refuse_unless("stop", is_empty, "the Responses API has no stop sequences")?;
    members.refuse_unless(
        "prediction",
        |_| false,
        "the Responses API has no predicted outputs",
    )?;
    members.refuse_unless(
        "web_search_options",
        |_| false,
        "built-in tools are not available through the gateway's translation",
    )?;
    members.refuse_unless("functions", |_| false, "send 'tools' instead")?;
    members.refuse_unless("function_call", |_| false, "send 'tool_choice' instead")?;
    Ok(())
}

fn input(messages: Vec<Value>) -> Result<Vec<Value>, TranslateError> {
    let mut items = Vec::with_capacity(messages.len());
    for (i, message) in messages.into_iter().enumerate() {
        let path = format!("messages[{i}]");
        let mut message = object(message, &path)?;
        let role = require_string_in(&mut message, "role", &path)?;
        if role == "function" {
            return Err(TranslateError::unsupported(
                format!("{path}.role"),
                "messages with role 'function' are not supported for this model: send tool calls and 'tool' messages",
            ));
        }
        for absent in ["name", "audio", "function_call"] {
            if message.get(absent).is_some_and(|v| !v.is_null()) {
                return Err(TranslateError::unsupported(
                    format!("{path}.{absent}"),
                    format!(
                        "'{path}.{absent}' is not supported for this model: the Responses API has no equivalent"
                    ),
                ));
            }
        }
        match role.as_str() {
            "system" | "developer" | "user" => {
                let content = message
                    .remove("content")
                    .ok_or_else(|| TranslateError::missing(format!("{path}.content")))?;
                let content = input_content(content, &format!("{path}.content"))?;
                items.push(json!({ "type": "message", "role": role, "content": content }));
            }
            "assistant" => assistant(message, &path, &mut items)?,
            "tool" => {
                let call_id = require_string_in(&mut message, "tool_call_id", &path)?;
                let output = tool_output(message.remove("content"), &format!("{path}.content"))?;
                items.push(
                    json!({ "type": "function_call_output", "call_id": call_id, "output": output }),
                );
            }
            other => {
                return Err(TranslateError::invalid(
                    format!("{path}.role"),
                    format!("invalid value for '{path}.role': '{other}'"),
                ));
            }
        }
    }
    Ok(items)
}

/// The content of a user, system or developer message: a string stays a string; parts become
/// input parts.
fn input_content(content: Value, path: &str) -> Result<Value, TranslateError> {
    let parts = match content {
        Value::String(_) => return Ok(content),
        Value::Array(parts) => parts,
        _ => return Err(expected(path, "a string or an array of content parts")),
    };
    let mut out = Vec::with_capacity(parts.len());
    for (j, part) in parts.into_iter().enumerate() {
        let path = format!("{path}[{j}]");
        let mut part = object(part, &path)?;
        let kind = require_string_in(&mut part, "type", &path)?;
        let translated = match kind.as_str() {
            "text" => {
                let text = require_string_in(&mut part, "text", &path)?;
                json!({ "type": "input_text", "text": text })
            }
            "image_url" => input_image(part.remove("image_url"), &format!("{path}.image_url"))?,
            "file" => input_file(part.remove("file"), &format!("{path}.file"))?,
            "input_audio" => {
                return Err(TranslateError::unsupported(
                    format!("{path}.type"),
                    format!(
                        "'{path}' is not supported for this model: the Responses API takes no audio input"
                    ),
                ));
            }
            other => return Err(unknown_type(&path, other)),
        };
        out.push(translated);
    }
    Ok(Value::Array(out))
}

fn unknown_type(path: &str, kind: &str) -> TranslateError {
    TranslateError::invalid(
        format!("{path}.type"),
        format!("invalid value for '{path}.type': '{kind}'"),
    )
}

/// `{"url": …, "detail": …}` (or a bare URL string) as an `input_image` part.
fn input_image(image: Option<Value>, path: &str) -> Result<Value, TranslateError> {
    let (url, detail) = match image {
        Some(Value::String(url)) => (url, None),
        Some(Value::Object(mut image)) => (
            require_string_in(&mut image, "url", path)?,
            take_string_in(&mut image, "detail", path)?,
        ),
        Some(_) => return Err(expected(path, "an object")),
        None => return Err(TranslateError::missing(path)),
    };
    Ok(json!({
        "type": "input_image",
        "image_url": url,
        "detail": detail.unwrap_or_else(|| "auto".into()),
    }))
}

/// `{"file_data"|"file_id"|"filename": …}` as an `input_file` part.
fn input_file(file: Option<Value>, path: &str) -> Result<Value, TranslateError> {
    let file = object(file.ok_or_else(|| TranslateError::missing(path))?, path)?;
    let mut part = Map::new();
    part.insert("type".into(), "input_file".into());
    for (key, value) in file {
        match key.as_str() {
            "file_data" | "file_id" | "filename" => {
                if !value.is_null() {
                    part.insert(key, value);
                }
            }
            other => {
                return Err(TranslateError::invalid(
                    format!("{path}.{other}"),
                    format!("unknown parameter: '{path}.{other}'"),
                ));
            }
        }
    }
    Ok(Value::Object(part))
}

/// An assistant message: its text and refusal as one `message` item, then one `function_call`
/// item per tool call.
fn assistant(
    mut message: Map<String, Value>,
    path: &str,
    items: &mut Vec<Value>,
) -> Result<(), TranslateError> {
    let mut content = Vec::new();
    match message.remove("content") {
        None | Some(Value::Null) => {}
        Some(Value::String(text)) => {
            if !text.is_empty() {
                content.push(output_text(text));
            }
        }
        Some(Value::Array(parts)) => {
            for (j, part) in parts.into_iter().enumerate() {
                let path = format!("{path}.content[{j}]");
                let mut part = object(part, &path)?;
                let kind = require_string_in(&mut part, "type", &path)?;
                match kind.as_str() {
                    "text" => {
                        content.push(output_text(require_string_in(&mut part, "text", &path)?))
                    }
                    "refusal" => {
                        let refusal = require_string_in(&mut part, "refusal", &path)?;
                        content.push(json!({ "type": "refusal", "refusal": refusal }));
                    }
                    other => return Err(unknown_type(&path, other)),
                }
            }
        }
        Some(_) => {
            return Err(expected(
                &format!("{path}.content"),
                "a string or an array of content parts",
            ));
        }
    }
    if let Some(refusal) = take_string_in(&mut message, "refusal", path)? {
        content.push(json!({ "type": "refusal", "refusal": refusal }));
    }
    if !content.is_empty() {
        items.push(json!({ "type": "message", "role": "assistant", "content": content }));
    }
    let calls = match message.remove("tool_calls") {
        None | Some(Value::Null) => Vec::new(),
        Some(calls) => array(calls, &format!("{path}.tool_calls"))?,
    };
    for (k, call) in calls.into_iter().enumerate() {
        let path = format!("{path}.tool_calls[{k}]");
        let mut call = object(call, &path)?;
        let kind = take_string_in(&mut call, "type", &path)?.unwrap_or_else(|| "function".into());
        if kind != "function" {
            return Err(TranslateError::unsupported(
                format!("{path}.type"),
                format!(
                    "'{path}.type' '{kind}' is not supported for this model: only function tools are translated"
                ),
            ));
        }
        let id = require_string_in(&mut call, "id", &path)?;
        let function_path = format!("{path}.function");
        let mut function = object(
            call.remove("function")
                .ok_or_else(|| TranslateError::missing(&function_path))?,
            &function_path,
        )?;
        let name = require_string_in(&mut function, "name", &function_path)?;
        let arguments =
            take_string_in(&mut function, "arguments", &function_path)?.unwrap_or_default();
        items.push(json!({
            "type": "function_call",
            "call_id": id,
            "name": name,
            "arguments": arguments,
        }));
    }
    Ok(())
}

fn output_text(text: String) -> Value {
    json!({ "type": "output_text", "text": text, "annotations": [] })
}

/// A tool message's content as a function call's output: its text parts joined.
fn tool_output(content: Option<Value>, path: &str) -> Result<String, TranslateError> {
    match content {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(text)) => Ok(text),
        Some(Value::Array(parts)) => {
            let mut text = String::new();
            for (j, part) in parts.into_iter().enumerate() {
                let path = format!("{path}[{j}]");
                let mut part = object(part, &path)?;
                let kind = require_string_in(&mut part, "type", &path)?;
                if kind != "text" {
                    return Err(unknown_type(&path, &kind));
                }
                text.push_str(&require_string_in(&mut part, "text", &path)?);
            }
            Ok(text)
        }
        Some(_) => Err(expected(path, "a string or an array of text parts")),
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
                    "tool type '{kind}' is not supported for this model: only function tools are translated to the Responses API"
                ),
            ));
        }
        let function_path = format!("{path}.function");
        let function = object(
            tool.remove("function")
                .ok_or_else(|| TranslateError::missing(&function_path))?,
            &function_path,
        )?;
        let mut translated = Map::new();
        translated.insert("type".into(), "function".into());
        let mut strict = Value::Bool(false);
        let mut parameters = json!({ "type": "object", "properties": {} });
        for (key, value) in function {
            match key.as_str() {
                // Responses makes a function strict unless told otherwise; chat does not.
                "strict" if !value.is_null() => strict = value,
                "parameters" if !value.is_null() => parameters = value,
                _ if value.is_null() => {}
                _ => {
                    translated.insert(key, value);
                }
            }
        }
        translated.insert("parameters".into(), parameters);
        translated.insert("strict".into(), strict);
        if !translated.contains_key("name") {
            return Err(TranslateError::missing(format!("{function_path}.name")));
        }
        out.push(Value::Object(translated));
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
            let mut function = object(
                choice
                    .remove("function")
                    .ok_or_else(|| TranslateError::missing("tool_choice.function"))?,
                "tool_choice.function",
            )?;
            let name = require_string_in(&mut function, "name", "tool_choice.function")?;
            Ok(json!({ "type": "function", "name": name }))
        }
        _ => Err(expected("tool_choice", "a string or an object")),
    }
}

/// `response_format` as `text.format`: the schema's members move up one level.
fn text_format(mut format: Map<String, Value>) -> Result<Value, TranslateError> {
    let kind = require_string_in(&mut format, "type", "response_format")?;
    match kind.as_str() {
        "text" | "json_object" => Ok(json!({ "type": kind })),
        "json_schema" => {
            let schema = format
                .remove("json_schema")
                .ok_or_else(|| TranslateError::missing("response_format.json_schema"))?;
            let mut translated = object(schema, "response_format.json_schema")?;
            translated.retain(|_, v| !v.is_null());
            translated.insert("type".into(), "json_schema".into());
            Ok(Value::Object(translated))
        }
        other => Err(TranslateError::invalid(
            "response_format.type",
            format!("invalid value for 'response_format.type': '{other}'"),
        )),
    }
}
