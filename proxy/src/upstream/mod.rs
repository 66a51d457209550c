//! Choosing and calling the upstream: the route of a model, the credential that signs the call,
//! the pooled transport, and the exchange with its retries up to the response head.

pub mod credentials;
pub mod exchange;
pub mod retry;
pub mod routing;
pub mod transport;
