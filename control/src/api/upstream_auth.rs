//! `POST <admin>/api/auth/verify`: acquires an upstream credential once with the submitted
//! `auth` settings, through the proxy library's own verification, and reports the mode, the
//! expiry or the error. Never returns a token or key.

use std::time::Duration;

use actix_web::{HttpResponse, web};
use proxy::config::raw::{RawAuth, RawConfig};
use serde::Deserialize;
use serde_json::json;

use super::{AppState, Body, blocking, parse_json};
use crate::errors::AdminError;
use crate::masking::unmask_auth;

const VERIFY_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Deserialize)]
struct VerifyRequest {
    auth: RawAuth,
    /// Masked secrets are taken from this upstream's `auth` instead of the global block.
    #[serde(default)]
    upstream: Option<String>,
}

pub async fn verify(
    state: web::Data<AppState>,
    Body(body): Body,
) -> Result<HttpResponse, AdminError> {
    let request: VerifyRequest = parse_json(&body)?;
    let store = state.store.clone();
    let auth = blocking("checking the auth settings", move || {
        let on_disk = store
            .read()
            .map_err(AdminError::internal("reading config.json"))?;
        let mut auth = request.auth;
        let mut issues = unmask_auth(&mut auth, on_disk.raw(), request.upstream.as_deref());
        let probe = RawConfig {
            auth,
            ..RawConfig::default()
        };
        match proxy::config::validate(probe) {
            Ok(config) if issues.is_empty() => Ok(config.auth),
            Ok(_) => Err(AdminError::InvalidConfig(issues)),
            Err(err) => {
                issues.extend(err.issues());
                Err(AdminError::InvalidConfig(issues))
            }
        }
    })
    .await?;
    let mode = auth.mode();
    match tokio::time::timeout(VERIFY_TIMEOUT, proxy::upstream::credentials::verify(&auth)).await {
        Ok(verification) => {
            tracing::info!(mode = %verification.mode, ok = verification.ok, "upstream auth verified");
            Ok(HttpResponse::Ok().json(verification))
        }
        Err(_) => Ok(HttpResponse::Ok().json(json!({
            "mode": mode,
            "ok": false,
            "expires_at_ms": null,
            "error": format!("no credential within {} s", VERIFY_TIMEOUT.as_secs()),
            "error_code": "timed_out",
            "timeout_s": VERIFY_TIMEOUT.as_secs(),
        }))),
    }
}
