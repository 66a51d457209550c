//! Waiting on a condition instead of sleeping: every wait looks again every [`POLL_INTERVAL`]
//! until its check holds or its time limit has passed, and a wait that times out says what it
//! was waiting for ("timed out after 5s waiting for the proxy to apply the saved config").
//!
//! [`eventually`] fails the test on a timeout; [`wait_until`] and [`wait_for`] hand the timeout
//! back, for callers that add to the message (a log) or go on regardless; [`wait_until_blocking`]
//! is the same wait for code that is not async (a `Drop`, a blocking thread).

use std::fmt;
use std::future::Future;
use std::time::{Duration, Instant};

/// How often every wait looks again.
pub const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// A condition that did not hold within its time limit.
#[derive(Debug, Clone)]
pub struct TimedOut {
    what: String,
    limit: Duration,
}

impl fmt::Display for TimedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "timed out after {:?} waiting for {}",
            self.limit, self.what
        )
    }
}

impl std::error::Error for TimedOut {}

/// Polls `check` until it gives a value, or `limit` has passed.
pub async fn wait_for<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> Result<T, TimedOut>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return Ok(value);
        }
        if Instant::now() >= deadline {
            return Err(TimedOut {
                what: what.to_string(),
                limit,
            });
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// Polls `check` until it holds, or `limit` has passed.
pub async fn wait_until<F, Fut>(what: &str, limit: Duration, mut check: F) -> Result<(), TimedOut>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    wait_for(what, limit, || {
        let holds = check();
        async move { holds.await.then_some(()) }
    })
    .await
}

/// Polls `check` until it holds; fails the test, naming `what`, once `limit` has passed.
pub async fn eventually<F, Fut>(what: &str, limit: Duration, check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    if let Err(timed_out) = wait_until(what, limit, check).await {
        panic!("{timed_out}");
    }
}

/// [`wait_until`] for code that may block its thread.
pub fn wait_until_blocking(
    what: &str,
    limit: Duration,
    mut check: impl FnMut() -> bool,
) -> Result<(), TimedOut> {
    let deadline = Instant::now() + limit;
    loop {
        if check() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(TimedOut {
                what: what.to_string(),
                limit,
            });
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[tokio::test]
    async fn a_wait_returns_as_soon_as_its_check_holds() {
        let calls = Cell::new(0);
        let value = wait_for("the third call", Duration::from_secs(5), || {
            calls.set(calls.get() + 1);
            let n = calls.get();
            async move { (n == 3).then_some(n) }
        })
        .await;
        assert_eq!(value.ok(), Some(3));
    }

    #[tokio::test]
    async fn a_timeout_names_what_was_awaited() {
        let started = Instant::now();
        let err = wait_until(
            "a check that never holds",
            Duration::from_millis(60),
            || async { false },
        )
        .await
        .expect_err("never holds");
        assert!(started.elapsed() >= Duration::from_millis(60));
        assert_eq!(
            err.to_string(),
            "timed out after 60ms waiting for a check that never holds"
        );
    }

    #[tokio::test]
    #[should_panic(expected = "timed out after 40ms waiting for the impossible")]
    async fn eventually_fails_the_test_on_a_timeout() {
        eventually("the impossible", Duration::from_millis(40), || async {
            false
        })
        .await;
    }

    #[test]
    fn the_blocking_wait_polls_too() {
        let mut calls = 0;
        let waited = wait_until_blocking("the second call", Duration::from_secs(5), || {
            calls += 1;
            calls == 2
        });
        assert!(waited.is_ok());
        let err = wait_until_blocking("nothing", Duration::from_millis(30), || false)
            .expect_err("never holds");
        assert!(err.to_string().ends_with("waiting for nothing"));
    }
}
