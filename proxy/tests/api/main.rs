//! Integration tests: the proxy on a random loopback port against the fake Foundry upstream.

mod helpers;

mod azure_paths;
mod blob;
mod client_keys;
mod endpoints;
mod entra;
mod images;
mod key_limits;
mod ops_contract;
mod pools;
mod process;
mod redis_entra;
mod redis_server;
mod reload;
mod retries;
mod rewriting;
mod shared_limits;
mod stats;
mod streaming;
mod timeouts;
mod translation;
mod uploads;
mod usage;
