//! The image decoders and encoders under the decode limits: any bytes (a JPEG, PNG, GIF or
//! WebP in the seeds) never panic and never make the heap grow past what the limits allow;
//! a result is always smaller than its input and within the target size.
#![no_main]

use gateway_fuzz::limited;
use libfuzzer_sys::fuzz_target;
use proxy::config::{ImageCompression, ImageFormat};
use proxy::fuzzing::{Limits, compress_image};

/// Smaller than the gateway's defaults, so that a run reaches them often.
const LIMITS: Limits = Limits {
    max_side: 4096,
    max_pixels: 1 << 20,
    max_alloc: 32 << 20,
    max_png_metadata: 1 << 20,
};

/// What decoding, converting, resizing and re-encoding one image within `LIMITS` may hold at
/// once: the decoders' own allowance, and a few copies of the largest image at 16 bits per
/// channel with alpha (8 bytes a pixel).
const BUDGET: usize = LIMITS.max_alloc as usize
    + LIMITS.max_png_metadata as usize
    + 4 * 8 * LIMITS.max_pixels as usize;

fuzz_target!(|data: &[u8]| {
    // The first byte picks the target; the rest is the image.
    let Some((&pick, image)) = data.split_first() else {
        return;
    };
    let target = ImageCompression {
        enabled: true,
        max_size: [16, 64, 1600, 4096][usize::from(pick & 3)],
        min_bytes: if pick & 4 == 0 { 0 } else { 32 * 1024 },
        quality: [0.85, 0.1, 1.0, 0.5][usize::from(pick >> 3 & 3)],
        format: if pick & 0x20 == 0 {
            ImageFormat::Jpeg
        } else {
            ImageFormat::Webp
        },
    };
    let result = limited(BUDGET + 4 * image.len(), || {
        compress_image(image, &target, &LIMITS)
    });
    if let Ok(compressed) = result {
        assert!(compressed.bytes.len() < image.len());
        assert!(compressed.width.max(compressed.height) <= target.max_size);
        assert_eq!(compressed.format, target.format);
    }
});
