//! What both directions share: ids carried across (`resp_X` ⇄ `chatcmpl-X`), token usage in
//! either shape, and how a Responses status maps to a chat `finish_reason` and back.

use serde::Serialize;
use serde_json::{Map, Value, json};

const RESPONSE_ID_PREFIX: &str = "resp_";
const CHAT_ID_PREFIX: &str = "chatcmpl-";

/// The chat completion id for a Responses id: `resp_X` becomes `chatcmpl-X`.
pub(crate) fn chat_id(response_id: &str) -> String {
    let base = response_id
        .strip_prefix(RESPONSE_ID_PREFIX)
        .unwrap_or(response_id);
    format!("{CHAT_ID_PREFIX}{base}")
}

/// The Responses id for a chat completion id: `chatcmpl-X` becomes `resp_X`.
pub(crate) fn response_id(chat_id: &str) -> String {
    format!("{RESPONSE_ID_PREFIX}{}", id_base(chat_id))
}

/// The id of the message output item of the answer `chat_id`.
pub(crate) fn message_item_id(chat_id: &str) -> String {
    format!("msg_{}", id_base(chat_id))
}

/// The id of the function call output item for the tool call `call_id`.
pub(crate) fn function_item_id(call_id: &str) -> String {
    format!("fc_{}", call_id.strip_prefix("call_").unwrap_or(call_id))
}

fn id_base(chat_id: &str) -> &str {
    chat_id.strip_prefix(CHAT_ID_PREFIX).unwrap_or(chat_id)
}

/// Token counts as both APIs report them.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tokens {
    input: u64,
    output: u64,
    total: u64,
    cached: u64,
    reasoning: u64,
}

fn count(object: &Value, key: &str) -> u64 {
    object.get(key).and_then(Value::as_u64).unwrap_or(0)
}

impl Tokens {
    /// From a Responses `usage` object (`input_tokens`…).
    pub(crate) fn from_responses(usage: &Value) -> Option<Tokens> {
        usage.as_object()?;
        Some(Tokens::new(
            count(usage, "input_tokens"),
            count(usage, "output_tokens"),
            usage.get("total_tokens").and_then(Value::as_u64),
            count(&usage["input_tokens_details"], "cached_tokens"),
            count(&usage["output_tokens_details"], "reasoning_tokens"),
        ))
    }

    /// From a chat `usage` object (`prompt_tokens`…).
    pub(crate) fn from_chat(usage: &Value) -> Option<Tokens> {
        usage.as_object()?;
        Some(Tokens::new(
            count(usage, "prompt_tokens"),
            count(usage, "completion_tokens"),
            usage.get("total_tokens").and_then(Value::as_u64),
            count(&usage["prompt_tokens_details"], "cached_tokens"),
            count(&usage["completion_tokens_details"], "reasoning_tokens"),
        ))
    }

    fn new(input: u64, output: u64, total: Option<u64>, cached: u64, reasoning: u64) -> Tokens {
        Tokens {
            input,
            output,
            total: total.unwrap_or(input + output),
            cached,
            reasoning,
        }
    }

    pub(crate) fn to_chat(self) -> ChatUsage {
        ChatUsage {
            prompt_tokens: self.input,
            completion_tokens: self.output,
            total_tokens: self.total,
            prompt_tokens_details: CachedTokens {
                cached_tokens: self.cached,
            },
            completion_tokens_details: ReasoningTokens {
                reasoning_tokens: self.reasoning,
            },
        }
    }

    pub(crate) fn to_responses(self) -> ResponsesUsage {
        ResponsesUsage {
            input_tokens: self.input,
            input_tokens_details: CachedTokens {
                cached_tokens: self.cached,
            },
            output_tokens: self.output,
            output_tokens_details: ReasoningTokens {
                reasoning_tokens: self.reasoning,
            },
            total_tokens: self.total,
        }
    }
}

#[derive(Debug, Serialize)]
pub(crate) struct ChatUsage {
    prompt_tokens: u64,
    completion_tokens: u64,
    total_tokens: u64,
    prompt_tokens_details: CachedTokens,
    completion_tokens_details: ReasoningTokens,
}

#[derive(Debug, Serialize)]
pub(crate) struct ResponsesUsage {
    input_tokens: u64,
    input_tokens_details: CachedTokens,
    output_tokens: u64,
    output_tokens_details: ReasoningTokens,
    total_tokens: u64,
}

#[derive(Debug, Serialize)]
struct CachedTokens {
    cached_tokens: u64,
}

#[derive(Debug, Serialize)]
struct ReasoningTokens {
    reasoning_tokens: u64,
}

/// The chat `finish_reason` of a Responses answer with `status`, the reason in its
/// `incomplete_details`, and whether it called a function.
pub(crate) fn finish_reason(
    status: &str,
    incomplete_reason: Option<&str>,
    called_function: bool,
) -> &'static str {
    match (status, incomplete_reason) {
        ("incomplete", Some("max_output_tokens")) => "length",
        ("incomplete", Some("content_filter")) => "content_filter",
        _ if called_function => "tool_calls",
        _ => "stop",
    }
}

/// How a chat answer that ended with `finish_reason` ends as a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ending {
    Completed,
    /// `response.incomplete` with this `incomplete_details.reason`.
    Incomplete(&'static str),
}

impl Ending {
    pub(crate) fn from_finish_reason(finish_reason: Option<&str>) -> Ending {
        match finish_reason {
            Some("length") => Ending::Incomplete("max_output_tokens"),
            Some("content_filter") => Ending::Incomplete("content_filter"),
            _ => Ending::Completed,
        }
    }

    /// The response's `status`.
    pub(crate) fn status(self) -> &'static str {
        match self {
            Ending::Completed => "completed",
            Ending::Incomplete(_) => "incomplete",
        }
    }

    /// The `status` of its output items.
    pub(crate) fn item_status(self) -> &'static str {
        self.status()
    }

    pub(crate) fn incomplete_details(self) -> Value {
        match self {
            Ending::Completed => Value::Null,
            Ending::Incomplete(reason) => json!({ "reason": reason }),
        }
    }

    /// The name of the stream's final event.
    pub(crate) fn event(self) -> &'static str {
        match self {
            Ending::Completed => "response.completed",
            Ending::Incomplete(_) => "response.incomplete",
        }
    }
}

/// What every `response` object of one answer repeats.
pub(crate) struct ResponseHead<'a> {
    pub id: &'a str,
    pub created_at: u64,
    pub model: &'a Value,
}

impl ResponseHead<'_> {
    /// The `response` object; `output` and `usage` as they are known so far.
    pub(crate) fn object(
        &self,
        status: &str,
        incomplete_details: Value,
        error: Value,
        output: Vec<Value>,
        usage: Option<ResponsesUsage>,
    ) -> Value {
        let mut response = Map::new();
        response.insert("id".into(), self.id.into());
        response.insert("object".into(), "response".into());
        response.insert("created_at".into(), self.created_at.into());
        response.insert("status".into(), status.into());
        response.insert("error".into(), error);
        response.insert("incomplete_details".into(), incomplete_details);
        response.insert("model".into(), self.model.clone());
        response.insert("output".into(), Value::Array(output));
        response.insert("usage".into(), usage.map_or(Value::Null, |u| json!(u)));
        Value::Object(response)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_carry_across() {
        assert_eq!(chat_id("resp_abc"), "chatcmpl-abc");
        assert_eq!(response_id("chatcmpl-abc"), "resp_abc");
        assert_eq!(chat_id("other"), "chatcmpl-other");
        assert_eq!(message_item_id("chatcmpl-abc"), "msg_abc");
        assert_eq!(function_item_id("call_1"), "fc_1");
    }

    #[test]
    fn usage_maps_both_ways() {
        let responses = json!({"input_tokens":11,"input_tokens_details":{"cached_tokens":3},
            "output_tokens":7,"output_tokens_details":{"reasoning_tokens":2},"total_tokens":18});
        let tokens = Tokens::from_responses(&responses).expect("usage");
        let chat = json!(tokens.to_chat());
        assert_eq!(
            chat,
            json!({"prompt_tokens":11,"completion_tokens":7,"total_tokens":18,
                "prompt_tokens_details":{"cached_tokens":3},
                "completion_tokens_details":{"reasoning_tokens":2}})
        );
        assert_eq!(Tokens::from_chat(&chat), Some(tokens));
        assert_eq!(json!(tokens.to_responses()), responses);
        assert_eq!(Tokens::from_chat(&Value::Null), None);
    }

    #[test]
    fn finish_reasons() {
        assert_eq!(finish_reason("completed", None, false), "stop");
        assert_eq!(finish_reason("completed", None, true), "tool_calls");
        assert_eq!(
            finish_reason("incomplete", Some("max_output_tokens"), true),
            "length"
        );
        assert_eq!(
            finish_reason("incomplete", Some("content_filter"), false),
            "content_filter"
        );
        assert_eq!(
            Ending::from_finish_reason(Some("length")).incomplete_details(),
            json!({"reason":"max_output_tokens"})
        );
        assert_eq!(
            Ending::from_finish_reason(Some("tool_calls")),
            Ending::Completed
        );
    }
}
