//! config.json as the local cache of the config blob, and the record of where its content came
//! from (`config.json.blob`: the content's SHA-256, the blob ETag, and whether it is a change
//! saved while Blob Storage was unreachable and not pushed yet). Every read and write of the pair
//! holds an exclusive lock (`config.json.lock`), so the proxy and control in one container never
//! see one file without the other.
//!
//! The rule for hand edits in blob mode: config.json is overwritten from the blob and is never
//! applied when edited by hand. Content that does not match the record is moved aside as
//! `config.local-edit-<unix ms>.json` (never deleted) and the cache is restored; both binaries
//! report it. Blocking I/O: call off the reactor.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use crate::process::atomic_file::write_atomically;
use crate::process::clock::now_ms;
use crate::process::digest::sha256_hex;
use crate::process::regular_file::{CONFIG_FILE_LIMIT, FileError, read_regular_file};

/// Where the cached content came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheRecord {
    pub sha256: String,
    /// The blob's ETag the content was read from; for a pending change, the ETag it was based
    /// on (empty: the blob did not exist).
    pub etag: String,
    /// A change saved while Blob Storage was unreachable, to be pushed when it is back.
    #[serde(default)]
    pub pending: bool,
}

/// config.json as it is now, judged against its record.
#[derive(Debug)]
pub enum CacheState {
    Missing,
    /// Not a regular file of at most `CONFIG_FILE_LIMIT` bytes, or unreadable.
    Unreadable(String),
    /// Content without a record: a file from before blob mode (or copied in by hand).
    Untracked(Vec<u8>),
    /// Content that matches its record.
    Tracked(Vec<u8>, CacheRecord),
    /// Content that does not match its record: edited by hand.
    Edited(Vec<u8>, CacheRecord),
}

impl CacheState {
    pub fn pending(&self) -> Option<(&[u8], &CacheRecord)> {
        match self {
            CacheState::Tracked(bytes, record) if record.pending => Some((bytes, record)),
            _ => None,
        }
    }
}

/// A file moved aside, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetAside {
    pub path: String,
    pub at_ms: u64,
}

pub struct LocalCache {
    path: PathBuf,
    record_path: PathBuf,
    lock_path: PathBuf,
}

impl LocalCache {
    pub fn new(config_path: &Path) -> LocalCache {
        let name = config_path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "config.json".into());
        LocalCache {
            path: config_path.to_path_buf(),
            record_path: config_path.with_file_name(format!("{name}.blob")),
            lock_path: config_path.with_file_name(format!("{name}.lock")),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn lock(&self) -> anyhow::Result<File> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&self.lock_path)
            .with_context(|| format!("opening {}", self.lock_path.display()))?;
        file.lock()
            .with_context(|| format!("locking {}", self.lock_path.display()))?;
        Ok(file)
    }

    pub fn read(&self) -> anyhow::Result<CacheState> {
        let _lock = self.lock()?;
        Ok(self.read_locked())
    }

    fn read_locked(&self) -> CacheState {
        let bytes = match read_regular_file(&self.path, CONFIG_FILE_LIMIT) {
            Ok(bytes) => bytes,
            Err(FileError::Missing) => return CacheState::Missing,
            Err(err) => return CacheState::Unreadable(err.to_string()),
        };
        match self.record() {
            None => CacheState::Untracked(bytes),
            Some(record) if record.sha256 == sha256_hex(&bytes) => {
                CacheState::Tracked(bytes, record)
            }
            Some(record) => CacheState::Edited(bytes, record),
        }
    }

    fn record(&self) -> Option<CacheRecord> {
        let bytes = read_regular_file(&self.record_path, 64 * 1024).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    fn write_locked(&self, bytes: &[u8], record: &CacheRecord) -> anyhow::Result<()> {
        let mut json = serde_json::to_vec_pretty(record)?;
        json.push(b'\n');
        write_atomically(&self.record_path, &json)?;
        write_atomically(&self.path, bytes)
    }

    /// Writes a version read from the blob, unless a pending change holds the cache (that one
    /// is pushed, or set aside, first). A hand edit in the way is set aside first and returned.
    pub fn store_from_blob(&self, bytes: &[u8], etag: &str) -> anyhow::Result<StoreOutcome> {
        let _lock = self.lock()?;
        let state = self.read_locked();
        if state.pending().is_some() {
            return Ok(StoreOutcome::KeptPending);
        }
        if let CacheState::Tracked(current, record) = &state
            && current == bytes
            && record.etag == etag
        {
            return Ok(StoreOutcome::Unchanged);
        }
        let aside = match state {
            CacheState::Edited(..) => Some(self.set_aside_locked("local-edit")?),
            _ => None,
        };
        self.write_locked(bytes, &record_of(bytes, etag, false))?;
        Ok(StoreOutcome::Written { aside })
    }

    /// Writes a change that could not reach the blob: `base_etag` is the version it was based
    /// on (empty when the blob did not exist).
    pub fn store_pending(&self, bytes: &[u8], base_etag: &str) -> anyhow::Result<()> {
        let _lock = self.lock()?;
        self.write_locked(bytes, &record_of(bytes, base_etag, true))
    }

    /// The pending change with `sha256` reached the blob as version `etag`.
    pub fn mark_pushed(&self, sha256: &str, etag: &str) -> anyhow::Result<()> {
        let _lock = self.lock()?;
        if let CacheState::Tracked(bytes, record) = self.read_locked()
            && record.pending
            && record.sha256 == sha256
        {
            self.write_locked(&bytes, &record_of(&bytes, etag, false))?;
        }
        Ok(())
    }

    /// The pending change with `sha256` conflicts with the blob: it is moved aside as
    /// `config.unpushed-<ms>.json` and the cache takes the blob's version.
    pub fn set_aside_pending(
        &self,
        sha256: &str,
        blob: &[u8],
        etag: &str,
    ) -> anyhow::Result<Option<SetAside>> {
        let _lock = self.lock()?;
        let CacheState::Tracked(_, record) = self.read_locked() else {
            return Ok(None);
        };
        if !record.pending || record.sha256 != sha256 {
            return Ok(None);
        }
        let aside = self.set_aside_locked("unpushed")?;
        self.write_locked(blob, &record_of(blob, etag, false))?;
        Ok(Some(aside))
    }

    /// A hand edit found by a reader: moved aside, and the cache restored to `restore` (the
    /// version serving, with its blob ETag) when given.
    pub fn set_aside_edit(
        &self,
        restore: Option<(&[u8], &str)>,
    ) -> anyhow::Result<Option<SetAside>> {
        let _lock = self.lock()?;
        if !matches!(self.read_locked(), CacheState::Edited(..)) {
            return Ok(None);
        }
        let aside = self.set_aside_locked("local-edit")?;
        match restore {
            Some((bytes, etag)) => self.write_locked(bytes, &record_of(bytes, etag, false))?,
            None => remove_if_present(&self.record_path)?,
        }
        Ok(Some(aside))
    }

    fn set_aside_locked(&self, kind: &str) -> anyhow::Result<SetAside> {
        let at_ms = now_ms();
        let stem = self
            .path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "config".into());
        let aside = self
            .path
            .with_file_name(format!("{stem}.{kind}-{at_ms}.json"));
        fs::rename(&self.path, &aside)
            .with_context(|| format!("moving {} aside", self.path.display()))?;
        tracing::warn!(kept_as = %aside.display(), kind, "config.json set aside");
        Ok(SetAside {
            path: aside.display().to_string(),
            at_ms,
        })
    }

    /// The files set aside so far (`config.<kind>-<ms>.json`), newest first: they stay until
    /// an operator removes them.
    pub fn set_aside_files(&self, kind: &str) -> Vec<SetAside> {
        let stem = self
            .path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "config".into());
        let prefix = format!("{stem}.{kind}-");
        let dir = self
            .path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let Ok(entries) = fs::read_dir(dir) else {
            return Vec::new();
        };
        let mut found: Vec<SetAside> = entries
            .flatten()
            .filter_map(|entry| {
                let name = entry.file_name().to_string_lossy().into_owned();
                let at_ms = name
                    .strip_prefix(&prefix)?
                    .strip_suffix(".json")?
                    .parse()
                    .ok()?;
                Some(SetAside {
                    path: entry.path().display().to_string(),
                    at_ms,
                })
            })
            .collect();
        found.sort_by_key(|aside| std::cmp::Reverse(aside.at_ms));
        found
    }
}

/// What `store_from_blob` did.
#[derive(Debug, PartialEq, Eq)]
pub enum StoreOutcome {
    Written { aside: Option<SetAside> },
    Unchanged,
    KeptPending,
}

fn record_of(bytes: &[u8], etag: &str, pending: bool) -> CacheRecord {
    CacheRecord {
        sha256: sha256_hex(bytes),
        etag: etag.to_string(),
        pending,
    }
}

fn remove_if_present(path: &Path) -> anyhow::Result<()> {
    match fs::remove_file(path) {
        Err(err) if err.kind() != io::ErrorKind::NotFound => {
            Err(err).with_context(|| format!("removing {}", path.display()))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache() -> (tempfile::TempDir, LocalCache) {
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = LocalCache::new(&dir.path().join("config.json"));
        (dir, cache)
    }

    #[test]
    fn a_blob_version_is_tracked_and_a_hand_edit_is_set_aside_not_lost() {
        let (_dir, cache) = cache();
        assert!(matches!(cache.read().expect("read"), CacheState::Missing));
        cache.store_from_blob(b"{}", "\"e1\"").expect("store");
        assert!(matches!(
            cache.read().expect("read"),
            CacheState::Tracked(..)
        ));
        fs::write(cache.path(), b"{\"edited\": true}").expect("edit");
        assert!(matches!(
            cache.read().expect("read"),
            CacheState::Edited(..)
        ));
        let aside = cache
            .set_aside_edit(Some((b"{}", "\"e1\"")))
            .expect("set aside")
            .expect("an edit");
        assert_eq!(
            fs::read(&aside.path).expect("kept"),
            b"{\"edited\": true}".to_vec()
        );
        assert_eq!(fs::read(cache.path()).expect("restored"), b"{}".to_vec());
        assert_eq!(cache.set_aside_files("local-edit"), vec![aside]);
    }

    #[test]
    fn a_pending_change_is_kept_until_pushed_or_set_aside() {
        let (_dir, cache) = cache();
        cache.store_from_blob(b"{}", "\"e1\"").expect("store");
        cache
            .store_pending(b"{\"a\":1}", "\"e1\"")
            .expect("pending");
        assert_eq!(
            cache
                .store_from_blob(b"{\"b\":2}", "\"e2\"")
                .expect("store"),
            StoreOutcome::KeptPending
        );
        let sha = sha256_hex(b"{\"a\":1}");
        let aside = cache
            .set_aside_pending(&sha, b"{\"b\":2}", "\"e2\"")
            .expect("aside")
            .expect("pending");
        assert_eq!(fs::read(&aside.path).expect("kept"), b"{\"a\":1}".to_vec());
        let CacheState::Tracked(bytes, record) = cache.read().expect("read") else {
            panic!("tracked");
        };
        assert_eq!(bytes, b"{\"b\":2}".to_vec());
        assert!(!record.pending);
    }
}
