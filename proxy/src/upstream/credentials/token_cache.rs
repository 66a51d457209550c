//! The Entra ID token of one credential and scope: fetched at start and refreshed in the
//! background ahead of expiry, single-flight (a burst at expiry costs one token request), with
//! backoff after failures while a still-valid token keeps serving. In steady state no request
//! waits for a token. Never logs a token.

use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant, SystemTime};

use actix_web::http::header::HeaderValue;

use super::CredentialError;
use super::entra::{EntraSource, EntraToken};
use crate::config::AuthMode;

/// Longest a single token fetch may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(30);
/// A token this close to expiry is not handed out (a tenth of the lifetime for short tokens).
const EXPIRY_MARGIN: Duration = Duration::from_secs(10);
const BACKOFF_FIRST: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// The refresher wakes at least this often to re-check its schedule.
const REFRESHER_MAX_SLEEP: Duration = Duration::from_secs(60);

struct Token {
    header: HeaderValue,
    expires_at: Instant,
    /// Handed out until then; a little before `expires_at` so it does not expire in flight.
    usable_until: Instant,
    expires_at_system: SystemTime,
    refresh_at: Instant,
}

#[derive(Default)]
struct State {
    token: Option<Token>,
    /// Bumped by every finished fetch, so waiters can tell one happened while they queued.
    generation: u64,
    last_error: Option<String>,
    failures: u32,
    retry_at: Option<Instant>,
    fetches: u64,
}

pub struct TokenCache {
    source: EntraSource,
    state: Mutex<State>,
    fetch_lock: tokio::sync::Mutex<()>,
}

impl TokenCache {
    /// A cache whose first fetch starts now, in the background.
    pub fn start(source: EntraSource) -> Arc<TokenCache> {
        let cache = Arc::new(TokenCache {
            source,
            state: Mutex::new(State::default()),
            fetch_lock: tokio::sync::Mutex::new(()),
        });
        tokio::spawn(refresher(Arc::downgrade(&cache)));
        cache
    }

    pub fn mode(&self) -> AuthMode {
        self.source.mode()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The `Authorization` value to send; waits only when no valid token is held.
    pub async fn header(&self, request_id: &str) -> Result<HeaderValue, CredentialError> {
        let seen = {
            let state = self.state();
            if let Some(token) = usable(&state) {
                return Ok(token.header.clone());
            }
            if state.retry_at.is_some_and(|at| Instant::now() < at) {
                return Err(self.error(&state));
            }
            state.generation
        };
        self.fetch(seen, Some(request_id)).await
    }

    /// Forgets `refused` (the upstream answered 401 with it) so the next request fetches anew.
    pub fn reject(&self, refused: &HeaderValue, request_id: &str) {
        let mut state = self.state();
        if state.token.as_ref().is_some_and(|t| t.header == *refused) {
            state.token = None;
            state.retry_at = None;
            tracing::info!(mode = %self.mode(), request_id, "upstream refused the Entra ID token; fetching a new one");
        }
    }

    /// How many token requests this cache has made.
    pub fn fetches(&self) -> u64 {
        self.state().fetches
    }

    /// Fetches unless another fetch finished since `seen`; one fetch at a time. `request_id`:
    /// the request that waits for it (none for a background refresh), for the log.
    async fn fetch(
        &self,
        seen: u64,
        request_id: Option<&str>,
    ) -> Result<HeaderValue, CredentialError> {
        let _single_flight = self.fetch_lock.lock().await;
        {
            let state = self.state();
            if state.generation != seen {
                return usable(&state)
                    .map(|t| t.header.clone())
                    .ok_or_else(|| self.error(&state));
            }
        }
        let started = Instant::now();
        let result = match tokio::time::timeout(FETCH_TIMEOUT, self.source.fetch()).await {
            Ok(result) => result,
            Err(_) => Err(format!(
                "the token request did not finish within {} s",
                FETCH_TIMEOUT.as_secs()
            )),
        };
        let mut state = self.state();
        state.generation += 1;
        state.fetches += 1;
        match result.and_then(|token| to_cached(token, started)) {
            Ok(token) => {
                let header = token.header.clone();
                let lifetime_s = token
                    .expires_at
                    .saturating_duration_since(Instant::now())
                    .as_secs();
                state.token = Some(token);
                state.failures = 0;
                state.retry_at = None;
                state.last_error = None;
                tracing::info!(mode = %self.mode(), lifetime_s, request_id, "Entra ID token acquired");
                Ok(header)
            }
            Err(cause) => {
                state.failures += 1;
                let backoff = BACKOFF_FIRST
                    .saturating_mul(1 << state.failures.saturating_sub(1).min(6))
                    .min(BACKOFF_MAX);
                state.retry_at = Some(Instant::now() + backoff);
                tracing::warn!(mode = %self.mode(), error = %cause, retry_in_ms = backoff.as_millis() as u64, request_id, "Entra ID token request failed");
                state.last_error = Some(cause);
                usable(&state)
                    .map(|t| t.header.clone())
                    .ok_or_else(|| self.error(&state))
            }
        }
    }

    fn error(&self, state: &State) -> CredentialError {
        CredentialError {
            cause: state
                .last_error
                .clone()
                .unwrap_or_else(|| "no Entra ID token is available yet".into()),
        }
    }

    /// When the refresher should next act.
    fn next_refresh(&self) -> Instant {
        let state = self.state();
        match (&state.token, state.retry_at) {
            (_, Some(retry_at)) => retry_at,
            (Some(token), None) => token.refresh_at,
            (None, None) => Instant::now(),
        }
    }

    pub fn expires_at(&self) -> Option<SystemTime> {
        self.state().token.as_ref().map(|t| t.expires_at_system)
    }
}

fn usable(state: &State) -> Option<&Token> {
    state
        .token
        .as_ref()
        .filter(|t| Instant::now() < t.usable_until)
}

/// Refresh when a quarter of the lifetime or five minutes remain, whichever comes first, but
/// never later than halfway through a short-lived token.
fn refresh_lead(lifetime: Duration) -> Duration {
    (lifetime / 4)
        .max(Duration::from_secs(300))
        .min(lifetime / 2)
}

fn to_cached(token: EntraToken, requested_at: Instant) -> Result<Token, String> {
    let lifetime = token
        .expires_at
        .duration_since(SystemTime::now())
        .map_err(|_| "the token service returned a token that has already expired".to_string())?;
    let mut header = HeaderValue::from_str(&format!("Bearer {}", token.token)).map_err(|_| {
        "the token service returned a token that is not a valid header value".to_string()
    })?;
    header.set_sensitive(true);
    let now = Instant::now();
    let expires_at = now + lifetime;
    // Measured from the request, so a slow token service does not push the refresh late.
    let refresh_at = (requested_at + lifetime)
        .checked_sub(refresh_lead(lifetime))
        .unwrap_or(now);
    Ok(Token {
        header,
        expires_at,
        usable_until: expires_at - EXPIRY_MARGIN.min(lifetime / 10),
        expires_at_system: token.expires_at,
        refresh_at,
    })
}

async fn refresher(cache: Weak<TokenCache>) {
    loop {
        let Some(strong) = cache.upgrade() else {
            return;
        };
        let due = strong.next_refresh();
        drop(strong);
        let now = Instant::now();
        if due > now {
            tokio::time::sleep((due - now).min(REFRESHER_MAX_SLEEP)).await;
            continue;
        }
        let Some(strong) = cache.upgrade() else {
            return;
        };
        let seen = strong.state().generation;
        // Errors are logged and kept by `fetch`; the loop retries after its backoff.
        let _ = strong.fetch(seen, None).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_lead_is_a_quarter_or_five_minutes_whichever_is_longer() {
        assert_eq!(
            refresh_lead(Duration::from_secs(3600)),
            Duration::from_secs(900)
        );
        assert_eq!(
            refresh_lead(Duration::from_secs(1200)),
            Duration::from_secs(300)
        );
        assert_eq!(refresh_lead(Duration::from_secs(8)), Duration::from_secs(4));
    }
}
