//! Choosing and calling the upstream: the pool of deployments serving a model, the route of a
//! deployment, the credential that signs the call, the pooled transport, one exchange up to the
//! response head, and the dispatch that walks the pool with failover and retries.

pub mod credentials;
pub mod dispatch;
pub mod exchange;
pub mod pool;
pub mod retry;
pub mod routing;
pub mod transport;
