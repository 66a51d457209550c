//! The request handler: reads and records the request, routes it, checks credentials, applies the
//! script and answers in the matching wire format with Azure's response headers.

use std::borrow::Cow;
use std::time::Duration;

use actix_web::body::SizedStream;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, HttpResponseBuilder, web};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use serde::Deserialize;

use crate::body::PacedBody;
use crate::formats::{self, Sse, error_body, json_string};
use crate::ids;
use crate::script::{Delivery, Overrides, Plan, Queued, StatusReply};
use crate::state::{AuthFailure, Shared, TokenVerdict};
use crate::tools;

/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

/// `model` when neither the body nor the path names one.
const DEFAULT_MODEL: &str = "gpt-4o";
const SSE_CONTENT_TYPE: &str = "text/event-stream; charset=utf-8";
const REGION: &str = "Sweden Central";
const RATELIMIT_REMAINING_REQUESTS: &str = "999";
const RATELIMIT_REMAINING_TOKENS: &str = "999982";

/// A deployment whose name starts with this serves only the Responses API: chat completions
/// get Azure's 400 `OperationNotSupported` (as codex models do).
pub const RESPONSES_ONLY_PREFIX: &str = "responses-only-";
/// A deployment whose name starts with this serves only chat completions: Responses requests
/// get Azure's 400 `OperationNotSupported`.
pub const CHAT_ONLY_PREFIX: &str = "chat-only-";
const UNSUPPORTED_MODEL_ADVICE: &str = "Please choose different model and try again. You can learn more about which models can be used with each operation here: https://go.microsoft.com/fwlink/?linkid=2197993.";

const BEARER_DENIED: &str = "Unauthorized. Access token is missing, invalid, audience is incorrect (https://cognitiveservices.azure.com), or have expired.";
const API_KEY_DENIED: &str = "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource.";

#[derive(Clone, Copy)]
enum Route<'a> {
    Chat { deployment: Option<&'a str> },
    Responses,
    Images,
    Embeddings,
}

fn route<'a>(req: &'a HttpRequest) -> Option<Route<'a>> {
    if req.method() != actix_web::http::Method::POST {
        return None;
    }
    match req.path() {
        "/openai/v1/chat/completions" => Some(Route::Chat { deployment: None }),
        "/openai/v1/responses" | "/openai/responses" => Some(Route::Responses),
        "/openai/v1/images/generations" => Some(Route::Images),
        "/openai/v1/embeddings" => Some(Route::Embeddings),
        path => {
            let rest = path.strip_prefix("/openai/deployments/")?;
            let (deployment, operation) = rest.split_once('/')?;
            if deployment.is_empty() {
                return None;
            }
            match operation {
                "chat/completions" => Some(Route::Chat {
                    deployment: Some(deployment),
                }),
                "images/generations" => Some(Route::Images),
                "embeddings" => Some(Route::Embeddings),
                _ => None,
            }
        }
    }
}

/// The request fields the fake reacts to; everything else is ignored.
#[derive(Default, Deserialize)]
struct Fields<'a> {
    #[serde(borrow)]
    model: Option<Cow<'a, str>>,
    stream: Option<bool>,
    stream_options: Option<StreamOptions>,
    n: Option<u64>,
    fake: Option<Overrides>,
}

#[derive(Default, Deserialize)]
struct StreamOptions {
    include_usage: Option<bool>,
}

/// Answers every request (registered as the default service).
pub async fn handle(
    req: HttpRequest,
    payload: web::Payload,
    shared: web::Data<Shared>,
) -> HttpResponse {
    let (body, too_large) = read_body(&req, payload).await;
    let verdict = shared.check_token(&req);
    shared.record(&req, body.clone(), verdict.subject());
    let mut response = if too_large {
        json_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "413",
            "The request body is too large.",
        )
    } else {
        answer(&req, &body, &shared, &verdict).await
    };
    add_azure_headers(response.headers_mut());
    response
}

/// Reads the whole body (up to [`MAX_BODY_BYTES`]); `true` when it was larger or broken off.
async fn read_body(req: &HttpRequest, mut payload: web::Payload) -> (Bytes, bool) {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0);
    if declared > MAX_BODY_BYTES {
        return (Bytes::new(), true);
    }
    // A body that arrives in one piece is kept as is, without copying.
    let mut first: Option<Bytes> = None;
    let mut joined: Option<BytesMut> = None;
    while let Some(chunk) = payload.next().await {
        let Ok(chunk) = chunk else {
            return (Bytes::new(), true);
        };
        let buf = match (&mut joined, first.take()) {
            (Some(buf), _) => buf,
            (None, None) => {
                first = Some(chunk);
                continue;
            }
            (None, Some(head)) => {
                let mut buf = BytesMut::with_capacity(declared.max(head.len() + chunk.len()));
                buf.extend_from_slice(&head);
                joined.insert(buf)
            }
        };
        if buf.len() + chunk.len() > MAX_BODY_BYTES {
            return (Bytes::new(), true);
        }
        buf.extend_from_slice(&chunk);
    }
    let body = match joined {
        Some(buf) => buf.freeze(),
        None => first.unwrap_or_default(),
    };
    (body, false)
}

async fn answer(
    req: &HttpRequest,
    body: &Bytes,
    shared: &Shared,
    verdict: &TokenVerdict,
) -> HttpResponse {
    let Some(route) = route(req) else {
        return json_error(StatusCode::NOT_FOUND, "404", "Resource not found");
    };
    match shared.check_auth(req, verdict) {
        Ok(()) => {}
        Err(AuthFailure::Bearer) => {
            return json_error(StatusCode::UNAUTHORIZED, "401", BEARER_DENIED);
        }
        Err(AuthFailure::ApiKey) => {
            return json_error(StatusCode::UNAUTHORIZED, "401", API_KEY_DENIED);
        }
    }
    let scripted = match shared.next_scripted() {
        Some(Queued::Status(reply)) => {
            sleep(Duration::from_millis(shared.behaviour.latency_ms)).await;
            return status_reply(reply);
        }
        Some(Queued::Normal {
            behaviour,
            delivery,
        }) => Some((behaviour, delivery)),
        None => match shared.throttle() {
            Some(reply) => return status_reply(reply),
            None => None,
        },
    };
    let fields: Fields<'_> = match serde_json::from_slice(body) {
        Ok(fields) => fields,
        Err(e) => {
            return json_error(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                &format!("The request body is not valid: {e}"),
            );
        }
    };
    let plan = match Plan::resolve(&shared.behaviour, &shared.completion, scripted, fields.fake) {
        Ok(plan) => plan,
        Err(message) => return json_error(StatusCode::BAD_REQUEST, "BadRequest", &message),
    };
    sleep(plan.latency).await;
    if let Some(reply) = plan.status {
        return status_reply(reply);
    }

    let model_name: &str = match (&fields.model, route) {
        (Some(model), _) => model,
        (None, Route::Chat { deployment }) => deployment.unwrap_or(DEFAULT_MODEL),
        (None, _) => DEFAULT_MODEL,
    };
    if let Some(operation) = unsupported_operation(route, model_name) {
        return json_error(
            StatusCode::BAD_REQUEST,
            "OperationNotSupported",
            &format!(
                "The {operation} operation does not work with the specified model, {model_name}. {UNSUPPORTED_MODEL_ADVICE}"
            ),
        );
    }
    let stream = fields.stream.unwrap_or(false);
    let include_usage = fields
        .stream_options
        .as_ref()
        .and_then(|o| o.include_usage)
        .unwrap_or(false);
    if !plan.tool_calls.is_empty() {
        let chat = match route {
            Route::Chat { .. } => Some(true),
            Route::Responses => Some(false),
            Route::Images | Route::Embeddings => None,
        };
        if let Some(chat) = chat {
            return tool_call_answer(chat, model_name, stream, include_usage, &plan, shared);
        }
    }
    let model = json_string(model_name);
    match route {
        Route::Chat { .. } if stream => {
            let sse = formats::chat_stream(&model, &plan.completion, include_usage);
            sse_response(sse, &plan, shared)
        }
        Route::Chat { .. } => {
            json_response(formats::chat_completion(&model, &plan.completion), &plan)
        }
        Route::Responses if stream => {
            let sse = formats::response_stream(&model, &plan.completion, plan.final_event);
            sse_response(sse, &plan, shared)
        }
        Route::Responses => {
            json_response(formats::response_object(&model, &plan.completion), &plan)
        }
        Route::Images => json_response(formats::image_generation(fields.n.unwrap_or(1)), &plan),
        Route::Embeddings => json_response(formats::embeddings(&model, body.len()), &plan),
    }
}

/// The operation a route-restricted deployment refuses on `route`, as Azure names it.
fn unsupported_operation(route: Route<'_>, model: &str) -> Option<&'static str> {
    match route {
        Route::Chat { .. } if model.starts_with(RESPONSES_ONLY_PREFIX) => Some("chatCompletion"),
        Route::Responses if model.starts_with(CHAT_ONLY_PREFIX) => Some("responses"),
        _ => None,
    }
}

/// An answer that calls the plan's functions, in the chat (`chat`) or the Responses format.
fn tool_call_answer(
    chat: bool,
    model: &str,
    stream: bool,
    include_usage: bool,
    plan: &Plan,
    shared: &Shared,
) -> HttpResponse {
    let (completion, calls) = (&plan.completion, &plan.tool_calls);
    match (chat, stream) {
        (true, true) => sse_response(
            tools::chat_stream(model, completion, calls, include_usage),
            plan,
            shared,
        ),
        (true, false) => json_response(tools::chat_completion(model, completion, calls), plan),
        (false, true) => sse_response(
            tools::response_stream(model, completion, calls),
            plan,
            shared,
        ),
        (false, false) => json_response(tools::response_object(model, completion, calls), plan),
    }
}

async fn sleep(duration: Duration) {
    if !duration.is_zero() {
        tokio::time::sleep(duration).await;
    }
}

fn sse_response(sse: Sse, plan: &Plan, shared: &Shared) -> HttpResponse {
    let body = match plan.delivery {
        Delivery::Whole => PacedBody::paced(sse.bytes, sse.gap_points, plan.chunk_gap),
        Delivery::CutAfter(events) => {
            let limit = match events {
                0 => 0,
                n => sse
                    .event_ends
                    .get(n - 1)
                    .copied()
                    .unwrap_or(sse.bytes.len()),
            };
            PacedBody::cut(sse.bytes, limit, sse.gap_points, plan.chunk_gap)
        }
        Delivery::Fragmented { piece_bytes, gap } => {
            PacedBody::fragmented(sse.bytes, piece_bytes, gap)
        }
    };
    HttpResponse::Ok()
        .insert_header((
            header::CONTENT_TYPE,
            HeaderValue::from_static(SSE_CONTENT_TYPE),
        ))
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-cache")))
        .streaming(body.tracked(shared.streams.clone()))
}

fn json_response(body: Bytes, plan: &Plan) -> HttpResponse {
    let mut response = HttpResponse::Ok();
    response.insert_header((
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    ));
    let len = body.len() as u64;
    match plan.delivery {
        Delivery::Whole => response.body(body),
        Delivery::CutAfter(_) => {
            let half = body.len() / 2;
            response.body(SizedStream::new(
                len,
                PacedBody::cut(body, half, Vec::new(), Duration::ZERO),
            ))
        }
        Delivery::Fragmented { piece_bytes, gap } => response.body(SizedStream::new(
            len,
            PacedBody::fragmented(body, piece_bytes, gap),
        )),
    }
}

fn status_reply(reply: StatusReply) -> HttpResponse {
    let mut response = HttpResponseBuilder::new(reply.status);
    for (name, value) in reply.headers {
        response.append_header((name, value));
    }
    let mut response = response.body(reply.body);
    let headers = response.headers_mut();
    if !headers.contains_key(header::CONTENT_TYPE) {
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    response
}

fn json_error(status: StatusCode, code: &str, message: &str) -> HttpResponse {
    HttpResponseBuilder::new(status)
        .insert_header((
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        ))
        .body(error_body(code, message))
}

/// Adds the headers Azure puts on every response, unless a scripted reply already set them.
fn add_azure_headers(headers: &mut HeaderMap) {
    const FIXED: [(&str, &str); 3] = [
        ("x-ms-region", REGION),
        (
            "x-ratelimit-remaining-requests",
            RATELIMIT_REMAINING_REQUESTS,
        ),
        ("x-ratelimit-remaining-tokens", RATELIMIT_REMAINING_TOKENS),
    ];
    for name in ["x-request-id", "apim-request-id"] {
        let name = HeaderName::from_static(name);
        if !headers.contains_key(&name) {
            let value = HeaderValue::from_bytes(&ids::uuid_v4())
                .expect("hex digits and dashes are valid header bytes");
            headers.insert(name, value);
        }
    }
    for (name, value) in FIXED {
        let name = HeaderName::from_static(name);
        if !headers.contains_key(&name) {
            headers.insert(name, HeaderValue::from_static(value));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    #[test]
    fn routes() {
        let chat = TestRequest::post()
            .uri("/openai/deployments/gpt-4o-mini/chat/completions?api-version=2024-10-21")
            .to_http_request();
        assert!(matches!(
            route(&chat),
            Some(Route::Chat {
                deployment: Some("gpt-4o-mini")
            })
        ));
        let v1 = TestRequest::post()
            .uri("/openai/v1/responses")
            .to_http_request();
        assert!(matches!(route(&v1), Some(Route::Responses)));
        let get = TestRequest::get()
            .uri("/openai/v1/chat/completions")
            .to_http_request();
        assert!(route(&get).is_none());
        let unknown = TestRequest::post()
            .uri("/openai/deployments//chat/completions")
            .to_http_request();
        assert!(route(&unknown).is_none());
    }
}
