//! A bounded record of recent requests. Errors are kept apart from successes so that a flood of
//! successful traffic never evicts them. Holds no request or response content.

use std::collections::VecDeque;
use std::sync::Mutex;

use crate::ops::contract::{RecentEntry, RecentOutcome, RecentQuery};

pub struct Recent {
    capacity: usize,
    ok: Mutex<VecDeque<RecentEntry>>,
    errors: Mutex<VecDeque<RecentEntry>>,
}

pub const DEFAULT_LIMIT: usize = 100;
pub const MAX_LIMIT: usize = 1000;

impl Recent {
    pub fn new(capacity_each: usize) -> Recent {
        Recent {
            capacity: capacity_each,
            ok: Mutex::new(VecDeque::with_capacity(capacity_each)),
            errors: Mutex::new(VecDeque::with_capacity(capacity_each)),
        }
    }

    pub fn push(&self, entry: RecentEntry) {
        let ring = if entry.outcome == RecentOutcome::Error {
            &self.errors
        } else {
            &self.ok
        };
        let mut ring = ring.lock().unwrap_or_else(|e| e.into_inner());
        if ring.len() == self.capacity {
            ring.pop_front();
        }
        ring.push_back(entry);
    }

    /// Matching entries, newest first.
    pub fn query(&self, q: &RecentQuery) -> Vec<RecentEntry> {
        let limit = q.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT);
        let level = q.level.as_deref().map(str::to_ascii_lowercase);
        let want_errors = !matches!(level.as_deref(), Some("ok" | "info"));
        let want_ok = !matches!(level.as_deref(), Some("error" | "errors"));
        let matches = |e: &&RecentEntry| {
            q.model
                .as_deref()
                .is_none_or(|m| e.model.as_deref() == Some(m))
                && q.request_id.as_deref().is_none_or(|id| {
                    e.request_id == id || e.upstream_request_id.as_deref() == Some(id)
                })
                && q.key_id
                    .as_deref()
                    .is_none_or(|k| e.key_id.as_deref() == Some(k))
                && q.since.is_none_or(|since| e.time_ms >= since)
        };
        let mut out = Vec::new();
        if want_errors {
            let ring = self.errors.lock().unwrap_or_else(|e| e.into_inner());
            out.extend(ring.iter().rev().filter(matches).take(limit).cloned());
        }
        if want_ok {
            let ring = self.ok.lock().unwrap_or_else(|e| e.into_inner());
            out.extend(ring.iter().rev().filter(matches).take(limit).cloned());
        }
        out.sort_by_key(|e| std::cmp::Reverse(e.time_ms));
        out.truncate(limit);
        out
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;
    use crate::config::RouteKey;

    fn entry(time_ms: u64, outcome: RecentOutcome, model: &str) -> RecentEntry {
        RecentEntry {
            time_ms,
            arrived: SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(time_ms),
            request_id: format!("r{time_ms}"),
            upstream_request_id: None,
            key_id: Some("k".into()),
            model: Some(model.into()),
            deployment: None,
            upstream: None,
            route: RouteKey::ChatCompletions,
            stream: false,
            status: 200,
            latency_ms: 1,
            ttfb_ms: None,
            usage: None,
            outcome,
            error: None,
        }
    }

    #[test]
    fn successes_never_evict_errors() {
        let recent = Recent::new(3);
        recent.push(entry(1, RecentOutcome::Error, "m"));
        for t in 2..100 {
            recent.push(entry(t, RecentOutcome::Ok, "m"));
        }
        let errors = recent.query(&RecentQuery {
            level: Some("error".into()),
            ..Default::default()
        });
        assert_eq!(errors.len(), 1);
        assert_eq!(recent.query(&RecentQuery::default()).len(), 4);
    }

    #[test]
    fn filters_apply_and_newest_comes_first() {
        let recent = Recent::new(10);
        recent.push(entry(1, RecentOutcome::Ok, "a"));
        recent.push(entry(2, RecentOutcome::Ok, "b"));
        recent.push(entry(3, RecentOutcome::Error, "a"));
        let got = recent.query(&RecentQuery {
            model: Some("a".into()),
            ..Default::default()
        });
        assert_eq!(
            got.iter().map(|e| e.time_ms).collect::<Vec<_>>(),
            vec![3, 1]
        );
        let since = recent.query(&RecentQuery {
            since: Some(2),
            limit: Some(1),
            ..Default::default()
        });
        assert_eq!(since[0].time_ms, 3);
        assert_eq!(since.len(), 1);
        let by_id = recent.query(&RecentQuery {
            request_id: Some("r2".into()),
            ..Default::default()
        });
        assert_eq!(by_id.len(), 1);
    }
}
