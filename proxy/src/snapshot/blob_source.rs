//! The config blob as the proxy's config source (`PERSISTENCE_MODE=blob`). The blob is the
//! source of truth; config.json in the data dir is its local cache (`blob::cache`).
//!
//! At start the local cache serves (when valid) until the first read of the blob has finished;
//! then the blob is read conditionally (`If-None-Match` on its ETag) every `BLOB_POLL_MS`, or
//! every `BLOB_RECOVERY_INTERVAL_MS` while Blob Storage does not answer. Each new version goes
//! through the same validation and "last good keeps serving" rule as a file edit
//! (`reload::apply_bytes`); a valid one is written to the local cache. A missing blob is seeded
//! from the local cache, or from the example when there is no local config (create-only: never
//! over a blob another replica wrote). A change control
//! saved while Blob was unreachable (pending in the cache) serves until control has pushed it or
//! set it aside. A hand edit of the cache is never applied: it is set aside and reported.

use std::path::PathBuf;
use std::sync::Arc;

use crate::blob::cache::{CacheState, LocalCache, StoreOutcome};
use crate::blob::{BlobStore, BlobVersion, Fetched, WriteIf};
use crate::config::{self, Config};
use crate::ops::contract::{BlobStatus, ServingFrom};
use crate::process::clock::now_ms;
use crate::process::digest::sha256_hex;
use crate::process::first_start::create_config_if_missing;
use crate::process::regular_file::CONFIG_FILE_LIMIT;
use crate::snapshot::Shared;
use crate::snapshot::reload::{Applied, Source, apply_bytes};

/// The valid config in the local cache at start, if any, with its SHA-256 and whether it is a
/// pending local change. A hand edit is set aside (never applied). Blocking.
pub fn initial_config(cache: &LocalCache) -> anyhow::Result<Option<(Config, String, bool)>> {
    let (bytes, pending) = match cache.read()? {
        CacheState::Tracked(bytes, record) => (bytes, record.pending),
        CacheState::Untracked(bytes) => (bytes, false),
        CacheState::Edited(..) => {
            if let Some(aside) = cache.set_aside_edit(None)? {
                tracing::error!(kept_as = %aside.path, "config.json was edited by hand; in blob mode it is a cache of the config blob and hand edits are never applied: edit the config through the admin UI (or the blob itself)");
            }
            return Ok(None);
        }
        CacheState::Missing => return Ok(None),
        CacheState::Unreadable(problem) => {
            tracing::warn!(problem = %problem, "the local config cache cannot be read");
            return Ok(None);
        }
    };
    match config::load(&bytes) {
        Ok(config) => Ok(Some((config, sha256_hex(&bytes), pending))),
        Err(err) => {
            tracing::warn!(error = %err, "the local config cache is not a valid config");
            Ok(None)
        }
    }
}

/// The initial blob status, before the first read.
pub fn initial_status(store: &BlobStore, serving_from: ServingFrom) -> BlobStatus {
    let settings = store.settings();
    BlobStatus {
        url: settings.describe(&settings.config_blob),
        auth_mode: settings.auth.mode().into(),
        replica: settings.replica.clone(),
        reachable: None,
        since_ms: now_ms(),
        error: None,
        serving_from,
        etag: None,
        pending_local_change: serving_from == ServingFrom::PendingLocalChange,
        local_edits: Vec::new(),
    }
}

/// Follows the blob until dropped.
pub struct BlobFollower {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for BlobFollower {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Follows the blob of `store` into `shared`, with `cache` as its local cache; a missing blob is
/// created from the local config, or from `example` (`CONFIG_EXAMPLE`, else the built-in
/// example) when there is none.
pub fn follow(
    store: BlobStore,
    cache: Arc<LocalCache>,
    example: Option<PathBuf>,
    shared: Arc<Shared>,
) -> BlobFollower {
    let mut follower = Follower {
        description: store.settings().describe(&store.settings().config_blob),
        store,
        cache,
        example,
        shared,
        etag: None,
        applied: None,
    };
    let task = actix_rt::spawn(async move {
        let mut first = true;
        loop {
            let reachable = follower.tick().await;
            if first {
                first = false;
                follower.shared.readiness.source_settled();
                if !reachable {
                    tracing::warn!(blob = %follower.description, "Blob Storage is not reachable: serving the local cache; retrying in the background");
                }
            }
            let settings = follower.store.settings();
            let wait = if reachable {
                settings.poll
            } else {
                settings.recovery
            };
            actix_rt::time::sleep(wait).await;
        }
    });
    BlobFollower { task }
}

struct Follower {
    store: BlobStore,
    cache: Arc<LocalCache>,
    example: Option<PathBuf>,
    shared: Arc<Shared>,
    description: String,
    /// The ETag reads are conditional on.
    etag: Option<String>,
    /// The last valid blob version applied: what the local cache is restored to.
    applied: Option<BlobVersion>,
}

impl Follower {
    /// One round: the local cache, then the blob. Returns whether Blob Storage answered.
    async fn tick(&mut self) -> bool {
        let pending = self.check_cache().await;
        let fetched = self
            .store
            .fetch(
                &self.store.settings().config_blob,
                self.etag.as_deref(),
                CONFIG_FILE_LIMIT,
            )
            .await;
        let fetched = match fetched {
            Ok(fetched) => fetched,
            Err(err) => {
                self.etag = None;
                let cause = err.to_string();
                self.update(|blob| {
                    if blob.reachable != Some(false) {
                        blob.since_ms = now_ms();
                        tracing::warn!(error = %cause, "the config blob cannot be read; the serving config stays");
                    }
                    blob.reachable = Some(false);
                    blob.error = Some(cause);
                    if blob.serving_from == ServingFrom::Blob {
                        blob.serving_from = ServingFrom::LocalCache;
                    }
                });
                return false;
            }
        };
        // Reachable before anything is applied, so that the status never shows the blob's
        // config with Blob unreachable.
        self.update(|blob| {
            if blob.reachable != Some(true) {
                blob.since_ms = now_ms();
                if blob.reachable == Some(false) {
                    tracing::info!("Blob Storage is reachable again");
                }
            }
            blob.reachable = Some(true);
            blob.error = None;
        });
        match fetched {
            Fetched::Unchanged => {}
            Fetched::Found(version) => self.found(version, pending.is_some()).await,
            Fetched::Missing => {
                self.etag = None;
                if pending.is_none() {
                    self.seed().await;
                }
            }
        }
        true
    }

    /// Handles hand edits and applies a pending local change; returns that change's bytes.
    async fn check_cache(&mut self) -> Option<Vec<u8>> {
        let cache = self.cache.clone();
        let restore = self.applied.clone();
        let checked = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
            let mut state = cache.read()?;
            if matches!(state, CacheState::Edited(..)) {
                let restore = restore.as_ref().map(|v| (v.bytes.as_slice(), v.etag.as_str()));
                if let Some(aside) = cache.set_aside_edit(restore)? {
                    tracing::error!(kept_as = %aside.path, "config.json was edited by hand; in blob mode it is a cache of the config blob and hand edits are never applied: edit the config through the admin UI (or the blob itself)");
                }
                state = cache.read()?;
            }
            let edits = cache.set_aside_files("local-edit");
            Ok((state.pending().map(|(bytes, _)| bytes.to_vec()), edits))
        })
        .await;
        let (pending, edits) = match checked {
            Ok(Ok(checked)) => checked,
            Ok(Err(err)) => {
                tracing::warn!(error = %format!("{err:#}"), "the local config cache cannot be checked");
                (None, Vec::new())
            }
            Err(_) => (None, Vec::new()),
        };
        if let Some(bytes) = &pending {
            let applied = apply_bytes(
                &self.shared,
                bytes.clone(),
                Source::Blob("local cache (change not pushed yet)"),
            )
            .await;
            if applied != Applied::Refused {
                self.update(|blob| blob.serving_from = ServingFrom::PendingLocalChange);
            }
        }
        let is_pending = pending.is_some();
        self.update(|blob| {
            blob.pending_local_change = is_pending;
            blob.local_edits = edits;
        });
        pending
    }

    /// A new version of the blob: applied and cached, unless a pending local change holds the
    /// cache (read in full again next time, once control has dealt with it).
    async fn found(&mut self, version: BlobVersion, pending: bool) {
        if pending {
            self.etag = None;
            return;
        }
        self.etag = Some(version.etag.clone());
        let etag = version.etag.clone();
        self.update(|blob| blob.etag = Some(etag));
        let applied = apply_bytes(
            &self.shared,
            version.bytes.clone(),
            Source::Blob(&self.description),
        )
        .await;
        if applied == Applied::Refused {
            return;
        }
        self.update(|blob| blob.serving_from = ServingFrom::Blob);
        let cache = self.cache.clone();
        let cached = version.clone();
        self.applied = Some(version);
        let stored =
            tokio::task::spawn_blocking(move || cache.store_from_blob(&cached.bytes, &cached.etag))
                .await;
        match stored {
            Ok(Ok(StoreOutcome::Written { aside: Some(aside) })) => {
                tracing::error!(kept_as = %aside.path, "config.json was edited by hand; in blob mode it is a cache of the config blob and hand edits are never applied: edit the config through the admin UI (or the blob itself)");
            }
            Ok(Ok(_)) => {}
            Ok(Err(err)) => {
                tracing::warn!(error = %format!("{err:#}"), "could not write the local config cache")
            }
            Err(err) => tracing::warn!(error = %err, "the local config cache writer failed"),
        }
    }

    /// The blob does not exist: it is created from the local cache when that holds a valid
    /// config (created from the example first when there is no local config at all), never
    /// over a blob written meanwhile.
    async fn seed(&mut self) {
        let cache = self.cache.clone();
        let example = self.example.clone();
        let local = tokio::task::spawn_blocking(move || {
            if matches!(cache.read(), Ok(CacheState::Missing))
                && let Err(err) = create_config_if_missing(cache.path(), example.as_deref())
            {
                tracing::warn!(error = %format!("{err:#}"), "could not create the local config from the example");
            }
            match cache.read() {
                Ok(CacheState::Tracked(bytes, _) | CacheState::Untracked(bytes)) => {
                    config::load(&bytes).is_ok().then_some(bytes)
                }
                _ => None,
            }
        })
        .await
        .ok()
        .flatten();
        let Some(bytes) = local else {
            tracing::warn!(blob = %self.description, "the config blob does not exist and there is no valid local config to create it from");
            return;
        };
        let name = self.store.settings().config_blob.clone();
        match self.store.put(&name, &bytes, &WriteIf::Absent).await {
            Ok(etag) => {
                tracing::info!(blob = %self.description, "config blob created from the local config");
                self.found(BlobVersion { bytes, etag }, false).await;
            }
            // Another replica (or control) created it first: read next round.
            Err(crate::blob::BlobError::Conflict) => {}
            Err(err) => {
                tracing::warn!(error = %err, blob = %self.description, "could not create the config blob")
            }
        }
    }

    fn update(&self, change: impl FnOnce(&mut BlobStatus)) {
        let mut status = self.shared.status.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(blob) = status.blob.as_mut() {
            change(blob);
        }
    }
}
