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
