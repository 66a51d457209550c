//! What the upstream gets instead of what the client sent: the headers allowed across, and the
//! body as one splice of the client's buffer with every rewrite's edits (the deployment as
//! `model`, `stream_options` dropped where the upstream refuses it, smaller images).

pub mod headers;
pub mod images;
pub mod splice;

use bytes::Bytes;

use crate::config::ImageCompression;
use crate::downstream::body::Inspected;
use images::ImageService;
use splice::{Edit, UpstreamBody};

/// The body to send upstream for a request inspected as `inspected`. Without images to
/// compress, it is the client's buffer around the new `model`, not a copy.
pub async fn upstream_body(
    body: Bytes,
    inspected: &Inspected,
    deployment: &str,
    compression: &ImageCompression,
    images: &ImageService,
    request_id: &str,
) -> UpstreamBody {
    let mut edits = request_edits(inspected, deployment);
    if !compression.enabled {
        return splice::apply(&body, edits);
    }
    let image_edits = images::image_edits(&body, compression, images, request_id).await;
    if image_edits.is_empty() {
        return splice::apply(&body, edits);
    }
    edits.extend(image_edits);
    let spliced = splice::apply(&body, edits);
    if spliced.len() >= body.len() / 2 {
        return spliced;
    }
    // Mostly replaced: copy what remains so that the client's (large) buffer is freed instead
    // of being held by a few slices until the upstream has answered.
    drop(body);
    images.compact(spliced).await
}

/// `model` set to the deployment and, on a non-streaming request, `stream_options` removed.
fn request_edits(inspected: &Inspected, deployment: &str) -> Vec<Edit> {
    let mut edits = Vec::with_capacity(2);
    if inspected.model != deployment {
        let model_json =
            serde_json::to_string(deployment).unwrap_or_else(|_| format!("\"{deployment}\""));
        edits.push(Edit::replace(
            inspected.model_span.clone(),
            Bytes::from(model_json),
        ));
    }
    if let Some(member) = inspected
        .stream_options_member
        .as_ref()
        .filter(|_| !inspected.stream)
    {
        edits.push(Edit::remove(member.clone()));
    }
    edits
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::downstream::body::inspect;
    use serde_json::Value;

    fn rewritten(body: &str, deployment: &str) -> String {
        let bytes = Bytes::copy_from_slice(body.as_bytes());
        let inspected = inspect(&bytes).expect("inspect");
        let out = splice::apply(&bytes, request_edits(&inspected, deployment)).into_bytes();
        String::from_utf8(out.to_vec()).expect("utf8")
    }

    #[test]
    fn model_becomes_the_deployment_and_nothing_else_changes() {
        let body = r#"{ "messages": [{"role":"user","content":"model \"x\""}],
            "model" : "gpt-5-mini", "temperature": 0.10000000000000001, "n": null, "x": "undefined" }"#;
        let out = rewritten(body, "dep-1");
        assert_eq!(out, body.replace("\"gpt-5-mini\"", "\"dep-1\""));
    }

    #[test]
    fn stream_options_is_removed_from_non_streaming_requests() {
        for body in [
            r#"{"model":"m","stream_options":{"include_usage":true},"stream":false}"#,
            r#"{"stream_options": {"include_usage": true} , "model":"m"}"#,
            r#"{"model":"m", "stream_options":{"a":"}\","}}"#,
        ] {
            let out = rewritten(body, "d");
            let json: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{out}: {e}"));
            assert!(json.get("stream_options").is_none(), "{out}");
            assert_eq!(json["model"], "d");
        }
    }

    #[test]
    fn stream_options_is_kept_on_streaming_requests() {
        let body = r#"{"model":"m","stream":true,"stream_options":{"include_usage":true}}"#;
        let json: Value = serde_json::from_str(&rewritten(body, "d")).expect("json");
        assert_eq!(json["stream_options"]["include_usage"], true);
    }

    #[test]
    fn a_body_that_needs_no_change_is_not_copied() {
        let bytes = Bytes::from_static(br#"{"model":"same"}"#);
        let inspected = inspect(&bytes).expect("inspect");
        assert!(request_edits(&inspected, "same").is_empty());
    }

    #[test]
    fn deployment_names_are_json_escaped() {
        let out = rewritten(r#"{"model":"m"}"#, "a\"b");
        let json: Value = serde_json::from_str(&out).expect("json");
        assert_eq!(json["model"], "a\"b");
    }

    #[actix_rt::test]
    async fn images_model_and_stream_options_are_rewritten_in_one_splice() {
        let service = ImageService::new(1).expect("pool");
        let compression = ImageCompression {
            enabled: true,
            max_size: 64,
            min_bytes: 32 * 1024,
            quality: 0.85,
            format: crate::config::ImageFormat::Jpeg,
        };
        let image = images::tests::png_base64(300, 200);
        let body = Bytes::from(format!(
            r#"{{"model":"m","stream_options":{{"include_usage":true}},"messages":[{{"role":"user","content":[{{"type":"image_url","image_url":{{"url":"data:image/png;base64,{image}"}}}}]}}]}}"#
        ));
        let inspected = inspect(&body).expect("inspect");
        let out = upstream_body(body, &inspected, "dep", &compression, &service, "req-1")
            .await
            .into_bytes();
        let json: Value = serde_json::from_slice(&out).expect("valid json");
        assert_eq!(json["model"], "dep");
        assert!(json.get("stream_options").is_none());
        let url = json["messages"][0]["content"][0]["image_url"]["url"]
            .as_str()
            .expect("url");
        assert!(url.starts_with("data:image/jpeg;base64,"), "{url}");
    }
}
