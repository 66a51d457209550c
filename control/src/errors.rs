//! The admin API's one error type: every failure a handler can return, grouped by who is at
//! fault, and the one place that turns it into a response. Never puts a secret in a message.

use std::collections::BTreeMap;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpResponse, ResponseError};
use proxy::config::ConfigIssue;
use proxy::errors::OpenAiError;
use serde::Serialize;
use serde_json::Value;

use crate::cause::Cause;

pub const REALM: &str = "gateway admin";

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    // Downstream: the operator's request is refused (4xx).
    #[error("authentication required")]
    Unauthorized,
    #[error("too many failed logins from this address; try again in {} s", .0.as_secs().max(1))]
    Throttled(Duration),
    #[error("{0}")]
    CrossSite(&'static str),
    #[error(
        "the admin password is still the default \"admin\", which is accepted only from this machine or a private network: set server.adminAuth.password in config.json first"
    )]
    DefaultPasswordRemote,
    #[error(
        "the admin password is still the default \"admin\": change it first (Server & admin login, or server.adminAuth.password in config.json); nothing else can be changed until then"
    )]
    PasswordChangeRequired,
    #[error(
        "the admin UI does not answer to the host name \"{0}\": reach it by IP address or localhost, or add the name to CONTROL_ALLOWED_HOSTS (or set it as server.caddy.domain)"
    )]
    UnknownHost(String),
    #[error("send If-Match with the ETag of the config you edited (or \"*\" to overwrite)")]
    PreconditionRequired,
    #[error("config.json changed since it was read; reload it and apply your changes again")]
    Conflict { current_etag: String },
    #[error("the config is invalid")]
    InvalidConfig(Vec<ConfigIssue>),
    #[error("{0}")]
    BadRequest(String),
    #[error("the request body is larger than the limit of {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("{0}")]
    NotFound(String),
    /// `id` is bounded by whoever builds the error: it may come from the request.
    #[error("no client key with id \"{id}\"")]
    KeyNotFound { id: String },
    #[error("a client key with id \"{id}\" exists")]
    KeyExists { id: String },
    #[error("a key id must be 1 to 128 printable characters")]
    InvalidKeyId,
    #[error("status must be \"active\" or \"disabled\", got \"{got}\"")]
    InvalidKeyStatus { got: String },

    // Control cannot serve (503).
    #[error(
        "config.json does not exist, so the admin login is closed (no default password is accepted): create the file by hand, then log in with its server.adminAuth"
    )]
    NoConfig,

    // Upstream: a process control depends on failed (502/504).
    /// `from` names where the address came from: a variable, or the config's keys.
    #[error(
        "the proxy's ops listener at {url} (from {from}) is not reachable: {cause}. Is the proxy running? If its ops listener is elsewhere, give control the same PROXY_OPS_LISTEN as the proxy"
    )]
    ProxyOpsUnreachable {
        url: String,
        from: &'static str,
        cause: Cause,
    },
    #[error(
        "the proxy at {url} (from {from}) is not reachable: {cause}. Is the proxy running? If it listens elsewhere, give control the same PROXY_LISTEN as the proxy"
    )]
    ProxyUnreachable {
        url: String,
        from: &'static str,
        cause: Cause,
    },
    #[error("Caddy's admin API is not configured (CADDY_ADMIN=off)")]
    CaddyDisabled,

    // Internal (500).
    #[error("internal error while {0}")]
    Internal(&'static str, #[source] anyhow::Error),
}

/// Every `code` an [`AdminError`] answers with, so that a client that words messages in
/// another language (the admin UI) can be checked to know them all.
pub const CODES: &[&str] = &[
    "unauthorized",
    "too_many_attempts",
    "cross_site_request",
    "default_password_remote",
    "password_change_required",
    "unknown_host",
    "precondition_required",
    "config_changed",
    "invalid_config",
    "bad_request",
    "payload_too_large",
    "not_found",
    "key_not_found",
    "already_exists",
    "invalid_key_id",
    "invalid_key_status",
    "proxy_ops_unreachable",
    "proxy_unreachable",
    "caddy_disabled",
    "config_missing",
    "internal_error",
];

impl AdminError {
    pub fn code(&self) -> &'static str {
        match self {
            AdminError::Unauthorized => "unauthorized",
            AdminError::Throttled(_) => "too_many_attempts",
            AdminError::CrossSite(_) => "cross_site_request",
            AdminError::DefaultPasswordRemote => "default_password_remote",
            AdminError::PasswordChangeRequired => "password_change_required",
            AdminError::UnknownHost(_) => "unknown_host",
            AdminError::PreconditionRequired => "precondition_required",
            AdminError::Conflict { .. } => "config_changed",
            AdminError::InvalidConfig(_) => "invalid_config",
            AdminError::BadRequest(_) => "bad_request",
            AdminError::PayloadTooLarge { .. } => "payload_too_large",
            AdminError::NotFound(_) => "not_found",
            AdminError::KeyNotFound { .. } => "key_not_found",
            AdminError::KeyExists { .. } => "already_exists",
            AdminError::InvalidKeyId => "invalid_key_id",
            AdminError::InvalidKeyStatus { .. } => "invalid_key_status",
            AdminError::ProxyOpsUnreachable { .. } => "proxy_ops_unreachable",
            AdminError::ProxyUnreachable { .. } => "proxy_unreachable",
            AdminError::CaddyDisabled => "caddy_disabled",
            AdminError::NoConfig => "config_missing",
            AdminError::Internal(..) => "internal_error",
        }
    }

    fn kind(&self) -> &'static str {
        if self.status_code().is_server_error() {
            "server_error"
        } else {
            "invalid_request_error"
        }
    }

    /// The values in the message, by name, for a client that words the message itself (the
    /// admin UI in another language) from `code`. Empty when the message holds none.
    pub fn params(&self) -> BTreeMap<&'static str, Value> {
        let mut params = BTreeMap::new();
        match self {
            AdminError::Throttled(wait) => {
                params.insert("seconds", Value::from(wait.as_secs().max(1)));
            }
            AdminError::UnknownHost(host) => {
                params.insert("host", Value::from(host.as_str()));
            }
            AdminError::PayloadTooLarge { limit } => {
                params.insert("limit", Value::from(*limit));
            }
            AdminError::KeyNotFound { id } | AdminError::KeyExists { id } => {
                params.insert("id", Value::from(id.as_str()));
            }
            AdminError::InvalidKeyStatus { got } => {
                params.insert("got", Value::from(got.as_str()));
            }
            AdminError::ProxyOpsUnreachable { url, cause, from }
            | AdminError::ProxyUnreachable { url, cause, from } => {
                params.insert("url", Value::from(url.as_str()));
                params.insert("from", Value::from(*from));
                params.insert("cause", Value::from(cause.to_string()));
                for (name, value) in cause.params() {
                    params.insert(name, Value::from(value));
                }
            }
            AdminError::Internal(what, _) => {
                params.insert("what", Value::from(*what));
            }
            _ => {}
        }
        params
    }

    fn issues(&self) -> Option<&[ConfigIssue]> {
        match self {
            AdminError::InvalidConfig(issues) => Some(issues),
            _ => None,
        }
    }

    pub fn internal(what: &'static str) -> impl FnOnce(anyhow::Error) -> AdminError {
        move |err| AdminError::Internal(what, err)
    }
}

/// The admin API's fields beside OpenAI's four.
#[derive(Serialize)]
struct AdminFields<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    issues: Option<&'a [ConfigIssue]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    etag: Option<&'a str>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    params: BTreeMap<&'static str, Value>,
}

impl ResponseError for AdminError {
    fn status_code(&self) -> StatusCode {
        match self {
            AdminError::Unauthorized => StatusCode::UNAUTHORIZED,
            AdminError::Throttled(_) => StatusCode::TOO_MANY_REQUESTS,
            AdminError::CrossSite(_)
            | AdminError::DefaultPasswordRemote
            | AdminError::PasswordChangeRequired => StatusCode::FORBIDDEN,
            AdminError::UnknownHost(_) => StatusCode::MISDIRECTED_REQUEST,
            AdminError::PreconditionRequired => StatusCode::PRECONDITION_REQUIRED,
            AdminError::Conflict { .. } | AdminError::KeyExists { .. } => StatusCode::CONFLICT,
            AdminError::InvalidConfig(_) => StatusCode::UNPROCESSABLE_ENTITY,
            AdminError::BadRequest(_)
            | AdminError::InvalidKeyId
            | AdminError::InvalidKeyStatus { .. } => StatusCode::BAD_REQUEST,
            AdminError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            AdminError::NotFound(_) | AdminError::KeyNotFound { .. } => StatusCode::NOT_FOUND,
            AdminError::ProxyOpsUnreachable { .. }
            | AdminError::ProxyUnreachable { .. }
            | AdminError::CaddyDisabled => StatusCode::BAD_GATEWAY,
            AdminError::NoConfig => StatusCode::SERVICE_UNAVAILABLE,
            AdminError::Internal(..) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let AdminError::Internal(what, cause) = self {
            tracing::error!(error = %format!("{cause:#}"), what, "admin request failed");
        }
        let etag = match self {
            AdminError::Conflict { current_etag } => Some(current_etag.as_str()),
            _ => None,
        };
        let message = self.to_string();
        let body = OpenAiError::with_extra(
            &message,
            self.kind(),
            None,
            self.code(),
            AdminFields {
                issues: self.issues(),
                etag,
                params: self.params(),
            },
        );
        let mut response = HttpResponse::build(self.status_code());
        response.insert_header((header::CACHE_CONTROL, "no-store"));
        match self {
            AdminError::Unauthorized => {
                response.insert_header((
                    header::WWW_AUTHENTICATE,
                    format!("Basic realm=\"{REALM}\", charset=\"UTF-8\""),
                ));
            }
            AdminError::Throttled(wait) => {
                response.insert_header((header::RETRY_AFTER, wait.as_secs().max(1).to_string()));
            }
            _ => {}
        }
        response.json(&body)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::cause::CauseCode;
    use actix_web::body::to_bytes;

    async fn body_of(err: AdminError) -> (StatusCode, serde_json::Value, HttpResponse) {
        let response = err.error_response();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = to_bytes(response.into_body()).await.unwrap_or_default();
        let mut rebuilt = HttpResponse::build(status);
        for (name, value) in &headers {
            rebuilt.insert_header((name.clone(), value.clone()));
        }
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or_default(),
            rebuilt.finish(),
        )
    }

    /// Every variant once. `variant_is_listed` stops compiling when a variant is added, as a
    /// reminder to add it here too.
    pub(crate) fn one_of_each() -> Vec<AdminError> {
        vec![
            AdminError::Unauthorized,
            AdminError::Throttled(Duration::from_secs(3)),
            AdminError::CrossSite("the request's Origin is not the admin UI's own"),
            AdminError::DefaultPasswordRemote,
            AdminError::PasswordChangeRequired,
            AdminError::UnknownHost("example.org".into()),
            AdminError::PreconditionRequired,
            AdminError::Conflict {
                current_etag: "\"e\"".into(),
            },
            AdminError::InvalidConfig(Vec::new()),
            AdminError::BadRequest("invalid filter".into()),
            AdminError::PayloadTooLarge { limit: 1024 },
            AdminError::NotFound("no such admin API endpoint".into()),
            AdminError::KeyNotFound { id: "team".into() },
            AdminError::KeyExists { id: "team".into() },
            AdminError::InvalidKeyId,
            AdminError::InvalidKeyStatus {
                got: "paused".into(),
            },
            AdminError::NoConfig,
            AdminError::ProxyOpsUnreachable {
                url: "http://127.0.0.1:9".into(),
                from: "PROXY_OPS_LISTEN",
                cause: Cause::new(CauseCode::Unreachable, "tcp connect error"),
            },
            AdminError::ProxyUnreachable {
                url: "http://127.0.0.1:9".into(),
                from: "PROXY_LISTEN",
                cause: Cause::new(CauseCode::Answered, "500 Internal Server Error"),
            },
            AdminError::CaddyDisabled,
            AdminError::Internal("writing config.json", anyhow::anyhow!("disk full")),
        ]
    }

    fn variant_is_listed(err: &AdminError) {
        match err {
            AdminError::Unauthorized
            | AdminError::Throttled(_)
            | AdminError::CrossSite(_)
            | AdminError::DefaultPasswordRemote
            | AdminError::PasswordChangeRequired
            | AdminError::UnknownHost(_)
            | AdminError::PreconditionRequired
            | AdminError::Conflict { .. }
            | AdminError::InvalidConfig(_)
            | AdminError::BadRequest(_)
            | AdminError::PayloadTooLarge { .. }
            | AdminError::NotFound(_)
            | AdminError::KeyNotFound { .. }
            | AdminError::KeyExists { .. }
            | AdminError::InvalidKeyId
            | AdminError::InvalidKeyStatus { .. }
            | AdminError::NoConfig
            | AdminError::ProxyOpsUnreachable { .. }
            | AdminError::ProxyUnreachable { .. }
            | AdminError::CaddyDisabled
            | AdminError::Internal(..) => {}
        }
    }

    #[test]
    fn codes_lists_the_code_of_every_variant_once() {
        let examples = one_of_each();
        examples.iter().for_each(variant_is_listed);
        let mut answered: Vec<_> = examples.iter().map(AdminError::code).collect();
        answered.sort_unstable();
        answered.dedup();
        assert_eq!(
            answered.len(),
            examples.len(),
            "a code is shared: {answered:?}"
        );
        let mut listed = CODES.to_vec();
        listed.sort_unstable();
        assert_eq!(answered, listed);
    }

    #[actix_web::test]
    async fn the_values_of_a_message_come_by_name_beside_it() {
        let (_, body, _) = body_of(AdminError::Throttled(Duration::from_secs(7))).await;
        assert_eq!(body["error"]["params"]["seconds"], 7);
        let (status, body, _) = body_of(AdminError::KeyExists { id: "team".into() }).await;
        assert_eq!(status, 409);
        assert_eq!(body["error"]["code"], "already_exists");
        assert_eq!(body["error"]["params"]["id"], "team");
        assert_eq!(
            body["error"]["message"],
            "a client key with id \"team\" exists"
        );
        let unreachable = AdminError::ProxyOpsUnreachable {
            url: "http://127.0.0.1:9".into(),
            from: "PROXY_OPS_LISTEN",
            cause: Cause::new(CauseCode::Unreachable, "tcp connect error"),
        };
        let (_, body, _) = body_of(unreachable).await;
        let params = &body["error"]["params"];
        assert_eq!(params["url"], "http://127.0.0.1:9");
        assert_eq!(params["from"], "PROXY_OPS_LISTEN");
        assert_eq!(
            params["cause"],
            "connection refused or unreachable: tcp connect error"
        );
        assert_eq!(params["cause_code"], "unreachable");
        assert_eq!(params["cause_detail"], "tcp connect error");
        let (_, body, _) = body_of(AdminError::PasswordChangeRequired).await;
        assert!(body["error"].get("params").is_none(), "{body}");
    }

    #[actix_web::test]
    async fn unauthorized_asks_for_basic_credentials() {
        let (status, body, response) = body_of(AdminError::Unauthorized).await;
        assert_eq!(status, 401);
        assert_eq!(body["error"]["code"], "unauthorized");
        let challenge = response.headers().get(header::WWW_AUTHENTICATE);
        assert!(challenge.is_some_and(|v| v.to_str().unwrap_or("").starts_with("Basic ")));
    }

    #[actix_web::test]
    async fn invalid_config_lists_every_issue_with_its_path() {
        let issues = vec![ConfigIssue {
            path: "models[0].upstream".into(),
            message: "no upstream named \"x\"".into(),
        }];
        let (status, body, _) = body_of(AdminError::InvalidConfig(issues)).await;
        assert_eq!(status, 422);
        assert_eq!(body["error"]["issues"][0]["path"], "models[0].upstream");
        assert_eq!(body["error"]["type"], "invalid_request_error");
    }

    #[actix_web::test]
    async fn throttled_says_when_to_retry() {
        let (status, _, response) = body_of(AdminError::Throttled(Duration::from_secs(4))).await;
        assert_eq!(status, 429);
        assert_eq!(
            response
                .headers()
                .get(header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok()),
            Some("4")
        );
    }

    #[actix_web::test]
    async fn internal_errors_do_not_reveal_their_cause() {
        let err = AdminError::Internal("writing config.json", anyhow::anyhow!("/secret/path"));
        let (status, body, _) = body_of(err).await;
        assert_eq!(status, 500);
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(!message.contains("/secret/path"), "{message}");
    }
}
