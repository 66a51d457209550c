//! Process plumbing shared by both binaries: logging set-up and atomic file replacement.

pub mod atomic_file;
pub mod telemetry;
