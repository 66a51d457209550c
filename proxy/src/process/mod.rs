//! Process plumbing both binaries share: settings from the environment, logging, stop signals,
//! atomic file replacement, the bounded read of a file that must be regular (config.json), the
//! content hash of config files and the wall clock. Knows nothing of requests or of the config
//! schema.

pub mod atomic_file;
pub mod clock;
pub mod digest;
pub mod env;
pub mod regular_file;
pub mod signals;
pub mod telemetry;
