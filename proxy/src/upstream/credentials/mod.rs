//! How the gateway signs an upstream call: one small interface over every `auth.mode`. API keys
//! are a fixed header; Entra ID modes go through a token cache shared by every snapshot that
//! uses the same auth settings, so a reload that leaves them alone keeps the cached token.
//! Never logs or returns a credential's value.

mod entra;
mod http;
mod storage;
mod token_cache;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix_web::http::header::{AUTHORIZATION, HeaderName, HeaderValue};

use crate::config::{AuthConfig, AuthMode, EntraAuth, Secret};
use crate::process::cli::EnvVar;
use entra::EntraSource;
pub use http::TokenHttpClient;
pub use storage::storage_credential;
pub use token_cache::TokenCache;

/// What the default chain (`auth.mode` `default`, or `servicePrincipal` with empty fields)
/// reads from the environment; the Azure SDK reads the managed identity's own variables.
pub const ENVIRONMENT: &[EnvVar] = &[
    EnvVar {
        name: "AZURE_TENANT_ID",
        default: "unset",
        meaning: "tenant of the service principal (with `AZURE_CLIENT_ID` and `AZURE_CLIENT_SECRET`) or of the workload identity the default chain tries ([authentication.md](authentication.md))",
    },
    EnvVar {
        name: "AZURE_CLIENT_ID",
        default: "unset",
        meaning: "client id of that service principal or workload identity",
    },
    EnvVar {
        name: "AZURE_CLIENT_SECRET",
        default: "unset",
        meaning: "secret of that service principal",
    },
    EnvVar {
        name: "AZURE_FEDERATED_TOKEN_FILE",
        default: "unset",
        meaning: "the workload identity's token file (set by AKS)",
    },
];

/// A credential failure, described without secrets.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{cause}")]
pub struct CredentialError {
    pub cause: String,
}

#[derive(Clone)]
pub enum UpstreamCredential {
    /// The `api-key` header of `auth.mode: "apiKey"`.
    ApiKey(HeaderValue),
    /// An Entra ID bearer token.
    Entra(Arc<TokenCache>),
    /// Settings that cannot sign anything (reported on use).
    Broken { mode: AuthMode, cause: String },
}

impl UpstreamCredential {
    pub fn mode(&self) -> AuthMode {
        match self {
            UpstreamCredential::ApiKey(_) => AuthMode::ApiKey,
            UpstreamCredential::Entra(cache) => cache.mode(),
            UpstreamCredential::Broken { mode, .. } => *mode,
        }
    }

    /// The header that signs one upstream request.
    pub async fn authorize(
        &self,
        request_id: &str,
    ) -> Result<(HeaderName, HeaderValue), CredentialError> {
        match self {
            UpstreamCredential::ApiKey(value) => {
                Ok((HeaderName::from_static("api-key"), value.clone()))
            }
            UpstreamCredential::Entra(cache) => {
                Ok((AUTHORIZATION, cache.header(request_id).await?))
            }
            UpstreamCredential::Broken { cause, .. } => Err(CredentialError {
                cause: cause.clone(),
            }),
        }
    }

    /// The upstream answered 401 to `used`: drops it. True when a retry with a fresh credential
    /// can help (an Entra token; a fixed api-key would only be refused again).
    pub fn reject(&self, used: &HeaderValue, request_id: &str) -> bool {
        match self {
            UpstreamCredential::Entra(cache) => {
                cache.reject(used, request_id);
                true
            }
            _ => false,
        }
    }
}

fn api_key_credential(api_key: &Secret) -> UpstreamCredential {
    match HeaderValue::from_str(api_key.expose()) {
        Ok(mut value) => {
            value.set_sensitive(true);
            UpstreamCredential::ApiKey(value)
        }
        Err(_) => UpstreamCredential::Broken {
            mode: AuthMode::ApiKey,
            cause: "auth.apiKey holds characters not allowed in a header".into(),
        },
    }
}

/// A token cache of its own for `auth` (another service than the upstreams, such as Redis).
/// Call within the async runtime: the first fetch starts at once.
pub fn token_cache_for(auth: EntraAuth) -> Arc<TokenCache> {
    TokenCache::start(EntraSource::new(auth))
}

/// The token caches in use, keyed by their auth settings. A reload asks for the credentials of
/// the new config: unchanged settings get the same cache (and its token) back.
#[derive(Default)]
pub struct CredentialRegistry {
    caches: Mutex<HashMap<EntraAuth, Arc<TokenCache>>>,
}

impl CredentialRegistry {
    /// Credentials for each of `auths`; caches no longer asked for are released (requests still
    /// holding an older snapshot keep theirs until they end). Call within the async runtime.
    pub fn credentials_for(&self, auths: &[&AuthConfig]) -> Vec<UpstreamCredential> {
        let mut caches = self.caches.lock().unwrap_or_else(|e| e.into_inner());
        let mut kept = HashMap::with_capacity(auths.len());
        let credentials = auths
            .iter()
            .map(|auth| match auth {
                AuthConfig::ApiKey { api_key } => api_key_credential(api_key),
                AuthConfig::Entra(entra) => {
                    let cache = kept
                        .get(entra)
                        .or_else(|| caches.get(entra))
                        .cloned()
                        .unwrap_or_else(|| TokenCache::start(EntraSource::new(entra.clone())));
                    kept.insert(entra.clone(), cache.clone());
                    UpstreamCredential::Entra(cache)
                }
            })
            .collect();
        *caches = kept;
        credentials
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

/// How long `verify` waits for a token.
const VERIFY_TIMEOUT: Duration = Duration::from_secs(30);

/// Acquires a credential for `auth` as the proxy would (a fresh token, not a cached one) and
/// reports the result.
pub async fn verify(auth: &AuthConfig) -> Verification {
    let mode = auth.mode();
    let report = |result: Result<Option<SystemTime>, String>| match result {
        Ok(expires) => Verification {
            mode,
            ok: true,
            expires_at_ms: expires
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map(|d| d.as_millis() as u64),
            error: None,
        },
        Err(error) => Verification {
            mode,
            ok: false,
            expires_at_ms: None,
            error: Some(error),
        },
    };
    let entra = match auth {
        AuthConfig::ApiKey { api_key } => {
            return report(match api_key_credential(api_key) {
                UpstreamCredential::Broken { cause, .. } => Err(cause),
                _ => Ok(None),
            });
        }
        AuthConfig::Entra(entra) => entra,
    };
    let source = EntraSource::new(entra.clone());
    let fetched = match tokio::time::timeout(VERIFY_TIMEOUT, source.fetch()).await {
        Ok(result) => result.map(|token| Some(token.expires_at)),
        Err(_) => Err(format!("no token within {} s", VERIFY_TIMEOUT.as_secs())),
    };
    report(fetched)
}
