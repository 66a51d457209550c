//! The client-facing API. Handlers stay thin: load one snapshot, call the domain functions,
//! map the result to a response. Every request is accounted exactly once.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Instant;

use actix_web::http::StatusCode;
use actix_web::http::header::CONTENT_LENGTH;
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use bytes::Bytes;
use serde::Serialize;

use crate::bookkeeping::accounting::{Accounting, OpenRequest, RequestRecord};
use crate::bookkeeping::stats::Outcome;
use crate::config::RouteKey;
use crate::downstream::body::{self as request_body, BodyRules};
use crate::downstream::body_budget::BodyBudget;
use crate::downstream::bounded::{MAX_ID_CHARS, bounded};
use crate::downstream::limits::{Charge, Limiter, RateHeaders, estimate};
use crate::errors::{OpenAiError, ProxyError};
use crate::relay::answer::{self, ClientTranslation};
use crate::rewrite;
use crate::rewrite::headers::{self, REQUEST_ID};
use crate::rewrite::images::ImageService;
use crate::snapshot::{Shared, Snapshot};
use crate::translate::{TranslatedRequest, Translation};
use crate::upstream::dispatch::{self, AttemptLog, Dispatch, Dispatched};
use crate::upstream::routing;

pub struct AppState {
    pub shared: Arc<Shared>,
    pub accounting: Arc<Accounting>,
    pub images: Arc<ImageService>,
    pub body_rules: BodyRules,
    /// The memory all request bodies being read or sent upstream may hold at once.
    pub body_budget: Arc<BodyBudget>,
    pub limiter: Arc<Limiter>,
}

/// What the client's path says about a call.
#[derive(Clone, Copy)]
struct Call<'a> {
    route: RouteKey,
    /// The model an Azure-style path names (`/openai/deployments/{model}/...`).
    path_model: Option<&'a str>,
    /// An Azure-style path: the client's `api-version` is its SDK's, not the upstream's.
    azure: bool,
}

impl Call<'_> {
    fn openai(route: RouteKey) -> Call<'static> {
        Call {
            route,
            path_model: None,
            azure: false,
        }
    }
}

pub async fn chat_completions(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    proxy(Call::openai(RouteKey::ChatCompletions), req, payload, state).await
}

pub async fn responses(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    proxy(Call::openai(RouteKey::Responses), req, payload, state).await
}

pub async fn images_generations(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    proxy(
        Call::openai(RouteKey::ImagesGenerations),
        req,
        payload,
        state,
    )
    .await
}

pub async fn embeddings(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    proxy(Call::openai(RouteKey::Embeddings), req, payload, state).await
}

/// `POST /openai/v1/{operation}` and `POST /openai/{operation}` (Azure's paths without a
/// deployment): the operation's route, the model from the body.
pub async fn azure_operation(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
    operation: web::Path<String>,
) -> HttpResponse {
    let Some(route) = RouteKey::parse(&operation) else {
        return not_found(req).await;
    };
    let call = Call {
        route,
        path_model: None,
        azure: true,
    };
    proxy(call, req, payload, state).await
}

/// `POST /openai/deployments/{model}/{operation}`: the client-facing model id in the path, as
/// Azure's SDKs call; a `model` in the body is optional and the path's wins.
pub async fn azure_deployment(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> HttpResponse {
    let (model, operation) = path.into_inner();
    let Some(route) = RouteKey::parse(&operation) else {
        return not_found(req).await;
    };
    let call = Call {
        route,
        path_model: Some(&model),
        azure: true,
    };
    proxy(call, req, payload, state).await
}

async fn proxy(
    call: Call<'_>,
    req: HttpRequest,
    mut payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let request_id = headers::request_id(req.headers());
    let snapshot = state.shared.snapshot.load_full();
    let mut open = OpenRequest::new(
        state.accounting.clone(),
        RequestRecord::new(request_id.clone(), call.route),
    );
    let result = forward(call, &req, &mut payload, &state, &snapshot, &mut open).await;
    let mut response = match result {
        Ok(forwarded) => {
            let mut response = match forwarded.translation {
                None => answer::respond(forwarded.dispatched, &snapshot, open, None),
                Some(client) => {
                    answer::respond_translated(forwarded.dispatched, client, &snapshot, open).await
                }
            };
            forwarded.rate_headers.write(response.headers_mut());
            response
        }
        Err(err) => {
            open.record.status = err.status_code().as_u16();
            open.close(Outcome::Failed(err.class()), Some(err.to_string()));
            let response = err.response_for(&request_id);
            if let ProxyError::BodyTimeout { .. }
            | ProxyError::BodyTooLarge { .. }
            | ProxyError::ServerBusy = err
            {
                // The rest of a body refused for its size or pace is not worth reading.
                request_body::closing_connection(response, payload)
            } else {
                response
            }
        }
    };
    if let Ok(value) = request_id.parse() {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    response
}

/// What `forward` hands to the answer: the upstream's response, the key's rate headers, and
/// the translation the client's API needs.
struct Forwarded {
    dispatched: Dispatched,
    rate_headers: RateHeaders,
    translation: Option<ClientTranslation>,
}

/// Authenticates, reads and rewrites the body, and dispatches it over the model's pool.
async fn forward(
    call: Call<'_>,
    req: &HttpRequest,
    payload: &mut web::Payload,
    state: &AppState,
    snapshot: &Snapshot,
    open: &mut OpenRequest,
) -> Result<Forwarded, ProxyError> {
    let record = &mut open.record;
    let key = snapshot.client_keys.authenticate(req.headers())?;
    record.key_id = Some(key.id.clone());

    let content_length = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    // Held until the body has gone upstream.
    let (body, _reservation) = request_body::read_limited(
        payload,
        content_length,
        &state.body_rules,
        &state.body_budget,
    )
    .await?;
    let inspected = request_body::inspect_off_reactor(&body, call.path_model).await?;
    record.stream = inspected.stream;
    record.requested_model = Some(bounded(&inspected.model, MAX_ID_CHARS).into_owned());

    let config = &snapshot.config;
    if !key.policy.allows(&inspected.model) {
        return Err(ProxyError::ModelNotAllowed(
            bounded(&inspected.model, MAX_ID_CHARS).into_owned(),
        ));
    }
    let (model, _) = routing::model(config, &inspected.model)?;
    // Only configured ids become statistics keys; a client cannot grow the tables.
    record.model = Some(inspected.model.clone());
    let limits = &key.policy.limits;
    let estimate = if config.limits.estimate_prompt_tokens && limits.meters_tokens() {
        estimate::prompt_tokens(body.clone()).await
    } else {
        0
    };
    let rate_headers = state
        .limiter
        .admit(&key.id, limits, &config.limits, estimate)
        .await?;
    if !limits.is_empty() {
        record.charge = Some(Charge {
            limiter: state.limiter.clone(),
            key: key.id.clone(),
            limits: limits.clone(),
        });
    }

    let translation = Translation::for_call(&config.models[model], call.route);
    let (body, inspected, include_usage) = match translation {
        None => (body, inspected, false),
        Some(translation) => {
            let translated = translate_off_reactor(translation, body).await?;
            let body = Bytes::from(translated.body);
            let inspected = request_body::inspect_off_reactor(&body, None).await?;
            (body, inspected, translated.include_usage)
        }
    };
    let prepared = rewrite::upstream_body(
        body,
        &inspected,
        &config.server.image_compression,
        &state.images,
        &record.request_id,
    )
    .await;
    let settings = &config.server.upstream;
    // The request timeout covers the upstream exchange, not the client's upload.
    record.deadline = (!inspected.stream).then(|| Instant::now() + settings.request_timeout);
    let client_query: Cow<'_, str> = if call.azure {
        Cow::Owned(routing::without_api_version(req.query_string()))
    } else {
        Cow::Borrowed(req.query_string())
    };
    let mut log = AttemptLog::new(record.started);
    let dispatched = dispatch::dispatch(
        Dispatch {
            snapshot,
            model,
            route: record.route,
            client_query: &client_query,
            request_id: &record.request_id,
            headers: &headers::upstream_request_headers(req.headers(), &record.request_id),
            body: &prepared,
            deadline: record.deadline,
        },
        &mut log,
    )
    .await;
    record.attempts = log.attempts;
    record.sends = log.sends;
    if let Some((upstream, deployment)) = log.last {
        record.upstream = Some(upstream);
        record.deployment = Some(deployment);
    }
    let dispatched = dispatched?;
    let exchange = &dispatched.exchange;
    record.ttfb = Some(exchange.ttfb);
    record.status = exchange.response.status().as_u16();
    record.upstream_request_id = headers::upstream_request_id(exchange.response.headers());
    Ok(Forwarded {
        dispatched,
        rate_headers,
        translation: translation.map(|t| ClientTranslation {
            translation: t,
            include_usage,
        }),
    })
}

/// Bodies larger than this are translated on the blocking pool.
const TRANSLATE_INLINE_MAX: usize = 256 * 1024;

/// A translation of the client's body, off the async worker when the body is large.
async fn translate_off_reactor(
    translation: Translation,
    body: Bytes,
) -> Result<TranslatedRequest, ProxyError> {
    let inline = body.len() <= TRANSLATE_INLINE_MAX;
    let translate = move || {
        let value: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|err| ProxyError::InvalidJson(err.to_string()))?;
        translation.request(value).map_err(ProxyError::Translation)
    };
    if inline {
        return translate();
    }
    match tokio::task::spawn_blocking(translate).await {
        Ok(result) => result,
        Err(err) => std::panic::resume_unwind(err.into_panic()),
    }
}

#[derive(Serialize)]
struct ModelList<'a> {
    object: &'static str,
    data: Vec<ModelEntry<'a>>,
}

#[derive(Serialize)]
struct ModelEntry<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    owned_by: &'static str,
}

/// `GET /v1/models`: the configured model ids the key may use, in the OpenAI list shape.
pub async fn models(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ProxyError> {
    let snapshot = state.shared.snapshot.load();
    let key = snapshot.client_keys.authenticate(req.headers())?;
    let created = snapshot.loaded_at_ms / 1000;
    let data = snapshot
        .config
        .models
        .iter()
        .filter(|m| key.policy.allows(&m.id))
        .map(|m| ModelEntry {
            id: &m.id,
            object: "model",
            created,
            owned_by: "azure-ai-foundry",
        })
        .collect();
    Ok(HttpResponse::Ok().json(ModelList {
        object: "list",
        data,
    }))
}

/// `GET /v1/models/{id}`: one model the key may use, or `404 model_not_found`.
pub async fn model(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ProxyError> {
    let snapshot = state.shared.snapshot.load();
    let key = snapshot.client_keys.authenticate(req.headers())?;
    let model = snapshot
        .config
        .model(&id)
        .filter(|m| key.policy.allows(&m.id))
        .ok_or_else(|| ProxyError::ModelNotFound(bounded(&id, MAX_ID_CHARS).into_owned()))?;
    Ok(HttpResponse::Ok().json(ModelEntry {
        id: &model.id,
        object: "model",
        created: snapshot.loaded_at_ms / 1000,
        owned_by: "azure-ai-foundry",
    }))
}

/// `GET /healthz`: answers without a key and reveals nothing but liveness.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(("cache-control", "no-store"))
        .json(serde_json::json!({"status": "ok"}))
}

/// Any other path: an OpenAI-shaped 404 (or 405 for a known path with the wrong method).
pub async fn not_found(req: HttpRequest) -> HttpResponse {
    let path = req.path();
    let known = matches!(
        path,
        "/v1/chat/completions"
            | "/v1/responses"
            | "/v1/images/generations"
            | "/v1/embeddings"
            | "/v1/models"
            | "/healthz"
    ) || path
        .strip_prefix("/openai/")
        .is_some_and(|rest| RouteKey::ALL.iter().any(|r| rest.ends_with(r.as_str())));
    let (status, code) = if known {
        (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed")
    } else {
        (StatusCode::NOT_FOUND, "unknown_url")
    };
    let path = bounded(req.path(), MAX_ID_CHARS);
    let message = format!("Invalid URL ({} {path})", req.method());
    OpenAiError::new(&message, "invalid_request_error", None, code).response(status)
}
