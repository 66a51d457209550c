//! The Entra ID credential of the Azure SDK clients for Blob Storage (`PERSISTENCE_MODE=blob`):
//! the same identity modes and token cache as upstream auth, handed to `azure_storage_blob` as an
//! `azure_core` `TokenCredential`. Never logs or returns a token.

use std::sync::Arc;
use std::time::UNIX_EPOCH;

use azure_core::credentials::{AccessToken, TokenCredential, TokenRequestOptions};
use azure_core::error::{Error, ErrorKind};
use azure_core::time::OffsetDateTime;

use super::TokenCache;
use super::entra::EntraSource;
use crate::config::EntraAuth;

/// A `TokenCredential` backed by a [`TokenCache`] for `auth` (its scope is the one asked for:
/// `https://storage.azure.com/.default`). Call within the async runtime: the first fetch starts
/// at once.
pub fn storage_credential(auth: EntraAuth) -> Arc<dyn TokenCredential> {
    Arc::new(CachedCredential {
        cache: TokenCache::start(EntraSource::new(auth)),
    })
}

struct CachedCredential {
    cache: Arc<TokenCache>,
}

impl std::fmt::Debug for CachedCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedCredential")
            .field("mode", &self.cache.mode())
            .finish_non_exhaustive()
    }
}

#[async_trait::async_trait]
impl TokenCredential for CachedCredential {
    async fn get_token(
        &self,
        _scopes: &[&str],
        _options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        let header = self
            .cache
            .header("blob-storage")
            .await
            .map_err(|err| Error::with_message(ErrorKind::Credential, err.cause))?;
        let token = header
            .to_str()
            .ok()
            .and_then(|value| value.strip_prefix("Bearer "))
            .ok_or_else(|| Error::with_message(ErrorKind::Credential, "unreadable token"))?
            .to_string();
        let expires = self
            .cache
            .expires_at()
            .and_then(|at| at.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs() as i64);
        let expires_on = OffsetDateTime::from_unix_timestamp(expires)
            .map_err(|_| Error::with_message(ErrorKind::Credential, "token expiry out of range"))?;
        Ok(AccessToken::new(token, expires_on))
    }
}
