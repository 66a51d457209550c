//! The client's events, written as SSE into one buffer per upstream chunk.

use serde::Serialize;

#[derive(Debug, Default)]
pub struct Output {
    buf: Vec<u8>,
}

impl Output {
    /// `data: <json>` (a chat chunk).
    pub(crate) fn data(&mut self, value: &impl Serialize) {
        self.buf.extend_from_slice(b"data: ");
        self.json(value);
        self.buf.extend_from_slice(b"\n\n");
    }

    /// `event: <kind>` and `data: {"type":<kind>,"sequence_number":<n>,…fields}` (a Responses
    /// event); `fields` must serialise to an object.
    pub(crate) fn event(&mut self, kind: &str, sequence_number: u64, fields: &impl Serialize) {
        self.buf.extend_from_slice(b"event: ");
        self.buf.extend_from_slice(kind.as_bytes());
        self.buf.extend_from_slice(b"\ndata: {\"type\":");
        self.json(kind);
        self.buf.extend_from_slice(b",\"sequence_number\":");
        self.buf
            .extend_from_slice(sequence_number.to_string().as_bytes());
        let at = self.buf.len();
        self.json(fields);
        // `{…}` becomes `,…}` after the two leading members; `{}` becomes `}`.
        match self.buf.get(at..at + 2) {
            Some(b"{}") => {
                self.buf.truncate(at);
                self.buf.push(b'}');
            }
            _ => self.buf[at] = b',',
        }
        self.buf.extend_from_slice(b"\n\n");
    }

    pub(crate) fn raw(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// The bytes written so far; the buffer starts over.
    pub fn take(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.buf)
    }

    fn json(&mut self, value: &(impl Serialize + ?Sized)) {
        // Serialising into a Vec fails only for maps with non-string keys, which are not used.
        let written = serde_json::to_writer(&mut self.buf, value);
        debug_assert!(written.is_ok(), "{written:?}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn responses_events_lead_with_type_and_sequence_number() {
        let mut out = Output::default();
        out.event("response.output_text.delta", 4, &json!({"delta": "é"}));
        out.event("x", 5, &json!({}));
        assert_eq!(
            String::from_utf8(out.take()).expect("utf8"),
            "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"sequence_number\":4,\"delta\":\"é\"}\n\n\
             event: x\ndata: {\"type\":\"x\",\"sequence_number\":5}\n\n"
        );
        assert!(out.is_empty());
    }
}
