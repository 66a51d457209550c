//! The client's answer built from the upstream's: status and useful headers passed through, the
//! body relayed as it comes; `x-gateway-deployment` names the deployment that answered. When the
//! client speaks the other API than the upstream, a successful stream is translated event by
//! event, and a successful whole answer is read (bounded) and translated at once.

use std::time::Instant;

use actix_web::body::SizedStream;
use actix_web::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use actix_web::{HttpMessage, HttpResponse, HttpResponseBuilder, ResponseError};

use super::usage;
use super::{Relay, UpstreamBody, Watch};
use crate::bookkeeping::accounting::{OpenRequest, RequestRecord};
use crate::bookkeeping::stats::{ErrorClass, Outcome};
use crate::errors::ProxyError;
use crate::rewrite::headers;
use crate::snapshot::Snapshot;
use crate::translate::Translation;
use crate::translate::stream::StreamTranslator;
use crate::upstream::dispatch::Dispatched;
use crate::upstream::routing;

/// The response header naming the deployment that served a request: `<upstream>/<deployment>`.
const GATEWAY_DEPLOYMENT: &str = "x-gateway-deployment";

/// The largest whole answer read to be translated; Azure's answers are far smaller.
const MAX_TRANSLATED_ANSWER: usize = 32 * 1024 * 1024;

/// How the client's API differs from the upstream's for one request.
#[derive(Debug, Clone, Copy)]
pub struct ClientTranslation {
    pub translation: Translation,
    /// The chat client asked for the final usage chunk.
    pub include_usage: bool,
}

/// Passes the upstream status, useful headers and body through; the body is relayed, not read.
/// With `translator`, a successful event stream reaches the client translated.
pub fn respond(
    dispatched: Dispatched,
    snapshot: &Snapshot,
    open: OpenRequest,
    translator: Option<StreamTranslator>,
) -> HttpResponse {
    let Dispatched { exchange, speaks } = dispatched;
    let mut response = exchange.response;
    let status = response.status();
    let content_type = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let watch = Watch::for_content_type(content_type, speaks, status.is_success());
    let is_stream = matches!(watch, Watch::Sse { .. });
    let upstream_length = response
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let translator = translator.filter(|_| is_stream && status.is_success());
    let content_length = upstream_length.filter(|_| !is_stream);

    let mut builder = HttpResponse::build(status);
    headers::copy_response_headers(response.headers(), &mut builder);
    if is_stream {
        builder.insert_header(("x-accel-buffering", "no"));
    }
    name_deployment(&mut builder, &open.record);
    let settings = &snapshot.config.server.upstream;
    let deadline = open.record.deadline;
    let upstream_body = UpstreamBody {
        payload: response.take_payload(),
        expected_len: upstream_length,
        lease: exchange.lease,
    };
    let mut relay = Relay::new(
        upstream_body,
        watch,
        settings.idle_timeout,
        deadline,
        outcome_of(status),
        open,
    );
    if let Some(translator) = translator {
        relay = relay.translating(translator);
    }
    match content_length {
        Some(len) => builder.body(SizedStream::new(len, relay)),
        None => builder.streaming(relay),
    }
}

/// The answer of a request whose client speaks the other API: a successful stream translated
/// as it comes, a successful whole answer translated once read; an error answer as it is (both
/// APIs share the error shape).
pub async fn respond_translated(
    dispatched: Dispatched,
    client: ClientTranslation,
    snapshot: &Snapshot,
    mut open: OpenRequest,
) -> HttpResponse {
    let response = &dispatched.exchange.response;
    let is_json = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.to_ascii_lowercase().contains("json"));
    if !response.status().is_success() || !is_json {
        let translator = client.translation.stream(client.include_usage);
        return respond(dispatched, snapshot, open, Some(translator));
    }
    let mut response = dispatched.exchange.response;
    let status = response.status();
    let wait = open
        .record
        .deadline
        .map_or(snapshot.config.server.upstream.idle_timeout, |deadline| {
            deadline.saturating_duration_since(Instant::now())
        });
    let read = actix_rt::time::timeout(wait, response.body().limit(MAX_TRANSLATED_ANSWER)).await;
    let upstream = open.record.upstream.clone().unwrap_or_default();
    let translated = match read {
        Err(_elapsed) => Err(ProxyError::UpstreamTimeout {
            upstream,
            what: format!("{} ms (reading the answer)", wait.as_millis()),
        }),
        Ok(Err(err)) => Err(ProxyError::UpstreamBroken {
            upstream,
            reason: format!("the answer could not be read: {err}"),
        }),
        Ok(Ok(body)) => {
            open.record.usage = usage::from_json_tail(&body);
            client
                .translation
                .answer(&body)
                .map_err(ProxyError::Translation)
        }
    };
    match translated {
        Ok(body) => {
            let mut builder = HttpResponse::build(status);
            headers::copy_response_headers(response.headers(), &mut builder);
            builder.insert_header((CONTENT_TYPE, "application/json"));
            name_deployment(&mut builder, &open.record);
            open.close(Outcome::Succeeded, None);
            builder.body(body)
        }
        Err(err) => {
            open.record.status = err.status_code().as_u16();
            open.close(Outcome::Failed(err.class()), Some(err.to_string()));
            err.response_for(&open.record.request_id)
        }
    }
}

fn outcome_of(status: actix_web::http::StatusCode) -> Outcome {
    if status.is_success() {
        Outcome::Succeeded
    } else if status.is_client_error() {
        Outcome::Failed(ErrorClass::Upstream4xx)
    } else {
        Outcome::Failed(ErrorClass::Upstream5xx)
    }
}

fn name_deployment(builder: &mut HttpResponseBuilder, record: &RequestRecord) {
    if let (Some(upstream), Some(name)) = (&record.upstream, &record.deployment) {
        let served_by = format!(
            "{}/{}",
            routing::path_segment(upstream),
            routing::path_segment(name)
        );
        builder.insert_header((GATEWAY_DEPLOYMENT, served_by));
    }
}
