//! The image span walker over request bodies: never panics; every image it reports is a whole
//! JSON string of the body (spans in order, apart, and replacing them all leaves valid JSON),
//! whose unescaped text is a `data:image/...;base64,` URL ending in the payload, or the bare
//! payload of an `image_base64`; and it holds no more than a few copies of the body. It runs
//! on a thread with the stack of an image worker (Rust's default, 2 MiB), as in the gateway.
#![no_main]

use bytes::Bytes;
use gateway_fuzz::limited;
use libfuzzer_sys::fuzz_target;
use proxy::fuzzing::{Edit, ImageShape, apply_edits, decode_base64, find_images};
use serde::de::IgnoredAny;

/// The stack of an image worker thread.
const WORKER_STACK: usize = 2 << 20;

fuzz_target!(|data: &[u8]| {
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .stack_size(WORKER_STACK)
            .spawn_scoped(scope, || check(data))
            .expect("a thread")
            .join()
            .expect("no panic");
    });
});

fn check(data: &[u8]) {
    let found = limited(4 * data.len() + (1 << 20), || find_images(data));
    let Ok(found) = found else {
        return;
    };
    let mut edits = Vec::new();
    let mut after = 0;
    for image in &found {
        let span = image.span.clone();
        assert!(span.start >= after && span.end <= data.len(), "{span:?}");
        after = span.end;
        let raw = &data[span.clone()];
        let text: String = serde_json::from_slice(raw).expect("a JSON string");
        assert!(text.ends_with(image.payload.as_ref()), "{text:?}");
        let head = &text[..text.len() - image.payload.len()];
        match image.shape {
            ImageShape::DataUrl => {
                let head = head.to_ascii_lowercase();
                assert!(head.starts_with("data:image/"), "{head:?}");
                assert!(head.ends_with(";base64,"), "{head:?}");
            }
            ImageShape::Base64 => assert!(head.is_empty() && !text.is_empty(), "{text:?}"),
        }
        // Whatever the payload holds, decoding it only reads it.
        let _ = limited(2 * image.payload.len() + 4096, || {
            decode_base64(image.payload.as_bytes())
        });
        edits.push(Edit::replace(span, Bytes::from_static(b"\"x\"")));
    }
    if !edits.is_empty() {
        let body = Bytes::copy_from_slice(data);
        let out = apply_edits(&body, edits).into_bytes();
        if let Err(err) = serde_json::from_slice::<IgnoredAny>(&out) {
            panic!(
                "images replaced, the body is no JSON ({err}):\n{}",
                String::from_utf8_lossy(&out)
            );
        }
    }
}
