//! The one config schema of the gateway: raw serde types (`raw`), the validated model (`model`)
//! and the rules between them (`validate`). Free of actix and awc so both binaries can use it.

mod admin;
mod caddy;
mod host_port;
mod model;
pub mod raw;
mod validate;

pub use admin::AdminPath;
pub use caddy::{DomainName, EmailAddress};
pub use host_port::{Host, HostPort};
pub use model::*;
pub use validate::{ConfigError, ConfigIssue, parse_raw, validate};

/// Parses and validates config.json bytes in one step.
pub fn load(bytes: &[u8]) -> Result<Config, ConfigError> {
    validate(parse_raw(bytes)?)
}
