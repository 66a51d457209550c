//! The admin UI: plain HTML, CSS and JavaScript built into the binary (no front-end build
//! step), served under the admin path, with the vendored chart library (`ui/vendor/`). Never
//! inlines scripts, so the CSP can forbid them; serves only the files listed here.

use actix_web::http::header;
use actix_web::{HttpResponse, web};

use crate::errors::AdminError;

const INDEX_HTML: &str = include_str!("../ui/index.html");

/// `(name, content type, content)` of every asset.
const ASSETS: [(&str, &str, &str); 7] = [
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("../ui/app.js"),
    ),
    (
        "i18n.js",
        "text/javascript; charset=utf-8",
        include_str!("../ui/i18n.js"),
    ),
    (
        "charts.js",
        "text/javascript; charset=utf-8",
        include_str!("../ui/charts.js"),
    ),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_str!("../ui/style.css"),
    ),
    (
        "vendor/uPlot.iife.min.js",
        "text/javascript; charset=utf-8",
        include_str!("../ui/vendor/uPlot.iife.min.js"),
    ),
    (
        "vendor/uPlot.min.css",
        "text/css; charset=utf-8",
        include_str!("../ui/vendor/uPlot.min.css"),
    ),
    (
        "vendor/uPlot.LICENSE",
        "text/plain; charset=utf-8",
        include_str!("../ui/vendor/uPlot.LICENSE"),
    ),
];

/// Content-Security-Policy of every admin response: only the UI's own files and API.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(index))
        .route("/assets/{name:.+}", web::get().to(asset));
}

async fn index() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(INDEX_HTML)
}

async fn asset(name: web::Path<String>) -> Result<HttpResponse, AdminError> {
    let (_, content_type, body) = ASSETS
        .iter()
        .find(|(n, _, _)| *n == name.as_str())
        .ok_or_else(|| AdminError::NotFound("no such asset".into()))?;
    Ok(HttpResponse::Ok()
        .content_type(*content_type)
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(*body))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::time::Duration;

    use proxy::errors::ProxyError;

    use crate::caddy::admin::AdminApiError;
    use crate::cause::CauseCode;

    /// The keys of one language's texts in i18n.js (`"key": "text",` lines of its block).
    fn keys(lang: &str) -> BTreeSet<String> {
        let i18n = include_str!("../ui/i18n.js");
        let start = i18n
            .find(&format!("\n  {lang}: {{\n"))
            .unwrap_or_else(|| panic!("no {lang} block"));
        let block = &i18n[start..];
        let end = block.find("\n  },").unwrap_or(block.len());
        block[..end]
            .lines()
            .filter_map(|line| line.trim().strip_prefix('"'))
            .filter_map(|line| line.split_once("\": ").map(|(key, _)| key.to_string()))
            .collect()
    }

    /// Every code of the proxy's own errors, the ones the endpoint tester shows. The match
    /// stops compiling when the proxy gains a variant, as a reminder to word its code.
    fn proxy_codes() -> Vec<String> {
        let headers = proxy::downstream::limits::RateHeaders::default;
        let examples = [
            ProxyError::MissingClientKey,
            ProxyError::InvalidClientKey,
            ProxyError::DisabledClientKey,
            ProxyError::ExpiredClientKey,
            ProxyError::ModelNotAllowed("m".into()),
            ProxyError::BodyTooLarge { limit: 1 },
            ProxyError::BodyRead("reset".into()),
            ProxyError::BodyTimeout {
                read_timeout: Duration::from_secs(1),
                min_rate: 1,
            },
            ProxyError::InvalidJson("eof".into()),
            ProxyError::BodyNotObject,
            ProxyError::MissingModel,
            ProxyError::ModelNotString,
            ProxyError::DuplicateParameter("model"),
            ProxyError::ModelNotFound("m".into()),
            ProxyError::ServerBusy,
            ProxyError::LimitsUnavailable,
            ProxyError::UpstreamNotConfigured {
                upstream: "u".into(),
                index: 0,
            },
            ProxyError::UpstreamUnreachable {
                upstream: "u".into(),
                reason: "refused".into(),
            },
            ProxyError::UpstreamBroken {
                upstream: "u".into(),
                reason: "reset".into(),
            },
            ProxyError::UpstreamTimeout {
                upstream: "u".into(),
                what: "1 s".into(),
            },
            ProxyError::RateLimited {
                model: "m".into(),
                retry_after: Duration::from_secs(1),
            },
            ProxyError::NoDeploymentAvailable {
                model: "m".into(),
                retry_after: None,
            },
            ProxyError::KeyRateLimited {
                metered: proxy::config::Metered::Requests,
                limit: 1,
                per: Duration::from_secs(60),
                retry_after: Duration::from_secs(1),
                headers: headers(),
            },
            ProxyError::KeyRequestTooLarge {
                estimated: 2,
                limit: 1,
                headers: headers(),
            },
            ProxyError::KeyBudgetSpent {
                retry_after: Duration::from_secs(1),
                headers: headers(),
            },
            ProxyError::UpstreamAuthFailed {
                upstream: "u".into(),
                mode: "apiKey".into(),
                cause: "refused".into(),
            },
        ];
        let mut codes: Vec<String> = examples.iter().map(|e| e.code().to_string()).collect();
        for example in &examples {
            match example {
                ProxyError::MissingClientKey
                | ProxyError::InvalidClientKey
                | ProxyError::DisabledClientKey
                | ProxyError::ExpiredClientKey
                | ProxyError::ModelNotAllowed(_)
                | ProxyError::BodyTooLarge { .. }
                | ProxyError::BodyRead(_)
                | ProxyError::BodyTimeout { .. }
                | ProxyError::InvalidJson(_)
                | ProxyError::BodyNotObject
                | ProxyError::MissingModel
                | ProxyError::ModelNotString
                | ProxyError::DuplicateParameter(_)
                | ProxyError::ModelNotFound(_)
                | ProxyError::ServerBusy
                | ProxyError::LimitsUnavailable
                | ProxyError::UpstreamNotConfigured { .. }
                | ProxyError::UpstreamUnreachable { .. }
                | ProxyError::UpstreamBroken { .. }
                | ProxyError::UpstreamTimeout { .. }
                | ProxyError::RateLimited { .. }
                | ProxyError::NoDeploymentAvailable { .. }
                | ProxyError::KeyRateLimited { .. }
                | ProxyError::KeyRequestTooLarge { .. }
                | ProxyError::KeyBudgetSpent { .. }
                | ProxyError::UpstreamAuthFailed { .. }
                // Built inside the proxy only; its codes are those of `TranslateError::code`.
                | ProxyError::Translation(_) => {}
            }
        }
        codes.extend(
            [
                "unsupported_parameter",
                "invalid_value",
                "missing_required_parameter",
                "upstream_error",
            ]
            .map(String::from),
        );
        codes
    }

    #[test]
    fn every_code_the_server_sends_has_a_text_in_both_languages() {
        let mut wanted: Vec<String> = Vec::new();
        wanted.extend(crate::errors::CODES.iter().map(|c| format!("error.{c}")));
        wanted.extend(
            crate::api::USAGE_REFUSAL_CODES
                .iter()
                .map(|c| format!("error.{c}")),
        );
        wanted.extend(crate::warnings::CODES.iter().map(|c| format!("warn.{c}")));
        wanted.extend(
            AdminApiError::CODES
                .iter()
                .map(|c| format!("caddyError.{c}")),
        );
        wanted.extend(CauseCode::ALL.map(|c| format!("cause.{}", c.as_str())));
        wanted.extend(proxy_codes().iter().map(|c| format!("proxyError.{c}")));
        // What came of each attempt at a deployment (Recent requests, the pool's failures).
        wanted.extend(
            proxy::upstream::pool::health::FailureClass::ALL
                .map(|c| format!("outcome.{}", c.as_str())),
        );
        wanted.extend(["outcome.answered", "outcome.throttled"].map(String::from));
        wanted.extend(
            crate::caddy::loader::LoadRecord::REASONS
                .iter()
                .map(|r| format!("reason.{r}")),
        );
        for lang in ["en", "zh"] {
            let known = keys(lang);
            assert!(known.len() > 100, "{lang}: {} keys read", known.len());
            let missing: Vec<_> = wanted.iter().filter(|k| !known.contains(*k)).collect();
            assert!(missing.is_empty(), "{lang} has no text for {missing:?}");
        }
    }

    #[test]
    fn both_languages_have_the_same_texts() {
        let (en, zh) = (keys("en"), keys("zh"));
        let only_en: Vec<_> = en.difference(&zh).collect();
        let only_zh: Vec<_> = zh.difference(&en).collect();
        assert!(
            only_en.is_empty() && only_zh.is_empty(),
            "only in en: {only_en:?}; only in zh: {only_zh:?}"
        );
    }
}
