//! Writing JSON files (config.json) as control writes them: replaced atomically with the
//! proxy's own writer, so that a watching proxy never reads half a file.

use std::path::Path;

use serde_json::Value;

/// Replaces `path` with `value` as pretty JSON; fails the test when it cannot.
pub fn write_json(path: &Path, value: &Value) {
    if let Err(err) = try_write_json(path, value) {
        panic!("writing {}: {err:#}", path.display());
    }
}

/// Replaces `path` with `value` as pretty JSON.
pub fn try_write_json(path: &Path, value: &Value) -> anyhow::Result<()> {
    let bytes = serde_json::to_vec_pretty(value)?;
    proxy::process::atomic_file::write_atomically(path, &bytes)
}
