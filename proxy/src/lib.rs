//! The data plane of the gateway: the OpenAI API in front of Azure AI Foundry.
//!
//! A request passes the stages in order: `downstream` (client key, body read under the limit
//! and inspected), `rewrite` (headers, images; the upstream body), `upstream` (route, credential,
//! transport, retries), `relay` (the answer back, SSE and usage read in passing). `bookkeeping`
//! closes every request once; `snapshot` holds the config a request runs with; `process` is the
//! plumbing both binaries share. `translate` turns chat completions into Responses and back, for
//! models that speak only one of them.

pub mod blob;
pub mod bookkeeping;
pub mod config;
pub mod downstream;
pub mod errors;
#[doc(hidden)]
pub mod fuzzing;
pub mod handlers;
pub mod ops;
pub mod process;
pub mod relay;
pub mod rewrite;
pub mod settings;
pub mod snapshot;
pub mod startup;
pub mod translate;
pub mod upstream;
