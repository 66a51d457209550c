//! Client-supplied text that the gateway repeats or keeps (a model id quoted in an error, an
//! error message in a log line or a recent-requests entry) is bounded: longer text is cut at a
//! character boundary and ends with [`TRUNCATED`], so no client can grow an answer, a log line or
//! the ops listener's memory with a long string.

use std::borrow::Cow;

/// What a cut string ends with.
pub const TRUNCATED: &str = "…(truncated)";

/// The most characters kept of a client-supplied id (model id, URL path) before the marker.
pub const MAX_ID_CHARS: usize = 256;

/// The most characters kept of an error message that is logged and kept in recent requests.
pub const MAX_MESSAGE_CHARS: usize = 4096;

/// `text` when it has at most `max_chars` characters, else its first `max_chars` characters
/// followed by [`TRUNCATED`].
pub fn bounded(text: &str, max_chars: usize) -> Cow<'_, str> {
    match text.char_indices().nth(max_chars) {
        None => Cow::Borrowed(text),
        Some((cut, _)) => Cow::Owned(format!("{}{TRUNCATED}", &text[..cut])),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_text_is_kept_as_it_is() {
        assert!(matches!(bounded("gpt-5", 5), Cow::Borrowed("gpt-5")));
    }

    #[test]
    fn long_text_is_cut_at_a_character_boundary_and_marked() {
        assert_eq!(bounded("abcdef", 3), "abc…(truncated)");
        assert_eq!(bounded("ééééé", 2), "éé…(truncated)");
    }
}
