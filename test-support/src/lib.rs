//! What the workspace's test suites share, so that each exists once: waits on a condition
//! (`wait`), free loopback ports (`ports`), request fixtures (`fixtures`), the Azure Storage
//! emulator as a child process (`azurite`), a TCP relay a test can cut (`relay`), the checks that
//! keep `--help` and the docs complete (`env_docs`), and with the `proxy`
//! feature the atomic JSON writer (`json_file`) and the in-process proxy (`in_process`).
//!
//! Used only as a dev-dependency, and by the gateway benchmark, which is not shipped. Without
//! the `proxy` feature it depends on neither the proxy nor the fake upstream, so fake-foundry's
//! own tests can use it.

pub mod azurite;
pub mod env_docs;
pub mod fixtures;
pub mod ports;
pub mod relay;
pub mod wait;

#[cfg(feature = "proxy")]
pub mod in_process;
#[cfg(feature = "proxy")]
pub mod json_file;

pub use fixtures::chat_body;
pub use ports::{free_port, free_ports};
pub use wait::{TimedOut, eventually, wait_for, wait_until, wait_until_blocking};

#[cfg(feature = "proxy")]
pub use in_process::InProcessProxy;
#[cfg(feature = "proxy")]
pub use json_file::{try_write_json, write_json};
