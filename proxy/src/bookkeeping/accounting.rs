//! The one end-of-request hook: every request, however it ends, is counted in the statistics
//! and the usage history, charged to its key's limits, added to the recent-requests record and
//! logged once with its fields.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context as _;

use crate::bookkeeping::history::{History, Sample};
use crate::bookkeeping::recent::Recent;
use crate::bookkeeping::stats::{ErrorClass, Outcome, Stats};
use crate::config::RouteKey;
use crate::downstream::bounded::{MAX_MESSAGE_CHARS, bounded};
use crate::downstream::limits::{Charge, Limiter};
use crate::ops::contract::{RecentAttempt, RecentEntry, RecentOutcome};
use crate::process::clock::epoch_ms;
use crate::relay::usage::Usage;

/// What is known about one request, filled in as it proceeds.
#[derive(Debug)]
pub struct RequestRecord {
    pub arrived: SystemTime,
    pub started: Instant,
    pub request_id: String,
    pub route: RouteKey,
    pub key_id: Option<Arc<str>>,
    pub model: Option<String>,
    /// What the client asked for (bounded), shown in the recent requests when it is not a
    /// configured model the key may use; never a statistics key.
    pub requested_model: Option<String>,
    pub deployment: Option<String>,
    pub upstream: Option<String>,
    pub stream: bool,
    pub status: u16,
    pub upstream_request_id: Option<String>,
    pub ttfb: Option<Duration>,
    /// When a non-streaming exchange must be over.
    pub deadline: Option<Instant>,
    pub usage: Option<Usage>,
    /// The upstream attempts, in order.
    pub attempts: Vec<RecentAttempt>,
    /// Requests sent upstream, resends on a new connection included.
    pub sends: u32,
    /// Where the tokens the upstream reports are charged (keys with limits).
    pub charge: Option<Charge>,
}

impl RequestRecord {
    pub fn new(request_id: String, route: RouteKey) -> Self {
        RequestRecord {
            arrived: SystemTime::now(),
            started: Instant::now(),
            request_id,
            route,
            key_id: None,
            model: None,
            requested_model: None,
            deployment: None,
            upstream: None,
            stream: false,
            status: 0,
            upstream_request_id: None,
            ttfb: None,
            deadline: None,
            usage: None,
            attempts: Vec::new(),
            sends: 0,
            charge: None,
        }
    }
}

pub struct Accounting {
    pub stats: Stats,
    pub history: History,
    pub recent: Recent,
    /// The client keys' limits, with the budget use stats.json carried over.
    pub limiter: Arc<Limiter>,
}

impl Accounting {
    pub fn new(stats: Stats, history: History, recent: Recent) -> Arc<Self> {
        let limiter = Arc::new(Limiter::with_budgets(&stats.snapshot().budgets));
        Arc::new(Accounting {
            stats,
            history,
            recent,
            limiter,
        })
    }

    /// Writes the statistics and the budget use to stats.json, and the usage history to its
    /// files, where they changed. Blocking I/O.
    pub fn persist(&self, now_ms: u64) -> anyhow::Result<()> {
        self.stats.set_budgets(self.limiter.budgets());
        let stats = self.stats.persist().context("writing stats.json");
        let history = self
            .history
            .persist(now_ms)
            .context("writing the usage history");
        match (stats, history) {
            (Err(stats), Err(history)) => Err(stats.context(format!("and {history:#}"))),
            (stats, history) => stats.and(history),
        }
    }

    /// Closes a request's books, taking what the record of recent requests keeps out of
    /// `record`. `error` is a message safe to show operators (no secrets).
    fn finish(&self, record: &mut RequestRecord, outcome: Outcome, error: Option<String>) {
        // A message may quote the client's input; the log line and the entry keep a bounded part.
        let error = error.map(|message| match bounded(&message, MAX_MESSAGE_CHARS) {
            Cow::Borrowed(_) => message,
            Cow::Owned(cut) => cut,
        });
        let latency = record.started.elapsed();
        if let Some(charge) = record.charge.take() {
            charge.settle(record.usage.map_or(0, |u| u.total_tokens));
        }
        // Requests refused before a model was known count only in the totals.
        self.stats.record(
            record.model.as_deref(),
            record.key_id.as_deref(),
            outcome,
            record.usage,
            latency,
        );
        self.history.record(&Sample {
            model: record.model.as_deref(),
            key: record.key_id.as_deref(),
            upstream: record.upstream.as_deref(),
            deployment: record.deployment.as_deref(),
            outcome,
            status: record.status,
            usage: record.usage,
            latency,
            ttfb: record.ttfb,
        });
        let latency_ms = millis(latency);
        let ttfb_ms = record.ttfb.map(millis);
        let usage = record.usage.unwrap_or_default();
        let (recent_outcome, class) = match outcome {
            Outcome::Succeeded => (RecentOutcome::Ok, None),
            Outcome::Failed(class) => (RecentOutcome::Error, Some(class)),
            Outcome::Cancelled => (RecentOutcome::Cancelled, None),
        };
        macro_rules! log_request {
            ($level:ident) => {
                tracing::$level!(
                    request_id = %record.request_id,
                    client.key_id = record.key_id.as_deref(),
                    model = record.model.as_deref(),
                    deployment = record.deployment.as_deref(),
                    upstream = record.upstream.as_deref(),
                    route = record.route.as_str(),
                    stream = record.stream,
                    status = record.status,
                    outcome = recent_outcome.as_str(),
                    error.class = class.map(ErrorClass::as_str),
                    error.message = error.as_deref(),
                    upstream.request_id = record.upstream_request_id.as_deref(),
                    upstream.ttfb_ms = ttfb_ms,
                    attempts = record.attempts.len(),
                    sends = record.sends,
                    latency_ms,
                    tokens.prompt = usage.prompt_tokens,
                    tokens.completion = usage.completion_tokens,
                    tokens.cached = usage.cached_tokens,
                    "request finished"
                )
            };
        }
        match class {
            Some(ErrorClass::StreamInterrupted | ErrorClass::Upstream5xx) => log_request!(error),
            Some(_) => log_request!(warn),
            None => log_request!(info),
        }
        self.recent.push(RecentEntry {
            time_ms: epoch_ms(record.arrived),
            arrived: record.arrived,
            request_id: std::mem::take(&mut record.request_id),
            upstream_request_id: record.upstream_request_id.take(),
            key_id: record.key_id.as_deref().map(str::to_string),
            requested_model: record
                .requested_model
                .take()
                .filter(|_| record.model.is_none()),
            model: record.model.take(),
            deployment: record.deployment.take(),
            upstream: record.upstream.take(),
            route: record.route,
            stream: record.stream,
            status: record.status,
            latency_ms,
            ttfb_ms,
            usage: record.usage,
            outcome: recent_outcome,
            error,
            attempts: std::mem::take(&mut record.attempts),
        });
    }
}

/// A request whose books are open: closed once with its outcome, or, if it is dropped first
/// (the client went away), closed as cancelled.
pub struct OpenRequest {
    accounting: Arc<Accounting>,
    pub record: RequestRecord,
    closed: bool,
}

impl OpenRequest {
    pub fn new(accounting: Arc<Accounting>, record: RequestRecord) -> Self {
        OpenRequest {
            accounting,
            record,
            closed: false,
        }
    }

    pub fn close(&mut self, outcome: Outcome, error: Option<String>) {
        if !std::mem::replace(&mut self.closed, true) {
            self.accounting.finish(&mut self.record, outcome, error);
        }
    }
}

impl Drop for OpenRequest {
    fn drop(&mut self) {
        self.close(
            Outcome::Cancelled,
            Some("the client closed the connection".into()),
        );
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
