//! The counters in a Redis every replica shares (`limits.redis`). An admission is one atomic
//! round trip (the script `admit.lua`, by EVALSHA, loaded again when Redis answers NOSCRIPT);
//! a charge is one pipelined INCRBY and PEXPIRE per counter. Every call gives up after
//! `limits.redisTimeoutMs` (250 ms unless set), so a hung Redis never holds a request longer.
//!
//! One multiplexed connection per replica carries every call (Redis answers them in order, so
//! it needs no more). With `redisAuth: "entra"` the connection signs in with a Microsoft Entra
//! token as the password, and again (`AUTH`) on the same connection whenever the token cache
//! holds a newer token, well before the old one expires. The first failed call marks Redis unreachable: from then on calls fail at
//! once, without waiting, while a background task connects again with a growing, jittered
//! delay. The log gets one warning per outage and one line when Redis is back.

pub mod keys;

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, RedisResult, Script};
use tokio::runtime::Handle;
use tokio::sync::watch;

use super::{Counts, periods};
use crate::config::{EntraAuth, FailMode, KeyLimits, Metered, Secret};
use crate::process::clock::now_ms;
use crate::upstream::credentials::{TokenCache, token_cache_for};

/// TCP, TLS and AUTH of a new connection (in the background, never on a request's time).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const RECONNECT_FIRST_DELAY: Duration = Duration::from_millis(100);
const RECONNECT_MAX_DELAY: Duration = Duration::from_secs(5);
/// How often a connection signed in with an Entra token looks for a newer token.
const TOKEN_CHECK_INTERVAL: Duration = Duration::from_secs(1);
/// How long a counter outlives its span, so that a replica whose clock lags a little still
/// finds it.
const GRACE_MS: u64 = 5_000;

const ADMISSION: &str = include_str!("admit.lua");

/// Redis did not answer (or is not connected); the caller falls back as `failMode` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unavailable;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Health {
    pub reachable: bool,
    /// Unix ms since which `reachable` holds (or since the store was set up).
    pub since_ms: u64,
}

pub struct RedisStore {
    /// The URL this store connects to, to tell when the config names another.
    url: Secret,
    client: Result<Client, String>,
    entra: Option<EntraSignIn>,
    link: ArcSwapOption<MultiplexedConnection>,
    health: Mutex<Health>,
    /// Set once the first connection attempt has ended, either way.
    tried: watch::Sender<bool>,
    fail_closed: AtomicBool,
    /// `limits.redisTimeoutMs`: the longest any call may take before Redis counts as
    /// unreachable.
    call_timeout_ms: AtomicU64,
    /// Failed calls and connection attempts, across every store the limiter had.
    errors: Arc<AtomicU64>,
    /// Where the connection's driver and the background work run: a runtime that lives as
    /// long as the process serves.
    runtime: Handle,
    admission: Script,
}

impl RedisStore {
    /// A store for `url`, signing in with Entra tokens of `entra` when given; it connects in the
    /// background at once.
    pub fn start(
        url: &Secret,
        entra: Option<&EntraAuth>,
        fail_mode: FailMode,
        call_timeout: Duration,
        runtime: Handle,
        errors: Arc<AtomicU64>,
    ) -> Arc<RedisStore> {
        // rediss:// builds its TLS settings with the process's default provider: make it the
        // one the rest of the gateway uses (a no-op when one is already installed).
        let _ = rustls::crypto::ring::default_provider().install_default();
        // The config's validation parses the URL the same way; this cannot fail for a
        // validated config. The message never quotes the URL (it may hold a password).
        let client = Client::open(url.expose())
            .map_err(|_| "limits.redis is not a valid Redis URL".to_string());
        let entra = entra.map(|auth| {
            let _in_runtime = runtime.enter();
            EntraSignIn {
                auth: auth.clone(),
                cache: token_cache_for(auth.clone()),
                signed_in_with: Mutex::new(None),
            }
        });
        let signs_in_with_tokens = entra.is_some();
        let store = Arc::new(RedisStore {
            url: url.clone(),
            client,
            entra,
            link: ArcSwapOption::empty(),
            health: Mutex::new(Health {
                reachable: false,
                since_ms: now_ms(),
            }),
            tried: watch::Sender::new(false),
            fail_closed: AtomicBool::new(fail_mode == FailMode::Closed),
            call_timeout_ms: AtomicU64::new(millis(call_timeout)),
            errors,
            runtime,
            admission: Script::new(ADMISSION),
        });
        store.reconnect_in_background();
        if signs_in_with_tokens {
            store.runtime.spawn(keep_signed_in(Arc::downgrade(&store)));
        }
        store
    }

    pub fn serves(&self, url: &Secret, entra: Option<&EntraAuth>) -> bool {
        self.url == *url && self.entra.as_ref().map(|e| &e.auth) == entra
    }

    /// Applies a reloaded config's `failMode` and `redisTimeoutMs` (the next connection takes
    /// the timeout as its response timeout too).
    pub fn follow(&self, fail_mode: FailMode, call_timeout: Duration) {
        self.fail_closed
            .store(fail_mode == FailMode::Closed, Ordering::Relaxed);
        self.call_timeout_ms
            .store(millis(call_timeout), Ordering::Relaxed);
    }

    fn call_timeout(&self) -> Duration {
        Duration::from_millis(self.call_timeout_ms.load(Ordering::Relaxed))
    }

    pub fn health(&self) -> Health {
        *lock(&self.health)
    }

    /// [`charge`](Self::charge), sent without waiting for it, while Redis is connected.
    pub fn charge_in_background(
        self: &Arc<Self>,
        id: Arc<str>,
        limits: KeyLimits,
        tokens: u64,
        now_ms: u64,
    ) {
        if self.link.load().is_none() {
            return;
        }
        let store = self.clone();
        self.runtime.spawn(async move {
            // A failure is counted and logged as the store's own.
            let _ = store.charge(&id, &limits, tokens, now_ms).await;
        });
    }

    /// Checks the key's windows and budget and, when nothing is spent, counts the request:
    /// the counts as they were before it, which `decide()` turns into the same verdict.
    pub async fn admit(
        self: &Arc<Self>,
        id: &str,
        limits: &KeyLimits,
        now_ms: u64,
        estimate: u64,
    ) -> Result<Counts, Unavailable> {
        let connection = self.connection().await.ok_or(Unavailable)?;
        let prefix = keys::key_prefix(id);
        let mut invocation = self.admission.prepare_invoke();
        invocation.arg(limits.windows.len());
        let mut ends = Vec::with_capacity(limits.windows.len());
        for window in &limits.windows {
            let (start, end) = periods::window(now_ms, window.per);
            let kind = match window.metered {
                Metered::Requests => "r",
                Metered::Tokens => "t",
            };
            invocation
                .key(keys::window(&prefix, window, start))
                .arg(kind)
                .arg(window.limit)
                .arg(end.saturating_sub(now_ms) + GRACE_MS);
            ends.push(end);
        }
        let budget_end = limits.budget.as_ref().map(|budget| {
            let (start, end) = periods::budget(now_ms, budget);
            invocation
                .key(keys::budget(&prefix, budget, start))
                .arg(budget.tokens);
            end
        });
        invocation.arg(estimate);
        let mut conn = (*connection).clone();
        let reply: Vec<u64> = self
            .call(&connection, invocation.invoke_async(&mut conn))
            .await?;
        let windows = ends.len();
        if reply.len() != windows + 2 {
            self.lost(&connection, "the admission script gave an unexpected reply");
            return Err(Unavailable);
        }
        Ok(Counts {
            windows: reply[1..=windows].iter().copied().zip(ends).collect(),
            budget: budget_end.map(|end| (reply[windows + 1], end)),
        })
    }

    /// Adds `tokens` to the key's token windows and budget.
    pub async fn charge(
        self: &Arc<Self>,
        id: &str,
        limits: &KeyLimits,
        tokens: u64,
        now_ms: u64,
    ) -> Result<(), Unavailable> {
        let connection = self.link.load_full().ok_or(Unavailable)?;
        let prefix = keys::key_prefix(id);
        let mut pipe = redis::pipe();
        let mut add = |key: String, end: u64| {
            let ttl = end.saturating_sub(now_ms) + GRACE_MS;
            pipe.incr(&key, tokens)
                .ignore()
                .pexpire(&key, i64::try_from(ttl).unwrap_or(i64::MAX))
                .ignore();
        };
        for window in &limits.windows {
            if window.metered == Metered::Tokens {
                let (start, end) = periods::window(now_ms, window.per);
                add(keys::window(&prefix, window, start), end);
            }
        }
        if let Some(budget) = &limits.budget {
            let (start, end) = periods::budget(now_ms, budget);
            add(keys::budget(&prefix, budget, start), end);
        }
        let mut conn = (*connection).clone();
        self.call(&connection, pipe.query_async::<()>(&mut conn))
            .await
    }

    /// The counts of several keys, read in one round trip without counting anything.
    pub async fn read(
        self: &Arc<Self>,
        keys: &[(&str, &KeyLimits)],
        now_ms: u64,
    ) -> Result<Vec<Counts>, Unavailable> {
        let connection = self.link.load_full().ok_or(Unavailable)?;
        let mut pipe = redis::pipe();
        let mut shapes = Vec::with_capacity(keys.len());
        for (id, limits) in keys {
            let prefix = keys::key_prefix(id);
            let mut ends = Vec::with_capacity(limits.windows.len());
            for window in &limits.windows {
                let (start, end) = periods::window(now_ms, window.per);
                pipe.get(keys::window(&prefix, window, start));
                ends.push(end);
            }
            let budget_end = limits.budget.as_ref().map(|budget| {
                let (start, end) = periods::budget(now_ms, budget);
                pipe.get(keys::budget(&prefix, budget, start));
                end
            });
            shapes.push((ends, budget_end));
        }
        if shapes.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = (*connection).clone();
        let values: Vec<Option<u64>> = self.call(&connection, pipe.query_async(&mut conn)).await?;
        let mut values = values.into_iter().map(Option::unwrap_or_default);
        Ok(shapes
            .into_iter()
            .map(|(ends, budget_end)| Counts {
                windows: ends
                    .into_iter()
                    .map(|end| (values.next().unwrap_or_default(), end))
                    .collect(),
                budget: budget_end.map(|end| (values.next().unwrap_or_default(), end)),
            })
            .collect())
    }

    /// The connection, waiting (within the call timeout) for the first attempt to connect.
    async fn connection(&self) -> Option<Arc<MultiplexedConnection>> {
        if let Some(connection) = self.link.load_full() {
            return Some(connection);
        }
        let mut tried = self.tried.subscribe();
        let _ = tokio::time::timeout(self.call_timeout(), tried.wait_for(|done| *done)).await;
        self.link.load_full()
    }

    /// Runs one call on `connection` within the call timeout; a failure marks Redis
    /// unreachable.
    async fn call<T>(
        self: &Arc<Self>,
        connection: &Arc<MultiplexedConnection>,
        call: impl Future<Output = RedisResult<T>>,
    ) -> Result<T, Unavailable> {
        let timeout = self.call_timeout();
        match tokio::time::timeout(timeout, call).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(err)) => {
                self.lost(connection, &err.to_string());
                Err(Unavailable)
            }
            Err(_) => {
                let reason = format!("no answer within {} ms", timeout.as_millis());
                self.lost(connection, &reason);
                Err(Unavailable)
            }
        }
    }

    /// A call on `connection` failed: unless another call already did, drops the connection,
    /// warns, and starts connecting again.
    fn lost(self: &Arc<Self>, connection: &Arc<MultiplexedConnection>, reason: &str) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        let mut health = lock(&self.health);
        let current = self.link.load();
        if !current.as_ref().is_some_and(|c| Arc::ptr_eq(c, connection)) {
            return;
        }
        self.link.store(None);
        *health = Health {
            reachable: false,
            since_ms: now_ms(),
        };
        drop(health);
        tracing::warn!(
            error = reason,
            meanwhile = self.meanwhile(),
            "limits: Redis is unreachable; connecting again in the background"
        );
        self.reconnect_in_background();
    }

    fn meanwhile(&self) -> &'static str {
        if self.fail_closed.load(Ordering::Relaxed) {
            "refusing the requests of keys with limits (failMode closed)"
        } else {
            "counting in this process (failMode open)"
        }
    }

    fn reconnect_in_background(self: &Arc<Self>) {
        self.runtime.spawn(reconnect(Arc::downgrade(self)));
    }

    /// Connects, authenticates (as the URL says, or with an Entra token) and loads the
    /// admission script.
    async fn connect(&self) -> Result<MultiplexedConnection, String> {
        let client = self.client.as_ref().map_err(Clone::clone)?;
        let mut token = None;
        let client = match &self.entra {
            None => client.clone(),
            Some(entra) => {
                let (user, fresh) = entra.credentials(client).await?;
                let mut info = client.get_connection_info().clone();
                info.redis.username = Some(user);
                info.redis.password = Some(fresh.clone());
                token = Some(fresh);
                Client::open(info).map_err(|err| err.to_string())?
            }
        };
        let call_timeout = self.call_timeout();
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(CONNECT_TIMEOUT)
            .set_response_timeout(call_timeout);
        let attempt = async {
            let mut connection = client
                .get_multiplexed_async_connection_with_config(&config)
                .await?;
            self.admission.load_async(&mut connection).await?;
            Ok::<_, redis::RedisError>(connection)
        };
        match tokio::time::timeout(CONNECT_TIMEOUT + call_timeout, attempt).await {
            Ok(Ok(connection)) => {
                if let Some(entra) = &self.entra {
                    *lock(&entra.signed_in_with) = token;
                }
                Ok(connection)
            }
            Ok(Err(err)) => Err(err.to_string()),
            Err(_) => Err("no connection within the connect timeout".into()),
        }
    }

    fn connected(&self, connection: MultiplexedConnection) {
        let mut health = lock(&self.health);
        self.link.store(Some(Arc::new(connection)));
        let first = !*self.tried.borrow();
        *health = Health {
            reachable: true,
            since_ms: now_ms(),
        };
        drop(health);
        self.tried.send_replace(true);
        if first {
            tracing::info!("limits: counting in Redis, shared by every replica");
        } else {
            tracing::info!("limits: Redis is reachable again; counting in Redis");
        }
    }

    fn not_connected(&self, reason: &str) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        if !self.tried.send_replace(true) {
            tracing::warn!(
                error = reason,
                meanwhile = self.meanwhile(),
                "limits: Redis is unreachable; connecting again in the background"
            );
        } else {
            tracing::debug!(error = reason, "limits: Redis is still unreachable");
        }
    }
}

/// How a store signs in with Entra tokens.
struct EntraSignIn {
    /// The settings the token cache was made for, to tell when the config changes them.
    auth: EntraAuth,
    cache: Arc<TokenCache>,
    /// The token the live connection last signed in with.
    signed_in_with: Mutex<Option<String>>,
}

impl EntraSignIn {
    /// The user and the current token: the user the URL names, else the token's object id.
    async fn credentials(&self, client: &Client) -> Result<(String, String), String> {
        let header = self
            .cache
            .header("limits-redis")
            .await
            .map_err(|err| format!("no Entra token for Redis: {}", err.cause))?;
        let token = header
            .to_str()
            .ok()
            .and_then(|value| value.strip_prefix("Bearer "))
            .ok_or("an unreadable Entra token")?
            .to_string();
        let user = match &client.get_connection_info().redis.username {
            Some(user) => user.clone(),
            None => object_id(&token).ok_or(
                "the Entra token names no object id (oid); put the identity's object id as the \
                 user of limits.redis",
            )?,
        };
        Ok((user, token))
    }
}

/// The `oid` claim of a JWT access token (read, not verified: Redis verifies it).
fn object_id(token: &str) -> Option<String> {
    use base64::Engine as _;
    let payload = token.split('.').nth(1)?;
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&json).ok()?;
    claims["oid"].as_str().map(str::to_owned)
}

/// Signs the live connection in again (`AUTH`) whenever the token cache holds a token newer
/// than the one it signed in with, until the store is gone.
async fn keep_signed_in(store: Weak<RedisStore>) {
    let mut last_refused: Option<String> = None;
    loop {
        tokio::time::sleep(TOKEN_CHECK_INTERVAL).await;
        let Some(current) = store.upgrade() else {
            return;
        };
        let (Some(entra), Some(connection), Ok(client)) = (
            &current.entra,
            current.link.load_full(),
            current.client.as_ref(),
        ) else {
            continue;
        };
        let (user, token) = match entra.credentials(client).await {
            Ok(credentials) => credentials,
            Err(reason) => {
                tracing::warn!(error = reason, "limits: no newer Entra token for Redis yet");
                continue;
            }
        };
        if lock(&entra.signed_in_with).as_deref() == Some(token.as_str()) {
            continue;
        }
        let mut conn = (*connection).clone();
        let mut auth = redis::cmd("AUTH");
        auth.arg(&user).arg(&token);
        let timeout = current.call_timeout();
        match tokio::time::timeout(timeout, auth.query_async::<()>(&mut conn)).await {
            Ok(Ok(())) => {
                *lock(&entra.signed_in_with) = Some(token);
                tracing::debug!("limits: signed in to Redis again with a newer Entra token");
            }
            // Refused (the token not accepted yet, say): the connection stays signed in with
            // the token it has, and the next check tries again.
            Ok(Err(err)) if !(err.is_io_error() || err.is_connection_dropped()) => {
                if last_refused.as_deref() != Some(token.as_str()) {
                    tracing::warn!(error = %err, "limits: Redis refused a newer Entra token; trying again");
                    last_refused = Some(token);
                }
            }
            Ok(Err(err)) => current.lost(&connection, &err.to_string()),
            Err(_) => current.lost(
                &connection,
                &format!("no answer within {} ms", timeout.as_millis()),
            ),
        }
    }
}

/// Connects until it succeeds or the store is gone (the config named another Redis).
async fn reconnect(store: Weak<RedisStore>) {
    let mut delay = RECONNECT_FIRST_DELAY;
    loop {
        let Some(current) = store.upgrade() else {
            return;
        };
        match current.connect().await {
            Ok(connection) => {
                current.connected(connection);
                return;
            }
            Err(reason) => current.not_connected(&reason),
        }
        drop(current);
        let jitter = rand::random_range(0..=delay.as_millis() as u64 / 2);
        tokio::time::sleep(delay + Duration::from_millis(jitter)).await;
        delay = (delay * 2).min(RECONNECT_MAX_DELAY);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_object_id_is_read_from_the_tokens_claims() {
        use base64::Engine as _;
        let claims = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(br#"{"aud":"https://redis.azure.com","oid":"5c1d-oid"}"#);
        let token = format!("eyJhbGciOiJSUzI1NiJ9.{claims}.signature");
        assert_eq!(object_id(&token).as_deref(), Some("5c1d-oid"));
        assert_eq!(object_id("opaque-token"), None);
    }
}
