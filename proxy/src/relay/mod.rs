//! The upstream response body on its way to the client: forwarded chunk by chunk as it arrives
//! (actix polls it only when the client can take more, so a slow client slows the upstream read
//! instead of growing a buffer), watched for usage, bounded by the idle and total timeouts, and
//! accounted exactly once however it ends. Never holds a body, never alters a byte it forwards.

pub mod answer;
pub mod sse;
pub mod usage;

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use actix_http::Payload;
use actix_rt::time::{Sleep, sleep_until};
use bytes::Bytes;
use futures_util::Stream;

use self::sse::SseUsageScanner;
use self::usage::JSON_TAIL_BYTES;
use crate::bookkeeping::accounting::OpenRequest;
use crate::bookkeeping::stats::{ErrorClass, Outcome};
use crate::config::RouteKey;
use crate::translate::stream::StreamTranslator;
use crate::upstream::transport::PooledLease;

/// What the relay looks at in the bytes it forwards.
pub enum Watch {
    /// An event stream in the format of the given route.
    Sse {
        scanner: SseUsageScanner,
        speaks: RouteKey,
    },
    /// A JSON body: its last bytes are kept (as shared chunks, not copies) to read `usage`.
    JsonTail {
        chunks: VecDeque<Bytes>,
        held: usize,
    },
    Nothing,
}

impl Watch {
    pub fn for_content_type(content_type: &str, speaks: RouteKey, success: bool) -> Watch {
        let content_type = content_type.as_bytes();
        let event_stream = b"text/event-stream";
        if content_type.len() >= event_stream.len()
            && content_type[..event_stream.len()].eq_ignore_ascii_case(event_stream)
        {
            Watch::Sse {
                scanner: SseUsageScanner::default(),
                speaks,
            }
        } else if success
            && content_type
                .windows(4)
                .any(|w| w.eq_ignore_ascii_case(b"json"))
        {
            Watch::JsonTail {
                chunks: VecDeque::new(),
                held: 0,
            }
        } else {
            Watch::Nothing
        }
    }

    fn observe(&mut self, chunk: &Bytes) {
        match self {
            Watch::Sse { scanner, .. } => scanner.feed(chunk),
            Watch::JsonTail { chunks, held } => {
                chunks.push_back(chunk.clone());
                *held += chunk.len();
                while chunks.len() > 1 && *held - chunks[0].len() >= JSON_TAIL_BYTES {
                    if let Some(old) = chunks.pop_front() {
                        *held -= old.len();
                    }
                }
            }
            Watch::Nothing => {}
        }
    }

    fn usage(&self) -> Option<usage::Usage> {
        match self {
            Watch::Sse { scanner, .. } => scanner.usage(),
            Watch::JsonTail { chunks, .. } if chunks.len() == 1 => {
                usage::from_json_tail(&chunks[0])
            }
            Watch::JsonTail { chunks, held } => {
                let mut tail = Vec::with_capacity(*held);
                for chunk in chunks {
                    tail.extend_from_slice(chunk);
                }
                usage::from_json_tail(&tail)
            }
            Watch::Nothing => None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct RelayError(String);

/// The upstream response body as it arrives.
pub struct UpstreamBody {
    pub payload: Payload,
    /// The upstream's Content-Length.
    pub expected_len: Option<u64>,
    /// The request's place among the pooled upstream connections.
    pub lease: Option<PooledLease>,
}

pub struct Relay {
    payload: Payload,
    watch: Watch,
    idle_timeout: Duration,
    last_chunk: Instant,
    /// Timers are armed only once the body has to wait: most bodies arrive with the head.
    idle_timer: Option<Pin<Box<Sleep>>>,
    deadline: Option<Instant>,
    deadline_timer: Option<Pin<Box<Sleep>>>,
    /// Outcome when the body ends normally (decided by the upstream status).
    on_complete: Outcome,
    /// The upstream's Content-Length, and the bytes received so far.
    expected_len: Option<u64>,
    received: u64,
    request: OpenRequest,
    /// The request's place among the pooled upstream connections; dropped after `payload`
    /// (fields drop in order), when the connection is idle again.
    _lease: Option<PooledLease>,
    /// Set when the client speaks the other API than the upstream: what it gets is the
    /// translation of each event, not the upstream's bytes.
    translator: Option<StreamTranslator>,
    closed: bool,
    /// Set when a chunk completes the body: the next poll yields once, so that the chunk goes
    /// out to the client before the books are closed on the upstream body's end.
    flush_first: bool,
}

impl Relay {
    pub fn new(
        upstream: UpstreamBody,
        watch: Watch,
        idle_timeout: Duration,
        deadline: Option<Instant>,
        on_complete: Outcome,
        request: OpenRequest,
    ) -> Relay {
        let UpstreamBody {
            payload,
            expected_len,
            lease,
        } = upstream;
        Relay {
            payload,
            watch,
            idle_timeout,
            last_chunk: Instant::now(),
            idle_timer: None,
            deadline,
            deadline_timer: None,
            on_complete,
            expected_len,
            received: 0,
            request,
            _lease: lease,
            translator: None,
            closed: false,
            flush_first: false,
        }
    }

    /// The relay of an event stream the client reads in the other API's format.
    pub fn translating(mut self, translator: StreamTranslator) -> Relay {
        self.translator = Some(translator);
        self
    }

    fn close_books(&mut self, outcome: Outcome, error: Option<String>) {
        self.request.record.usage = self.watch.usage();
        self.request.close(outcome, error);
    }

    /// Whether the body's own framing says it is all there.
    fn complete(&self) -> bool {
        match &self.watch {
            Watch::Sse { scanner, .. } => scanner.ended(),
            _ => self.expected_len.is_some_and(|len| self.received >= len),
        }
    }

    /// awc reports a connection closed mid-body as a normal end; the body's own framing tells.
    fn truncated(&self) -> bool {
        match &self.watch {
            Watch::Sse { scanner, .. } => !scanner.ended(),
            _ => self.expected_len.is_some_and(|len| self.received < len),
        }
    }

    fn fail_deadline(&mut self) -> Poll<Option<Result<Bytes, RelayError>>> {
        self.fail(
            ErrorClass::Timeout,
            "upstream_timeout",
            "the upstream response did not finish within the request timeout".into(),
        )
    }

    /// Ends the body after a failure: an event stream gets one final error event in its own
    /// format; any other body is cut, so the client sees it incomplete rather than wrong.
    fn fail(
        &mut self,
        class: ErrorClass,
        code: &str,
        message: String,
    ) -> Poll<Option<Result<Bytes, RelayError>>> {
        self.closed = true;
        self.close_books(Outcome::Failed(class), Some(message.clone()));
        if let Some(translator) = &mut self.translator {
            return Poll::Ready(Some(Ok(Bytes::from(translator.fail(code, &message)))));
        }
        match &self.watch {
            Watch::Sse { scanner, speaks } => {
                let event = sse::error_event(*speaks, code, &message, scanner.mid_line());
                Poll::Ready(Some(Ok(Bytes::from(event))))
            }
            _ => Poll::Ready(Some(Err(RelayError(message)))),
        }
    }
}

impl Stream for Relay {
    type Item = Result<Bytes, RelayError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.closed {
            return Poll::Ready(None);
        }
        if std::mem::take(&mut this.flush_first) {
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        if this.deadline.is_some_and(|at| Instant::now() >= at) {
            return this.fail_deadline();
        }
        match Pin::new(&mut this.payload).poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                this.last_chunk = Instant::now();
                this.received += chunk.len() as u64;
                this.watch.observe(&chunk);
                this.flush_first = this.complete();
                let Some(translator) = &mut this.translator else {
                    return Poll::Ready(Some(Ok(chunk)));
                };
                let translated = translator.feed(&chunk);
                if translated.is_empty() {
                    // No event completed: nothing to send yet, read on.
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                Poll::Ready(Some(Ok(Bytes::from(translated))))
            }
            Poll::Ready(Some(Err(err))) => {
                tracing::debug!(request_id = %this.request.record.request_id, error = %err, "upstream body failed");
                this.fail(
                    ErrorClass::StreamInterrupted,
                    "upstream_stream_interrupted",
                    "the upstream connection failed before the response was complete".into(),
                )
            }
            Poll::Ready(None) if this.truncated() => this.fail(
                ErrorClass::StreamInterrupted,
                "upstream_stream_interrupted",
                "the upstream connection closed before the response was complete".into(),
            ),
            Poll::Ready(None) => {
                this.closed = true;
                let outcome = this.on_complete;
                this.close_books(outcome, None);
                Poll::Ready(None)
            }
            Poll::Pending => {
                if let Some(at) = this.deadline {
                    let timer = this
                        .deadline_timer
                        .get_or_insert_with(|| Box::pin(sleep_until(at.into())));
                    if timer.as_mut().poll(cx).is_ready() {
                        return this.fail_deadline();
                    }
                }
                // The idle timer is moved only when it fires, not on every chunk.
                loop {
                    let due = this.last_chunk + this.idle_timeout;
                    let timer = this
                        .idle_timer
                        .get_or_insert_with(|| Box::pin(sleep_until(due.into())));
                    if timer.as_mut().poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    if Instant::now() >= due {
                        let ms = this.idle_timeout.as_millis();
                        return this.fail(
                            ErrorClass::Timeout,
                            "upstream_timeout",
                            format!("the upstream sent nothing for {ms} ms"),
                        );
                    }
                    timer.as_mut().reset(due.into());
                }
            }
        }
    }
}

// Dropping a Relay before its end drops `payload`, which closes the upstream connection (the
// Azure call stops), and `request`, which counts the request as cancelled.
