//! What an encoded image is, read from its first bytes and container structure: format and
//! whether a GIF holds more than one frame. Never decodes pixels and never allocates.

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
