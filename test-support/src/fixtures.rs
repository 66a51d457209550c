//! Request bodies and names the test suites share. Each suite keeps its own config, built
//! around these.

use serde_json::{Value, json};

/// The client model every suite's config maps to a deployment of the fake upstream.
pub const MODEL: &str = "gpt-5-mini";
/// The id of the client key the suites send requests with.
pub const KEY_ID: &str = "team-a";
/// The Azure api-key the suites' configs give the proxy for the fake upstream.
pub const UPSTREAM_API_KEY: &str = "azure-upstream-key";

/// A one-message chat completion request for [`MODEL`].
pub fn chat_body(stream: bool) -> Value {
    json!({
        "model": MODEL,
        "messages": [{"role": "user", "content": "Say hi"}],
        "stream": stream
    })
}
