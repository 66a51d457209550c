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

/// The body to send upstream, rewritten once for every deployment it may go to: everything but
/// `model`, which [`PreparedBody::for_deployment`] fills in. Without images to compress, its
/// parts are slices of the client's buffer, not copies.
pub async fn upstream_body(
    body: Bytes,
    inspected: &Inspected,
    compression: &ImageCompression,
    images: &ImageService,
    request_id: &str,
) -> PreparedBody {
    let mut edits = request_edits(inspected);
    let image_edits = if compression.enabled {
        images::image_edits(&body, compression, images, request_id).await
    } else {
        Vec::new()
    };
    let images_replaced = !image_edits.is_empty();
    edits.extend(image_edits);
    let span = inspected.model_span.clone();
    let client_model = body.slice(span.clone());
    let client_wrote_id =
        serde_json::from_slice::<String>(&client_model).is_ok_and(|m| m == inspected.model);
    if edits.is_empty() {
        return PreparedBody {
            head: UpstreamBody::from(body.slice(..span.start)),
            tail: UpstreamBody::from(body.slice(span.end..)),
            client_model,
            model_id: inspected.model.clone(),
            model_absent: inspected.model_absent,
            client_wrote_id,
            unchanged: Some(body),
        };
    }
    let (before, after): (Vec<Edit>, Vec<Edit>) = edits
        .into_iter()
        .partition(|edit| edit.range.end <= span.start);
    let after = after
        .into_iter()
        .filter(|edit| edit.range.start >= span.end)
        .map(|edit| {
            Edit::replace(
                edit.range.start - span.end..edit.range.end - span.end,
                edit.replacement,
            )
        })
        .collect();
    let mut head = splice::apply(&body.slice(..span.start), before);
    let mut tail = splice::apply(&body.slice(span.end..), after);
    if images_replaced && head.len() + tail.len() < body.len() / 2 {
        // Mostly replaced: copy what remains so that the client's (large) buffer is freed
        // instead of being held by a few slices until the upstream has answered.
        drop(body);
        head = images.compact(head).await;
        tail = images.compact(tail).await;
    }
    PreparedBody {
        head,
        tail,
        client_model,
        model_id: inspected.model.clone(),
        model_absent: inspected.model_absent,
        client_wrote_id,
        unchanged: None,
    }
}

/// A rewritten request body waiting for its deployment's name as `model`.
#[derive(Debug)]
pub struct PreparedBody {
    /// What comes before and after the `model` value.
    head: UpstreamBody,
    tail: UpstreamBody,
    /// The `model` value as the client wrote it (JSON, quotes included).
    client_model: Bytes,
    model_id: String,
    /// Set when the body has no `model` to replace (see `Inspected::model_absent`).
    model_absent: Option<bool>,
    /// Whether the client's `model` is `model_id` itself (not another value the path overrode).
    client_wrote_id: bool,
    /// The client's body itself, when nothing but `model` may change.
    unchanged: Option<Bytes>,
}

impl PreparedBody {
    /// The body for `deployment`: `model` set to its name.
    pub fn for_deployment(&self, deployment: &str) -> UpstreamBody {
        let json =
            || serde_json::to_string(deployment).unwrap_or_else(|_| format!("\"{deployment}\""));
        let model = match self.model_absent {
            Some(more) => Bytes::from(format!(
                "\"model\":{}{}",
                json(),
                if more { "," } else { "" }
            )),
            None if deployment == self.model_id && self.client_wrote_id => {
                if let Some(body) = &self.unchanged {
                    return UpstreamBody::from(body.clone());
                }
                self.client_model.clone()
            }
            None => Bytes::from(json()),
        };
        let (head, tail) = (self.head.parts(), self.tail.parts());
        let mut parts = Vec::with_capacity(head.len() + tail.len() + 1);
        parts.extend_from_slice(head);
        parts.push(model);
        parts.extend_from_slice(tail);
        UpstreamBody::from_parts(parts)
    }
}

/// On a non-streaming request, `stream_options` removed.
fn request_edits(inspected: &Inspected) -> Vec<Edit> {
    inspected
        .stream_options_member
        .as_ref()
        .filter(|_| !inspected.stream)
        .map(|member| vec![Edit::remove(member.clone())])
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::downstream::body::{inspect, inspect_for};
    use serde_json::Value;

    fn prepared(body: &str) -> PreparedBody {
        let bytes = Bytes::copy_from_slice(body.as_bytes());
        let inspected = inspect(&bytes).expect("inspect");
        let service = ImageService::new(1).expect("pool");
        let compression = ImageCompression {
            enabled: false,
            max_size: 64,
            min_bytes: 0,
            quality: 0.85,
            format: crate::config::ImageFormat::Jpeg,
        };
        futures_util::FutureExt::now_or_never(upstream_body(
            bytes,
            &inspected,
            &compression,
            &service,
            "req",
        ))
        .expect("ready without images")
    }

    fn rewritten(body: &str, deployment: &str) -> String {
        let out = prepared(body).for_deployment(deployment).into_bytes();
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
    fn a_body_that_needs_no_change_is_the_clients_buffer() {
        let body = prepared(r#"{"model":"same"}"#);
        assert_eq!(body.for_deployment("same").parts().len(), 1);
        assert_eq!(body.for_deployment("other").parts().len(), 3);
    }

    #[test]
    fn a_model_named_by_the_path_is_put_into_the_body() {
        for (body, path_model) in [
            (r#"{"input": "hi"}"#, "m"),
            (r#" { } "#, "m"),
            (r#"{"model": 7, "input": "hi"}"#, "m"),
        ] {
            let bytes = Bytes::copy_from_slice(body.as_bytes());
            let inspected = inspect_for(&bytes, Some(path_model)).expect("inspect");
            assert_eq!(inspected.model, "m");
            let service = ImageService::new(1).expect("pool");
            let compression = ImageCompression {
                enabled: false,
                max_size: 64,
                min_bytes: 0,
                quality: 0.85,
                format: crate::config::ImageFormat::Jpeg,
            };
            let prepared = futures_util::FutureExt::now_or_never(upstream_body(
                bytes,
                &inspected,
                &compression,
                &service,
                "req",
            ))
            .expect("ready");
            for deployment in ["m", "dep-1"] {
                let out = prepared.for_deployment(deployment).into_bytes();
                let json: Value = serde_json::from_slice(&out)
                    .unwrap_or_else(|e| panic!("{body}: {e}: {}", String::from_utf8_lossy(&out)));
                assert_eq!(json["model"], deployment, "{body}");
            }
        }
    }

    #[test]
    fn one_prepared_body_serves_every_deployment() {
        let body =
            prepared(r#"{"stream_options":{"include_usage":true},"model":"m","messages":[]}"#);
        for deployment in ["m", "east-1", "west/2"] {
            let out = body.for_deployment(deployment).into_bytes();
            let json: Value = serde_json::from_slice(&out).expect("json");
            assert_eq!(json["model"], deployment);
            assert!(json.get("stream_options").is_none());
        }
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
        let out = upstream_body(body, &inspected, &compression, &service, "req-1")
            .await
            .for_deployment("dep")
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
