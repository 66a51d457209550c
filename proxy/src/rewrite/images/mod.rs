//! Request image compression: finds inline images in a request body, re-encodes them on the
//! image worker pool and gives back an edit for each one that became smaller, for the body's
//! one splice. Never fails a request, never runs codec work, base64 or a scan of a body that
//! holds images on an async worker.

pub mod codec;
mod pool;
mod sniff;
pub(crate) mod spans;
pub mod stats;

use std::borrow::Cow;
use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::PAD_INDIFFERENT;
use base64::engine::simd::Simd;
use bytes::Bytes;
use futures_util::StreamExt as _;
use futures_util::stream::FuturesUnordered;
use memchr::memmem;

use super::splice::{Edit, UpstreamBody};
use crate::config::{ImageCompression, ImageFormat};
use codec::{Compressed, Kept, Limits};
use pool::{Busy, WorkerPool};
use spans::Shape;
use stats::{ImageStats, SkipReason};

/// Waiting jobs allowed per worker thread before images are forwarded uncompressed.
const QUEUE_PER_THREAD: usize = 64;

/// The image worker pool, its decode limits and its counters; one per process.
pub struct ImageService {
    pool: WorkerPool,
    limits: Limits,
    stats: ImageStats,
}

impl ImageService {
    /// Starts `threads` image workers (one per core is right: the work is pure CPU).
    pub fn new(threads: usize) -> std::io::Result<ImageService> {
        ImageService::with_limits(threads, Limits::default())
    }

    pub fn with_limits(threads: usize, limits: Limits) -> std::io::Result<ImageService> {
        let threads = threads.max(1);
        Ok(ImageService {
            pool: WorkerPool::new(
                threads,
                threads * QUEUE_PER_THREAD,
                codec::release_thread_buffers,
            )?,
            limits,
            stats: ImageStats::new(),
        })
    }

    pub fn stats(&self) -> &ImageStats {
        &self.stats
    }

    pub fn threads(&self) -> usize {
        self.pool.threads()
    }

    /// `body` copied into one buffer on a worker, so that the buffers it was cut from can be
    /// freed; as it is when the workers are saturated.
    pub async fn compact(&self, body: UpstreamBody) -> UpstreamBody {
        let kept = body.clone();
        match self
            .pool
            .submit(move || UpstreamBody::from(body.into_bytes()))
        {
            Ok(compacted) => compacted.await.unwrap_or(kept),
            Err(Busy) => kept,
        }
    }
}

/// Whether `body` can hold an inline image at all: two SIMD substring searches, so that a
/// request without images pays next to nothing. `data:image` without the slash also matches
/// a JSON-escaped `data:image\/png`.
pub fn may_hold_images(body: &[u8]) -> bool {
    static DATA_IMAGE: LazyLock<memmem::Finder<'static>> =
        LazyLock::new(|| memmem::Finder::new("data:image"));
    static IMAGE_BASE64: LazyLock<memmem::Finder<'static>> =
        LazyLock::new(|| memmem::Finder::new("\"image_base64\""));
    DATA_IMAGE.find(body).is_some() || IMAGE_BASE64.find(body).is_some()
}

/// An edit for every inline image of `body` that re-encodes smaller, its JSON string replaced
/// by the re-encoding's. Images that cannot be (or are not worth) compressed get no edit; a
/// body without such images gets none at all.
pub async fn image_edits(
    body: &Bytes,
    settings: &ImageCompression,
    images: &ImageService,
    request_id: &str,
) -> Vec<Edit> {
    if !may_hold_images(body) {
        return Vec::new();
    }
    let started = Instant::now();
    let plan = {
        let walked = body.clone();
        match images.pool.submit(move || Plan::of(&walked)) {
            Ok(plan) => plan.await,
            Err(Busy) => {
                images.stats.busy_request();
                tracing::warn!(
                    request_id,
                    "image workers are saturated; request images forwarded uncompressed"
                );
                return Vec::new();
            }
        }
    };
    let plan = match plan {
        Ok(Ok(plan)) if !plan.occurrences.is_empty() => plan,
        Ok(Ok(_)) => return Vec::new(),
        Ok(Err(err)) => {
            tracing::debug!(request_id, error = %err, "request body could not be walked for images");
            return Vec::new();
        }
        Err(_) => return Vec::new(),
    };

    let results = Arc::new(process_all(plan.payloads, settings, images, request_id).await);

    if !results.iter().any(|r| r.outcome.is_ok()) {
        record(
            &plan.occurrences,
            &results,
            images,
            started,
            None,
            request_id,
        );
        return Vec::new();
    }
    let encoded = {
        let (occurrences, results) = (plan.occurrences.clone(), results.clone());
        images
            .pool
            .submit(move || replacements(&occurrences, &results))
    };
    let encoded = match encoded {
        Ok(receiver) => receiver.await.map_err(|_| SkipReason::Failed),
        Err(Busy) => Err(SkipReason::Busy),
    };
    match encoded {
        Ok(edits) => {
            record(
                &plan.occurrences,
                &results,
                images,
                started,
                None,
                request_id,
            );
            edits
        }
        Err(reason) => {
            record(
                &plan.occurrences,
                &results,
                images,
                started,
                Some(reason),
                request_id,
            );
            Vec::new()
        }
    }
}

/// Runs one job per distinct image, at most one per worker at a time for this request, so
/// that a request with many images neither floods the queue nor starves other requests.
async fn process_all(
    payloads: Vec<Bytes>,
    settings: &ImageCompression,
    images: &ImageService,
    request_id: &str,
) -> Vec<Processed> {
    let request_id: Arc<str> = Arc::from(request_id);
    let mut results: Vec<Option<Processed>> = payloads.iter().map(|_| None).collect();
    let mut waiting = payloads.into_iter().enumerate();
    let mut running = FuturesUnordered::new();
    loop {
        while running.len() < images.pool.threads() {
            let Some((index, payload)) = waiting.next() else {
                break;
            };
            let (target, limits, request_id) =
                (settings.clone(), images.limits, request_id.clone());
            match images
                .pool
                .submit(move || process(&payload, &target, &limits, &request_id))
            {
                Ok(receiver) => running.push(async move { (index, receiver.await) }),
                Err(Busy) => results[index] = Some(Processed::skipped(SkipReason::Busy)),
            }
        }
        let Some((index, result)) = running.next().await else {
            break;
        };
        results[index] = Some(result.unwrap_or_else(|_| Processed::skipped(SkipReason::Failed)));
    }
    results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Processed::skipped(SkipReason::Failed)))
        .collect()
}

/// Counts each occurrence and the request. `all_kept` says every image went out unchanged
/// after all (their replacements could not be encoded), for that reason.
fn record(
    occurrences: &[Occurrence],
    results: &[Processed],
    images: &ImageService,
    started: Instant,
    all_kept: Option<SkipReason>,
    request_id: &str,
) {
    let stats = &images.stats;
    for occurrence in occurrences {
        let result = &results[occurrence.payload];
        if occurrence.duplicate {
            stats.duplicate();
        }
        match (&result.outcome, all_kept) {
            (Ok(compressed), None) => stats.image(Ok(()), result.before, compressed.bytes.len()),
            (Ok(_), Some(reason)) | (&Err(reason), _) => {
                stats.image(Err(reason), result.before, result.before)
            }
        }
    }
    for result in results {
        stats.work(result.work);
    }
    let delay = started.elapsed();
    stats.request(delay);
    tracing::debug!(
        request_id,
        images = occurrences.len(),
        compressed = results.iter().filter(|r| r.outcome.is_ok()).count(),
        delay_ms = delay.as_millis() as u64,
        "request images processed"
    );
}

/// One image occurrence in the body.
#[derive(Debug, Clone)]
struct Occurrence {
    /// The JSON string holding the image, quotes included.
    span: Range<usize>,
    shape: Shape,
    /// Index into `Plan::payloads` (and the results).
    payload: usize,
    /// An identical payload appeared earlier in the body.
    duplicate: bool,
}

/// The inline images of a body, identical payloads merged.
#[derive(Debug)]
struct Plan {
    occurrences: Arc<[Occurrence]>,
    /// Distinct base64 payloads; slices of the body unless they had to be unescaped.
    payloads: Vec<Bytes>,
}

impl Plan {
    fn of(body: &Bytes) -> Result<Plan, serde_json::Error> {
        let found = spans::find(body)?;
        let mut payloads: Vec<Bytes> = Vec::new();
        let mut by_len: HashMap<usize, Vec<usize>> = HashMap::new();
        let mut occurrences = Vec::with_capacity(found.len());
        for f in found {
            let same_len = by_len.entry(f.payload.len()).or_default();
            let existing = same_len
                .iter()
                .copied()
                .find(|&i| payloads[i].as_ref() == f.payload.as_bytes());
            let (payload, duplicate) = match existing {
                Some(i) => (i, true),
                None => {
                    payloads.push(match f.payload {
                        Cow::Borrowed(text) => body.slice_ref(text.as_bytes()),
                        Cow::Owned(text) => Bytes::from(text),
                    });
                    same_len.push(payloads.len() - 1);
                    (payloads.len() - 1, false)
                }
            };
            occurrences.push(Occurrence {
                span: f.span,
                shape: f.shape,
                payload,
                duplicate,
            });
        }
        Ok(Plan {
            occurrences: occurrences.into(),
            payloads,
        })
    }
}

/// What became of one distinct image.
#[derive(Debug)]
struct Processed {
    /// Decoded size of the original.
    before: usize,
    outcome: Result<Compressed, SkipReason>,
    work: Duration,
}

impl Processed {
    fn skipped(reason: SkipReason) -> Processed {
        Processed {
            before: 0,
            outcome: Err(reason),
            work: Duration::ZERO,
        }
    }
}

static BASE64: LazyLock<Simd> = LazyLock::new(|| Simd::standard(PAD_INDIFFERENT));
static BASE64_URL_SAFE: LazyLock<Simd> = LazyLock::new(|| Simd::url_safe(PAD_INDIFFERENT));

/// Decodes standard base64 (padded or not), falling back to the URL-safe alphabet and to
/// payloads broken into lines.
pub fn decode_base64(payload: &[u8]) -> Option<Vec<u8>> {
    if let Ok(bytes) = BASE64.decode(payload) {
        return Some(bytes);
    }
    if let Ok(bytes) = BASE64_URL_SAFE.decode(payload) {
        return Some(bytes);
    }
    if payload.iter().any(u8::is_ascii_whitespace) {
        let compact: Vec<u8> = payload
            .iter()
            .copied()
            .filter(|b| !b.is_ascii_whitespace())
            .collect();
        return BASE64.decode(compact).ok();
    }
    None
}

/// Decodes, compresses and reports one payload. Runs on a worker.
fn process(
    payload: &[u8],
    target: &ImageCompression,
    limits: &Limits,
    request_id: &str,
) -> Processed {
    let started = Instant::now();
    let Some(original) = decode_base64(payload) else {
        return Processed {
            work: started.elapsed(),
            ..Processed::skipped(SkipReason::BadBase64)
        };
    };
    let outcome = codec::compress(&original, target, limits).map_err(|kept| {
        let reason = skip_reason(&kept);
        if reason == SkipReason::Failed {
            tracing::warn!(request_id, error = %kept, "request image could not be re-encoded; forwarded unchanged");
        } else {
            tracing::debug!(request_id, reason = reason.as_str(), detail = %kept, "request image forwarded unchanged");
        }
        reason
    });
    Processed {
        before: original.len(),
        outcome,
        work: started.elapsed(),
    }
}

fn skip_reason(kept: &Kept) -> SkipReason {
    match kept {
        Kept::Small => SkipReason::Small,
        Kept::NotSmaller => SkipReason::NotSmaller,
        Kept::Animated => SkipReason::Animated,
        Kept::Transparent => SkipReason::Transparent,
        Kept::UnsupportedFormat => SkipReason::UnsupportedFormat,
        Kept::TooLarge => SkipReason::TooLarge,
        Kept::Undecodable(_) => SkipReason::Undecodable,
        Kept::EncodeFailed(_) => SkipReason::Failed,
    }
}

fn data_url_prefix(format: ImageFormat) -> &'static [u8] {
    match format {
        ImageFormat::Jpeg => b"data:image/jpeg;base64,",
        ImageFormat::Webp => b"data:image/webp;base64,",
    }
}

/// The edit of each compressed occurrence: its JSON string, quotes included, as the
/// re-encoding's (a data URL or raw base64, as the original was). Occurrences of one image in
/// the same shape share one buffer. Runs on a worker.
fn replacements(occurrences: &[Occurrence], results: &[Processed]) -> Vec<Edit> {
    let mut encoded: HashMap<(usize, Shape), Bytes> = HashMap::new();
    let mut edits = Vec::new();
    for occurrence in occurrences {
        let Ok(compressed) = &results[occurrence.payload].outcome else {
            continue;
        };
        let replacement = encoded
            .entry((occurrence.payload, occurrence.shape))
            .or_insert_with(|| json_string(occurrence.shape, compressed))
            .clone();
        edits.push(Edit::replace(occurrence.span.clone(), replacement));
    }
    edits
}

fn json_string(shape: Shape, compressed: &Compressed) -> Bytes {
    let prefix = match shape {
        Shape::DataUrl => data_url_prefix(compressed.format),
        Shape::Base64 => b"",
    };
    let encoded_len = base64::encoded_len(compressed.bytes.len(), true).unwrap_or(0);
    let mut out = Vec::with_capacity(2 + prefix.len() + encoded_len);
    out.push(b'"');
    out.extend_from_slice(prefix);
    let start = out.len();
    out.resize(start + encoded_len, 0);
    let written = BASE64
        .encode_slice(&compressed.bytes, &mut out[start..])
        .unwrap_or(0);
    out.truncate(start + written);
    out.push(b'"');
    Bytes::from(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::rewrite::splice;
    use image::{DynamicImage, Rgb, RgbImage};

    fn settings() -> ImageCompression {
        ImageCompression {
            enabled: true,
            max_size: 64,
            min_bytes: 0,
            quality: 0.85,
            format: ImageFormat::Jpeg,
        }
    }

    pub(crate) fn png_base64(width: u32, height: u32) -> String {
        let image = RgbImage::from_fn(width, height, |x, y| {
            Rgb([
                (x * 7 % 256) as u8,
                (y * 13 % 256) as u8,
                ((x ^ y) % 256) as u8,
            ])
        });
        let mut out = Vec::new();
        DynamicImage::ImageRgb8(image)
            .write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
            .expect("png");
        BASE64.encode(out)
    }

    #[test]
    fn the_pre_check_sees_images_only_where_they_can_be() {
        assert!(!may_hold_images(
            br#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#
        ));
        assert!(!may_hold_images(
            br#"{"image_url":{"url":"https://x/y.png"}}"#
        ));
        assert!(may_hold_images(
            br#"{"image_url":"data:image/png;base64,AA"}"#
        ));
        assert!(may_hold_images(
            br#"{"image_url":"data:image\/png;base64,AA"}"#
        ));
        assert!(may_hold_images(br#"{"image_base64":"AA"}"#));
    }

    #[actix_rt::test]
    async fn a_body_without_images_gets_no_edit() {
        let service = ImageService::new(1).expect("pool");
        let body = Bytes::from_static(br#"{"model":"m","messages":[]}"#);
        assert!(
            image_edits(&body, &settings(), &service, "req-1")
                .await
                .is_empty()
        );
        assert_eq!(service.stats().snapshot().requests, 0);
    }

    #[actix_rt::test]
    async fn a_body_whose_images_all_stay_gets_no_edit() {
        let service = ImageService::new(1).expect("pool");
        let body = Bytes::from(format!(
            r#"{{"image_url":"data:image/png;base64,{}","x":{{"image_base64":"!!!"}}}}"#,
            png_base64(2, 2)
        ));
        assert!(
            image_edits(&body, &settings(), &service, "req-1")
                .await
                .is_empty()
        );
        let stats = service.stats().snapshot();
        assert_eq!(stats.seen, 2);
        assert_eq!(stats.skipped["not_smaller"], 1);
        assert_eq!(stats.skipped["bad_base64"], 1);
    }

    #[actix_rt::test]
    async fn identical_images_are_processed_once_and_replaced_everywhere() {
        let service = ImageService::new(2).expect("pool");
        let image = png_base64(300, 200);
        let body = Bytes::from(format!(
            r#"{{"a":{{"image_url":{{"url":"data:image/png;base64,{image}"}}}},"b":{{"image_base64":"{image}"}},"c":[{{"image_url":"data:image/png;base64,{image}"}}],"z":1}}"#
        ));
        let edits = image_edits(&body, &settings(), &service, "req-1").await;
        assert_eq!(edits.len(), 3);
        let out = splice::apply(&body, edits).into_bytes();
        let json: serde_json::Value = serde_json::from_slice(&out).expect("valid json");
        let url = json["a"]["image_url"]["url"].as_str().expect("url");
        assert!(url.starts_with("data:image/jpeg;base64,"), "{url}");
        assert_eq!(json["c"][0]["image_url"], url);
        let raw = json["b"]["image_base64"].as_str().expect("raw base64");
        assert_eq!(format!("data:image/jpeg;base64,{raw}"), url);
        assert_eq!(json["z"], 1);
        let stats = service.stats().snapshot();
        assert_eq!((stats.seen, stats.compressed, stats.duplicates), (3, 3, 2));
        let jpeg = BASE64.decode(raw).expect("base64");
        let image = image::load_from_memory(&jpeg).expect("jpeg");
        assert_eq!((image.width(), image.height()), (64, 43));
    }

    #[test]
    fn base64_decoding_accepts_the_forms_clients_send() {
        let expected = b"hello image".to_vec();
        for text in [
            "aGVsbG8gaW1hZ2U=",
            "aGVsbG8gaW1hZ2U",
            "aGVsbG8g\naW1hZ2U=",
            "aGVsbG8gaW1hZ2U=",
        ] {
            assert_eq!(
                decode_base64(text.as_bytes()),
                Some(expected.clone()),
                "{text}"
            );
        }
        assert_eq!(decode_base64(b"-_8="), Some(vec![0xfb, 0xff]));
        assert_eq!(decode_base64(b"not base64!"), None);
    }
}
