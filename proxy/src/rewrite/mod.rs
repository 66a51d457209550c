//! What the upstream gets instead of what the client sent: the headers allowed across, and the
//! body with its images compressed.

pub mod headers;
pub mod images;
