//! Integration tests: control in front of a real proxy and a fake Foundry, each on a random
//! loopback port; Caddy and headless Chromium where installed (CI installs both).

mod helpers;

mod auth;
mod blob;
mod browser;
mod browser_blob;
mod browser_daily;
mod browser_keys;
mod browser_limits;
mod browser_pools;
mod browser_usage;
mod caddy;
mod config;
mod keys;
mod operations;
mod usage;
