//! Why a body could not be translated, in the terms of the OpenAI error shape: the status to
//! answer with, `type`, `code`, `param` (a path into the client's body such as
//! `messages[2].content[0].type`) and a message naming what to change.

use crate::errors::OpenAiError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A parameter (or value) the other API has no equivalent for.
    Unsupported,
    /// A parameter whose value is not of the shape the API defines.
    Invalid,
    /// A required parameter is missing.
    Missing,
    /// The upstream answered in a shape that cannot be translated, or reported a failure in a
    /// successful answer.
    Upstream,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct TranslateError {
    kind: Kind,
    param: Option<String>,
    message: String,
    /// The upstream's own error code, for [`Kind::Upstream`].
    upstream_code: Option<String>,
}

impl TranslateError {
    /// `param` has no equivalent on the API the model speaks.
    pub(crate) fn unsupported(param: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(Kind::Unsupported, Some(param.into()), message.into())
    }

    /// `param` does not have the shape the client's API defines.
    pub(crate) fn invalid(param: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(Kind::Invalid, Some(param.into()), message.into())
    }

    pub(crate) fn missing(param: impl Into<String>) -> Self {
        let param = param.into();
        let message = format!("missing required parameter: '{param}'");
        Self::new(Kind::Missing, Some(param), message)
    }

    /// The upstream's successful answer could not be translated, or reports a failure.
    pub(crate) fn upstream(code: Option<String>, message: impl Into<String>) -> Self {
        let mut error = Self::new(Kind::Upstream, None, message.into());
        error.upstream_code = code;
        error
    }

    fn new(kind: Kind, param: Option<String>, message: String) -> Self {
        Self {
            kind,
            param,
            message,
            upstream_code: None,
        }
    }

    /// 400 for the client's request, 502 for the upstream's answer.
    pub fn status(&self) -> u16 {
        match self.kind {
            Kind::Unsupported | Kind::Invalid | Kind::Missing => 400,
            Kind::Upstream => 502,
        }
    }

    /// The error's `type`: `invalid_request_error` or `server_error`.
    pub fn error_type(&self) -> &'static str {
        match self.kind {
            Kind::Upstream => "server_error",
            _ => "invalid_request_error",
        }
    }

    /// The error's `code`.
    pub fn code(&self) -> &str {
        match self.kind {
            Kind::Unsupported => "unsupported_parameter",
            Kind::Invalid => "invalid_value",
            Kind::Missing => "missing_required_parameter",
            Kind::Upstream => self.upstream_code.as_deref().unwrap_or("upstream_error"),
        }
    }

    /// The path of the offending parameter in the client's body.
    pub fn param(&self) -> Option<&str> {
        self.param.as_deref()
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    /// The error body in the OpenAI shape:
    /// `{"error":{"message":…,"type":…,"param":…,"code":…}}`.
    pub fn to_json(&self) -> Vec<u8> {
        let error = OpenAiError::new(&self.message, self.error_type(), self.param(), self.code());
        serde_json::to_vec(&error).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_errors_are_400_with_the_parameter() {
        let error = TranslateError::unsupported("n", "n > 1 is not supported");
        assert_eq!(error.status(), 400);
        let json: serde_json::Value = serde_json::from_slice(&error.to_json()).expect("json");
        assert_eq!(json["error"]["param"], "n");
        assert_eq!(json["error"]["code"], "unsupported_parameter");
        assert_eq!(json["error"]["type"], "invalid_request_error");
        assert_eq!(json["error"]["message"], "n > 1 is not supported");
    }

    #[test]
    fn upstream_errors_are_502_with_the_upstream_code() {
        let error = TranslateError::upstream(Some("server_error".into()), "failed");
        assert_eq!(error.status(), 502);
        assert_eq!(error.code(), "server_error");
        assert_eq!(error.param(), None);
        assert_eq!(TranslateError::upstream(None, "x").code(), "upstream_error");
    }
}
