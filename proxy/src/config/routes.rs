//! The OpenAI routes the gateway serves, as they are named in config.json route maps.

use std::fmt;

/// The OpenAI routes the gateway forwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RouteKey {
    ChatCompletions,
    Responses,
    ImagesGenerations,
    Embeddings,
}

impl RouteKey {
    pub const ALL: [RouteKey; 4] = [
        RouteKey::ChatCompletions,
        RouteKey::Responses,
        RouteKey::ImagesGenerations,
        RouteKey::Embeddings,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RouteKey::ChatCompletions => "chat/completions",
            RouteKey::Responses => "responses",
            RouteKey::ImagesGenerations => "images/generations",
            RouteKey::Embeddings => "embeddings",
        }
    }

    pub fn parse(s: &str) -> Option<RouteKey> {
        RouteKey::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The Foundry v1 path used when an upstream does not list the route.
    pub fn default_path(self) -> String {
        format!("/openai/v1/{}", self.as_str())
    }

    /// Which route an explicit upstream path speaks, so that errors in a stream use its format.
    pub fn guess_from_path(path: &str) -> RouteKey {
        let path = path.split('?').next().unwrap_or(path);
        if path.contains("/responses") {
            RouteKey::Responses
        } else if path.contains("/images/") {
            RouteKey::ImagesGenerations
        } else if path.contains("/embeddings") {
            RouteKey::Embeddings
        } else {
            RouteKey::ChatCompletions
        }
    }
}

impl fmt::Display for RouteKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The route keys for an error message: `"chat/completions", "responses", ...`.
pub(super) fn route_names() -> String {
    RouteKey::ALL
        .iter()
        .map(|k| format!("\"{k}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_keys_parse_their_own_names_only() {
        for key in RouteKey::ALL {
            assert_eq!(RouteKey::parse(key.as_str()), Some(key));
        }
        assert_eq!(RouteKey::parse("audio/speech"), None);
        assert_eq!(RouteKey::parse("*"), None);
    }
}
