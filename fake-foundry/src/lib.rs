//! A fake Azure AI Foundry / Azure OpenAI upstream speaking the real wire formats (chat
//! completions, Responses API, image generations, embeddings, with Azure's SSE quirks and headers;
//! function calls; deployments that serve only one of chat completions and Responses), and a fake
//! Microsoft Entra ID issuing the tokens it can require, for the proxy's integration tests and for
//! benchmarks.

mod body;
pub mod entra;
mod formats;
mod handler;
mod ids;
mod script;
mod server;
mod state;
mod tls;
mod tools;

pub use entra::{FakeEntra, MI_SUBJECT, TokenChecker};
pub use formats::{
    IMAGE_MAX_N, IMAGE_USAGE_INPUT_TOKENS, IMAGE_USAGE_OUTPUT_TOKENS_PER_IMAGE, PNG_BASE64,
    SYSTEM_FINGERPRINT, USAGE_CACHED_TOKENS, USAGE_COMPLETION_TOKENS, USAGE_PROMPT_TOKENS,
    USAGE_REASONING_TOKENS, USAGE_TOTAL_TOKENS, error_body,
};
pub use handler::{CHAT_ONLY_PREFIX, MAX_BODY_BYTES, RESPONSES_ONLY_PREFIX};
pub use script::{Behaviour, ScriptedReply, Throttle};
pub use server::{FakeFoundry, ServeOptions, serve};
pub use state::RecordedRequest;
pub use tools::ToolCall;
