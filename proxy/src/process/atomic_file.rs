//! Replacing a file so that a reader sees the old content or the new one, never a half-written
//! file: config.json, its backup and the Caddyfile (control), stats.json (proxy). Blocking.

use std::fs::{self, File, OpenOptions};
use std::io::Write as _;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context as _;

/// Replaces `path` with `bytes`: a temporary file in the same directory, fsync, rename,
/// directory fsync. The file keeps its permissions; a new one is readable by its owner only.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    static SEQUENCE: AtomicU64 = AtomicU64::new(0);
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let file_name = path
        .file_name()
        .context("path has no file name")?
        .to_string_lossy();
    let tmp = dir.join(format!(
        ".{file_name}.{}.{}.tmp",
        std::process::id(),
        SEQUENCE.fetch_add(1, Ordering::Relaxed)
    ));
    let permissions = fs::metadata(path).ok().map(|m| m.permissions());
    let result = (|| {
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options
            .open(&tmp)
            .with_context(|| format!("creating {}", tmp.display()))?;
        file.write_all(bytes).context("writing")?;
        if let Some(permissions) = permissions {
            file.set_permissions(permissions)
                .context("copying permissions")?;
        }
        file.sync_all().context("fsync")?;
        drop(file);
        fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
        // Some network file systems cannot fsync a directory; the rename is done either way.
        if let Err(err) = File::open(dir).and_then(|d| d.sync_all()) {
            tracing::debug!(error = %err, "directory fsync not supported");
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}
