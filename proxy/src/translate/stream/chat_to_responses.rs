//! `chat.completion.chunk`s as a Responses event stream, for a Responses client of a chat-only
//! model. Deltas go out as they come, each as the Responses event for it, with the item and
//! part events around them. The Responses protocol repeats the whole text in its `done`
//! events and the output in `response.completed` (clients such as the Agents SDK build their
//! result from it), so the text of the answer is kept until the stream ends: the answer's
//! text, not its wire bytes, and never a reason to hold an event back.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::{Value, json};

use super::output::Output;
use crate::translate::answer::{function_call_item, message_item, output_text_part};
use crate::translate::wire::{self, Ending, ResponseHead, Tokens};

#[derive(Debug)]
pub struct ChatToResponses {
    sequence: u64,
    started: bool,
    /// The upstream's `chatcmpl-…` id; the response's is `resp_…` from it.
    chat_id: String,
    response_id: String,
    created: u64,
    model: Value,
    next_output_index: u64,
    message: Option<OpenMessage>,
    calls: Vec<OpenCall>,
    /// Finished output items with their output index, for the final response.
    done: Vec<(u64, Value)>,
    ending: Option<Ending>,
    usage: Option<Tokens>,
    finished: bool,
}

#[derive(Debug)]
struct OpenMessage {
    output_index: u64,
    item_id: String,
    parts: Vec<Part>,
}

#[derive(Debug)]
struct Part {
    refusal: bool,
    text: String,
}

#[derive(Debug)]
struct OpenCall {
    chat_index: u64,
    output_index: u64,
    item_id: String,
    call_id: String,
    name: String,
    arguments: String,
}

#[derive(Deserialize)]
struct WireChunk<'a> {
    #[serde(borrow)]
    id: Option<Cow<'a, str>>,
    created: Option<u64>,
    model: Option<Value>,
    #[serde(default, borrow)]
    choices: Option<Vec<WireChoice<'a>>>,
    usage: Option<Value>,
    error: Option<WireError>,
}

#[derive(Deserialize)]
struct WireChoice<'a> {
    #[serde(default)]
    index: u64,
    #[serde(borrow)]
    delta: Option<WireDelta<'a>>,
    #[serde(borrow)]
    finish_reason: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct WireDelta<'a> {
    #[serde(borrow)]
    content: Option<Cow<'a, str>>,
    #[serde(borrow)]
    refusal: Option<Cow<'a, str>>,
    #[serde(borrow)]
    tool_calls: Option<Vec<WireToolCall<'a>>>,
}

#[derive(Deserialize)]
struct WireToolCall<'a> {
    #[serde(default)]
    index: u64,
    id: Option<String>,
    #[serde(borrow)]
    function: Option<WireFunction<'a>>,
}

#[derive(Deserialize)]
struct WireFunction<'a> {
    name: Option<String>,
    #[serde(borrow)]
    arguments: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct WireError {
    code: Option<Value>,
    message: Option<String>,
}

impl Default for ChatToResponses {
    fn default() -> Self {
        Self::new()
    }
}

impl ChatToResponses {
    pub fn new() -> Self {
        Self {
            sequence: 0,
            started: false,
            chat_id: String::new(),
            response_id: String::new(),
            created: 0,
            model: Value::Null,
            next_output_index: 0,
            message: None,
            calls: Vec::new(),
            done: Vec::new(),
            ending: None,
            usage: None,
            finished: false,
        }
    }

    /// True once the client's stream has ended (`response.completed`, `response.incomplete`
    /// or `response.failed`).
    pub fn finished(&self) -> bool {
        self.finished
    }

    /// Translates one upstream event (chat streams have no event names; `data` is its data).
    pub fn event(&mut self, data: &[u8], out: &mut Output) {
        if self.finished {
            return;
        }
        if data.trim_ascii() == b"[DONE]" {
            self.complete(out);
            return;
        }
        let Ok(chunk) = serde_json::from_slice::<WireChunk<'_>>(data) else {
            tracing::debug!("skipped an upstream event that is not a JSON object");
            return;
        };
        if let Some(error) = chunk.error {
            let code = match error.code {
                Some(Value::String(code)) => code,
                Some(Value::Number(code)) => code.to_string(),
                _ => "server_error".into(),
            };
            let message = error
                .message
                .unwrap_or_else(|| "the upstream failed to generate a response".into());
            self.fail(&code, &message, out);
            return;
        }
        let choices = chunk.choices.unwrap_or_default();
        let id = chunk.id.as_deref().unwrap_or_default();
        // Azure's first event (the prompt's content filter verdict) has no id and no choice.
        if !self.started && (!id.is_empty() || !choices.is_empty()) {
            self.chat_id = id.to_owned();
            self.created = chunk.created.unwrap_or(0);
            self.model = chunk.model.unwrap_or(Value::Null);
            self.start(out);
        }
        if let Some(usage) = chunk.usage.as_ref().and_then(Tokens::from_chat) {
            self.usage = Some(usage);
        }
        for choice in choices.into_iter().filter(|c| c.index == 0) {
            if let Some(delta) = choice.delta {
                self.delta(delta, out);
            }
            if let Some(reason) = choice.finish_reason {
                self.ending = Some(Ending::from_finish_reason(Some(&reason)));
                self.close_items(out);
            }
        }
    }

    /// The client's final events for a stream that failed: an `error` event and
    /// `response.failed`.
    pub fn fail(&mut self, code: &str, message: &str, out: &mut Output) {
        if self.finished {
            return;
        }
        self.start(out);
        self.finished = true;
        let sequence = self.next_sequence();
        out.event(
            "error",
            sequence,
            &json!({ "code": code, "message": message, "param": null }),
        );
        let response = self.response(
            "failed",
            Value::Null,
            json!({ "code": code, "message": message }),
        );
        self.emit(out, "response.failed", json!({ "response": response }));
    }

    fn next_sequence(&mut self) -> u64 {
        let sequence = self.sequence;
        self.sequence += 1;
        sequence
    }

    fn emit(&mut self, out: &mut Output, kind: &str, fields: Value) {
        let sequence = self.next_sequence();
        out.event(kind, sequence, &fields);
    }

    /// The `response` object; a final one (not `in_progress`) takes the finished output items.
    fn response(&mut self, status: &str, incomplete_details: Value, error: Value) -> Value {
        let mut done = match status {
            "in_progress" => Vec::new(),
            _ => std::mem::take(&mut self.done),
        };
        done.sort_by_key(|(index, _)| *index);
        let head = ResponseHead {
            id: &self.response_id,
            created_at: self.created,
            model: &self.model,
        };
        let usage = match status {
            "in_progress" => None,
            _ => self.usage.map(Tokens::to_responses),
        };
        head.object(
            status,
            incomplete_details,
            error,
            done.into_iter().map(|(_, item)| item).collect(),
            usage,
        )
    }

    fn start(&mut self, out: &mut Output) {
        if self.started {
            return;
        }
        self.started = true;
        if self.chat_id.is_empty() {
            self.chat_id = format!("chatcmpl-{}", uuid::Uuid::new_v4().simple());
        }
        self.response_id = wire::response_id(&self.chat_id);
        let response = self.response("in_progress", Value::Null, Value::Null);
        self.emit(
            out,
            "response.created",
            json!({ "response": response.clone() }),
        );
        self.emit(out, "response.in_progress", json!({ "response": response }));
    }

    fn delta(&mut self, delta: WireDelta<'_>, out: &mut Output) {
        if let Some(text) = delta.content.as_deref().filter(|t| !t.is_empty()) {
            self.message_text(false, text, out);
        }
        if let Some(text) = delta.refusal.as_deref().filter(|t| !t.is_empty()) {
            self.message_text(true, text, out);
        }
        for call in delta.tool_calls.unwrap_or_default() {
            self.call_delta(call, out);
        }
    }

    /// Text (or refusal text) for the message item, opening the item and part it goes in.
    fn message_text(&mut self, refusal: bool, text: &str, out: &mut Output) {
        if self.message.is_none() {
            let output_index = self.take_output_index();
            let item_id = match output_index {
                0 => wire::message_item_id(&self.chat_id),
                n => format!("{}_{n}", wire::message_item_id(&self.chat_id)),
            };
            self.emit(
                out,
                "response.output_item.added",
                json!({
                    "output_index": output_index,
                    "item": message_item(&item_id, "in_progress", Vec::new()),
                }),
            );
            self.message = Some(OpenMessage {
                output_index,
                item_id,
                parts: Vec::new(),
            });
        }
        let Some(message) = self.message.as_mut() else {
            return;
        };
        let (output_index, item_id) = (message.output_index, message.item_id.clone());
        let content_index = match message.parts.iter().position(|p| p.refusal == refusal) {
            Some(index) => index,
            None => {
                message.parts.push(Part {
                    refusal,
                    text: String::new(),
                });
                let index = message.parts.len() - 1;
                let part = part_json(refusal, "");
                self.emit(
                    out,
                    "response.content_part.added",
                    json!({
                        "item_id": item_id,
                        "output_index": output_index,
                        "content_index": index,
                        "part": part,
                    }),
                );
                index
            }
        };
        if let Some(part) = self
            .message
            .as_mut()
            .and_then(|m| m.parts.get_mut(content_index))
        {
            part.text.push_str(text);
        }
        if refusal {
            self.emit(
                out,
                "response.refusal.delta",
                json!({
                    "item_id": item_id,
                    "output_index": output_index,
                    "content_index": content_index,
                    "delta": text,
                }),
            );
        } else {
            self.emit(
                out,
                "response.output_text.delta",
                json!({
                    "item_id": item_id,
                    "output_index": output_index,
                    "content_index": content_index,
                    "delta": text,
                    "logprobs": [],
                }),
            );
        }
    }

    fn take_output_index(&mut self) -> u64 {
        let index = self.next_output_index;
        self.next_output_index += 1;
        index
    }

    fn call_delta(&mut self, call: WireToolCall<'_>, out: &mut Output) {
        let position = match self.calls.iter().position(|c| c.chat_index == call.index) {
            Some(position) => position,
            None => {
                // Chat streams a message's text before its tool calls: the text is complete.
                if let Some(message) = self.message.take() {
                    self.close_message(message, Ending::Completed.item_status(), out);
                }
                let output_index = self.take_output_index();
                let call_id = call
                    .id
                    .clone()
                    .unwrap_or_else(|| format!("call_{}_{}", self.chat_id, call.index));
                let name = call
                    .function
                    .as_ref()
                    .and_then(|f| f.name.clone())
                    .unwrap_or_default();
                let item_id = wire::function_item_id(&call_id);
                let mut item = function_call_item(&item_id, &call_id, &json!(name), "");
                item["status"] = "in_progress".into();
                self.emit(
                    out,
                    "response.output_item.added",
                    json!({ "output_index": output_index, "item": item }),
                );
                self.calls.push(OpenCall {
                    chat_index: call.index,
                    output_index,
                    item_id,
                    call_id,
                    name,
                    arguments: String::new(),
                });
                self.calls.len() - 1
            }
        };
        let Some(arguments) = call
            .function
            .as_ref()
            .and_then(|f| f.arguments.as_deref())
            .filter(|a| !a.is_empty())
        else {
            return;
        };
        let open = &mut self.calls[position];
        open.arguments.push_str(arguments);
        let fields = json!({
            "item_id": open.item_id,
            "output_index": open.output_index,
            "delta": arguments,
        });
        self.emit(out, "response.function_call_arguments.delta", fields);
    }

    /// Closes the open message and function calls, in output order.
    fn close_items(&mut self, out: &mut Output) {
        let status = self.ending.unwrap_or(Ending::Completed).item_status();
        let message = self.message.take();
        let calls = std::mem::take(&mut self.calls);
        let mut message = message.map(|m| (m.output_index, m));
        for call in calls {
            if let Some((index, _)) = &message
                && *index < call.output_index
                && let Some((_, open)) = message.take()
            {
                self.close_message(open, status, out);
            }
            self.close_call(call, status, out);
        }
        if let Some((_, open)) = message {
            self.close_message(open, status, out);
        }
    }

    fn close_message(&mut self, message: OpenMessage, status: &str, out: &mut Output) {
        let OpenMessage {
            output_index,
            item_id,
            parts,
        } = message;
        let mut content = Vec::with_capacity(parts.len());
        for (content_index, part) in parts.into_iter().enumerate() {
            let reference = json!({
                "item_id": item_id,
                "output_index": output_index,
                "content_index": content_index,
            });
            let mut done = reference.clone();
            if part.refusal {
                done["refusal"] = part.text.as_str().into();
                self.emit(out, "response.refusal.done", done);
            } else {
                done["text"] = part.text.as_str().into();
                done["logprobs"] = json!([]);
                self.emit(out, "response.output_text.done", done);
            }
            let full = part_json(part.refusal, &part.text);
            let mut part_done = reference;
            part_done["part"] = full.clone();
            self.emit(out, "response.content_part.done", part_done);
            content.push(full);
        }
        let item = message_item(&item_id, status, content);
        self.emit(
            out,
            "response.output_item.done",
            json!({ "output_index": output_index, "item": item.clone() }),
        );
        self.done.push((output_index, item));
    }

    fn close_call(&mut self, call: OpenCall, status: &str, out: &mut Output) {
        self.emit(
            out,
            "response.function_call_arguments.done",
            json!({
                "item_id": call.item_id,
                "output_index": call.output_index,
                "arguments": call.arguments,
            }),
        );
        let mut item = function_call_item(
            &call.item_id,
            &call.call_id,
            &json!(call.name),
            &call.arguments,
        );
        item["status"] = status.into();
        self.emit(
            out,
            "response.output_item.done",
            json!({ "output_index": call.output_index, "item": item.clone() }),
        );
        self.done.push((call.output_index, item));
    }

    /// `[DONE]`: the final event, with the whole output and the usage.
    fn complete(&mut self, out: &mut Output) {
        self.start(out);
        self.close_items(out);
        self.finished = true;
        let ending = self.ending.unwrap_or(Ending::Completed);
        let response = self.response(ending.status(), ending.incomplete_details(), Value::Null);
        self.emit(out, ending.event(), json!({ "response": response }));
    }
}

fn part_json(refusal: bool, text: &str) -> Value {
    if refusal {
        json!({ "type": "refusal", "refusal": text })
    } else {
        output_text_part(text)
    }
}
