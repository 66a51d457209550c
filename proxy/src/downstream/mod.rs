//! Accepting a request from the client: its key, checked before the body is read (with its
//! model list, expiry and `limits`), and its body,
//! read under the size limit, a minimum rate and the memory budget of all bodies, and inspected
//! once. What the gateway repeats of the client's input
//! is bounded (`bounded`).

pub mod body;
pub mod body_budget;
pub mod bounded;
pub mod client_keys;
pub mod limits;
