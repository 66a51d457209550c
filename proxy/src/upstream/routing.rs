//! Model and deployment → URL: applies per-model route overrides, fills `{deployment}`
//! (URL-encoded) and merges query strings, never forwarding a client's credential parameter. Pure: no I/O, no actix types.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

use crate::config::{Config, Deployment, Model, RouteKey, RouteOverride};
use crate::downstream::bounded::{MAX_ID_CHARS, bounded};
use crate::errors::ProxyError;

/// Characters kept as they are in a path segment (RFC 3986 unreserved).
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub url: String,
    /// The route the upstream path speaks (decides the stream format).
    pub speaks: RouteKey,
}

/// The configured model `model_id` and its index, or `model_not_found`.
pub fn model<'c>(config: &'c Config, model_id: &str) -> Result<(usize, &'c Model), ProxyError> {
    config
        .models
        .iter()
        .enumerate()
        .find(|(_, m)| m.id == model_id)
        .ok_or_else(|| ProxyError::ModelNotFound(bounded(model_id, MAX_ID_CHARS).into_owned()))
}

/// The error for a model none of whose deployments has a configured upstream.
pub fn not_configured(config: &Config, model: &Model) -> ProxyError {
    let index = model.deployments.first().map_or(0, |d| d.upstream);
    ProxyError::UpstreamNotConfigured {
        upstream: config.upstreams[index].name.clone(),
        index,
    }
}

/// The URL of `route` for one deployment of `model`, with the model's route overrides applied.
pub fn resolve(
    config: &Config,
    model: &Model,
    deployment: &Deployment,
    route: RouteKey,
    client_query: &str,
) -> Target {
    let upstream = &config.upstreams[deployment.upstream];
    let (path, speaks) = match model.routes.get(&route).or(model.any_route.as_ref()) {
        None => (upstream.routes[&route].as_str(), route),
        Some(RouteOverride::Route(other)) => (upstream.routes[other].as_str(), *other),
        Some(RouteOverride::Path(path)) => (path.as_str(), RouteKey::guess_from_path(path)),
    };
    let path = path.replace("{deployment}", &path_segment(&deployment.name));
    Target {
        url: format!("{}{}", upstream.base_url, merge_query(&path, client_query)),
        speaks,
    }
}

/// `text` as one URL path segment (also safe in a header value).
pub fn path_segment(text: &str) -> String {
    utf8_percent_encode(text, SEGMENT).to_string()
}

/// Client query parameters that are credentials: never forwarded, the gateway sends its own.
const CLIENT_CREDENTIAL_PARAMS: [&str; 3] = ["api-key", "subscription-key", "code"];

/// Appends the client's query parameters to the route's. Parameter names compare decoded and in
/// any case: the route's own parameters win, the client's credentials are dropped, and
/// `api-version` appears at most once (the route's, else the client's first).
fn merge_query(path: &str, client_query: &str) -> String {
    if client_query.is_empty() {
        return path.to_string();
    }
    let (base, route_query) = path.split_once('?').unwrap_or((path, ""));
    let mut parts: Vec<&str> = route_query.split('&').filter(|p| !p.is_empty()).collect();
    let mut taken: Vec<String> = parts.iter().map(|p| param_name(p)).collect();
    for pair in client_query.split('&').filter(|p| !p.is_empty()) {
        let name = param_name(pair);
        if CLIENT_CREDENTIAL_PARAMS.contains(&name.as_str()) || taken.contains(&name) {
            continue;
        }
        if name == "api-version" {
            taken.push(name);
        }
        parts.push(pair);
    }
    let mut out = String::with_capacity(path.len() + client_query.len() + 1);
    out.push_str(base);
    if !parts.is_empty() {
        out.push('?');
        out.push_str(&parts.join("&"));
    }
    out
}

/// The client's query without its `api-version` (in any spelling): the version an Azure SDK
/// asks for is not the one the upstream route speaks.
pub fn without_api_version(client_query: &str) -> String {
    client_query
        .split('&')
        .filter(|pair| !pair.is_empty() && param_name(pair) != "api-version")
        .collect::<Vec<_>>()
        .join("&")
}

/// A query parameter's name as a server reads it: percent-decoded, lowercase.
fn param_name(pair: &str) -> String {
    let raw = pair.split('=').next().unwrap_or(pair);
    percent_decode_str(raw)
        .decode_utf8_lossy()
        .to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn resolve(c: &Config, id: &str, route: RouteKey, query: &str) -> Result<Target, ProxyError> {
        let (_, m) = model(c, id)?;
        if m.deployments
            .iter()
            .all(|d| c.upstreams[d.upstream].placeholder)
        {
            return Err(not_configured(c, m));
        }
        Ok(super::resolve(c, m, &m.deployments[0], route, query))
    }

    fn config(models: serde_json::Value) -> Config {
        crate::config::load(
            json!({
                "auth": {"mode": "apiKey", "apiKey": "x"},
                "upstreams": [
                    {"name": "a", "baseUrl": "https://a.example.com/",
                     "routes": {"chat/completions": "/openai/deployments/{deployment}/chat/completions?api-version=2024-10-21"}},
                    {"name": "ph", "baseUrl": "https://YOUR-RESOURCE-NAME.openai.azure.com"}
                ],
                "models": models
            })
            .to_string()
            .as_bytes(),
        )
        .expect("config")
    }

    #[test]
    fn model_resolves_to_upstream_route_with_encoded_deployment() {
        let c = config(json!([{"id": "m", "upstream": "a", "targetModel": "my dep/1"}]));
        let t = resolve(&c, "m", RouteKey::ChatCompletions, "").expect("target");
        assert_eq!(
            t.url,
            "https://a.example.com/openai/deployments/my%20dep%2F1/chat/completions?api-version=2024-10-21"
        );
    }

    #[test]
    fn default_routes_are_foundry_v1() {
        let c = config(json!([{"id": "m", "upstream": "a"}]));
        let t = resolve(&c, "m", RouteKey::Responses, "").expect("target");
        assert_eq!(t.url, "https://a.example.com/openai/v1/responses");
        assert_eq!(t.speaks, RouteKey::Responses);
    }

    #[test]
    fn override_by_route_key_changes_url_and_format() {
        let c = config(
            json!([{"id": "m", "upstream": "a", "routes": {"chat/completions": "responses"}}]),
        );
        let t = resolve(&c, "m", RouteKey::ChatCompletions, "").expect("target");
        assert_eq!(t.url, "https://a.example.com/openai/v1/responses");
        assert_eq!(t.speaks, RouteKey::Responses);
    }

    #[test]
    fn star_override_applies_to_every_route() {
        let c = config(
            json!([{"id": "m", "upstream": "a", "routes": {"*": "/x/{deployment}/responses"}}]),
        );
        let t = resolve(&c, "m", RouteKey::ImagesGenerations, "").expect("target");
        assert_eq!(t.url, "https://a.example.com/x/m/responses");
        assert_eq!(t.speaks, RouteKey::Responses);
    }

    #[test]
    fn client_query_is_kept_and_route_query_wins() {
        let c = config(json!([{"id": "m", "upstream": "a"}]));
        let t =
            resolve(&c, "m", RouteKey::ChatCompletions, "api-version=1&foo=bar").expect("target");
        assert!(
            t.url.ends_with("?api-version=2024-10-21&foo=bar"),
            "{}",
            t.url
        );
        let t = resolve(&c, "m", RouteKey::Responses, "foo=bar").expect("target");
        assert!(t.url.ends_with("/openai/v1/responses?foo=bar"), "{}", t.url);
    }

    #[test]
    fn client_credentials_never_go_upstream_and_api_version_is_set_once() {
        let c = config(json!([{"id": "m", "upstream": "a"}]));
        let query = "api-key=sk&API-VERSION=evil&Api%2DVersion=evil&Subscription-Key=s&CODE=c&api%2Dkey=k&trace=1";
        let t = resolve(&c, "m", RouteKey::ChatCompletions, query).expect("target");
        assert!(
            t.url
                .ends_with("/chat/completions?api-version=2024-10-21&trace=1"),
            "{}",
            t.url
        );
        let t = resolve(
            &c,
            "m",
            RouteKey::Responses,
            "api-version=preview&Api-Version=evil&api-key=sk",
        )
        .expect("target");
        assert!(
            t.url.ends_with("/openai/v1/responses?api-version=preview"),
            "{}",
            t.url
        );
    }

    #[test]
    fn an_azure_sdks_api_version_is_left_out() {
        assert_eq!(
            without_api_version("api-version=2024-10-21&trace=1&Api%2DVersion=x"),
            "trace=1"
        );
        assert_eq!(without_api_version("api-version=2024-10-21"), "");
    }

    #[test]
    fn unknown_model_is_model_not_found() {
        let c = config(json!([]));
        assert!(matches!(
            resolve(&c, "nope", RouteKey::ChatCompletions, ""),
            Err(ProxyError::ModelNotFound(m)) if m == "nope"
        ));
    }

    #[test]
    fn placeholder_upstream_names_the_field_to_fix() {
        let c = config(json!([{"id": "m", "upstream": "ph"}]));
        let err = resolve(&c, "m", RouteKey::ChatCompletions, "").expect_err("placeholder");
        assert!(err.to_string().contains("upstreams[1].baseUrl"), "{err}");
    }
}
