//! The control plane of the gateway: the admin UI and API, the only writer of config.json and
//! the Caddyfile, and the only client of Caddy's admin API.

pub mod admin_auth;
pub mod api;
pub mod blob_backend;
pub mod caddy;
pub mod cause;
pub mod client_keys;
pub mod cross_site;
pub mod errors;
pub mod file_shape;
pub mod host_check;
pub mod masking;
pub mod mount;
pub mod proxy_ops;
pub mod settings;
pub mod startup;
pub mod store;
pub mod throttle;
pub mod ui;
pub mod warnings;
