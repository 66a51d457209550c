//! Finds inline images in a JSON request body by byte span: `image_url` strings and the `url`
//! of `image_url` objects that are `data:image/...;base64,` URLs, and `image_base64` fields, at
//! any depth. Reads the body only; never re-serialises or copies it (except to unescape a
//! string that holds JSON escapes).

use std::borrow::Cow;
use std::fmt;
use std::ops::Range;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

/// How an image is written in the body, so that its replacement keeps the same form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Shape {
    /// `data:image/<type>;base64,<payload>`; the replacement's media type follows the new format.
    DataUrl,
    /// Bare base64, as `image_base64` carries it.
    Base64,
}

/// One inline image.
#[derive(Debug, PartialEq)]
pub struct Found<'a> {
    /// The JSON string holding the image, quotes included.
    pub span: Range<usize>,
    pub shape: Shape,
    /// The base64 payload, JSON-unescaped.
    pub payload: Cow<'a, str>,
}

/// Every inline image of `body`, in document order. Errors on invalid JSON, and on values
/// nested past `MAX_DEPTH` or `MAX_IMAGE_URL_NESTING` (the body then keeps its images as they
/// are).
pub fn find(body: &[u8]) -> Result<Vec<Found<'_>>, serde_json::Error> {
    let mut candidates = Vec::new();
    let mut de = serde_json::Deserializer::from_slice(body);
    Walk {
        base: body.as_ptr() as usize,
        found: &mut candidates,
        in_image_url: false,
        depth: 0,
        image_url_nesting: 0,
    }
    .deserialize(&mut de)?;
    de.end()?;
    Ok(candidates
        .into_iter()
        .filter_map(|c| c.into_found(body.as_ptr() as usize))
        .collect())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    /// An `image_url` string or the `url` inside an `image_url` object.
    ImageUrl,
    ImageBase64,
}

struct Candidate<'de> {
    raw: &'de RawValue,
    field: Field,
}

impl<'de> Candidate<'de> {
    fn into_found(self, base: usize) -> Option<Found<'de>> {
        let raw = self.raw.get();
        if !raw.starts_with('"') {
            return None;
        }
        let start = raw.as_ptr() as usize - base;
        let span = start..start + raw.len();
        let text: Cow<'de, str> = if raw.contains('\\') {
            Cow::Owned(serde_json::from_str::<String>(raw).ok()?)
        } else {
            Cow::Borrowed(&raw[1..raw.len() - 1])
        };
        let (shape, payload_at) = match (self.field, data_url_payload(&text)) {
            (_, Some(at)) => (Shape::DataUrl, at),
            (Field::ImageBase64, None) if !text.is_empty() => (Shape::Base64, 0),
            _ => return None,
        };
        let payload = match text {
            Cow::Borrowed(text) => Cow::Borrowed(&text[payload_at..]),
            Cow::Owned(mut text) => {
                text.drain(..payload_at);
                Cow::Owned(text)
            }
        };
        Some(Found {
            span,
            shape,
            payload,
        })
    }
}

/// Where the payload of a `data:image/...;base64,` URL starts, if `text` is one.
fn data_url_payload(text: &str) -> Option<usize> {
    const PREFIX: &str = "data:image/";
    const MARK: &[u8] = b";base64";
    if !text.get(..PREFIX.len())?.eq_ignore_ascii_case(PREFIX) {
        return None;
    }
    // A media type is short: look for the comma near the start only.
    let head = &text.as_bytes()[..text.len().min(256)];
    let comma = head.iter().position(|&b| b == b',')?;
    let meta = &head[..comma];
    let is_base64 =
        meta.len() >= MARK.len() && meta[meta.len() - MARK.len()..].eq_ignore_ascii_case(MARK);
    is_base64.then_some(comma + 1)
}

/// How deeply containers may nest, counted across the second readings of `image_url` values
/// (each starts serde_json's own count afresh): serde_json's own limit, so that the walk's
/// recursion fits any worker's stack.
const MAX_DEPTH: usize = 128;

/// How many `image_url` objects may enclose one another. Each is read a second time, so this
/// bounds the walk to a few passes over the body.
const MAX_IMAGE_URL_NESTING: usize = 4;

/// Visits any JSON value, recording the values of interest and descending into the rest.
struct Walk<'f, 'de> {
    base: usize,
    found: &'f mut Vec<Candidate<'de>>,
    /// This value is an `image_url` object: its `url` is an image.
    in_image_url: bool,
    /// Containers around this value.
    depth: usize,
    /// `image_url` objects around this value.
    image_url_nesting: usize,
}

impl<'de> Walk<'_, 'de> {
    fn child(&mut self, in_image_url: bool) -> Walk<'_, 'de> {
        Walk {
            base: self.base,
            found: self.found,
            in_image_url,
            depth: self.depth + 1,
            image_url_nesting: self.image_url_nesting,
        }
    }

    fn image_url(&mut self, raw: &'de RawValue) -> Result<(), serde_json::Error> {
        let text = raw.get();
        match text.as_bytes().first() {
            Some(b'"') => {
                self.found.push(Candidate {
                    raw,
                    field: Field::ImageUrl,
                });
                Ok(())
            }
            // `{"url": ..., "detail": ...}` (or something unexpected that may hold images).
            Some(b'{' | b'[') => {
                if self.image_url_nesting >= MAX_IMAGE_URL_NESTING {
                    return Err(de::Error::custom("image_url objects nested too deeply"));
                }
                let mut de = serde_json::Deserializer::from_str(text);
                let mut child = self.child(true);
                child.image_url_nesting += 1;
                child.deserialize(&mut de)
            }
            _ => Ok(()),
        }
    }
}

impl<'de> DeserializeSeed<'de> for Walk<'_, 'de> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk<'_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<(), A::Error> {
        if self.depth >= MAX_DEPTH {
            return Err(de::Error::custom("nested too deeply"));
        }
        while seq.next_element_seed(self.child(false))?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<(), A::Error> {
        if self.depth >= MAX_DEPTH {
            return Err(de::Error::custom("nested too deeply"));
        }
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            match key.as_ref() {
                "image_url" => {
                    let raw: &'de RawValue = map.next_value()?;
                    self.image_url(raw).map_err(de::Error::custom)?;
                }
                "image_base64" => {
                    let raw: &'de RawValue = map.next_value()?;
                    self.found.push(Candidate {
                        raw,
                        field: Field::ImageBase64,
                    });
                }
                "url" if self.in_image_url => {
                    let raw: &'de RawValue = map.next_value()?;
                    self.found.push(Candidate {
                        raw,
                        field: Field::ImageUrl,
                    });
                }
                _ => map.next_value_seed(self.child(false))?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payloads(body: &str) -> Vec<(String, Shape, String)> {
        find(body.as_bytes())
            .expect("valid json")
            .into_iter()
            .map(|f| (body[f.span].to_string(), f.shape, f.payload.into_owned()))
            .collect()
    }

    #[test]
    fn chat_content_parts_are_found_in_both_forms() {
        let body = r#"{"model":"m","messages":[{"role":"user","content":[
            {"type":"text","text":"data:image/png;base64,notme"},
            {"type":"image_url","image_url":{"url":"data:image/png;base64,AAAA","detail":"high"}},
            {"type":"image_url","image_url":"data:image/jpeg;base64,BBBB"}]}]}"#;
        assert_eq!(
            payloads(body),
            vec![
                (
                    "\"data:image/png;base64,AAAA\"".into(),
                    Shape::DataUrl,
                    "AAAA".into()
                ),
                (
                    "\"data:image/jpeg;base64,BBBB\"".into(),
                    Shape::DataUrl,
                    "BBBB".into()
                ),
            ]
        );
    }

    #[test]
    fn responses_input_images_and_image_base64_are_found_at_any_depth() {
        let body = r#"{"input":[{"role":"user","content":[{"type":"input_image","image_url":"DATA:IMAGE/WEBP;BASE64,CCCC"}]}],
            "tools":[{"deep":{"image_base64":"DDDD"}}],"n":[1,2.5,null,true]}"#;
        assert_eq!(
            payloads(body),
            vec![
                (
                    "\"DATA:IMAGE/WEBP;BASE64,CCCC\"".into(),
                    Shape::DataUrl,
                    "CCCC".into()
                ),
                ("\"DDDD\"".into(), Shape::Base64, "DDDD".into()),
            ]
        );
    }

    #[test]
    fn remote_urls_and_non_base64_data_urls_are_left_alone() {
        let body = r#"{"a":{"image_url":{"url":"https://example.com/x.png"}},
            "b":{"image_url":"data:image/svg+xml,<svg/>"},"c":{"image_url":"data:text/plain;base64,AA=="},
            "d":{"url":"data:image/png;base64,AAAA"},"e":{"image_url":null},"f":{"image_base64":""}}"#;
        assert!(payloads(body).is_empty());
    }

    #[test]
    fn escaped_strings_are_unescaped_and_spans_cover_the_escaped_text() {
        let body = r#"{"image_url":{"url":"data:image\/png;base64,ab\/cd"}}"#;
        let found = find(body.as_bytes()).expect("json");
        assert_eq!(found.len(), 1);
        assert_eq!(
            &body[found[0].span.clone()],
            r#""data:image\/png;base64,ab\/cd""#
        );
        assert_eq!(found[0].payload, "ab/cd");
    }

    #[test]
    fn media_type_parameters_are_allowed() {
        let body = r#"{"image_url":"data:image/png;name=a.png;base64,EEEE"}"#;
        assert_eq!(payloads(body)[0].2, "EEEE");
    }

    /// `find` of `body` on a thread with an image worker's stack.
    fn find_on_worker_stack(body: String) -> Result<usize, serde_json::Error> {
        std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || find(body.as_bytes()).map(|f| f.len()))
            .expect("thread")
            .join()
            .expect("no panic")
    }

    #[test]
    fn image_url_objects_nested_deeply_are_refused_without_overflowing_the_stack() {
        let depth = 100_000;
        let body = format!(
            "{}\"data:image/png;base64,AAAA\"{}",
            "{\"image_url\":".repeat(depth),
            "}".repeat(depth)
        );
        assert!(find_on_worker_stack(body).is_err());
    }

    #[test]
    fn containers_nested_past_the_limit_across_image_url_objects_are_refused() {
        let wrap = |inner: String| {
            format!(
                "{{\"image_url\":{}{inner}{}}}",
                "[".repeat(100),
                "]".repeat(100)
            )
        };
        let body = wrap(wrap("\"data:image/png;base64,AAAA\"".into()));
        assert!(find_on_worker_stack(body).is_err());
    }

    #[test]
    fn an_image_inside_a_few_nested_image_url_objects_is_found() {
        let body = r#"{"image_url":{"image_url":{"url":"data:image/png;base64,AAAA"}}}"#;
        assert_eq!(payloads(body).len(), 1);
    }

    #[test]
    fn invalid_json_is_an_error() {
        assert!(find(br#"{"image_url": "data:image/png;base64,AA"#).is_err());
    }
}
