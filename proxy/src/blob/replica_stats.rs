//! This replica's statistics in Blob Storage, for control to add up with the other replicas':
//! the counters as `<stats prefix><replica>.json` and the usage history's files as
//! `<stats prefix><replica>/usage-*.bin`, each copied after the local write when it changed.
//! At start, a replica without a local stats.json takes its counters back from its blob, and
//! one without any usage history file its history's files (a new container keeps the name of
//! the one it replaces, and would otherwise overwrite that replica's history with an empty one).
//! Off the request path; blocking file reads run on the blocking pool.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::Mutex;

use super::{BlobStore, Fetched, WriteIf};
use crate::bookkeeping::accounting::Accounting;
use crate::bookkeeping::history;
use crate::process::digest::sha256_hex;

/// The largest statistics blob read back.
const STATS_BLOB_LIMIT: usize = 16 * 1024 * 1024;
/// The largest usage history blob read back (a year of 1,000 series in every bucket: 30 MB).
const HISTORY_BLOB_LIMIT: usize = 256 * 1024 * 1024;

pub struct ReplicaStats {
    store: BlobStore,
    /// Where the usage history's files are (none when it is off).
    history_dir: Option<PathBuf>,
    /// The SHA-256 of each blob as last copied, by blob name.
    copied: Mutex<HashMap<String, String>>,
}

impl ReplicaStats {
    pub fn new(store: BlobStore, history_dir: Option<PathBuf>) -> Arc<ReplicaStats> {
        Arc::new(ReplicaStats {
            store,
            history_dir,
            copied: Mutex::new(HashMap::new()),
        })
    }

    fn replica(&self) -> &str {
        &self.store.settings().replica
    }

    /// Copies the counters and the history's files that changed since the last copy.
    pub async fn copy(&self, accounting: &Arc<Accounting>) {
        let mut copied = self.copied.lock().await;
        let settings = self.store.settings();
        match serde_json::to_vec(&accounting.stats.snapshot()) {
            Ok(bytes) => {
                let name = settings.stats_blob(self.replica());
                self.copy_one(&mut copied, name, bytes).await;
            }
            Err(err) => tracing::warn!(error = %err, "could not encode the statistics"),
        }
        let Some(dir) = self.history_dir.clone() else {
            return;
        };
        let files = tokio::task::spawn_blocking(move || read_history_files(&dir))
            .await
            .unwrap_or_default();
        for (file_name, bytes) in files {
            let name = format!("{}{}/{file_name}", settings.stats_prefix(), self.replica());
            self.copy_one(&mut copied, name, bytes).await;
        }
    }

    async fn copy_one(&self, copied: &mut HashMap<String, String>, name: String, bytes: Vec<u8>) {
        let sha256 = sha256_hex(&bytes);
        if copied.get(&name) == Some(&sha256) {
            return;
        }
        match self.store.put(&name, &bytes, &WriteIf::Always).await {
            Ok(_) => {
                copied.insert(name, sha256);
            }
            Err(err) => {
                tracing::warn!(error = %err, blob = %name, "could not copy the statistics to Blob Storage")
            }
        }
    }

    /// Without a local stats.json (a new container), this replica's counters are taken back
    /// from its blob; without any usage history file, the history's files. Runs before either
    /// is loaded.
    pub async fn restore(&self, stats_path: &Path) {
        if !stats_path.exists() {
            let name = self.store.settings().stats_blob(self.replica());
            self.restore_one(&name, stats_path, STATS_BLOB_LIMIT, "statistics")
                .await;
        }
        let Some(dir) = &self.history_dir else {
            return;
        };
        let paths = history::file_paths(dir);
        if paths.iter().any(|path| path.exists()) {
            return;
        }
        for path in paths {
            let Some(file_name) = path.file_name().map(|n| n.to_string_lossy().into_owned()) else {
                continue;
            };
            let name = format!(
                "{}{}/{file_name}",
                self.store.settings().stats_prefix(),
                self.replica()
            );
            self.restore_one(&name, &path, HISTORY_BLOB_LIMIT, "usage history file")
                .await;
        }
    }

    async fn restore_one(&self, name: &str, path: &Path, limit: usize, what: &'static str) {
        match self.store.fetch(name, None, limit).await {
            Ok(Fetched::Found(version)) => {
                let path = path.to_path_buf();
                let written = tokio::task::spawn_blocking(move || {
                    crate::process::atomic_file::write_atomically(&path, &version.bytes)
                })
                .await;
                match written {
                    Ok(Ok(())) => tracing::info!(blob = %name, "{what} restored from Blob Storage"),
                    Ok(Err(err)) => {
                        tracing::warn!(error = %err, blob = %name, "could not write the {what} restored from Blob Storage")
                    }
                    Err(_) => {}
                }
            }
            Ok(_) => {}
            Err(err) => {
                tracing::warn!(error = %err, blob = %name, "could not read the {what} from Blob Storage; starting without it")
            }
        }
    }
}

/// The usage history's files that exist in `dir`, by file name.
fn read_history_files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    history::file_paths(dir)
        .into_iter()
        .filter_map(|path| {
            let bytes = std::fs::read(&path).ok()?;
            let name = path.file_name()?.to_string_lossy().into_owned();
            Some((name, bytes))
        })
        .collect()
}
