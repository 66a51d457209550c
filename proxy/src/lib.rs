//! The data plane of the gateway: the OpenAI API in front of Azure AI Foundry.

pub mod accounting;
pub mod atomic_file;
pub mod client_keys;
pub mod config;
pub mod credentials;
pub mod errors;
pub mod handlers;
pub mod headers;
pub mod images;
pub mod ops;
pub mod recent;
pub mod relay;
pub mod reload;
pub mod request_body;
pub mod retry;
pub mod routing;
pub mod settings;
pub mod snapshot;
pub mod sse;
pub mod startup;
pub mod stats;
pub mod telemetry;
pub mod transport;
pub mod upstream;
pub mod usage;
