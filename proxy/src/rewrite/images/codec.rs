//! One image: decode under limits, shrink to the longest edge, re-encode as JPEG or lossy WebP.
//! Pure CPU work for the image worker pool: never runs on an async worker, never lets a codec
//! panic escape, and never returns a result that is not smaller than its input.

use std::cell::RefCell;
use std::io::Cursor;
use std::panic::{self, AssertUnwindSafe};

use fast_image_resize as fir;
use image::codecs::gif::GifDecoder;
use image::codecs::png::PngDecoder;
use image::metadata::Orientation;
use image::{DynamicImage, ImageBuffer, ImageDecoder, ImageError};
use mozjpeg::{ColorSpace, Marker};

use super::sniff::{self, SourceFormat};
use crate::config::{ImageCompression, ImageFormat};

/// The largest side a WebP image can have.
const WEBP_MAX_SIDE: u32 = 16383;

/// Decode limits against decompression bombs. Dimensions are checked on the header, before
/// any pixel memory is allocated.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Longest width or height accepted.
    pub max_side: u32,
    /// Most pixels accepted (width × height of the source).
    pub max_pixels: u64,
    /// Most bytes a GIF decoder may allocate at once.
    pub max_alloc: u64,
    /// Most bytes a PNG decoder may hold besides the pixels: the chunks around them (EXIF,
    /// text) and the inflated ICC profile. A profile that does not fit is dropped; other chunks
    /// that do not fit leave the image as it came.
    pub max_png_metadata: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_side: 16_384,
            max_pixels: 50_000_000,
            max_alloc: 256 * 1024 * 1024,
            max_png_metadata: 8 * 1024 * 1024,
        }
    }
}

impl Limits {
    fn check(&self, width: u32, height: u32) -> Result<(), Kept> {
        if width == 0 || height == 0 {
            return Err(Kept::Undecodable("the image has no pixels".into()));
        }
        if width > self.max_side
            || height > self.max_side
            || u64::from(width) * u64::from(height) > self.max_pixels
        {
            return Err(Kept::TooLarge);
        }
        Ok(())
    }

    fn for_image_crate(&self) -> image::Limits {
        let mut limits = image::Limits::default();
        limits.max_image_width = Some(self.max_side);
        limits.max_image_height = Some(self.max_side);
        limits.max_alloc = Some(self.max_alloc);
        limits
    }
}

/// The re-encoded image, strictly smaller than the input.
#[derive(Debug)]
pub struct Compressed {
    pub bytes: Vec<u8>,
    pub format: ImageFormat,
    pub width: u32,
    pub height: u32,
}

/// Why an image is forwarded exactly as it came.
#[derive(Debug, thiserror::Error)]
pub enum Kept {
    #[error("the image is under minBytes and needs no resize")]
    Small,
    #[error("the re-encoded image was not smaller than the original")]
    NotSmaller,
    #[error("animated images are forwarded as they are")]
    Animated,
    #[error("the image has transparent pixels and the target format has no alpha channel")]
    Transparent,
    #[error("not a JPEG, PNG, GIF or WebP image")]
    UnsupportedFormat,
    #[error("the image is past the decode limits")]
    TooLarge,
    #[error("undecodable image: {0}")]
    Undecodable(String),
    #[error("encoder failed: {0}")]
    EncodeFailed(String),
}

/// Re-encodes `input` per `target`, within `limits`. An image under `target.min_bytes` whose
/// header says it fits `target.max_size` is kept from its header alone, without decoding: a
/// second generation of loss is not worth the few bytes it would save.
pub fn compress(
    input: &[u8],
    target: &ImageCompression,
    limits: &Limits,
) -> Result<Compressed, Kept> {
    let source = sniff::source_format(input).ok_or(Kept::UnsupportedFormat)?;
    let max_side = match target.format {
        ImageFormat::Jpeg => target.max_size,
        ImageFormat::Webp => target.max_size.min(WEBP_MAX_SIDE),
    };
    if input.len() < target.min_bytes
        && sniff::dimensions(input, source).is_some_and(|(w, h)| w.max(h) <= max_side)
    {
        return Err(Kept::Small);
    }
    let decoded = match source {
        SourceFormat::Jpeg => decode_jpeg(input, max_side, limits)?,
        SourceFormat::Png => decode_png(input, limits)?,
        SourceFormat::Gif => decode_gif(input, limits)?,
        SourceFormat::Webp => decode_webp(input, limits)?,
    };
    let Decoded {
        mut pixels,
        source_size,
        orientation,
        icc,
    } = decoded;

    let mut premultiply = false;
    if pixels.layout == Layout::Rgba && has_transparency(&pixels.data) {
        if target.format == ImageFormat::Jpeg {
            return Err(Kept::Transparent);
        }
        premultiply = true;
    }

    let (width, height) = fit_within(source_size, max_side);
    if (pixels.width, pixels.height) != (width, height) {
        pixels = resize(&pixels, width, height, premultiply)?;
    }
    pixels = orient(pixels, orientation)?;
    let (width, height) = (pixels.width, pixels.height);

    let bytes = match target.format {
        ImageFormat::Jpeg => encode_jpeg(&pixels, target.quality, icc.as_deref())?,
        ImageFormat::Webp => encode_webp(pixels.into_rgb_or_rgba(), target.quality)?,
    };
    if bytes.len() >= input.len() {
        return Err(Kept::NotSmaller);
    }
    Ok(Compressed {
        bytes,
        format: target.format,
        width,
        height,
    })
}

/// The size that fits `size` within `max_side` on its longest edge; never larger than `size`.
pub fn fit_within((width, height): (u32, u32), max_side: u32) -> (u32, u32) {
    let longest = width.max(height);
    if longest <= max_side {
        return (width, height);
    }
    let scale = f64::from(max_side) / f64::from(longest);
    let side = |v: u32| ((f64::from(v) * scale).round() as u32).clamp(1, max_side);
    (side(width), side(height))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    Gray,
    Rgb,
    Rgba,
}

impl Layout {
    fn channels(self) -> usize {
        match self {
            Layout::Gray => 1,
            Layout::Rgb => 3,
            Layout::Rgba => 4,
        }
    }

    fn pixel_type(self) -> fir::PixelType {
        match self {
            Layout::Gray => fir::PixelType::U8,
            Layout::Rgb => fir::PixelType::U8x3,
            Layout::Rgba => fir::PixelType::U8x4,
        }
    }
}

/// Eight-bit pixels, rows packed without padding.
struct Pixels {
    data: Vec<u8>,
    width: u32,
    height: u32,
    layout: Layout,
}

impl Pixels {
    fn new(data: Vec<u8>, width: u32, height: u32, layout: Layout) -> Result<Pixels, Kept> {
        let expected = width as usize * height as usize * layout.channels();
        if data.len() != expected {
            return Err(Kept::Undecodable(format!(
                "decoder returned {} bytes for {width}x{height}",
                data.len()
            )));
        }
        Ok(Pixels {
            data,
            width,
            height,
            layout,
        })
    }

    fn from_dynamic(image: DynamicImage) -> Result<Pixels, Kept> {
        let (width, height) = (image.width(), image.height());
        let (data, layout) = match image {
            DynamicImage::ImageLuma8(buf) => (buf.into_raw(), Layout::Gray),
            DynamicImage::ImageRgb8(buf) => (buf.into_raw(), Layout::Rgb),
            DynamicImage::ImageRgba8(buf) => (buf.into_raw(), Layout::Rgba),
            DynamicImage::ImageLuma16(_) => (image.into_luma8().into_raw(), Layout::Gray),
            other if other.color().has_alpha() => (other.into_rgba8().into_raw(), Layout::Rgba),
            other => (other.into_rgb8().into_raw(), Layout::Rgb),
        };
        Pixels::new(data, width, height, layout)
    }

    fn into_dynamic(mut self) -> Option<DynamicImage> {
        let (w, h) = (self.width, self.height);
        let data = std::mem::take(&mut self.data);
        Some(match self.layout {
            Layout::Gray => DynamicImage::ImageLuma8(ImageBuffer::from_raw(w, h, data)?),
            Layout::Rgb => DynamicImage::ImageRgb8(ImageBuffer::from_raw(w, h, data)?),
            Layout::Rgba => DynamicImage::ImageRgba8(ImageBuffer::from_raw(w, h, data)?),
        })
    }

    /// WebP takes RGB or RGBA only.
    fn into_rgb_or_rgba(self) -> Pixels {
        if self.layout != Layout::Gray {
            return self;
        }
        let data = self.data.iter().flat_map(|&v| [v, v, v]).collect();
        Pixels {
            data,
            width: self.width,
            height: self.height,
            layout: Layout::Rgb,
        }
    }
}

impl Drop for Pixels {
    fn drop(&mut self) {
        scratch::give_back(std::mem::take(&mut self.data));
    }
}

/// Pixel buffers a worker keeps between images, so that steady work reuses memory instead of
/// mapping and faulting in fresh pages for every image (several milliseconds per photo).
mod scratch {
    use std::cell::RefCell;

    /// Buffers kept per worker thread, and the largest one worth keeping.
    const KEEP: usize = 4;
    const KEEP_BYTES: usize = 64 << 20;

    thread_local! {
        static FREE: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
    }

    /// A zero-filled buffer of `len` bytes, reusing a kept one when one is large enough.
    pub(super) fn zeroed(len: usize) -> Vec<u8> {
        let kept = FREE.with_borrow_mut(|free| {
            let best = free
                .iter()
                .enumerate()
                .filter(|(_, v)| v.capacity() >= len)
                .min_by_key(|(_, v)| v.capacity())
                .map(|(i, _)| i);
            best.map(|i| free.swap_remove(i))
        });
        match kept {
            Some(mut buffer) => {
                buffer.clear();
                buffer.resize(len, 0);
                buffer
            }
            None => vec![0; len],
        }
    }

    /// Frees every kept buffer.
    pub(super) fn release() {
        FREE.with_borrow_mut(|free| *free = Vec::new());
    }

    pub(super) fn give_back(buffer: Vec<u8>) {
        if buffer.capacity() == 0 || buffer.capacity() > KEEP_BYTES {
            return;
        }
        let size = buffer.capacity();
        FREE.with_borrow_mut(|free| {
            if free.len() < KEEP {
                free.push(buffer);
            } else if let Some(smallest) = free
                .iter_mut()
                .filter(|v| v.capacity() < size)
                .min_by_key(|v| v.capacity())
            {
                *smallest = buffer;
            }
        });
    }
}

struct Decoded {
    pixels: Pixels,
    /// The stored size, before any scaling during decode.
    source_size: (u32, u32),
    orientation: Orientation,
    icc: Option<Vec<u8>>,
}

/// Runs codec code that reports errors by unwinding (libjpeg's error exit does), turning a
/// panic into `on_panic(message)`.
fn guarded<T>(
    work: impl FnOnce() -> Result<T, Kept>,
    on_panic: fn(String) -> Kept,
) -> Result<T, Kept> {
    panic::catch_unwind(AssertUnwindSafe(work)).unwrap_or_else(|payload| {
        let message = payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_string()))
            .unwrap_or_else(|| "codec panicked".to_string());
        Err(on_panic(message))
    })
}

fn undecodable(err: impl std::fmt::Display) -> Kept {
    Kept::Undecodable(err.to_string())
}

/// The libjpeg scale numerator (over 8) that decodes straight to the smallest size whose
/// longest edge still covers twice `max_side`, so that the resize after it does at least half
/// the shrinking: a scaled inverse DCT alone blurs more than the Lanczos filter, and costs
/// detail the encoder then has no bits for. Only the factors with SIMD inverse DCTs are used.
fn jpeg_scale(longest: u32, max_side: u32) -> u8 {
    [1u8, 2, 4]
        .into_iter()
        .find(|&num| (u64::from(longest) * u64::from(num)).div_ceil(8) >= 2 * u64::from(max_side))
        .unwrap_or(8)
}

fn decode_jpeg(input: &[u8], max_side: u32, limits: &Limits) -> Result<Decoded, Kept> {
    guarded(
        || {
            let mut decompress =
                mozjpeg::Decompress::with_markers(&[Marker::APP(1), Marker::APP(2)])
                    .from_mem(input)
                    .map_err(undecodable)?;
            let (width, height) = (decompress.width(), decompress.height());
            let (width, height) = (
                u32::try_from(width).map_err(|_| Kept::TooLarge)?,
                u32::try_from(height).map_err(|_| Kept::TooLarge)?,
            );
            limits.check(width, height)?;
            let orientation = decompress
                .markers()
                .find(|m| m.marker == Marker::APP(1) && m.data.starts_with(b"Exif\0\0"))
                .and_then(|m| Orientation::from_exif_chunk(&m.data[6..]))
                .unwrap_or(Orientation::NoTransforms);
            let icc = jpeg_icc_profile(&decompress);
            decompress.scale(jpeg_scale(width.max(height), max_side));
            let (mut started, layout) = match decompress.color_space() {
                ColorSpace::JCS_GRAYSCALE => {
                    (decompress.grayscale().map_err(undecodable)?, Layout::Gray)
                }
                ColorSpace::JCS_CMYK | ColorSpace::JCS_YCCK => {
                    return Err(Kept::UnsupportedFormat);
                }
                _ => (decompress.rgb().map_err(undecodable)?, Layout::Rgb),
            };
            let (out_w, out_h) = (started.width(), started.height());
            let mut data = scratch::zeroed(out_w * out_h * layout.channels());
            let read = started
                .read_scanlines_into(&mut data)
                .map_err(undecodable)?
                .len();
            if read != data.len() {
                return Err(Kept::Undecodable("the JPEG data ended early".into()));
            }
            started.finish().map_err(undecodable)?;
            let out_w = u32::try_from(out_w).map_err(|_| Kept::TooLarge)?;
            let out_h = u32::try_from(out_h).map_err(|_| Kept::TooLarge)?;
            Ok(Decoded {
                pixels: Pixels::new(data, out_w, out_h, layout)?,
                source_size: (width, height),
                orientation,
                icc,
            })
        },
        Kept::Undecodable,
    )
}

/// The ICC profile spread over APP2 `ICC_PROFILE` markers, reassembled in sequence order.
fn jpeg_icc_profile<R>(decompress: &mozjpeg::Decompress<R>) -> Option<Vec<u8>> {
    const HEADER: &[u8] = b"ICC_PROFILE\0";
    let mut chunks: Vec<(u8, &[u8])> = decompress
        .markers()
        .filter(|m| m.marker == Marker::APP(2) && m.data.len() > HEADER.len() + 2)
        .filter(|m| m.data.starts_with(HEADER))
        .map(|m| (m.data[HEADER.len()], &m.data[HEADER.len() + 2..]))
        .collect();
    if chunks.is_empty() {
        return None;
    }
    chunks.sort_by_key(|(seq, _)| *seq);
    Some(
        chunks
            .into_iter()
            .flat_map(|(_, data)| data.iter().copied())
            .collect(),
    )
}

fn image_error(err: ImageError) -> Kept {
    match err {
        ImageError::Limits(_) => Kept::TooLarge,
        ImageError::Unsupported(_) => Kept::UnsupportedFormat,
        other => Kept::Undecodable(other.to_string()),
    }
}

fn decode_png(input: &[u8], limits: &Limits) -> Result<Decoded, Kept> {
    guarded(
        || {
            // The png crate inflates an iCCP profile up to the whole allocation limit it is
            // given before it drops one that is too large, so it gets only the metadata budget;
            // the image crate keeps its own limits, set after.
            let mut metadata_limits = limits.for_image_crate();
            metadata_limits.max_alloc = Some(limits.max_png_metadata);
            let mut decoder = PngDecoder::with_limits(Cursor::new(input), metadata_limits)
                .map_err(image_error)?;
            decoder
                .set_limits(limits.for_image_crate())
                .map_err(image_error)?;
            let (width, height) = decoder.dimensions();
            limits.check(width, height)?;
            if decoder.is_apng().map_err(image_error)? {
                return Err(Kept::Animated);
            }
            let icc = decoder.icc_profile().ok().flatten();
            let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
            let image = DynamicImage::from_decoder(decoder).map_err(image_error)?;
            Ok(Decoded {
                pixels: Pixels::from_dynamic(image)?,
                source_size: (width, height),
                orientation,
                icc,
            })
        },
        Kept::Undecodable,
    )
}

fn decode_gif(input: &[u8], limits: &Limits) -> Result<Decoded, Kept> {
    if sniff::gif_frames(input, 2) > 1 {
        return Err(Kept::Animated);
    }
    guarded(
        || {
            let mut decoder = GifDecoder::new(Cursor::new(input)).map_err(image_error)?;
            let (width, height) = decoder.dimensions();
            limits.check(width, height)?;
            decoder
                .set_limits(limits.for_image_crate())
                .map_err(image_error)?;
            let image = DynamicImage::from_decoder(decoder).map_err(image_error)?;
            Ok(Decoded {
                pixels: Pixels::from_dynamic(image)?,
                source_size: (width, height),
                orientation: Orientation::NoTransforms,
                icc: None,
            })
        },
        Kept::Undecodable,
    )
}

fn decode_webp(input: &[u8], limits: &Limits) -> Result<Decoded, Kept> {
    guarded(
        || {
            let features = webp::BitstreamFeatures::new(input)
                .ok_or_else(|| Kept::Undecodable("not a WebP bitstream".into()))?;
            if features.has_animation() {
                return Err(Kept::Animated);
            }
            let (width, height) = (features.width(), features.height());
            limits.check(width, height)?;
            let image = webp::Decoder::new(input)
                .decode()
                .ok_or_else(|| Kept::Undecodable("libwebp could not decode it".into()))?;
            let layout = if image.is_alpha() {
                Layout::Rgba
            } else {
                Layout::Rgb
            };
            Ok(Decoded {
                pixels: Pixels::new(image.to_vec(), image.width(), image.height(), layout)?,
                source_size: (width, height),
                orientation: Orientation::NoTransforms,
                icc: None,
            })
        },
        Kept::Undecodable,
    )
}

/// Whether any pixel of packed RGBA is not fully opaque. Scans in blocks so that the common
/// opaque case vectorises and a transparent image stops early.
fn has_transparency(rgba: &[u8]) -> bool {
    rgba.chunks(4096)
        .any(|block| block.chunks_exact(4).fold(0xFF_u8, |acc, px| acc & px[3]) != 0xFF)
}

fn resize(pixels: &Pixels, width: u32, height: u32, premultiply: bool) -> Result<Pixels, Kept> {
    let kind = pixels.layout.pixel_type();
    let src = fir::images::ImageRef::new(pixels.width, pixels.height, &pixels.data, kind)
        .map_err(|e| Kept::EncodeFailed(e.to_string()))?;
    let mut data = scratch::zeroed(width as usize * height as usize * pixels.layout.channels());
    let mut dst = fir::images::Image::from_slice_u8(width, height, &mut data, kind)
        .map_err(|e| Kept::EncodeFailed(e.to_string()))?;
    let options = fir::ResizeOptions::new()
        .resize_alg(fir::ResizeAlg::Convolution(fir::FilterType::Lanczos3))
        .use_alpha(premultiply);
    RESIZER
        .with_borrow_mut(|resizer| {
            let resized = resizer.resize(&src, &mut dst, &options);
            if resizer.size_of_internal_buffers() > RESIZER_KEEP_BYTES {
                resizer.reset_internal_buffers();
            }
            resized
        })
        .map_err(|e| Kept::EncodeFailed(e.to_string()))?;
    Pixels::new(data, width, height, pixels.layout)
}

/// Frees the buffers this thread keeps between images (scratch pixels, the resizer's). A worker
/// calls it before it ends, while its allocator heap is still live.
pub(super) fn release_thread_buffers() {
    scratch::release();
    RESIZER.with_borrow_mut(fir::Resizer::reset_internal_buffers);
}

/// Largest intermediate buffers a worker's resizer keeps between images.
const RESIZER_KEEP_BYTES: usize = 64 << 20;

thread_local! {
    /// One resizer per worker: it keeps its intermediate buffers between images.
    static RESIZER: RefCell<fir::Resizer> = RefCell::new(fir::Resizer::new());
}

/// Applies the EXIF orientation to the pixels, so that the re-encoded image (which carries no
/// EXIF) shows the way the original did.
fn orient(pixels: Pixels, orientation: Orientation) -> Result<Pixels, Kept> {
    if orientation == Orientation::NoTransforms {
        return Ok(pixels);
    }
    let mut image = pixels
        .into_dynamic()
        .ok_or_else(|| Kept::EncodeFailed("pixel buffer size mismatch".into()))?;
    image.apply_orientation(orientation);
    Pixels::from_dynamic(image)
}

fn encode_jpeg(pixels: &Pixels, quality: f32, icc: Option<&[u8]>) -> Result<Vec<u8>, Kept> {
    guarded(
        || {
            let color_space = match pixels.layout {
                Layout::Gray => ColorSpace::JCS_GRAYSCALE,
                Layout::Rgb => ColorSpace::JCS_RGB,
                // Only opaque RGBA gets here: the fourth byte is skipped.
                Layout::Rgba => ColorSpace::JCS_EXT_RGBX,
            };
            let mut compress = mozjpeg::Compress::new(color_space);
            // mozjpeg's defaults (trellis quantisation, its quantisation tables, optimised
            // Huffman tables) with libjpeg's standard progressive scans: searching the best
            // scans per image, as sharp's `mozjpeg: true` does, saves about 1 % for a third
            // more time.
            compress.set_size(pixels.width as usize, pixels.height as usize);
            compress.set_quality((quality * 100.0).round().clamp(1.0, 100.0));
            compress.set_optimize_coding(true);
            compress.set_optimize_scans(false);
            compress.set_progressive_mode();
            let mut started = compress
                .start_compress(Vec::with_capacity(pixels.data.len() / 8))
                .map_err(|e| Kept::EncodeFailed(e.to_string()))?;
            if let Some(icc) = icc.filter(|icc| icc_fits(icc, pixels.layout)) {
                started.write_icc_profile(icc);
            }
            started
                .write_scanlines(&pixels.data)
                .map_err(|e| Kept::EncodeFailed(e.to_string()))?;
            started
                .finish()
                .map_err(|e| Kept::EncodeFailed(e.to_string()))
        },
        Kept::EncodeFailed,
    )
}

/// Whether an ICC profile describes the colour space being written (a grey profile must not
/// travel with RGB pixels, e.g. after grey+alpha was widened to RGBA).
fn icc_fits(icc: &[u8], layout: Layout) -> bool {
    let space = icc.get(16..20);
    match layout {
        Layout::Gray => space == Some(b"GRAY".as_slice()),
        Layout::Rgb | Layout::Rgba => space == Some(b"RGB ".as_slice()),
    }
}

fn encode_webp(pixels: Pixels, quality: f32) -> Result<Vec<u8>, Kept> {
    guarded(
        || {
            let layout = match pixels.layout {
                Layout::Rgba => webp::PixelLayout::Rgba,
                _ => webp::PixelLayout::Rgb,
            };
            let encoder = webp::Encoder::new(&pixels.data, layout, pixels.width, pixels.height);
            let mut config = webp::WebPConfig::new()
                .map_err(|()| Kept::EncodeFailed("libwebp version mismatch".into()))?;
            config.lossless = 0;
            config.quality = (quality * 100.0).clamp(0.0, 100.0);
            config.method = 4;
            config.alpha_quality = 100;
            let encoded = encoder
                .encode_advanced(&config)
                .map_err(|e| Kept::EncodeFailed(format!("{e:?}")))?;
            Ok(encoded.to_vec())
        },
        Kept::EncodeFailed,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{ImageEncoder, Rgb, RgbImage, Rgba, RgbaImage};

    fn settings(format: ImageFormat, max_size: u32) -> ImageCompression {
        ImageCompression {
            enabled: true,
            max_size,
            min_bytes: 0,
            quality: 0.85,
            format,
        }
    }

    fn noisy_rgb(width: u32, height: u32) -> RgbImage {
        let mut seed = 0x2545_F491_u32;
        RgbImage::from_fn(width, height, |x, y| {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            let n = (seed & 0x1F) as u8;
            Rgb([
                (x * 255 / width) as u8 ^ n,
                (y * 255 / height) as u8,
                ((x + y) % 256) as u8 ^ n,
            ])
        })
    }

    fn png_bytes(image: &DynamicImage) -> Vec<u8> {
        let mut out = Vec::new();
        image
            .write_to(&mut Cursor::new(&mut out), image::ImageFormat::Png)
            .expect("png");
        out
    }

    fn jpeg_bytes(image: &RgbImage, quality: u8) -> Vec<u8> {
        let mut out = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality)
            .write_image(
                image.as_raw(),
                image.width(),
                image.height(),
                image::ExtendedColorType::Rgb8,
            )
            .expect("jpeg");
        out
    }

    fn decoded(bytes: &[u8]) -> DynamicImage {
        image::load_from_memory(bytes).expect("decodable output")
    }

    #[test]
    fn reused_buffers_come_back_zeroed_and_sized() {
        scratch::give_back(vec![7u8; 1000]);
        let reused = scratch::zeroed(600);
        assert_eq!(reused.len(), 600);
        assert!(reused.capacity() >= 1000, "the kept buffer was reused");
        assert!(reused.iter().all(|&b| b == 0));
        assert_eq!(scratch::zeroed(5000).len(), 5000);
    }

    #[test]
    fn released_buffers_are_not_reused() {
        scratch::give_back(vec![7u8; 4096]);
        release_thread_buffers();
        assert!(scratch::zeroed(100).capacity() < 4096, "a fresh buffer");
    }

    #[test]
    fn longest_edge_is_fitted_and_never_enlarged() {
        assert_eq!(fit_within((4000, 3000), 1600), (1600, 1200));
        assert_eq!(fit_within((3000, 4000), 1600), (1200, 1600));
        assert_eq!(fit_within((800, 600), 1600), (800, 600));
        assert_eq!(fit_within((10000, 3), 1000), (1000, 1));
    }

    #[test]
    fn jpeg_scale_leaves_at_least_half_the_shrinking_to_the_resize() {
        assert_eq!(jpeg_scale(4000, 1600), 8);
        assert_eq!(jpeg_scale(6400, 1600), 4);
        assert_eq!(jpeg_scale(8000, 1600), 4);
        assert_eq!(jpeg_scale(12800, 1600), 2);
        assert_eq!(jpeg_scale(16000, 1600), 2);
        assert_eq!(jpeg_scale(3000, 1600), 8);
        assert_eq!(jpeg_scale(1600, 1600), 8);
        assert_eq!(jpeg_scale(16384, 1000), 1);
    }

    #[test]
    fn a_small_image_that_fits_max_size_is_kept_from_its_header() {
        let input = jpeg_bytes(&noisy_rgb(64, 64), 40);
        let small = |min_bytes: usize, max_size: u32| {
            let target = ImageCompression {
                min_bytes,
                ..settings(ImageFormat::Jpeg, max_size)
            };
            matches!(
                compress(&input, &target, &Limits::default()),
                Err(Kept::Small)
            )
        };
        assert!(small(input.len() + 1, 1600));
        assert!(small(input.len() + 1, 64));
        assert!(!small(input.len(), 1600), "not under minBytes");
        assert!(!small(input.len() + 1, 63), "needs a resize");
        assert!(!small(0, 1600), "0 turns the rule off");
    }

    #[test]
    fn a_large_jpeg_is_shrunk_to_max_size() {
        let input = jpeg_bytes(&noisy_rgb(2000, 1000), 95);
        let out = compress(
            &input,
            &settings(ImageFormat::Jpeg, 640),
            &Limits::default(),
        )
        .expect("compressed");
        assert_eq!((out.width, out.height), (640, 320));
        assert!(out.bytes.len() < input.len());
        let image = decoded(&out.bytes);
        assert_eq!((image.width(), image.height()), (640, 320));
        assert_eq!(sniff::source_format(&out.bytes), Some(SourceFormat::Jpeg));
    }

    #[test]
    fn webp_output_is_lossy_and_smaller() {
        let input = png_bytes(&DynamicImage::ImageRgb8(noisy_rgb(900, 600)));
        let out = compress(
            &input,
            &settings(ImageFormat::Webp, 300),
            &Limits::default(),
        )
        .expect("compressed");
        assert_eq!(&out.bytes[12..16], b"VP8 ", "lossy VP8 bitstream");
        assert_eq!((out.width, out.height), (300, 200));
    }

    #[test]
    fn transparent_png_is_kept_for_jpeg_and_keeps_alpha_in_webp() {
        let image = RgbaImage::from_fn(800, 800, |x, y| {
            Rgba([
                (x % 256) as u8,
                (y % 256) as u8,
                90,
                if x < 400 { 0 } else { 255 },
            ])
        });
        let input = png_bytes(&DynamicImage::ImageRgba8(image));
        assert!(matches!(
            compress(
                &input,
                &settings(ImageFormat::Jpeg, 200),
                &Limits::default()
            ),
            Err(Kept::Transparent)
        ));
        let out = compress(
            &input,
            &settings(ImageFormat::Webp, 200),
            &Limits::default(),
        )
        .expect("webp keeps alpha");
        let back = decoded(&out.bytes).into_rgba8();
        assert_eq!(back.get_pixel(10, 100)[3], 0);
        assert_eq!(back.get_pixel(190, 100)[3], 255);
    }

    #[test]
    fn opaque_rgba_is_encoded_as_jpeg() {
        let image = RgbaImage::from_fn(1200, 900, |x, y| {
            Rgba([(x % 256) as u8, (y % 256) as u8, ((x * y) % 256) as u8, 255])
        });
        let input = png_bytes(&DynamicImage::ImageRgba8(image));
        let out = compress(
            &input,
            &settings(ImageFormat::Jpeg, 600),
            &Limits::default(),
        )
        .expect("compressed");
        assert_eq!((out.width, out.height), (600, 450));
    }

    #[test]
    fn a_header_past_the_limits_is_refused_before_decoding() {
        let input = png_bytes(&DynamicImage::ImageRgb8(noisy_rgb(64, 64)));
        let limits = Limits {
            max_side: 32,
            ..Limits::default()
        };
        assert!(matches!(
            compress(&input, &settings(ImageFormat::Jpeg, 16), &limits),
            Err(Kept::TooLarge)
        ));
        let limits = Limits {
            max_pixels: 1000,
            ..Limits::default()
        };
        assert!(matches!(
            compress(&input, &settings(ImageFormat::Jpeg, 16), &limits),
            Err(Kept::TooLarge)
        ));
    }

    #[test]
    fn garbage_after_a_jpeg_signature_is_undecodable() {
        let mut input = vec![0xFF, 0xD8, 0xFF, 0xE0];
        input.extend((0..5000).map(|i| (i * 7 % 251) as u8));
        assert!(matches!(
            compress(
                &input,
                &settings(ImageFormat::Jpeg, 100),
                &Limits::default()
            ),
            Err(Kept::Undecodable(_))
        ));
    }

    #[test]
    fn a_truncated_png_is_undecodable() {
        let input = png_bytes(&DynamicImage::ImageRgb8(noisy_rgb(300, 300)));
        assert!(matches!(
            compress(
                &input[..input.len() / 2],
                &settings(ImageFormat::Jpeg, 100),
                &Limits::default()
            ),
            Err(Kept::Undecodable(_))
        ));
    }

    #[test]
    fn unknown_formats_are_unsupported() {
        assert!(matches!(
            compress(
                b"BM\x00\x00\x00",
                &settings(ImageFormat::Jpeg, 100),
                &Limits::default()
            ),
            Err(Kept::UnsupportedFormat)
        ));
    }

    #[test]
    fn a_tiny_image_is_not_made_larger() {
        let input = png_bytes(&DynamicImage::ImageRgb8(RgbImage::from_pixel(
            4,
            4,
            Rgb([200, 10, 10]),
        )));
        assert!(matches!(
            compress(
                &input,
                &settings(ImageFormat::Jpeg, 1600),
                &Limits::default()
            ),
            Err(Kept::NotSmaller)
        ));
    }

    #[test]
    fn exif_orientation_is_applied_to_the_pixels() {
        let mut jpeg = jpeg_bytes(&noisy_rgb(400, 200), 95);
        // An APP1 Exif segment (big-endian TIFF, one IFD entry: Orientation = 6, rotate 90°).
        let mut exif =
            b"Exif\0\0MM\0\x2a\0\0\0\x08\0\x01\x01\x12\0\x03\0\0\0\x01\0\x06\0\0\0\0\0\0".to_vec();
        let len = u16::try_from(exif.len() + 2).expect("short");
        let mut segment = vec![0xFF, 0xE1];
        segment.extend_from_slice(&len.to_be_bytes());
        segment.append(&mut exif);
        jpeg.splice(2..2, segment);
        let out = compress(&jpeg, &settings(ImageFormat::Jpeg, 100), &Limits::default())
            .expect("compressed");
        assert_eq!((out.width, out.height), (50, 100));
        let image = decoded(&out.bytes);
        assert_eq!((image.width(), image.height()), (50, 100));
    }

    #[test]
    fn an_icc_profile_travels_only_with_pixels_of_its_colour_space() {
        let mut rgb = vec![0u8; 128];
        rgb[16..20].copy_from_slice(b"RGB ");
        let mut gray = vec![0u8; 128];
        gray[16..20].copy_from_slice(b"GRAY");
        assert!(icc_fits(&rgb, Layout::Rgb) && icc_fits(&rgb, Layout::Rgba));
        assert!(icc_fits(&gray, Layout::Gray));
        assert!(!icc_fits(&gray, Layout::Rgb) && !icc_fits(&rgb, Layout::Gray));
        assert!(!icc_fits(b"short", Layout::Rgb));
    }

    #[test]
    fn grayscale_jpeg_stays_grayscale() {
        let gray =
            image::GrayImage::from_fn(1000, 500, |x, y| image::Luma([((x ^ y) % 256) as u8]));
        let mut input = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut input, 98)
            .write_image(gray.as_raw(), 1000, 500, image::ExtendedColorType::L8)
            .expect("jpeg");
        let out = compress(
            &input,
            &settings(ImageFormat::Jpeg, 400),
            &Limits::default(),
        )
        .expect("compressed");
        assert!(matches!(decoded(&out.bytes), DynamicImage::ImageLuma8(_)));
    }

    /// A zlib stream that inflates to `1 + 258 * copies` zero bytes, built without compressing
    /// them: one fixed-Huffman block of a literal zero and copies of 258 bytes at distance 1.
    fn zeros_zlib(copies: usize) -> Vec<u8> {
        let mut out = vec![0x78, 0x01];
        let (mut acc, mut bits) = (0u64, 0u32);
        let mut push = |value: u32, n: u32| {
            acc |= u64::from(value) << bits;
            bits += n;
            while bits >= 8 {
                out.push(acc as u8);
                acc >>= 8;
                bits -= 8;
            }
        };
        // Huffman codes go most significant bit first into the least-significant-first stream.
        let huffman = |code: u32, n: u32| code.reverse_bits() >> (32 - n);
        push(0b011, 3); // final block, fixed codes
        push(huffman(0b0011_0000, 8), 8); // literal 0
        for _ in 0..copies {
            push(huffman(0b1100_0101, 8), 13); // length 258, then distance code 0 (distance 1)
        }
        push(0, 7 + 7); // end of block, then padding to a byte
        let len = 1 + 258 * copies as u64;
        let adler = ((len % 65521) << 16) | 1;
        out.extend_from_slice(&(adler as u32).to_be_bytes());
        out
    }

    fn crc32(bytes: &[u8]) -> u32 {
        let table: Vec<u32> = (0..256u32)
            .map(|n| (0..8).fold(n, |c, _| (c >> 1) ^ (0xEDB8_8320 & (c & 1).wrapping_neg())))
            .collect();
        !bytes.iter().fold(!0u32, |c, &b| {
            table[((c ^ u32::from(b)) & 0xFF) as usize] ^ (c >> 8)
        })
    }

    /// `png` with an iCCP chunk after its header whose profile inflates to `1 + 258 * copies`
    /// bytes.
    fn with_iccp(png: &[u8], copies: usize) -> Vec<u8> {
        let mut chunk = b"iCCPicc\0\0".to_vec(); // type, profile name, compression method
        chunk.extend(zeros_zlib(copies));
        let len = u32::try_from(chunk.len() - 4).expect("chunk length");
        let crc = crc32(&chunk);
        let header_end = 8 + 25;
        let mut out = png[..header_end].to_vec();
        out.extend_from_slice(&len.to_be_bytes());
        out.extend(chunk);
        out.extend_from_slice(&crc.to_be_bytes());
        out.extend_from_slice(&png[header_end..]);
        out
    }

    #[test]
    fn a_png_icc_profile_is_inflated_only_within_the_metadata_budget() {
        let png = png_bytes(&DynamicImage::ImageRgb8(noisy_rgb(300, 200)));
        let limits = Limits::default();
        let kept = decode_png(&with_iccp(&png, 10), &limits).expect("decodes");
        assert_eq!(kept.icc.map(|icc| icc.len()), Some(1 + 258 * 10));
        // 64 MiB: well within the allocation limit, far past the metadata budget.
        let dropped = decode_png(&with_iccp(&png, (64 << 20) / 258), &limits).expect("decodes");
        assert!(dropped.icc.is_none());
        assert_eq!(dropped.source_size, (300, 200));
    }

    #[test]
    fn a_png_whose_metadata_chunks_are_past_the_budget_is_kept_as_it_came() {
        let png = png_bytes(&DynamicImage::ImageRgb8(noisy_rgb(1000, 800)));
        // A 1 GiB profile in a 6.8 MB chunk: the chunk alone is past the budget.
        let input = with_iccp(&png, (1 << 30) / 258);
        let result = compress(
            &input,
            &settings(ImageFormat::Jpeg, 500),
            &Limits::default(),
        );
        assert!(matches!(result, Err(Kept::TooLarge)), "{result:?}");
    }
}
