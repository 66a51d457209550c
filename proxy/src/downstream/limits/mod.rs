//! Client key limits: request and token windows and a token budget per key, checked before a
//! request goes upstream and charged with the tokens the upstream reports. The verdict and the
//! `x-ratelimit-*` headers come from the counts alone (`decide`, `RateHeaders::from_counts`),
//! whichever store keeps them.

pub mod local;
pub mod periods;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};

use crate::config::{BudgetPeriod, ClientKeyEntry, KeyLimits, Metered};
use crate::errors::ProxyError;
use crate::ops::contract::{BudgetUsageView, KeyLimitsUsage, WindowUsage};
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

/// The verdict for a request given the key's counts before it: a spent budget first, then a
/// full token window, then a full request window. Admitted counts include the request.
pub fn decide(limits: &KeyLimits, mut counts: Counts) -> Verdict {
    if let (Some(budget), Some((used, _))) = (limits.budget, counts.budget)
        && used >= budget.tokens
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
            .position(|(w, (count, _))| w.metered == metered && *count >= w.limit);
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

/// The limits of every key, counted in this process.
#[derive(Debug, Default)]
pub struct Limiter {
    local: LocalCounters,
}

impl Limiter {
    pub fn with_budgets(budgets: &BTreeMap<String, BudgetUsage>) -> Limiter {
        Limiter {
            local: LocalCounters::with_budgets(budgets),
        }
    }

    /// Checks and counts a request of `key`; the headers to send on the answer, or the 429.
    pub fn admit(&self, key: &Arc<str>, limits: &KeyLimits) -> Result<RateHeaders, ProxyError> {
        if limits.is_empty() {
            return Ok(RateHeaders::default());
        }
        let now = now_ms();
        match self.local.admit(key, limits, now) {
            Verdict::Admitted(counts) => Ok(RateHeaders::from_counts(limits, &counts, now)),
            Verdict::Refused { counts, refusal } => {
                let headers = RateHeaders::from_counts(limits, &counts, now);
                Err(refused(limits, &counts, refusal, headers, now))
            }
        }
    }

    /// Charges the tokens a request of `key` used.
    pub fn charge(&self, key: &Arc<str>, limits: &KeyLimits, tokens: u64) {
        if tokens > 0 && !limits.is_empty() {
            self.local.charge(key, limits, tokens, now_ms());
        }
    }

    pub fn budgets(&self) -> BTreeMap<String, BudgetUsage> {
        self.local.budgets()
    }

    /// Where each key with limits stands now, for the ops listener.
    pub fn usage(&self, keys: &[ClientKeyEntry]) -> Vec<KeyLimitsUsage> {
        let now = now_ms();
        self.local.retain(|id| keys.iter().any(|k| k.id == id));
        keys.iter()
            .filter(|k| !k.policy.limits.is_empty() || k.policy.expires_at.is_some())
            .map(|k| {
                let limits = &k.policy.limits;
                let counts = self.local.counts(&Arc::from(k.id.as_str()), limits, now);
                KeyLimitsUsage {
                    key_id: k.id.clone(),
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
                    expires_at_ms: k.policy.expires_at.map(epoch_ms),
                }
            })
            .collect()
    }
}

fn refused(
    limits: &KeyLimits,
    counts: &Counts,
    refusal: Refusal,
    headers: RateHeaders,
    now: u64,
) -> ProxyError {
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
}
