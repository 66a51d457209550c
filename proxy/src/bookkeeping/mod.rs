//! What the gateway keeps about the requests it served: the one end-of-request record, the
//! counters per model and key, the usage history in time buckets, and the recent-requests
//! rings. Holds no request content.

pub mod accounting;
pub mod history;
pub mod recent;
pub mod stats;
