//! Counters of the image compressor: images seen, compressed, kept by reason, bytes before and
//! after, time on the workers and delay added to requests. In memory since the process started
//! (not written to stats.json); atomics only, so counting never blocks a request.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;

use crate::ops::contract::ImageStatsData;
use crate::ops::metrics;
use crate::process::clock::now_ms;

/// Why an image was forwarded as it came.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// Under `minBytes` and within `maxSize`: nothing to gain worth a second generation of loss.
    Small,
    /// Re-encoding did not make it smaller.
    NotSmaller,
    Animated,
    /// Transparent pixels and a target format without alpha.
    Transparent,
    /// Not JPEG, PNG, GIF or WebP (SVG, BMP, TIFF, HEIC, CMYK JPEG...).
    UnsupportedFormat,
    /// Corrupt or truncated image data.
    Undecodable,
    /// The payload is not base64.
    BadBase64,
    /// Past the decode limits (dimensions, pixels, memory).
    TooLarge,
    /// The worker queue was full.
    Busy,
    /// The encoder failed or a job panicked.
    Failed,
}

impl SkipReason {
    pub const ALL: [SkipReason; 10] = [
        SkipReason::Small,
        SkipReason::NotSmaller,
        SkipReason::Animated,
        SkipReason::Transparent,
        SkipReason::UnsupportedFormat,
        SkipReason::Undecodable,
        SkipReason::BadBase64,
        SkipReason::TooLarge,
        SkipReason::Busy,
        SkipReason::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::Small => "small",
            SkipReason::NotSmaller => "not_smaller",
            SkipReason::Animated => "animated",
            SkipReason::Transparent => "transparent",
            SkipReason::UnsupportedFormat => "unsupported_format",
            SkipReason::Undecodable => "undecodable",
            SkipReason::BadBase64 => "bad_base64",
            SkipReason::TooLarge => "too_large",
            SkipReason::Busy => "busy",
            SkipReason::Failed => "failed",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

#[derive(Default)]
pub struct ImageStats {
    since_ms: u64,
    requests: AtomicU64,
    seen: AtomicU64,
    compressed: AtomicU64,
    duplicates: AtomicU64,
    skipped: [AtomicU64; SkipReason::ALL.len()],
    bytes_before: AtomicU64,
    bytes_after: AtomicU64,
    work_us: AtomicU64,
    delay_us: AtomicU64,
    delay_us_max: AtomicU64,
    busy_requests: AtomicU64,
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

impl ImageStats {
    pub fn new() -> ImageStats {
        ImageStats {
            since_ms: now_ms(),
            ..ImageStats::default()
        }
    }

    /// One occurrence found in a body, with its decoded size and what was forwarded for it.
    pub fn image(&self, outcome: Result<(), SkipReason>, bytes_before: usize, bytes_after: usize) {
        self.seen.fetch_add(1, Ordering::Relaxed);
        match outcome {
            Ok(()) => self.compressed.fetch_add(1, Ordering::Relaxed),
            Err(reason) => self.skipped[reason.index()].fetch_add(1, Ordering::Relaxed),
        };
        self.bytes_before
            .fetch_add(bytes_before as u64, Ordering::Relaxed);
        self.bytes_after
            .fetch_add(bytes_after as u64, Ordering::Relaxed);
    }

    pub fn duplicate(&self) {
        self.duplicates.fetch_add(1, Ordering::Relaxed);
    }

    pub fn work(&self, spent: Duration) {
        self.work_us.fetch_add(micros(spent), Ordering::Relaxed);
    }

    /// A request with images is done; `delay` is the time its body spent in the compressor.
    pub fn request(&self, delay: Duration) {
        let us = micros(delay);
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.delay_us.fetch_add(us, Ordering::Relaxed);
        self.delay_us_max.fetch_max(us, Ordering::Relaxed);
    }

    pub fn busy_request(&self) {
        self.busy_requests.fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> ImageStatsData {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ImageStatsData {
            since_ms: self.since_ms,
            requests: load(&self.requests),
            seen: load(&self.seen),
            compressed: load(&self.compressed),
            skipped: SkipReason::ALL
                .iter()
                .map(|r| (r.as_str().to_string(), load(&self.skipped[r.index()])))
                .collect(),
            duplicates: load(&self.duplicates),
            bytes_before: load(&self.bytes_before),
            bytes_after: load(&self.bytes_after),
            work_ms: load(&self.work_us) / 1000,
            delay_ms: load(&self.delay_us) / 1000,
            delay_ms_max: load(&self.delay_us_max) / 1000,
            busy_requests: load(&self.busy_requests),
        }
    }

    /// Encodes the counters for `/metrics`.
    pub fn encode_metrics(&self, encoder: &mut DescriptorEncoder) -> fmt::Result {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let seconds = |c: &AtomicU64| load(c) as f64 / 1_000_000.0;
        for (name, help, value) in [
            (
                "gateway_images_requests",
                "Requests whose body held inline images",
                load(&self.requests),
            ),
            (
                "gateway_images_seen",
                "Inline request images found",
                load(&self.seen),
            ),
            (
                "gateway_images_compressed",
                "Request images replaced by a smaller re-encoding",
                load(&self.compressed),
            ),
            (
                "gateway_images_duplicates",
                "Repeated images in one request, processed once",
                load(&self.duplicates),
            ),
            (
                "gateway_images_busy_requests",
                "Requests forwarded unexamined because the worker queue was full",
                load(&self.busy_requests),
            ),
        ] {
            ConstCounter::new(value).encode(metrics::counter(encoder, name, help)?)?;
        }
        let mut skipped = metrics::counter(
            encoder,
            "gateway_images_skipped",
            "Request images forwarded unchanged, by reason",
        )?;
        for reason in SkipReason::ALL {
            let count = load(&self.skipped[reason.index()]);
            metrics::labelled(&mut skipped, &[("reason", reason.as_str())], count)?;
        }
        let mut bytes = metrics::counter(
            encoder,
            "gateway_images_bytes",
            "Decoded image bytes received (before) and forwarded (after)",
        )?;
        metrics::labelled(&mut bytes, &[("stage", "before")], load(&self.bytes_before))?;
        metrics::labelled(&mut bytes, &[("stage", "after")], load(&self.bytes_after))?;
        for (name, help, total) in [
            (
                "gateway_images_work_seconds",
                "Worker time spent decoding, resizing and encoding",
                seconds(&self.work_us),
            ),
            (
                "gateway_images_delay_seconds",
                "Time request bodies spent in the image compressor",
                seconds(&self.delay_us),
            ),
        ] {
            ConstCounter::new(total).encode(metrics::counter(encoder, name, help)?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_are_counted_by_reason_with_bytes() {
        let stats = ImageStats::new();
        stats.image(Ok(()), 1000, 200);
        stats.image(Err(SkipReason::NotSmaller), 50, 50);
        stats.image(Err(SkipReason::NotSmaller), 50, 50);
        stats.duplicate();
        stats.request(Duration::from_millis(12));
        stats.request(Duration::from_millis(30));
        let data = stats.snapshot();
        assert_eq!((data.seen, data.compressed, data.duplicates), (3, 1, 1));
        assert_eq!(data.skipped["not_smaller"], 2);
        assert_eq!(data.skipped["animated"], 0);
        assert_eq!((data.bytes_before, data.bytes_after), (1100, 300));
        assert_eq!(
            (data.requests, data.delay_ms, data.delay_ms_max),
            (2, 42, 30)
        );
    }

    #[test]
    fn prometheus_lines_carry_every_reason() {
        let stats = ImageStats::new();
        stats.image(Err(SkipReason::BadBase64), 0, 0);
        stats.work(Duration::from_millis(1500));
        let text = metrics::render_with(move |encoder| stats.encode_metrics(encoder));
        assert!(
            text.contains("gateway_images_skipped_total{reason=\"bad_base64\"} 1"),
            "{text}"
        );
        assert!(text.contains("gateway_images_skipped_total{reason=\"busy\"} 0"));
        assert!(text.contains("gateway_images_work_seconds_total 1.5"));
        assert!(text.contains("# TYPE gateway_images_seen_total counter"));
    }
}
