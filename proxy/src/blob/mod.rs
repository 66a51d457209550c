//! Azure Blob Storage as the home of the config and of each replica's statistics
//! (`PERSISTENCE_MODE=blob`): the settings (`settings`), the SDK calls (`store`), and the local
//! cache of the config blob in the data dir with its provenance record (`cache`), and this
//! replica's statistics copied beside it (`replica_stats`). Shared by both binaries; knows
//! nothing of requests.

pub mod cache;
pub mod replica_stats;
pub mod settings;
pub mod store;

pub use settings::{BlobAuth, BlobSettings, PersistenceMode};
pub use store::{BlobError, BlobStore, BlobVersion, Fetched, WriteIf};
