//! `limits.estimatePromptTokens`: the tokens of a request's prompt, estimated before it is sent,
//! so that one large request cannot overshoot a key's token window or budget. Text is counted
//! with the o200k_base encoding (GPT-4o and later, the gpt-5 and o-series); the framing of
//! messages, images and files are counted at fixed rates. The estimate only decides admission:
//! the key is charged what the upstream reports.
//!
//! The encoding's tables (about 45 MiB of memory, half a second to build) are loaded in the
//! background when a config turns the estimate on. Tokenizing runs at about 10 MB/s, so only
//! small bodies are counted on the caller's thread; larger ones go to the blocking pool.

use std::sync::OnceLock;

use serde_json::Value;
use tiktoken_rs::CoreBPE;

/// Bodies larger than this are counted on the blocking pool (about 0.2 ms of tokenizing).
const INLINE_MAX: usize = 2 * 1024;
/// Per message or input item: the separators around it, as OpenAI counts them (the role's own
/// token is counted as text).
const PER_ITEM: u64 = 3;
/// The start of the reply.
const PER_REQUEST: u64 = 3;
/// An image at low detail; high detail costs more, by tile, which the estimate does not know.
const PER_IMAGE: u64 = 85;

/// Members whose values are identifiers, settings or binary data rather than prompt text.
const NOT_TEXT: &[&str] = &[
    "model",
    "type",
    "id",
    "call_id",
    "tool_call_id",
    "detail",
    "format",
    "encoding_format",
    "user",
    "metadata",
    "prompt_cache_key",
    "safety_identifier",
    "service_tier",
    "reasoning_effort",
    "previous_response_id",
    "file_id",
    "file_data",
    "image_url",
    "input_image",
    "url",
    "stream_options",
    "reasoning",
];

static ENCODING: OnceLock<&'static CoreBPE> = OnceLock::new();

fn encoding() -> &'static CoreBPE {
    ENCODING.get_or_init(tiktoken_rs::o200k_base_singleton)
}

/// The estimated prompt tokens of a JSON request body, off the async worker when the body is
/// large or the encoding not loaded yet. A body that is not JSON counts as 0 (it is refused
/// later with its own error).
pub async fn prompt_tokens(body: bytes::Bytes) -> u64 {
    if body.len() <= INLINE_MAX && ENCODING.get().is_some() {
        return count_body(&body);
    }
    tokio::task::spawn_blocking(move || count_body(&body))
        .await
        .unwrap_or(0)
}

/// Loads the encoding in the background, so that the first estimate does not wait for it.
pub fn preload() {
    if ENCODING.get().is_none() {
        std::thread::spawn(|| {
            encoding();
        });
    }
}

fn count_body(body: &[u8]) -> u64 {
    match serde_json::from_slice::<Value>(body) {
        Ok(value) => PER_REQUEST + count_value(&value, None, encoding()),
        Err(_) => 0,
    }
}

/// Counts the text of `value`, found under the member `name`.
fn count_value(value: &Value, name: Option<&str>, bpe: &CoreBPE) -> u64 {
    match value {
        Value::String(text) => {
            if text.starts_with("data:") {
                PER_IMAGE
            } else {
                bpe.encode_ordinary(text).len() as u64
            }
        }
        // Embeddings inputs given as token ids are their own count.
        Value::Number(_) if name == Some("input") => 1,
        Value::Array(items) => {
            let framing = match name {
                Some("messages" | "input") => PER_ITEM,
                _ => 0,
            };
            items
                .iter()
                .map(|item| framing * u64::from(item.is_object()) + count_value(item, name, bpe))
                .sum()
        }
        Value::Object(members) => {
            let image = matches!(
                members.get("type").and_then(Value::as_str),
                Some("image_url" | "input_image" | "file" | "input_file")
            );
            let own = if image { PER_IMAGE } else { 0 };
            own + members
                .iter()
                .filter(|(key, _)| !NOT_TEXT.contains(&key.as_str()))
                .map(|(key, value)| count_value(value, Some(key.as_str()), bpe))
                .sum::<u64>()
        }
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn count(value: Value) -> u64 {
        count_body(&serde_json::to_vec(&value).expect("json"))
    }

    #[test]
    fn chat_messages_count_their_text_and_framing() {
        let text = "The quick brown fox jumps over the lazy dog.";
        let words = encoding().encode_ordinary(text).len() as u64;
        assert_eq!(words, 10);
        let body = json!({"model": "gpt-5-mini", "temperature": 0.2, "messages": [
            {"role": "system", "content": text},
            {"role": "user", "content": [{"type": "text", "text": text}]}
        ]});
        let roles = 2; // "system" and "user" are one token each
        assert_eq!(count(body), PER_REQUEST + 2 * PER_ITEM + roles + 2 * words);
    }

    #[test]
    fn images_count_at_the_low_detail_rate_whatever_their_size() {
        let url = format!("data:image/png;base64,{}", "A".repeat(100_000));
        let body = json!({"model": "m", "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": url, "detail": "high"}}
        ]}]});
        assert_eq!(count(body), PER_REQUEST + PER_ITEM + 1 + PER_IMAGE);
    }

    #[test]
    fn responses_input_instructions_and_tools_are_counted() {
        let body = json!({"model": "m", "instructions": "Be brief.", "input": "Hello there",
            "tools": [{"type": "function", "name": "lookup", "description": "Finds a thing",
                       "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}]});
        let bpe = encoding();
        let text = |s: &str| bpe.encode_ordinary(s).len() as u64;
        let expected = PER_REQUEST
            + text("Be brief.")
            + text("Hello there")
            + text("lookup")
            + text("Finds a thing");
        assert_eq!(count(body), expected);
    }

    #[test]
    fn embeddings_token_arrays_count_one_per_token() {
        let body = json!({"model": "m", "input": [[1, 2, 3], [4, 5]]});
        assert_eq!(count(body), PER_REQUEST + 5);
    }

    #[test]
    fn a_large_prompt_is_counted_in_proportion() {
        let paragraph = "Gateways check keys, map model names to deployments and stream answers. ";
        let small = count(json!({"model": "m", "input": paragraph}));
        let large = count(json!({"model": "m", "input": paragraph.repeat(1000)}));
        let per_paragraph = small - PER_REQUEST;
        // Tokens may merge across the joins, never by more than a token per repetition.
        assert!(large - PER_REQUEST <= 1000 * per_paragraph, "{large}");
        assert!(large - PER_REQUEST >= 1000 * (per_paragraph - 1), "{large}");
    }

    #[test]
    fn a_body_that_is_not_json_counts_nothing() {
        assert_eq!(count_body(b"not json"), 0);
    }
}
