//! The counters of every key's windows and budget, in this process. One mutex over a map of
//! small records: an admission is a few additions under it, never I/O.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use super::periods;
use super::{Counts, Verdict, decide};
use crate::config::{KeyLimits, Metered};

/// A key's budget use in its current period, as stats.json keeps it across restarts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BudgetUsage {
    pub period_start_ms: u64,
    pub used: u64,
}

#[derive(Debug, Default)]
pub struct LocalCounters {
    keys: Mutex<HashMap<Arc<str>, KeyCounters>>,
}

#[derive(Debug)]
struct KeyCounters {
    /// The limits these counters were kept for; other limits start them again.
    limits: KeyLimits,
    /// Per window of `limits`: (window start, count).
    windows: Vec<(u64, u64)>,
    budget: BudgetUsage,
}

impl KeyCounters {
    fn new(limits: &KeyLimits) -> KeyCounters {
        KeyCounters {
            limits: limits.clone(),
            windows: vec![(0, 0); limits.windows.len()],
            budget: BudgetUsage::default(),
        }
    }

    /// Moves every window and the budget to the span holding `now_ms`; a new span starts at 0.
    fn roll(&mut self, now_ms: u64) {
        for (slot, window) in self.windows.iter_mut().zip(&self.limits.windows) {
            let (start, _) = periods::window(now_ms, window.per);
            if slot.0 != start {
                *slot = (start, 0);
            }
        }
        if let Some(budget) = &self.limits.budget {
            let (start, _) = periods::budget(now_ms, budget);
            if self.budget.period_start_ms != start {
                self.budget = BudgetUsage {
                    period_start_ms: start,
                    used: 0,
                };
            }
        }
    }

    fn counts(&self, now_ms: u64) -> Counts {
        Counts {
            windows: self
                .windows
                .iter()
                .zip(&self.limits.windows)
                .map(|(slot, w)| (slot.1, periods::window(now_ms, w.per).1))
                .collect(),
            budget: self
                .limits
                .budget
                .as_ref()
                .map(|b| (self.budget.used, periods::budget(now_ms, b).1)),
        }
    }
}

impl LocalCounters {
    /// Budget use carried over from the last run.
    pub fn with_budgets(budgets: &BTreeMap<String, BudgetUsage>) -> LocalCounters {
        let keys = budgets
            .iter()
            .map(|(id, usage)| {
                let counters = KeyCounters {
                    limits: KeyLimits::default(),
                    windows: Vec::new(),
                    budget: *usage,
                };
                (Arc::from(id.as_str()), counters)
            })
            .collect();
        LocalCounters {
            keys: Mutex::new(keys),
        }
    }

    /// Checks the key's windows and budget; when admitted, counts the request.
    pub fn admit(&self, key: &Arc<str>, limits: &KeyLimits, now_ms: u64, estimate: u64) -> Verdict {
        self.with_key(key, limits, now_ms, |counters| {
            let verdict = decide(limits, counters.counts(now_ms), estimate);
            if let Verdict::Admitted(_) = verdict {
                for (slot, window) in counters.windows.iter_mut().zip(&limits.windows) {
                    if window.metered == Metered::Requests {
                        slot.1 += 1;
                    }
                }
            }
            verdict
        })
    }

    /// Adds the tokens a request used to the key's token windows and budget.
    pub fn charge(&self, key: &Arc<str>, limits: &KeyLimits, tokens: u64, now_ms: u64) {
        self.with_key(key, limits, now_ms, |counters| {
            for (slot, window) in counters.windows.iter_mut().zip(&limits.windows) {
                if window.metered == Metered::Tokens {
                    slot.1 = slot.1.saturating_add(tokens);
                }
            }
            if limits.budget.is_some() {
                counters.budget.used = counters.budget.used.saturating_add(tokens);
            }
        });
    }

    /// Raises the key's counters to `counts` where they are lower: what the shared store
    /// reported, so that counting here after it fails goes on from there.
    pub fn mirror(&self, key: &Arc<str>, limits: &KeyLimits, counts: &Counts, now_ms: u64) {
        self.with_key(key, limits, now_ms, |counters| {
            for (slot, (count, _)) in counters.windows.iter_mut().zip(&counts.windows) {
                slot.1 = slot.1.max(*count);
            }
            if let Some((used, _)) = counts.budget {
                counters.budget.used = counters.budget.used.max(used);
            }
        });
    }

    /// The key's counts now, without counting anything.
    pub fn counts(&self, key: &Arc<str>, limits: &KeyLimits, now_ms: u64) -> Counts {
        self.with_key(key, limits, now_ms, |counters| counters.counts(now_ms))
    }

    /// Every key's budget use, for stats.json.
    pub fn budgets(&self) -> BTreeMap<String, BudgetUsage> {
        let keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        keys.iter()
            .filter(|(_, c)| c.budget.used > 0)
            .map(|(id, c)| (id.to_string(), c.budget))
            .collect()
    }

    /// Forgets the keys no longer configured.
    pub fn retain(&self, configured: impl Fn(&str) -> bool) {
        let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        keys.retain(|id, _| configured(id));
    }

    fn with_key<T>(
        &self,
        key: &Arc<str>,
        limits: &KeyLimits,
        now_ms: u64,
        f: impl FnOnce(&mut KeyCounters) -> T,
    ) -> T {
        let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        let counters = keys
            .entry(key.clone())
            .or_insert_with(|| KeyCounters::new(limits));
        if counters.limits != *limits {
            // New windows start from zero. Budget use stays while its period does (a reset
            // starts a new one).
            if counters.limits.windows != limits.windows {
                counters.windows = vec![(0, 0); limits.windows.len()];
            }
            counters.limits = limits.clone();
        }
        counters.roll(now_ms);
        f(counters)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::{Budget, BudgetPeriod, Window};
    use crate::downstream::limits::Refusal;

    fn limits() -> KeyLimits {
        KeyLimits {
            windows: vec![
                Window {
                    metered: Metered::Requests,
                    limit: 2,
                    per: Duration::from_secs(10),
                },
                Window {
                    metered: Metered::Tokens,
                    limit: 100,
                    per: Duration::from_secs(60),
                },
            ],
            budget: Some(Budget {
                tokens: 150,
                period: BudgetPeriod::Day,
                reset_at_ms: None,
            }),
        }
    }

    const T0: u64 = 1_800_000_000_000;

    #[test]
    fn requests_are_counted_per_window_and_refused_over_the_limit() {
        let (c, key, l) = (LocalCounters::default(), Arc::from("k"), limits());
        assert!(matches!(c.admit(&key, &l, T0, 0), Verdict::Admitted(_)));
        assert!(matches!(c.admit(&key, &l, T0 + 1, 0), Verdict::Admitted(_)));
        match c.admit(&key, &l, T0 + 2, 0) {
            Verdict::Refused { refusal, .. } => assert_eq!(refusal, Refusal::Window(0)),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            c.admit(&key, &l, T0 + 10_000, 0),
            Verdict::Admitted(_)
        ));
    }

    #[test]
    fn tokens_refuse_once_spent_and_the_budget_outlasts_windows() {
        let (c, key, l) = (LocalCounters::default(), Arc::from("k"), limits());
        c.charge(&key, &l, 100, T0);
        match c.admit(&key, &l, T0, 0) {
            Verdict::Refused { refusal, .. } => assert_eq!(refusal, Refusal::Window(1)),
            other => panic!("{other:?}"),
        }
        c.charge(&key, &l, 60, T0 + 60_000);
        match c.admit(&key, &l, T0 + 60_000, 0) {
            Verdict::Refused { refusal, .. } => assert_eq!(refusal, Refusal::Budget),
            other => panic!("{other:?}"),
        }
        assert_eq!(c.budgets()["k"].used, 160);
        let mut reset = l.clone();
        if let Some(b) = reset.budget.as_mut() {
            b.reset_at_ms = Some(T0 + 60_000);
        }
        assert!(matches!(
            c.admit(&key, &reset, T0 + 60_000, 0),
            Verdict::Admitted(_)
        ));
        assert!(!c.budgets().contains_key("k"));
    }

    #[test]
    fn budget_use_survives_a_restart_and_new_limits() {
        let (c, key, l) = (LocalCounters::default(), Arc::from("k"), limits());
        c.charge(&key, &l, 150, T0);
        let restarted = LocalCounters::with_budgets(&c.budgets());
        assert!(matches!(
            restarted.admit(&key, &l, T0, 0),
            Verdict::Refused {
                refusal: Refusal::Budget,
                ..
            }
        ));
        let mut more = l.clone();
        more.windows[0].limit = 5;
        assert!(matches!(
            restarted.admit(&key, &more, T0, 0),
            Verdict::Refused {
                refusal: Refusal::Budget,
                ..
            }
        ));
    }
}
