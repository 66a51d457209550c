//! A Responses event stream as `chat.completion.chunk`s, for a chat client of a Responses-only
//! model. Text, refusal and argument deltas go out as they come; the state is the answer's
//! ids and the map from function call items to chat tool call indexes.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::output::Output;
use crate::config::RouteKey;
use crate::relay::sse::error_event;
use crate::translate::wire::{self, Tokens};

#[derive(Debug)]
pub struct ResponsesToChat {
    include_usage: bool,
    /// `chatcmpl-…`, from the response's id.
    id: String,
    created: u64,
    model: Value,
    /// The first chunk (with the role) is out.
    started: bool,
    /// One per function call, in the order they began: the chat tool call index is the
    /// position.
    calls: Vec<Call>,
    finished: bool,
}

#[derive(Debug)]
struct Call {
    item_id: String,
    output_index: Option<u64>,
    /// Some argument bytes went out already as deltas.
    arguments_sent: bool,
}

/// The members of a Responses event the translation reads; the rest is skipped unparsed.
#[derive(Deserialize)]
struct WireEvent<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow)]
    delta: Option<Cow<'a, str>>,
    #[serde(borrow)]
    arguments: Option<Cow<'a, str>>,
    #[serde(borrow)]
    item_id: Option<Cow<'a, str>>,
    output_index: Option<u64>,
    item: Option<WireItem>,
    response: Option<WireResponse>,
    code: Option<Value>,
    message: Option<String>,
}

#[derive(Deserialize)]
struct WireItem {
    #[serde(rename = "type")]
    kind: Option<String>,
    id: Option<String>,
    call_id: Option<String>,
    name: Option<String>,
    arguments: Option<String>,
}

#[derive(Deserialize)]
struct WireResponse {
    id: Option<String>,
    created_at: Option<u64>,
    model: Option<Value>,
    status: Option<String>,
    incomplete_details: Option<WireIncomplete>,
    error: Option<WireError>,
    usage: Option<Value>,
}

#[derive(Deserialize)]
struct WireIncomplete {
    reason: Option<String>,
}

#[derive(Deserialize)]
struct WireError {
    code: Option<Value>,
    message: Option<String>,
}

/// An error code as text: upstreams send strings, some send numbers.
fn code_text(code: Option<&Value>) -> Option<String> {
    match code? {
        Value::String(code) => Some(code.clone()),
        Value::Number(code) => Some(code.to_string()),
        _ => None,
    }
}

#[derive(Serialize)]
struct Chunk<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a Value,
    choices: Vec<Choice<'a>>,
    /// `null` on every chunk but the usage chunk when usage was asked for; absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<Value>,
}

#[derive(Serialize)]
struct Choice<'a> {
    index: u32,
    delta: Delta<'a>,
    logprobs: Option<()>,
    finish_reason: Option<&'a str>,
}

#[derive(Default, Serialize)]
struct Delta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    refusal: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_calls: Option<[ToolCallDelta<'a>; 1]>,
}

#[derive(Serialize)]
struct ToolCallDelta<'a> {
    index: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<&'a str>,
    function: FunctionDelta<'a>,
}

#[derive(Serialize)]
struct FunctionDelta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    arguments: &'a str,
}

impl ResponsesToChat {
    /// `include_usage`: the client's `stream_options.include_usage`.
    pub fn new(include_usage: bool) -> Self {
        Self {
            include_usage,
            id: wire::chat_id(""),
            created: 0,
            model: Value::Null,
            started: false,
            calls: Vec::new(),
            finished: false,
        }
    }

    /// True once the client's stream has ended (`[DONE]` or an error).
    pub fn finished(&self) -> bool {
        self.finished
    }

    /// Translates one upstream event (`name` from its `event:` line, `data` its data).
    pub fn event(&mut self, name: Option<&str>, data: &[u8], out: &mut Output) {
        if self.finished {
            return;
        }
        let Ok(event) = serde_json::from_slice::<WireEvent<'_>>(data) else {
            tracing::debug!("skipped an upstream event that is not a JSON object");
            return;
        };
        let kind = event.kind.as_deref().or(name).unwrap_or_default();
        match kind {
            "response.created" | "response.in_progress" | "response.queued" => {
                if let Some(response) = &event.response {
                    self.learn(response);
                }
                self.start(out);
            }
            "response.output_text.delta" => {
                if let Some(text) = event.delta.as_deref().filter(|t| !t.is_empty()) {
                    self.delta(
                        out,
                        Delta {
                            content: Some(text),
                            ..Delta::default()
                        },
                    );
                }
            }
            "response.refusal.delta" => {
                if let Some(text) = event.delta.as_deref().filter(|t| !t.is_empty()) {
                    self.delta(
                        out,
                        Delta {
                            refusal: Some(text),
                            ..Delta::default()
                        },
                    );
                }
            }
            "response.output_item.added" => {
                if let Some(item) = &event.item {
                    self.call_began(item, event.output_index, out);
                }
            }
            "response.function_call_arguments.delta" => {
                let index = self.call_index(event.item_id.as_deref(), event.output_index);
                if let (Some(index), Some(delta)) = (index, event.delta.as_deref()) {
                    self.arguments(index, delta, out);
                }
            }
            "response.function_call_arguments.done" => {
                let index = self.call_index(event.item_id.as_deref(), event.output_index);
                if let (Some(index), Some(arguments)) = (index, event.arguments.as_deref()) {
                    self.arguments_if_none_sent(index, arguments, out);
                }
            }
            "response.output_item.done" => {
                if let Some(item) = &event.item {
                    self.call_done(item, event.output_index, out);
                }
            }
            "response.completed" | "response.incomplete" => {
                if let Some(response) = &event.response {
                    self.learn(response);
                    self.finish(response, out);
                }
            }
            "response.failed" => {
                let error = event.response.as_ref().and_then(|r| r.error.as_ref());
                let code = code_text(error.and_then(|e| e.code.as_ref()));
                let message = error.and_then(|e| e.message.as_deref());
                self.fail_with(code.as_deref(), message, out);
            }
            "error" => {
                let code = code_text(event.code.as_ref());
                self.fail_with(code.as_deref(), event.message.as_deref(), out);
            }
            _ => {}
        }
    }

    /// The client's final event for a stream that failed outside the upstream's events.
    pub fn fail(&mut self, code: &str, message: &str, out: &mut Output) {
        if !self.finished {
            self.fail_with(Some(code), Some(message), out);
        }
    }

    fn fail_with(&mut self, code: Option<&str>, message: Option<&str>, out: &mut Output) {
        self.finished = true;
        let message = message.unwrap_or("the upstream failed to generate a response");
        out.raw(&error_event(
            RouteKey::ChatCompletions,
            code.unwrap_or("server_error"),
            message,
            false,
        ));
    }

    fn learn(&mut self, response: &WireResponse) {
        if let Some(id) = &response.id {
            self.id = wire::chat_id(id);
        }
        if let Some(created) = response.created_at {
            self.created = created;
        }
        if let Some(model) = &response.model {
            self.model = model.clone();
        }
    }

    fn start(&mut self, out: &mut Output) {
        if !self.started {
            self.started = true;
            self.chunk(
                out,
                Delta {
                    role: Some("assistant"),
                    content: Some(""),
                    ..Delta::default()
                },
                None,
            );
        }
    }

    fn delta(&mut self, out: &mut Output, delta: Delta<'_>) {
        self.start(out);
        self.chunk(out, delta, None);
    }

    fn chunk(&self, out: &mut Output, delta: Delta<'_>, finish_reason: Option<&str>) {
        out.data(&Chunk {
            id: &self.id,
            object: "chat.completion.chunk",
            created: self.created,
            model: &self.model,
            choices: vec![Choice {
                index: 0,
                delta,
                logprobs: None,
                finish_reason,
            }],
            usage: self.include_usage.then_some(Value::Null),
        });
    }

    fn call_index(&self, item_id: Option<&str>, output_index: Option<u64>) -> Option<usize> {
        self.calls.iter().position(|call| match item_id {
            Some(id) => call.item_id == id,
            None => output_index.is_some() && call.output_index == output_index,
        })
    }

    fn call_began(&mut self, item: &WireItem, output_index: Option<u64>, out: &mut Output) {
        if item.kind.as_deref() != Some("function_call") {
            return;
        }
        let index = self.calls.len();
        self.calls.push(Call {
            item_id: item.id.clone().unwrap_or_default(),
            output_index,
            arguments_sent: false,
        });
        let arguments = item.arguments.as_deref().unwrap_or_default();
        self.calls[index].arguments_sent = !arguments.is_empty();
        self.delta(
            out,
            Delta {
                tool_calls: Some([ToolCallDelta {
                    index,
                    id: Some(item.call_id.as_deref().unwrap_or_default()),
                    kind: Some("function"),
                    function: FunctionDelta {
                        name: Some(item.name.as_deref().unwrap_or_default()),
                        arguments,
                    },
                }]),
                ..Delta::default()
            },
        );
    }

    fn arguments(&mut self, index: usize, arguments: &str, out: &mut Output) {
        if arguments.is_empty() {
            return;
        }
        self.calls[index].arguments_sent = true;
        self.delta(
            out,
            Delta {
                tool_calls: Some([ToolCallDelta {
                    index,
                    id: None,
                    kind: None,
                    function: FunctionDelta {
                        name: None,
                        arguments,
                    },
                }]),
                ..Delta::default()
            },
        );
    }

    /// Arguments that arrive only whole (no deltas) go out whole.
    fn arguments_if_none_sent(&mut self, index: usize, arguments: &str, out: &mut Output) {
        if !self.calls[index].arguments_sent {
            self.arguments(index, arguments, out);
        }
    }

    fn call_done(&mut self, item: &WireItem, output_index: Option<u64>, out: &mut Output) {
        if item.kind.as_deref() != Some("function_call") {
            return;
        }
        match self.call_index(item.id.as_deref(), output_index) {
            Some(index) => {
                let arguments = item.arguments.as_deref().unwrap_or_default();
                self.arguments_if_none_sent(index, arguments, out);
            }
            // A call announced only when done goes out whole.
            None => self.call_began(item, output_index, out),
        }
    }

    fn finish(&mut self, response: &WireResponse, out: &mut Output) {
        self.start(out);
        self.finished = true;
        let reason = wire::finish_reason(
            response.status.as_deref().unwrap_or("completed"),
            response
                .incomplete_details
                .as_ref()
                .and_then(|d| d.reason.as_deref()),
            !self.calls.is_empty(),
        );
        self.chunk(out, Delta::default(), Some(reason));
        if self.include_usage {
            let usage = response
                .usage
                .as_ref()
                .and_then(Tokens::from_responses)
                .unwrap_or_default();
            out.data(&Chunk {
                id: &self.id,
                object: "chat.completion.chunk",
                created: self.created,
                model: &self.model,
                choices: Vec::new(),
                usage: Some(serde_json::json!(usage.to_chat())),
            });
        }
        out.raw(b"data: [DONE]\n\n");
    }
}
