//! One deployment's health, shared by every request and kept across reloads: cooling after a
//! 429 until the time the upstream gave, and a circuit breaker for failures in a row (open for a
//! growing interval, then one trial request). Its counters feed `/stats` and `/metrics`.
//! Time is passed in, so the state machine is tested without waiting.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use crate::config::Failover;
use crate::ops::contract::DeploymentState;

/// Why an attempt failed, as counted per deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureClass {
    Unreachable,
    Timeout,
    Upstream5xx,
    /// 408 and 409: the upstream's trouble, not the client's.
    Upstream4xx,
    UpstreamAuth,
}

impl FailureClass {
    pub const ALL: [FailureClass; 5] = [
        FailureClass::Unreachable,
        FailureClass::Timeout,
        FailureClass::Upstream5xx,
        FailureClass::Upstream4xx,
        FailureClass::UpstreamAuth,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FailureClass::Unreachable => "unreachable",
            FailureClass::Timeout => "timeout",
            FailureClass::Upstream5xx => "upstream_5xx",
            FailureClass::Upstream4xx => "upstream_4xx",
            FailureClass::UpstreamAuth => "upstream_auth",
        }
    }
}

#[derive(Debug, Default)]
pub struct DeploymentHealth {
    state: Mutex<State>,
    counters: Counters,
}

#[derive(Debug, Default)]
struct State {
    cooling_until: Option<Instant>,
    consecutive_failures: u32,
    circuit: Circuit,
}

#[derive(Debug, Default, Clone, Copy)]
enum Circuit {
    #[default]
    Closed,
    /// Nothing goes through until `until`; then one trial.
    Open { until: Instant, open_for: Duration },
    /// A trial request is on its way.
    Trial { open_for: Duration },
}

#[derive(Debug, Default)]
struct Counters {
    requests: AtomicU64,
    succeeded: AtomicU64,
    throttled: AtomicU64,
    failures: [AtomicU64; FailureClass::ALL.len()],
    failovers_out: AtomicU64,
    cooling_ms: AtomicU64,
    ttfb_ms_sum: AtomicU64,
    ttfb_ms_max: AtomicU64,
}

/// Whether a deployment can take a request now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Availability {
    Available,
    /// Out until the given time (cooling, or an open circuit's wait).
    OutUntil(Instant),
    /// A trial request is on its way; out until it ends.
    TrialRunning,
}

/// Where a deployment stands, for the ops views.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Standing {
    pub state: DeploymentState,
    pub until: Option<Instant>,
    pub consecutive_failures: u32,
}

/// The counters of a deployment, read at once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CounterValues {
    pub requests: u64,
    pub succeeded: u64,
    pub throttled: u64,
    pub failures: BTreeMap<&'static str, u64>,
    pub failovers_out: u64,
    pub cooling_ms: u64,
    pub ttfb_ms_sum: u64,
    pub ttfb_ms_max: u64,
}

impl DeploymentHealth {
    pub fn availability(&self, now: Instant) -> Availability {
        self.lock().availability(now)
    }

    /// Claims the deployment for an attempt: true when it is available, or when its circuit's
    /// wait is over and this attempt becomes the one trial.
    pub fn begin(&self, now: Instant) -> bool {
        let mut state = self.lock();
        if state.availability(now) != Availability::Available {
            return false;
        }
        if let Circuit::Open { open_for, .. } = state.circuit {
            state.circuit = Circuit::Trial { open_for };
        }
        self.counters.requests.fetch_add(1, Relaxed);
        true
    }

    /// The deployment answered with something the pool passes to the client.
    pub fn succeeded(&self, ttfb: Duration) {
        let mut state = self.lock();
        state.consecutive_failures = 0;
        state.circuit = Circuit::Closed;
        drop(state);
        self.counters.succeeded.fetch_add(1, Relaxed);
        self.note_ttfb(ttfb);
    }

    /// A 429: out until `until`. A throttled deployment is healthy, so a trial it answered
    /// closes its circuit.
    pub fn throttled(&self, until: Instant, now: Instant, ttfb: Duration) {
        let mut state = self.lock();
        let cooling_from = state.cooling_until.filter(|t| *t > now).unwrap_or(now);
        let added = until.saturating_duration_since(cooling_from);
        if until > cooling_from {
            state.cooling_until = Some(until);
        }
        state.consecutive_failures = 0;
        state.circuit = Circuit::Closed;
        drop(state);
        self.counters.throttled.fetch_add(1, Relaxed);
        self.counters
            .cooling_ms
            .fetch_add(added.as_millis() as u64, Relaxed);
        self.note_ttfb(ttfb);
    }

    /// A failed attempt: a failed trial reopens the circuit for twice as long; enough failures
    /// in a row open it.
    pub fn failed(&self, class: FailureClass, now: Instant, failover: &Failover) {
        let mut state = self.lock();
        state.consecutive_failures = state.consecutive_failures.saturating_add(1);
        state.circuit = match state.circuit {
            Circuit::Trial { open_for } => {
                let open_for = (open_for * 2).min(failover.circuit_max_open);
                Circuit::Open {
                    until: now + open_for,
                    open_for,
                }
            }
            Circuit::Closed if state.consecutive_failures >= failover.circuit_failures => {
                Circuit::Open {
                    until: now + failover.circuit_open,
                    open_for: failover.circuit_open,
                }
            }
            other => other,
        };
        drop(state);
        self.counters.failures[class as usize].fetch_add(1, Relaxed);
    }

    /// An attempt that ended with no verdict (the client went away): a trial it held is given
    /// to the next request.
    pub fn abandoned(&self, now: Instant) {
        let mut state = self.lock();
        if let Circuit::Trial { open_for } = state.circuit {
            state.circuit = Circuit::Open {
                until: now,
                open_for,
            };
        }
    }

    pub fn failed_over(&self) {
        self.counters.failovers_out.fetch_add(1, Relaxed);
    }

    pub fn standing(&self, now: Instant) -> Standing {
        let state = self.lock();
        let cooling = state.cooling_until.filter(|t| *t > now);
        let (state_now, until) = match (state.circuit, cooling) {
            (Circuit::Open { until, .. }, _) if until > now => {
                (DeploymentState::CircuitOpen, Some(until))
            }
            (Circuit::Open { .. } | Circuit::Trial { .. }, _) => (DeploymentState::HalfOpen, None),
            (Circuit::Closed, Some(until)) => (DeploymentState::Cooling, Some(until)),
            (Circuit::Closed, None) => (DeploymentState::Available, None),
        };
        Standing {
            state: state_now,
            until,
            consecutive_failures: state.consecutive_failures,
        }
    }

    pub fn counters(&self) -> CounterValues {
        let c = &self.counters;
        CounterValues {
            requests: c.requests.load(Relaxed),
            succeeded: c.succeeded.load(Relaxed),
            throttled: c.throttled.load(Relaxed),
            failures: FailureClass::ALL
                .iter()
                .map(|class| (class.as_str(), c.failures[*class as usize].load(Relaxed)))
                .filter(|(_, n)| *n > 0)
                .collect(),
            failovers_out: c.failovers_out.load(Relaxed),
            cooling_ms: c.cooling_ms.load(Relaxed),
            ttfb_ms_sum: c.ttfb_ms_sum.load(Relaxed),
            ttfb_ms_max: c.ttfb_ms_max.load(Relaxed),
        }
    }

    fn note_ttfb(&self, ttfb: Duration) {
        let ms = ttfb.as_millis() as u64;
        self.counters.ttfb_ms_sum.fetch_add(ms, Relaxed);
        self.counters.ttfb_ms_max.fetch_max(ms, Relaxed);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl State {
    fn availability(&self, now: Instant) -> Availability {
        match self.circuit {
            Circuit::Open { until, .. } if until > now => return Availability::OutUntil(until),
            Circuit::Trial { .. } => return Availability::TrialRunning,
            _ => {}
        }
        match self.cooling_until {
            Some(until) if until > now => Availability::OutUntil(until),
            _ => Availability::Available,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failover() -> Failover {
        Failover {
            cooldown: Duration::from_secs(10),
            circuit_failures: 3,
            circuit_open: Duration::from_secs(5),
            circuit_max_open: Duration::from_secs(12),
        }
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn a_429_cools_the_deployment_until_the_given_time_and_no_longer() {
        let h = DeploymentHealth::default();
        let t0 = Instant::now();
        assert!(h.begin(t0));
        h.throttled(t0 + Duration::from_millis(1500), t0, Duration::ZERO);
        assert_eq!(
            h.availability(t0 + secs(1)),
            Availability::OutUntil(t0 + Duration::from_millis(1500))
        );
        assert_eq!(h.standing(t0 + secs(1)).state, DeploymentState::Cooling);
        assert_eq!(
            h.availability(t0 + Duration::from_millis(1500)),
            Availability::Available
        );
        assert_eq!(h.counters().throttled, 1);
        assert_eq!(h.counters().cooling_ms, 1500);
    }

    #[test]
    fn overlapping_cooldowns_count_their_time_once() {
        let h = DeploymentHealth::default();
        let t0 = Instant::now();
        h.throttled(t0 + secs(2), t0, Duration::ZERO);
        h.throttled(t0 + secs(3), t0 + secs(1), Duration::ZERO);
        h.throttled(t0 + secs(1), t0 + secs(1), Duration::ZERO);
        assert_eq!(h.counters().cooling_ms, 3000);
        assert_eq!(
            h.availability(t0 + secs(2)),
            Availability::OutUntil(t0 + secs(3))
        );
    }

    #[test]
    fn failures_in_a_row_open_the_circuit_then_one_trial_goes_through() {
        let (h, f) = (DeploymentHealth::default(), failover());
        let t0 = Instant::now();
        for _ in 0..2 {
            assert!(h.begin(t0));
            h.failed(FailureClass::Upstream5xx, t0, &f);
        }
        assert_eq!(h.availability(t0), Availability::Available);
        assert!(h.begin(t0));
        h.failed(FailureClass::Unreachable, t0, &f);
        assert_eq!(h.availability(t0), Availability::OutUntil(t0 + secs(5)));
        assert_eq!(h.standing(t0).state, DeploymentState::CircuitOpen);
        assert!(!h.begin(t0 + secs(4)));

        assert_eq!(h.standing(t0 + secs(5)).state, DeploymentState::HalfOpen);
        assert!(h.begin(t0 + secs(5)), "the trial");
        assert!(!h.begin(t0 + secs(5)), "only one trial at a time");
        assert_eq!(h.availability(t0 + secs(5)), Availability::TrialRunning);
        h.succeeded(Duration::from_millis(20));
        assert_eq!(h.availability(t0 + secs(5)), Availability::Available);
        assert_eq!(h.standing(t0 + secs(5)).consecutive_failures, 0);
        let counters = h.counters();
        assert_eq!(counters.failures["upstream_5xx"], 2);
        assert_eq!(counters.failures["unreachable"], 1);
        assert_eq!(counters.requests, 4);
    }

    #[test]
    fn a_failed_trial_reopens_for_twice_as_long_up_to_the_cap() {
        let (h, f) = (DeploymentHealth::default(), failover());
        let mut now = Instant::now();
        for _ in 0..3 {
            h.failed(FailureClass::Timeout, now, &f);
        }
        let mut expected = [secs(10), secs(12), secs(12)].into_iter();
        now += secs(5);
        for _ in 0..3 {
            assert!(h.begin(now));
            h.failed(FailureClass::Timeout, now, &f);
            let open_for = expected.next().expect("step");
            assert_eq!(h.availability(now), Availability::OutUntil(now + open_for));
            now += open_for;
        }
    }

    #[test]
    fn an_abandoned_trial_lets_the_next_request_try() {
        let (h, f) = (DeploymentHealth::default(), failover());
        let t0 = Instant::now();
        for _ in 0..3 {
            h.failed(FailureClass::Upstream5xx, t0, &f);
        }
        assert!(h.begin(t0 + secs(5)));
        h.abandoned(t0 + secs(6));
        assert!(h.begin(t0 + secs(6)));
    }

    #[test]
    fn a_trial_answered_with_429_closes_the_circuit_and_cools() {
        let (h, f) = (DeploymentHealth::default(), failover());
        let t0 = Instant::now();
        for _ in 0..3 {
            h.failed(FailureClass::Upstream5xx, t0, &f);
        }
        assert!(h.begin(t0 + secs(5)));
        h.throttled(t0 + secs(7), t0 + secs(5), Duration::ZERO);
        assert_eq!(h.standing(t0 + secs(6)).state, DeploymentState::Cooling);
        assert_eq!(h.availability(t0 + secs(7)), Availability::Available);
    }
}
