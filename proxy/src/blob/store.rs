//! Reads and writes of blobs in the gateway's container, through the official SDK
//! (`azure_storage_blob`): conditional reads by ETag, conditional writes (`If-Match`, or
//! create-only), listing by prefix. Every call is bounded in time and in the bytes it reads;
//! failures are sorted into what the caller acts on (missing, conflict, unreachable). Errors
//! never carry the SAS or a token.

use std::sync::Arc;
use std::time::Duration;

use azure_core::credentials::TokenCredential;
use azure_core::error::ErrorKind;
use azure_core::http::{ClientOptions, Etag, RequestContent, RetryOptions, StatusCode, Transport};
use azure_storage_blob::models::{
    BlobClientDownloadOptions, BlobContainerClientListBlobsOptions, BlockBlobClientUploadOptions,
};
use azure_storage_blob::{
    BlobClient, BlobClientOptions, BlobContainerClient, BlobContainerClientOptions,
};
use futures_util::TryStreamExt as _;

use super::settings::{BlobAuth, BlobSettings};
use crate::upstream::credentials::{TokenHttpClient, storage_credential};

/// The longest one call to Blob Storage may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(15);

/// Why a blob operation did not do what was asked.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BlobError {
    /// The condition of a write did not hold: the blob changed (or exists, for a create).
    #[error("the blob changed since it was read")]
    Conflict,
    /// Blob Storage could not be reached, refused the credential, or failed: the cause for
    /// operators, without secrets.
    #[error("{0}")]
    Unavailable(String),
    /// The blob is larger than the caller reads.
    #[error("the blob is larger than the limit of {0} bytes")]
    TooLarge(usize),
}

/// A blob's content and version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobVersion {
    pub bytes: Vec<u8>,
    pub etag: String,
}

/// The outcome of a conditional read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetched {
    /// The blob still has the ETag the read was conditional on.
    Unchanged,
    /// The blob (or its container) does not exist.
    Missing,
    Found(BlobVersion),
}

/// How a write is conditioned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteIf {
    /// Only over this ETag (`If-Match`).
    Matches(String),
    /// Only when no blob exists (`If-None-Match: *`).
    Absent,
    /// Unconditionally (statistics: each replica writes only its own blob).
    Always,
}

#[derive(Clone)]
pub struct BlobStore {
    settings: Arc<BlobSettings>,
    container: Arc<BlobContainerClient>,
    credential: Option<Arc<dyn TokenCredential>>,
}

impl BlobStore {
    /// A store for `settings`. Call within the async runtime: an Entra ID credential starts
    /// fetching its token at once.
    pub fn new(settings: BlobSettings) -> anyhow::Result<BlobStore> {
        let credential = match &settings.auth {
            BlobAuth::Sas(_) => None,
            BlobAuth::Entra(auth) => Some(storage_credential(auth.clone())),
        };
        let container = BlobContainerClient::new(
            settings.container_url(),
            credential.clone(),
            Some(BlobContainerClientOptions {
                client_options: client_options(),
                ..Default::default()
            }),
        )
        .map_err(|e| anyhow::anyhow!("{}", describe(&e)))?;
        Ok(BlobStore {
            settings: Arc::new(settings),
            container: Arc::new(container),
            credential,
        })
    }

    pub fn settings(&self) -> &BlobSettings {
        &self.settings
    }

    fn blob(&self, name: &str) -> Result<BlobClient, BlobError> {
        BlobClient::new(
            self.settings.blob_url(name),
            self.credential.clone(),
            Some(BlobClientOptions {
                client_options: client_options(),
                ..Default::default()
            }),
        )
        .map_err(|e| BlobError::Unavailable(describe(&e)))
    }

    /// Reads `name` unless its ETag is still `known` (`If-None-Match`); at most `limit` bytes.
    pub async fn fetch(
        &self,
        name: &str,
        known: Option<&str>,
        limit: usize,
    ) -> Result<Fetched, BlobError> {
        let blob = self.blob(name)?;
        let options = BlobClientDownloadOptions {
            if_none_match: known.map(|etag| Etag::from(etag.to_string())),
            // One request: a blob over the limit is refused, never read in parts.
            range: Some((0..limit as u64 + 1).into()),
            partition_size: std::num::NonZero::new(limit + 1),
            parallel: std::num::NonZero::new(1),
            ..Default::default()
        };
        let call = async {
            let response = blob.download(Some(options)).await?;
            let etag = response
                .properties
                .etag
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default();
            let mut body = response.body;
            let mut bytes = Vec::new();
            while let Some(chunk) = body.try_next().await? {
                bytes.extend_from_slice(&chunk);
                if bytes.len() > limit {
                    return Ok(Err(BlobError::TooLarge(limit)));
                }
            }
            Ok(Ok(Fetched::Found(BlobVersion { bytes, etag })))
        };
        match bounded(call).await {
            Ok(outcome) => outcome,
            Err(Failure::Status(StatusCode::NotModified)) => Ok(Fetched::Unchanged),
            Err(Failure::Status(StatusCode::NotFound) | Failure::ContainerMissing) => {
                Ok(Fetched::Missing)
            }
            Err(failure) => Err(failure.into_error()),
        }
    }

    /// Writes `bytes` to `name` when `condition` holds; the new ETag. A missing container is
    /// created once. A write answered 404 is taken as a missing container whatever its error
    /// code says: a blob write cannot find anything else missing.
    pub async fn put(
        &self,
        name: &str,
        bytes: &[u8],
        condition: &WriteIf,
    ) -> Result<String, BlobError> {
        match self.put_once(name, bytes, condition).await {
            Err(Failure::ContainerMissing | Failure::Status(StatusCode::NotFound)) => {
                self.create_container().await?;
                self.put_once(name, bytes, condition)
                    .await
                    .map_err(Failure::into_error)
            }
            other => other.map_err(Failure::into_error),
        }
    }

    async fn put_once(
        &self,
        name: &str,
        bytes: &[u8],
        condition: &WriteIf,
    ) -> Result<String, Failure> {
        let blob = self.blob(name).map_err(Failure::Error)?;
        let mut options = BlockBlobClientUploadOptions {
            blob_content_type: Some("application/json".into()),
            ..Default::default()
        };
        match condition {
            WriteIf::Matches(etag) => options.if_match = Some(Etag::from(etag.clone())),
            WriteIf::Absent => options.if_none_match = Some(Etag::from("*".to_string())),
            WriteIf::Always => {}
        }
        let content = RequestContent::from(bytes.to_vec());
        let call = async {
            let uploaded = blob.upload(content, Some(options)).await?;
            Ok(uploaded.etag.map(|e| e.to_string()).unwrap_or_default())
        };
        bounded(call).await
    }

    async fn create_container(&self) -> Result<(), BlobError> {
        let container = self.container.clone();
        match bounded(async move { container.create(None).await.map(|_| ()) }).await {
            Ok(()) | Err(Failure::Status(StatusCode::Conflict)) => {
                tracing::info!(container = %self.settings.container, "blob container created");
                Ok(())
            }
            Err(failure) => Err(failure.into_error()),
        }
    }

    /// The names of the blobs under `prefix` (at most `max`).
    pub async fn list(&self, prefix: &str, max: usize) -> Result<Vec<String>, BlobError> {
        let options = BlobContainerClientListBlobsOptions {
            prefix: Some(prefix.to_string()),
            ..Default::default()
        };
        let container = self.container.clone();
        let call = async move {
            let mut pager = container.list_blobs(Some(options))?;
            let mut names = Vec::new();
            while let Some(item) = pager.try_next().await? {
                if let Some(name) = item.name {
                    names.push(name);
                }
                if names.len() >= max {
                    break;
                }
            }
            Ok(names)
        };
        match bounded(call).await {
            Ok(names) => Ok(names),
            Err(Failure::Status(StatusCode::NotFound) | Failure::ContainerMissing) => {
                Ok(Vec::new())
            }
            Err(failure) => Err(failure.into_error()),
        }
    }
}

fn client_options() -> ClientOptions {
    ClientOptions {
        transport: Some(Transport::new(TokenHttpClient::shared())),
        // Callers retry on their own schedule (the poll, the recovery interval).
        retry: RetryOptions::none(),
        ..Default::default()
    }
}

/// A failed call, before it is sorted for the caller.
enum Failure {
    Status(StatusCode),
    ContainerMissing,
    Error(BlobError),
}

impl Failure {
    fn into_error(self) -> BlobError {
        match self {
            Failure::Status(StatusCode::PreconditionFailed | StatusCode::Conflict) => {
                BlobError::Conflict
            }
            Failure::Status(status) => {
                BlobError::Unavailable(format!("Blob Storage answered {}", u16::from(status)))
            }
            Failure::ContainerMissing => {
                BlobError::Unavailable("the blob container does not exist".into())
            }
            Failure::Error(err) => err,
        }
    }
}

/// Runs `call` within `CALL_TIMEOUT`, sorting its error.
async fn bounded<T>(
    call: impl std::future::Future<Output = azure_core::Result<T>>,
) -> Result<T, Failure> {
    match tokio::time::timeout(CALL_TIMEOUT, call).await {
        Err(_) => Err(Failure::Error(BlobError::Unavailable(format!(
            "Blob Storage did not answer within {} s",
            CALL_TIMEOUT.as_secs()
        )))),
        Ok(Ok(value)) => Ok(value),
        Ok(Err(err)) => Err(match err.kind() {
            ErrorKind::HttpResponse {
                status: StatusCode::NotFound,
                error_code: Some(code),
                ..
            } if code == "ContainerNotFound" => Failure::ContainerMissing,
            ErrorKind::HttpResponse {
                status:
                    status @ (StatusCode::NotModified
                    | StatusCode::NotFound
                    | StatusCode::PreconditionFailed
                    | StatusCode::Conflict),
                ..
            } => Failure::Status(*status),
            _ => Failure::Error(BlobError::Unavailable(describe(&err))),
        }),
    }
}

/// An SDK error as one line for operators, without the request URL's query (a SAS).
fn describe(err: &azure_core::Error) -> String {
    let text = match err.kind() {
        ErrorKind::HttpResponse {
            status, error_code, ..
        } => format!(
            "Blob Storage answered {} ({})",
            u16::from(*status),
            error_code.as_deref().unwrap_or("no error code")
        ),
        ErrorKind::Credential => format!("no Entra ID token for Blob Storage: {err}"),
        _ => err.to_string(),
    };
    strip_queries(&text.replace(['\n', '\r'], " "))
}

/// Removes every URL query (`?...` up to the next space) from `text`.
fn strip_queries(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut skipping = false;
    for c in text.chars() {
        if c == '?' {
            skipping = true;
            continue;
        }
        if skipping && c.is_whitespace() {
            skipping = false;
        }
        if !skipping {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_stripped_from_messages() {
        assert_eq!(
            strip_queries("GET http://h/c/b?sv=1&sig=abc failed: refused"),
            "GET http://h/c/b failed: refused"
        );
    }
}
