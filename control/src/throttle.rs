//! Throttling of failed admin logins per client IP: after a few failures, further attempts from
//! that address are refused for a lock-out that doubles with each new failure. Never blocks an
//! address that has not failed, and never keeps more than a bounded number of addresses.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct ThrottlePolicy {
    /// Failures allowed before the first lock-out.
    pub free_failures: u32,
    /// Length of the first lock-out; each further failure doubles it.
    pub base_lockout: Duration,
    pub max_lockout: Duration,
    /// A record with no failure for this long is forgotten.
    pub forget_after: Duration,
    /// Addresses remembered at most; the stalest are dropped first.
    pub max_tracked: usize,
}

impl Default for ThrottlePolicy {
    fn default() -> Self {
        ThrottlePolicy {
            free_failures: 5,
            base_lockout: Duration::from_secs(1),
            max_lockout: Duration::from_secs(15 * 60),
            forget_after: Duration::from_secs(60 * 60),
            max_tracked: 10_000,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Record {
    failures: u32,
    last_failure: Instant,
    locked_until: Option<Instant>,
}

pub struct LoginThrottle {
    policy: ThrottlePolicy,
    records: Mutex<HashMap<IpAddr, Record>>,
}

impl LoginThrottle {
    pub fn new(policy: ThrottlePolicy) -> LoginThrottle {
        LoginThrottle {
            policy,
            records: Mutex::new(HashMap::new()),
        }
    }

    /// `Some(wait)` while `ip` is locked out.
    pub fn locked(&self, ip: IpAddr, now: Instant) -> Option<Duration> {
        let records = self.records.lock().unwrap_or_else(|e| e.into_inner());
        records
            .get(&ip)
            .and_then(|r| r.locked_until)
            .and_then(|until| until.checked_duration_since(now))
            .filter(|wait| !wait.is_zero())
    }

    /// Records a failed attempt; returns the lock-out it starts, if any.
    pub fn failed(&self, ip: IpAddr, now: Instant) -> Option<Duration> {
        let mut records = self.records.lock().unwrap_or_else(|e| e.into_inner());
        if records.len() >= self.policy.max_tracked && !records.contains_key(&ip) {
            let forget_after = self.policy.forget_after;
            records.retain(|_, r| now.saturating_duration_since(r.last_failure) < forget_after);
            if records.len() >= self.policy.max_tracked
                && let Some(stalest) = records
                    .iter()
                    .min_by_key(|(_, r)| r.last_failure)
                    .map(|(ip, _)| *ip)
            {
                records.remove(&stalest);
            }
        }
        let record = records.entry(ip).or_insert(Record {
            failures: 0,
            last_failure: now,
            locked_until: None,
        });
        if now.saturating_duration_since(record.last_failure) >= self.policy.forget_after {
            record.failures = 0;
        }
        record.failures += 1;
        record.last_failure = now;
        let over = record.failures.saturating_sub(self.policy.free_failures);
        if over == 0 {
            return None;
        }
        let lockout = self
            .policy
            .base_lockout
            .saturating_mul(1u32 << (over - 1).min(20))
            .min(self.policy.max_lockout);
        record.locked_until = Some(now + lockout);
        Some(lockout)
    }

    /// A successful login clears the address's record.
    pub fn succeeded(&self, ip: IpAddr) {
        let mut records = self.records.lock().unwrap_or_else(|e| e.into_inner());
        records.remove(&ip);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([192, 0, 2, last])
    }

    fn throttle() -> LoginThrottle {
        LoginThrottle::new(ThrottlePolicy {
            free_failures: 3,
            base_lockout: Duration::from_secs(2),
            max_lockout: Duration::from_secs(10),
            forget_after: Duration::from_secs(60),
            max_tracked: 4,
        })
    }

    #[test]
    fn failures_below_the_allowance_do_not_lock() {
        let t = throttle();
        let now = Instant::now();
        for _ in 0..3 {
            assert_eq!(t.failed(ip(1), now), None);
        }
        assert_eq!(t.locked(ip(1), now), None);
    }

    #[test]
    fn lockout_doubles_with_each_failure_up_to_the_maximum() {
        let t = throttle();
        let now = Instant::now();
        for _ in 0..3 {
            t.failed(ip(1), now);
        }
        assert_eq!(t.failed(ip(1), now), Some(Duration::from_secs(2)));
        assert_eq!(t.failed(ip(1), now), Some(Duration::from_secs(4)));
        assert_eq!(t.failed(ip(1), now), Some(Duration::from_secs(8)));
        assert_eq!(t.failed(ip(1), now), Some(Duration::from_secs(10)));
        assert_eq!(t.locked(ip(1), now), Some(Duration::from_secs(10)));
        assert_eq!(t.locked(ip(1), now + Duration::from_secs(10)), None);
    }

    #[test]
    fn other_addresses_are_not_affected() {
        let t = throttle();
        let now = Instant::now();
        for _ in 0..5 {
            t.failed(ip(1), now);
        }
        assert!(t.locked(ip(1), now).is_some());
        assert_eq!(t.locked(ip(2), now), None);
    }

    #[test]
    fn success_clears_the_record() {
        let t = throttle();
        let now = Instant::now();
        for _ in 0..3 {
            t.failed(ip(1), now);
        }
        t.succeeded(ip(1));
        assert_eq!(t.failed(ip(1), now), None);
    }

    #[test]
    fn old_failures_are_forgotten() {
        let t = throttle();
        let now = Instant::now();
        for _ in 0..3 {
            t.failed(ip(1), now);
        }
        assert_eq!(t.failed(ip(1), now + Duration::from_secs(61)), None);
    }

    #[test]
    fn the_number_of_tracked_addresses_is_bounded() {
        let t = throttle();
        let now = Instant::now();
        for last in 0..20 {
            t.failed(ip(last), now + Duration::from_millis(u64::from(last)));
        }
        let tracked = t.records.lock().map(|r| r.len()).unwrap_or_default();
        assert!(tracked <= 4, "{tracked}");
    }
}
