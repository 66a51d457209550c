//! Protection against DNS rebinding: a page of another site whose name is made to resolve to
//! this machine reaches control with that site's name as `Host`. A browser always sends the name
//! it resolved, and a page cannot change it, so control answers only requests whose `Host` is
//! an IP address, `localhost`, the configured `server.caddy.domain`, or a name listed in
//! `CONTROL_ALLOWED_HOSTS` (`*` turns the check off).

use std::net::IpAddr;

use actix_web::ResponseError as _;
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::web;

use proxy::downstream::bounded::{MAX_ID_CHARS, bounded};

use crate::api::AppState;
use crate::errors::AdminError;

pub async fn refuse_unknown_host(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let verdict = match req.app_data::<web::Data<AppState>>() {
        Some(state) => {
            let config = state.store.last_good();
            let domain = config.server.caddy.domain.as_ref().map(ToString::to_string);
            let host = req
                .headers()
                .get(header::HOST)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            check(host, domain.as_deref(), &state.settings.allowed_hosts)
        }
        None => Ok(()),
    };
    match verdict {
        Ok(()) => Ok(next.call(req).await?.map_into_left_body()),
        Err(err) => {
            tracing::warn!(path = %req.path(), reason = %err, "refused a request for another host name");
            Ok(req
                .into_response(err.error_response())
                .map_into_right_body())
        }
    }
}

/// Whether `host` (a `Host` header, with or without a port) names this gateway.
pub fn check(host: &str, domain: Option<&str>, allowed: &[String]) -> Result<(), AdminError> {
    if allowed.iter().any(|a| a == "*") {
        return Ok(());
    }
    let name = host_name(host);
    let known = name.parse::<IpAddr>().is_ok()
        || name == "localhost"
        || name.ends_with(".localhost")
        || domain.is_some_and(|d| d.eq_ignore_ascii_case(&name))
        || allowed.iter().any(|a| a.eq_ignore_ascii_case(&name));
    if known {
        Ok(())
    } else {
        Err(AdminError::UnknownHost(
            bounded(&name, MAX_ID_CHARS).into_owned(),
        ))
    }
}

/// The name of a `Host` header: without its port and brackets, lowercase, no trailing dot.
fn host_name(host: &str) -> String {
    let host = host.trim();
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or_default()
    } else if host.matches(':').count() == 1 {
        host.split(':').next().unwrap_or_default()
    } else {
        host
    };
    name.trim_end_matches('.').to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_localhost_and_the_configured_names_pass() {
        let allowed = vec!["gw.internal.example".to_string()];
        for host in [
            "127.0.0.1:3001",
            "[::1]:3000",
            "20.50.1.2",
            "localhost:3000",
            "app.localhost",
            "GW.example.com",
            "gw.example.com.:443",
            "gw.internal.example:3000",
        ] {
            assert!(
                check(host, Some("gw.example.com"), &allowed).is_ok(),
                "{host}"
            );
        }
    }

    #[test]
    fn another_name_is_refused_unless_every_name_is_allowed() {
        for host in ["attacker.example:3001", "", "127.0.0.1.attacker.example"] {
            let err = check(host, Some("gw.example.com"), &[]).expect_err(host);
            assert!(matches!(err, AdminError::UnknownHost(_)));
        }
        assert!(check("attacker.example", None, &["*".to_string()]).is_ok());
    }
}
