//! `<admin>/api/keys`: list client keys (never their values), create one (its value is in this
//! answer only), rename, enable or disable, delete. Each change is a save of config.json.

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use serde::Serialize;

use super::{AppState, Body, blocking, parse_json, read_config};
use crate::client_keys::{self, KeyChange, KeySummary, NewKey};
use crate::errors::AdminError;
use crate::store::Saved;

#[derive(Serialize)]
struct KeyList {
    etag: String,
    keys: Vec<KeySummary>,
}

pub async fn list(state: web::Data<AppState>) -> Result<HttpResponse, AdminError> {
    let on_disk = read_config(&state).await?;
    let raw = on_disk
        .raw()
        .ok_or_else(|| AdminError::InvalidConfig(on_disk.issues()))?;
    Ok(HttpResponse::Ok().json(KeyList {
        etag: on_disk.etag.clone(),
        keys: client_keys::summaries(raw),
    }))
}

#[derive(Serialize)]
struct Created {
    id: String,
    status: String,
    /// The key itself: shown once, never again.
    key: String,
    etag: String,
}

pub async fn create(
    state: web::Data<AppState>,
    Body(body): Body,
) -> Result<HttpResponse, AdminError> {
    let new: NewKey = parse_json(&body)?;
    let key =
        client_keys::generate_key().map_err(AdminError::internal("generating a client key"))?;
    let store = state.store.clone();
    let (saved, key) = blocking("saving config.json", move || {
        store.update(|raw| client_keys::create(raw, &new, key))
    })
    .await?;
    let entry = saved
        .raw
        .client_keys
        .iter()
        .find(|k| k.key == key)
        .map(|k| (k.id.clone(), k.status.clone().unwrap_or_default()))
        .unwrap_or_default();
    tracing::info!(key_id = %entry.0, "client key created");
    Ok(HttpResponse::Created()
        .insert_header((header::ETAG, saved.etag.clone()))
        .json(Created {
            id: entry.0,
            status: entry.1,
            key,
            etag: saved.etag,
        }))
}

pub async fn change(
    state: web::Data<AppState>,
    id: web::Path<String>,
    Body(body): Body,
) -> Result<HttpResponse, AdminError> {
    let edit: KeyChange = parse_json(&body)?;
    let id = id.into_inner();
    let store = state.store.clone();
    let (saved, ()) = blocking("saving config.json", move || {
        store.update(|raw| client_keys::change(raw, &id, &edit))
    })
    .await?;
    Ok(saved_keys(saved))
}

pub async fn delete(
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, AdminError> {
    let id = id.into_inner();
    let store = state.store.clone();
    let (saved, ()) = blocking("saving config.json", move || {
        store.update(|raw| client_keys::delete(raw, &id))
    })
    .await?;
    Ok(saved_keys(saved))
}

/// The key list after a save, with the new ETag.
fn saved_keys(saved: Saved) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::ETAG, saved.etag.clone()))
        .json(KeyList {
            etag: saved.etag,
            keys: client_keys::summaries(&saved.raw),
        })
}
