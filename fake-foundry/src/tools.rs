//! Answers that call functions: a chat completion with `tool_calls` and a Responses answer with
//! `function_call` items, whole and streamed (arguments split across several deltas). Built
//! with `serde_json`: these answers serve translation tests, not benchmarks.

use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::formats::{CHAT_USAGE, Completion, RESPONSES_USAGE, SYSTEM_FINGERPRINT, Sse};
use crate::ids;

/// A function call the fake answers with (`"fake": {"tool_calls": [...]}` or
/// [`Behaviour::tool_calls`](crate::Behaviour)).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct ToolCall {
    pub name: String,
    /// The arguments, a JSON text.
    pub arguments: String,
}

impl ToolCall {
    pub fn new(name: &str, arguments: &str) -> Self {
        Self {
            name: name.to_owned(),
            arguments: arguments.to_owned(),
        }
    }
}

/// How many deltas a call's arguments are split into in a stream.
const ARGUMENT_PIECES: usize = 3;

/// A call with the ids the answer gives it.
struct Call<'a> {
    call: &'a ToolCall,
    call_id: String,
    item_id: String,
}

fn calls(tool_calls: &[ToolCall]) -> Vec<Call<'_>> {
    tool_calls
        .iter()
        .map(|call| {
            let mut call_id = b"call_".to_vec();
            ids::push_base62(&mut call_id, 24);
            let mut item_id = b"fc_".to_vec();
            ids::push_hex(&mut item_id, 48);
            Call {
                call,
                call_id: String::from_utf8_lossy(&call_id).into_owned(),
                item_id: String::from_utf8_lossy(&item_id).into_owned(),
            }
        })
        .collect()
}

fn usage(literal: &str) -> Value {
    serde_json::from_str(literal).unwrap_or(Value::Null)
}

fn chat_id() -> String {
    let mut id = b"chatcmpl-".to_vec();
    ids::push_base62(&mut id, 29);
    String::from_utf8_lossy(&id).into_owned()
}

fn response_ids() -> (String, String) {
    let mut id = b"resp_".to_vec();
    ids::push_hex(&mut id, 48);
    let mut message = b"msg_".to_vec();
    ids::push_hex(&mut message, 48);
    (
        String::from_utf8_lossy(&id).into_owned(),
        String::from_utf8_lossy(&message).into_owned(),
    )
}

/// A `chat.completion` whose message calls `tool_calls` (after `text`, when there is any).
pub fn chat_completion(model: &str, completion: &Completion, tool_calls: &[ToolCall]) -> Bytes {
    let text = completion.raw_text();
    let calls: Vec<Value> = calls(tool_calls)
        .iter()
        .map(|c| {
            json!({
                "id": c.call_id,
                "type": "function",
                "function": { "name": c.call.name, "arguments": c.call.arguments },
            })
        })
        .collect();
    let body = json!({
        "choices": [{
            "finish_reason": "tool_calls",
            "index": 0,
            "logprobs": null,
            "message": {
                "annotations": [],
                "content": if text.is_empty() { Value::Null } else { text.into() },
                "refusal": null,
                "role": "assistant",
                "tool_calls": calls,
            },
        }],
        "created": ids::unix_now(),
        "id": chat_id(),
        "model": model,
        "object": "chat.completion",
        "system_fingerprint": SYSTEM_FINGERPRINT,
        "usage": usage(CHAT_USAGE),
    });
    Bytes::from(body.to_string())
}

/// Splits `text` into `n` pieces on character boundaries (some may be empty).
fn pieces(text: &str, n: usize) -> Vec<String> {
    Completion::new(text, n).pieces()
}

#[derive(Default)]
struct Events {
    buf: Vec<u8>,
    event_ends: Vec<usize>,
    gap_points: Vec<usize>,
}

impl Events {
    fn push(&mut self, name: Option<&str>, data: &str, gap_before: bool) {
        if gap_before {
            self.gap_points.push(self.buf.len());
        }
        if let Some(name) = name {
            self.buf.extend_from_slice(b"event: ");
            self.buf.extend_from_slice(name.as_bytes());
            self.buf.push(b'\n');
        }
        self.buf.extend_from_slice(b"data: ");
        self.buf.extend_from_slice(data.as_bytes());
        self.buf.extend_from_slice(b"\n\n");
        self.event_ends.push(self.buf.len());
    }

    fn finish(self) -> Sse {
        Sse {
            bytes: Bytes::from(self.buf),
            event_ends: self.event_ends,
            gap_points: self.gap_points,
        }
    }
}

/// A `chat.completion.chunk` stream: the text's deltas, then each call's first delta (id, name)
/// and its arguments in pieces, `finish_reason: "tool_calls"`, the usage chunk when asked for,
/// `[DONE]`.
pub fn chat_stream(
    model: &str,
    completion: &Completion,
    tool_calls: &[ToolCall],
    include_usage: bool,
) -> Sse {
    let (id, created) = (chat_id(), ids::unix_now());
    let mut events = Events::default();
    let mut deltas = 0;
    let mut chunk = |events: &mut Events, delta: Value, finish: Option<&str>| {
        let mut chunk = json!({
            "choices": [{ "delta": delta, "finish_reason": finish, "index": 0, "logprobs": null }],
            "created": created,
            "id": id,
            "model": model,
            "object": "chat.completion.chunk",
            "system_fingerprint": SYSTEM_FINGERPRINT,
        });
        if include_usage {
            chunk["usage"] = Value::Null;
        }
        events.push(None, &chunk.to_string(), deltas > 0);
        deltas += 1;
    };
    let mut role = Some("assistant");
    for piece in completion.pieces().into_iter().filter(|p| !p.is_empty()) {
        let mut delta = json!({ "content": piece });
        if let Some(role) = role.take() {
            delta["role"] = role.into();
        }
        chunk(&mut events, delta, None);
    }
    for (index, call) in calls(tool_calls).iter().enumerate() {
        let mut delta = json!({ "tool_calls": [{
            "index": index,
            "id": call.call_id,
            "type": "function",
            "function": { "name": call.call.name, "arguments": "" },
        }] });
        if let Some(role) = role.take() {
            delta["role"] = role.into();
            delta["content"] = Value::Null;
        }
        chunk(&mut events, delta, None);
        for piece in pieces(&call.call.arguments, ARGUMENT_PIECES) {
            chunk(
                &mut events,
                json!({ "tool_calls": [{ "index": index, "function": { "arguments": piece } }] }),
                None,
            );
        }
    }
    chunk(&mut events, json!({}), Some("tool_calls"));
    if include_usage {
        let usage_chunk = json!({
            "choices": [],
            "created": created,
            "id": id,
            "model": model,
            "object": "chat.completion.chunk",
            "system_fingerprint": SYSTEM_FINGERPRINT,
            "usage": usage(CHAT_USAGE),
        });
        events.push(None, &usage_chunk.to_string(), false);
    }
    events.push(None, "[DONE]", false);
    events.finish()
}

fn message_item(id: &str, status: &str, text: Option<&str>) -> Value {
    let content: Vec<Value> = text
        .map(|t| json!({ "type": "output_text", "annotations": [], "logprobs": [], "text": t }))
        .into_iter()
        .collect();
    json!({ "id": id, "type": "message", "status": status, "content": content, "role": "assistant" })
}

fn function_item(call: &Call<'_>, status: &str, arguments: &str) -> Value {
    json!({
        "id": call.item_id,
        "type": "function_call",
        "status": status,
        "arguments": arguments,
        "call_id": call.call_id,
        "name": call.call.name,
    })
}

fn response(id: &str, model: &str, created: u64, status: &str, output: Vec<Value>) -> Value {
    let done = status != "in_progress";
    json!({
        "id": id,
        "object": "response",
        "created_at": created,
        "status": status,
        "error": null,
        "incomplete_details": null,
        "model": model,
        "output": output,
        "parallel_tool_calls": true,
        "store": true,
        "tool_choice": "auto",
        "usage": if done { usage(RESPONSES_USAGE) } else { Value::Null },
    })
}

/// The output items: the message (when there is text), then one `function_call` per call.
fn output(message_id: &str, text: &str, calls: &[Call<'_>]) -> Vec<Value> {
    let mut output = Vec::with_capacity(calls.len() + 1);
    if !text.is_empty() {
        output.push(message_item(message_id, "completed", Some(text)));
    }
    output.extend(
        calls
            .iter()
            .map(|c| function_item(c, "completed", &c.call.arguments)),
    );
    output
}

/// A Responses `response` whose output calls `tool_calls` (after a message with `text`, when
/// there is any).
pub fn response_object(model: &str, completion: &Completion, tool_calls: &[ToolCall]) -> Bytes {
    let (id, message_id) = response_ids();
    let calls = calls(tool_calls);
    let body = response(
        &id,
        model,
        ids::unix_now(),
        "completed",
        output(&message_id, completion.raw_text(), &calls),
    );
    Bytes::from(body.to_string())
}

/// A Responses event stream: the message's events (when there is text), then for each call
/// `output_item.added`, its arguments in `function_call_arguments.delta` pieces, `.done` and
/// `output_item.done`, and `response.completed` with the whole output.
pub fn response_stream(model: &str, completion: &Completion, tool_calls: &[ToolCall]) -> Sse {
    let (id, message_id) = response_ids();
    let created = ids::unix_now();
    let calls = calls(tool_calls);
    let text = completion.raw_text();
    let mut events = Events::default();
    let mut sequence = 0u64;
    let mut deltas = 0;
    let mut event = |events: &mut Events, kind: &str, mut fields: Value, delta: bool| {
        fields["type"] = kind.into();
        fields["sequence_number"] = sequence.into();
        sequence += 1;
        events.push(Some(kind), &fields.to_string(), delta && deltas > 0);
        if delta {
            deltas += 1;
        }
    };
    let in_progress = response(&id, model, created, "in_progress", Vec::new());
    event(
        &mut events,
        "response.created",
        json!({ "response": in_progress }),
        false,
    );
    event(
        &mut events,
        "response.in_progress",
        json!({ "response": in_progress }),
        false,
    );
    let mut output_index = 0;
    if !text.is_empty() {
        let part_ref = json!({ "item_id": message_id, "output_index": 0, "content_index": 0 });
        event(
            &mut events,
            "response.output_item.added",
            json!({ "output_index": 0, "item": message_item(&message_id, "in_progress", None) }),
            false,
        );
        let mut added = part_ref.clone();
        added["part"] =
            json!({ "type": "output_text", "annotations": [], "logprobs": [], "text": "" });
        event(&mut events, "response.content_part.added", added, false);
        for piece in completion.pieces() {
            let mut delta = part_ref.clone();
            delta["delta"] = piece.into();
            delta["logprobs"] = json!([]);
            event(&mut events, "response.output_text.delta", delta, true);
        }
        let mut done = part_ref.clone();
        done["text"] = text.into();
        done["logprobs"] = json!([]);
        event(&mut events, "response.output_text.done", done, false);
        let mut part_done = part_ref;
        part_done["part"] =
            json!({ "type": "output_text", "annotations": [], "logprobs": [], "text": text });
        event(&mut events, "response.content_part.done", part_done, false);
        event(
            &mut events,
            "response.output_item.done",
            json!({ "output_index": 0, "item": message_item(&message_id, "completed", Some(text)) }),
            false,
        );
        output_index = 1;
    }
    for call in &calls {
        event(
            &mut events,
            "response.output_item.added",
            json!({ "output_index": output_index, "item": function_item(call, "in_progress", "") }),
            false,
        );
        for piece in pieces(&call.call.arguments, ARGUMENT_PIECES) {
            event(
                &mut events,
                "response.function_call_arguments.delta",
                json!({ "item_id": call.item_id, "output_index": output_index, "delta": piece }),
                true,
            );
        }
        event(
            &mut events,
            "response.function_call_arguments.done",
            json!({
                "item_id": call.item_id,
                "output_index": output_index,
                "arguments": call.call.arguments,
            }),
            false,
        );
        event(
            &mut events,
            "response.output_item.done",
            json!({
                "output_index": output_index,
                "item": function_item(call, "completed", &call.call.arguments),
            }),
            false,
        );
        output_index += 1;
    }
    let completed = response(
        &id,
        model,
        created,
        "completed",
        output(&message_id, text, &calls),
    );
    event(
        &mut events,
        "response.completed",
        json!({ "response": completed }),
        false,
    );
    events.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn calls() -> Vec<ToolCall> {
        vec![
            ToolCall::new("get_weather", r#"{"city":"東京"}"#),
            ToolCall::new("now", "{}"),
        ]
    }

    fn data(sse: &Sse) -> Vec<Value> {
        std::str::from_utf8(&sse.bytes)
            .expect("utf8")
            .split("\n\n")
            .filter_map(|e| e.lines().find_map(|l| l.strip_prefix("data: ")))
            .filter(|d| *d != "[DONE]")
            .map(|d| serde_json::from_str(d).expect("json"))
            .collect()
    }

    #[test]
    fn chat_stream_reassembles_to_the_calls() {
        let sse = chat_stream("m", &Completion::new("Checking.", 2), &calls(), true);
        let mut arguments = vec![String::new(); 2];
        let mut names = Vec::new();
        let chunks = data(&sse);
        for chunk in &chunks {
            for call in chunk["choices"][0]["delta"]["tool_calls"]
                .as_array()
                .into_iter()
                .flatten()
            {
                let index = call["index"].as_u64().expect("index") as usize;
                arguments[index].push_str(call["function"]["arguments"].as_str().expect("args"));
                if let Some(name) = call["function"]["name"].as_str() {
                    names.push(name.to_owned());
                }
            }
        }
        assert_eq!(names, ["get_weather", "now"]);
        assert_eq!(arguments, [r#"{"city":"東京"}"#, "{}"]);
        let finish = &chunks[chunks.len() - 2];
        assert_eq!(finish["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(chunks[chunks.len() - 1]["usage"]["total_tokens"], 18);
        assert!(sse.bytes.ends_with(b"data: [DONE]\n\n"));
        assert_eq!(sse.event_ends.last(), Some(&sse.bytes.len()));
    }

    #[test]
    fn response_stream_reassembles_to_the_calls() {
        let sse = response_stream("m", &Completion::new("", 2), &calls());
        let events = data(&sse);
        let mut arguments = String::new();
        for (n, event) in events.iter().enumerate() {
            assert_eq!(event["sequence_number"], n as u64);
            if event["type"] == "response.function_call_arguments.delta"
                && event["output_index"] == 0
            {
                arguments.push_str(event["delta"].as_str().expect("delta"));
            }
        }
        assert_eq!(arguments, r#"{"city":"東京"}"#);
        let completed = &events[events.len() - 1];
        assert_eq!(completed["type"], "response.completed");
        let output = completed["response"]["output"].as_array().expect("output");
        assert_eq!(output.len(), 2);
        assert_eq!(output[1]["name"], "now");
        assert!(
            output[0]["call_id"]
                .as_str()
                .expect("id")
                .starts_with("call_")
        );
    }

    #[test]
    fn whole_answers_carry_the_calls() {
        let chat: Value =
            serde_json::from_slice(&chat_completion("m", &Completion::new("", 1), &calls()))
                .expect("json");
        assert_eq!(chat["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(chat["choices"][0]["message"]["content"], Value::Null);
        assert_eq!(
            chat["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"],
            r#"{"city":"東京"}"#
        );
        let response: Value =
            serde_json::from_slice(&response_object("m", &Completion::new("ok", 1), &calls()))
                .expect("json");
        let output = response["output"].as_array().expect("output");
        assert_eq!(output.len(), 3);
        assert_eq!(output[0]["type"], "message");
        assert_eq!(output[2]["type"], "function_call");
    }
}
