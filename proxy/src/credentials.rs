//! How the gateway signs an upstream call: one small interface over every `auth.mode`.
//! Never logs or returns a credential's value in an error.

use actix_web::http::header::{HeaderName, HeaderValue};

use crate::config::{AuthConfig, AuthMode};

/// A credential failure, described without secrets.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{cause}")]
pub struct CredentialError {
    pub cause: String,
}

pub enum UpstreamCredential {
    /// The `api-key` header of `auth.mode: "apiKey"`.
    ApiKey(HeaderValue),
    /// A mode this build cannot sign with.
    Unavailable { mode: AuthMode, cause: String },
}

impl UpstreamCredential {
    pub fn from_config(auth: &AuthConfig) -> UpstreamCredential {
        match auth.mode {
            AuthMode::ApiKey => match HeaderValue::from_str(auth.api_key.expose()) {
                Ok(mut value) => {
                    value.set_sensitive(true);
                    UpstreamCredential::ApiKey(value)
                }
                Err(_) => UpstreamCredential::Unavailable {
                    mode: auth.mode,
                    cause: "auth.apiKey holds characters not allowed in a header".into(),
                },
            },
            mode => UpstreamCredential::Unavailable {
                mode,
                cause: "Entra ID token acquisition is not available in this build; use auth.mode \"apiKey\"".into(),
            },
        }
    }

    pub fn mode(&self) -> AuthMode {
        match self {
            UpstreamCredential::ApiKey(_) => AuthMode::ApiKey,
            UpstreamCredential::Unavailable { mode, .. } => *mode,
        }
    }

    /// The header that signs one upstream request.
    pub async fn authorize(&self) -> Result<(HeaderName, HeaderValue), CredentialError> {
        match self {
            UpstreamCredential::ApiKey(value) => {
                Ok((HeaderName::from_static("api-key"), value.clone()))
            }
            UpstreamCredential::Unavailable { cause, .. } => Err(CredentialError {
                cause: cause.clone(),
            }),
        }
    }
}

/// The outcome of acquiring a credential once, for the admin UI's "verify" button. Never holds
/// the token or key itself.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Verification {
    pub mode: AuthMode,
    pub ok: bool,
    /// When the acquired token expires (Unix ms); `None` for an api-key.
    pub expires_at_ms: Option<u64>,
    pub error: Option<String>,
}

/// Acquires a credential for `auth` as the proxy would and reports the result.
pub async fn verify(auth: &AuthConfig) -> Verification {
    let credential = UpstreamCredential::from_config(auth);
    match credential.authorize().await {
        Ok(_) => Verification {
            mode: auth.mode,
            ok: true,
            expires_at_ms: None,
            error: None,
        },
        Err(err) => Verification {
            mode: auth.mode,
            ok: false,
            expires_at_ms: None,
            error: Some(err.cause),
        },
    }
}
