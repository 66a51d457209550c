//! Event streams from one API to the other, one upstream event at a time: every event that
//! completes in a chunk is translated at once and its client events returned, so nothing
//! waits for the rest of the answer. An event that is still arriving is held until its end
//! (as the gateway's SSE framing does).
//!
//! [`StreamTranslator`] takes the upstream's bytes as they arrive; the per-direction
//! translators ([`ResponsesToChat`], [`ChatToResponses`]) take single events. Upstream error
//! events, and failures the gateway sees itself ([`StreamTranslator::fail`]), end the client's
//! stream with an error in the client's format.

mod chat_to_responses;
mod frames;
mod output;
mod responses_to_chat;

pub use chat_to_responses::ChatToResponses;
pub use frames::{Event, Frame, Frames, MAX_EVENT_BYTES};
pub use output::Output;
pub use responses_to_chat::ResponsesToChat;

#[derive(Debug)]
enum Direction {
    ResponsesToChat(ResponsesToChat),
    ChatToResponses(ChatToResponses),
}

/// An upstream SSE body turned into the client's SSE body, chunk by chunk.
#[derive(Debug)]
pub struct StreamTranslator {
    frames: Frames,
    direction: Direction,
    output: Output,
}

impl StreamTranslator {
    /// A chat client of a Responses-only model; `include_usage` from
    /// [`TranslatedRequest::include_usage`](crate::translate::TranslatedRequest).
    pub fn responses_to_chat(include_usage: bool) -> Self {
        Self::with(Direction::ResponsesToChat(ResponsesToChat::new(
            include_usage,
        )))
    }

    /// A Responses client of a chat-only model.
    pub fn chat_to_responses() -> Self {
        Self::with(Direction::ChatToResponses(ChatToResponses::new()))
    }

    fn with(direction: Direction) -> Self {
        Self {
            frames: Frames::default(),
            direction,
            output: Output::default(),
        }
    }

    /// The client's bytes for the next `chunk` of the upstream's body: the translation of
    /// every event the chunk completes (empty when it completes none).
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<u8> {
        let Self {
            frames,
            direction,
            output,
        } = self;
        frames.feed(chunk, |frame| match frame {
            Frame::Event(event) => match direction {
                Direction::ResponsesToChat(t) => t.event(event.name, event.data, output),
                Direction::ChatToResponses(t) => t.event(event.data, output),
            },
            Frame::Oversized => {
                let message = "the upstream sent an event larger than the gateway translates";
                match direction {
                    Direction::ResponsesToChat(t) => {
                        t.fail("upstream_event_too_large", message, output)
                    }
                    Direction::ChatToResponses(t) => {
                        t.fail("upstream_event_too_large", message, output)
                    }
                }
            }
        });
        output.take()
    }

    /// The client's final error event(s) for a stream the gateway ends (a timeout, a cut
    /// connection); empty when the client's stream has already ended.
    pub fn fail(&mut self, code: &str, message: &str) -> Vec<u8> {
        match &mut self.direction {
            Direction::ResponsesToChat(t) => t.fail(code, message, &mut self.output),
            Direction::ChatToResponses(t) => t.fail(code, message, &mut self.output),
        }
        self.output.take()
    }

    /// True once the client's stream has its end (the final event, or an error).
    pub fn finished(&self) -> bool {
        match &self.direction {
            Direction::ResponsesToChat(t) => t.finished(),
            Direction::ChatToResponses(t) => t.finished(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CREATED: &[u8] = b"event: response.created\ndata: {\"type\":\"response.created\",\"response\":{\"id\":\"resp_1\",\"created_at\":5,\"model\":\"m\",\"status\":\"in_progress\"}}\n\n";

    fn text_delta(text: &str) -> Vec<u8> {
        format!(
            "event: response.output_text.delta\ndata: {{\"type\":\"response.output_text.delta\",\"item_id\":\"msg_1\",\"output_index\":0,\"content_index\":0,\"delta\":{}}}\n\n",
            serde_json::to_string(text).expect("json")
        )
        .into_bytes()
    }

    fn text(bytes: &[u8]) -> String {
        String::from_utf8(bytes.to_vec()).expect("utf8")
    }

    #[test]
    fn each_delta_goes_out_with_the_event_that_carries_it() {
        let mut t = StreamTranslator::responses_to_chat(false);
        assert!(text(&t.feed(CREATED)).contains("\"role\":\"assistant\""));
        let delta = text_delta("héllo");
        let cut = delta.len() - 6;
        // Half an event: held, nothing to send yet.
        assert!(t.feed(&delta[..cut]).is_empty());
        let out = text(&t.feed(&delta[cut..]));
        assert!(out.contains("\"content\":\"héllo\""), "{out}");
        assert!(!t.finished());
    }

    #[test]
    fn chat_deltas_go_out_as_responses_deltas_at_once() {
        let mut t = StreamTranslator::chat_to_responses();
        let out = text(&t.feed(
            b"data: {\"id\":\"chatcmpl-1\",\"created\":5,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"Hi\"}}]}\n\n",
        ));
        for event in [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
        ] {
            assert!(out.contains(&format!("event: {event}\n")), "{event}: {out}");
        }
        assert!(!out.contains("response.completed"));
    }

    #[test]
    fn the_gateways_failure_ends_the_stream_in_the_clients_format() {
        let mut chat = StreamTranslator::responses_to_chat(true);
        chat.feed(CREATED);
        let out = text(&chat.fail("upstream_timeout", "the upstream sent nothing for 5 ms"));
        assert!(out.starts_with("data: {\"error\":"), "{out}");
        assert!(out.contains("upstream_timeout"));
        assert!(chat.finished());
        assert!(chat.fail("again", "x").is_empty());
        assert!(chat.feed(&text_delta("late")).is_empty());

        let mut responses = StreamTranslator::chat_to_responses();
        let out = text(&responses.fail("upstream_stream_interrupted", "cut"));
        assert!(out.starts_with("event: response.created\n"), "{out}");
        assert!(out.contains("event: error\n"));
        assert!(out.contains("event: response.failed\n"));
        assert!(responses.finished());
    }

    #[test]
    fn an_upstream_error_with_a_numeric_code_is_passed_on() {
        let mut t = StreamTranslator::responses_to_chat(false);
        let out = text(&t.feed(
            b"event: error\ndata: {\"type\":\"error\",\"code\":429,\"message\":\"slow down\"}\n\n",
        ));
        assert!(out.contains("\"code\":\"429\""), "{out}");
        assert!(out.contains("slow down"));
        assert!(t.finished());
    }

    #[test]
    fn an_oversized_event_ends_the_stream_with_an_error() {
        let mut t = StreamTranslator::chat_to_responses();
        let mut out = t.feed(b"data: ");
        let block = vec![b'x'; 1 << 20];
        for _ in 0..=MAX_EVENT_BYTES >> 20 {
            out.extend(t.feed(&block));
        }
        out.extend(t.feed(b"\n\n"));
        assert!(text(&out).contains("upstream_event_too_large"));
        assert!(t.finished());
    }
}
