//! The SSE usage scanner: a stream cut into chunks at any points gives the same usage, end
//! marker and unfinished-line state as the whole stream fed at once; it never panics, and the
//! heap it holds stays within the longest unfinished line (it never keeps events).
#![no_main]

use gateway_fuzz::{HEAP, limited};
use libfuzzer_sys::fuzz_target;
use proxy::fuzzing::{SseUsageScanner, Usage};

/// What a scanner reports once a stream has gone by.
#[derive(Debug, PartialEq)]
struct Seen {
    usage: Option<Usage>,
    ended: bool,
    mid_line: bool,
}

fn scan<'a>(chunks: impl Iterator<Item = &'a [u8]>, longest_line: usize) -> Seen {
    let mut scanner = SseUsageScanner::default();
    let before = HEAP.allocated();
    let mut held_most = 0;
    for chunk in chunks {
        scanner.feed(chunk);
        held_most = held_most.max(HEAP.allocated().saturating_sub(before));
    }
    // The unfinished line (at most the longest one), grown by doubling.
    assert!(
        held_most <= 2 * longest_line + 64,
        "the scanner holds {held_most} bytes; the longest line has {longest_line}"
    );
    Seen {
        usage: scanner.usage(),
        ended: scanner.ended(),
        mid_line: scanner.mid_line(),
    }
}

/// Chunk lengths drawn from a small generator seeded by the input, so that the same input
/// always gives the same cuts.
fn cuts(data: &[u8], seed: u64, most: usize) -> Vec<&[u8]> {
    let mut state = seed ^ (data.len() as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let len = (state as usize % most).clamp(1, rest.len());
        let (chunk, tail) = rest.split_at(len);
        out.push(chunk);
        rest = tail;
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let longest_line = data
        .split(|b| *b == b'\n')
        .map(<[u8]>::len)
        .max()
        .unwrap_or(0);
    // The scanner's own allocations (parsed usage, held line) stay far below this.
    limited(16 * data.len() + (1 << 20), || {
        let whole = scan(std::iter::once(data), longest_line);
        let bytewise = scan(data.chunks(1), longest_line);
        assert_eq!(whole, bytewise, "one byte at a time");
        let seed = data
            .iter()
            .take(8)
            .fold(0u64, |acc, b| acc << 8 | u64::from(*b));
        for most in [3, 17, 256] {
            let chunks = cuts(data, seed, most);
            let cut = scan(chunks.iter().copied(), longest_line);
            assert_eq!(whole, cut, "cut into {} chunks", chunks.len());
        }
    });
});
