//! `server.imageCompression`: how request images are re-encoded.

use super::issues::Checker;
use super::raw::RawImageCompression;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageFormat {
    Jpeg,
    Webp,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ImageCompression {
    pub enabled: bool,
    /// Longest edge in pixels, 16..=16384.
    pub max_size: u32,
    /// Images smaller than this (encoded bytes) that need no resize are forwarded as they
    /// came; 0..=16 MiB.
    pub min_bytes: usize,
    /// Greater than 0, at most 1.
    pub quality: f32,
    pub format: ImageFormat,
}

/// Largest `minBytes` accepted.
const MIN_BYTES_LIMIT: u64 = 16 * 1024 * 1024;

pub(super) fn parse(check: &mut Checker, i: &RawImageCompression) -> ImageCompression {
    let max_size = check.range("server.imageCompression.maxSize", i.max_size, 16, 16384);
    let min_bytes = check.range(
        "server.imageCompression.minBytes",
        i.min_bytes,
        0,
        MIN_BYTES_LIMIT,
    );
    if !(i.quality > 0.0 && i.quality <= 1.0) {
        check.fail(
            "server.imageCompression.quality",
            format!("must be greater than 0 and at most 1, got {}", i.quality),
        );
    }
    let format = match i.format.to_ascii_lowercase().as_str() {
        "jpeg" | "jpg" => ImageFormat::Jpeg,
        "webp" => ImageFormat::Webp,
        other => {
            check.fail(
                "server.imageCompression.format",
                format!("must be \"jpeg\" or \"webp\", got \"{other}\""),
            );
            ImageFormat::Jpeg
        }
    };
    ImageCompression {
        enabled: i.enabled,
        max_size: u32::try_from(max_size).unwrap_or(1600),
        min_bytes: usize::try_from(min_bytes).unwrap_or(0),
        quality: i.quality as f32,
        format,
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{issue_paths, load_value, sample};
    use super::*;
    use serde_json::json;

    #[test]
    fn image_format_must_be_jpeg_or_webp() {
        let mut v = sample();
        v["server"]["imageCompression"] = json!({"format": "gif"});
        assert_eq!(issue_paths(v), vec!["server.imageCompression.format"]);
    }

    #[test]
    fn format_names_are_case_insensitive_and_jpg_is_jpeg() {
        for (name, format) in [
            ("JPG", ImageFormat::Jpeg),
            ("jpeg", ImageFormat::Jpeg),
            ("WebP", ImageFormat::Webp),
        ] {
            let mut v = sample();
            v["server"]["imageCompression"] = json!({"format": name});
            let config = load_value(v).expect("valid");
            assert_eq!(config.server.image_compression.format, format, "{name}");
        }
    }

    #[test]
    fn size_and_quality_are_bounded() {
        let mut v = sample();
        v["server"]["imageCompression"] =
            json!({"maxSize": 8, "minBytes": 16 * 1024 * 1024 + 1, "quality": 0});
        assert_eq!(
            issue_paths(v),
            vec![
                "server.imageCompression.maxSize",
                "server.imageCompression.minBytes",
                "server.imageCompression.quality"
            ]
        );
    }

    #[test]
    fn min_bytes_defaults_to_32_kib_and_0_turns_it_off() {
        let config = load_value(sample()).expect("valid");
        assert_eq!(config.server.image_compression.min_bytes, 32 * 1024);
        let mut v = sample();
        v["server"]["imageCompression"] = json!({"minBytes": 0});
        let config = load_value(v).expect("valid");
        assert_eq!(config.server.image_compression.min_bytes, 0);
    }
}
