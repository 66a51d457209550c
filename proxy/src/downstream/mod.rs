//! Accepting a request from the client: its key, checked before the body is read, and its body,
//! read under the size limit and inspected once.

pub mod body;
pub mod client_keys;
