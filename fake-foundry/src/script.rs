//! What the fake answers: the default [`Behaviour`], scripted one-off replies, per-request
//! overrides from the body's `"fake"` object, and their resolution into a per-request plan.

use std::sync::Arc;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::http::header::{HeaderName, HeaderValue};
use bytes::Bytes;
use serde::Deserialize;

use crate::formats::{Completion, FinalEvent, error_body};
use crate::tools::ToolCall;

/// How the fake answers a normal request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Behaviour {
    /// Delay before the response head (streaming and non-streaming).
    pub latency_ms: u64,
    /// Number of content delta events in a stream.
    pub stream_chunks: usize,
    /// Pause between consecutive content delta events.
    pub chunk_gap_ms: u64,
    /// The completion text, split across the stream's content deltas.
    pub text: String,
    /// Functions the answer calls after its text (none: a plain text answer). Chat answers get
    /// `tool_calls`, Responses answers `function_call` items.
    pub tool_calls: Vec<ToolCall>,
    /// Answer some requests with 429, as a deployment over its quota does.
    pub throttle: Option<Throttle>,
}

impl Default for Behaviour {
    fn default() -> Self {
        Self {
            latency_ms: 0,
            stream_chunks: 5,
            chunk_gap_ms: 0,
            text: "Hello, 世界! 👋 ok".to_owned(),
            tool_calls: Vec::new(),
            throttle: None,
        }
    }
}

/// Which requests a throttled fake refuses, and for how long it asks to be left alone.
///
/// Requests are counted from the first one that reaches a known route and passes the credential
/// checks; scripted replies come first and are not counted. The 429 is Azure's over-quota answer
/// (its error body, `retry-after-ms` and `retry-after` in whole seconds, rounded up) and is sent
/// at once, without the behaviour's `latency_ms`: Azure refuses such a request before any model
/// work.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Throttle {
    /// Every `every`-th request is refused: 2 refuses the 2nd, 4th, 6th...; 1 refuses all of
    /// them; 0 none.
    pub every: u64,
    /// Sent as `retry-after-ms`.
    pub retry_after_ms: u64,
}

/// A reply for the next request, taking the place of the normal answer.
#[derive(Clone, Debug)]
pub enum ScriptedReply {
    /// Status + headers + body, e.g. 429 with `retry-after-ms`, 500, or 400 with an Azure error
    /// body. The body is sent as `application/json` unless `headers` set a `content-type`.
    Status {
        status: u16,
        headers: Vec<(String, String)>,
        body: String,
    },
    /// A normal answer whose connection is cut (no terminating chunk) after `after_chunks` SSE
    /// events — counting every event, including Azure's leading prompt-filter event — or, for a
    /// non-streaming request, after half of its `content-length` body.
    CutAfter { after_chunks: usize },
    /// A normal answer written in pieces of `piece_bytes` bytes with `piece_gap_ms` between them,
    /// so SSE events and multi-byte UTF-8 characters straddle TCP reads.
    Fragmented {
        piece_bytes: usize,
        piece_gap_ms: u64,
    },
    /// A normal answer with a different behaviour for this one request.
    With(Behaviour),
}

/// A scripted reply checked and converted when it is queued.
#[derive(Debug)]
pub(crate) enum Queued {
    Status(StatusReply),
    Normal {
        behaviour: Option<Behaviour>,
        delivery: Delivery,
    },
}

impl Queued {
    /// # Panics
    /// If a `Status` reply has an invalid status code or header, so that a broken script fails
    /// at the test's call site rather than inside the server.
    pub(crate) fn from_script(reply: ScriptedReply) -> Self {
        match reply {
            ScriptedReply::Status {
                status,
                headers,
                body,
            } => {
                let status = StatusCode::from_u16(status)
                    .unwrap_or_else(|_| panic!("scripted reply: invalid status code {status}"));
                let headers = headers
                    .into_iter()
                    .map(|(name, value)| {
                        let header = HeaderName::try_from(name.as_str())
                            .ok()
                            .zip(HeaderValue::try_from(value.as_str()).ok());
                        header.unwrap_or_else(|| {
                            panic!("scripted reply: invalid header {name:?}: {value:?}")
                        })
                    })
                    .collect();
                Self::Status(StatusReply {
                    status,
                    headers,
                    body: Bytes::from(body),
                })
            }
            ScriptedReply::CutAfter { after_chunks } => Self::Normal {
                behaviour: None,
                delivery: Delivery::CutAfter(after_chunks),
            },
            ScriptedReply::Fragmented {
                piece_bytes,
                piece_gap_ms,
            } => Self::Normal {
                behaviour: None,
                delivery: Delivery::Fragmented {
                    piece_bytes,
                    gap: Duration::from_millis(piece_gap_ms),
                },
            },
            ScriptedReply::With(behaviour) => Self::Normal {
                behaviour: Some(behaviour),
                delivery: Delivery::Whole,
            },
        }
    }
}

/// A complete non-normal answer.
#[derive(Debug)]
pub(crate) struct StatusReply {
    pub status: StatusCode,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Bytes,
}

impl StatusReply {
    /// The answer to `"fake": {"status": N}`, shaped like Azure's error for that status.
    fn for_status(status: StatusCode) -> Self {
        if status == StatusCode::TOO_MANY_REQUESTS {
            return Self::throttled(1000);
        }
        let message = status.canonical_reason().unwrap_or("Error");
        Self {
            status,
            headers: Vec::new(),
            body: Bytes::from(error_body(status.as_str(), message)),
        }
    }

    /// Azure's 429 for a deployment over its rate limit, asking to come back after
    /// `retry_after_ms` (`retry-after` holds the same rounded up to whole seconds).
    pub(crate) fn throttled(retry_after_ms: u64) -> Self {
        let seconds = retry_after_ms.div_ceil(1000).max(1);
        let plural = if seconds == 1 { "" } else { "s" };
        let message = format!(
            "Requests to the ChatCompletions_Create Operation under Azure OpenAI API version 2024-10-21 have exceeded token rate limit of your current AIServices S0 pricing tier. Please retry after {seconds} second{plural}."
        );
        Self {
            status: StatusCode::TOO_MANY_REQUESTS,
            headers: vec![
                (
                    HeaderName::from_static("retry-after"),
                    HeaderValue::from(seconds),
                ),
                (
                    HeaderName::from_static("retry-after-ms"),
                    HeaderValue::from(retry_after_ms),
                ),
            ],
            body: Bytes::from(error_body("429", &message)),
        }
    }
}

/// How the bytes of a normal answer reach the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Delivery {
    /// All of it; streams pause `chunk_gap_ms` between content deltas.
    Whole,
    /// Cut the connection after this many SSE events (or half a non-streaming body).
    CutAfter(usize),
    /// In fixed-size pieces.
    Fragmented { piece_bytes: usize, gap: Duration },
}

/// The body's `"fake"` object; every field is optional.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Overrides {
    latency_ms: Option<u64>,
    stream_chunks: Option<usize>,
    chunk_gap_ms: Option<u64>,
    text: Option<String>,
    status: Option<u16>,
    cut_after_chunks: Option<usize>,
    piece_bytes: Option<usize>,
    piece_gap_ms: Option<u64>,
    #[serde(default)]
    final_event: FinalEvent,
    tool_calls: Option<Vec<ToolCall>>,
}

/// Everything needed to answer one request normally.
#[derive(Debug)]
pub(crate) struct Plan {
    pub latency: Duration,
    pub chunk_gap: Duration,
    pub delivery: Delivery,
    pub completion: Arc<Completion>,
    pub final_event: FinalEvent,
    pub tool_calls: Vec<ToolCall>,
    /// Answer with this instead (`"fake": {"status": N}` with N other than 200).
    pub status: Option<StatusReply>,
}

impl Plan {
    /// Layers the scripted behaviour and delivery (if any) and then the body's overrides over the
    /// default behaviour, reusing the default's prepared completion text when it still applies.
    pub(crate) fn resolve(
        default: &Behaviour,
        default_completion: &Arc<Completion>,
        scripted: Option<(Option<Behaviour>, Delivery)>,
        overrides: Option<Overrides>,
    ) -> Result<Self, String> {
        let (scripted_behaviour, mut delivery) = scripted.unwrap_or((None, Delivery::Whole));
        let base = scripted_behaviour.as_ref().unwrap_or(default);
        let overrides = overrides.unwrap_or_default();

        let chunks = overrides.stream_chunks.unwrap_or(base.stream_chunks);
        let text = overrides.text.as_deref().unwrap_or(&base.text);
        let completion = if default_completion.matches(text, chunks) {
            Arc::clone(default_completion)
        } else {
            Arc::new(Completion::new(text, chunks))
        };

        if let Some(after) = overrides.cut_after_chunks {
            delivery = Delivery::CutAfter(after);
        }
        if overrides.piece_bytes.is_some() || overrides.piece_gap_ms.is_some() {
            let (piece_bytes, gap) = match delivery {
                Delivery::Fragmented { piece_bytes, gap } => (piece_bytes, gap),
                Delivery::Whole | Delivery::CutAfter(_) => (1, Duration::ZERO),
            };
            delivery = Delivery::Fragmented {
                piece_bytes: overrides.piece_bytes.unwrap_or(piece_bytes),
                gap: overrides.piece_gap_ms.map_or(gap, Duration::from_millis),
            };
        }

        let status = match overrides.status {
            None | Some(200) => None,
            Some(code) => Some(StatusReply::for_status(
                StatusCode::from_u16(code)
                    .map_err(|_| format!("fake.status: invalid status code {code}"))?,
            )),
        };

        Ok(Self {
            latency: Duration::from_millis(overrides.latency_ms.unwrap_or(base.latency_ms)),
            chunk_gap: Duration::from_millis(overrides.chunk_gap_ms.unwrap_or(base.chunk_gap_ms)),
            delivery,
            completion,
            final_event: overrides.final_event,
            tool_calls: overrides
                .tool_calls
                .unwrap_or_else(|| base.tool_calls.clone()),
            status,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn overrides(json: &str) -> Overrides {
        serde_json::from_str(json).expect("overrides")
    }

    #[test]
    fn body_overrides_beat_scripted_behaviour() {
        let default = Behaviour::default();
        let completion = Arc::new(Completion::new(&default.text, default.stream_chunks));
        let scripted = Behaviour {
            latency_ms: 5,
            chunk_gap_ms: 7,
            ..Behaviour::default()
        };
        let plan = Plan::resolve(
            &default,
            &completion,
            Some((Some(scripted), Delivery::Whole)),
            Some(overrides(
                r#"{"latency_ms":9,"final_event":"response.failed"}"#,
            )),
        )
        .expect("plan");
        assert_eq!(plan.latency, Duration::from_millis(9));
        assert_eq!(plan.chunk_gap, Duration::from_millis(7));
        assert_eq!(plan.final_event, FinalEvent::Failed);
        assert!(Arc::ptr_eq(&plan.completion, &completion));
    }

    #[test]
    fn status_and_delivery_overrides() {
        let default = Behaviour::default();
        let completion = Arc::new(Completion::new(&default.text, default.stream_chunks));
        let plan = Plan::resolve(
            &default,
            &completion,
            None,
            Some(overrides(
                r#"{"status":429,"cut_after_chunks":2,"stream_chunks":9}"#,
            )),
        )
        .expect("plan");
        assert_eq!(plan.delivery, Delivery::CutAfter(2));
        assert!(!Arc::ptr_eq(&plan.completion, &completion));
        let status = plan.status.expect("status reply");
        assert_eq!(status.status, StatusCode::TOO_MANY_REQUESTS);
        assert!(status.headers.iter().any(|(n, _)| n == "retry-after-ms"));
        assert!(
            Plan::resolve(
                &default,
                &completion,
                None,
                Some(overrides(r#"{"status":7}"#))
            )
            .is_err()
        );
    }

    #[test]
    fn throttled_reply_rounds_retry_after_up_to_seconds() {
        let header = |reply: &StatusReply, name: &str| {
            reply
                .headers
                .iter()
                .find(|(n, _)| n == name)
                .and_then(|(_, v)| v.to_str().ok())
                .map(str::to_owned)
        };
        let short = StatusReply::throttled(150);
        assert_eq!(short.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(header(&short, "retry-after-ms").as_deref(), Some("150"));
        assert_eq!(header(&short, "retry-after").as_deref(), Some("1"));
        let long = StatusReply::throttled(2001);
        assert_eq!(header(&long, "retry-after").as_deref(), Some("3"));
        let body: serde_json::Value = serde_json::from_slice(&long.body).expect("json");
        assert_eq!(body["error"]["code"], "429");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.ends_with("retry after 3 seconds."))
        );
    }
}
