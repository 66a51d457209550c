//! A request's walk over its model's pool, before any byte has reached the client: the pool
//! picks a deployment; a 429 cools that deployment and a failure (connect error, timeout to the
//! first byte, 408, 409, 500, 502, 503, 504, upstream auth) counts against its circuit, and the
//! request moves at once to the next deployment. Any other answer goes to the client. When no
//! deployment is left, `maxRetries` decides whether to wait (the backoff, or until the first
//! deployment comes back) and walk the pool again; otherwise the client gets a 429 when every
//! deployment is cooling, else the last answer or failure.

use std::time::{Duration, Instant};

use actix_web::http::header::{HeaderName, HeaderValue};

use crate::config::RouteKey;
use crate::errors::ProxyError;
use crate::ops::contract::RecentAttempt;
use crate::rewrite::PreparedBody;
use crate::snapshot::Snapshot;
use crate::upstream::exchange::{self, AttemptError, UpstreamCall, UpstreamResponse};
use crate::upstream::pool::health::{DeploymentHealth, FailureClass};
use crate::upstream::pool::{ModelPool, Pick};
use crate::upstream::{retry, routing};

/// The outcome of an attempt whose answer went to the client.
const ANSWERED: &str = "answered";

/// The most attempts a request's record keeps.
const MAX_RECORDED_ATTEMPTS: usize = 32;

pub struct Dispatch<'a> {
    pub snapshot: &'a Snapshot,
    /// Index into the config's models.
    pub model: usize,
    pub route: RouteKey,
    pub client_query: &'a str,
    pub request_id: &'a str,
    pub headers: &'a [(HeaderName, HeaderValue)],
    pub body: &'a PreparedBody,
    /// When a non-streaming exchange must be over.
    pub deadline: Option<Instant>,
}

/// The answer the client gets, and the route its deployment speaks.
pub struct Dispatched {
    pub exchange: UpstreamResponse,
    pub speaks: RouteKey,
}

/// What the request's record keeps of its attempts.
#[derive(Debug)]
pub struct AttemptLog {
    started: Instant,
    pub attempts: Vec<RecentAttempt>,
    /// Requests sent upstream, resends included.
    pub sends: u32,
    /// The deployment of the last attempt: (upstream, deployment).
    pub last: Option<(String, String)>,
}

impl AttemptLog {
    pub fn new(started: Instant) -> AttemptLog {
        AttemptLog {
            started,
            attempts: Vec::new(),
            sends: 0,
            last: None,
        }
    }

    fn push(
        &mut self,
        request_id: &str,
        name: String,
        outcome: &str,
        status: Option<u16>,
        start: Instant,
    ) {
        if outcome != ANSWERED {
            tracing::debug!(
                request_id,
                deployment = %name,
                outcome,
                status,
                elapsed_ms = millis(start.elapsed()),
                "upstream attempt failed"
            );
        }
        if self.attempts.len() < MAX_RECORDED_ATTEMPTS {
            self.attempts.push(RecentAttempt {
                deployment: name,
                outcome: outcome.to_string(),
                status,
                start_ms: millis(start.saturating_duration_since(self.started)),
                duration_ms: millis(start.elapsed()),
            });
        }
    }
}

/// The last thing a deployment gave when the pool has no better.
enum Last {
    Answer(Dispatched),
    Failure(ProxyError),
}

/// What the pool makes of a response status.
enum Verdict {
    Deliver,
    Throttled,
    Failed(FailureClass),
}

fn judge(status: u16) -> Verdict {
    match status {
        429 => Verdict::Throttled,
        408 | 409 => Verdict::Failed(FailureClass::Upstream4xx),
        500 | 502 | 503 | 504 => Verdict::Failed(FailureClass::Upstream5xx),
        _ => Verdict::Deliver,
    }
}

fn failure_class(error: &ProxyError) -> FailureClass {
    match error {
        ProxyError::UpstreamTimeout { .. } => FailureClass::Timeout,
        ProxyError::UpstreamAuthFailed { .. } => FailureClass::UpstreamAuth,
        _ => FailureClass::Unreachable,
    }
}

pub async fn dispatch(d: Dispatch<'_>, log: &mut AttemptLog) -> Result<Dispatched, ProxyError> {
    let config = &d.snapshot.config;
    let model = &config.models[d.model];
    let pool = d.snapshot.pool(d.model);
    if pool.unconfigured() {
        return Err(routing::not_configured(config, model));
    }
    let settings = &config.server.upstream;
    let mut tried = vec![false; pool.deployments.len()];
    let mut retries = 0;
    let mut retryable = true;
    let mut last: Option<Last> = None;
    let mut previous: Option<usize> = None;
    loop {
        let Pick::Deployment(i) = pool.pick(&tried, Instant::now()) else {
            let now = Instant::now();
            let wait = match pool.next_return(now) {
                Some(back) if !pool.any_available(now) => back.saturating_duration_since(now),
                _ => retry::backoff(retries, settings),
            };
            if retryable && retries < settings.max_retries && wait <= settings.retry_max {
                if d.deadline.is_some_and(|deadline| now + wait >= deadline) {
                    return Err(ProxyError::UpstreamTimeout {
                        upstream: log.last.as_ref().map_or_else(String::new, |l| l.0.clone()),
                        what: format!(
                            "{} ms (retries included)",
                            settings.request_timeout.as_millis()
                        ),
                    });
                }
                tracing::debug!(
                    request_id = d.request_id,
                    delay_ms = millis(wait),
                    retry = retries,
                    "retrying the model's deployments"
                );
                actix_rt::time::sleep(wait).await;
                retries += 1;
                tried.fill(false);
                continue;
            }
            return give_up(pool, &model.id, last);
        };
        if let Some(p) = previous.replace(i).filter(|&p| p != i) {
            pool.health(p).failed_over();
        }
        tried[i] = true;
        let claim = Claim::new(pool.health(i));
        let deployment = &pool.deployments[i];
        let upstream = &config.upstreams[deployment.upstream];
        let target = routing::resolve(config, model, deployment, d.route, d.client_query);
        let name = format!("{}/{}", upstream.name, deployment.name);
        log.last = Some((upstream.name.clone(), deployment.name.clone()));
        // The previous answer is not needed any more: its connection is freed first.
        drop(last.take());
        let start = Instant::now();
        let result = exchange::send(UpstreamCall {
            request_id: d.request_id,
            upstream_name: &upstream.name,
            url: &target.url,
            headers: d.headers,
            body: d.body.for_deployment(&deployment.name),
            settings,
            credential: d.snapshot.credential(deployment.upstream),
            deadline: d.deadline,
        })
        .await;
        let now = Instant::now();
        match result {
            Ok(exchange) => {
                log.sends += exchange.sends;
                let status = exchange.response.status().as_u16();
                let ttfb = exchange.ttfb;
                let answer = Dispatched {
                    exchange,
                    speaks: target.speaks,
                };
                match judge(status) {
                    Verdict::Deliver => {
                        claim.settle().succeeded(ttfb);
                        log.push(d.request_id, name, ANSWERED, Some(status), start);
                        return Ok(answer);
                    }
                    Verdict::Throttled => {
                        let wait = retry::throttled_for(answer.exchange.response.headers())
                            .unwrap_or(settings.failover.cooldown);
                        claim.settle().throttled(now + wait, now, ttfb);
                        log.push(d.request_id, name, "throttled", Some(status), start);
                    }
                    Verdict::Failed(class) => {
                        claim.settle().failed(class, now, &settings.failover);
                        log.push(d.request_id, name, class.as_str(), Some(status), start);
                    }
                }
                retryable = settings.retry_statuses.contains(&status);
                last = Some(Last::Answer(answer));
            }
            Err(AttemptError {
                error,
                sends,
                retryable: connect_failure,
            }) => {
                log.sends += sends;
                let class = failure_class(&error);
                claim.settle().failed(class, now, &settings.failover);
                log.push(d.request_id, name, class.as_str(), None, start);
                retryable = connect_failure;
                last = Some(Last::Failure(error));
            }
        }
    }
}

/// The client's answer when no deployment is left to try.
fn give_up(pool: &ModelPool, model: &str, last: Option<Last>) -> Result<Dispatched, ProxyError> {
    let now = Instant::now();
    if let Some(back) = pool.all_cooling(now) {
        return Err(ProxyError::RateLimited {
            model: model.to_string(),
            retry_after: back.saturating_duration_since(now),
        });
    }
    match last {
        Some(Last::Answer(answer)) => Ok(answer),
        Some(Last::Failure(error)) => Err(error),
        None => Err(ProxyError::NoDeploymentAvailable {
            model: model.to_string(),
            retry_after: pool
                .next_return(now)
                .map(|back| back.saturating_duration_since(now)),
        }),
    }
}

/// A deployment claimed for an attempt: settled with the attempt's verdict, or, if the attempt
/// is dropped first (the client went away), given back.
struct Claim<'a> {
    health: &'a DeploymentHealth,
    settled: bool,
}

impl<'a> Claim<'a> {
    fn new(health: &'a DeploymentHealth) -> Self {
        Claim {
            health,
            settled: false,
        }
    }

    fn settle(mut self) -> &'a DeploymentHealth {
        self.settled = true;
        self.health
    }
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        if !self.settled {
            self.health.abandoned(Instant::now());
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
