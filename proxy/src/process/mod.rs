//! Process plumbing both binaries share: settings from the environment and the command line
//! that lists them (`cli`), logging, stop signals, atomic file replacement, config.json created
//! from the example on first start, the bounded read of a file that must be regular
//! (config.json), the content hash of config files and the wall clock. Knows nothing of requests, and of the config schema only that the example is one.

pub mod atomic_file;
pub mod cli;
pub mod clock;
pub mod digest;
pub mod env;
pub mod first_start;
pub mod regular_file;
pub mod signals;
pub mod telemetry;
