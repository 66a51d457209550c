//! The operator's view of the running gateway: the session banner, the overview (config file,
//! proxy, Caddy, warnings), and statistics, client key limits and recent requests read from the
//! proxy's ops listener with its filters.

use actix_web::{HttpMessage as _, HttpRequest, HttpResponse, web};
use proxy::bookkeeping::history::query::{self, Format};
use proxy::ops::contract::{OpsStats, RecentQuery, ReplicaStats, StatsData};
use proxy::ops::usage as ops_usage;
use proxy::process::clock::now_ms;
use serde::Serialize;
use serde_json::{Value, json};

use super::{AppState, blocking, read_config};
use crate::admin_auth::AdminUser;
use crate::caddy::loader::LoaderStatus;
use crate::caddy::sync::RenderOutcome;
use crate::errors::AdminError;
use crate::masking::MASK;
use crate::store::{AdminCredentials, Content};
use crate::warnings::{self, Facts, Warning};

#[derive(Serialize)]
struct Session {
    user: Option<String>,
    login_enabled: bool,
    default_password: bool,
    admin_path: String,
    version: &'static str,
    mask: &'static str,
    /// `file` or `blob` (`PERSISTENCE_MODE`): in blob mode the UI charts every replica's usage
    /// history (`usage/merged`).
    persistence: &'static str,
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
        admin_path: state.store.last_good().server.admin_path.to_string(),
        version: env!("CARGO_PKG_VERSION"),
        mask: MASK,
        persistence: if state.store.blob().is_some() {
            "blob"
        } else {
            "file"
        },
    })
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
    let proxy_status = state.ops.status(&config).await;
    let loader = state.caddy.loader().status();
    let render = state.caddy.last_render();
    let blob = state.store.blob().map(|b| b.view());
    let warnings = warnings::warnings(&Facts {
        admin: &state.store.credentials(),
        on_disk: &on_disk,
        blob: blob.as_ref(),
        config: &config,
        proxy: proxy_status.as_ref(),
        caddy: &loader,
        render: render.as_ref(),
    });

    let ops_url = state.ops.base(&config);
    let proxy = match proxy_status {
        Ok(status) => {
            let applied = on_disk.sha256.as_deref() == Some(status.config.sha256.as_str());
            json!({"ops_url": ops_url, "reachable": true, "status": status, "applied": applied})
        }
        Err(err) => json!({"ops_url": ops_url, "reachable": false, "error": err.to_string()}),
    };

    Ok(HttpResponse::Ok().json(Overview {
        control: json!({
            "version": env!("CARGO_PKG_VERSION"),
            "uptime_s": state.started.elapsed().as_secs(),
        }),
        config: json!({
            "path": state.store.location(),
            "blob": blob,
            "exists": !matches!(on_disk.content, Content::Missing),
            "valid": on_disk.valid().is_some(),
            "issues": on_disk.issues(),
            "etag": on_disk.etag,
            "sha256": on_disk.sha256,
            "modified_ms": on_disk.modified_ms,
            "models": config.models.len(),
            "upstreams": config.upstreams.len(),
            "client_keys": config.client_keys.len(),
        }),
        proxy,
        caddy: CaddyOverview {
            managed: loader.admin_url.is_some(),
            tls_enabled: config.server.caddy.enabled,
            domain: config
                .server
                .caddy
                .domain
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
            pending: loader.pending(),
            loader,
            render,
        },
        warnings,
    }))
}

/// The proxy's statistics; in blob mode with the usage counters of every replica added up
/// (this control's proxy read live, the others from their statistics blobs).
pub async fn stats(state: web::Data<AppState>) -> Result<HttpResponse, AdminError> {
    let config = state.store.last_good();
    let mut stats = state.ops.stats(&config).await?;
    if state.store.blob().is_some() {
        let local = state
            .ops
            .status(&config)
            .await
            .ok()
            .and_then(|status| status.config.blob.map(|b| b.replica));
        let store = state.store.clone();
        let replicas = blocking("reading the replicas' statistics", move || {
            store
                .blob()
                .map(|blob| blob.replica_stats())
                .transpose()
                .map_err(AdminError::internal("reading the replicas' statistics"))
        })
        .await?
        .unwrap_or_default();
        merge_replicas(&mut stats, local.as_deref(), replicas);
    }
    with_sorted_keys(&stats)
}

/// `GET usage/merged` (blob mode): the usage history of every replica as one, with the
/// parameters of the proxy's `GET /usage` (JSON, or CSV with `format=csv` or `Accept: text/csv`),
/// read from the replicas' history files in Blob Storage (each copied every
/// `stats.flushInterval`). This control's own replica is read from its copy too, like the
/// others, so that it is counted once and its latency histograms add up with theirs.
pub async fn merged_usage(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, AdminError> {
    let not_blob_mode = || {
        AdminError::NotFound(
            "the merged usage history exists in blob mode (PERSISTENCE_MODE=blob) only".into(),
        )
    };
    if state.store.blob().is_none() {
        return Err(not_blob_mode());
    }
    let request = match query::parse(req.query_string()) {
        Ok(request) => request,
        Err(err) => return Ok(ops_usage::error_response(&err)),
    };
    let csv = match request.format {
        Some(format) => format == Format::Csv,
        None => super::usage::accepts_csv(&req),
    };
    let retention = state.store.last_good().stats.retention;
    let store = state.store.clone();
    let answer = blocking("reading the replicas' usage history", move || {
        let merged = store
            .blob()
            .ok_or_else(not_blob_mode)?
            .merged_usage()
            .map_err(AdminError::internal("reading the replicas' usage history"))?;
        Ok(merged.query(&request, now_ms(), &retention))
    })
    .await?;
    let page = match answer {
        Ok(page) => page,
        Err(err) => {
            if err.code == "internal_error" {
                tracing::error!(error = %err, "the merged usage history could not be queried");
            }
            return Ok(ops_usage::error_response(&err));
        }
    };
    if csv {
        return Ok(HttpResponse::Ok()
            .content_type(ops_usage::CSV_CONTENT_TYPE)
            .insert_header((
                actix_web::http::header::CONTENT_DISPOSITION,
                ops_usage::csv_disposition(&page),
            ))
            .body(ops_usage::csv(&page)));
    }
    Ok(HttpResponse::Ok().json(page))
}

/// Adds the other replicas' usage counters to the live ones of `local` (the replica this
/// control reads; its own blob is an older copy of the live figures).
fn merge_replicas(stats: &mut OpsStats, local: Option<&str>, replicas: Vec<(String, StatsData)>) {
    let live = ReplicaStats {
        name: local.unwrap_or("local").to_string(),
        requests: stats.usage.total.requests,
        total_tokens: stats.usage.total.total_tokens,
        live: true,
    };
    let mut listed = vec![live];
    for (name, usage) in replicas {
        if Some(name.as_str()) == local {
            continue;
        }
        stats.usage.merge(&usage);
        listed.push(ReplicaStats {
            name,
            requests: usage.total.requests,
            total_tokens: usage.total.total_tokens,
            live: false,
        });
    }
    stats.replicas = listed;
}

/// Each client key's windows and budget against their limits, keys in id order.
pub async fn limits(state: web::Data<AppState>) -> Result<HttpResponse, AdminError> {
    let config = state.store.last_good();
    let mut page = state.ops.limits(&config).await?;
    page.keys.sort_by(|a, b| a.key_id.cmp(&b.key_id));
    with_sorted_keys(&page)
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
