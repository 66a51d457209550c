//! The admin API under `<adminPath>/api/` and the state its handlers share. Handlers stay thin:
//! extract, call one domain function (on the blocking pool when it touches files), answer.

mod body;
mod caddy;
mod config;
mod keys;
mod ops;
mod tester;
mod upstream_auth;
mod usage;

use std::sync::Arc;
use std::time::Instant;

use actix_web::web;
use url::Url;

pub use usage::PASSED_ON_CODES as USAGE_REFUSAL_CODES;

use crate::caddy::sync::CaddySync;
use crate::errors::AdminError;
use crate::proxy_ops::ProxyOps;
use crate::settings::Settings;
use crate::store::ConfigStore;
use crate::throttle::LoginThrottle;
use body::BodyLimit;

pub use body::Body;

/// Largest request body accepted, a config document included: the largest config.json either
/// binary reads.
pub const CONFIG_BODY_LIMIT: usize = proxy::process::regular_file::CONFIG_FILE_LIMIT;
/// Largest endpoint-tester request (image inputs included).
pub const TESTER_BODY_LIMIT: usize = 16 * 1024 * 1024;

pub struct AppState {
    pub settings: Settings,
    pub store: Arc<ConfigStore>,
    pub throttle: LoginThrottle,
    pub http: reqwest::Client,
    pub ops: ProxyOps,
    pub proxy_url: Option<Url>,
    pub caddy: Arc<CaddySync>,
    pub started: Instant,
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/api")
            .app_data(BodyLimit(CONFIG_BODY_LIMIT))
            .route("/session", web::get().to(ops::session))
            .route("/status", web::get().to(ops::status))
            .route("/config", web::get().to(config::read))
            .route("/config", web::put().to(config::save))
            .route("/config/validate", web::post().to(config::validate))
            .route("/keys", web::get().to(keys::list))
            .route("/keys", web::post().to(keys::create))
            .route("/keys/{id}", web::patch().to(keys::change))
            .route("/keys/{id}", web::delete().to(keys::delete))
            .route("/stats", web::get().to(ops::stats))
            .route("/usage/merged", web::get().to(ops::merged_usage))
            .route("/limits", web::get().to(ops::limits))
            .route("/requests", web::get().to(ops::requests))
            .route("/usage", web::get().to(usage::usage))
            .route("/auth/verify", web::post().to(upstream_auth::verify))
            .route("/caddy", web::get().to(caddy::status))
            .route("/caddy/caddyfile", web::get().to(caddy::caddyfile))
            .route("/caddy/reload", web::post().to(caddy::reload))
            .service(
                web::resource("/tester")
                    .app_data(BodyLimit(TESTER_BODY_LIMIT))
                    .route(web::post().to(tester::send)),
            )
            .default_service(web::to(not_found)),
    );
}

async fn not_found() -> Result<actix_web::HttpResponse, AdminError> {
    Err(AdminError::NotFound("no such admin API endpoint".into()))
}

/// Runs blocking work (files, parsing) off the async workers.
pub async fn blocking<T, F>(what: &'static str, work: F) -> Result<T, AdminError>
where
    F: FnOnce() -> Result<T, AdminError> + Send + 'static,
    T: Send + 'static,
{
    web::block(work)
        .await
        .map_err(|e| AdminError::Internal(what, anyhow::anyhow!("blocking pool: {e}")))?
}

/// config.json as it is on disk, read off the async workers.
pub async fn read_config(state: &AppState) -> Result<crate::store::OnDisk, AdminError> {
    let store = state.store.clone();
    blocking("reading config.json", move || {
        store
            .read()
            .map_err(AdminError::internal("reading config.json"))
    })
    .await
}

/// Parses a JSON request body into `T`; errors name the field path.
pub fn parse_json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, AdminError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(&mut de)
        .map_err(|e| AdminError::BadRequest(format!("invalid request body: {e}")))
}
