//! `POST <admin>/api/tester`: the endpoint tester's relay. The browser names a route, a client
//! key id and a request body; control sends it to the proxy with that key and streams the
//! answer back as it arrives. Keys never reach the browser; no byte of the answer is held.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use proxy::config::{Config, RouteKey};
use proxy::downstream::bounded::{MAX_ID_CHARS, bounded};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::{AppState, Body, parse_json};
use crate::cause::Cause;
use crate::errors::AdminError;
use crate::settings::loopback_for;

#[derive(Deserialize)]
struct TesterRequest {
    /// "chat/completions", "responses" or "images/generations".
    route: String,
    key_id: String,
    body: Box<RawValue>,
}

/// `PROXY_URL` or `PROXY_LISTEN`, else the config's listen address (a wildcard host reached on loopback).
fn proxy_base(state: &AppState, config: &Config) -> String {
    match &state.proxy_url {
        Some(url) => url.as_str().trim_end_matches('/').to_string(),
        None => format!(
            "http://{}:{}",
            loopback_for(config.server.listen.host()),
            config.server.listen.port()
        ),
    }
}

pub async fn send(
    state: web::Data<AppState>,
    Body(body): Body,
) -> Result<HttpResponse, AdminError> {
    let request: TesterRequest = parse_json(&body)?;
    let route = RouteKey::parse(&request.route)
        .ok_or_else(|| AdminError::BadRequest(format!("unknown route \"{}\"", request.route)))?;
    let config = state.store.last_good();
    let key = config
        .client_keys
        .iter()
        .find(|k| k.id == request.key_id)
        .ok_or_else(|| AdminError::KeyNotFound {
            id: bounded(&request.key_id, MAX_ID_CHARS).into_owned(),
        })?
        .key
        .clone();
    let base = proxy_base(&state, &config);
    let url = format!("{base}/v1/{}", route.as_str());
    let upstream = state
        .http
        .post(&url)
        .bearer_auth(key.expose())
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(request.body.get().to_string())
        .send()
        .await
        .map_err(|e| AdminError::ProxyUnreachable {
            url: base.clone(),
            from: if state.proxy_url.is_some() {
                state.settings.proxy_from
            } else {
                "server.host/server.port in config.json"
            },
            cause: Cause::of(&e),
        })?;
    let status =
        StatusCode::from_u16(upstream.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut response = HttpResponse::build(status);
    response
        .insert_header(("cache-control", "no-store"))
        .insert_header(("x-accel-buffering", "no"));
    for name in ["content-type", "x-request-id", "x-upstream-request-id"] {
        if let Some(value) = upstream.headers().get(name).and_then(|v| v.to_str().ok()) {
            response.insert_header((name, value.to_string()));
        }
    }
    Ok(response.streaming(upstream.bytes_stream()))
}
