//! Deployment pools: the deployments serving each model, their shared health and the choice of
//! the next one to try. A deployment is one upstream's deployment name; its health is shared by
//! every model listing it and survives a reload that keeps it (same upstream name, endpoint and
//! deployment name).

pub mod health;
pub mod select;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use crate::config::{Config, Deployment};
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::gauge::ConstGauge;

use crate::ops::contract::{DeploymentState, DeploymentStats};
use crate::ops::metrics;
use health::{Availability, DeploymentHealth};
use select::Selector;

/// Identifies a deployment across reloads.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct DeploymentKey {
    upstream: String,
    base_url: String,
    deployment: String,
}

/// The pool of one model, built with the snapshot it belongs to.
#[derive(Debug)]
pub struct ModelPool {
    pub deployments: Vec<Deployment>,
    /// Same order as `deployments`.
    health: Vec<Arc<DeploymentHealth>>,
    /// Deployments whose upstream still has the placeholder endpoint never take traffic.
    placeholder: Vec<bool>,
    selector: Selector,
}

/// What the pool offers for the next attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pick {
    /// Index into `deployments`, claimed for an attempt.
    Deployment(usize),
    /// No deployment outside `tried` can take a request now.
    None,
}

impl ModelPool {
    /// The next deployment to try, not one of `tried`, claimed (see `DeploymentHealth::begin`).
    pub fn pick(&self, tried: &[bool], now: Instant) -> Pick {
        let mut refused = vec![false; self.deployments.len()];
        loop {
            let candidate = |i: usize| {
                !tried[i]
                    && !refused[i]
                    && !self.placeholder[i]
                    && self.health[i].availability(now) == Availability::Available
            };
            let Some(i) = self.selector.pick(&self.deployments, candidate) else {
                return Pick::None;
            };
            if self.health[i].begin(now) {
                return Pick::Deployment(i);
            }
            // Another request took its trial meanwhile.
            refused[i] = true;
        }
    }

    pub fn health(&self, index: usize) -> &DeploymentHealth {
        &self.health[index]
    }

    /// Whether every deployment that could take traffic is cooling after a 429, and the
    /// earliest time one comes back.
    pub fn all_cooling(&self, now: Instant) -> Option<Instant> {
        let mut earliest: Option<Instant> = None;
        for i in self.serving() {
            let standing = self.health[i].standing(now);
            match (standing.state, standing.until) {
                (DeploymentState::Cooling, Some(until)) => {
                    earliest = Some(earliest.map_or(until, |e| e.min(until)));
                }
                _ => return None,
            }
        }
        earliest
    }

    /// The earliest time a deployment that is out now comes back, if any is out for a known time.
    pub fn next_return(&self, now: Instant) -> Option<Instant> {
        self.serving()
            .filter_map(|i| match self.health[i].availability(now) {
                Availability::OutUntil(until) => Some(until),
                _ => None,
            })
            .min()
    }

    /// Whether a deployment that takes traffic is available now.
    pub fn any_available(&self, now: Instant) -> bool {
        self.serving()
            .any(|i| self.health[i].availability(now) == Availability::Available)
    }

    /// Whether every deployment is on an upstream with the placeholder endpoint.
    pub fn unconfigured(&self) -> bool {
        self.placeholder.iter().all(|p| *p)
    }

    fn serving(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.deployments.len())
            .filter(|&i| !self.placeholder[i] && self.deployments[i].weight > 0)
    }
}

/// The health of every deployment of the serving config, kept from one snapshot to the next.
#[derive(Debug, Default)]
pub struct PoolRegistry {
    current: Mutex<Vec<Entry>>,
}

#[derive(Debug, Clone)]
struct Entry {
    key: DeploymentKey,
    health: Arc<DeploymentHealth>,
    models: Vec<String>,
}

impl PoolRegistry {
    /// The pools of `config`'s models (same order), reusing the health of deployments the
    /// previous config had; the others' state is dropped.
    pub fn pools_for(&self, config: &Config) -> Vec<ModelPool> {
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        let previous: HashMap<DeploymentKey, Arc<DeploymentHealth>> = current
            .drain(..)
            .map(|entry| (entry.key, entry.health))
            .collect();
        let mut index: HashMap<DeploymentKey, usize> = HashMap::new();
        let mut pools = Vec::with_capacity(config.models.len());
        for model in &config.models {
            let mut health = Vec::with_capacity(model.deployments.len());
            for deployment in &model.deployments {
                let upstream = &config.upstreams[deployment.upstream];
                let key = DeploymentKey {
                    upstream: upstream.name.clone(),
                    base_url: upstream.base_url.clone(),
                    deployment: deployment.name.clone(),
                };
                let at = *index.entry(key.clone()).or_insert_with(|| {
                    current.push(Entry {
                        health: previous.get(&key).cloned().unwrap_or_default(),
                        key,
                        models: Vec::new(),
                    });
                    current.len() - 1
                });
                let entry = &mut current[at];
                if !entry.models.contains(&model.id) {
                    entry.models.push(model.id.clone());
                }
                health.push(entry.health.clone());
            }
            pools.push(ModelPool {
                placeholder: model
                    .deployments
                    .iter()
                    .map(|d| config.upstreams[d.upstream].placeholder)
                    .collect(),
                selector: Selector::new(model.deployments.len()),
                deployments: model.deployments.clone(),
                health,
            });
        }
        pools
    }

    /// Every deployment of the serving config, with its state and counters.
    pub fn stats(&self) -> Vec<DeploymentStats> {
        let entries = self
            .current
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let (now, wall) = (Instant::now(), SystemTime::now());
        entries
            .into_iter()
            .map(|entry| {
                let standing = entry.health.standing(now);
                let counters = entry.health.counters();
                DeploymentStats {
                    upstream: entry.key.upstream,
                    deployment: entry.key.deployment,
                    models: entry.models,
                    state: standing.state,
                    until_ms: standing.until.map(|until| {
                        crate::process::clock::epoch_ms(wall + until.saturating_duration_since(now))
                    }),
                    consecutive_failures: standing.consecutive_failures,
                    requests: counters.requests,
                    succeeded: counters.succeeded,
                    throttled: counters.throttled,
                    failures: counters
                        .failures
                        .into_iter()
                        .map(|(class, n)| (class.to_string(), n))
                        .collect(),
                    failovers_out: counters.failovers_out,
                    cooling_ms: counters.cooling_ms,
                    ttfb_ms_sum: counters.ttfb_ms_sum,
                    ttfb_ms_max: counters.ttfb_ms_max,
                }
            })
            .collect()
    }
}

/// Encodes every deployment's state and counters for `/metrics`, labelled `upstream` and
/// `deployment` (names from the config only, so the label sets stay bounded).
pub fn encode_metrics(stats: &[DeploymentStats], encoder: &mut DescriptorEncoder) -> fmt::Result {
    let labels = |d: &'_ DeploymentStats| {
        [
            ("upstream", d.upstream.clone()),
            ("deployment", d.deployment.clone()),
        ]
    };
    type Counter = (&'static str, &'static str, fn(&DeploymentStats) -> u64);
    let counters: [Counter; 4] = [
        ("gateway_deployment_requests", "Attempts sent to the deployment", |d| d.requests),
        (
            "gateway_deployment_succeeded",
            "Deployment answers passed to the client",
            |d| d.succeeded,
        ),
        ("gateway_deployment_throttled", "429 answers of the deployment", |d| d.throttled),
        (
            "gateway_deployment_failovers",
            "Requests that moved on from the deployment to another",
            |d| d.failovers_out,
        ),
    ];
    for (name, help, value) in counters {
        let mut family = metrics::counter(encoder, name, help)?;
        for d in stats {
            metrics::labelled(&mut family, &labels(d), value(d))?;
        }
    }
    let mut failures = metrics::counter(
        encoder,
        "gateway_deployment_failures",
        "Failed attempts of the deployment by class",
    )?;
    for d in stats {
        for (class, n) in &d.failures {
            let [upstream, deployment] = labels(d);
            metrics::labelled(
                &mut failures,
                &[upstream, deployment, ("class", class.clone())],
                *n,
            )?;
        }
    }
    let mut cooling = metrics::counter(
        encoder,
        "gateway_deployment_cooling_seconds",
        "Time the deployment spent cooling after 429s",
    )?;
    for d in stats {
        metrics::labelled(&mut cooling, &labels(d), d.cooling_ms as f64 / 1000.0)?;
    }
    let mut state = encoder.encode_descriptor(
        "gateway_deployment_state",
        "1 for the deployment's current state",
        None,
        MetricType::Gauge,
    )?;
    for d in stats {
        for s in DeploymentState::ALL {
            let [upstream, deployment] = labels(d);
            let set = [upstream, deployment, ("state", s.as_str().to_string())];
            ConstGauge::new(u64::from(d.state == s)).encode(state.encode_family(&set)?)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::time::Duration;

    fn config(models: serde_json::Value, east_url: &str) -> Config {
        crate::config::load(
            json!({
                "auth": {"mode": "apiKey", "apiKey": "x"},
                "upstreams": [
                    {"name": "east", "baseUrl": east_url},
                    {"name": "west", "baseUrl": "https://west.example.com"}
                ],
                "models": models
            })
            .to_string()
            .as_bytes(),
        )
        .expect("config")
    }

    fn two_region_models() -> serde_json::Value {
        json!([
            {"id": "a", "deployments": [{"upstream": "east", "targetModel": "d"}, {"upstream": "west", "targetModel": "d"}]},
            {"id": "b", "upstream": "east", "targetModel": "d"}
        ])
    }

    #[test]
    fn models_sharing_a_deployment_share_its_health() {
        let registry = PoolRegistry::default();
        let pools = registry.pools_for(&config(two_region_models(), "https://east.example.com"));
        let now = Instant::now();
        pools[1]
            .health(0)
            .throttled(now + Duration::from_secs(5), now, Duration::ZERO);
        assert_eq!(pools[0].pick(&[false, false], now), Pick::Deployment(1));
        let stats = registry.stats();
        assert_eq!(stats.len(), 2);
        assert_eq!(stats[0].models, vec!["a", "b"]);
        assert_eq!(stats[0].throttled, 1);
    }

    #[test]
    fn a_reload_keeps_the_state_of_unchanged_deployments_only() {
        let registry = PoolRegistry::default();
        let now = Instant::now();
        let until = now + Duration::from_secs(60);
        let pools = registry.pools_for(&config(two_region_models(), "https://east.example.com"));
        pools[0].health(0).throttled(until, now, Duration::ZERO);
        pools[0].health(1).throttled(until, now, Duration::ZERO);

        let pools = registry.pools_for(&config(two_region_models(), "https://east2.example.com"));
        assert_eq!(
            pools[0].health(0).availability(now),
            Availability::Available
        );
        assert_eq!(
            pools[0].health(1).availability(now),
            Availability::OutUntil(until)
        );
    }

    #[test]
    fn all_cooling_gives_the_earliest_return_and_tried_deployments_are_skipped() {
        let registry = PoolRegistry::default();
        let pools = registry.pools_for(&config(two_region_models(), "https://east.example.com"));
        let now = Instant::now();
        let pool = &pools[0];
        assert_eq!(pool.pick(&[true, false], now), Pick::Deployment(1));
        assert_eq!(pool.pick(&[true, true], now), Pick::None);
        pool.health(0)
            .throttled(now + Duration::from_secs(3), now, Duration::ZERO);
        assert_eq!(pool.all_cooling(now), None);
        pool.health(1)
            .throttled(now + Duration::from_secs(2), now, Duration::ZERO);
        assert_eq!(pool.all_cooling(now), Some(now + Duration::from_secs(2)));
        assert_eq!(pool.next_return(now), Some(now + Duration::from_secs(2)));
        assert_eq!(pool.pick(&[false, false], now), Pick::None);
    }

    #[test]
    fn metrics_label_each_deployment_and_mark_its_state() {
        let registry = PoolRegistry::default();
        let pools = registry.pools_for(&config(two_region_models(), "https://east.example.com"));
        let now = Instant::now();
        pools[0]
            .health(1)
            .throttled(now + Duration::from_millis(2500), now, Duration::ZERO);
        let stats = registry.stats();
        let text = metrics::render_with(move |encoder| encode_metrics(&stats, encoder));
        for line in [
            r#"gateway_deployment_throttled_total{upstream="west",deployment="d"} 1"#,
            r#"gateway_deployment_cooling_seconds_total{upstream="west",deployment="d"} 2.5"#,
            r#"gateway_deployment_state{upstream="west",deployment="d",state="cooling"} 1"#,
            r#"gateway_deployment_state{upstream="east",deployment="d",state="available"} 1"#,
            r#"gateway_deployment_state{upstream="east",deployment="d",state="cooling"} 0"#,
        ] {
            assert!(text.contains(line), "{line} not in\n{text}");
        }
    }

    #[test]
    fn deployments_on_a_placeholder_upstream_take_no_traffic() {
        let registry = PoolRegistry::default();
        let pools = registry.pools_for(&config(
            two_region_models(),
            "https://YOUR-RESOURCE-NAME.openai.azure.com",
        ));
        assert_eq!(
            pools[0].pick(&[false, false], Instant::now()),
            Pick::Deployment(1)
        );
        assert!(pools[1].unconfigured());
    }
}
