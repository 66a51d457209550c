//! Errors the gateway answers itself, in the OpenAI error shape. Grouped by who is at fault:
//! the downstream client (4xx), or the upstream and its credential (5xx).
//! Messages never carry a secret, a token or an upstream URL.

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::http::header::{HeaderName, RETRY_AFTER};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use crate::bookkeeping::stats::ErrorClass;
use crate::config::Metered;
use crate::downstream::limits::RateHeaders;
use crate::translate::TranslateError;

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    // Downstream.
    #[error("missing API key: send it as 'Authorization: Bearer <key>', 'api-key' or 'x-api-key'")]
    MissingClientKey,
    #[error("incorrect API key provided")]
    InvalidClientKey,
    #[error("this API key is disabled")]
    DisabledClientKey,
    #[error("this API key has expired")]
    ExpiredClientKey,
    #[error("this API key may not use the model '{0}'")]
    ModelNotAllowed(String),
    #[error("request body is larger than the limit of {limit} bytes")]
    BodyTooLarge { limit: usize },
    #[error("could not read the request body: {0}")]
    BodyRead(String),
    #[error(
        "the request body arrived too slowly: send it without pauses over {}s and at {min_rate} bytes/s or faster",
        read_timeout.as_secs()
    )]
    BodyTimeout {
        read_timeout: Duration,
        min_rate: u64,
    },
    #[error("request body is not valid JSON: {0}")]
    InvalidJson(String),
    #[error("request body must be a JSON object")]
    BodyNotObject,
    #[error("you must provide a model parameter")]
    MissingModel,
    #[error("model must be a string")]
    ModelNotString,
    #[error("the request body has more than one '{0}' member; send it once")]
    DuplicateParameter(&'static str),
    #[error("the model '{0}' does not exist or you do not have access to it")]
    ModelNotFound(String),

    // The gateway.
    #[error("the gateway is holding too many request bodies right now; retry shortly")]
    ServerBusy,
    #[error(
        "the gateway cannot check this API key's limits right now (its Redis is unreachable); retry shortly"
    )]
    LimitsUnavailable,

    // Upstream.
    #[error(
        "upstream \"{upstream}\" is not configured: set upstreams[{index}].baseUrl to your Azure AI Foundry resource endpoint"
    )]
    UpstreamNotConfigured { upstream: String, index: usize },
    #[error("could not connect to upstream \"{upstream}\": {reason}")]
    UpstreamUnreachable { upstream: String, reason: String },
    #[error("upstream \"{upstream}\" failed: {reason}")]
    UpstreamBroken { upstream: String, reason: String },
    #[error("upstream \"{upstream}\" did not answer within {what}")]
    UpstreamTimeout { upstream: String, what: String },
    #[error(
        "every deployment of the model '{model}' is rate limited; the first is available again in {} ms",
        retry_after.as_millis()
    )]
    RateLimited {
        model: String,
        retry_after: Duration,
    },
    #[error("no deployment of the model '{model}' can take requests right now{}", retry_after.map(|d| format!("; the first is tried again in {} ms", d.as_millis())).unwrap_or_default())]
    NoDeploymentAvailable {
        model: String,
        retry_after: Option<Duration>,
    },
    #[error(
        "this API key's limit of {limit} {} per {} is reached; retry in {} ms",
        metered.as_str(),
        humantime::format_duration(*per),
        retry_after.as_millis()
    )]
    KeyRateLimited {
        metered: Metered,
        limit: u64,
        per: Duration,
        retry_after: Duration,
        headers: RateHeaders,
    },
    #[error(
        "this request is too large for this API key: its prompt is about {estimated} tokens, \
         more than the key's limit of {limit} tokens"
    )]
    KeyRequestTooLarge {
        estimated: u64,
        limit: u64,
        headers: RateHeaders,
    },
    #[error("this API key's token budget is spent; it renews in {} s", retry_after.as_secs())]
    KeyBudgetSpent {
        retry_after: Duration,
        headers: RateHeaders,
    },
    #[error("{}", .0.message())]
    Translation(TranslateError),
    #[error("could not authenticate to upstream \"{upstream}\" with auth.mode {mode}: {cause}")]
    UpstreamAuthFailed {
        upstream: String,
        mode: String,
        cause: String,
    },
}

/// When a client refused with `server_busy` is told to retry: request bodies leave memory as
/// soon as they have gone upstream.
const BUSY_RETRY_AFTER_SECS: u64 = 1;

const RETRY_AFTER_MS: HeaderName = HeaderName::from_static("retry-after-ms");

/// What a client is told when the gateway has no credential for the upstream.
const CREDENTIALS_FAILED: &str = "the gateway could not obtain credentials for the upstream";

impl ProxyError {
    pub fn code(&self) -> &str {
        match self {
            ProxyError::Translation(err) => err.code(),
            ProxyError::MissingClientKey | ProxyError::InvalidClientKey => "invalid_api_key",
            ProxyError::DisabledClientKey => "api_key_disabled",
            ProxyError::ExpiredClientKey => "api_key_expired",
            ProxyError::ModelNotAllowed(_) => "model_not_allowed",
            ProxyError::BodyTooLarge { .. } => "request_too_large",
            ProxyError::BodyRead(_) => "invalid_body",
            ProxyError::BodyTimeout { .. } => "request_timeout",
            ProxyError::ServerBusy => "server_busy",
            ProxyError::LimitsUnavailable => "limits_unavailable",
            ProxyError::InvalidJson(_) | ProxyError::BodyNotObject => "invalid_json",
            ProxyError::MissingModel => "missing_required_parameter",
            ProxyError::ModelNotString => "invalid_type",
            ProxyError::DuplicateParameter(_) => "duplicate_parameter",
            ProxyError::ModelNotFound(_) => "model_not_found",
            ProxyError::UpstreamNotConfigured { .. } => "upstream_not_configured",
            ProxyError::UpstreamUnreachable { .. } => "upstream_unreachable",
            ProxyError::UpstreamBroken { .. } => "upstream_error",
            ProxyError::UpstreamTimeout { .. } => "upstream_timeout",
            ProxyError::UpstreamAuthFailed { .. } => "upstream_auth_failed",
            ProxyError::RateLimited { .. } => "rate_limit_exceeded",
            ProxyError::NoDeploymentAvailable { .. } => "no_deployment_available",
            ProxyError::KeyRateLimited { .. } | ProxyError::KeyRequestTooLarge { .. } => {
                "rate_limit_exceeded"
            }
            ProxyError::KeyBudgetSpent { .. } => "insufficient_quota",
        }
    }

    /// What the client is told: the message, except where it would carry internal detail. The
    /// full message goes to the log line and the recent-requests entry of the request; there the
    /// client's message names `request_id`, for the operator to find it.
    pub fn client_message(&self, request_id: Option<&str>) -> String {
        match (self, request_id) {
            (ProxyError::UpstreamAuthFailed { .. }, Some(id)) => {
                format!("{CREDENTIALS_FAILED} (request id {id})")
            }
            (ProxyError::UpstreamAuthFailed { .. }, None) => CREDENTIALS_FAILED.into(),
            (other, _) => other.to_string(),
        }
    }

    /// The answer to the request `request_id`.
    pub fn response_for(&self, request_id: &str) -> HttpResponse {
        self.response_with(&self.client_message(Some(request_id)))
    }

    fn response_with(&self, message: &str) -> HttpResponse {
        let mut response = OpenAiError::new(message, self.error_type(), self.param(), self.code())
            .response(self.status_code());
        let retry_after = match self {
            ProxyError::ServerBusy | ProxyError::LimitsUnavailable => {
                Some(Duration::from_secs(BUSY_RETRY_AFTER_SECS))
            }
            ProxyError::RateLimited { retry_after, .. } => Some(*retry_after),
            ProxyError::NoDeploymentAvailable { retry_after, .. } => *retry_after,
            ProxyError::KeyRateLimited { retry_after, .. }
            | ProxyError::KeyBudgetSpent { retry_after, .. } => Some(*retry_after),
            _ => None,
        };
        if let ProxyError::KeyRateLimited { headers, .. }
        | ProxyError::KeyRequestTooLarge { headers, .. }
        | ProxyError::KeyBudgetSpent { headers, .. } = self
        {
            headers.write(response.headers_mut());
        }
        if let Some(wait) = retry_after {
            let millis = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX);
            let headers = response.headers_mut();
            headers.insert(RETRY_AFTER, millis.div_ceil(1000).max(1).into());
            headers.insert(RETRY_AFTER_MS, millis.into());
        }
        response
    }

    fn error_type(&self) -> &'static str {
        if let ProxyError::Translation(err) = self {
            err.error_type()
        } else if let ProxyError::KeyRequestTooLarge { .. } = self {
            "tokens"
        } else if let ProxyError::RateLimited { .. } | ProxyError::KeyRateLimited { .. } = self {
            "requests"
        } else if let ProxyError::KeyBudgetSpent { .. } = self {
            "insufficient_quota"
        } else if self.status_code().is_client_error() {
            "invalid_request_error"
        } else {
            "server_error"
        }
    }

    fn param(&self) -> Option<&str> {
        match self {
            ProxyError::Translation(err) => err.param(),
            ProxyError::MissingModel
            | ProxyError::ModelNotString
            | ProxyError::ModelNotFound(_)
            | ProxyError::ModelNotAllowed(_) => Some("model"),
            ProxyError::DuplicateParameter(name) => Some(name),
            _ => None,
        }
    }

    pub fn class(&self) -> ErrorClass {
        match self {
            ProxyError::MissingClientKey
            | ProxyError::InvalidClientKey
            | ProxyError::DisabledClientKey
            | ProxyError::ExpiredClientKey => ErrorClass::Unauthorized,
            ProxyError::ModelNotAllowed(_) => ErrorClass::Forbidden,
            ProxyError::BodyTooLarge { .. }
            | ProxyError::BodyRead(_)
            | ProxyError::BodyTimeout { .. }
            | ProxyError::InvalidJson(_)
            | ProxyError::BodyNotObject
            | ProxyError::MissingModel
            | ProxyError::ModelNotString
            | ProxyError::DuplicateParameter(_)
            | ProxyError::ModelNotFound(_) => ErrorClass::BadRequest,
            ProxyError::ServerBusy => ErrorClass::Busy,
            ProxyError::UpstreamNotConfigured { .. } => ErrorClass::NotConfigured,
            ProxyError::UpstreamUnreachable { .. } | ProxyError::UpstreamBroken { .. } => {
                ErrorClass::Unreachable
            }
            ProxyError::UpstreamTimeout { .. } => ErrorClass::Timeout,
            ProxyError::UpstreamAuthFailed { .. } => ErrorClass::UpstreamAuth,
            ProxyError::RateLimited { .. } => ErrorClass::RateLimited,
            ProxyError::NoDeploymentAvailable { .. } | ProxyError::LimitsUnavailable => {
                ErrorClass::Unavailable
            }
            ProxyError::KeyRateLimited { .. }
            | ProxyError::KeyRequestTooLarge { .. }
            | ProxyError::KeyBudgetSpent { .. } => ErrorClass::KeyLimited,
            ProxyError::Translation(err) if err.status() < 500 => ErrorClass::BadRequest,
            ProxyError::Translation(_) => ErrorClass::Upstream5xx,
        }
    }
}

/// The OpenAI error shape, `{"error": {"message", "type", "param", "code"}}`: the one envelope
/// of every error the gateway makes itself (proxy answers, stream error events, admin API).
/// `Extra` adds the fields of one API beside the four (the admin API's `issues` and `etag`).
#[derive(Debug, Serialize)]
pub struct OpenAiError<'a, Extra = NoExtra> {
    pub error: ErrorBody<'a, Extra>,
}

#[derive(Debug, Serialize)]
pub struct ErrorBody<'a, Extra = NoExtra> {
    pub message: &'a str,
    /// "invalid_request_error" for the client's faults, "server_error" for the rest.
    #[serde(rename = "type")]
    pub kind: &'a str,
    pub param: Option<&'a str>,
    pub code: &'a str,
    #[serde(flatten)]
    pub extra: Extra,
}

/// No fields beyond OpenAI's four.
#[derive(Debug, Default, Serialize)]
pub struct NoExtra {}

impl<'a> OpenAiError<'a> {
    pub fn new(message: &'a str, kind: &'a str, param: Option<&'a str>, code: &'a str) -> Self {
        OpenAiError::with_extra(message, kind, param, code, NoExtra {})
    }
}

impl<'a, Extra: Serialize> OpenAiError<'a, Extra> {
    pub fn with_extra(
        message: &'a str,
        kind: &'a str,
        param: Option<&'a str>,
        code: &'a str,
        extra: Extra,
    ) -> Self {
        OpenAiError {
            error: ErrorBody {
                message,
                kind,
                param,
                code,
                extra,
            },
        }
    }

    /// The error as a JSON response with `status`.
    pub fn response(&self, status: StatusCode) -> HttpResponse {
        HttpResponse::build(status).json(self)
    }
}

impl ResponseError for ProxyError {
    fn status_code(&self) -> StatusCode {
        match self {
            ProxyError::MissingClientKey
            | ProxyError::InvalidClientKey
            | ProxyError::DisabledClientKey
            | ProxyError::ExpiredClientKey => StatusCode::UNAUTHORIZED,
            ProxyError::ModelNotAllowed(_) => StatusCode::FORBIDDEN,
            ProxyError::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ProxyError::BodyRead(_)
            | ProxyError::InvalidJson(_)
            | ProxyError::BodyNotObject
            | ProxyError::MissingModel
            | ProxyError::ModelNotString
            | ProxyError::DuplicateParameter(_) => StatusCode::BAD_REQUEST,
            ProxyError::BodyTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            ProxyError::ModelNotFound(_) => StatusCode::NOT_FOUND,
            ProxyError::ServerBusy | ProxyError::LimitsUnavailable => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ProxyError::UpstreamNotConfigured { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ProxyError::UpstreamUnreachable { .. }
            | ProxyError::UpstreamBroken { .. }
            | ProxyError::UpstreamAuthFailed { .. } => StatusCode::BAD_GATEWAY,
            ProxyError::UpstreamTimeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            ProxyError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ProxyError::NoDeploymentAvailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ProxyError::KeyRateLimited { .. }
            | ProxyError::KeyRequestTooLarge { .. }
            | ProxyError::KeyBudgetSpent { .. } => StatusCode::TOO_MANY_REQUESTS,
            ProxyError::Translation(err) => {
                StatusCode::from_u16(err.status()).unwrap_or(StatusCode::BAD_GATEWAY)
            }
        }
    }

    fn error_response(&self) -> HttpResponse {
        self.response_with(&self.client_message(None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::body::MessageBody;

    fn body_of(err: ProxyError) -> serde_json::Value {
        let bytes = err
            .error_response()
            .into_body()
            .try_into_bytes()
            .expect("bytes");
        serde_json::from_slice(&bytes).expect("json")
    }

    #[test]
    fn unknown_model_is_404_model_not_found_with_param() {
        let err = ProxyError::ModelNotFound("gpt-x".into());
        assert_eq!(err.status_code(), StatusCode::NOT_FOUND);
        let body = body_of(err);
        assert_eq!(body["error"]["code"], "model_not_found");
        assert_eq!(body["error"]["param"], "model");
        assert_eq!(body["error"]["type"], "invalid_request_error");
    }

    #[test]
    fn the_envelope_has_exactly_the_four_openai_fields_in_order() {
        let text =
            serde_json::to_string(&OpenAiError::new("m", "server_error", None, "c")).expect("json");
        assert_eq!(
            text,
            r#"{"error":{"message":"m","type":"server_error","param":null,"code":"c"}}"#
        );
    }

    #[test]
    fn an_upstream_auth_failure_tells_the_client_no_internal_detail() {
        let err = ProxyError::UpstreamAuthFailed {
            upstream: "foundry".into(),
            mode: "servicePrincipal".into(),
            cause: "AADSTS7000215: Invalid client secret provided".into(),
        };
        assert!(err.to_string().contains("AADSTS7000215"), "{err}");
        let bytes = err
            .response_for("req-7")
            .into_body()
            .try_into_bytes()
            .expect("bytes");
        let body: serde_json::Value = serde_json::from_slice(&bytes).expect("json");
        assert_eq!(body["error"]["code"], "upstream_auth_failed");
        assert_eq!(
            body["error"]["message"],
            "the gateway could not obtain credentials for the upstream (request id req-7)"
        );
    }

    #[test]
    fn a_rate_limited_pool_says_when_to_come_back_in_both_headers() {
        let response = ProxyError::RateLimited {
            model: "m".into(),
            retry_after: Duration::from_millis(1200),
        }
        .response_for("req-1");
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers().get("retry-after").expect("header"), "2");
        assert_eq!(
            response.headers().get("retry-after-ms").expect("header"),
            "1200"
        );
        let bytes = response.into_body().try_into_bytes().expect("bytes");
        let body: serde_json::Value = serde_json::from_slice(&bytes).expect("json");
        assert_eq!(body["error"]["code"], "rate_limit_exceeded");
        assert_eq!(body["error"]["type"], "requests");
    }

    #[test]
    fn upstream_errors_are_server_errors_without_param() {
        let body = body_of(ProxyError::UpstreamTimeout {
            upstream: "u".into(),
            what: "5s".into(),
        });
        assert_eq!(body["error"]["type"], "server_error");
        assert!(body["error"]["param"].is_null());
    }
}
