//! The HTTP client the Azure SDK clients use (Entra ID token requests, and Blob Storage in blob
//! persistence mode): reqwest over the same rustls roots as the upstream client (system store
//! plus Mozilla roots), bounded by a timeout, without automatic decompression. Never logs a
//! request body (token requests carry client secrets).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use azure_core::error::{Error, ErrorKind};
use azure_core::http::headers::{HeaderName, HeaderValue, Headers};
use azure_core::http::{AsyncRawResponse, Body, HttpClient, Method, Request};
use futures_util::TryStreamExt;

#[derive(Debug)]
pub struct TokenHttpClient {
    client: reqwest::Client,
}

impl TokenHttpClient {
    pub fn shared() -> Arc<dyn HttpClient> {
        static CLIENT: std::sync::OnceLock<Arc<dyn HttpClient>> = std::sync::OnceLock::new();
        CLIENT
            .get_or_init(|| {
                let mut tls = (*crate::upstream::transport::tls_config()).clone();
                // Token requests are few and small: HTTP/1.1 only.
                tls.alpn_protocols = vec![b"http/1.1".to_vec()];
                let client = reqwest::Client::builder()
                    .use_preconfigured_tls(tls)
                    .connect_timeout(Duration::from_secs(10))
                    .timeout(Duration::from_secs(60))
                    .build()
                    .unwrap_or_else(|err| {
                        tracing::warn!(error = %err, "token HTTP client fell back to defaults");
                        reqwest::Client::new()
                    });
                Arc::new(TokenHttpClient { client })
            })
            .clone()
    }
}

#[async_trait]
impl HttpClient for TokenHttpClient {
    async fn execute_request(&self, request: &Request) -> azure_core::Result<AsyncRawResponse> {
        let method = match request.method() {
            Method::Get => reqwest::Method::GET,
            Method::Post => reqwest::Method::POST,
            Method::Put => reqwest::Method::PUT,
            Method::Patch => reqwest::Method::PATCH,
            Method::Delete => reqwest::Method::DELETE,
            Method::Head => reqwest::Method::HEAD,
            other => {
                return Err(Error::with_message(
                    ErrorKind::Other,
                    format!("unsupported method {other:?}"),
                ));
            }
        };
        let mut builder = self.client.request(method, request.url().as_str());
        for (name, value) in request.headers().iter() {
            builder = builder.header(name.as_str(), value.as_str());
        }
        builder = match request.body() {
            Body::Bytes(bytes) => builder.body(bytes.clone()),
            Body::SeekableStream(_) => {
                return Err(Error::with_message(
                    ErrorKind::Other,
                    "streamed token request bodies are not supported",
                ));
            }
        };
        let response = builder.send().await.map_err(|err| {
            let kind = if err.is_connect() {
                ErrorKind::Connection
            } else {
                ErrorKind::Io
            };
            // Only the kind and host: a reqwest error never carries the request body.
            Error::with_error(kind, err, "token request failed")
        })?;
        let status = response.status().as_u16().into();
        let headers: HashMap<HeaderName, HeaderValue> = response
            .headers()
            .iter()
            .filter_map(|(k, v)| {
                v.to_str().ok().map(|v| {
                    (
                        HeaderName::from(k.as_str().to_owned()),
                        HeaderValue::from(v.to_owned()),
                    )
                })
            })
            .collect();
        let body = Box::pin(response.bytes_stream().map_err(|err| {
            Error::with_error(ErrorKind::Io, err, "reading the token response failed")
        }));
        Ok(AsyncRawResponse::new(status, Headers::from(headers), body))
    }
}
