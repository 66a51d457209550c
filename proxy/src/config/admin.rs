//! The admin UI's settings: where it lives (`server.adminPath`) and its login
//! (`server.adminAuth`). An `AdminPath` exists only once parsed: a plain path of safe segments
//! outside the API's paths, usable as it is in routes and a Caddyfile.

use std::fmt;

use super::issues::Checker;
use super::raw::RawAdminAuth;
use super::secret::Secret;

/// `/` followed by segments of letters, digits, `-`, `_` and `.` (but no `.` or `..` segment),
/// without a trailing `/`, that in any letter case is neither `/v1`, `/v1/...` nor `/healthz`.
/// Caddy's path matcher ignores case and matches cleaned request paths, so `/V1` would take the
/// API's requests and `/a/../b` would match nothing.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AdminPath(String);

impl AdminPath {
    /// `value` as an admin path, or the reason it is not one.
    pub fn parse(value: &str) -> Result<AdminPath, &'static str> {
        let Some(segments) = value.strip_prefix('/').filter(|rest| !rest.is_empty()) else {
            return Err("must start with \"/\" and name a path, such as \"/admin\"");
        };
        if !segments
            .split('/')
            .all(|seg| !seg.is_empty() && seg.bytes().all(is_path_byte))
        {
            return Err(
                "may hold only letters, digits, \"-\", \"_\", \".\" and \"/\" between segments, without a trailing \"/\"",
            );
        }
        if segments.split('/').any(|seg| seg == "." || seg == "..") {
            return Err("must not hold \".\" or \"..\" segments");
        }
        let folded = value.to_ascii_lowercase();
        if folded == "/v1" || folded.starts_with("/v1/") || folded == "/healthz" {
            return Err("must not overlap the API paths (/v1, /healthz) in any letter case");
        }
        Ok(AdminPath(value.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AdminPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// HTTP Basic on the admin UI and its API.
#[derive(Debug, Clone)]
pub struct AdminAuth {
    pub enabled: bool,
    /// Not empty when `enabled`.
    pub username: String,
    /// Not empty when `enabled`.
    pub password: Secret,
}

/// `server.adminPath`; `None` (with the problem recorded) when it is not an admin path.
pub(super) fn parse_path(check: &mut Checker, value: &str) -> Option<AdminPath> {
    AdminPath::parse(value)
        .map_err(|reason| check.fail("server.adminPath", reason))
        .ok()
}

/// `server.adminAuth`.
pub(super) fn parse_auth(check: &mut Checker, raw: &RawAdminAuth) -> AdminAuth {
    if raw.enabled {
        check.non_empty("server.adminAuth.username", &raw.username);
        check.non_empty("server.adminAuth.password", &raw.password);
    }
    AdminAuth {
        enabled: raw.enabled,
        username: raw.username.clone(),
        password: Secret::new(raw.password.clone()),
    }
}

fn is_path_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')
}

#[cfg(test)]
mod tests {
    use super::super::testing::{issue_paths, load_value, sample};
    use super::*;
    use serde_json::json;

    #[test]
    fn admin_path_must_be_a_plain_path() {
        let mut v = sample();
        v["server"]["adminPath"] = json!("admin");
        assert_eq!(issue_paths(v.clone()), vec!["server.adminPath"]);
        v["server"]["adminPath"] = json!("/v1");
        assert_eq!(issue_paths(v.clone()), vec!["server.adminPath"]);
        v["server"]["adminPath"] = json!("/a/../v1");
        assert_eq!(issue_paths(v), vec!["server.adminPath"]);
    }

    #[test]
    fn an_enabled_login_needs_a_user_name_and_a_password() {
        let mut v = sample();
        v["server"]["adminAuth"] = json!({"enabled": true, "username": " ", "password": ""});
        assert_eq!(
            issue_paths(v.clone()),
            vec!["server.adminAuth.username", "server.adminAuth.password"]
        );
        v["server"]["adminAuth"]["enabled"] = json!(false);
        let config = load_value(v).expect("valid");
        assert!(!config.server.admin_auth.enabled);
    }

    #[test]
    fn plain_paths_parse() {
        for path in [
            "/admin",
            "/ops/admin",
            "/a-b_c.d",
            "/v1x",
            "/healthz2",
            "/Admin",
            "/.admin",
            "/a/...",
            "/healthz/admin",
        ] {
            assert_eq!(
                AdminPath::parse(path).map(|p| p.to_string()),
                Ok(path.into())
            );
        }
    }

    #[test]
    fn a_path_must_start_with_a_slash_and_name_something() {
        for path in ["", "/", "admin", " /admin"] {
            assert!(
                AdminPath::parse(path).is_err_and(|e| e.starts_with("must start")),
                "{path:?}"
            );
        }
    }

    #[test]
    fn segments_hold_only_safe_characters() {
        for path in [
            "/admin/",
            "//admin",
            "/a//b",
            "/admin {",
            "/admin\nimport x",
            "/{env.X}",
            "/a b",
            "/admin?x=1",
        ] {
            assert!(
                AdminPath::parse(path).is_err_and(|e| e.starts_with("may hold only")),
                "{path:?}"
            );
        }
    }

    #[test]
    fn the_api_paths_are_refused() {
        for path in [
            "/v1", "/v1/chat", "/healthz", "/V1", "/v1/Chat", "/V1/x", "/Healthz", "/HEALTHZ",
        ] {
            assert_eq!(
                AdminPath::parse(path),
                Err("must not overlap the API paths (/v1, /healthz) in any letter case"),
                "{path:?}"
            );
        }
    }

    #[test]
    fn dot_segments_are_refused() {
        for path in [
            "/a/../v1",
            "/a/..",
            "/..",
            "/.",
            "/admin/.",
            "/./admin",
            "/a/../healthz",
        ] {
            assert_eq!(
                AdminPath::parse(path),
                Err("must not hold \".\" or \"..\" segments"),
                "{path:?}"
            );
        }
    }
}
