//! Replacing a file so that a reader sees the old content or the new one, never a half-written
//! file: config.json, its backup and the Caddyfile (control), stats.json (proxy); and creating a
//! file that must not exist yet (config.json on first start) without ever replacing one. Blocking.
//!
//! The temporary file (`.NAME.PID.N.tmp` beside the file) is readable by its owner only until
//! the moment before the rename; the temporaries a killed writer left behind are removed by
//! `remove_stale_temporaries` at the writer's next start.

use std::fs::{self, File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context as _;

/// Numbers the temporary files of this process.
static SEQUENCE: AtomicU64 = AtomicU64::new(0);

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

/// Creates `path` holding `bytes` unless something is already there (a file, a directory, a
/// symlink, even a dangling one); returns whether it created the file. A reader sees no file or
/// the whole content, never part of it, and a file that appears meanwhile (another process
/// creating it at the same moment) is never replaced. The new file is readable by its owner
/// only. The parent directory is created when missing.
pub fn create_new(path: &Path, bytes: &[u8]) -> anyhow::Result<bool> {
    if fs::symlink_metadata(path).is_ok() {
        return Ok(false);
    }
    let (dir, file_name) = split(path)?;
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    // Not named like the temporaries of `write_atomically`, which another process's
    // `remove_stale_temporaries` may remove while this one is being linked.
    let tmp = dir.join(format!(
        ".{file_name}.new.{}.{}.tmp",
        std::process::id(),
        SEQUENCE.fetch_add(1, Ordering::Relaxed)
    ));
    write_file(&tmp, bytes)?;
    // A hard link fails when the target exists: the one atomic "create, never replace".
    let created = match fs::hard_link(&tmp, path) {
        Ok(()) => Ok(true),
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        // Some file systems (SMB shares among them) have no hard links: a rename, after one
        // more look. Another process creating the file between the two can only be the other
        // binary writing the same bytes.
        Err(_) if fs::symlink_metadata(path).is_ok() => Ok(false),
        Err(_) => fs::rename(&tmp, path)
            .map(|()| true)
            .with_context(|| format!("creating {}", path.display())),
    };
    let _ = fs::remove_file(&tmp);
    if let Err(err) = File::open(dir).and_then(|d| d.sync_all()) {
        tracing::debug!(error = %err, "directory fsync not supported");
    }
    created
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
    let tmp = dir.join(format!(
        ".{file_name}.{}.{}.tmp",
        std::process::id(),
        SEQUENCE.fetch_add(1, Ordering::Relaxed)
    ));
    write_file(&tmp, bytes)?;
    Ok(tmp)
}

/// A new owner-only file holding `bytes`, synced to disk; removed again when writing fails.
fn write_file(tmp: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    let written = file
        .write_all(bytes)
        .context("writing")
        .and_then(|()| file.sync_all().context("fsync"));
    if written.is_err() {
        let _ = fs::remove_file(tmp);
    }
    written
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
    fn create_new_never_replaces_what_is_there() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sub/config.json");
        assert!(create_new(&path, b"first").expect("creates"));
        assert!(!create_new(&path, b"second").expect("no error"));
        assert_eq!(fs::read(&path).expect("read"), b"first");
        let dangling = dir.path().join("link.json");
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(dir.path().join("nowhere"), &dangling).expect("symlink");
            assert!(!create_new(&dangling, b"x").expect("no error"));
            assert!(fs::read(&dangling).is_err(), "the link target was created");
        }
        let left: Vec<_> = fs::read_dir(dir.path().join("sub"))
            .expect("dir")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(left, vec![std::ffi::OsString::from("config.json")]);
    }

    #[test]
    fn processes_creating_the_same_file_at_once_create_it_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("config.json");
        let created: usize = std::thread::scope(|scope| {
            let racers: Vec<_> = (0..8)
                .map(|_| scope.spawn(|| create_new(&path, b"same bytes").expect("no error")))
                .collect();
            racers
                .into_iter()
                .map(|racer| usize::from(racer.join().expect("joins")))
                .sum()
        });
        assert_eq!(created, 1);
        assert_eq!(fs::read(&path).expect("read"), b"same bytes");
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
