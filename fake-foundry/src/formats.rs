//! Wire formats: chat completion, Responses API and image bodies and their SSE event streams,
//! written straight into byte buffers from pre-serialized fragments.

use bytes::Bytes;
use serde::Deserialize;

use crate::ids;

/// `usage.prompt_tokens` (chat) and `usage.input_tokens` (Responses) of every answer.
pub const USAGE_PROMPT_TOKENS: u64 = 11;
/// `usage.completion_tokens` (chat) and `usage.output_tokens` (Responses) of every answer.
pub const USAGE_COMPLETION_TOKENS: u64 = 7;
/// `usage.total_tokens` of every chat / Responses answer.
pub const USAGE_TOTAL_TOKENS: u64 = 18;
/// `cached_tokens` inside the prompt / input token details.
pub const USAGE_CACHED_TOKENS: u64 = 3;
/// `reasoning_tokens` inside the completion / output token details.
pub const USAGE_REASONING_TOKENS: u64 = 0;
/// `usage.input_tokens` (all text tokens) of an image generation.
pub const IMAGE_USAGE_INPUT_TOKENS: u64 = 50;
/// `usage.output_tokens` per generated image.
pub const IMAGE_USAGE_OUTPUT_TOKENS_PER_IMAGE: u64 = 272;
/// Most images one generation request returns (`n` is clamped to this).
pub const IMAGE_MAX_N: u64 = 10;
/// A valid 1×1 RGBA PNG, base64-encoded: the `b64_json` of every generated image.
pub const PNG_BASE64: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==";
/// `system_fingerprint` of every chat answer.
pub const SYSTEM_FINGERPRINT: &str = "fp_ee1d74bde0";

// The literals below spell out the constants above (checked by a unit test) so they can be
// pasted into responses without formatting numbers at request time.
pub(crate) const CHAT_USAGE: &str = concat!(
    r#"{"completion_tokens":7,"completion_tokens_details":{"accepted_prediction_tokens":0,"audio_tokens":0,"reasoning_tokens":0,"rejected_prediction_tokens":0},"#,
    r#""prompt_tokens":11,"prompt_tokens_details":{"audio_tokens":0,"cached_tokens":3},"total_tokens":18}"#
);
pub(crate) const RESPONSES_USAGE: &str = concat!(
    r#"{"input_tokens":11,"input_tokens_details":{"cached_tokens":3},"#,
    r#""output_tokens":7,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":18}"#
);

macro_rules! safe_filters {
    () => {
        r#""hate":{"filtered":false,"severity":"safe"},"self_harm":{"filtered":false,"severity":"safe"},"sexual":{"filtered":false,"severity":"safe"},"violence":{"filtered":false,"severity":"safe"}"#
    };
}

macro_rules! prompt_filter_results {
    () => {
        concat!(
            r#"[{"prompt_index":0,"content_filter_results":{"#,
            r#""hate":{"filtered":false,"severity":"safe"},"jailbreak":{"filtered":false,"detected":false},"#,
            r#""self_harm":{"filtered":false,"severity":"safe"},"sexual":{"filtered":false,"severity":"safe"},"violence":{"filtered":false,"severity":"safe"}}}]"#
        )
    };
}

/// Azure's first stream event: no choices, only the prompt's content-filter verdict.
const CHAT_PROMPT_FILTER_EVENT: &str = concat!(
    r#"data: {"choices":[],"created":0,"id":"","model":"","object":"","prompt_filter_results":"#,
    prompt_filter_results!(),
    "}"
);
const CHAT_DELTA_HEAD: &str = concat!(
    r#"data: {"choices":[{"content_filter_results":{"#,
    safe_filters!(),
    r#"},"delta":{"content":"#
);
const CHAT_DELTA_ROLE: &str = r#","refusal":null,"role":"assistant""#;
const CHAT_DELTA_TAIL: &str = r#"},"finish_reason":null,"index":0,"logprobs":null}],"#;
const CHAT_FINISH_HEAD: &str = r#"data: {"choices":[{"content_filter_results":{},"delta":{},"finish_reason":"stop","index":0,"logprobs":null}],"#;

/// The completion text, JSON-escaped once, whole and split into stream pieces.
#[derive(Debug)]
pub struct Completion {
    /// The text as given.
    raw: String,
    /// The whole text as a JSON string literal (quotes included).
    text: String,
    /// Consecutive pieces of the text (split on character boundaries), each a JSON string literal.
    pieces: Vec<String>,
}

impl Completion {
    /// Splits `text` into `chunks` pieces of (nearly) equal character counts; pieces are empty
    /// when there are more chunks than characters.
    pub fn new(text: &str, chunks: usize) -> Self {
        let chars = text.chars().count();
        let mut pieces = Vec::with_capacity(chunks);
        let mut rest = text;
        for i in 0..chunks {
            let take = (i + 1) * chars / chunks - i * chars / chunks;
            let split = rest
                .char_indices()
                .nth(take)
                .map_or(rest.len(), |(at, _)| at);
            let (piece, tail) = rest.split_at(split);
            pieces.push(json_string(piece));
            rest = tail;
        }
        Self {
            raw: text.to_owned(),
            text: json_string(text),
            pieces,
        }
    }

    /// The text as given.
    pub(crate) fn raw_text(&self) -> &str {
        &self.raw
    }

    /// The stream pieces as plain strings.
    pub(crate) fn pieces(&self) -> Vec<String> {
        self.pieces
            .iter()
            .map(|p| serde_json::from_str(p).unwrap_or_default())
            .collect()
    }

    /// Whether this was prepared from exactly `text` split into `chunks` pieces.
    pub fn matches(&self, text: &str, chunks: usize) -> bool {
        self.pieces.len() == chunks && self.raw == text
    }
}

/// How a Responses stream ends (`"fake": {"final_event": ...}`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
pub enum FinalEvent {
    #[default]
    #[serde(rename = "response.completed")]
    Completed,
    #[serde(rename = "response.incomplete")]
    Incomplete,
    #[serde(rename = "response.failed")]
    Failed,
}

impl FinalEvent {
    fn event_type(self) -> &'static str {
        match self {
            Self::Completed => "response.completed",
            Self::Incomplete => "response.incomplete",
            Self::Failed => "response.failed",
        }
    }

    fn status(self) -> &'static str {
        match self {
            Self::Completed => "completed",
            Self::Incomplete => "incomplete",
            Self::Failed => "failed",
        }
    }

    fn item_status(self) -> &'static str {
        match self {
            Self::Completed => "completed",
            Self::Incomplete | Self::Failed => "incomplete",
        }
    }

    fn error(self) -> &'static str {
        match self {
            Self::Failed => {
                r#"{"code":"server_error","message":"The model failed to generate a response."}"#
            }
            Self::Completed | Self::Incomplete => "null",
        }
    }

    fn incomplete_details(self) -> &'static str {
        match self {
            Self::Incomplete => r#"{"reason":"max_output_tokens"}"#,
            Self::Completed | Self::Failed => "null",
        }
    }
}

/// A rendered SSE body with the offsets needed to pace or cut it.
#[derive(Debug)]
pub struct Sse {
    pub bytes: Bytes,
    /// End offset (exclusive) of each event, in order.
    pub event_ends: Vec<usize>,
    /// Offsets where the configured chunk gap is inserted: the start of every content delta
    /// after the first.
    pub gap_points: Vec<usize>,
}

struct SseWriter {
    buf: Vec<u8>,
    event_ends: Vec<usize>,
    gap_points: Vec<usize>,
}

impl SseWriter {
    fn with_capacity(bytes: usize, events: usize) -> Self {
        Self {
            buf: Vec::with_capacity(bytes),
            event_ends: Vec::with_capacity(events),
            gap_points: Vec::with_capacity(events),
        }
    }

    fn put(&mut self, s: &str) {
        self.buf.extend_from_slice(s.as_bytes());
    }

    fn end_event(&mut self) {
        self.buf.extend_from_slice(b"\n\n");
        self.event_ends.push(self.buf.len());
    }

    fn mark_gap(&mut self) {
        self.gap_points.push(self.buf.len());
    }

    fn finish(self) -> Sse {
        Sse {
            bytes: Bytes::from(self.buf),
            event_ends: self.event_ends,
            gap_points: self.gap_points,
        }
    }
}

/// A non-streaming `chat.completion` object. `model` is a JSON string literal.
pub fn chat_completion(model: &str, completion: &Completion) -> Bytes {
    let mut buf = Vec::with_capacity(1024 + completion.text.len() + model.len());
    put(
        &mut buf,
        concat!(
            r#"{"choices":[{"content_filter_results":{"#,
            safe_filters!(),
            r#"},"finish_reason":"stop","index":0,"logprobs":null,"message":{"annotations":[],"content":"#
        ),
    );
    put(&mut buf, &completion.text);
    put(
        &mut buf,
        r#","refusal":null,"role":"assistant"}}],"created":"#,
    );
    push_u64(&mut buf, ids::unix_now());
    put(&mut buf, r#","id":"chatcmpl-"#);
    ids::push_base62(&mut buf, 29);
    put(&mut buf, r#"","model":"#);
    put(&mut buf, model);
    put(
        &mut buf,
        concat!(
            r#","object":"chat.completion","prompt_filter_results":"#,
            prompt_filter_results!(),
            r#","system_fingerprint":""#
        ),
    );
    put(&mut buf, SYSTEM_FINGERPRINT);
    put(&mut buf, r#"","usage":"#);
    put(&mut buf, CHAT_USAGE);
    put(&mut buf, "}");
    Bytes::from(buf)
}

/// A `chat.completion.chunk` SSE stream ending in `data: [DONE]`. `model` is a JSON string
/// literal.
pub fn chat_stream(model: &str, completion: &Completion, include_usage: bool) -> Sse {
    // Everything after `"choices":[...],` that every chunk repeats.
    let mut tail = Vec::with_capacity(128 + model.len());
    put(&mut tail, r#""created":"#);
    push_u64(&mut tail, ids::unix_now());
    put(&mut tail, r#","id":"chatcmpl-"#);
    ids::push_base62(&mut tail, 29);
    put(&mut tail, r#"","model":"#);
    put(&mut tail, model);
    put(
        &mut tail,
        r#","object":"chat.completion.chunk","system_fingerprint":""#,
    );
    put(&mut tail, SYSTEM_FINGERPRINT);
    put(&mut tail, "\"");
    // With include_usage, OpenAI sends `"usage":null` on every chunk but the usage chunk.
    let usage_null = if include_usage {
        r#","usage":null}"#
    } else {
        "}"
    };

    let chunks = completion.pieces.len();
    let text_bytes: usize = completion.pieces.iter().map(String::len).sum();
    let per_chunk = CHAT_DELTA_HEAD.len() + CHAT_DELTA_TAIL.len() + tail.len() + 32;
    let mut w = SseWriter::with_capacity(
        CHAT_PROMPT_FILTER_EVENT.len() + text_bytes + (chunks + 3) * per_chunk + 512,
        chunks + 4,
    );

    w.put(CHAT_PROMPT_FILTER_EVENT);
    w.end_event();
    for (i, piece) in completion.pieces.iter().enumerate() {
        if i > 0 {
            w.mark_gap();
        }
        w.put(CHAT_DELTA_HEAD);
        w.put(piece);
        if i == 0 {
            w.put(CHAT_DELTA_ROLE);
        }
        w.put(CHAT_DELTA_TAIL);
        w.buf.extend_from_slice(&tail);
        w.put(usage_null);
        w.end_event();
    }
    w.put(CHAT_FINISH_HEAD);
    w.buf.extend_from_slice(&tail);
    w.put(usage_null);
    w.end_event();
    if include_usage {
        w.put(r#"data: {"choices":[],"#);
        w.buf.extend_from_slice(&tail);
        w.put(r#","usage":"#);
        w.put(CHAT_USAGE);
        w.put("}");
        w.end_event();
    }
    w.put("data: [DONE]");
    w.end_event();
    w.finish()
}

/// Ids and metadata shared by every event of one Responses answer.
struct ResponseMeta<'a> {
    id: Vec<u8>,
    item_id: Vec<u8>,
    model: &'a str,
    created_at: u64,
}

impl<'a> ResponseMeta<'a> {
    fn new(model: &'a str) -> Self {
        let mut id = Vec::with_capacity(53);
        id.extend_from_slice(b"resp_");
        ids::push_hex(&mut id, 48);
        let mut item_id = Vec::with_capacity(52);
        item_id.extend_from_slice(b"msg_");
        ids::push_hex(&mut item_id, 48);
        Self {
            id,
            item_id,
            model,
            created_at: ids::unix_now(),
        }
    }
}

/// A non-streaming Responses API `response` object. `model` is a JSON string literal.
pub fn response_object(model: &str, completion: &Completion) -> Bytes {
    let meta = ResponseMeta::new(model);
    let mut buf = Vec::with_capacity(1024 + completion.text.len() + model.len());
    push_response(
        &mut buf,
        &meta,
        Some(FinalEvent::Completed),
        &completion.text,
    );
    Bytes::from(buf)
}

/// A Responses API event stream (`event: <type>` + `data: {"type":<type>,"sequence_number":n,…}`),
/// ending with `final_event`. `model` is a JSON string literal.
pub fn response_stream(model: &str, completion: &Completion, final_event: FinalEvent) -> Sse {
    let meta = ResponseMeta::new(model);
    let text = completion.text.as_str();
    let chunks = completion.pieces.len();
    let text_bytes: usize = completion.pieces.iter().map(String::len).sum();
    let mut w = SseWriter::with_capacity(
        4096 + 4 * text.len() + text_bytes + chunks * 200 + 3 * model.len(),
        chunks + 8,
    );
    let mut seq = 0;

    begin_event(&mut w, "response.created", &mut seq);
    w.put(r#","response":"#);
    push_response(&mut w.buf, &meta, None, text);
    w.put("}");
    w.end_event();

    begin_event(&mut w, "response.in_progress", &mut seq);
    w.put(r#","response":"#);
    push_response(&mut w.buf, &meta, None, text);
    w.put("}");
    w.end_event();

    begin_event(&mut w, "response.output_item.added", &mut seq);
    w.put(r#","output_index":0,"item":"#);
    push_message_item(&mut w.buf, &meta.item_id, "in_progress", None);
    w.put("}");
    w.end_event();

    begin_event(&mut w, "response.content_part.added", &mut seq);
    push_item_ref(&mut w, &meta.item_id);
    w.put(r#","part":"#);
    push_text_part(&mut w.buf, r#""""#);
    w.put("}");
    w.end_event();

    for (i, piece) in completion.pieces.iter().enumerate() {
        if i > 0 {
            w.mark_gap();
        }
        begin_event(&mut w, "response.output_text.delta", &mut seq);
        push_item_ref(&mut w, &meta.item_id);
        w.put(r#","delta":"#);
        w.put(piece);
        w.put(r#","logprobs":[]}"#);
        w.end_event();
    }

    begin_event(&mut w, "response.output_text.done", &mut seq);
    push_item_ref(&mut w, &meta.item_id);
    w.put(r#","text":"#);
    w.put(text);
    w.put(r#","logprobs":[]}"#);
    w.end_event();

    begin_event(&mut w, "response.content_part.done", &mut seq);
    push_item_ref(&mut w, &meta.item_id);
    w.put(r#","part":"#);
    push_text_part(&mut w.buf, text);
    w.put("}");
    w.end_event();

    begin_event(&mut w, "response.output_item.done", &mut seq);
    w.put(r#","output_index":0,"item":"#);
    push_message_item(
        &mut w.buf,
        &meta.item_id,
        final_event.item_status(),
        Some(text),
    );
    w.put("}");
    w.end_event();

    begin_event(&mut w, final_event.event_type(), &mut seq);
    w.put(r#","response":"#);
    push_response(&mut w.buf, &meta, Some(final_event), text);
    w.put("}");
    w.end_event();

    w.finish()
}

fn begin_event(w: &mut SseWriter, event_type: &str, seq: &mut u64) {
    w.put("event: ");
    w.put(event_type);
    w.put("\ndata: {\"type\":\"");
    w.put(event_type);
    w.put(r#"","sequence_number":"#);
    push_u64(&mut w.buf, *seq);
    *seq += 1;
}

fn push_item_ref(w: &mut SseWriter, item_id: &[u8]) {
    w.put(r#","item_id":""#);
    w.buf.extend_from_slice(item_id);
    w.put(r#"","output_index":0,"content_index":0"#);
}

/// The `response` object; `None` means in progress (no output, no usage yet). `text` is a JSON
/// string literal.
fn push_response(
    buf: &mut Vec<u8>,
    meta: &ResponseMeta<'_>,
    final_event: Option<FinalEvent>,
    text: &str,
) {
    put(buf, r#"{"id":""#);
    buf.extend_from_slice(&meta.id);
    put(buf, r#"","object":"response","created_at":"#);
    push_u64(buf, meta.created_at);
    put(buf, r#","status":""#);
    put(buf, final_event.map_or("in_progress", FinalEvent::status));
    put(buf, r#"","background":false,"error":"#);
    put(buf, final_event.map_or("null", FinalEvent::error));
    put(buf, r#","incomplete_details":"#);
    put(
        buf,
        final_event.map_or("null", FinalEvent::incomplete_details),
    );
    put(
        buf,
        r#","instructions":null,"max_output_tokens":null,"model":"#,
    );
    put(buf, meta.model);
    put(buf, r#","output":["#);
    if let Some(final_event) = final_event {
        push_message_item(buf, &meta.item_id, final_event.item_status(), Some(text));
    }
    put(
        buf,
        concat!(
            r#"],"parallel_tool_calls":true,"previous_response_id":null,"#,
            r#""reasoning":{"effort":null,"summary":null},"store":true,"temperature":1.0,"#,
            r#""text":{"format":{"type":"text"}},"tool_choice":"auto","tools":[],"top_p":1.0,"#,
            r#""truncation":"disabled","usage":"#
        ),
    );
    put(buf, final_event.map_or("null", |_| RESPONSES_USAGE));
    put(buf, r#","user":null,"metadata":{}}"#);
}

/// An assistant `message` output item; `text` (a JSON string literal) is its single part.
fn push_message_item(buf: &mut Vec<u8>, item_id: &[u8], status: &str, text: Option<&str>) {
    put(buf, r#"{"id":""#);
    buf.extend_from_slice(item_id);
    put(buf, r#"","type":"message","status":""#);
    put(buf, status);
    put(buf, r#"","content":["#);
    if let Some(text) = text {
        push_text_part(buf, text);
    }
    put(buf, r#"],"role":"assistant"}"#);
}

fn push_text_part(buf: &mut Vec<u8>, text: &str) {
    put(
        buf,
        r#"{"type":"output_text","annotations":[],"logprobs":[],"text":"#,
    );
    put(buf, text);
    put(buf, "}");
}

/// An image generation answer with `n` copies of a tiny PNG.
pub fn image_generation(n: u64) -> Bytes {
    let n = n.clamp(1, IMAGE_MAX_N);
    let mut buf = Vec::with_capacity(256 + n as usize * (PNG_BASE64.len() + 48));
    put(&mut buf, r#"{"created":"#);
    push_u64(&mut buf, ids::unix_now());
    put(&mut buf, r#","data":["#);
    for i in 0..n {
        if i > 0 {
            put(&mut buf, ",");
        }
        put(&mut buf, r#"{"b64_json":""#);
        put(&mut buf, PNG_BASE64);
        put(&mut buf, r#"","revised_prompt":null}"#);
    }
    let output = IMAGE_USAGE_OUTPUT_TOKENS_PER_IMAGE * n;
    put(&mut buf, r#"],"usage":{"input_tokens":"#);
    push_u64(&mut buf, IMAGE_USAGE_INPUT_TOKENS);
    put(
        &mut buf,
        r#","input_tokens_details":{"image_tokens":0,"text_tokens":"#,
    );
    push_u64(&mut buf, IMAGE_USAGE_INPUT_TOKENS);
    put(&mut buf, r#"},"output_tokens":"#);
    push_u64(&mut buf, output);
    put(&mut buf, r#","total_tokens":"#);
    push_u64(&mut buf, IMAGE_USAGE_INPUT_TOKENS + output);
    put(&mut buf, "}}");
    Bytes::from(buf)
}

/// Dimensions of the fake's embedding vectors.
pub const EMBEDDING_DIMENSIONS: usize = 8;

/// An embeddings answer: one vector of [`EMBEDDING_DIMENSIONS`] numbers, and usage of one
/// prompt token per 8 request bytes.
pub fn embeddings(model: &str, request_len: usize) -> Bytes {
    let tokens = (request_len as u64).div_ceil(8).max(1);
    let mut buf = Vec::with_capacity(256);
    put(
        &mut buf,
        r#"{"object":"list","data":[{"object":"embedding","index":0,"embedding":["#,
    );
    for i in 0..EMBEDDING_DIMENSIONS {
        if i > 0 {
            put(&mut buf, ",");
        }
        put(&mut buf, &format!("0.{}", 125 * (i + 1)));
    }
    put(&mut buf, r#"]}],"model":"#);
    put(&mut buf, model);
    put(&mut buf, r#","usage":{"prompt_tokens":"#);
    push_u64(&mut buf, tokens);
    put(&mut buf, r#","total_tokens":"#);
    push_u64(&mut buf, tokens);
    put(&mut buf, "}}");
    Bytes::from(buf)
}

/// An Azure/OpenAI-shaped error body: `{"error":{"code":…,"message":…}}`.
pub fn error_body(code: &str, message: &str) -> String {
    let mut buf = Vec::with_capacity(32 + code.len() + message.len());
    put(&mut buf, r#"{"error":{"code":"#);
    push_json_str(&mut buf, code);
    put(&mut buf, r#","message":"#);
    push_json_str(&mut buf, message);
    put(&mut buf, "}}");
    String::from_utf8(buf).expect("built from UTF-8 strings and ASCII escapes")
}

/// `s` as a JSON string literal, quotes included.
pub fn json_string(s: &str) -> String {
    let mut buf = Vec::with_capacity(s.len() + 2);
    push_json_str(&mut buf, s);
    String::from_utf8(buf).expect("built from a UTF-8 string and ASCII escapes")
}

fn put(buf: &mut Vec<u8>, s: &str) {
    buf.extend_from_slice(s.as_bytes());
}

fn push_json_str(buf: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = s.as_bytes();
    buf.push(b'"');
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let short: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f => b"",
            _ => continue,
        };
        buf.extend_from_slice(&bytes[start..i]);
        if short.is_empty() {
            buf.extend_from_slice(b"\\u00");
            buf.push(HEX[usize::from(b >> 4)]);
            buf.push(HEX[usize::from(b & 0xF)]);
        } else {
            buf.extend_from_slice(short);
        }
        start = i + 1;
    }
    buf.extend_from_slice(&bytes[start..]);
    buf.push(b'"');
}

fn push_u64(buf: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    buf.extend_from_slice(&digits[at..]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    const TEXT: &str = "Hello, 世界! 👋 \"ok\"\n";

    fn model() -> String {
        json_string("gpt-4o")
    }

    fn events(sse: &Sse) -> Vec<&str> {
        let text = std::str::from_utf8(&sse.bytes).expect("utf-8");
        let mut start = 0;
        sse.event_ends
            .iter()
            .map(|&end| {
                let event = &text[start..end];
                start = end;
                event
            })
            .collect()
    }

    fn data(event: &str) -> Value {
        let line = event
            .lines()
            .find_map(|l| l.strip_prefix("data: "))
            .expect("data line");
        serde_json::from_str(line).expect("json data")
    }

    #[test]
    fn usage_literals_match_the_constants() {
        let chat: Value = serde_json::from_str(CHAT_USAGE).expect("json");
        assert_eq!(chat["prompt_tokens"], USAGE_PROMPT_TOKENS);
        assert_eq!(chat["completion_tokens"], USAGE_COMPLETION_TOKENS);
        assert_eq!(chat["total_tokens"], USAGE_TOTAL_TOKENS);
        assert_eq!(
            chat["prompt_tokens_details"]["cached_tokens"],
            USAGE_CACHED_TOKENS
        );
        assert_eq!(
            chat["completion_tokens_details"]["reasoning_tokens"],
            USAGE_REASONING_TOKENS
        );
        let responses: Value = serde_json::from_str(RESPONSES_USAGE).expect("json");
        assert_eq!(responses["input_tokens"], USAGE_PROMPT_TOKENS);
        assert_eq!(responses["output_tokens"], USAGE_COMPLETION_TOKENS);
        assert_eq!(responses["total_tokens"], USAGE_TOTAL_TOKENS);
        assert_eq!(
            responses["input_tokens_details"]["cached_tokens"],
            USAGE_CACHED_TOKENS
        );
        assert_eq!(
            responses["output_tokens_details"]["reasoning_tokens"],
            USAGE_REASONING_TOKENS
        );
    }

    #[test]
    fn pieces_split_on_char_boundaries_and_concatenate_to_the_text() {
        for chunks in [0, 1, 3, 5, 40] {
            let completion = Completion::new(TEXT, chunks);
            assert_eq!(completion.pieces.len(), chunks);
            let joined: String = completion
                .pieces
                .iter()
                .map(|p| serde_json::from_str::<String>(p).expect("json string"))
                .collect();
            if chunks > 0 {
                assert_eq!(joined, TEXT);
            }
            assert!(completion.matches(TEXT, chunks));
        }
    }

    #[test]
    fn chat_completion_is_a_complete_object() {
        let body = chat_completion(&model(), &Completion::new(TEXT, 5));
        let v: Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(v["object"], "chat.completion");
        assert_eq!(v["model"], "gpt-4o");
        assert!(v["id"].as_str().expect("id").starts_with("chatcmpl-"));
        assert_eq!(v["choices"][0]["message"]["content"], TEXT);
        assert_eq!(v["choices"][0]["message"]["role"], "assistant");
        assert_eq!(v["choices"][0]["finish_reason"], "stop");
        assert_eq!(v["usage"]["total_tokens"], USAGE_TOTAL_TOKENS);
        assert_eq!(v["system_fingerprint"], SYSTEM_FINGERPRINT);
    }

    #[test]
    fn chat_stream_ends_with_done_and_reassembles_the_text() {
        let sse = chat_stream(&model(), &Completion::new(TEXT, 5), false);
        let events = events(&sse);
        assert_eq!(sse.event_ends.last(), Some(&sse.bytes.len()));
        assert_eq!(events.len(), 1 + 5 + 1 + 1);
        assert_eq!(events.last(), Some(&"data: [DONE]\n\n"));
        let first = data(events[0]);
        assert_eq!(first["choices"], Value::Array(vec![]));
        assert!(first["prompt_filter_results"].is_array());
        let mut text = String::new();
        for (i, event) in events[1..6].iter().enumerate() {
            assert!(event.starts_with("data: {") && event.ends_with("}\n\n"));
            let chunk = data(event);
            assert_eq!(chunk["object"], "chat.completion.chunk");
            assert_eq!(chunk["model"], "gpt-4o");
            let delta = &chunk["choices"][0]["delta"];
            assert_eq!(delta.get("role").is_some(), i == 0);
            text.push_str(delta["content"].as_str().expect("content"));
        }
        assert_eq!(text, TEXT);
        assert_eq!(data(events[6])["choices"][0]["finish_reason"], "stop");
        assert!(events.iter().all(|e| !e.contains("\"usage\"")));
        assert_eq!(sse.gap_points.len(), 4);
    }

    #[test]
    fn chat_stream_usage_chunk_only_with_include_usage() {
        let sse = chat_stream(&model(), &Completion::new(TEXT, 3), true);
        let events = events(&sse);
        assert_eq!(events.len(), 1 + 3 + 1 + 1 + 1);
        let usage = data(events[events.len() - 2]);
        assert_eq!(usage["choices"], Value::Array(vec![]));
        assert_eq!(usage["usage"]["prompt_tokens"], USAGE_PROMPT_TOKENS);
        assert_eq!(
            usage["usage"]["prompt_tokens_details"]["cached_tokens"],
            USAGE_CACHED_TOKENS
        );
        for event in &events[1..events.len() - 2] {
            assert_eq!(data(event)["usage"], Value::Null);
        }
        assert_eq!(events.last(), Some(&"data: [DONE]\n\n"));
    }

    #[test]
    fn response_stream_events_are_numbered_and_typed() {
        for final_event in [
            FinalEvent::Completed,
            FinalEvent::Incomplete,
            FinalEvent::Failed,
        ] {
            let sse = response_stream(&model(), &Completion::new(TEXT, 4), final_event);
            let events = events(&sse);
            assert_eq!(events.len(), 4 + 4 + 4);
            let mut types = Vec::new();
            let mut text = String::new();
            for (n, event) in events.iter().enumerate() {
                let name = event
                    .strip_prefix("event: ")
                    .and_then(|rest| rest.split('\n').next())
                    .expect("event line");
                let payload = data(event);
                assert_eq!(payload["type"], name);
                assert_eq!(payload["sequence_number"], n as u64);
                if name == "response.output_text.delta" {
                    text.push_str(payload["delta"].as_str().expect("delta"));
                }
                types.push(name.to_owned());
            }
            assert_eq!(text, TEXT);
            assert_eq!(types[0], "response.created");
            assert_eq!(types[1], "response.in_progress");
            assert_eq!(types[4], "response.output_text.delta");
            assert_eq!(types[types.len() - 1], final_event.event_type());
            let last = data(events[events.len() - 1]);
            assert_eq!(last["response"]["status"], final_event.status());
            assert_eq!(
                last["response"]["usage"]["total_tokens"],
                USAGE_TOTAL_TOKENS
            );
            assert_eq!(last["response"]["output"][0]["content"][0]["text"], TEXT);
            assert_eq!(data(events[0])["response"]["usage"], Value::Null);
        }
    }

    #[test]
    fn response_object_is_completed_with_usage() {
        let body = response_object(&model(), &Completion::new(TEXT, 5));
        let v: Value = serde_json::from_slice(&body).expect("json");
        assert!(v["id"].as_str().expect("id").starts_with("resp_"));
        assert_eq!(v["object"], "response");
        assert_eq!(v["status"], "completed");
        assert_eq!(v["output"][0]["type"], "message");
        assert_eq!(v["output"][0]["content"][0]["type"], "output_text");
        assert_eq!(v["output"][0]["content"][0]["text"], TEXT);
        assert_eq!(v["usage"]["input_tokens"], USAGE_PROMPT_TOKENS);
    }

    #[test]
    fn image_generation_has_n_images_and_usage() {
        let v: Value = serde_json::from_slice(&image_generation(2)).expect("json");
        assert_eq!(v["data"].as_array().map(Vec::len), Some(2));
        assert_eq!(v["data"][1]["b64_json"], PNG_BASE64);
        assert_eq!(
            v["usage"]["total_tokens"],
            IMAGE_USAGE_INPUT_TOKENS + 2 * IMAGE_USAGE_OUTPUT_TOKENS_PER_IMAGE
        );
    }

    #[test]
    fn error_body_escapes() {
        let v: Value = serde_json::from_str(&error_body("400", "bad \"x\"\u{1}")).expect("json");
        assert_eq!(v["error"]["code"], "400");
        assert_eq!(v["error"]["message"], "bad \"x\"\u{1}");
    }
}
