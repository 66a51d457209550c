//! The request mix: which kind request number `n` is, the request each kind sends, and the
//! answer each kind expects. Anything else (another status, a stream without its end, a
//! transport error) is an unexpected failure.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::StreamExt as _;

use crate::stack::{CLIENT_KEY, MODEL};

/// A 16×16 PNG (opaque, a colour gradient), small enough that compressing it costs little.
const SMALL_PNG_BASE64: &str = "iVBORw0KGgoAAAANSUhEUgAAABAAAAAQCAIAAACQkWg2AAABlklEQVR42hXRURVEIQhFUSMYgQhGMAIRiGCEE8EIRiACEYhABCLMG7/ZrMt1jMEcyGAN9kAHNjgDBnfwBj6IQQ5q0IMxJnMikzXZE53Y5EyY3Mmb+CQmOalJzw8IUxBhCVtQwYQjIFzhCS6EkEIJLR9YzIUs1mIvdGGLs2BxF2/hi1jkoha9PrCZG9mszd7oxjZnw+Zu3sY3sclNbXp/QJmKKEvZiiqmHAXlKk9xJZRUSmn9gDENMZaxDTXMOAbGNZ7hRhhplNH2gcM8yGEd9kEPdjgHDvfwDn6IQx7q0OcD/wK/Sr4jv9hfkG/1N/x/Fx44BCQU9Pc94zIvclmXfdGLXc79j9/Lu/glLnmpS98PPOZDHuuxH/qwx3n/5ffxHv6IRz7q0e8DznTEWc521DHn+D/KdZ7jTjjplNP+gWAGEqxgBxpYcOIf/AYv8CCCDCro+EAyE0lWshNNLDn5P/MmL/Ekkkwq6fxAMQspVrELLaw49S/lFq/wIoosquj6QDMbaVazG22sOf2v8Dav8SaabKrp5geIAnAQC3NfwAAAAABJRU5ErkJggg==";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Chat completion, not streamed: 200.
    Plain,
    /// Streamed chat, whole (every other one with 1 ms between the fake's chunks): 200 and
    /// `data: [DONE]` at the end.
    Streamed,
    /// Streamed chat with 20 ms between chunks that the client drops after the first piece of
    /// the body: 200 and that piece.
    Cancelled,
    /// Chat with a small inline PNG, image compression on: 200.
    Image,
    /// A model the config does not have: 404.
    UnknownModel,
    /// The upstream answers 500 (`"fake": {"status": 500}`): 500, relayed.
    Upstream500,
    /// A client key the config does not have: 401.
    BadKey,
}

impl Kind {
    pub const ALL: [Kind; 7] = [
        Kind::Plain,
        Kind::Streamed,
        Kind::Cancelled,
        Kind::Image,
        Kind::UnknownModel,
        Kind::Upstream500,
        Kind::BadKey,
    ];

    /// Per 100 requests: 60 plain, 20 streamed, 5 cancelled, 5 image, 10 erroring (4 unknown
    /// model, 3 upstream 500, 3 bad key), spread so that no two erroring ones are neighbours.
    pub fn of(n: u64) -> Kind {
        match n % 100 {
            r if r % 10 == 9 => match r / 10 {
                0..=3 => Kind::UnknownModel,
                4..=6 => Kind::Upstream500,
                _ => Kind::BadKey,
            },
            r if r % 10 == 4 && r < 50 => Kind::Cancelled,
            r if r % 10 == 4 => Kind::Image,
            r if r % 10 == 1 || r % 10 == 6 => Kind::Streamed,
            _ => Kind::Plain,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::Plain => "plain chat",
            Kind::Streamed => "streamed chat",
            Kind::Cancelled => "cancelled stream",
            Kind::Image => "inline image",
            Kind::UnknownModel => "unknown model",
            Kind::Upstream500 => "upstream 500",
            Kind::BadKey => "bad key",
        }
    }

    pub fn expected_status(self) -> u16 {
        match self {
            Kind::Plain | Kind::Streamed | Kind::Cancelled | Kind::Image => 200,
            Kind::UnknownModel => 404,
            Kind::Upstream500 => 500,
            Kind::BadKey => 401,
        }
    }

    pub fn index(self) -> usize {
        Kind::ALL.iter().position(|k| *k == self).unwrap_or(0)
    }
}

/// Sends request number `n` and checks its answer; `Err` describes an unexpected one.
pub async fn run(http: &reqwest::Client, proxy: SocketAddr, n: u64) -> Result<(), String> {
    let kind = Kind::of(n);
    let url = format!("http://{proxy}/v1/chat/completions");
    let key = if kind == Kind::BadKey {
        "sk-soak-not-a-key"
    } else {
        CLIENT_KEY
    };
    let response = http
        .post(url)
        .bearer_auth(key)
        .header("content-type", "application/json")
        .body(body(kind, n).to_string())
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .map_err(|err| format!("#{n} {}: {err}", kind.name()))?;
    let status = response.status().as_u16();
    if status != kind.expected_status() {
        let text = response.text().await.unwrap_or_default();
        return Err(format!(
            "#{n} {}: status {status}, expected {}: {}",
            kind.name(),
            kind.expected_status(),
            text.chars().take(300).collect::<String>()
        ));
    }
    let fail = |what: String| format!("#{n} {}: {what}", kind.name());
    match kind {
        Kind::Cancelled => {
            let mut body = response.bytes_stream();
            match body.next().await {
                // Dropping the body here closes the connection mid-stream.
                Some(Ok(piece)) if !piece.is_empty() => Ok(()),
                Some(Ok(_)) | None => Err(fail("the stream ended before its first piece".into())),
                Some(Err(err)) => Err(fail(format!("reading the stream: {err}"))),
            }
        }
        Kind::Streamed => {
            let text = response
                .bytes()
                .await
                .map_err(|err| fail(format!("reading the stream: {err}")))?;
            if text.trim_ascii_end().ends_with(b"data: [DONE]") {
                Ok(())
            } else {
                Err(fail("the stream did not end with data: [DONE]".into()))
            }
        }
        _ => response
            .bytes()
            .await
            .map(|_| ())
            .map_err(|err| fail(format!("reading the body: {err}"))),
    }
}

fn body(kind: Kind, n: u64) -> serde_json::Value {
    let text_message = serde_json::json!([{ "role": "user", "content": "Say hello." }]);
    match kind {
        Kind::Plain | Kind::BadKey => {
            serde_json::json!({ "model": MODEL, "messages": text_message })
        }
        Kind::Streamed => {
            let gap = n % 2;
            serde_json::json!({
                "model": MODEL, "messages": text_message, "stream": true,
                "fake": { "chunk_gap_ms": gap }
            })
        }
        Kind::Cancelled => serde_json::json!({
            "model": MODEL, "messages": text_message, "stream": true,
            "fake": { "chunk_gap_ms": 20, "stream_chunks": 10 }
        }),
        Kind::Image => serde_json::json!({
            "model": MODEL,
            "messages": [{
                "role": "user",
                "content": [
                    { "type": "text", "text": "What is in this picture?" },
                    {
                        "type": "image_url",
                        "image_url": { "url": format!("data:image/png;base64,{SMALL_PNG_BASE64}") }
                    }
                ]
            }]
        }),
        Kind::UnknownModel => {
            serde_json::json!({ "model": "no-such-model", "messages": text_message })
        }
        Kind::Upstream500 => serde_json::json!({
            "model": MODEL, "messages": text_message, "fake": { "status": 500 }
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mix_per_hundred_requests() {
        let mut counts = [0u32; 7];
        for n in 0..100 {
            counts[Kind::of(n).index()] += 1;
        }
        assert_eq!(counts, [60, 20, 5, 5, 4, 3, 3]);
    }
}
