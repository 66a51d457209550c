//! Protection of state-changing admin calls against cross-site requests: a browser resends
//! Basic credentials on its own, so a POST, PUT, PATCH or DELETE must carry
//! `X-Requested-With` (which no cross-site form can send, and which a cross-origin script can
//! send only after a CORS preflight that control never grants), and its `Origin` and
//! `Sec-Fetch-Site`, when present, must say the request comes from the admin UI's own origin.

use actix_web::ResponseError as _;
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{Method, header};
use actix_web::middleware::Next;

use crate::errors::AdminError;

pub const REQUIRED_HEADER: &str = "x-requested-with";

pub async fn refuse_cross_site(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    match check(&req) {
        Ok(()) => Ok(next.call(req).await?.map_into_left_body()),
        Err(err) => {
            tracing::warn!(method = %req.method(), path = %req.path(), reason = %err, "refused a cross-site request");
            Ok(req
                .into_response(err.error_response())
                .map_into_right_body())
        }
    }
}

fn changes_state(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

pub fn check(req: &ServiceRequest) -> Result<(), AdminError> {
    if !changes_state(req.method()) {
        return Ok(());
    }
    let headers = req.headers();
    let marked = headers
        .get(REQUIRED_HEADER)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| !v.trim().is_empty());
    if !marked {
        return Err(AdminError::CrossSite(
            "state-changing calls must send the X-Requested-With header",
        ));
    }
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok())
        && !site.eq_ignore_ascii_case("same-origin")
    {
        return Err(AdminError::CrossSite(
            "the request comes from another site (Sec-Fetch-Site)",
        ));
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let host = headers
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let same = origin
            .to_str()
            .ok()
            .and_then(|o| url::Url::parse(o).ok())
            .and_then(|o| {
                let authority = match o.port() {
                    Some(port) => format!("{}:{port}", o.host_str()?),
                    None => o.host_str()?.to_string(),
                };
                Some(authority.eq_ignore_ascii_case(host) || same_default_port(&o, host))
            })
            .unwrap_or(false);
        if !same {
            return Err(AdminError::CrossSite(
                "the request's Origin is not the admin UI's own",
            ));
        }
    }
    Ok(())
}

/// `https://gw.example.com` matches a Host of `gw.example.com:443` (and http with :80).
fn same_default_port(origin: &url::Url, host: &str) -> bool {
    let Some(origin_host) = origin.host_str() else {
        return false;
    };
    let default = match origin.scheme() {
        "https" => 443,
        "http" => 80,
        _ => return false,
    };
    origin.port().is_none() && host.eq_ignore_ascii_case(&format!("{origin_host}:{default}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn post() -> TestRequest {
        TestRequest::post()
            .uri("/api/config")
            .insert_header((header::HOST, "gw.example.com:3000"))
    }

    #[test]
    fn reads_need_no_marker() {
        let req = TestRequest::get().to_srv_request();
        assert!(check(&req).is_ok());
    }

    #[test]
    fn a_write_without_the_marker_header_is_refused() {
        assert!(check(&post().to_srv_request()).is_err());
    }

    #[test]
    fn a_same_origin_write_passes() {
        let req = post()
            .insert_header((REQUIRED_HEADER, "fetch"))
            .insert_header((header::ORIGIN, "http://gw.example.com:3000"))
            .insert_header(("sec-fetch-site", "same-origin"))
            .to_srv_request();
        assert!(check(&req).is_ok());
    }

    #[test]
    fn a_write_from_another_origin_is_refused() {
        let req = post()
            .insert_header((REQUIRED_HEADER, "fetch"))
            .insert_header((header::ORIGIN, "https://evil.example"))
            .to_srv_request();
        assert!(check(&req).is_err());
    }

    #[test]
    fn a_cross_site_fetch_is_refused_by_its_fetch_metadata() {
        let req = post()
            .insert_header((REQUIRED_HEADER, "fetch"))
            .insert_header(("sec-fetch-site", "cross-site"))
            .to_srv_request();
        assert!(check(&req).is_err());
    }

    #[test]
    fn an_opaque_origin_is_refused() {
        let req = post()
            .insert_header((REQUIRED_HEADER, "fetch"))
            .insert_header((header::ORIGIN, "null"))
            .to_srv_request();
        assert!(check(&req).is_err());
    }

    #[test]
    fn default_ports_match_a_host_without_port() {
        let req = TestRequest::delete()
            .insert_header((header::HOST, "gw.example.com"))
            .insert_header((REQUIRED_HEADER, "fetch"))
            .insert_header((header::ORIGIN, "https://gw.example.com"))
            .to_srv_request();
        assert!(check(&req).is_ok());
    }
}
