//! The operator's view of the running gateway: the session banner, the overview (config file,
//! proxy, Caddy, warnings), and statistics and recent requests read from the proxy's ops
//! listener with its filters.

use actix_web::{HttpMessage as _, HttpRequest, HttpResponse, web};
use proxy::ops::contract::RecentQuery;
use serde::Serialize;
use serde_json::{Value, json};

use super::{AppState, read_config};
use crate::admin_auth::AdminUser;
use crate::caddy::loader::LoaderStatus;
use crate::caddy::sync::RenderOutcome;
use crate::errors::AdminError;
use crate::masking::MASK;
use crate::store::{AdminCredentials, Content};

#[derive(Serialize)]
struct Session {
    user: Option<String>,
    login_enabled: bool,
    default_password: bool,
    admin_path: String,
    version: &'static str,
    mask: &'static str,
}

pub async fn session(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let credentials = state.store.credentials();
    let user = req
        .extensions()
        .get::<AdminUser>()
        .and_then(|u| u.0.clone());
    HttpResponse::Ok().json(Session {
        user,
        login_enabled: !matches!(*credentials, AdminCredentials::Open),
        default_password: credentials.is_default_password(),
        admin_path: state.store.last_good().server.admin_path.clone(),
        version: env!("CARGO_PKG_VERSION"),
        mask: MASK,
    })
}

/// Something the operator should act on. `code` selects the UI's translated text; `message`
/// is the English text; `detail` carries names and paths.
#[derive(Serialize)]
struct Warning {
    code: &'static str,
    message: String,
    detail: Option<String>,
}

fn warning(code: &'static str, message: impl Into<String>, detail: Option<String>) -> Warning {
    Warning {
        code,
        message: message.into(),
        detail,
    }
}

#[derive(Serialize)]
struct Overview {
    control: Value,
    config: Value,
    proxy: Value,
    caddy: CaddyOverview,
    warnings: Vec<Warning>,
}

#[derive(Serialize)]
struct CaddyOverview {
    managed: bool,
    tls_enabled: bool,
    domain: String,
    loader: LoaderStatus,
    pending: bool,
    render: Option<RenderOutcome>,
}

pub async fn status(state: web::Data<AppState>) -> Result<HttpResponse, AdminError> {
    let on_disk = read_config(&state).await?;
    let config = state.store.last_good();
    let mut warnings = Vec::new();

    let credentials = state.store.credentials();
    if credentials.is_default_password() {
        warnings.push(warning(
            "default_password",
            "The admin password is still the default. Change server.adminAuth.password.",
            None,
        ));
    }
    if matches!(*credentials, AdminCredentials::Open) {
        warnings.push(warning(
            "login_disabled",
            "The admin login is disabled (server.adminAuth.enabled is false).",
            None,
        ));
    }
    let issues = on_disk.issues();
    match &on_disk.content {
        Content::Missing => warnings.push(warning(
            "config_missing",
            "config.json does not exist yet; saving creates it.",
            None,
        )),
        Content::Parsed {
            validated: Ok(_), ..
        } => {}
        _ => warnings.push(warning(
            "config_invalid",
            "config.json on disk is invalid; the proxy keeps serving the last valid config.",
            Some(
                issues
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
        )),
    }
    for (i, upstream) in config.upstreams.iter().enumerate() {
        if upstream.placeholder {
            warnings.push(warning(
                "placeholder_upstream",
                format!(
                    "Upstream \"{}\" still has the placeholder endpoint.",
                    upstream.name
                ),
                Some(format!("upstreams[{i}].baseUrl")),
            ));
        }
    }
    for (i, key) in config.client_keys.iter().enumerate() {
        if key.active && key.key.expose() == "CHANGEME" {
            warnings.push(warning(
                "sample_client_key",
                format!("Client key \"{}\" is the sample key CHANGEME.", key.id),
                Some(format!("apiKeys[{i}].key")),
            ));
        }
    }

    let ops_url = state.ops.base(&config);
    let proxy = match state.ops.status(&config).await {
        Ok(status) => {
            let applied = on_disk.sha256.as_deref() == Some(status.config.sha256.as_str());
            if let Some(rejected) = &status.config.rejected {
                let detail = rejected
                    .issues
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ");
                warnings.push(warning(
                    "proxy_rejected",
                    "The proxy refused the config file and serves an older one.",
                    Some(detail),
                ));
            }
            json!({"ops_url": ops_url, "reachable": true, "status": status, "applied": applied})
        }
        Err(err) => {
            warnings.push(warning("proxy_unreachable", err.to_string(), None));
            json!({"ops_url": ops_url, "reachable": false, "error": err.to_string()})
        }
    };

    let loader = state.caddy.loader().status();
    let managed = loader.admin_url.is_some();
    if managed {
        if loader.reachable == Some(false) {
            warnings.push(warning(
                "caddy_unreachable",
                loader
                    .unreachable_reason
                    .clone()
                    .unwrap_or_else(|| "Caddy's admin API does not answer.".into()),
                None,
            ));
        }
        if let Some(last) = loader.last_load.as_ref().filter(|l| !l.ok) {
            warnings.push(warning(
                "caddy_load_failed",
                "Caddy refused the last Caddyfile; it keeps running the previous one.",
                last.error.clone(),
            ));
        }
    }
    let render = state.caddy.last_render();
    if let Some(failed) = render.as_ref().filter(|r| !r.ok) {
        warnings.push(warning(
            "caddyfile_failed",
            "The Caddyfile could not be rendered or written.",
            failed.error.clone(),
        ));
    }

    Ok(HttpResponse::Ok().json(Overview {
        control: json!({
            "version": env!("CARGO_PKG_VERSION"),
            "uptime_s": state.started.elapsed().as_secs(),
        }),
        config: json!({
            "path": state.store.path().display().to_string(),
            "exists": !matches!(on_disk.content, Content::Missing),
            "valid": on_disk.valid().is_some(),
            "issues": issues,
            "etag": on_disk.etag,
            "sha256": on_disk.sha256,
            "modified_ms": on_disk.modified_ms,
            "models": config.models.len(),
            "upstreams": config.upstreams.len(),
            "client_keys": config.client_keys.len(),
        }),
        proxy,
        caddy: CaddyOverview {
            managed,
            tls_enabled: config.server.caddy.enabled,
            domain: config.server.caddy.domain.clone(),
            pending: loader.pending(),
            loader,
            render,
        },
        warnings,
    }))
}

pub async fn stats(state: web::Data<AppState>) -> Result<HttpResponse, AdminError> {
    let config = state.store.last_good();
    let stats = state.ops.stats(&config).await?;
    with_sorted_keys(&stats)
}

pub async fn requests(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, AdminError> {
    let query = web::Query::<RecentQuery>::from_query(req.query_string())
        .map_err(|e| AdminError::BadRequest(format!("invalid filter: {e}")))?;
    let config = state.store.last_good();
    let recent = state.ops.recent(&config, &query).await?;
    with_sorted_keys(&recent)
}

/// Answers with `body`, its object keys in sorted order at every level, as the admin API
/// serves every view of the proxy (the overview's `proxy.status` included).
fn with_sorted_keys(body: &impl Serialize) -> Result<HttpResponse, AdminError> {
    let sorted = serde_json::to_value(body)
        .map_err(|e| AdminError::Internal("serialising the proxy's answer", e.into()))?;
    Ok(HttpResponse::Ok().json(sorted))
}
