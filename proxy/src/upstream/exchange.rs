//! One upstream exchange up to the response head: signs, sends, bounds the wait for the first
//! byte and retries what may be retried, all before any byte has reached the client.

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
use crate::upstream::retry::{self, Decision};
use crate::upstream::transport;

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
    pub attempts: u32,
    pub ttfb: Duration,
}

/// Sends the request, retrying per `settings`, and returns the response head.
pub async fn send(call: UpstreamCall<'_>) -> Result<UpstreamResponse, ProxyError> {
    let clients = transport::clients(call.settings);
    let settings = call.settings;
    let mut attempt = 0;
    let mut fresh_credential_tried = false;
    // A request whose pooled connection closes before any byte of an answer (the upstream was
    // closing it for being idle) is sent once more on a new connection, whatever `maxRetries`.
    let mut resent_on_new_connection = false;
    let mut use_new_connection = false;
    loop {
        let client = if std::mem::take(&mut use_new_connection) {
            &clients.fresh
        } else {
            &clients.pooled
        };
        let auth = call
            .credential
            .authorize(call.request_id)
            .await
            .map_err(|err| ProxyError::UpstreamAuthFailed {
                upstream: call.upstream_name.to_string(),
                mode: call.credential.mode().to_string(),
                cause: err.cause,
            })?;
        let used_credential = auth.1.clone();
        let mut request = client.post(call.url).insert_header(auth);
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
        let (outcome, opened_connection) =
            transport::noting_new_connection(actix_rt::time::timeout(wait, sending)).await;
        let failure = match outcome {
            Err(_elapsed) => {
                return Err(ProxyError::UpstreamTimeout {
                    upstream: call.upstream_name.to_string(),
                    what: format!(
                        "{} ms (waiting for the response to start)",
                        wait.as_millis()
                    ),
                });
            }
            Ok(Ok(response)) => {
                let status = response.status().as_u16();
                // A refused token is replaced once, before any byte reached the client.
                if status == 401
                    && !fresh_credential_tried
                    && call.credential.reject(&used_credential, call.request_id)
                {
                    fresh_credential_tried = true;
                    drop(response);
                    continue;
                }
                match retry::decide(attempt, status, response.headers(), settings) {
                    Decision::PassThrough => {
                        return Ok(UpstreamResponse {
                            response,
                            attempts: attempt + 1 + u32::from(resent_on_new_connection),
                            ttfb: sent_at.elapsed(),
                        });
                    }
                    Decision::RetryAfter(delay) => {
                        tracing::debug!(
                            request_id = call.request_id,
                            status,
                            delay_ms = delay.as_millis() as u64,
                            attempt,
                            "retrying upstream call"
                        );
                        drop(response);
                        delay
                    }
                }
            }
            Ok(Err(err))
                if !opened_connection
                    && !resent_on_new_connection
                    && transport::closed_before_response(&err) =>
            {
                tracing::debug!(request_id = call.request_id, error = %err, "the pooled upstream connection was closed; sending again on a new one");
                resent_on_new_connection = true;
                use_new_connection = true;
                continue;
            }
            Ok(Err(err)) => {
                let error = connect_failure(&call, err);
                let retryable = matches!(
                    error,
                    ProxyError::UpstreamUnreachable { .. } | ProxyError::UpstreamTimeout { .. }
                );
                if !retryable || attempt >= settings.max_retries {
                    return Err(error);
                }
                tracing::debug!(request_id = call.request_id, error = %error, attempt, "retrying upstream call after a connect failure");
                retry::backoff(attempt, settings)
            }
        };
        if call
            .deadline
            .is_some_and(|deadline| Instant::now() + failure >= deadline)
        {
            return Err(ProxyError::UpstreamTimeout {
                upstream: call.upstream_name.to_string(),
                what: format!(
                    "{} ms (retries included)",
                    settings.request_timeout.as_millis()
                ),
            });
        }
        actix_rt::time::sleep(failure).await;
        attempt += 1;
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
