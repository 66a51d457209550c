//! `models`: the ids clients send, each mapped to a pool of deployments (one, or several with
//! priorities and weights) and optional route overrides.

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value};

use super::issues::Checker;
use super::raw::{RawDeployment, RawModel};
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
    /// The pool serving the model: one entry for `upstream` + `targetModel`, never empty.
    pub deployments: Vec<Deployment>,
    pub routes: HashMap<RouteKey, RouteOverride>,
    pub any_route: Option<RouteOverride>,
}

/// One deployment of a model's pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deployment {
    /// Index into `Config::upstreams`.
    pub upstream: usize,
    /// The deployment name sent as `model` and put in the path.
    pub name: String,
    /// Lower is tried first; higher groups take traffic only while every lower one is out.
    pub priority: u32,
    /// Share of traffic within its priority group; 0 takes none (kept in the config, drained).
    pub weight: u32,
}

const MAX_PRIORITY: u64 = 1000;
const MAX_WEIGHT: u64 = 1_000_000;

/// `models`: unique ids, each served by one deployment (`upstream` + `targetModel`) or a pool
/// of them (`deployments`), with valid route overrides.
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
        let deployments = match &m.deployments {
            None => vec![Deployment {
                upstream: upstream_index(
                    check,
                    &format!("{path}.upstream"),
                    &m.upstream,
                    upstreams,
                ),
                name: deployment_name(&m.target_model, &m.id),
                priority: 0,
                weight: 1,
            }],
            Some(pool) => {
                for (field, set) in [
                    ("upstream", !m.upstream.trim().is_empty()),
                    ("targetModel", !m.target_model.trim().is_empty()),
                ] {
                    if set {
                        check.fail(
                            format!("{path}.{field}"),
                            "a model with deployments names its upstream and targetModel in each deployment; remove this field",
                        );
                    }
                }
                parse_pool(check, &path, pool, &m.id, upstreams)
            }
        };
        let (routes, any_route) = parse_routes(check, &path, &m.routes);
        models.push(Model {
            id: m.id.clone(),
            deployments,
            routes,
            any_route,
        });
    }
    models
}

fn parse_pool(
    check: &mut Checker,
    path: &str,
    raw: &[RawDeployment],
    model_id: &str,
    upstreams: &[Upstream],
) -> Vec<Deployment> {
    if raw.is_empty() {
        check.fail(
            format!("{path}.deployments"),
            "must list at least one deployment",
        );
        return Vec::new();
    }
    let mut pool: Vec<Deployment> = Vec::with_capacity(raw.len());
    for (j, d) in raw.iter().enumerate() {
        let dpath = format!("{path}.deployments[{j}]");
        let deployment = Deployment {
            upstream: upstream_index(check, &format!("{dpath}.upstream"), &d.upstream, upstreams),
            name: deployment_name(&d.target_model, model_id),
            priority: check.range(&format!("{dpath}.priority"), d.priority, 0, MAX_PRIORITY) as u32,
            weight: check.range(&format!("{dpath}.weight"), d.weight, 0, MAX_WEIGHT) as u32,
        };
        if let Some(k) = raw[..j].iter().position(|e| {
            e.upstream == d.upstream
                && deployment_name(&e.target_model, model_id) == deployment.name
        }) {
            check.fail(
                dpath,
                format!("the same upstream and targetModel as {path}.deployments[{k}]"),
            );
        }
        pool.push(deployment);
    }
    if raw.iter().all(|d| d.weight == 0) {
        check.fail(
            format!("{path}.deployments"),
            "every weight is 0: at least one deployment must take traffic",
        );
    }
    pool
}

fn upstream_index(check: &mut Checker, path: &str, name: &str, upstreams: &[Upstream]) -> usize {
    upstreams
        .iter()
        .position(|u| u.name == name)
        .unwrap_or_else(|| {
            check.fail(path, format!("no upstream named \"{name}\""));
            0
        })
}

/// The deployment name: `targetModel`, or else the model id.
fn deployment_name(target_model: &str, model_id: &str) -> String {
    match target_model.trim() {
        "" => model_id.to_string(),
        name => name.to_string(),
    }
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
        assert_eq!(config.models[0].deployments[0].name, "a-dep");
        assert_eq!(config.models[1].deployments[0].name, "b");
        assert_eq!(config.models[1].deployments[0].upstream, 0);
    }

    fn with_upstreams(models: serde_json::Value) -> serde_json::Value {
        let mut v = sample();
        v["upstreams"] = json!([
            {"name": "east", "baseUrl": "https://east.openai.azure.com"},
            {"name": "west", "baseUrl": "https://west.openai.azure.com"}
        ]);
        v["models"] = models;
        v
    }

    #[test]
    fn a_pool_lists_deployments_with_priority_and_weight() {
        let config = load_value(with_upstreams(json!([{"id": "m", "deployments": [
            {"upstream": "east", "targetModel": "m-ptu"},
            {"upstream": "west", "targetModel": "m-paygo", "priority": 1, "weight": 3},
            {"upstream": "east"}
        ]}])))
        .expect("valid");
        assert_eq!(
            config.models[0].deployments,
            vec![
                Deployment {
                    upstream: 0,
                    name: "m-ptu".into(),
                    priority: 0,
                    weight: 1
                },
                Deployment {
                    upstream: 1,
                    name: "m-paygo".into(),
                    priority: 1,
                    weight: 3
                },
                Deployment {
                    upstream: 0,
                    name: "m".into(),
                    priority: 0,
                    weight: 1
                },
            ]
        );
    }

    #[test]
    fn pool_problems_name_their_field_path() {
        let cases = [
            (
                json!([{"id": "m", "deployments": []}]),
                vec!["models[0].deployments"],
            ),
            (
                json!([{"id": "m", "deployments": [{"upstream": "north"}]}]),
                vec!["models[0].deployments[0].upstream"],
            ),
            (
                json!([{"id": "m", "deployments": [
                    {"upstream": "east", "weight": 0}, {"upstream": "west", "weight": 0}]}]),
                vec!["models[0].deployments"],
            ),
            (
                json!([{"id": "m", "deployments": [
                    {"upstream": "east", "targetModel": "d"}, {"upstream": "west"},
                    {"upstream": "east", "targetModel": " d "}]}]),
                vec!["models[0].deployments[2]"],
            ),
            (
                json!([{"id": "m", "deployments": [{"upstream": "east", "priority": 1001, "weight": 2000000}]}]),
                vec![
                    "models[0].deployments[0].priority",
                    "models[0].deployments[0].weight",
                ],
            ),
            (
                json!([{"id": "m", "upstream": "east", "targetModel": "x",
                        "deployments": [{"upstream": "east"}]}]),
                vec!["models[0].upstream", "models[0].targetModel"],
            ),
        ];
        for (models, paths) in cases {
            assert_eq!(
                issue_paths(with_upstreams(models.clone())),
                paths,
                "{models}"
            );
        }
    }

    #[test]
    fn a_pool_is_written_back_without_empty_model_fields() {
        let config = load_value(with_upstreams(
            json!([{"id": "m", "deployments": [{"upstream": "east"}]}]),
        ))
        .expect("valid");
        let written = serde_json::to_value(&config.raw.models[0]).expect("json");
        assert_eq!(
            written,
            json!({"id": "m", "deployments": [{"upstream": "east", "priority": 0, "weight": 1}], "routes": {}})
        );
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
        v["models"][0]["routes"] = json!({"audio/speech": "responses"});
        assert_eq!(issue_paths(v), vec!["models[0].routes[\"audio/speech\"]"]);
    }
}
