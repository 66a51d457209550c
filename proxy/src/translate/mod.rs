//! Chat completions ⇄ Responses translation, for models that speak only one of the two APIs.
//! A model whose route override points at the other route (`"chat/completions": "responses"`
//! or `"responses": "chat/completions"`) is reached through these pure translators:
//!
//! - [`request`]: the client's request body as a request body of the upstream's API, or a 400
//!   naming the parameter that has no equivalent there;
//! - [`answer`]: a whole (non-streaming) upstream answer as the client's answer;
//! - [`stream`]: an upstream event stream as the client's event stream, event by event.
//!
//! Nothing here does I/O or keeps state beyond one stream. Upstream error answers (non-2xx)
//! have the same `{"error": …}` shape in both APIs and are not translated.

pub mod answer;
pub mod error;
pub mod request;
pub mod stream;
mod wire;

#[cfg(test)]
mod against_fake;
#[cfg(test)]
mod golden;

pub use error::TranslateError;
pub use request::{TranslatedRequest, chat_to_responses, responses_to_chat};

use crate::config::{Model, RouteKey, RouteOverride};
use stream::StreamTranslator;

/// Which way a call is translated: the client's API to the upstream's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Translation {
    /// A chat client of a model the upstream serves through Responses.
    ChatToResponses,
    /// A Responses client of a model the upstream serves through chat completions.
    ResponsesToChat,
}

impl Translation {
    /// The translation a call of `route` needs: when `model` overrides the route with the other
    /// of the two text routes. An override by path changes only the URL.
    pub fn for_call(model: &Model, route: RouteKey) -> Option<Translation> {
        match (route, model.routes.get(&route).or(model.any_route.as_ref())) {
            (RouteKey::ChatCompletions, Some(RouteOverride::Route(RouteKey::Responses))) => {
                Some(Translation::ChatToResponses)
            }
            (RouteKey::Responses, Some(RouteOverride::Route(RouteKey::ChatCompletions))) => {
                Some(Translation::ResponsesToChat)
            }
            _ => None,
        }
    }

    pub fn request(self, body: serde_json::Value) -> Result<TranslatedRequest, TranslateError> {
        match self {
            Translation::ChatToResponses => chat_to_responses(body),
            Translation::ResponsesToChat => responses_to_chat(body),
        }
    }

    /// A whole (non-streaming) successful answer of the upstream, as the client's.
    pub fn answer(self, body: &[u8]) -> Result<Vec<u8>, TranslateError> {
        match self {
            Translation::ChatToResponses => answer::responses_to_chat_completion(body),
            Translation::ResponsesToChat => answer::chat_completion_to_response(body),
        }
    }

    pub fn stream(self, include_usage: bool) -> StreamTranslator {
        match self {
            Translation::ChatToResponses => StreamTranslator::responses_to_chat(include_usage),
            Translation::ResponsesToChat => StreamTranslator::chat_to_responses(),
        }
    }
}
