//! `upstreams`: the Azure endpoints, their paths per route and their own `auth`, if any.

use std::collections::{HashMap, HashSet};

use super::auth::{self, AuthConfig};
use super::issues::Checker;
use super::raw::RawUpstream;
use super::routes::{RouteKey, route_names};

/// Markers of the sample config's `YOUR-RESOURCE-NAME`, compared lowercase.
const PLACEHOLDER_MARKERS: [&str; 2] = ["your-resource-name", "your_resource_name"];

#[derive(Debug, Clone)]
pub struct Upstream {
    pub name: String,
    /// Scheme, host and optional path prefix, without a trailing slash.
    pub base_url: String,
    /// Paths per route (may hold `{deployment}` and a query string); every route is present.
    pub routes: HashMap<RouteKey, String>,
    /// The sample's `YOUR-RESOURCE-NAME` is still in `baseUrl`.
    pub placeholder: bool,
    /// Overrides the global `auth` for this upstream.
    pub auth: Option<AuthConfig>,
}

/// `upstreams`: unique names, http(s) base URLs, known route keys with absolute paths.
pub(super) fn parse(check: &mut Checker, raw: &[RawUpstream]) -> Vec<Upstream> {
    let mut names = HashSet::new();
    let mut upstreams = Vec::with_capacity(raw.len());
    for (i, u) in raw.iter().enumerate() {
        let path = format!("upstreams[{i}]");
        if u.name.trim().is_empty() {
            check.fail(format!("{path}.name"), "must not be empty");
        } else if !names.insert(u.name.as_str()) {
            check.fail(
                format!("{path}.name"),
                format!("duplicate name \"{}\"", u.name),
            );
        }
        let base_url = u.base_url.trim().trim_end_matches('/').to_string();
        match url::Url::parse(&base_url) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {
                if url.query().is_some() || url.fragment().is_some() {
                    check.fail(
                        format!("{path}.baseUrl"),
                        "must not have a query or fragment; put query strings in routes",
                    );
                }
                if !url.username().is_empty() || url.password().is_some() {
                    check.fail(format!("{path}.baseUrl"), "must not carry credentials");
                }
            }
            _ => check.fail(
                format!("{path}.baseUrl"),
                "must be an absolute http(s) URL such as https://my-resource.openai.azure.com",
            ),
        }
        let lower = base_url.to_ascii_lowercase();
        let placeholder = PLACEHOLDER_MARKERS.iter().any(|m| lower.contains(m));

        let mut routes = HashMap::new();
        for (key, value) in &u.routes {
            let rpath = format!("{path}.routes[\"{key}\"]");
            let Some(route) = RouteKey::parse(key) else {
                check.fail(
                    &rpath,
                    format!("unknown route; expected one of {}", route_names()),
                );
                continue;
            };
            match value.as_str() {
                Some(p) if p.starts_with('/') && !p.contains(char::is_whitespace) => {
                    routes.insert(route, p.to_string());
                }
                _ => check.fail(
                    &rpath,
                    "must be a path starting with \"/\", such as \"/openai/v1/responses\"",
                ),
            }
        }
        for key in RouteKey::ALL {
            routes.entry(key).or_insert_with(|| key.default_path());
        }
        let auth = u
            .auth
            .as_ref()
            .map(|a| auth::parse(check, &format!("{path}.auth"), a));
        upstreams.push(Upstream {
            name: u.name.clone(),
            base_url,
            routes,
            placeholder,
            auth,
        });
    }
    upstreams
}

#[cfg(test)]
mod tests {
    use super::super::testing::{issue_paths, load_value, sample};
    use super::*;
    use serde_json::json;

    #[test]
    fn base_url_loses_its_trailing_slash_and_routes_default_to_foundry_v1() {
        let config = load_value(sample()).expect("valid");
        let upstream = &config.upstreams[0];
        assert_eq!(upstream.base_url, "https://res.openai.azure.com");
        assert_eq!(
            upstream.routes[&RouteKey::Responses],
            "/openai/v1/responses"
        );
        assert!(upstream.auth.is_none());
        assert!(!upstream.placeholder);
    }

    #[test]
    fn duplicate_upstream_names_are_refused() {
        let mut v = sample();
        v["upstreams"] = json!([
            {"name": "foundry", "baseUrl": "https://a.example.com"},
            {"name": "foundry", "baseUrl": "https://b.example.com"}
        ]);
        assert_eq!(issue_paths(v), vec!["upstreams[1].name"]);
    }

    #[test]
    fn base_url_must_be_http_url() {
        let mut v = sample();
        v["upstreams"][0]["baseUrl"] = json!("ftp://res");
        assert_eq!(issue_paths(v), vec!["upstreams[0].baseUrl"]);
    }

    #[test]
    fn base_url_must_not_carry_a_query_or_credentials() {
        let mut v = sample();
        v["upstreams"][0]["baseUrl"] = json!("https://user:pw@res.example.com?x=1");
        assert_eq!(
            issue_paths(v),
            vec!["upstreams[0].baseUrl", "upstreams[0].baseUrl"]
        );
    }

    #[test]
    fn placeholder_upstream_loads_and_is_marked() {
        let mut v = sample();
        v["upstreams"][0]["baseUrl"] = json!("https://YOUR-RESOURCE-NAME.openai.azure.com");
        let config = load_value(v).expect("valid");
        assert!(config.upstreams[0].placeholder);
    }

    #[test]
    fn upstream_route_keys_and_paths_are_checked() {
        let mut v = sample();
        v["upstreams"][0]["routes"] =
            json!({"audio/speech": "/x", "responses": "openai/v1/responses"});
        assert_eq!(
            issue_paths(v),
            vec![
                "upstreams[0].routes[\"audio/speech\"]",
                "upstreams[0].routes[\"responses\"]"
            ]
        );
    }
}
