//! Accepting a request from the client: its key, checked before the body is read, and its body,
//! read under the size limit and inspected once. What the gateway repeats of the client's input
//! is bounded (`bounded`).

pub mod body;
pub mod bounded;
pub mod client_keys;
