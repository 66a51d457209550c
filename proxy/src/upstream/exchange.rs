//! One attempt at one deployment, up to the response head: signs, sends and bounds the wait for
//! the first byte. Within the attempt, a refused token is replaced once and a request whose
//! pooled connection turns out closed is sent once more on a new connection; every other
//! outcome goes back to the dispatch, which decides on failover and retries.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use actix_web::body::{BodySize, MessageBody};
use actix_web::http::header::{HeaderName, HeaderValue};
use awc::error::{ConnectError, SendRequestError};
use bytes::Bytes;

use crate::config::UpstreamSettings;
use crate::errors::ProxyError;
use crate::rewrite::splice::UpstreamBody;
use crate::upstream::credentials::UpstreamCredential;
use crate::upstream::transport::{self, ConnectionChoice, PooledLease};

/// awc copies the body it is given into its write buffer before writing it, so a body is handed
/// over in slices of at most this size: the buffer stays this small instead of growing to the
/// size of the body (megabytes with images) on every request.
const BODY_SLICE: usize = 64 * 1024;

pub struct UpstreamCall<'a> {
    /// The downstream request's id, for the log lines of this exchange.
    pub request_id: &'a str,
    pub upstream_name: &'a str,
    pub url: &'a str,
    pub headers: &'a [(HeaderName, HeaderValue)],
    pub body: UpstreamBody,
    pub settings: &'a UpstreamSettings,
    pub credential: &'a UpstreamCredential,
    /// When the whole exchange must be over (non-streaming requests).
    pub deadline: Option<Instant>,
}

pub struct UpstreamResponse {
    pub response: awc::ClientResponse,
    /// Requests sent (a resend on a new connection counts).
    pub sends: u32,
    pub ttfb: Duration,
    /// Held until the response body has ended.
    pub lease: Option<PooledLease>,
}

/// A failed attempt: the error, how many requests it sent, and whether it failed while
/// connecting (the request never reached the upstream, so sending it again is safe).
pub struct AttemptError {
    pub error: ProxyError,
    pub sends: u32,
    pub retryable: bool,
}

/// Sends the request once (see the module's two exceptions) and returns the response head.
pub async fn send(call: UpstreamCall<'_>) -> Result<UpstreamResponse, AttemptError> {
    let clients = transport::clients(call.settings);
    let settings = call.settings;
    let mut sends = 0;
    let mut fresh_credential_tried = false;
    let mut resent_on_new_connection = false;
    let (mut use_own_connection, mut lease) = match transport::choose_connection(settings) {
        ConnectionChoice::Pooled(lease) => (false, lease),
        ConnectionChoice::Own => (true, None),
    };
    let fail = |error: ProxyError, sends: u32| AttemptError {
        error,
        sends,
        retryable: false,
    };
    loop {
        let auth = match call.credential.authorize(call.request_id).await {
            Ok(auth) => auth,
            Err(err) => {
                let error = ProxyError::UpstreamAuthFailed {
                    upstream: call.upstream_name.to_string(),
                    mode: call.credential.mode().to_string(),
                    cause: err.cause,
                };
                return Err(fail(error, sends));
            }
        };
        let used_credential = auth.1.clone();
        let mut request = if use_own_connection {
            clients.fresh.post(call.url).force_close()
        } else {
            clients.pooled.post(call.url)
        };
        request = request.insert_header(auth);
        for (name, value) in call.headers {
            request = request.insert_header((name.clone(), value.clone()));
        }
        let sent_at = Instant::now();
        let wait = match call.deadline {
            Some(deadline) => settings
                .first_byte_timeout
                .min(deadline.saturating_duration_since(sent_at)),
            None => settings.first_byte_timeout,
        };
        let sending = if call.body.len() <= BODY_SLICE {
            request.send_body(call.body.clone().into_bytes())
        } else {
            request.send_body(SlicedBody::new(&call.body))
        };
        sends += 1;
        let (outcome, opened_connection) =
            transport::noting_new_connection(actix_rt::time::timeout(wait, sending)).await;
        match outcome {
            Err(_elapsed) => {
                let error = ProxyError::UpstreamTimeout {
                    upstream: call.upstream_name.to_string(),
                    what: format!(
                        "{} ms (waiting for the response to start)",
                        wait.as_millis()
                    ),
                };
                return Err(fail(error, sends));
            }
            Ok(Ok(response)) => {
                // A refused token is replaced once, before any byte reached the client.
                if response.status().as_u16() == 401
                    && !fresh_credential_tried
                    && call.credential.reject(&used_credential, call.request_id)
                {
                    fresh_credential_tried = true;
                    drop(response);
                    continue;
                }
                return Ok(UpstreamResponse {
                    response,
                    sends,
                    ttfb: sent_at.elapsed(),
                    lease: lease.take(),
                });
            }
            Ok(Err(err))
                if !opened_connection
                    && !resent_on_new_connection
                    && transport::closed_before_response(&err) =>
            {
                tracing::debug!(request_id = call.request_id, error = %err, "the pooled upstream connection was closed; sending again on a new one");
                resent_on_new_connection = true;
                use_own_connection = true;
                lease = None;
            }
            Ok(Err(err)) => {
                let retryable = matches!(err, SendRequestError::Connect(_));
                return Err(AttemptError {
                    error: connect_failure(&call, err),
                    sends,
                    retryable,
                });
            }
        }
    }
}

/// Maps a send failure to the client-facing error; only connect-phase failures are retryable
/// (the request never reached the upstream).
fn connect_failure(call: &UpstreamCall<'_>, err: SendRequestError) -> ProxyError {
    let (upstream, settings) = (call.upstream_name.to_string(), call.settings);
    match err {
        SendRequestError::Connect(ConnectError::Timeout) => ProxyError::UpstreamTimeout {
            upstream,
            what: format!("{} ms (connecting)", settings.connect_timeout.as_millis()),
        },
        SendRequestError::Connect(err) => ProxyError::UpstreamUnreachable {
            upstream,
            reason: connect_reason(&err),
        },
        other => {
            tracing::warn!(request_id = call.request_id, error = %other, upstream = %upstream, "upstream exchange failed");
            ProxyError::UpstreamBroken {
                upstream,
                reason:
                    "the connection failed while sending the request or reading the response head"
                        .into(),
            }
        }
    }
}

fn connect_reason(err: &ConnectError) -> String {
    match err {
        ConnectError::Resolver(_) | ConnectError::NoRecords | ConnectError::Unresolved => {
            "the host name does not resolve".into()
        }
        ConnectError::Io(io) => format!("{}", io.kind()),
        other => other.to_string(),
    }
}

/// A body of several parts, yielded in slices of at most [`BODY_SLICE`] bytes, with its length
/// known up front (so it is sent with `Content-Length`).
struct SlicedBody {
    parts: VecDeque<Bytes>,
    len: u64,
}

impl SlicedBody {
    fn new(body: &UpstreamBody) -> SlicedBody {
        SlicedBody {
            parts: body.parts().iter().cloned().collect(),
            len: body.len() as u64,
        }
    }
}

impl MessageBody for SlicedBody {
    type Error = Infallible;

    fn size(&self) -> BodySize {
        BodySize::Sized(self.len)
    }

    fn poll_next(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Infallible>>> {
        let this = self.get_mut();
        let Some(part) = this.parts.front_mut() else {
            return Poll::Ready(None);
        };
        let slice = part.split_to(part.len().min(BODY_SLICE));
        if part.is_empty() {
            this.parts.pop_front();
        }
        Poll::Ready(Some(Ok(slice)))
    }
}
