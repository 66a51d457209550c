//! A bounded record of recent requests. Errors are kept apart from successes so that a flood of
//! successful traffic never evicts them. Each of the two rings holds at most a number of entries
//! and a number of bytes (the entries' own size plus their text), whichever is reached first; the
//! oldest entries go, the newest is always kept. Holds no request or response content.

use std::collections::VecDeque;
use std::sync::Mutex;

use crate::ops::contract::{RecentAttempt, RecentEntry, RecentOutcome, RecentQuery};

pub struct Recent {
    capacity: usize,
    byte_capacity: usize,
    ok: Mutex<Ring>,
    errors: Mutex<Ring>,
}

struct Ring {
    entries: VecDeque<RecentEntry>,
    bytes: usize,
}

pub const DEFAULT_LIMIT: usize = 100;
pub const MAX_LIMIT: usize = 1000;

impl Recent {
    /// Rings of at most `capacity_each` entries and `byte_capacity_each` bytes each.
    pub fn new(capacity_each: usize, byte_capacity_each: usize) -> Recent {
        let ring = || {
            Mutex::new(Ring {
                entries: VecDeque::with_capacity(capacity_each),
                bytes: 0,
            })
        };
        Recent {
            capacity: capacity_each,
            byte_capacity: byte_capacity_each,
            ok: ring(),
            errors: ring(),
        }
    }

    pub fn push(&self, entry: RecentEntry) {
        let ring = if entry.outcome == RecentOutcome::Error {
            &self.errors
        } else {
            &self.ok
        };
        let size = size_of(&entry);
        let mut ring = ring.lock().unwrap_or_else(|e| e.into_inner());
        while ring.entries.len() >= self.capacity.max(1)
            || (!ring.entries.is_empty() && ring.bytes + size > self.byte_capacity)
        {
            let Some(oldest) = ring.entries.pop_front() else {
                break;
            };
            ring.bytes -= size_of(&oldest);
        }
        ring.bytes += size;
        ring.entries.push_back(entry);
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
        for (wanted, ring) in [(want_errors, &self.errors), (want_ok, &self.ok)] {
            if wanted {
                let ring = ring.lock().unwrap_or_else(|e| e.into_inner());
                out.extend(
                    ring.entries
                        .iter()
                        .rev()
                        .filter(matches)
                        .take(limit)
                        .cloned(),
                );
            }
        }
        out.sort_by_key(|e| std::cmp::Reverse(e.time_ms));
        out.truncate(limit);
        out
    }
}

/// The memory an entry holds: its own size and the text it owns.
fn size_of(entry: &RecentEntry) -> usize {
    let text = |s: &Option<String>| s.as_ref().map_or(0, String::len);
    std::mem::size_of::<RecentEntry>()
        + entry.request_id.len()
        + text(&entry.upstream_request_id)
        + text(&entry.key_id)
        + text(&entry.model)
        + text(&entry.deployment)
        + text(&entry.upstream)
        + text(&entry.error)
        + entry
            .attempts
            .iter()
            .map(|a| std::mem::size_of::<RecentAttempt>() + a.deployment.len() + a.outcome.len())
            .sum::<usize>()
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
            requested_model: None,
            deployment: None,
            upstream: None,
            attempts: Vec::new(),
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
        let recent = Recent::new(3, 1 << 20);
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
        let recent = Recent::new(10, 1 << 20);
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

    #[test]
    fn each_ring_holds_at_most_its_bytes() {
        let cap = 10 * size_of(&entry(0, RecentOutcome::Error, "m"));
        let recent = Recent::new(1000, cap);
        for t in 0..100 {
            let mut e = entry(t, RecentOutcome::Error, "m");
            e.error = Some("x".repeat(t as usize * 10));
            recent.push(e);
        }
        let ring = recent.errors.lock().expect("ring");
        assert!(ring.bytes <= cap, "{} > {cap}", ring.bytes);
        assert_eq!(ring.bytes, ring.entries.iter().map(size_of).sum::<usize>());
        assert_eq!(ring.entries.back().map(|e| e.time_ms), Some(99));
    }
}
