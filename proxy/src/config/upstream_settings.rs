//! `server.upstream`: timeouts, retries and connection pool of the gateway → Azure leg. Pool
//! keys that have no counterpart in this gateway are noted as ignored.

use std::time::Duration;

use super::issues::{Checker, DAY_MS, HOUR_MS};
use super::raw::RawUpstreamSettings;

/// Timeouts, retries and pool of the gateway → Azure leg.
#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamSettings {
    /// TCP connect and TLS handshake, nothing more.
    pub connect_timeout: Duration,
    /// The whole non-streaming exchange, body included.
    pub request_timeout: Duration,
    /// From sending the request until the response head arrives.
    pub first_byte_timeout: Duration,
    /// Longest gap between two chunks of a response body.
    pub idle_timeout: Duration,
    pub max_retries: u32,
    pub retry_base: Duration,
    pub retry_max: Duration,
    pub retry_statuses: Vec<u16>,
    pub pool: Pool,
    pub failover: Failover,
}

/// How a deployment pool treats a throttled or failing deployment.
#[derive(Debug, Clone, PartialEq)]
pub struct Failover {
    /// How long a deployment that answered 429 without saying until when is left out.
    pub cooldown: Duration,
    /// Failures in a row that open a deployment's circuit.
    pub circuit_failures: u32,
    /// How long the circuit first stays open; doubled each time a trial request fails.
    pub circuit_open: Duration,
    pub circuit_max_open: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Pool {
    /// Keep-alive connections one worker keeps to the upstreams; requests beyond that many in
    /// flight go out on a connection of their own, closed after the answer. 0 means no limit.
    pub connections: usize,
    pub keep_alive: Duration,
    pub max_lifetime: Duration,
}

pub(super) fn parse(check: &mut Checker, u: &RawUpstreamSettings) -> UpstreamSettings {
    let p = "server.upstream";
    let retry_base = check.millis(&format!("{p}.retryBaseMs"), u.retry_base_ms, 0, HOUR_MS);
    let retry_max = check.millis(&format!("{p}.retryMaxMs"), u.retry_max_ms, 0, HOUR_MS);
    if retry_base > retry_max {
        check.fail(
            format!("{p}.retryBaseMs"),
            "must not be greater than retryMaxMs",
        );
    }
    let mut retry_statuses = Vec::with_capacity(u.retry_statuses.len());
    for (i, status) in u.retry_statuses.iter().enumerate() {
        let status = check.range(&format!("{p}.retryStatuses[{i}]"), *status, 100, 599);
        retry_statuses.push(u16::try_from(status).unwrap_or(500));
    }

    let pool = &u.pool;
    let pp = "server.upstream.pool";
    if pool.headers_timeout_ms.is_some() {
        check.ignore(format!(
            "{pp}.headersTimeoutMs is not used: {p}.firstByteTimeoutMs bounds the wait for response headers"
        ));
    }
    if pool.body_timeout_ms.is_some() {
        check.ignore(format!(
            "{pp}.bodyTimeoutMs is not used: {p}.idleTimeoutMs bounds the gap between body chunks"
        ));
    }
    if pool.pipelining.is_some_and(|n| n != 1) {
        check.ignore(format!(
            "{pp}.pipelining is not used: requests are never pipelined on one connection"
        ));
    }
    let f = &u.failover;
    let fp = "server.upstream.failover";
    let circuit_open = check.millis(
        &format!("{fp}.circuitOpenMs"),
        f.circuit_open_ms,
        1,
        HOUR_MS,
    );
    let circuit_max_open = check.millis(
        &format!("{fp}.circuitMaxOpenMs"),
        f.circuit_max_open_ms,
        1,
        DAY_MS,
    );
    if circuit_open > circuit_max_open {
        check.fail(
            format!("{fp}.circuitOpenMs"),
            "must not be greater than circuitMaxOpenMs",
        );
    }
    let failover = Failover {
        cooldown: check.millis(&format!("{fp}.cooldownMs"), f.cooldown_ms, 1, HOUR_MS),
        circuit_failures: check.range(
            &format!("{fp}.circuitFailures"),
            f.circuit_failures,
            1,
            1000,
        ) as u32,
        circuit_open,
        circuit_max_open,
    };
    UpstreamSettings {
        failover,
        connect_timeout: check.millis(
            &format!("{p}.connectTimeoutMs"),
            u.connect_timeout_ms,
            1,
            10 * 60_000,
        ),
        request_timeout: check.millis(
            &format!("{p}.requestTimeoutMs"),
            u.request_timeout_ms,
            1,
            DAY_MS,
        ),
        first_byte_timeout: check.millis(
            &format!("{p}.firstByteTimeoutMs"),
            u.first_byte_timeout_ms,
            1,
            DAY_MS,
        ),
        idle_timeout: check.millis(&format!("{p}.idleTimeoutMs"), u.idle_timeout_ms, 1, DAY_MS),
        max_retries: check.range(&format!("{p}.maxRetries"), u.max_retries, 0, 10) as u32,
        retry_base,
        retry_max,
        retry_statuses,
        pool: Pool {
            connections: check.range(&format!("{pp}.connections"), pool.connections, 0, 1_000_000)
                as usize,
            keep_alive: check.millis(
                &format!("{pp}.keepAliveTimeoutMs"),
                pool.keep_alive_timeout_ms,
                0,
                DAY_MS,
            ),
            max_lifetime: check.millis(
                &format!("{pp}.keepAliveMaxTimeoutMs"),
                pool.keep_alive_max_timeout_ms,
                0,
                DAY_MS,
            ),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{issue_paths, load_value, sample};
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_are_the_originals() {
        let config = load_value(sample()).expect("valid");
        let u = &config.server.upstream;
        assert_eq!(u.connect_timeout, Duration::from_secs(10));
        assert_eq!(u.request_timeout, Duration::from_secs(900));
        assert_eq!(u.first_byte_timeout, Duration::from_secs(300));
        assert_eq!(u.idle_timeout, Duration::from_secs(900));
        assert_eq!(u.max_retries, 0);
        assert_eq!(u.pool.keep_alive, Duration::from_secs(60));
        assert!(config.ignored.is_empty(), "{:?}", config.ignored);
    }

    #[test]
    fn failover_defaults_and_limits() {
        let config = load_value(sample()).expect("valid");
        let f = &config.server.upstream.failover;
        assert_eq!(f.cooldown, Duration::from_secs(10));
        assert_eq!(f.circuit_failures, 3);
        assert_eq!(f.circuit_open, Duration::from_secs(5));
        assert_eq!(f.circuit_max_open, Duration::from_secs(300));
        let mut v = sample();
        v["server"]["upstream"]["failover"] =
            json!({"circuitFailures": 0, "circuitOpenMs": 9000, "circuitMaxOpenMs": 1000});
        assert_eq!(
            issue_paths(v),
            vec![
                "server.upstream.failover.circuitOpenMs",
                "server.upstream.failover.circuitFailures"
            ]
        );
    }

    #[test]
    fn retry_base_above_max_is_refused() {
        let mut v = sample();
        v["server"]["upstream"] = json!({"retryBaseMs": 9000, "retryMaxMs": 1000});
        assert_eq!(issue_paths(v), vec!["server.upstream.retryBaseMs"]);
    }

    #[test]
    fn explicit_undici_only_pool_keys_are_reported_as_ignored() {
        let mut v = sample();
        v["server"]["upstream"] = json!({"pool": {"headersTimeoutMs": 1000, "pipelining": 4}});
        let config = load_value(v).expect("valid");
        assert_eq!(config.ignored.len(), 2);
    }
}
