//! Replacing a file so that a reader sees the old content or the new one, never a half-written
//! file: config.json, its backup and the Caddyfile (control), stats.json (proxy). Blocking.
//!
//! The temporary file (`.NAME.PID.N.tmp` beside the file) is readable by its owner only until
//! the moment before the rename; the temporaries a killed writer left behind are removed by
//! `remove_stale_temporaries` at the writer's next start.

use std::fs::{self, File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context as _;

/// Replaces `path` with `bytes`: a temporary file in the same directory, fsync, rename,
/// directory fsync. The file keeps its permissions; a new one is readable by its owner only.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let (dir, file_name) = split(path)?;
    let permissions = fs::metadata(path).ok().map(|m| m.permissions());
    let mut tmp = None;
    let result = (|| {
        let written = write_temporary(dir, &file_name, bytes)?;
        let written = tmp.insert(written);
        // Only now: a temporary left by a kill before this point is owner-only.
        if let Some(permissions) = permissions {
            fs::set_permissions(written.as_path(), permissions).context("copying permissions")?;
        }
        fs::rename(written.as_path(), path)
            .with_context(|| format!("renaming to {}", path.display()))?;
        // Some network file systems cannot fsync a directory; the rename is done either way.
        if let Err(err) = File::open(dir).and_then(|d| d.sync_all()) {
            tracing::debug!(error = %err, "directory fsync not supported");
        }
        Ok(())
    })();
    if result.is_err()
        && let Some(tmp) = tmp
    {
        let _ = fs::remove_file(tmp);
    }
    result
}

/// Removes the temporary files of writes to `path` that never finished (the writer was killed),
/// except this process's own. Returns how many were removed.
pub fn remove_stale_temporaries(path: &Path) -> usize {
    let Ok((dir, file_name)) = split(path) else {
        return 0;
    };
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    let prefix = format!(".{file_name}.");
    let own = format!("{prefix}{}.", std::process::id());
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(middle) = name
            .strip_prefix(&prefix)
            .and_then(|rest| rest.strip_suffix(".tmp"))
        else {
            continue;
        };
        let ours = middle.split('.').count() == 2
            && middle.split('.').all(|part| part.parse::<u64>().is_ok());
        if !ours || name.starts_with(&own) {
            continue;
        }
        match fs::remove_file(entry.path()) {
            Ok(()) => {
                removed += 1;
                tracing::info!(file = %entry.path().display(), "removed the temporary file of an interrupted write");
            }
            Err(err) => {
                tracing::warn!(file = %entry.path().display(), error = %err, "could not remove the temporary file of an interrupted write");
            }
        }
    }
    removed
}

fn split(path: &Path) -> anyhow::Result<(&Path, String)> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let file_name = path
        .file_name()
        .context("path has no file name")?
        .to_string_lossy()
        .into_owned();
    Ok((dir, file_name))
}

/// A new owner-only file beside the target holding `bytes`, synced to disk.
fn write_temporary(dir: &Path, file_name: &str, bytes: &[u8]) -> anyhow::Result<PathBuf> {
    static SEQUENCE: AtomicU64 = AtomicU64::new(0);
    let tmp = dir.join(format!(
        ".{file_name}.{}.{}.tmp",
        std::process::id(),
        SEQUENCE.fetch_add(1, Ordering::Relaxed)
    ));
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    let written = file
        .write_all(bytes)
        .context("writing")
        .and_then(|()| file.sync_all().context("fsync"));
    if let Err(err) = written {
        let _ = fs::remove_file(&tmp);
        return Err(err);
    }
    Ok(tmp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn the_temporary_file_is_owner_only_even_when_the_target_is_not() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("config.json");
        fs::write(&path, b"{}").expect("write");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).expect("chmod");
        // What a kill right after the content is written leaves behind.
        let tmp = write_temporary(dir.path(), "config.json", b"{\"secret\": 1}").expect("tmp");
        let mode = fs::metadata(&tmp).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);

        write_atomically(&path, b"{}").expect("writes");
        let mode = fs::metadata(&path).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o644);
    }

    #[test]
    fn stale_temporaries_of_the_file_are_removed_and_nothing_else() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("config.json");
        let stale = [".config.json.4242.0.tmp", ".config.json.1.17.tmp"];
        let kept = [
            "config.json",
            ".config.json.bak.4242.0.tmp",
            ".stats.json.4242.0.tmp",
            ".config.json.notes.tmp",
            "config.json.4242.0.tmp",
        ];
        for name in stale.iter().chain(&kept) {
            fs::write(dir.path().join(name), b"x").expect("write");
        }
        let own = dir
            .path()
            .join(format!(".config.json.{}.9.tmp", std::process::id()));
        fs::write(&own, b"x").expect("write");

        assert_eq!(remove_stale_temporaries(&path), stale.len());
        for name in stale {
            assert!(!dir.path().join(name).exists(), "{name} was kept");
        }
        for name in kept {
            assert!(dir.path().join(name).exists(), "{name} was removed");
        }
        assert!(own.exists());
    }
}
