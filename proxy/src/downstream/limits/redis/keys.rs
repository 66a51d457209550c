//! The names of the Redis keys that hold a client key's counters. Every name carries the
//! client key's id in a hash tag (`{team-a}`), so that one key's counters share a cluster slot
//! and one script may touch them all; then what is counted, and the start of the span counted.
//!
//! - a window: `gateway:limits:{<id>}:<requests|tokens>:<limit>:<per seconds>s:<start ms>`, so
//!   that changed limits count in a new key and unchanged ones keep theirs;
//! - a budget: `gateway:limits:{<id>}:budget:<day|month>:<start ms>`, where the start is the
//!   period's, or the last reset (`budget.resetAt`) within it.
//!
//! Characters of the id outside `A-Z a-z 0-9 - . _ ~` are percent-encoded (`{`, `}` and `:`
//! would otherwise break the tag or the fields).

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::config::{Budget, BudgetPeriod, Window};

pub const PREFIX: &str = "gateway:limits:";

const ID_ESCAPED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// `gateway:limits:{<id>}:`, the part every counter of the key shares.
pub fn key_prefix(id: &str) -> String {
    format!("{PREFIX}{{{}}}:", utf8_percent_encode(id, ID_ESCAPED))
}

/// The counter of `window` in the span starting at `start_ms`.
pub fn window(prefix: &str, window: &Window, start_ms: u64) -> String {
    format!(
        "{prefix}{}:{}:{}s:{start_ms}",
        window.metered.as_str(),
        window.limit,
        window.per.as_secs()
    )
}

/// The budget's counter in the period starting at `start_ms`.
pub fn budget(prefix: &str, budget: &Budget, start_ms: u64) -> String {
    let period = match budget.period {
        BudgetPeriod::Day => "day",
        BudgetPeriod::Month => "month",
    };
    format!("{prefix}budget:{period}:{start_ms}")
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::Metered;

    #[test]
    fn names_carry_the_id_what_is_counted_and_the_span() {
        let prefix = key_prefix("team-a");
        let w = Window {
            metered: Metered::Requests,
            limit: 60,
            per: Duration::from_secs(60),
        };
        assert_eq!(
            window(&prefix, &w, 1_800_000_000_000),
            "gateway:limits:{team-a}:requests:60:60s:1800000000000"
        );
        let b = Budget {
            tokens: 5,
            period: BudgetPeriod::Month,
            reset_at_ms: None,
        };
        assert_eq!(
            budget(&prefix, &b, 1_798_761_600_000),
            "gateway:limits:{team-a}:budget:month:1798761600000"
        );
    }

    #[test]
    fn other_limits_and_other_spans_are_other_keys() {
        let prefix = key_prefix("k");
        let w = Window {
            metered: Metered::Tokens,
            limit: 100,
            per: Duration::from_secs(60),
        };
        let more = Window { limit: 101, ..w };
        let longer = Window {
            per: Duration::from_secs(61),
            ..w
        };
        let requests = Window {
            metered: Metered::Requests,
            ..w
        };
        let names = [
            window(&prefix, &w, 0),
            window(&prefix, &w, 60_000),
            window(&prefix, &more, 0),
            window(&prefix, &longer, 0),
            window(&prefix, &requests, 0),
        ];
        for (i, a) in names.iter().enumerate() {
            for b in &names[i + 1..] {
                assert_ne!(a, b);
            }
        }
    }

    #[test]
    fn ids_cannot_break_the_hash_tag_or_the_fields() {
        assert_eq!(key_prefix("a}{b:c d"), "gateway:limits:{a%7D%7Bb%3Ac%20d}:");
        assert_eq!(key_prefix("Team_1.x~y"), "gateway:limits:{Team_1.x~y}:");
    }
}
