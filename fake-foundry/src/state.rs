//! State shared by the server workers and the test's handle: the request log, the scripted-reply
//! queue, the credentials required (a fixed key or bearer, or tokens a fake Entra issued), the
//! throttle's request count and the stream counters.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};

use actix_web::HttpRequest;
use bytes::Bytes;

use crate::body::StreamStats;
use crate::entra::TokenChecker;
use crate::formats::Completion;
use crate::script::{Behaviour, Queued, StatusReply};

/// One request as the fake received it.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    /// Every header in arrival order, names lowercase, values decoded lossily as UTF-8.
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
    /// With a token checker set ([`crate::FakeFoundry::set_token_checker`]): the subject of the
    /// accepted bearer token. `None` when no checker is set or the token was refused.
    pub token_subject: Option<String>,
}

impl RecordedRequest {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body parsed as JSON.
    ///
    /// # Panics
    /// If the body is not JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "recorded {} {} body is not JSON ({e}): {:?}",
                self.method,
                self.path,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    fn capture(req: &HttpRequest, body: Bytes, token_subject: Option<String>) -> Self {
        let query = req.query_string();
        Self {
            method: req.method().as_str().to_owned(),
            path: req.path().to_owned(),
            query: (!query.is_empty()).then(|| query.to_owned()),
            headers: req
                .headers()
                .iter()
                .map(|(name, value)| {
                    (
                        name.as_str().to_owned(),
                        String::from_utf8_lossy(value.as_bytes()).into_owned(),
                    )
                })
                .collect(),
            body,
            token_subject,
        }
    }
}

/// What the token checker made of a request's bearer token.
pub(crate) enum TokenVerdict {
    /// No checker is set.
    Unchecked,
    /// The token is valid; its subject.
    Accepted(String),
    /// Missing, unknown, expired or revoked.
    Refused,
}

impl TokenVerdict {
    pub fn subject(&self) -> Option<String> {
        match self {
            TokenVerdict::Accepted(subject) => Some(subject.clone()),
            TokenVerdict::Unchecked | TokenVerdict::Refused => None,
        }
    }
}

/// Why a request was refused.
pub(crate) enum AuthFailure {
    Bearer,
    ApiKey,
}

/// State behind every [`crate::FakeFoundry`] and server worker.
#[derive(Debug)]
pub(crate) struct Shared {
    pub behaviour: Behaviour,
    /// The default behaviour's text, prepared once.
    pub completion: Arc<Completion>,
    pub streams: Arc<StreamStats>,
    record: bool,
    request_count: AtomicUsize,
    requests: Mutex<Vec<RecordedRequest>>,
    /// Requests the behaviour's throttle has counted.
    throttle_count: AtomicU64,
    /// Length of `queue`, readable without taking its lock.
    queued: AtomicUsize,
    queue: Mutex<VecDeque<Queued>>,
    /// Whether either credential is required, readable without taking a lock.
    auth_required: AtomicBool,
    bearer: RwLock<Option<String>>,
    api_key: RwLock<Option<String>>,
    /// Whether `checker` is set, readable without taking its lock.
    checking: AtomicBool,
    checker: RwLock<Option<TokenChecker>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere while holding the lock leaves the data consistent: every critical section
    // is a single push, pop or clone.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    pub fn new(behaviour: Behaviour, record: bool) -> Self {
        let completion = Arc::new(Completion::new(&behaviour.text, behaviour.stream_chunks));
        Self {
            behaviour,
            completion,
            streams: Arc::default(),
            record,
            request_count: AtomicUsize::new(0),
            requests: Mutex::default(),
            throttle_count: AtomicU64::new(0),
            queued: AtomicUsize::new(0),
            queue: Mutex::default(),
            auth_required: AtomicBool::new(false),
            bearer: RwLock::default(),
            api_key: RwLock::default(),
            checking: AtomicBool::new(false),
            checker: RwLock::default(),
        }
    }

    pub fn record(&self, req: &HttpRequest, body: Bytes, token_subject: Option<String>) {
        if self.record {
            let recorded = RecordedRequest::capture(req, body, token_subject);
            let mut requests = lock(&self.requests);
            requests.push(recorded);
            self.request_count.store(requests.len(), Ordering::SeqCst);
        } else {
            self.request_count.fetch_add(1, Ordering::SeqCst);
        }
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.requests).clone()
    }

    pub fn request_count(&self) -> usize {
        self.request_count.load(Ordering::SeqCst)
    }

    pub fn enqueue(&self, reply: Queued) {
        let mut queue = lock(&self.queue);
        queue.push_back(reply);
        self.queued.store(queue.len(), Ordering::SeqCst);
    }

    pub fn next_scripted(&self) -> Option<Queued> {
        if self.queued.load(Ordering::SeqCst) == 0 {
            return None;
        }
        let mut queue = lock(&self.queue);
        let next = queue.pop_front();
        self.queued.store(queue.len(), Ordering::SeqCst);
        next
    }

    /// Counts a request against the behaviour's throttle: the 429 to send when this one is
    /// refused.
    pub fn throttle(&self) -> Option<StatusReply> {
        let throttle = self.behaviour.throttle?;
        if throttle.every == 0 {
            return None;
        }
        let n = self.throttle_count.fetch_add(1, Ordering::SeqCst) + 1;
        n.is_multiple_of(throttle.every)
            .then(|| StatusReply::throttled(throttle.retry_after_ms))
    }

    pub fn set_required_bearer(&self, token: Option<String>) {
        *self.bearer.write().unwrap_or_else(PoisonError::into_inner) = token;
        self.update_auth_required();
    }

    pub fn set_required_api_key(&self, key: Option<String>) {
        *self.api_key.write().unwrap_or_else(PoisonError::into_inner) = key;
        self.update_auth_required();
    }

    pub fn set_token_checker(&self, checker: Option<TokenChecker>) {
        let mut slot = self.checker.write().unwrap_or_else(PoisonError::into_inner);
        self.checking.store(checker.is_some(), Ordering::SeqCst);
        *slot = checker;
    }

    /// Checks the bearer token with the token checker, when one is set.
    pub fn check_token(&self, req: &HttpRequest) -> TokenVerdict {
        if !self.checking.load(Ordering::SeqCst) {
            return TokenVerdict::Unchecked;
        }
        let Some(checker) = self
            .checker
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
        else {
            return TokenVerdict::Unchecked;
        };
        bearer_token(req)
            .and_then(|token| std::str::from_utf8(token).ok())
            .and_then(|token| checker.check(token))
            .map_or(TokenVerdict::Refused, TokenVerdict::Accepted)
    }

    fn update_auth_required(&self) {
        let required = self
            .bearer
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some()
            || self
                .api_key
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .is_some();
        self.auth_required.store(required, Ordering::SeqCst);
    }

    /// Checks each configured credential: the token checker's `verdict`, `Authorization: Bearer
    /// <token>` and `api-key: <key>`.
    pub fn check_auth(&self, req: &HttpRequest, verdict: &TokenVerdict) -> Result<(), AuthFailure> {
        if matches!(verdict, TokenVerdict::Refused) {
            return Err(AuthFailure::Bearer);
        }
        if !self.auth_required.load(Ordering::SeqCst) {
            return Ok(());
        }
        let headers = req.headers();
        if let Some(token) = &*self.bearer.read().unwrap_or_else(PoisonError::into_inner)
            && bearer_token(req) != Some(token.as_bytes())
        {
            return Err(AuthFailure::Bearer);
        }
        let key = self.api_key.read().unwrap_or_else(PoisonError::into_inner);
        let presented = headers.get("api-key").map(|v| v.as_bytes());
        if key
            .as_deref()
            .is_some_and(|key| presented != Some(key.as_bytes()))
        {
            return Err(AuthFailure::ApiKey);
        }
        Ok(())
    }
}

/// The credential of `Authorization: Bearer <credential>` (scheme case-insensitive).
fn bearer_token(req: &HttpRequest) -> Option<&[u8]> {
    req.headers()
        .get("authorization")
        .map(|v| v.as_bytes())
        .and_then(|v| v.split_at_checked(7))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case(b"bearer "))
        .map(|(_, credential)| credential)
}
