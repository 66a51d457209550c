//! `GET/PUT <admin>/api/config` and `POST <admin>/api/config/validate`: the whole config with
//! every secret masked and an ETag; saves with `If-Match`, validation with field paths.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use proxy::config::raw::RawConfig;
use proxy::config::{self, ConfigError, ConfigIssue};
use serde::Serialize;

use super::{AppState, Body, blocking, read_config};
use crate::caddy::sync::RenderOutcome;
use crate::errors::AdminError;
use crate::masking::{masked, masked_text};
use crate::store::{Content, OnDisk};

#[derive(Serialize)]
struct ConfigView {
    etag: String,
    sha256: Option<String>,
    path: String,
    exists: bool,
    valid: bool,
    /// Problems of the file on disk, each with its field path.
    issues: Vec<ConfigIssue>,
    /// Keys that were set but have no effect, with the reason.
    ignored: Vec<String>,
    /// The config with defaults filled in and secrets masked; `null` when the file is not
    /// readable as a config.
    config: Option<RawConfig>,
    /// The file's text with secret-looking values masked, when it is not readable as a
    /// config (so `config` is `null`); line numbers match the file's.
    text: Option<String>,
    modified_ms: Option<u64>,
}

fn view(on_disk: &OnDisk, path: String) -> ConfigView {
    let config = match &on_disk.content {
        Content::Missing => Some(masked(&RawConfig::default())),
        Content::Unparseable(_) => None,
        Content::Parsed { raw, .. } => Some(masked(raw)),
    };
    ConfigView {
        etag: on_disk.etag.clone(),
        sha256: on_disk.sha256.clone(),
        path,
        exists: !matches!(on_disk.content, Content::Missing),
        valid: on_disk.valid().is_some(),
        issues: match on_disk.content {
            Content::Missing => Vec::new(),
            _ => on_disk.issues(),
        },
        ignored: on_disk
            .valid()
            .map(|c| c.ignored.clone())
            .unwrap_or_default(),
        config,
        text: on_disk.unparsed_text.as_deref().map(masked_text),
        modified_ms: on_disk.modified_ms,
    }
}

pub async fn read(state: web::Data<AppState>) -> Result<HttpResponse, AdminError> {
    let on_disk = read_config(&state).await?;
    let path = state.store.location();
    Ok(HttpResponse::Ok()
        .insert_header((header::ETAG, on_disk.etag.clone()))
        .json(view(&on_disk, path)))
}

/// A submitted config: JSON into the raw schema types; a type error names its field path.
fn parse_submitted(body: &[u8]) -> Result<RawConfig, AdminError> {
    config::parse_raw(body).map_err(|e| match e {
        ConfigError::Syntax(issue) => AdminError::InvalidConfig(vec![issue]),
        ConfigError::Invalid(issues) => AdminError::InvalidConfig(issues),
    })
}

/// The ETag in `If-Match`: `None` for `*`; required.
fn if_match(req: &HttpRequest) -> Result<Option<String>, AdminError> {
    let value = req
        .headers()
        .get(header::IF_MATCH)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .ok_or(AdminError::PreconditionRequired)?;
    if value == "*" {
        return Ok(None);
    }
    Ok(Some(value.trim_start_matches("W/").to_string()))
}

#[derive(Serialize)]
struct SaveOutcome {
    etag: String,
    sha256: String,
    /// False when the submitted config equals the file on disk.
    changed: bool,
    config: RawConfig,
    caddyfile: RenderOutcome,
}

pub async fn save(
    state: web::Data<AppState>,
    req: HttpRequest,
    Body(body): Body,
) -> Result<HttpResponse, AdminError> {
    let expected = if_match(&req)?;
    let submitted = parse_submitted(&body)?;
    let store = state.store.clone();
    let caddy = state.caddy.clone();
    let (saved, caddyfile) = blocking("saving config.json", move || {
        let saved = store.save(submitted, expected.as_deref())?;
        let caddyfile = caddy.apply(&store.last_good());
        Ok((saved, caddyfile))
    })
    .await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::ETAG, saved.etag.clone()))
        .json(SaveOutcome {
            etag: saved.etag,
            sha256: saved.sha256,
            changed: saved.changed,
            config: masked(&saved.raw),
            caddyfile,
        }))
}

#[derive(Serialize)]
struct Validation {
    valid: bool,
    issues: Vec<ConfigIssue>,
}

pub async fn validate(
    state: web::Data<AppState>,
    Body(body): Body,
) -> Result<HttpResponse, AdminError> {
    let issues = match parse_submitted(&body) {
        Ok(submitted) => {
            let store = state.store.clone();
            blocking("validating the config", move || {
                store
                    .check(submitted)
                    .map_err(AdminError::internal("validating the config"))
            })
            .await?
        }
        Err(AdminError::InvalidConfig(issues)) => issues,
        Err(other) => return Err(other),
    };
    Ok(HttpResponse::Ok().json(Validation {
        valid: issues.is_empty(),
        issues,
    }))
}
