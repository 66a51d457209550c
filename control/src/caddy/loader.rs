//! Keeps Caddy running the latest Caddyfile: loads a text through the admin API only when it
//! differs from the one Caddy last accepted, retries with backoff while the admin API is not
//! up, loads again when Caddy comes back after being down, and keeps each load's outcome
//! (Caddy's own message on failure) for the status view. Never retries a text Caddy refused.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use proxy::process::clock::now_ms;
use proxy::process::digest::sha256_hex;
use serde::Serialize;
use tokio::sync::{Notify, watch};

use super::admin::{AdminApiError, CaddyAdmin};

const FIRST_RETRY: Duration = Duration::from_millis(200);
const MAX_RETRY: Duration = Duration::from_secs(10);
/// How often the admin API is probed while nothing changes.
const PROBE_EVERY: Duration = Duration::from_secs(10);
const HISTORY: usize = 20;

#[derive(Debug)]
pub struct Caddyfile {
    pub text: String,
    pub sha256: String,
}

impl Caddyfile {
    pub fn new(text: String) -> Caddyfile {
        let sha256 = sha256_hex(text.as_bytes());
        Caddyfile { text, sha256 }
    }
}

/// One attempt to load a Caddyfile that Caddy answered (accepted or refused).
#[derive(Debug, Clone, Serialize)]
pub struct LoadRecord {
    pub at_ms: u64,
    pub ok: bool,
    pub took_ms: u64,
    pub sha256: String,
    /// Why it was loaded: "changed", "forced" or "caddy_restarted".
    pub reason: &'static str,
    /// Caddy's own message when it refused the config.
    pub error: Option<String>,
}

impl LoadRecord {
    /// Every `reason` a load is made for.
    pub const REASONS: [&'static str; 3] = ["changed", "forced", "caddy_restarted"];
}

/// Retrying while Caddy's admin API does not answer.
#[derive(Debug, Clone, Serialize)]
pub struct Waiting {
    pub since_ms: u64,
    pub attempts: u32,
    pub error: String,
    pub next_attempt_ms: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct LoaderStatus {
    /// `None` when control does not drive Caddy (`CADDY_ADMIN=off`).
    pub admin_url: Option<String>,
    pub reachable: Option<bool>,
    pub checked_at_ms: Option<u64>,
    pub unreachable_reason: Option<String>,
    /// Why it is unreachable, for a warning worded from its code and values.
    #[serde(skip)]
    pub unreachable_error: Option<AdminApiError>,
    /// The Caddyfile control wants Caddy to run.
    pub desired_sha256: Option<String>,
    /// The Caddyfile Caddy last accepted from control.
    pub loaded_sha256: Option<String>,
    pub last_load: Option<LoadRecord>,
    pub last_success_at_ms: Option<u64>,
    pub waiting: Option<Waiting>,
    pub history: VecDeque<LoadRecord>,
}

impl LoaderStatus {
    /// The wanted Caddyfile is not (yet) running.
    pub fn pending(&self) -> bool {
        self.desired_sha256.is_some() && self.desired_sha256 != self.loaded_sha256
    }
}

pub struct CaddyLoader {
    admin: Option<CaddyAdmin>,
    desired: watch::Sender<Option<Arc<Caddyfile>>>,
    force: Notify,
    status: Mutex<LoaderStatus>,
}

impl CaddyLoader {
    pub fn new(admin: Option<CaddyAdmin>) -> Arc<CaddyLoader> {
        let status = LoaderStatus {
            admin_url: admin.as_ref().map(|a| a.url().to_string()),
            ..LoaderStatus::default()
        };
        Arc::new(CaddyLoader {
            admin,
            desired: watch::Sender::new(None),
            force: Notify::new(),
            status: Mutex::new(status),
        })
    }

    pub fn admin(&self) -> Option<&CaddyAdmin> {
        self.admin.as_ref()
    }

    /// Asks for `caddyfile` to run; loaded only if its text differs from the running one.
    pub fn submit(&self, caddyfile: Caddyfile) {
        let sha256 = caddyfile.sha256.clone();
        self.desired.send_if_modified(|current| {
            if current.as_ref().is_some_and(|c| c.sha256 == sha256) {
                return false;
            }
            *current = Some(Arc::new(caddyfile));
            true
        });
        self.update(|s| s.desired_sha256 = Some(sha256));
    }

    /// Loads the wanted Caddyfile again even if Caddy already runs it.
    pub fn force_reload(&self) {
        self.force.notify_one();
    }

    pub fn status(&self) -> LoaderStatus {
        self.status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn update(&self, change: impl FnOnce(&mut LoaderStatus)) {
        let mut status = self.status.lock().unwrap_or_else(|e| e.into_inner());
        change(&mut status);
    }

    fn record(&self, record: LoadRecord) {
        self.update(|s| {
            if record.ok {
                s.loaded_sha256 = Some(record.sha256.clone());
                s.last_success_at_ms = Some(record.at_ms);
            }
            s.reachable = Some(true);
            s.checked_at_ms = Some(record.at_ms);
            s.unreachable_reason = None;
            s.unreachable_error = None;
            s.waiting = None;
            s.last_load = Some(record.clone());
            if s.history.len() == HISTORY {
                s.history.pop_back();
            }
            s.history.push_front(record);
        });
    }

    fn mark_unreachable(&self, error: &AdminApiError) {
        self.update(|s| {
            s.reachable = Some(false);
            s.checked_at_ms = Some(now_ms());
            s.unreachable_reason = Some(error.to_string());
            s.unreachable_error = Some(error.clone());
        });
    }

    /// Runs until the process ends.
    pub async fn run(self: Arc<Self>) {
        let Some(admin) = self.admin.clone() else {
            return;
        };
        let mut desired = self.desired.subscribe();
        // The text Caddy last answered for (accepted or refused): not sent again unchanged.
        let mut settled: Option<String> = None;
        let mut reason = "changed";
        let mut retry = FIRST_RETRY;
        let mut waiting_since: Option<(u64, u32)> = None;
        loop {
            let want = desired.borrow_and_update().clone();
            if let Some(want) = want.filter(|w| settled.as_deref() != Some(&w.sha256)) {
                let started = Instant::now();
                match admin.load(&want.text).await {
                    Err(err @ AdminApiError::Unreachable { .. }) => {
                        self.mark_unreachable(&err);
                        let (since, attempts) = waiting_since.unwrap_or((now_ms(), 0));
                        waiting_since = Some((since, attempts + 1));
                        self.update(|s| {
                            s.waiting = Some(Waiting {
                                since_ms: since,
                                attempts: attempts + 1,
                                error: err.to_string(),
                                next_attempt_ms: now_ms() + retry.as_millis() as u64,
                            })
                        });
                        if attempts == 0 {
                            tracing::warn!(error = %err, "Caddy's admin API is not up yet; retrying with backoff");
                        }
                        tokio::select! {
                            _ = tokio::time::sleep(retry) => {}
                            changed = desired.changed() => if changed.is_err() { return },
                            _ = self.force.notified() => {}
                        }
                        retry = (retry * 2).min(MAX_RETRY);
                        continue;
                    }
                    outcome => {
                        let error = outcome.err().map(|e| match e {
                            AdminApiError::Refused { message, .. } => message,
                            other => other.to_string(),
                        });
                        match &error {
                            None => {
                                tracing::info!(sha256 = %want.sha256, reason, "Caddy loaded the Caddyfile")
                            }
                            Some(message) => {
                                tracing::error!(error = %message, "Caddy refused the Caddyfile")
                            }
                        }
                        self.record(LoadRecord {
                            at_ms: now_ms(),
                            ok: error.is_none(),
                            took_ms: started.elapsed().as_millis() as u64,
                            sha256: want.sha256.clone(),
                            reason,
                            error,
                        });
                        settled = Some(want.sha256.clone());
                        retry = FIRST_RETRY;
                        waiting_since = None;
                        reason = "changed";
                    }
                }
            }
            tokio::select! {
                changed = desired.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    reason = "changed";
                }
                _ = self.force.notified() => {
                    settled = None;
                    reason = "forced";
                }
                _ = tokio::time::sleep(PROBE_EVERY) => {
                    match admin.probe().await {
                        Err(err @ AdminApiError::Unreachable { .. }) => {
                            if self.status().reachable != Some(false) {
                                tracing::warn!(error = %err, "Caddy's admin API stopped answering");
                            }
                            self.mark_unreachable(&err);
                        }
                        _ => {
                            let was_down = self.status().reachable == Some(false);
                            self.update(|s| {
                                s.reachable = Some(true);
                                s.checked_at_ms = Some(now_ms());
                                s.unreachable_reason = None;
                                s.unreachable_error = None;
                            });
                            if was_down {
                                // A restarted Caddy runs whatever it started with: load ours.
                                settled = None;
                                reason = "caddy_restarted";
                            }
                        }
                    }
                }
            }
        }
    }
}
