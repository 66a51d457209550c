//! `<admin>/api/caddy`: Caddy's state for the domain and TLS page (admin API reachable, last
//! loads, upstream health, certificates from its storage, recent TLS/ACME log lines), the
//! rendered Caddyfile, and a forced reload.

use std::collections::BTreeMap;

use actix_web::{HttpResponse, web};
use serde::Serialize;
use serde_json::Value;

use super::{AppState, blocking};
use crate::caddy::certificates::{self, CertificateInfo};
use crate::caddy::loader::LoaderStatus;
use crate::caddy::sync::RenderOutcome;
use crate::caddy::tls_log::{self, LogLine};
use crate::errors::AdminError;

const LOG_LINES: usize = 100;

#[derive(Serialize)]
struct CaddyStatus {
    managed: bool,
    admin_url: Option<String>,
    /// Probed now.
    reachable: Option<bool>,
    reach_error: Option<String>,
    /// `reach_error` as a code and its values, for a client that words it in its own
    /// language (`caddy_unreachable`: `url`, `cause`, `cause_code`, `cause_detail`;
    /// `caddy_refused`: `status`, `message`).
    #[serde(skip_serializing_if = "Option::is_none")]
    reach_error_code: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reach_error_params: Option<BTreeMap<&'static str, String>>,
    loader: LoaderStatus,
    pending: bool,
    render: Option<RenderOutcome>,
    /// Caddy's view of the proxy and control upstreams (requests, failures).
    upstreams: Value,
    /// The proxy's own health check, asked directly.
    proxy_health: Option<bool>,
    /// Where Caddy forwards API traffic, and whether `PROXY_UPSTREAM` set it.
    proxy_upstream: String,
    proxy_upstream_from_env: bool,
    /// Caddy's plain-HTTP port, and whether the HTTPS site uses Caddy's internal CA
    /// (`tls internal`) rather than a public ACME CA.
    http_port: u16,
    tls_internal: bool,
    certificates: Vec<CertificateInfo>,
    tls_log: Vec<LogLine>,
    tls_log_path: String,
    caddyfile_path: String,
    storage_dir: String,
}

pub async fn status(state: web::Data<AppState>) -> Result<HttpResponse, AdminError> {
    let loader = state.caddy.loader();
    let (reachable, reach_error, upstreams) = match loader.admin() {
        None => (None, None, Value::Null),
        Some(admin) => match admin.upstreams().await {
            Ok(upstreams) => (Some(true), None, upstreams),
            Err(err) => match admin.probe().await {
                Ok(()) => (Some(true), Some(err), Value::Null),
                Err(err) => (Some(false), Some(err), Value::Null),
            },
        },
    };
    let config = state.store.last_good();
    let proxy_upstream = state
        .caddy
        .inputs()
        .proxy_upstream
        .clone()
        .unwrap_or_else(|| config.server.caddy.upstream.to_string());
    let proxy_health = state
        .http
        .get(format!("http://{proxy_upstream}/healthz"))
        .timeout(std::time::Duration::from_secs(3))
        .send()
        .await
        .map(|r| r.status().is_success())
        .ok();
    let inputs = state.caddy.inputs().clone();
    let storage = inputs.storage_dir.clone();
    let log = inputs.tls_log.clone();
    let (certificates, tls_log) = blocking("reading Caddy's storage", move || {
        let certs = certificates::list(&storage);
        let lines = tls_log::tail(&log, LOG_LINES)
            .map_err(|e| AdminError::Internal("reading Caddy's TLS log", anyhow::Error::new(e)))?;
        Ok((certs, lines))
    })
    .await?;
    let loader_status = loader.status();
    Ok(HttpResponse::Ok().json(CaddyStatus {
        managed: loader.admin().is_some(),
        admin_url: loader_status.admin_url.clone(),
        reachable,
        reach_error: reach_error.as_ref().map(ToString::to_string),
        reach_error_code: reach_error.as_ref().map(|e| e.code()),
        reach_error_params: reach_error.as_ref().map(|e| e.params()),
        pending: loader_status.pending(),
        loader: loader_status,
        render: state.caddy.last_render(),
        upstreams,
        proxy_health,
        proxy_upstream_from_env: inputs.proxy_upstream.is_some(),
        proxy_upstream,
        http_port: inputs.http_port,
        tls_internal: inputs.tls_internal,
        certificates,
        tls_log,
        tls_log_path: inputs.tls_log.display().to_string(),
        caddyfile_path: state.caddy.caddyfile_path().display().to_string(),
        storage_dir: inputs.storage_dir.display().to_string(),
    }))
}

/// The Caddyfile for the current config, as control renders it.
pub async fn caddyfile(state: web::Data<AppState>) -> Result<HttpResponse, AdminError> {
    let config = state.store.last_good();
    match state.caddy.render(&config) {
        Ok(text) => Ok(HttpResponse::Ok()
            .content_type("text/plain; charset=utf-8")
            .body(text)),
        Err(err) => Err(AdminError::BadRequest(err.to_string())),
    }
}

/// Renders and loads again, even when Caddy already runs the same text.
pub async fn reload(state: web::Data<AppState>) -> Result<HttpResponse, AdminError> {
    if state.caddy.loader().admin().is_none() {
        return Err(AdminError::CaddyDisabled);
    }
    let caddy = state.caddy.clone();
    let config = state.store.last_good();
    let render = blocking("rendering the Caddyfile", move || Ok(caddy.apply(&config))).await?;
    state.caddy.loader().force_reload();
    Ok(HttpResponse::Accepted().json(render))
}
