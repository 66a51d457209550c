//! Client key limits: request and token windows and a token budget per key, checked before a
//! request goes upstream and charged with the tokens the upstream reports. The verdict and the
//! `x-ratelimit-*` headers come from the counts alone (`decide`, `RateHeaders::from_counts`),
//! whichever store keeps them: this process (`local`) or a Redis shared by every replica
//! (`redis`).

pub mod estimate;
pub mod local;
pub mod periods;
pub mod redis;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use arc_swap::ArcSwapOption;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use tokio::runtime::Handle;

use self::redis::{RedisStore, Unavailable};
use crate::config::{
    BudgetPeriod, ClientKeyEntry, FailMode, KeyLimits, Limits as LimitsConfig, Metered,
};
use crate::errors::ProxyError;
use crate::ops::contract::{
    BudgetUsageView, KeyLimitsUsage, LimitsFailMode, LimitsStatus, LimitsStore, WindowUsage,
};
use crate::ops::metrics;
use crate::process::clock::{epoch_ms, now_ms};
use local::{BudgetUsage, LocalCounters};

/// A key's counts before a request: per window of its limits (same order) the count and the
/// window's end; and its budget's use and period end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counts {
    pub windows: Vec<(u64, u64)>,
    pub budget: Option<(u64, u64)>,
}

/// What refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The window at this index of the key's limits is full.
    Window(usize),
    Budget,
}

#[derive(Debug)]
pub enum Verdict {
    /// The counts with this request counted.
    Admitted(Counts),
    Refused {
        counts: Counts,
        refusal: Refusal,
    },
}

impl Verdict {
    pub fn counts(&self) -> &Counts {
        match self {
            Verdict::Admitted(counts) | Verdict::Refused { counts, .. } => counts,
        }
    }
}

/// Whether `count` tokens already used leave no room under `limit` for a prompt estimated at
/// `estimate` tokens (0: not estimated, refused only once the limit is reached).
fn no_room(count: u64, estimate: u64, limit: u64) -> bool {
    count >= limit || (estimate > 0 && count.saturating_add(estimate) > limit)
}

/// The verdict for a request given the key's counts before it and its prompt's estimated
/// tokens (0 when not estimated): a spent budget first, then a full token window, then a full
/// request window. Admitted counts include the request. Mirrored by `redis/admit.lua`.
pub fn decide(limits: &KeyLimits, mut counts: Counts, estimate: u64) -> Verdict {
    if let (Some(budget), Some((used, _))) = (limits.budget, counts.budget)
        && no_room(used, estimate, budget.tokens)
    {
        return Verdict::Refused {
            counts,
            refusal: Refusal::Budget,
        };
    }
    for metered in [Metered::Tokens, Metered::Requests] {
        let full = limits
            .windows
            .iter()
            .zip(&counts.windows)
            .position(|(w, (count, _))| {
                w.metered == metered
                    && match metered {
                        Metered::Tokens => no_room(*count, estimate, w.limit),
                        Metered::Requests => *count >= w.limit,
                    }
            });
        if let Some(index) = full {
            return Verdict::Refused {
                counts,
                refusal: Refusal::Window(index),
            };
        }
    }
    for (w, (count, _)) in limits.windows.iter().zip(counts.windows.iter_mut()) {
        if w.metered == Metered::Requests {
            *count += 1;
        }
    }
    Verdict::Admitted(counts)
}

/// One kind's most constraining window, as OpenAI's headers give it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meter {
    pub limit: u64,
    pub remaining: u64,
    pub reset: Duration,
}

/// The `x-ratelimit-*` headers of an answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RateHeaders {
    pub requests: Option<Meter>,
    pub tokens: Option<Meter>,
}

impl RateHeaders {
    pub fn from_counts(limits: &KeyLimits, counts: &Counts, now_ms: u64) -> RateHeaders {
        let meter = |metered: Metered| {
            limits
                .windows
                .iter()
                .zip(&counts.windows)
                .filter(|(w, _)| w.metered == metered)
                .map(|(w, (count, end))| Meter {
                    limit: w.limit,
                    remaining: w.limit.saturating_sub(*count),
                    reset: Duration::from_millis(end.saturating_sub(now_ms)),
                })
                .min_by_key(|m| (m.remaining, m.reset))
        };
        RateHeaders {
            requests: meter(Metered::Requests),
            tokens: meter(Metered::Tokens),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.requests.is_none() && self.tokens.is_none()
    }

    pub fn write(&self, headers: &mut HeaderMap) {
        for (kind, meter) in [("requests", self.requests), ("tokens", self.tokens)] {
            let Some(meter) = meter else { continue };
            for (name, value) in [
                ("limit", meter.limit.to_string()),
                ("remaining", meter.remaining.to_string()),
                ("reset", reset_text(meter.reset)),
            ] {
                if let (Ok(name), Ok(value)) = (
                    HeaderName::try_from(format!("x-ratelimit-{name}-{kind}")),
                    HeaderValue::try_from(value),
                ) {
                    headers.insert(name, value);
                }
            }
        }
    }
}

/// A reset time as OpenAI writes it: `"20ms"`, `"1s"`, `"6m0s"`, `"1h2m3s"`.
fn reset_text(reset: Duration) -> String {
    let ms = reset.as_millis() as u64;
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let (h, m) = (ms / 3_600_000, ms / 60_000 % 60);
    let s = (ms % 60_000) as f64 / 1000.0;
    let s = format!("{s}s");
    match (h, m) {
        (0, 0) => s,
        (0, m) => format!("{m}m{s}"),
        (h, m) => format!("{h}h{m}m{s}"),
    }
}

/// The limits of every key: counted in the Redis of `limits.redis` when the serving config
/// names one, in this process otherwise, and in this process too while that Redis cannot be
/// reached (`failMode: "open"`; `"closed"` refuses instead).
pub struct Limiter {
    local: Arc<LocalCounters>,
    redis: ArcSwapOption<RedisStore>,
    /// Serialises changes of store, so that one config change starts one store.
    changing: Mutex<()>,
    /// Unix ms since which counting is in this process by config (start, or Redis removed).
    process_since_ms: AtomicU64,
    redis_errors: Arc<AtomicU64>,
    /// Where Redis connections live: the runtime the limiter was made on.
    runtime: Option<Handle>,
}

impl Default for Limiter {
    fn default() -> Limiter {
        Limiter::with_budgets(&BTreeMap::new())
    }
}

impl std::fmt::Debug for Limiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limiter")
            .field("redis", &self.redis.load().is_some())
            .finish_non_exhaustive()
    }
}

impl Limiter {
    /// A limiter with the budget use of the last run; made on the runtime that will carry its
    /// Redis connection, if it gets one.
    pub fn with_budgets(budgets: &BTreeMap<String, BudgetUsage>) -> Limiter {
        Limiter {
            local: Arc::new(LocalCounters::with_budgets(budgets)),
            redis: ArcSwapOption::empty(),
            changing: Mutex::new(()),
            process_since_ms: AtomicU64::new(now_ms()),
            redis_errors: Arc::new(AtomicU64::new(0)),
            runtime: Handle::try_current().ok(),
        }
    }

    /// Checks and counts a request of `key` whose prompt is estimated at `estimate` tokens (0:
    /// not estimated); the headers to send on the answer, or the 429 (or the 503 while the
    /// Redis of `failMode: "closed"` cannot be reached).
    pub async fn admit(
        &self,
        key: &Arc<str>,
        limits: &KeyLimits,
        config: &LimitsConfig,
        estimate: u64,
    ) -> Result<RateHeaders, ProxyError> {
        if limits.is_empty() {
            return Ok(RateHeaders::default());
        }
        let verdict = match self.store(config) {
            None => self.local.admit(key, limits, now_ms(), estimate),
            Some(store) => {
                let now = now_ms();
                match store.admit(key, limits, now, estimate).await {
                    Ok(counts) => {
                        let verdict = decide(limits, counts, estimate);
                        self.local.mirror(key, limits, verdict.counts(), now);
                        verdict
                    }
                    Err(Unavailable) => match config.fail_mode {
                        FailMode::Open => self.local.admit(key, limits, now_ms(), estimate),
                        FailMode::Closed => return Err(ProxyError::LimitsUnavailable),
                    },
                }
            }
        };
        let now = now_ms();
        match verdict {
            Verdict::Admitted(counts) => Ok(RateHeaders::from_counts(limits, &counts, now)),
            Verdict::Refused { counts, refusal } => {
                let headers = RateHeaders::from_counts(limits, &counts, now);
                Err(refused(limits, &counts, refusal, headers, now, estimate))
            }
        }
    }

    /// Charges the tokens a request of `key` used: in this process, and in Redis (sent in the
    /// background) while it is connected.
    pub fn charge(&self, key: &Arc<str>, limits: &KeyLimits, tokens: u64) {
        if tokens == 0 || limits.is_empty() {
            return;
        }
        let now = now_ms();
        self.local.charge(key, limits, tokens, now);
        if let Some(store) = self.redis.load_full() {
            store.charge_in_background(key.clone(), limits.clone(), tokens, now);
        }
    }

    pub fn budgets(&self) -> BTreeMap<String, BudgetUsage> {
        self.local.budgets()
    }

    /// Where the counting happens for `config`, and since when.
    pub fn status(&self, config: &LimitsConfig) -> LimitsStatus {
        let fail_mode = match config.fail_mode {
            FailMode::Open => LimitsFailMode::Open,
            FailMode::Closed => LimitsFailMode::Closed,
        };
        match self.store(config) {
            None => LimitsStatus {
                store: LimitsStore::Process,
                redis_reachable: None,
                since_ms: self.process_since_ms.load(Ordering::Relaxed),
                fail_mode,
            },
            Some(store) => {
                let health = store.health();
                LimitsStatus {
                    store: LimitsStore::Redis,
                    redis_reachable: Some(health.reachable),
                    since_ms: health.since_ms,
                    fail_mode,
                }
            }
        }
    }

    /// `gateway_limits_redis_errors_total`, and `gateway_limits_redis_up` when `config` names
    /// a Redis.
    pub fn encode_metrics(
        &self,
        encoder: &mut DescriptorEncoder,
        config: &LimitsConfig,
    ) -> std::fmt::Result {
        let errors = metrics::counter(
            encoder,
            "gateway_limits_redis_errors",
            "Failed calls and connection attempts to the Redis of limits.redis",
        )?;
        ConstCounter::new(self.redis_errors.load(Ordering::Relaxed)).encode(errors)?;
        if let Some(store) = self.store(config) {
            let up = encoder.encode_descriptor(
                "gateway_limits_redis_up",
                "1 while the Redis of limits.redis answers, 0 while the limits are counted without it",
                None,
                MetricType::Gauge,
            )?;
            ConstGauge::new(u64::from(store.health().reachable)).encode(up)?;
        }
        Ok(())
    }

    /// The Redis store `config` names, started (or replaced) when it names another.
    fn store(&self, config: &LimitsConfig) -> Option<Arc<RedisStore>> {
        let current = self.redis.load();
        match (&config.redis, current.as_ref()) {
            (None, None) => return None,
            (Some(url), Some(store)) if store.serves(url, config.redis_entra.as_ref()) => {
                store.follow(config.fail_mode, config.redis_timeout);
                return Some(store.clone());
            }
            _ => {}
        }
        drop(current);
        let _changing = self.changing.lock().unwrap_or_else(|e| e.into_inner());
        let current = self.redis.load_full();
        let next = match (&config.redis, current) {
            (Some(url), Some(store)) if store.serves(url, config.redis_entra.as_ref()) => {
                return Some(store);
            }
            (None, None) => return None,
            (None, Some(_)) => None,
            (Some(url), _) => {
                let runtime = self.runtime.clone().or_else(|| Handle::try_current().ok());
                match runtime {
                    Some(runtime) => Some(RedisStore::start(
                        url,
                        config.redis_entra.as_ref(),
                        config.fail_mode,
                        config.redis_timeout,
                        runtime,
                        self.redis_errors.clone(),
                    )),
                    None => {
                        tracing::error!("limits: no async runtime to run the Redis client on");
                        return None;
                    }
                }
            }
        };
        if next.is_none() {
            self.process_since_ms.store(now_ms(), Ordering::Relaxed);
            tracing::info!("limits: counting in this process");
        }
        self.redis.store(next.clone());
        next
    }

    /// Where each key with limits stands now, for the ops listener: from Redis while it is
    /// connected, from this process otherwise.
    pub async fn usage(
        &self,
        keys: &[ClientKeyEntry],
        config: &LimitsConfig,
    ) -> Vec<KeyLimitsUsage> {
        let now = now_ms();
        self.local.retain(|id| keys.iter().any(|k| k.id == id));
        let shown: Vec<&ClientKeyEntry> = keys
            .iter()
            .filter(|k| !k.policy.limits.is_empty() || k.policy.expires_at.is_some())
            .collect();
        let shared = match self.store(config) {
            Some(store) => {
                let wanted: Vec<(&str, &KeyLimits)> = shown
                    .iter()
                    .map(|k| (k.id.as_str(), &k.policy.limits))
                    .collect();
                store.read(&wanted, now).await.ok()
            }
            None => None,
        };
        shown
            .iter()
            .enumerate()
            .map(|(index, k)| {
                let limits = &k.policy.limits;
                let counts = match &shared {
                    Some(counts) => counts[index].clone(),
                    None => self.local.counts(&Arc::from(k.id.as_str()), limits, now),
                };
                key_usage(k, &counts, now)
            })
            .collect()
    }
}

fn key_usage(key: &ClientKeyEntry, counts: &Counts, now: u64) -> KeyLimitsUsage {
    let limits = &key.policy.limits;
    KeyLimitsUsage {
        key_id: key.id.clone(),
        windows: limits
            .windows
            .iter()
            .zip(&counts.windows)
            .map(|(w, (used, end))| WindowUsage {
                metered: w.metered.as_str().to_string(),
                limit: w.limit,
                per_s: w.per.as_secs(),
                used: *used,
                reset_ms: *end,
            })
            .collect(),
        budget: limits.budget.as_ref().map(|b| {
            let (since, end) = periods::budget(now, b);
            BudgetUsageView {
                tokens: b.tokens,
                per: match b.period {
                    BudgetPeriod::Day => "day",
                    BudgetPeriod::Month => "month",
                }
                .to_string(),
                used: counts.budget.map_or(0, |(used, _)| used),
                since_ms: since,
                reset_ms: end,
            }
        }),
        expires_at_ms: key.policy.expires_at.map(epoch_ms),
    }
}

fn refused(
    limits: &KeyLimits,
    counts: &Counts,
    refusal: Refusal,
    headers: RateHeaders,
    now: u64,
    estimate: u64,
) -> ProxyError {
    let limit = match refusal {
        Refusal::Budget => limits.budget.map(|b| b.tokens),
        Refusal::Window(index) => {
            let window = limits.windows[index];
            (window.metered == Metered::Tokens).then_some(window.limit)
        }
    };
    if let Some(limit) = limit
        && estimate > limit
    {
        // Never admitted however long the client waits.
        return ProxyError::KeyRequestTooLarge {
            estimated: estimate,
            limit,
            headers,
        };
    }
    match refusal {
        Refusal::Budget => {
            let end = counts.budget.map_or(now, |(_, end)| end);
            ProxyError::KeyBudgetSpent {
                retry_after: Duration::from_millis(end.saturating_sub(now)),
                headers,
            }
        }
        Refusal::Window(index) => {
            let window = limits.windows[index];
            let end = counts.windows[index].1;
            ProxyError::KeyRateLimited {
                metered: window.metered,
                limit: window.limit,
                per: window.per,
                retry_after: Duration::from_millis(end.saturating_sub(now)),
                headers,
            }
        }
    }
}

/// The tokens of a finished request, to be charged to its key's limits.
#[derive(Debug)]
pub struct Charge {
    pub limiter: Arc<Limiter>,
    pub key: Arc<str>,
    pub limits: KeyLimits,
}

impl Charge {
    pub fn settle(self, tokens: u64) {
        self.limiter.charge(&self.key, &self.limits, tokens);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Window;

    #[test]
    fn reset_times_read_like_openais() {
        assert_eq!(reset_text(Duration::from_millis(20)), "20ms");
        assert_eq!(reset_text(Duration::from_millis(1000)), "1s");
        assert_eq!(reset_text(Duration::from_millis(1500)), "1.5s");
        assert_eq!(reset_text(Duration::from_secs(360)), "6m0s");
        assert_eq!(reset_text(Duration::from_secs(3723)), "1h2m3s");
    }

    #[test]
    fn headers_give_each_kinds_most_constraining_window() {
        let limits = KeyLimits {
            windows: vec![
                Window {
                    metered: Metered::Requests,
                    limit: 60,
                    per: Duration::from_secs(60),
                },
                Window {
                    metered: Metered::Requests,
                    limit: 1000,
                    per: Duration::from_secs(86_400),
                },
                Window {
                    metered: Metered::Tokens,
                    limit: 500,
                    per: Duration::from_secs(60),
                },
            ],
            budget: None,
        };
        let counts = Counts {
            windows: vec![(10, 30_000), (995, 3_600_000), (600, 30_000)],
            budget: None,
        };
        let headers = RateHeaders::from_counts(&limits, &counts, 0);
        assert_eq!(
            headers.requests,
            Some(Meter {
                limit: 1000,
                remaining: 5,
                reset: Duration::from_secs(3600)
            })
        );
        assert_eq!(headers.tokens.map(|m| m.remaining), Some(0));
        let mut map = HeaderMap::new();
        headers.write(&mut map);
        assert_eq!(map.get("x-ratelimit-limit-requests").expect("h"), "1000");
        assert_eq!(map.get("x-ratelimit-remaining-requests").expect("h"), "5");
        assert_eq!(map.get("x-ratelimit-reset-requests").expect("h"), "1h0m0s");
        assert_eq!(map.get("x-ratelimit-reset-tokens").expect("h"), "30s");
    }

    fn tokens_per_minute(limit: u64) -> KeyLimits {
        KeyLimits {
            windows: vec![Window {
                metered: Metered::Tokens,
                limit,
                per: Duration::from_secs(60),
            }],
            budget: None,
        }
    }

    #[test]
    fn an_estimated_prompt_is_refused_when_it_would_overshoot_a_token_window() {
        let limits = tokens_per_minute(1000);
        let counts = |used| Counts {
            windows: vec![(used, 60_000)],
            budget: None,
        };
        // Without an estimate, only a window already spent refuses.
        assert!(matches!(
            decide(&limits, counts(999), 0),
            Verdict::Admitted(_)
        ));
        assert!(matches!(
            decide(&limits, counts(1000), 0),
            Verdict::Refused { .. }
        ));
        // With one, a prompt that does not fit in what is left.
        assert!(matches!(
            decide(&limits, counts(900), 100),
            Verdict::Admitted(_)
        ));
        assert!(matches!(
            decide(&limits, counts(900), 101),
            Verdict::Refused {
                refusal: Refusal::Window(0),
                ..
            }
        ));
    }

    #[test]
    fn a_prompt_larger_than_the_whole_window_is_too_large_not_merely_early() {
        let limits = tokens_per_minute(1000);
        let counts = Counts {
            windows: vec![(0, 60_000)],
            budget: None,
        };
        let error = refused(
            &limits,
            &counts,
            Refusal::Window(0),
            RateHeaders::default(),
            0,
            1500,
        );
        assert!(matches!(
            error,
            ProxyError::KeyRequestTooLarge {
                estimated: 1500,
                limit: 1000,
                ..
            }
        ));
        let error = refused(
            &limits,
            &counts,
            Refusal::Window(0),
            RateHeaders::default(),
            0,
            500,
        );
        assert!(matches!(error, ProxyError::KeyRateLimited { .. }));
    }
}
