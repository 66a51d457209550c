//! Client of Caddy's admin API: load a Caddyfile (`POST /load`, `text/caddyfile`), check that
//! the API answers, and read the reverse proxy's upstream health. Keeps Caddy's own error
//! message when it refuses a config.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;
use url::Url;

use crate::cause::Cause;

const LOAD_TIMEOUT: Duration = Duration::from_secs(60);
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Debug, Clone, thiserror::Error)]
pub enum AdminApiError {
    /// Nothing answered (Caddy not started yet, or down).
    #[error(
        "Caddy's admin API at {url} is not reachable: {cause}. Is Caddy running with the same CADDY_ADMIN as control? (CADDY_ADMIN=off when no Caddy runs)"
    )]
    Unreachable { url: String, cause: Cause },
    /// Caddy answered and refused; `message` is Caddy's own.
    #[error("Caddy refused the config ({status}): {message}")]
    Refused { status: u16, message: String },
}

impl AdminApiError {
    /// Every [`AdminApiError::code`].
    pub const CODES: [&'static str; 2] = ["caddy_unreachable", "caddy_refused"];

    /// A stable code for the failure, for a client that words it in its own language.
    pub fn code(&self) -> &'static str {
        match self {
            AdminApiError::Unreachable { .. } => "caddy_unreachable",
            AdminApiError::Refused { .. } => "caddy_refused",
        }
    }

    /// The values in the message, by name; Caddy's own `message` is kept as it came.
    pub fn params(&self) -> BTreeMap<&'static str, String> {
        let mut params = BTreeMap::new();
        match self {
            AdminApiError::Unreachable { url, cause } => {
                params.insert("url", url.clone());
                params.insert("cause", cause.to_string());
                params.extend(cause.params());
            }
            AdminApiError::Refused { status, message } => {
                params.insert("status", status.to_string());
                params.insert("message", message.clone());
            }
        }
        params
    }
}

#[derive(Clone)]
pub struct CaddyAdmin {
    base: Url,
    http: reqwest::Client,
}

impl CaddyAdmin {
    pub fn new(base: Url, http: reqwest::Client) -> CaddyAdmin {
        CaddyAdmin { base, http }
    }

    pub fn url(&self) -> &Url {
        &self.base
    }

    fn endpoint(&self, path: &str) -> String {
        format!("{}{path}", self.base.as_str().trim_end_matches('/'))
    }

    fn unreachable(&self, err: &reqwest::Error) -> AdminApiError {
        AdminApiError::Unreachable {
            url: self.base.to_string(),
            cause: Cause::of(err),
        }
    }

    /// Replaces Caddy's running config with `caddyfile`.
    pub async fn load(&self, caddyfile: &str) -> Result<(), AdminApiError> {
        let response = self
            .http
            .post(self.endpoint("/load"))
            .header(reqwest::header::CONTENT_TYPE, "text/caddyfile")
            .timeout(LOAD_TIMEOUT)
            .body(caddyfile.to_string())
            .send()
            .await
            .map_err(|e| self.unreachable(&e))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let body = response.text().await.unwrap_or_default();
        Err(AdminApiError::Refused {
            status: status.as_u16(),
            message: caddy_message(&body),
        })
    }

    /// Whether the admin API answers.
    pub async fn probe(&self) -> Result<(), AdminApiError> {
        let response = self
            .http
            .get(self.endpoint("/config/"))
            .timeout(PROBE_TIMEOUT)
            .send()
            .await
            .map_err(|e| self.unreachable(&e))?;
        if response.status().is_success() {
            Ok(())
        } else {
            let status = response.status().as_u16();
            let body = response.text().await.unwrap_or_default();
            Err(AdminApiError::Refused {
                status,
                message: caddy_message(&body),
            })
        }
    }

    /// The reverse proxy's upstreams with their request and failure counts.
    pub async fn upstreams(&self) -> Result<Value, AdminApiError> {
        let response = self
            .http
            .get(self.endpoint("/reverse_proxy/upstreams"))
            .timeout(PROBE_TIMEOUT)
            .send()
            .await
            .map_err(|e| self.unreachable(&e))?;
        let status = response.status().as_u16();
        let body = response.text().await.map_err(|e| self.unreachable(&e))?;
        if !(200..300).contains(&status) {
            return Err(AdminApiError::Refused {
                status,
                message: caddy_message(&body),
            });
        }
        Ok(serde_json::from_str(&body).unwrap_or(Value::Null))
    }
}

/// Caddy answers errors as `{"error": "..."}`; anything else is kept as text, shortened.
fn caddy_message(body: &str) -> String {
    let message = serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_string))
        .unwrap_or_else(|| body.trim().to_string());
    if message.chars().count() > 2000 {
        let short: String = message.chars().take(2000).collect();
        format!("{short}…")
    } else {
        message
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caddys_json_error_is_extracted() {
        assert_eq!(
            caddy_message(r#"{"error":"loading config: adapting: bad"}"#),
            "loading config: adapting: bad"
        );
        assert_eq!(caddy_message(" plain text \n"), "plain text");
    }
}
