//! The functions of the request path that read untrusted bytes, gathered for the fuzz targets
//! in `fuzz/`. Not an API of the gateway: it only re-exports, and adds no behaviour.

pub use crate::config::load as load_config;
pub use crate::downstream::body::inspect as inspect_body;
pub use crate::relay::sse::SseUsageScanner;
pub use crate::relay::usage::Usage;
pub use crate::rewrite::images::ImageService;
pub use crate::rewrite::images::codec::{Limits, compress as compress_image};
pub use crate::rewrite::images::decode_base64;
pub use crate::rewrite::images::spans::{Shape as ImageShape, find as find_images};
pub use crate::rewrite::splice::{Edit, apply as apply_edits};
pub use crate::rewrite::upstream_body;
