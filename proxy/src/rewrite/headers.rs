//! Which headers cross the gateway. Requests: an allow-list of client headers goes upstream,
//! never the client's credentials or cookies. Responses: an allow-list of useful upstream headers
//! comes back. Hop-by-hop headers never cross in either direction.

use actix_web::HttpResponseBuilder;
use actix_web::http::header::{self, HeaderMap, HeaderName, HeaderValue};

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
pub const UPSTREAM_REQUEST_ID: HeaderName = HeaderName::from_static("x-upstream-request-id");

/// Client headers that go upstream as they are (besides our `x-request-id`).
const REQUEST_ALLOW: [HeaderName; 5] = [
    header::CONTENT_TYPE,
    header::ACCEPT,
    header::USER_AGENT,
    HeaderName::from_static("x-ms-client-request-id"),
    HeaderName::from_static("x-client-request-id"),
];

const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

pub fn is_hop_by_hop(name: &HeaderName, connection: Option<&HeaderValue>) -> bool {
    HOP_BY_HOP.contains(&name.as_str())
        || connection.and_then(|v| v.to_str().ok()).is_some_and(|v| {
            v.split(',')
                .any(|t| t.trim().eq_ignore_ascii_case(name.as_str()))
        })
}

/// The client's request id when it sent a usable one, else a new one.
pub fn request_id(headers: &HeaderMap) -> String {
    headers
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|id| !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_graphic()))
        // A v4 UUID from the thread's generator: `Uuid::new_v4` makes a getrandom system call
        // on every request.
        .map_or_else(
            || {
                let id = uuid::Builder::from_random_bytes(rand::random()).into_uuid();
                id.hyphenated()
                    .encode_lower(&mut uuid::Uuid::encode_buffer())
                    .to_owned()
            },
            str::to_string,
        )
}

/// The headers sent upstream for a downstream request (credential not included).
pub fn upstream_request_headers(
    downstream: &HeaderMap,
    request_id: &str,
) -> Vec<(HeaderName, HeaderValue)> {
    let connection = downstream.get(header::CONNECTION);
    let mut out = Vec::with_capacity(6);
    for name in REQUEST_ALLOW {
        if is_hop_by_hop(&name, connection) {
            continue;
        }
        if let Some(value) = downstream.get(&name) {
            out.push((name, value.clone()));
        }
    }
    if !out.iter().any(|(n, _)| n == header::CONTENT_TYPE) {
        out.push((
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        ));
    }
    if let Ok(id) = HeaderValue::from_str(request_id) {
        out.push((REQUEST_ID, id));
    }
    out
}

fn response_header_allowed(name: &str) -> bool {
    matches!(
        name,
        "content-type" | "cache-control" | "retry-after" | "retry-after-ms" | "apim-request-id"
    ) || name.starts_with("x-ratelimit-")
        || name.starts_with("x-ms-")
        || name.starts_with("openai-")
        || name.starts_with("azureml-model-")
}

/// Copies the useful upstream headers to the downstream response; the upstream's own
/// `x-request-id` is renamed so the gateway's id stays the one the client sees.
pub fn copy_response_headers(upstream: &HeaderMap, downstream: &mut HttpResponseBuilder) {
    let connection = upstream.get(header::CONNECTION);
    for (name, value) in upstream {
        if is_hop_by_hop(name, connection) {
            continue;
        }
        if *name == REQUEST_ID {
            downstream.insert_header((UPSTREAM_REQUEST_ID, value.clone()));
        } else if response_header_allowed(name.as_str()) {
            downstream.append_header((name.clone(), value.clone()));
        }
    }
}

/// The upstream's id for a request, for logs: `apim-request-id`, else its `x-request-id`.
pub fn upstream_request_id(upstream: &HeaderMap) -> Option<String> {
    ["apim-request-id", "x-request-id"]
        .into_iter()
        .find_map(|n| {
            upstream
                .get(n)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::HttpResponse;

    fn map(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.append(
                HeaderName::from_static(n),
                HeaderValue::from_str(v).expect("value"),
            );
        }
        h
    }

    #[test]
    fn only_allowed_client_headers_go_upstream() {
        let h = map(&[
            ("authorization", "Bearer sk"),
            ("cookie", "a=b"),
            ("user-agent", "sdk/1"),
            ("accept", "text/event-stream"),
            ("x-forwarded-for", "1.2.3.4"),
            ("connection", "keep-alive, user-agent"),
        ]);
        let out = upstream_request_headers(&h, "rid");
        let names: Vec<_> = out.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, vec!["accept", "content-type", "x-request-id"]);
    }

    #[test]
    fn useful_upstream_headers_come_back_and_hop_by_hop_do_not() {
        let h = map(&[
            ("content-type", "application/json"),
            ("x-request-id", "up-1"),
            ("apim-request-id", "apim-1"),
            ("x-ratelimit-remaining-tokens", "10"),
            ("retry-after-ms", "20"),
            ("set-cookie", "a=b"),
            ("transfer-encoding", "chunked"),
            ("keep-alive", "timeout=5"),
        ]);
        let mut b = HttpResponse::Ok();
        copy_response_headers(&h, &mut b);
        let resp = b.finish();
        let out = resp.headers();
        assert_eq!(
            out.get("x-upstream-request-id").map(|v| v.as_bytes()),
            Some(&b"up-1"[..])
        );
        assert!(out.get("apim-request-id").is_some());
        assert!(out.get("x-ratelimit-remaining-tokens").is_some());
        assert!(out.get("retry-after-ms").is_some());
        assert!(out.get("set-cookie").is_none());
        assert!(out.get("keep-alive").is_none());
        assert!(out.get("x-request-id").is_none());
    }

    #[test]
    fn client_request_id_is_kept_or_generated() {
        assert_eq!(request_id(&map(&[("x-request-id", "abc")])), "abc");
        assert_eq!(request_id(&HeaderMap::new()).len(), 36);
        assert_eq!(request_id(&map(&[("x-request-id", "a b")])).len(), 36);
    }
}
