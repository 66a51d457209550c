//! Everything control does with Caddy: render the Caddyfile (`caddyfile`), keep it in the data
//! dir in step with config.json (`sync`), load it through the admin API (`admin`, `loader`),
//! and read certificates and TLS log lines for the status view.

pub mod admin;
pub mod caddyfile;
pub mod certificates;
pub mod loader;
pub mod sync;
pub mod tls_log;
