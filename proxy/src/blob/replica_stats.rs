//! This replica's statistics in Blob Storage, for control to add up with the other replicas':
//! the counters as `<stats prefix><replica>.json` and the usage history's files as
//! `<stats prefix><replica>/usage-*.bin`, each copied after the local write when it changed.
//! At start, a replica without a local stats.json takes its counters back from its blob.
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
    /// from its blob.
    pub async fn restore(&self, stats_path: &Path) {
        if stats_path.exists() {
            return;
        }
        let name = self.store.settings().stats_blob(self.replica());
        if let Ok(Fetched::Found(version)) = self.store.fetch(&name, None, STATS_BLOB_LIMIT).await {
            let path = stats_path.to_path_buf();
            let written = tokio::task::spawn_blocking(move || {
                crate::process::atomic_file::write_atomically(&path, &version.bytes)
            })
            .await;
            if let Ok(Ok(())) = written {
                tracing::info!(blob = %name, "statistics restored from Blob Storage");
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
