//! Hot reload of config.json: file events on its directory (debounced; atomic renames and
//! in-place writes alike) plus a content-hash poll for mounts that deliver no events (SMB).
//! A valid file swaps the snapshot, and the log says what changed (entries and sections by name,
//! and when the file is valid again after a refusal); an invalid one is refused with every
//! problem it has, and the last good config serves.
//! The file is read only when it is a regular file (a symlink's target included) of at most
//! `CONFIG_FILE_LIMIT` bytes; anything else, and a missing or unreadable file, is refused like an
//! invalid file.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::process::digest::sha256_hex;
use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;

use crate::config::{self, Config, ConfigChanges, ConfigIssue};
use crate::ops::contract::RejectedConfig;
use crate::process::clock::now_ms;
use crate::process::regular_file::{CONFIG_FILE_LIMIT, FileError, read_regular_file};
use crate::snapshot::{Shared, Snapshot};

const DEBOUNCE: Duration = Duration::from_millis(100);

/// Reads and validates the config file (blocking I/O and parsing: call off the reactor).
pub fn read_config(path: &Path) -> anyhow::Result<(Config, String)> {
    let bytes = read_regular_file(path, CONFIG_FILE_LIMIT)?;
    let hash = sha256_hex(&bytes);
    let config = config::load(&bytes)?;
    Ok((config, hash))
}

/// Logs what an operator should know about a config that loads: keys without effect and
/// upstreams still on the placeholder endpoint.
pub fn log_notes(config: &Config) {
    for note in &config.ignored {
        tracing::info!(note = %note, "config key has no effect");
    }
    for (index, upstream) in config.upstreams.iter().enumerate() {
        if upstream.placeholder {
            tracing::warn!(
                upstream = %upstream.name,
                field = %format!("upstreams[{index}].baseUrl"),
                "upstream still has the placeholder endpoint; its models answer 503 until it is set"
            );
        }
    }
}

/// Watches `path` until the returned handle is dropped or the process ends.
pub struct ConfigWatcher {
    _watcher: Option<notify::RecommendedWatcher>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ConfigWatcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub fn watch(path: PathBuf, shared: Arc<Shared>, poll: Duration, events: bool) -> ConfigWatcher {
    let (tx, mut rx) = mpsc::channel::<()>(1);
    let file_name = path.file_name().map(|n| n.to_os_string());
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    let watcher = if events {
        let watched = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            let relevant = match &event {
                // Opening or reading the file changes nothing; the reload's own read of it would
                // otherwise trigger the next reload, ten times a second for ever.
                Ok(event) if is_read_only(&event.kind) => false,
                Ok(event) => {
                    event.paths.is_empty()
                        || event
                            .paths
                            .iter()
                            .any(|p| p.file_name() == file_name.as_deref())
                }
                Err(_) => true,
            };
            if relevant {
                // A full channel already holds a pending reload; that one reads the latest file.
                let _ = tx.try_send(());
            }
        })
        .and_then(|mut w| w.watch(&dir, RecursiveMode::NonRecursive).map(|()| w));
        match watched {
            Ok(w) => Some(w),
            Err(err) => {
                tracing::warn!(error = %err, dir = %dir.display(), "file events unavailable; relying on polling");
                None
            }
        }
    } else {
        None
    };
    let task = actix_rt::spawn(async move {
        let mut ticker = actix_rt::time::interval(poll);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                Some(()) = rx.recv() => {
                    actix_rt::time::sleep(DEBOUNCE).await;
                    while rx.try_recv().is_ok() {}
                }
                _ = ticker.tick() => {}
            }
            reload_if_changed(&path, &shared).await;
        }
    });
    ConfigWatcher {
        _watcher: watcher,
        task,
    }
}

fn is_read_only(kind: &notify::EventKind) -> bool {
    use notify::event::{AccessKind, AccessMode};
    matches!(
        kind,
        notify::EventKind::Access(
            AccessKind::Read | AccessKind::Open(_) | AccessKind::Close(AccessMode::Read)
        )
    )
}

/// Applies the file when its content differs from what was last applied or rejected.
pub async fn reload_if_changed(path: &Path, shared: &Shared) {
    let mut read = read_off_reactor(path).await;
    if matches!(read, Some(Err(FileError::Missing))) {
        // Some editors unlink the file before they write the new one: look again once.
        actix_rt::time::sleep(DEBOUNCE).await;
        read = read_off_reactor(path).await;
    }
    let bytes = match read {
        Some(Ok(bytes)) => bytes,
        Some(Err(err)) => {
            refuse_unreadable(path, shared, &err);
            return;
        }
        None => return,
    };
    apply_bytes(shared, bytes, Source::File(path)).await;
}

/// What became of a config version handed to [`apply_bytes`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The content that is serving already.
    Serving,
    /// Valid: the snapshot was swapped.
    Swapped,
    /// Invalid: refused now, or before; the last good config keeps serving.
    Refused,
}

/// Where a config version was read.
#[derive(Debug, Clone, Copy)]
pub enum Source<'a> {
    File(&'a Path),
    /// The config blob (its description, never a SAS), or the local cache of it.
    Blob(&'a str),
}

impl std::fmt::Display for Source<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::File(path) => write!(f, "{}", path.display()),
            Source::Blob(blob) => f.write_str(blob),
        }
    }
}

/// Applies `bytes` (a config version read from `source`) when they differ from what was last
/// applied or rejected: a valid version swaps the snapshot, an invalid one is refused and
/// reported while the last good config serves.
pub async fn apply_bytes(shared: &Shared, bytes: Vec<u8>, source: Source<'_>) -> Applied {
    let hash = sha256_hex(&bytes);
    {
        let mut status = shared.status.lock().unwrap_or_else(|e| e.into_inner());
        if status.sha256 == hash {
            // Back to the content that is serving: nothing is rejected any more.
            if status.rejected.take().is_some() {
                tracing::info!(
                    generation = status.generation,
                    source = %source,
                    "config is back to the version that is serving; nothing is refused any more"
                );
            }
            return Applied::Serving;
        }
        if status.rejected.as_ref().is_some_and(|r| r.sha256 == hash) {
            return Applied::Refused;
        }
    }
    let serving = shared.snapshot.load_full();
    let parsed = tokio::task::spawn_blocking(move || {
        config::load(&bytes).map(|config| {
            let changes = ConfigChanges::between(&serving.config.raw, &config.raw);
            (config, changes)
        })
    })
    .await;
    let Ok(parsed) = parsed else {
        return Applied::Refused;
    };
    match parsed {
        Ok((config, changes)) => {
            let snapshot = Snapshot::build(config, &shared.credentials, &shared.pools);
            let mut status = shared.status.lock().unwrap_or_else(|e| e.into_inner());
            log_notes(&snapshot.config);
            status.generation += 1;
            status.loaded_at_ms = snapshot.loaded_at_ms;
            status.sha256 = hash;
            let was_refused = status.rejected.take().is_some();
            status.ignored_keys = snapshot.config.ignored.clone();
            shared.snapshot.store(Arc::new(snapshot));
            shared.readiness.config_loaded();
            if was_refused {
                tracing::info!(generation = status.generation, changes = %changes, "config valid again and reloaded");
            } else {
                tracing::info!(generation = status.generation, changes = %changes, "config reloaded");
            }
            Applied::Swapped
        }
        Err(err) => {
            match source {
                Source::File(path) => {
                    tracing::error!(error = %err, path = %path.display(), "config file refused; the previous config keeps serving");
                }
                Source::Blob(blob) => {
                    tracing::error!(error = %err, blob, "config blob refused; the previous config keeps serving");
                }
            }
            let mut status = shared.status.lock().unwrap_or_else(|e| e.into_inner());
            status.rejected = Some(RejectedConfig {
                at_ms: now_ms(),
                sha256: hash,
                issues: err.issues(),
            });
            Applied::Refused
        }
    }
}

async fn read_off_reactor(path: &Path) -> Option<Result<Vec<u8>, FileError>> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || read_regular_file(&path, CONFIG_FILE_LIMIT))
        .await
        .ok()
}

/// Reports a file that could not be read as a config (once per distinct problem); the previous
/// config keeps serving. Such a refusal has no content hash.
fn refuse_unreadable(path: &Path, shared: &Shared, err: &FileError) {
    let issues = vec![ConfigIssue {
        path: "(file)".into(),
        message: err.to_string(),
    }];
    let mut status = shared.status.lock().unwrap_or_else(|e| e.into_inner());
    if status
        .rejected
        .as_ref()
        .is_some_and(|r| r.sha256.is_empty() && r.issues == issues)
    {
        return;
    }
    tracing::error!(error = %err, path = %path.display(), "config file refused; the previous config keeps serving");
    status.rejected = Some(RejectedConfig {
        at_ms: now_ms(),
        sha256: String::new(),
        issues,
    });
}
