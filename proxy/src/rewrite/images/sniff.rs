//! What an encoded image is, read from its first bytes and container structure: format, stored
//! dimensions and whether a GIF holds more than one frame. Never decodes pixels and never
//! allocates.

/// The formats the compressor can decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceFormat {
    Jpeg,
    Png,
    Gif,
    Webp,
}

/// The format announced by the magic bytes, if it is one we decode.
pub fn source_format(bytes: &[u8]) -> Option<SourceFormat> {
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some(SourceFormat::Jpeg)
    } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some(SourceFormat::Png)
    } else if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
        Some(SourceFormat::Gif)
    } else if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        Some(SourceFormat::Webp)
    } else {
        None
    }
}

/// The stored width and height of an image of `format`, read from its header (the JPEG frame
/// header, PNG `IHDR`, GIF logical screen, WebP `VP8 `/`VP8L`/`VP8X` chunk). `None` when the
/// header is missing or malformed.
pub fn dimensions(bytes: &[u8], format: SourceFormat) -> Option<(u32, u32)> {
    let be16 = |at: usize| {
        Some(u32::from(u16::from_be_bytes([
            *bytes.get(at)?,
            *bytes.get(at + 1)?,
        ])))
    };
    let le16 = |at: usize| {
        Some(u32::from(u16::from_le_bytes([
            *bytes.get(at)?,
            *bytes.get(at + 1)?,
        ])))
    };
    let le24 = |at: usize| {
        Some(u32::from_le_bytes([
            *bytes.get(at)?,
            *bytes.get(at + 1)?,
            *bytes.get(at + 2)?,
            0,
        ]))
    };
    let be32 = |at: usize| Some(u32::from_be_bytes(bytes.get(at..at + 4)?.try_into().ok()?));
    match format {
        SourceFormat::Png => (bytes.get(12..16)? == b"IHDR").then_some((be32(16)?, be32(20)?)),
        SourceFormat::Gif => Some((le16(6)?, le16(8)?)),
        SourceFormat::Webp => match bytes.get(12..16)? {
            // Key frame: 3-byte frame tag, start code 9D 01 2A, then 14-bit width and height.
            b"VP8 " => (bytes.get(23..26)? == [0x9D, 0x01, 0x2A])
                .then_some((le16(26)? & 0x3FFF, le16(28)? & 0x3FFF)),
            // Signature 0x2F, then width - 1 and height - 1 in 14 bits each, little-endian.
            b"VP8L" => {
                if *bytes.get(20)? != 0x2F {
                    return None;
                }
                let bits = u32::from_le_bytes(bytes.get(21..25)?.try_into().ok()?);
                Some(((bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1))
            }
            // Flags and reserved (4 bytes), then canvas width - 1 and height - 1 in 24 bits.
            b"VP8X" => Some((le24(24)? + 1, le24(27)? + 1)),
            _ => None,
        },
        SourceFormat::Jpeg => {
            let mut at = 2;
            loop {
                if *bytes.get(at)? != 0xFF {
                    return None;
                }
                let marker = *bytes.get(at + 1)?;
                match marker {
                    // Fill byte before a marker.
                    0xFF => at += 1,
                    // Markers without a segment.
                    0x01 | 0xD0..=0xD7 => at += 2,
                    // Start of frame (not DHT, JPG, DAC): length, precision, height, width.
                    0xC0..=0xCF if !matches!(marker, 0xC4 | 0xC8 | 0xCC) => {
                        return Some((be16(at + 7)?, be16(at + 5)?));
                    }
                    // Start of scan or end of image before any frame header.
                    0xDA | 0xD9 => return None,
                    _ => at += 2 + usize::try_from(be16(at + 2)?).ok()?,
                }
            }
        }
    }
}

/// Counts the image descriptors of a GIF, stopping once `enough` are seen, by walking its
/// blocks without decompressing them. A truncated or malformed file yields what was counted.
pub fn gif_frames(bytes: &[u8], enough: usize) -> usize {
    let mut frames = 0;
    // Header (6) and logical screen descriptor (7).
    let Some(&packed) = bytes.get(10) else {
        return 0;
    };
    let mut at = 13 + color_table_len(packed);
    while frames < enough {
        match bytes.get(at) {
            Some(0x21) => {
                // Extension: introducer, label, then data sub-blocks.
                at = match skip_sub_blocks(bytes, at + 2) {
                    Some(next) => next,
                    None => return frames,
                };
            }
            Some(0x2C) => {
                frames += 1;
                let Some(&packed) = bytes.get(at + 9) else {
                    return frames;
                };
                // Descriptor (10), local colour table, LZW minimum code size (1), sub-blocks.
                at = match skip_sub_blocks(bytes, at + 10 + color_table_len(packed) + 1) {
                    Some(next) => next,
                    None => return frames,
                };
            }
            _ => return frames,
        }
    }
    frames
}

fn color_table_len(packed: u8) -> usize {
    if packed & 0x80 == 0 {
        0
    } else {
        3 << ((packed & 0x07) + 1)
    }
}

/// The offset just past a chain of sub-blocks starting at `at`, or `None` if it runs off the end.
fn skip_sub_blocks(bytes: &[u8], mut at: usize) -> Option<usize> {
    loop {
        let len = usize::from(*bytes.get(at)?);
        at += 1;
        if len == 0 {
            return Some(at);
        }
        at += len;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal GIF: no global colour table, `frames` 1×1 images with one data sub-block each.
    fn gif(frames: usize) -> Vec<u8> {
        let mut out = b"GIF89a\x01\x00\x01\x00\x00\x00\x00".to_vec();
        out.extend_from_slice(b"\x21\xFF\x0BNETSCAPE2.0\x03\x01\x00\x00\x00");
        for _ in 0..frames {
            out.extend_from_slice(b"\x21\xF9\x04\x00\x0A\x00\x00\x00");
            out.extend_from_slice(b"\x2C\x00\x00\x00\x00\x01\x00\x01\x00\x80");
            out.extend_from_slice(&[0; 6]); // local colour table of two entries
            out.extend_from_slice(b"\x02\x02\x44\x01\x00");
        }
        out.push(0x3B);
        out
    }

    #[test]
    fn magic_bytes_name_the_format() {
        assert_eq!(source_format(b"\xFF\xD8\xFF\xE0"), Some(SourceFormat::Jpeg));
        assert_eq!(
            source_format(b"\x89PNG\r\n\x1a\n...."),
            Some(SourceFormat::Png)
        );
        assert_eq!(source_format(b"GIF89a..."), Some(SourceFormat::Gif));
        assert_eq!(
            source_format(b"RIFF\x00\x00\x00\x00WEBPVP8 "),
            Some(SourceFormat::Webp)
        );
        assert_eq!(source_format(b"BM\x00\x00"), None);
        assert_eq!(source_format(b"<svg"), None);
        assert_eq!(source_format(b""), None);
    }

    fn encoded(format: image::ImageFormat, width: u32, height: u32, alpha: bool) -> Vec<u8> {
        let image = if alpha {
            image::DynamicImage::ImageRgba8(image::RgbaImage::new(width, height))
        } else {
            image::DynamicImage::ImageRgb8(image::RgbImage::new(width, height))
        };
        let mut out = Vec::new();
        image
            .write_to(&mut std::io::Cursor::new(&mut out), format)
            .expect("encode");
        out
    }

    #[test]
    fn dimensions_are_read_from_each_header() {
        for (format, sniffed) in [
            (image::ImageFormat::Png, SourceFormat::Png),
            (image::ImageFormat::Jpeg, SourceFormat::Jpeg),
            (image::ImageFormat::Gif, SourceFormat::Gif),
            (image::ImageFormat::WebP, SourceFormat::Webp),
        ] {
            let alpha = format != image::ImageFormat::Jpeg;
            let bytes = encoded(format, 300, 17, alpha);
            assert_eq!(source_format(&bytes), Some(sniffed));
            assert_eq!(dimensions(&bytes, sniffed), Some((300, 17)), "{format:?}");
        }
        let lossy = webp::Encoder::from_rgb(&[90; 40 * 3 * 9], 40, 9)
            .encode(50.0)
            .to_vec();
        assert_eq!(&lossy[12..16], b"VP8 ");
        assert_eq!(dimensions(&lossy, SourceFormat::Webp), Some((40, 9)));
        let extended = webp::Encoder::from_rgba(&[90; 40 * 4 * 9], 40, 9)
            .encode(50.0)
            .to_vec();
        assert_eq!(&extended[12..16], b"VP8X");
        assert_eq!(dimensions(&extended, SourceFormat::Webp), Some((40, 9)));
    }

    #[test]
    fn a_truncated_header_has_no_dimensions() {
        for format in [image::ImageFormat::Png, image::ImageFormat::Jpeg] {
            let bytes = encoded(format, 30, 20, false);
            let sniffed = source_format(&bytes).expect("format");
            for cut in 0..12 {
                assert_eq!(dimensions(&bytes[..cut], sniffed), None);
            }
        }
        assert_eq!(
            dimensions(b"\xFF\xD8\xFF\xDA\x00\x02", SourceFormat::Jpeg),
            None
        );
    }

    #[test]
    fn gif_frames_are_counted_without_decoding() {
        assert_eq!(gif_frames(&gif(1), 2), 1);
        assert_eq!(gif_frames(&gif(3), 2), 2);
        assert_eq!(gif_frames(&gif(3), 10), 3);
    }

    #[test]
    fn a_truncated_gif_counts_what_it_has() {
        let full = gif(2);
        for cut in 0..full.len() {
            assert!(gif_frames(&full[..cut], 10) <= 2);
        }
        assert_eq!(gif_frames(b"GIF89a", 2), 0);
    }
}
