//! Request bodies from one API to the other, before the body goes upstream. A translated body
//! is an ordinary request body of the other API: the gateway sets `model` to the deployment and
//! rewrites it (images, headers) like any other. `model` is carried over as the client sent it.
//!
//! Members that are `null` count as absent. Members neither API knows are carried over
//! unchanged (the upstream decides about them); members one API has and the other has not are
//! refused with a 400 naming them, unless they hold the value that changes nothing (`n: 1`).

mod chat_to_responses;
mod responses_to_chat;

pub use chat_to_responses::chat_to_responses;
pub use responses_to_chat::responses_to_chat;

use serde_json::{Map, Value};

use super::error::TranslateError;

/// A request body translated for the upstream's API.
#[derive(Debug, Clone, PartialEq)]
pub struct TranslatedRequest {
    /// The upstream request body (JSON).
    pub body: Vec<u8>,
    /// The client asked for a stream.
    pub stream: bool,
    /// A chat client asked for the final usage chunk (`stream_options.include_usage`); the
    /// stream translator needs it. Always false for a Responses client.
    pub include_usage: bool,
}

/// The members of a request body, taken out one by one as they are translated.
struct Members(Map<String, Value>);

impl Members {
    fn from_body(body: Value) -> Result<Members, TranslateError> {
        match body {
            Value::Object(mut map) => {
                map.retain(|_, value| !value.is_null());
                Ok(Members(map))
            }
            _ => Err(TranslateError::invalid(
                "body",
                "the request body must be a JSON object",
            )),
        }
    }

    fn take(&mut self, key: &str) -> Option<Value> {
        self.0.remove(key)
    }

    fn take_bool(&mut self, key: &str) -> Result<Option<bool>, TranslateError> {
        self.take(key).map(|v| boolean(v, key)).transpose()
    }

    fn take_object(&mut self, key: &str) -> Result<Option<Map<String, Value>>, TranslateError> {
        self.take(key).map(|v| object(v, key)).transpose()
    }

    fn take_array(&mut self, key: &str) -> Result<Option<Vec<Value>>, TranslateError> {
        self.take(key).map(|v| array(v, key)).transpose()
    }

    /// Refuses `key` unless it is absent or `harmless` (holds a value that changes nothing).
    fn refuse_unless(
        &mut self,
        key: &str,
        harmless: impl Fn(&Value) -> bool,
        why: &str,
    ) -> Result<(), TranslateError> {
        match self.take(key) {
            Some(value) if !harmless(&value) => Err(TranslateError::unsupported(
                key,
                format!("'{key}' is not supported for this model: {why}"),
            )),
            _ => Ok(()),
        }
    }

    /// Moves `key` into `out` unchanged.
    fn carry(&mut self, key: &str, out: &mut Map<String, Value>) {
        if let Some(value) = self.take(key) {
            out.insert(key.into(), value);
        }
    }

    /// Moves every member not taken yet into `out` unchanged.
    fn carry_rest(self, out: &mut Map<String, Value>) {
        for (key, value) in self.0 {
            out.entry(key).or_insert(value);
        }
    }
}

fn serialize(body: Map<String, Value>) -> Vec<u8> {
    // A map of JSON values always serialises.
    serde_json::to_vec(&body).unwrap_or_default()
}

fn expected(path: &str, what: &str) -> TranslateError {
    TranslateError::invalid(path, format!("invalid type for '{path}': expected {what}"))
}

fn boolean(value: Value, path: &str) -> Result<bool, TranslateError> {
    value.as_bool().ok_or_else(|| expected(path, "a boolean"))
}

fn string(value: Value, path: &str) -> Result<String, TranslateError> {
    match value {
        Value::String(s) => Ok(s),
        _ => Err(expected(path, "a string")),
    }
}

fn object(value: Value, path: &str) -> Result<Map<String, Value>, TranslateError> {
    match value {
        Value::Object(map) => Ok(map),
        _ => Err(expected(path, "an object")),
    }
}

fn array(value: Value, path: &str) -> Result<Vec<Value>, TranslateError> {
    match value {
        Value::Array(items) => Ok(items),
        _ => Err(expected(path, "an array")),
    }
}

/// The string member `key` of `map` (absent or null: `None`).
fn take_string_in(
    map: &mut Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<Option<String>, TranslateError> {
    match map.remove(key) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => string(value, &format!("{path}.{key}")).map(Some),
    }
}

/// The required string member `key` of `map`.
fn require_string_in(
    map: &mut Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<String, TranslateError> {
    take_string_in(map, key, path)?.ok_or_else(|| TranslateError::missing(format!("{path}.{key}")))
}

fn is_zero(value: &Value) -> bool {
    value.as_f64() == Some(0.0)
}

fn is_false(value: &Value) -> bool {
    value == &Value::Bool(false)
}

fn is_empty(value: &Value) -> bool {
    match value {
        Value::Array(items) => items.is_empty(),
        Value::Object(map) => map.is_empty(),
        _ => false,
    }
}
