//! Token usage as the gateway counts it, read from the upstream's own JSON (chat and Responses
//! shapes alike). Reads bytes that pass by; never changes or keeps them.

use std::sync::LazyLock;

use memchr::memmem;
use serde::{Deserialize, Serialize};

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
    pub cached_tokens: u64,
    /// `completion_tokens_details.reasoning_tokens` (chat) or
    /// `output_tokens_details.reasoning_tokens` (Responses); part of the completion tokens.
    #[serde(default)]
    pub reasoning_tokens: u64,
}

/// The usage object of chat (`prompt_tokens`…) and Responses/images (`input_tokens`…).
#[derive(Deserialize)]
pub(crate) struct WireUsage {
    #[serde(alias = "input_tokens")]
    prompt_tokens: Option<u64>,
    #[serde(alias = "output_tokens")]
    completion_tokens: Option<u64>,
    total_tokens: Option<u64>,
    #[serde(alias = "input_tokens_details")]
    prompt_tokens_details: Option<WireDetails>,
    #[serde(alias = "output_tokens_details")]
    completion_tokens_details: Option<WireDetails>,
}

#[derive(Deserialize)]
struct WireDetails {
    cached_tokens: Option<u64>,
    reasoning_tokens: Option<u64>,
}

impl From<WireUsage> for Usage {
    fn from(w: WireUsage) -> Self {
        let prompt = w.prompt_tokens.unwrap_or(0);
        let completion = w.completion_tokens.unwrap_or(0);
        Usage {
            prompt_tokens: prompt,
            completion_tokens: completion,
            total_tokens: w.total_tokens.unwrap_or(prompt + completion),
            cached_tokens: w
                .prompt_tokens_details
                .and_then(|d| d.cached_tokens)
                .unwrap_or(0),
            reasoning_tokens: w
                .completion_tokens_details
                .and_then(|d| d.reasoning_tokens)
                .unwrap_or(0),
        }
    }
}

/// How much of a non-streaming body's end is kept to find its `usage` (it is near the end in
/// every Azure response shape).
pub const JSON_TAIL_BYTES: usize = 64 * 1024;

/// Finds the last `"usage": {...}` key in a JSON document (or its tail) and reads it.
pub fn from_json_tail(tail: &[u8]) -> Option<Usage> {
    static FINDER: LazyLock<memmem::FinderRev<'static>> =
        LazyLock::new(|| memmem::FinderRev::new(b"\"usage\""));
    let finder = &*FINDER;
    let mut end = tail.len();
    while let Some(pos) = finder.rfind(&tail[..end]) {
        let after = &tail[pos + 7..];
        let skip = after.iter().take_while(|b| b.is_ascii_whitespace()).count();
        if after.get(skip) == Some(&b':') {
            let value = &after[skip + 1..];
            let mut values =
                serde_json::Deserializer::from_slice(value).into_iter::<Option<WireUsage>>();
            return values
                .next()
                .and_then(Result::ok)
                .flatten()
                .map(Usage::from);
        }
        end = pos;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_usage_with_cached_tokens_is_read() {
        let body = br#"{"choices":[],"usage":{"prompt_tokens":11,"completion_tokens":7,"total_tokens":18,"prompt_tokens_details":{"cached_tokens":3},"completion_tokens_details":{"reasoning_tokens":5}}}"#;
        assert_eq!(
            from_json_tail(body),
            Some(Usage {
                prompt_tokens: 11,
                completion_tokens: 7,
                total_tokens: 18,
                cached_tokens: 3,
                reasoning_tokens: 5,
            })
        );
    }

    #[test]
    fn responses_usage_names_are_read() {
        let body = br#"{"output":[{"content":[{"text":"the word \"usage\": here"}]}],"usage":{"input_tokens":5,"input_tokens_details":{"cached_tokens":2},"output_tokens":4,"output_tokens_details":{"reasoning_tokens":3},"total_tokens":9},"user":null}"#;
        let usage = from_json_tail(body).expect("usage");
        assert_eq!(
            (
                usage.prompt_tokens,
                usage.completion_tokens,
                usage.cached_tokens,
                usage.reasoning_tokens
            ),
            (5, 4, 2, 3)
        );
    }

    #[test]
    fn text_mentioning_usage_is_not_mistaken_for_the_key() {
        let body = br#"{"content":"\"usage\": {\"prompt_tokens\": 999}"}"#;
        assert_eq!(from_json_tail(body), None);
    }

    #[test]
    fn null_usage_is_none() {
        assert_eq!(from_json_tail(br#"{"usage": null}"#), None);
    }

    #[test]
    fn total_defaults_to_sum() {
        let usage = from_json_tail(br#"{"usage":{"prompt_tokens":2,"completion_tokens":3}}"#);
        assert_eq!(usage.map(|u| u.total_tokens), Some(5));
    }
}
