//! `models`: the ids clients send, each mapped to an upstream, a deployment and optional
//! route overrides.

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value};

use super::issues::Checker;
use super::raw::RawModel;
use super::routes::{RouteKey, route_names};
use super::upstreams::Upstream;

/// Where a model sends a route instead of the upstream's own path for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteOverride {
    Route(RouteKey),
    Path(String),
}

#[derive(Debug, Clone)]
pub struct Model {
    pub id: String,
    /// Index into `Config::upstreams`.
    pub upstream: usize,
    pub deployment: String,
    pub routes: HashMap<RouteKey, RouteOverride>,
    pub any_route: Option<RouteOverride>,
}

/// `models`: unique ids, each naming one of `upstreams`, with valid route overrides.
pub(super) fn parse(check: &mut Checker, raw: &[RawModel], upstreams: &[Upstream]) -> Vec<Model> {
    let mut ids = HashSet::new();
    let mut models = Vec::with_capacity(raw.len());
    for (i, m) in raw.iter().enumerate() {
        let path = format!("models[{i}]");
        if m.id.trim().is_empty() {
            check.fail(format!("{path}.id"), "must not be empty");
        } else if !ids.insert(m.id.as_str()) {
            check.fail(format!("{path}.id"), format!("duplicate id \"{}\"", m.id));
        }
        let upstream = match upstreams.iter().position(|u| u.name == m.upstream) {
            Some(index) => index,
            None => {
                check.fail(
                    format!("{path}.upstream"),
                    format!("no upstream named \"{}\"", m.upstream),
                );
                0
            }
        };
        let deployment = if m.target_model.trim().is_empty() {
            m.id.clone()
        } else {
            m.target_model.trim().to_string()
        };
        let (routes, any_route) = parse_routes(check, &path, &m.routes);
        models.push(Model {
            id: m.id.clone(),
            upstream,
            deployment,
            routes,
            any_route,
        });
    }
    models
}

fn parse_routes(
    check: &mut Checker,
    path: &str,
    raw: &Map<String, Value>,
) -> (HashMap<RouteKey, RouteOverride>, Option<RouteOverride>) {
    let mut routes = HashMap::new();
    let mut any = None;
    for (key, value) in raw {
        let rpath = format!("{path}.routes[\"{key}\"]");
        let target = match value.as_str() {
            Some(p) if p.starts_with('/') && !p.contains(char::is_whitespace) => {
                Some(RouteOverride::Path(p.to_string()))
            }
            Some(name) => RouteKey::parse(name).map(RouteOverride::Route),
            None => None,
        };
        let Some(target) = target else {
            check.fail(
                &rpath,
                format!(
                    "must be a route key ({}) or a path starting with \"/\"",
                    route_names()
                ),
            );
            continue;
        };
        if key == "*" {
            any = Some(target);
        } else if let Some(route) = RouteKey::parse(key) {
            routes.insert(route, target);
        } else {
            check.fail(
                &rpath,
                format!("unknown route; expected \"*\" or one of {}", route_names()),
            );
        }
    }
    (routes, any)
}

#[cfg(test)]
mod tests {
    use super::super::testing::{issue_paths, load_value, sample};
    use super::*;
    use serde_json::json;

    #[test]
    fn the_deployment_is_the_target_model_or_else_the_id() {
        let mut v = sample();
        v["models"] = json!([
            {"id": "a", "upstream": "foundry", "targetModel": " a-dep "},
            {"id": "b", "upstream": "foundry"}
        ]);
        let config = load_value(v).expect("valid");
        assert_eq!(config.models[0].deployment, "a-dep");
        assert_eq!(config.models[1].deployment, "b");
        assert_eq!(config.models[1].upstream, 0);
    }

    #[test]
    fn unknown_upstream_reference_names_the_model_path() {
        let mut v = sample();
        v["models"][0]["upstream"] = json!("x");
        let err = load_value(v).expect_err("invalid");
        assert_eq!(
            err.to_string(),
            "models[0].upstream: no upstream named \"x\""
        );
    }

    #[test]
    fn duplicate_model_ids_are_refused() {
        let mut v = sample();
        v["models"] = json!([
            {"id": "m", "upstream": "foundry"},
            {"id": "m", "upstream": "foundry"}
        ]);
        assert_eq!(issue_paths(v), vec!["models[1].id"]);
    }

    #[test]
    fn model_route_overrides_accept_keys_paths_and_star() {
        let mut v = sample();
        v["models"][0]["routes"] =
            json!({"chat/completions": "responses", "*": "/custom/{deployment}"});
        let config = load_value(v).expect("valid");
        let model = &config.models[0];
        assert_eq!(
            model.routes[&RouteKey::ChatCompletions],
            RouteOverride::Route(RouteKey::Responses)
        );
        assert_eq!(
            model.any_route,
            Some(RouteOverride::Path("/custom/{deployment}".into()))
        );
    }

    #[test]
    fn model_route_override_must_name_route_or_path() {
        let mut v = sample();
        v["models"][0]["routes"] = json!({"responses": "nowhere"});
        assert_eq!(issue_paths(v), vec!["models[0].routes[\"responses\"]"]);
    }

    #[test]
    fn model_route_keys_must_be_known() {
        let mut v = sample();
        v["models"][0]["routes"] = json!({"embeddings": "responses"});
        assert_eq!(issue_paths(v), vec!["models[0].routes[\"embeddings\"]"]);
    }
}
