//! The admin login: HTTP Basic against `server.adminAuth` of the current config, compared in
//! constant time (fixed-length digests, no early exit on length or content), with failed
//! attempts throttled per client address. Guards every path under the admin path, with one
//! exception: while there is no config.json, nobody can log in, and the UI's own files (which
//! hold no secret) are served without a login so that the page can say how to create the file.
//!
//! The shipped password `admin` is accepted only from loopback and private networks, so that a
//! gateway started with the example config on a public address cannot be taken over; and while
//! it is in place, the API refuses every change but a save of the config (which `store` accepts
//! only with another password): the first thing an operator does is change it.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::{HttpMessage as _, ResponseError as _, web};
use base64::Engine as _;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq as _;

use crate::api::AppState;
use crate::errors::AdminError;
use crate::store::AdminCredentials;

/// The user a request was authenticated as (`None` when the login is disabled).
#[derive(Debug, Clone)]
pub struct AdminUser(pub Option<String>);

pub async fn require_login(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        let err = AdminError::Internal("authenticating", anyhow::anyhow!("no app state"));
        return Ok(req
            .into_response(err.error_response())
            .map_into_right_body());
    };
    match check(&state, &req)
        .and_then(|user| refuse_changes_before_a_new_password(&state, &req, user))
    {
        Ok(user) => {
            req.extensions_mut().insert(AdminUser(user));
            Ok(next.call(req).await?.map_into_left_body())
        }
        Err(err) => Ok(req
            .into_response(err.error_response())
            .map_into_right_body()),
    }
}

fn check(state: &AppState, req: &ServiceRequest) -> Result<Option<String>, AdminError> {
    let credentials = state.store.credentials();
    let (username, password) = match &*credentials {
        AdminCredentials::Open => return Ok(None),
        AdminCredentials::Locked => return Err(AdminError::Unauthorized),
        AdminCredentials::NoConfig if is_ui_file(req) => return Ok(None),
        AdminCredentials::NoConfig => return Err(AdminError::NoConfig),
        AdminCredentials::Basic { username, password } => (username, password),
    };
    let ip = client_ip(req);
    let now = Instant::now();
    if let Some(wait) = state.throttle.locked(ip, now) {
        return Err(AdminError::Throttled(wait));
    }
    // A request without credentials (a browser's first try) is not a failed attempt.
    let Some((user, pass)) = basic_credentials(req) else {
        return Err(AdminError::Unauthorized);
    };
    if credentials_match(&user, &pass, username, password) {
        state.throttle.succeeded(ip);
        if credentials.is_default_password() && !on_private_network(ip) {
            // The page and its assets hold no secret: served, they say in the operator's
            // language why the API refuses.
            if is_ui_file(req) {
                return Ok(None);
            }
            tracing::warn!(client = %ip, "admin login with the default password refused from a public address");
            return Err(AdminError::DefaultPasswordRemote);
        }
        Ok(Some(user))
    } else {
        tracing::warn!(client = %ip, "failed admin login");
        match state.throttle.failed(ip, now) {
            Some(lockout) => Err(AdminError::Throttled(lockout)),
            None => Err(AdminError::Unauthorized),
        }
    }
}

/// While the password is the default, only reads and the config save that changes it (and
/// its validation) get through.
fn refuse_changes_before_a_new_password(
    state: &AppState,
    req: &ServiceRequest,
    user: Option<String>,
) -> Result<Option<String>, AdminError> {
    use actix_web::http::Method;
    if !state.store.credentials().is_default_password() {
        return Ok(user);
    }
    let method = req.method();
    let allowed = method == Method::GET
        || method == Method::HEAD
        || (method == Method::PUT && req.path() == "/api/config")
        || (method == Method::POST && req.path() == "/api/config/validate");
    if allowed {
        Ok(user)
    } else {
        Err(AdminError::PasswordChangeRequired)
    }
}

/// Loopback, private (RFC 1918, IPv6 unique local) and link-local addresses: the machine
/// itself, a container host, a LAN or a VNet.
pub fn on_private_network(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback() || v4.is_private() || v4.is_link_local(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => on_private_network(IpAddr::V4(v4)),
            None => {
                let first = v6.segments()[0];
                v6.is_loopback() || (first & 0xfe00) == 0xfc00 || (first & 0xffc0) == 0xfe80
            }
        },
    }
}

/// A GET of the UI's page or one of its assets (paths under the admin path, as mounted).
fn is_ui_file(req: &ServiceRequest) -> bool {
    req.method() == actix_web::http::Method::GET
        && (req.path() == "/" || req.path().starts_with("/assets/"))
}

/// Both fields compared through SHA-256 digests, so neither length nor content ends the
/// comparison early, and both are always compared.
pub fn credentials_match(user: &str, pass: &str, username: &str, password: &str) -> bool {
    let user_ok = Sha256::digest(user.as_bytes()).ct_eq(&Sha256::digest(username.as_bytes()));
    let pass_ok = Sha256::digest(pass.as_bytes()).ct_eq(&Sha256::digest(password.as_bytes()));
    bool::from(user_ok & pass_ok)
}

fn basic_credentials(req: &ServiceRequest) -> Option<(String, String)> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, pass) = text.split_once(':')?;
    Some((user.to_string(), pass.to_string()))
}

/// The client's address. Behind Caddy (a loopback peer) it is the last `X-Forwarded-For`
/// entry, which Caddy sets from the connection it accepted; otherwise the peer itself.
pub fn client_ip(req: &ServiceRequest) -> IpAddr {
    let peer = req
        .peer_addr()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |a| a.ip());
    if !peer.is_loopback() {
        return peer;
    }
    req.headers()
        .get_all("x-forwarded-for")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|entry| entry.trim().parse::<IpAddr>().ok())
        .last()
        .unwrap_or(peer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    #[test]
    fn only_the_exact_pair_matches() {
        assert!(credentials_match("admin", "s3cret", "admin", "s3cret"));
        assert!(!credentials_match("admin", "s3cret!", "admin", "s3cret"));
        assert!(!credentials_match("admin", "", "admin", "s3cret"));
        assert!(!credentials_match("root", "s3cret", "admin", "s3cret"));
    }

    #[test]
    fn basic_header_is_decoded_with_colons_in_the_password() {
        let encoded = base64::engine::general_purpose::STANDARD.encode("admin:pa:ss");
        let req = TestRequest::default()
            .insert_header((header::AUTHORIZATION, format!("Basic {encoded}")))
            .to_srv_request();
        assert_eq!(
            basic_credentials(&req),
            Some(("admin".into(), "pa:ss".into()))
        );
    }

    #[test]
    fn private_networks_are_told_from_public_addresses() {
        for local in [
            "127.0.0.1",
            "10.1.2.3",
            "172.17.0.1",
            "192.168.1.20",
            "169.254.1.1",
            "::1",
            "fd00::5",
            "fe80::1",
            "::ffff:10.0.0.1",
        ] {
            assert!(on_private_network(local.parse().expect("ip")), "{local}");
        }
        for public in [
            "203.0.113.9",
            "8.8.8.8",
            "172.32.0.1",
            "2001:db8::1",
            "::ffff:1.1.1.1",
        ] {
            assert!(!on_private_network(public.parse().expect("ip")), "{public}");
        }
    }

    #[test]
    fn forwarded_for_counts_only_behind_a_loopback_peer() {
        let behind_caddy = TestRequest::default()
            .peer_addr("127.0.0.1:5000".parse().expect("addr"))
            .insert_header(("x-forwarded-for", "198.51.100.7, 203.0.113.9"))
            .to_srv_request();
        assert_eq!(client_ip(&behind_caddy).to_string(), "203.0.113.9");
        let direct = TestRequest::default()
            .peer_addr("192.0.2.1:5000".parse().expect("addr"))
            .insert_header(("x-forwarded-for", "203.0.113.9"))
            .to_srv_request();
        assert_eq!(client_ip(&direct).to_string(), "192.0.2.1");
    }
}
