//! Server-sent events seen in passing: finds usage in the events of a stream without changing,
//! delaying or keeping its bytes (only the unfinished last line is held until its end arrives).

use memchr::{memchr, memmem, memrchr};
use serde::Deserialize;

use crate::config::RouteKey;
use crate::errors::OpenAiError;
use crate::relay::usage::{Usage, WireUsage};

/// A line longer than this is not inspected (it cannot be a usage event worth holding).
const MAX_HELD_LINE: usize = 16 * 1024 * 1024;

#[derive(Default)]
pub struct SseUsageScanner {
    partial: Vec<u8>,
    overflowed: bool,
    usage: Option<Usage>,
    ended: bool,
}

/// Event names that end a Responses stream.
const TERMINAL_EVENTS: [&[u8]; 4] = [
    b"response.completed",
    b"response.incomplete",
    b"response.failed",
    b"error",
];

#[derive(Deserialize)]
struct EventProbe {
    usage: Option<WireUsage>,
    response: Option<ResponseProbe>,
}

#[derive(Deserialize)]
struct ResponseProbe {
    usage: Option<WireUsage>,
}

impl SseUsageScanner {
    pub fn usage(&self) -> Option<Usage> {
        self.usage
    }

    /// True once the stream's own end marker went by: `data: [DONE]` (chat), a terminal
    /// `event:` (Responses) or an error event. A stream that stops without one was cut.
    pub fn ended(&self) -> bool {
        self.ended
    }

    /// True when the bytes seen so far end in the middle of a line.
    pub fn mid_line(&self) -> bool {
        !self.partial.is_empty() || self.overflowed
    }

    pub fn feed(&mut self, chunk: &[u8]) {
        let mut rest = chunk;
        if self.mid_line() {
            let Some(nl) = memchr(b'\n', rest) else {
                self.hold(rest);
                return;
            };
            self.hold(&rest[..nl]);
            if !self.overflowed {
                let line = std::mem::take(&mut self.partial);
                self.inspect_line(&line);
                self.partial = line;
                self.partial.clear();
            }
            self.overflowed = false;
            rest = &rest[nl + 1..];
        }
        match memrchr(b'\n', rest) {
            Some(last) => {
                let complete = &rest[..last];
                if memmem::find(complete, b"\"usage\"").is_some()
                    || memmem::find(complete, b"[DONE]").is_some()
                    || memmem::find(complete, b"event:").is_some()
                    || memmem::find(complete, b"\"error\"").is_some()
                {
                    for line in complete.split(|b| *b == b'\n') {
                        self.inspect_line(line);
                    }
                }
                self.hold(&rest[last + 1..]);
            }
            None => self.hold(rest),
        }
    }

    fn hold(&mut self, bytes: &[u8]) {
        if self.overflowed || bytes.is_empty() {
            return;
        }
        if self.partial.len() + bytes.len() > MAX_HELD_LINE {
            self.partial = Vec::new();
            self.overflowed = true;
        } else {
            self.partial.extend_from_slice(bytes);
        }
    }

    fn inspect_line(&mut self, line: &[u8]) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if let Some(name) = line.strip_prefix(b"event:") {
            self.ended |= TERMINAL_EVENTS.contains(&name.trim_ascii());
            return;
        }
        let Some(data) = line.strip_prefix(b"data:") else {
            return;
        };
        let data = data.trim_ascii();
        if data == b"[DONE]" || data.starts_with(b"{\"error\"") {
            self.ended = true;
            return;
        }
        if !has_usage_object(data) {
            return;
        }
        let Ok(event) = serde_json::from_slice::<EventProbe>(data) else {
            return;
        };
        let usage = event.usage.or(event.response.and_then(|r| r.usage));
        if let Some(usage) = usage {
            self.usage = Some(usage.into());
        }
    }
}

/// True when some `"usage"` key in `data` holds an object (most chunks carry `"usage":null`,
/// which is not worth parsing).
fn has_usage_object(data: &[u8]) -> bool {
    memmem::find_iter(data, b"\"usage\"").any(|pos| {
        let mut rest = data[pos + 7..]
            .iter()
            .skip_while(|b| b.is_ascii_whitespace());
        rest.next() == Some(&b':') && rest.find(|b| !b.is_ascii_whitespace()) == Some(&b'{')
    })
}

/// The final event sent when a stream fails after bytes reached the client, in the format of
/// the route the upstream speaks. `mid_line` closes an event the upstream left unfinished.
pub fn error_event(route: RouteKey, code: &str, message: &str, mid_line: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(160 + message.len());
    if mid_line {
        out.extend_from_slice(b"\n\n");
    }
    let written = match route {
        RouteKey::Responses => {
            out.extend_from_slice(b"event: error\ndata: ");
            let event = serde_json::json!(
                {"type": "error", "code": code, "message": message, "param": null}
            );
            serde_json::to_writer(&mut out, &event)
        }
        _ => {
            out.extend_from_slice(b"data: ");
            let error = OpenAiError::new(message, "server_error", None, code);
            serde_json::to_writer(&mut out, &error)
        }
    };
    // Strings and plain structs written into a Vec: this cannot fail.
    debug_assert!(written.is_ok(), "{written:?}");
    out.extend_from_slice(b"\n\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHAT: &str = concat!(
        "data: {\"choices\":[{\"delta\":{\"content\":\"héllo 世界\"}}]}\n\n",
        "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":11,\"completion_tokens\":7,\"total_tokens\":18,\"prompt_tokens_details\":{\"cached_tokens\":3}}}\n\n",
        "data: [DONE]\n\n"
    );

    fn expected() -> Usage {
        Usage {
            prompt_tokens: 11,
            completion_tokens: 7,
            total_tokens: 18,
            cached_tokens: 3,
            reasoning_tokens: 0,
        }
    }

    #[test]
    fn chat_usage_chunk_is_read() {
        let mut s = SseUsageScanner::default();
        s.feed(CHAT.as_bytes());
        assert_eq!(s.usage(), Some(expected()));
    }

    #[test]
    fn events_split_at_every_byte_are_read() {
        let mut s = SseUsageScanner::default();
        for b in CHAT.as_bytes() {
            s.feed(std::slice::from_ref(b));
        }
        assert_eq!(s.usage(), Some(expected()));
        assert!(!s.mid_line());
    }

    #[test]
    fn split_inside_a_multibyte_character_is_read() {
        let bytes = CHAT.as_bytes();
        let cut = CHAT.find('世').expect("char") + 1;
        let mut s = SseUsageScanner::default();
        s.feed(&bytes[..cut]);
        s.feed(&bytes[cut..]);
        assert_eq!(s.usage(), Some(expected()));
    }

    #[test]
    fn responses_terminal_events_carry_usage() {
        for kind in [
            "response.completed",
            "response.incomplete",
            "response.failed",
        ] {
            let stream = format!(
                "event: {kind}\r\ndata: {{\"type\":\"{kind}\",\"response\":{{\"usage\":{{\"input_tokens\":5,\"output_tokens\":4,\"total_tokens\":9}}}}}}\r\n\r\n"
            );
            let mut s = SseUsageScanner::default();
            s.feed(stream.as_bytes());
            assert_eq!(s.usage().map(|u| u.total_tokens), Some(9), "{kind}");
        }
    }

    #[test]
    fn end_markers_are_recognised() {
        for stream in [
            &b"data: {}\n\ndata: [DONE]\n\n"[..],
            b"event: response.completed\ndata: {}\n\n",
            b"event: error\r\ndata: {}\r\n\r\n",
            b"data: {\"error\":{\"message\":\"x\"}}\n\n",
        ] {
            let mut s = SseUsageScanner::default();
            s.feed(stream);
            assert!(s.ended(), "{}", String::from_utf8_lossy(stream));
        }
        let mut s = SseUsageScanner::default();
        s.feed(b"event: response.output_text.delta\ndata: {\"delta\":\"[DONE]\"}\n\n");
        assert!(!s.ended());
    }

    #[test]
    fn stream_without_usage_has_none() {
        let mut s = SseUsageScanner::default();
        s.feed(b"data: {\"choices\":[]}\n\ndata: [DONE]\n\n");
        assert_eq!(s.usage(), None);
    }

    #[test]
    fn chat_error_event_is_a_data_line_with_error() {
        let event = error_event(RouteKey::ChatCompletions, "c", "m", false);
        let text = String::from_utf8(event).expect("utf8");
        let json: serde_json::Value =
            serde_json::from_str(text.strip_prefix("data: ").expect("data").trim()).expect("json");
        assert_eq!(json["error"]["code"], "c");
    }

    #[test]
    fn responses_error_event_is_named_error() {
        let event = error_event(RouteKey::Responses, "c", "m", true);
        let text = String::from_utf8(event).expect("utf8");
        assert!(text.starts_with("\n\nevent: error\ndata: "));
        assert!(text.ends_with("\n\n"));
    }
}
