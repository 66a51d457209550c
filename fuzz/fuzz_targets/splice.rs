//! The request body's `model` splice: for any body that inspects OK, the upstream body is valid
//! JSON whose members are the client's, byte for byte, in order, except `model` (now the
//! deployment) and, on a non-streaming request, `stream_options` (removed); and it inspects
//! again to the deployment.
#![no_main]

use std::borrow::Cow;
use std::fmt;
use std::sync::LazyLock;

use bytes::Bytes;
use futures_util::FutureExt as _;
use libfuzzer_sys::fuzz_target;
use proxy::config::{ImageCompression, ImageFormat};
use proxy::fuzzing::{ImageService, inspect_body, upstream_body};
use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

/// Deployment names to splice in: plain, needing escapes, and long.
const DEPLOYMENTS: [&str; 6] = [
    "gpt-5-mini-dep",
    "a\"b\\c",
    "dé\u{2028}\u{0}",
    " spaced ",
    "m",
    "a-deployment-name-that-is-longer-than-most-model-names-in-a-body-0123456789",
];

/// Image compression off: the body is only spliced, and `upstream_body` returns without waiting.
const NO_IMAGES: ImageCompression = ImageCompression {
    enabled: false,
    max_size: 1600,
    min_bytes: 0,
    quality: 0.85,
    format: ImageFormat::Jpeg,
};

static IMAGES: LazyLock<ImageService> =
    LazyLock::new(|| ImageService::new(1).expect("an image worker"));

/// The top-level members of a JSON object in order: decoded key, raw value text.
struct Members<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'de> serde::Deserialize<'de> for Members<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Members<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Members<'de>, A::Error> {
                let mut out = Vec::new();
                while let Some(key) = map.next_key::<Cow<'de, str>>()? {
                    out.push((key, map.next_value::<&'de RawValue>()?));
                }
                Ok(Members(out))
            }
        }
        d.deserialize_map(V)
    }
}

fn members(bytes: &[u8]) -> Vec<(String, String)> {
    serde_json::from_slice::<Members>(bytes)
        .expect("an object")
        .0
        .into_iter()
        .map(|(k, v)| (k.into_owned(), v.get().to_string()))
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let Ok(inspected) = inspect_body(data) else {
        return;
    };
    let body = Bytes::copy_from_slice(data);
    let deployment = DEPLOYMENTS[data.len() % DEPLOYMENTS.len()];
    let out = upstream_body(body, &inspected, &NO_IMAGES, &IMAGES, "fuzz")
        .now_or_never()
        .expect("no image work to wait for")
        .for_deployment(deployment)
        .into_bytes();

    if let Err(err) = serde_json::from_slice::<IgnoredAny>(&out) {
        panic!(
            "the upstream body is not JSON ({err}):\n{}",
            String::from_utf8_lossy(&out)
        );
    }
    // The gateway reads a body as serde_json does, which does not check the UTF-8 of the
    // strings it skips; such a body goes upstream as it came, around the new `model`. Members
    // are compared as text, so only on UTF-8 bodies.
    if std::str::from_utf8(data).is_err() {
        return;
    }
    let deployment_json = serde_json::to_string(deployment).expect("a string");
    let expected: Vec<(String, String)> = members(data)
        .into_iter()
        .filter(|(key, _)| inspected.stream || key != "stream_options")
        .map(|(key, value)| match key.as_str() {
            "model" if inspected.model != deployment => (key, deployment_json.clone()),
            _ => (key, value),
        })
        .collect();
    assert_eq!(members(&out), expected);
    let again = inspect_body(&out).expect("the upstream body inspects OK");
    assert_eq!(again.model, deployment);
    assert_eq!(again.stream, inspected.stream);
});
