//! The downstream request body: read under the size limit, a minimum rate and the memory
//! budget shared by all requests (`body_budget`), and inspected once for `model`,
//! `stream` and `stream_options`, with the byte ranges the rewrite needs. Never changes a byte.
//! A body with one of these members twice is refused: the gateway would read one occurrence and
//! an upstream parser might read the other.

use std::borrow::Cow;
use std::fmt;
use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use actix_web::body::{BodySize, BoxBody, MessageBody};
use actix_web::{HttpResponse, web};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

use crate::downstream::body_budget::{BodyBudget, Reservation};
use crate::errors::ProxyError;

/// How a request body must arrive.
#[derive(Debug, Clone, Copy)]
pub struct BodyRules {
    /// The most bytes a body may have (`BODY_LIMIT`).
    pub limit: usize,
    /// The longest pause between bytes, and the grace before `min_rate` applies
    /// (`BODY_READ_TIMEOUT_SECS`).
    pub read_timeout: Duration,
    /// Bytes per second the body must average once `read_timeout` has passed; 0 for no minimum
    /// (`BODY_MIN_RATE`).
    pub min_rate: u64,
}

impl BodyRules {
    /// When the next bytes must have arrived, `received` bytes into a body started at `started`:
    /// within `read_timeout` of now, and no later than `read_timeout` plus the time `received`
    /// bytes take at `min_rate` after the start.
    fn deadline(&self, started: Instant, received: usize) -> Instant {
        let next = Instant::now() + self.read_timeout;
        if self.min_rate == 0 {
            return next;
        }
        let earned = Duration::try_from_secs_f64(received as f64 / self.min_rate as f64)
            .unwrap_or(Duration::MAX);
        started
            .checked_add(self.read_timeout.saturating_add(earned))
            .map_or(next, |by_rate| next.min(by_rate))
    }
}

/// Reads the whole request body, failing as soon as it passes the limit, arrives too slowly,
/// or would take the bodies held in memory over `budget`. The returned reservation holds the
/// body's bytes against the budget until it is dropped.
pub async fn read_limited(
    payload: &mut web::Payload,
    content_length: Option<usize>,
    rules: &BodyRules,
    budget: &Arc<BodyBudget>,
) -> Result<(Bytes, Reservation), ProxyError> {
    let limit = rules.limit;
    if content_length.is_some_and(|len| len > limit) {
        return Err(ProxyError::BodyTooLarge { limit });
    }
    let mut reservation = budget.reservation();
    if !reservation.grow_to(content_length.unwrap_or(0)) {
        return Err(ProxyError::ServerBusy);
    }
    let started = Instant::now();
    let mut body = BytesMut::with_capacity(content_length.unwrap_or(8 * 1024).min(limit));
    loop {
        let deadline = rules.deadline(started, body.len());
        let next = tokio::time::timeout_at(deadline.into(), payload.next())
            .await
            .map_err(|_| ProxyError::BodyTimeout {
                read_timeout: rules.read_timeout,
                min_rate: rules.min_rate,
            })?;
        let Some(chunk) = next else { break };
        let chunk = chunk.map_err(|err| ProxyError::BodyRead(err.to_string()))?;
        let total = body.len() + chunk.len();
        if total > limit {
            return Err(ProxyError::BodyTooLarge { limit });
        }
        // Within a declared length this is no atomic operation at all.
        if !reservation.grow_to(total) {
            return Err(ProxyError::ServerBusy);
        }
        body.extend_from_slice(&chunk);
    }
    Ok((body.freeze(), reservation))
}

/// `response` sent with the connection closed after it, the rest of the request body unread.
/// Keeping `payload` alive until the response is sent is what tells the server the body was
/// not read; dropped, a chunked body would be drained to its end, however slowly it comes.
pub fn closing_connection(response: HttpResponse, payload: web::Payload) -> HttpResponse {
    response.map_body(|_, body| {
        BoxBody::new(WithUnreadPayload {
            body,
            _payload: payload,
        })
    })
}

struct WithUnreadPayload {
    body: BoxBody,
    _payload: web::Payload,
}

impl MessageBody for WithUnreadPayload {
    type Error = <BoxBody as MessageBody>::Error;

    fn size(&self) -> BodySize {
        self.body.size()
    }

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_next(cx)
    }
}

/// What the gateway needs to know about a request body, with byte ranges for splicing.
#[derive(Debug, PartialEq)]
pub struct Inspected {
    pub model: String,
    /// The `model` value, quotes included. When the body has no `model` (the model came from
    /// the path), an empty range where a `"model": ...` member goes, just inside the object.
    pub model_span: Range<usize>,
    /// Whether `model_span` is that insertion point, and whether the object has other members
    /// (so the inserted member needs a comma after it).
    pub model_absent: Option<bool>,
    pub stream: bool,
    /// The whole `"stream_options": {...}` member, key included.
    pub stream_options_member: Option<Range<usize>>,
}

/// Bodies larger than this are inspected on the blocking pool: scanning megabytes of JSON
/// inline would hold up every other request on the worker.
const INSPECT_INLINE_MAX: usize = 1 << 20;

/// [`inspect_for`], off the async worker when the body is large.
pub async fn inspect_off_reactor(
    body: &Bytes,
    path_model: Option<&str>,
) -> Result<Inspected, ProxyError> {
    if body.len() <= INSPECT_INLINE_MAX {
        return inspect_for(body, path_model);
    }
    let body = body.clone();
    let path_model = path_model.map(str::to_string);
    match tokio::task::spawn_blocking(move || inspect_for(&body, path_model.as_deref())).await {
        Ok(inspected) => inspected,
        Err(err) => std::panic::resume_unwind(err.into_panic()),
    }
}

/// Validates the body as a JSON object and finds its top-level members of interest.
pub fn inspect(body: &[u8]) -> Result<Inspected, ProxyError> {
    inspect_for(body, None)
}

/// [`inspect`] for a request whose path may name the model (Azure's
/// `/openai/deployments/{model}/...`): that model wins, and the body's `model` is optional.
pub fn inspect_for(body: &[u8], path_model: Option<&str>) -> Result<Inspected, ProxyError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let found = de
        .deserialize_map(TopLevel {
            base: body.as_ptr() as usize,
        })
        .and_then(|found| de.end().map(|()| found))
        .map_err(|err| {
            if err.classify() == serde_json::error::Category::Data {
                ProxyError::BodyNotObject
            } else {
                ProxyError::InvalidJson(err.to_string())
            }
        })?;
    if let Some(name) = found.duplicate {
        return Err(ProxyError::DuplicateParameter(name));
    }

    let stream = found.stream.is_some_and(|raw| raw == "true");
    let stream_options_member = found.stream_options.map(|value| member_range(body, value));
    let (model, model_span, model_absent) = match (found.model, path_model) {
        (Some((span, _)), Some(model)) => (model.to_string(), span, None),
        (None, Some(model)) => {
            let open = body.iter().position(|b| *b == b'{').unwrap_or(0) + 1;
            let has_members = body[open..].iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'}');
            (model.to_string(), open..open, Some(has_members))
        }
        (Some((span, raw)), None) => {
            let model: String =
                serde_json::from_str(raw).map_err(|_| ProxyError::ModelNotString)?;
            (model, span, None)
        }
        (None, None) => return Err(ProxyError::MissingModel),
    };
    if model.trim().is_empty() {
        return Err(ProxyError::MissingModel);
    }
    Ok(Inspected {
        model,
        model_span,
        model_absent,
        stream,
        stream_options_member,
    })
}

/// Widens a member's value range to the whole member and one adjacent comma, so that removing
/// it leaves valid JSON.
fn member_range(body: &[u8], value: Range<usize>) -> Range<usize> {
    let mut start = value.start;
    // Back over whitespace, ':', whitespace, then the key string.
    while start > 0 && body[start - 1].is_ascii_whitespace() {
        start -= 1;
    }
    if start > 0 && body[start - 1] == b':' {
        start -= 1;
    }
    while start > 0 && body[start - 1].is_ascii_whitespace() {
        start -= 1;
    }
    if start > 0 && body[start - 1] == b'"' {
        start -= 1;
        while start > 0 {
            start -= 1;
            if body[start] == b'"' && !escaped(body, start) {
                break;
            }
        }
    }
    let mut before = start;
    while before > 0 && body[before - 1].is_ascii_whitespace() {
        before -= 1;
    }
    if before > 0 && body[before - 1] == b',' {
        return (before - 1)..value.end;
    }
    let mut end = value.end;
    while end < body.len() && body[end].is_ascii_whitespace() {
        end += 1;
    }
    if end < body.len() && body[end] == b',' {
        end += 1;
    }
    start..end
}

fn escaped(body: &[u8], quote: usize) -> bool {
    body[..quote]
        .iter()
        .rev()
        .take_while(|b| **b == b'\\')
        .count()
        % 2
        == 1
}

#[derive(Default)]
struct Found<'a> {
    model: Option<(Range<usize>, &'a str)>,
    stream: Option<&'a str>,
    stream_options: Option<Range<usize>>,
    /// The first member of interest seen twice.
    duplicate: Option<&'static str>,
}

impl Found<'_> {
    /// Notes a member of interest; `again` when it was already set.
    fn seen(&mut self, name: &'static str, again: bool) {
        if again && self.duplicate.is_none() {
            self.duplicate = Some(name);
        }
    }
}

struct TopLevel {
    base: usize,
}

impl TopLevel {
    fn span(&self, raw: &RawValue) -> Range<usize> {
        let start = raw.get().as_ptr() as usize - self.base;
        start..start + raw.get().len()
    }
}

impl<'de> Visitor<'de> for TopLevel {
    type Value = Found<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Found<'de>, A::Error> {
        let mut found = Found::default();
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            match key.as_ref() {
                "model" => {
                    let raw: &'de RawValue = map.next_value()?;
                    found.seen("model", found.model.is_some());
                    found.model = Some((self.span(raw), raw.get()));
                }
                "stream" => {
                    let raw: &'de RawValue = map.next_value()?;
                    found.seen("stream", found.stream.is_some());
                    found.stream = Some(raw.get());
                }
                "stream_options" => {
                    let raw: &'de RawValue = map.next_value()?;
                    found.seen("stream_options", found.stream_options.is_some());
                    found.stream_options = Some(self.span(raw));
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(found)
    }
}

impl<'de> de::DeserializeSeed<'de> for TopLevel {
    type Value = Found<'de>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Found<'de>, D::Error> {
        d.deserialize_map(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaped_model_names_are_decoded() {
        let inspected = inspect(br#"{"model":"gpt\u002d5"}"#).expect("inspect");
        assert_eq!(inspected.model, "gpt-5");
    }

    #[test]
    fn missing_model_is_an_error() {
        assert!(matches!(
            inspect(br#"{"messages":[]}"#),
            Err(ProxyError::MissingModel)
        ));
        assert!(matches!(
            inspect(br#"{"model":""}"#),
            Err(ProxyError::MissingModel)
        ));
    }

    #[test]
    fn non_string_model_is_an_error() {
        assert!(matches!(
            inspect(br#"{"model":null}"#),
            Err(ProxyError::ModelNotString)
        ));
        assert!(matches!(
            inspect(br#"{"model":5}"#),
            Err(ProxyError::ModelNotString)
        ));
    }

    #[test]
    fn malformed_json_says_where() {
        let Err(ProxyError::InvalidJson(message)) = inspect(b"{\"model\": \"m\",\n \"x\": }")
        else {
            panic!("expected InvalidJson");
        };
        assert!(message.contains("line 2"), "{message}");
    }

    #[test]
    fn a_json_array_is_not_an_object() {
        assert!(matches!(inspect(b"[1,2]"), Err(ProxyError::BodyNotObject)));
    }

    #[test]
    fn trailing_garbage_is_refused() {
        assert!(matches!(
            inspect(br#"{"model":"m"} x"#),
            Err(ProxyError::InvalidJson(_))
        ));
    }

    #[test]
    fn stream_flag_is_read() {
        assert!(
            inspect(br#"{"model":"m","stream":true}"#)
                .expect("ok")
                .stream
        );
        assert!(
            !inspect(br#"{"model":"m","stream":false}"#)
                .expect("ok")
                .stream
        );
    }

    #[test]
    fn a_member_of_interest_sent_twice_is_refused() {
        for (body, name) in [
            (r#"{"model":"other","model":"allowed"}"#, "model"),
            (r#"{"model":"m","mod\u0065l":"m"}"#, "model"),
            (r#"{"model":"m","stream":false,"stream":true}"#, "stream"),
            (
                r#"{"model":"m","stream_options":{},"stream_options":{}}"#,
                "stream_options",
            ),
        ] {
            assert!(
                matches!(inspect(body.as_bytes()), Err(ProxyError::DuplicateParameter(n)) if n == name),
                "{body}"
            );
        }
        assert!(inspect(br#"{"model":"m","messages":[{"model":"x"}]}"#).is_ok());
    }
}
