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
