//! Reading a small file that anyone with access to its directory may have replaced by anything
//! (config.json): only a regular file of at most `limit` bytes is read. A symlink is followed
//! and its target must be a regular file. A FIFO, a device, a socket or a directory is refused
//! without reading it and without blocking; a larger file is refused after at most `limit + 1`
//! bytes. Blocking I/O.

use std::fs::{self, Metadata, OpenOptions};
use std::io::{self, ErrorKind, Read as _};
use std::path::Path;

/// The largest config.json either binary reads, and the largest config control writes.
pub const CONFIG_FILE_LIMIT: usize = 1024 * 1024;

/// Why a file was not read; the text names the problem for an operator, never the content.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("the file does not exist")]
    Missing,
    #[error("the file is {0}, not a regular file")]
    NotRegular(&'static str),
    #[error("the file is larger than the limit of {limit} bytes")]
    TooLarge { limit: usize },
    #[error("the file cannot be read: {0}")]
    Unreadable(io::Error),
}

impl From<io::Error> for FileError {
    fn from(err: io::Error) -> FileError {
        if err.kind() == ErrorKind::NotFound {
            FileError::Missing
        } else {
            FileError::Unreadable(err)
        }
    }
}

/// The whole content of the regular file at `path` (symlinks followed), if it holds at most
/// `limit` bytes.
pub fn read_regular_file(path: &Path, limit: usize) -> Result<Vec<u8>, FileError> {
    // Looked at before opening, so a device is never opened; looked at again on the open file,
    // in case the path was replaced in between.
    let before = fs::metadata(path)?;
    check_regular(&before, limit)?;
    let mut options = OpenOptions::new();
    options.read(true);
    // Opening a FIFO for reading would wait for a writer.
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(&mut options, libc::O_NONBLOCK);
    let file = options.open(path)?;
    let opened = file.metadata()?;
    check_regular(&opened, limit)?;
    let expected = usize::try_from(opened.len()).unwrap_or(limit).min(limit);
    let mut bytes = Vec::with_capacity(expected);
    let bound = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    file.take(bound).read_to_end(&mut bytes)?;
    if bytes.len() > limit {
        return Err(FileError::TooLarge { limit });
    }
    Ok(bytes)
}

fn check_regular(metadata: &Metadata, limit: usize) -> Result<(), FileError> {
    if !metadata.is_file() {
        return Err(FileError::NotRegular(kind_of(metadata)));
    }
    if metadata.len() > u64::try_from(limit).unwrap_or(u64::MAX) {
        return Err(FileError::TooLarge { limit });
    }
    Ok(())
}

fn kind_of(metadata: &Metadata) -> &'static str {
    let file_type = metadata.file_type();
    if file_type.is_dir() {
        return "a directory";
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt as _;
        if file_type.is_fifo() {
            return "a FIFO";
        }
        if file_type.is_char_device() || file_type.is_block_device() {
            return "a device";
        }
        if file_type.is_socket() {
            return "a socket";
        }
    }
    "something else"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_regular_file_within_the_limit_is_read_whole() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("config.json");
        fs::write(&path, b"{}").expect("write");
        assert_eq!(read_regular_file(&path, 2).expect("reads"), b"{}");
    }

    #[test]
    fn a_larger_file_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("config.json");
        fs::write(&path, b"{ }").expect("write");
        let err = read_regular_file(&path, 2).expect_err("refused");
        assert!(matches!(err, FileError::TooLarge { limit: 2 }), "{err}");
    }

    #[test]
    fn a_missing_file_and_a_directory_are_told_apart() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = read_regular_file(&dir.path().join("nope"), 10).expect_err("missing");
        assert!(matches!(missing, FileError::Missing), "{missing}");
        let directory = read_regular_file(dir.path(), 10).expect_err("directory");
        assert_eq!(
            directory.to_string(),
            "the file is a directory, not a regular file"
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_symlink_to_a_device_is_refused_without_reading_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("config.json");
        std::os::unix::fs::symlink("/dev/zero", &path).expect("symlink");
        let err = read_regular_file(&path, CONFIG_FILE_LIMIT).expect_err("refused");
        assert_eq!(err.to_string(), "the file is a device, not a regular file");
    }

    #[cfg(unix)]
    #[test]
    fn a_symlink_to_a_regular_file_is_followed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let target = dir.path().join("real.json");
        fs::write(&target, b"{}").expect("write");
        let path = dir.path().join("config.json");
        std::os::unix::fs::symlink(&target, &path).expect("symlink");
        assert_eq!(read_regular_file(&path, 10).expect("reads"), b"{}");
    }

    #[cfg(unix)]
    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("config.json");
        let made = std::process::Command::new("mkfifo")
            .arg(&path)
            .status()
            .expect("mkfifo runs");
        assert!(made.success());
        // A blocked read would hang the test; it must return at once.
        let err = read_regular_file(&path, 10).expect_err("refused");
        assert_eq!(err.to_string(), "the file is a FIFO, not a regular file");
    }
}
