//! The admin UI's place (`server.adminPath`). An `AdminPath` exists only once parsed: a plain
//! path of safe segments outside the API's paths, usable as it is in routes and a Caddyfile.

use std::fmt;

/// `/` followed by segments of letters, digits, `-`, `_` and `.`, without a trailing `/`, and
/// neither `/v1`, `/v1/...` nor `/healthz`.
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
        if value == "/v1" || value.starts_with("/v1/") || value == "/healthz" {
            return Err("must not overlap the API paths (/v1, /healthz)");
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

fn is_path_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_paths_parse() {
        for path in ["/admin", "/ops/admin", "/a-b_c.d", "/v1x", "/healthz2"] {
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
        for path in ["/v1", "/v1/chat", "/healthz"] {
            assert_eq!(
                AdminPath::parse(path),
                Err("must not overlap the API paths (/v1, /healthz)"),
                "{path:?}"
            );
        }
    }
}
