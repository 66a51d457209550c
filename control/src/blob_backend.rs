//! config.json's home in blob mode (`PERSISTENCE_MODE=blob`): the config blob, read with its
//! ETag and written with `If-Match` on it, so that two admins (or two control instances) saving
//! at once get one success and one conflict. config.json in the data dir is the local cache
//! (`proxy::blob::cache`, shared with the proxy under a lock): a save while Blob Storage does not
//! answer goes there as a pending change, pushed (`If-Match` on the version it was based on) once
//! Blob is back; if the blob changed meanwhile the change is set aside as
//! `config.unpushed-<ms>.json` and reported, never pushed over it.
//!
//! The store calls it from blocking threads: the SDK's calls run on a runtime of their own
//! (one thread), and each call here waits for its answer. Never called on an async worker.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use proxy::blob::cache::{CacheState, LocalCache, SetAside};
use proxy::blob::{BlobError, BlobSettings, BlobStore, BlobVersion, Fetched, WriteIf};
use proxy::bookkeeping::history::History;
use proxy::ops::contract::StatsData;
use proxy::process::clock::now_ms;
use proxy::process::digest::sha256_hex;
use proxy::process::regular_file::CONFIG_FILE_LIMIT;
use serde::Serialize;
use tokio::sync::mpsc;

use crate::errors::AdminError;

type Job = Pin<Box<dyn Future<Output = ()> + Send>>;

/// One replica's usage history files: their bytes by file name.
pub type ReplicaFiles = Vec<(String, Vec<u8>)>;

/// A thread running the Azure SDK's calls; blocking callers wait for each answer.
struct BlobRuntime {
    jobs: mpsc::UnboundedSender<Job>,
}

impl BlobRuntime {
    fn start() -> anyhow::Result<BlobRuntime> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (jobs, mut queue) = mpsc::unbounded_channel::<Job>();
        std::thread::Builder::new()
            .name("blob-storage".into())
            .spawn(move || {
                runtime.block_on(async move {
                    while let Some(job) = queue.recv().await {
                        tokio::spawn(job);
                    }
                });
            })?;
        Ok(BlobRuntime { jobs })
    }

    /// Runs `call` on the runtime and waits for its output (blocking).
    fn run<T: Send + 'static>(
        &self,
        call: impl Future<Output = T> + Send + 'static,
    ) -> anyhow::Result<T> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.jobs
            .send(Box::pin(async move {
                let _ = tx.send(call.await);
            }))
            .map_err(|_| anyhow::anyhow!("the Blob Storage runtime has stopped"))?;
        rx.recv()
            .map_err(|_| anyhow::anyhow!("the Blob Storage call was dropped"))
    }
}

/// Where the config blob stands, for the overview and its warnings.
#[derive(Debug, Clone, Default, Serialize)]
pub struct BlobView {
    /// `<account URL>/<container>/<blob>` (never a SAS).
    pub url: String,
    pub auth_mode: String,
    /// Whether the last call to Blob Storage succeeded (null before the first one).
    pub reachable: Option<bool>,
    pub since_ms: u64,
    pub error: Option<String>,
    /// A change saved while Blob was unreachable waits in the local cache.
    pub pending_local_change: bool,
    /// Changes that could not be pushed because the blob changed meanwhile, newest first.
    pub unpushed: Vec<SetAside>,
    /// Hand edits of the local cache, set aside and never applied, newest first.
    pub local_edits: Vec<SetAside>,
}

/// A config version as the store reads it: the bytes (or none), and the blob ETag a save
/// must match (empty when the blob did not exist).
pub struct Loaded {
    pub bytes: Option<Vec<u8>>,
    pub version: String,
}

pub struct BlobBackend {
    runtime: BlobRuntime,
    store: BlobStore,
    cache: LocalCache,
    /// The last version read from (or written to) the blob.
    last: Mutex<Option<BlobVersion>>,
    view: Mutex<BlobView>,
    usage: Mutex<UsageCache>,
}

impl BlobBackend {
    pub fn start(settings: BlobSettings, config_path: &std::path::Path) -> anyhow::Result<Self> {
        let runtime = BlobRuntime::start()?;
        let view = BlobView {
            url: settings.describe(&settings.config_blob),
            auth_mode: settings.auth.mode().into(),
            since_ms: now_ms(),
            ..BlobView::default()
        };
        // Built on its runtime: an Entra ID credential starts fetching its token there.
        let store = runtime.run(async move { BlobStore::new(settings) })??;
        Ok(BlobBackend {
            runtime,
            store,
            cache: LocalCache::new(config_path),
            last: Mutex::new(None),
            view: Mutex::new(view),
            usage: Mutex::new(UsageCache::default()),
        })
    }

    pub fn describe(&self) -> String {
        self.view().url
    }

    pub fn settings(&self) -> &BlobSettings {
        self.store.settings()
    }

    pub fn view(&self) -> BlobView {
        self.view.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn last(&self) -> Option<BlobVersion> {
        self.last.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn remember(&self, version: Option<BlobVersion>) {
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = version;
    }

    fn reachable(&self, error: Option<String>) {
        let mut view = self.view.lock().unwrap_or_else(|e| e.into_inner());
        let reachable = error.is_none();
        if view.reachable != Some(reachable) {
            view.since_ms = now_ms();
            match &error {
                Some(cause) => {
                    tracing::warn!(error = %cause, "Blob Storage is not reachable: the admin UI works on the local cache")
                }
                None if view.reachable.is_some() => {
                    tracing::info!("Blob Storage is reachable again")
                }
                None => {}
            }
        }
        view.reachable = Some(reachable);
        view.error = error;
    }

    /// The config as it is now: the blob (a pending local change is pushed first), or the
    /// local cache while Blob does not answer. A hand edit of the cache is set aside.
    pub fn load(&self) -> anyhow::Result<Loaded> {
        let mut state = self.cache.read()?;
        if matches!(state, CacheState::Edited(..)) {
            let last = self.last();
            let restore = last.as_ref().map(|v| (v.bytes.as_slice(), v.etag.as_str()));
            if let Some(aside) = self.cache.set_aside_edit(restore)? {
                tracing::error!(kept_as = %aside.path, "config.json was edited by hand; in blob mode it is a cache of the config blob and hand edits are never applied");
            }
            state = self.cache.read()?;
        }
        let known = self.last();
        let store = self.store.clone();
        let name = self.settings().config_blob.clone();
        let etag = known.as_ref().map(|v| v.etag.clone());
        let fetched = self
            .runtime
            .run(async move { store.fetch(&name, etag.as_deref(), CONFIG_FILE_LIMIT).await })?;
        let current = match fetched {
            Err(err) => {
                self.reachable(Some(err.to_string()));
                self.refresh_files(&state);
                return Ok(local_version(state));
            }
            Ok(Fetched::Unchanged) => known,
            Ok(Fetched::Found(version)) => Some(version),
            Ok(Fetched::Missing) => None,
        };
        self.reachable(None);
        self.remember(current.clone());
        let current = match (&current, &state) {
            (None, CacheState::Tracked(bytes, record)) if !record.pending => self.seed(bytes)?,
            (None, CacheState::Untracked(bytes)) => self.seed(bytes)?,
            _ => current,
        };
        let current = match state.pending() {
            Some((bytes, record)) => self.push_pending(bytes, &record.etag, current)?,
            None => {
                if let Some(version) = &current {
                    self.cache.store_from_blob(&version.bytes, &version.etag)?;
                }
                current
            }
        };
        self.refresh_files(&self.cache.read()?);
        Ok(match current {
            Some(version) => Loaded {
                bytes: Some(version.bytes),
                version: version.etag,
            },
            None => Loaded {
                bytes: None,
                version: String::new(),
            },
        })
    }

    /// The blob does not exist: it is created from a valid local config (never over a blob
    /// written meanwhile).
    fn seed(&self, bytes: &[u8]) -> anyhow::Result<Option<BlobVersion>> {
        if proxy::config::load(bytes).is_err() {
            return Ok(None);
        }
        let store = self.store.clone();
        let name = self.settings().config_blob.clone();
        let body = bytes.to_vec();
        let created = self
            .runtime
            .run(async move { store.put(&name, &body, &WriteIf::Absent).await })?;
        match created {
            Ok(etag) => {
                tracing::info!(blob = %self.describe(), "config blob created from the local config");
                let version = BlobVersion {
                    bytes: bytes.to_vec(),
                    etag,
                };
                self.remember(Some(version.clone()));
                Ok(Some(version))
            }
            // Created by another writer meanwhile: read next time.
            Err(_) => Ok(None),
        }
    }

    /// Pushes a pending change over the version it was based on; when the blob changed
    /// meanwhile it is set aside instead. Returns the blob's version after that.
    fn push_pending(
        &self,
        bytes: &[u8],
        base: &str,
        current: Option<BlobVersion>,
    ) -> anyhow::Result<Option<BlobVersion>> {
        let sha256 = sha256_hex(bytes);
        let condition = if base.is_empty() {
            WriteIf::Absent
        } else {
            WriteIf::Matches(base.to_string())
        };
        let store = self.store.clone();
        let name = self.settings().config_blob.clone();
        let body = bytes.to_vec();
        let pushed = self
            .runtime
            .run(async move { store.put(&name, &body, &condition).await })?;
        match pushed {
            Ok(etag) => {
                self.cache.mark_pushed(&sha256, &etag)?;
                tracing::info!("the change saved while Blob Storage was unreachable was pushed");
                let version = BlobVersion {
                    bytes: bytes.to_vec(),
                    etag,
                };
                self.remember(Some(version.clone()));
                Ok(Some(version))
            }
            Err(BlobError::Conflict) => {
                let (blob, etag) = current
                    .as_ref()
                    .map_or((&b""[..], ""), |v| (v.bytes.as_slice(), v.etag.as_str()));
                if let Some(aside) = self.cache.set_aside_pending(&sha256, blob, etag)? {
                    tracing::error!(kept_as = %aside.path, "a change saved while Blob Storage was unreachable was not pushed: the blob changed meanwhile");
                }
                Ok(current)
            }
            Err(err) => {
                self.reachable(Some(err.to_string()));
                Ok(current)
            }
        }
    }

    fn refresh_files(&self, state: &CacheState) {
        let pending = state.pending().is_some();
        let unpushed = self.cache.set_aside_files("unpushed");
        let local_edits = self.cache.set_aside_files("local-edit");
        let mut view = self.view.lock().unwrap_or_else(|e| e.into_inner());
        view.pending_local_change = pending;
        view.unpushed = unpushed;
        view.local_edits = local_edits;
    }

    /// Writes `bytes` over the blob version `version` (empty: only if there is none). A
    /// changed blob is a conflict; while Blob does not answer the change is kept in the local
    /// cache, pending.
    pub fn save(&self, bytes: &[u8], version: &str) -> Result<(), AdminError> {
        let condition = if version.is_empty() {
            WriteIf::Absent
        } else {
            WriteIf::Matches(version.to_string())
        };
        let store = self.store.clone();
        let name = self.settings().config_blob.clone();
        let body = bytes.to_vec();
        let reachable = self.view().reachable != Some(false);
        let written = if reachable {
            self.runtime
                .run(async move { store.put(&name, &body, &condition).await })
                .map_err(AdminError::internal("writing the config blob"))?
        } else {
            Err(BlobError::Unavailable(
                "Blob Storage is not reachable".into(),
            ))
        };
        match written {
            Ok(etag) => {
                self.reachable(None);
                self.remember(Some(BlobVersion {
                    bytes: bytes.to_vec(),
                    etag: etag.clone(),
                }));
                self.cache
                    .store_from_blob(bytes, &etag)
                    .map_err(AdminError::internal("writing the local config cache"))?;
                tracing::info!(blob = %self.describe(), "config blob written");
                Ok(())
            }
            Err(BlobError::Conflict) => Err(AdminError::Conflict {
                current_etag: String::new(),
            }),
            Err(err) => {
                self.reachable(Some(err.to_string()));
                self.cache
                    .store_pending(bytes, version)
                    .map_err(AdminError::internal("writing the local config cache"))?;
                let state = self
                    .cache
                    .read()
                    .map_err(AdminError::internal("reading the local config cache"))?;
                self.refresh_files(&state);
                tracing::warn!(
                    "Blob Storage is not reachable: the config was saved to the local cache and is pushed when Blob is back"
                );
                Ok(())
            }
        }
    }

    /// Every replica's statistics (`stats/<replica>.json`), by replica name.
    pub fn replica_stats(&self) -> anyhow::Result<Vec<(String, StatsData)>> {
        let found = self.replica_files(|rest| {
            rest.strip_suffix(".json")
                .filter(|r| !r.contains('/'))
                .map(|r| (r.to_string(), String::new()))
        })?;
        Ok(found
            .into_iter()
            .filter_map(|(replica, _, bytes)| {
                serde_json::from_slice::<StatsData>(&bytes)
                    .ok()
                    .map(|stats| (replica, stats))
            })
            .collect())
    }

    /// Every replica's usage history (`stats/<replica>/usage-*.bin`) as one, to be queried. The
    /// files are read again only when their ETag changed (each replica copies them every
    /// `stats.flushInterval`), and merged again only when one of them changed; callers at the
    /// same time wait for one read.
    pub fn merged_usage(&self) -> anyhow::Result<Arc<History>> {
        let mut cache = self.usage.lock().unwrap_or_else(|e| e.into_inner());
        let known: BTreeMap<String, String> = cache
            .files
            .iter()
            .map(|(name, version)| (name.clone(), version.etag.clone()))
            .collect();
        let store = self.store.clone();
        let prefix = self.settings().stats_prefix();
        let (names, changed) = self.runtime.run(async move {
            let names: BTreeSet<String> = store
                .list(&prefix, MAX_STATS_BLOBS)
                .await?
                .into_iter()
                .filter(|name| {
                    name.strip_prefix(&prefix)
                        .and_then(history_file_of)
                        .is_some()
                })
                .collect();
            let mut changed = Vec::new();
            for name in &names {
                let etag = known.get(name).map(String::as_str);
                match store.fetch(name, etag, STATS_LIMIT).await? {
                    Fetched::Found(version) => changed.push((name.clone(), Some(version))),
                    Fetched::Missing => changed.push((name.clone(), None)),
                    Fetched::Unchanged => {}
                }
            }
            Ok::<_, BlobError>((names, changed))
        })??;
        let listed_before = cache.files.len();
        cache.files.retain(|name, _| names.contains(name));
        let mut stale = cache.merged.is_none() || cache.files.len() != listed_before;
        for (name, version) in changed {
            stale = true;
            match version {
                Some(version) => cache.files.insert(name, version),
                None => cache.files.remove(&name),
            };
        }
        if let (false, Some(merged)) = (stale, &cache.merged) {
            return Ok(merged.clone());
        }
        let prefix = self.settings().stats_prefix();
        let mut by_replica: BTreeMap<&str, ReplicaFiles> = BTreeMap::new();
        for (name, version) in &cache.files {
            if let Some((replica, file)) = name.strip_prefix(&prefix).and_then(history_file_of) {
                by_replica
                    .entry(replica)
                    .or_default()
                    .push((file.to_string(), version.bytes.clone()));
            }
        }
        let replicas: Vec<ReplicaFiles> = by_replica.into_values().collect();
        let merged = Arc::new(History::merged(&replicas));
        cache.merged = Some(merged.clone());
        Ok(merged)
    }

    /// The blobs under the statistics prefix that `select` names (replica, file), with their
    /// content.
    fn replica_files(
        &self,
        select: impl Fn(&str) -> Option<(String, String)> + Send + 'static,
    ) -> anyhow::Result<Vec<(String, String, Vec<u8>)>> {
        let store = self.store.clone();
        let prefix = self.settings().stats_prefix();
        let listed = self.runtime.run(async move {
            let names = store.list(&prefix, MAX_STATS_BLOBS).await?;
            let mut found = Vec::new();
            for name in names {
                let Some((replica, file)) = name.strip_prefix(&prefix).and_then(&select) else {
                    continue;
                };
                if let Fetched::Found(version) = store.fetch(&name, None, STATS_LIMIT).await? {
                    found.push((replica, file, version.bytes));
                }
            }
            Ok::<_, BlobError>(found)
        })??;
        Ok(listed)
    }
}

/// `<replica>/usage-*.bin` (a name under the statistics prefix): the replica and the file.
fn history_file_of(rest: &str) -> Option<(&str, &str)> {
    let (replica, file) = rest.split_once('/')?;
    (file.starts_with("usage-") && file.ends_with(".bin") && !file.contains('/'))
        .then_some((replica, file))
}

/// The replicas' usage history files as last read, and their merge.
#[derive(Default)]
struct UsageCache {
    files: BTreeMap<String, BlobVersion>,
    merged: Option<Arc<History>>,
}

/// The most statistics blobs read (a counters blob and up to four history files per replica).
const MAX_STATS_BLOBS: usize = 256 * 5;
/// The largest statistics blob read (a usage history file included).
const STATS_LIMIT: usize = 64 * 1024 * 1024;

/// What the local cache offers while Blob does not answer.
fn local_version(state: CacheState) -> Loaded {
    match state {
        CacheState::Tracked(bytes, record) => Loaded {
            bytes: Some(bytes),
            version: record.etag,
        },
        CacheState::Untracked(bytes) => Loaded {
            bytes: Some(bytes),
            version: String::new(),
        },
        _ => Loaded {
            bytes: None,
            version: String::new(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_replicas_usage_history_files_are_merged() {
        assert_eq!(
            history_file_of("r1/usage-minutes.bin"),
            Some(("r1", "usage-minutes.bin"))
        );
        for other in [
            "r1.json",
            "r1/stats.json",
            "r1/old/usage-minutes.bin",
            "usage-minutes.bin",
            "r1/usage-minutes.bin.tmp",
        ] {
            assert_eq!(history_file_of(other), None, "{other}");
        }
    }
}
