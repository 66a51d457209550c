//! Counts server-sent events in bytes as they pass, by their `data:` field, so that the same
//! event can be told apart at the fake's side of the gateway and at the client's.

use memchr::memmem;

const MARKER: &[u8] = b"data:";

#[derive(Default)]
pub struct EventCounter {
    /// The last bytes of the previous piece, in case a marker straddles two pieces.
    carry: Vec<u8>,
}

impl EventCounter {
    /// How many events begin in `piece`.
    pub fn feed(&mut self, piece: &[u8]) -> usize {
        let mut count = 0;
        if !self.carry.is_empty() {
            let head = &piece[..piece.len().min(MARKER.len() - 1)];
            let carried = self.carry.len();
            let mut joined = [0u8; 2 * MARKER.len()];
            joined[..carried].copy_from_slice(&self.carry);
            joined[carried..carried + head.len()].copy_from_slice(head);
            let joined = &joined[..carried + head.len()];
            // Only markers that start in the carried bytes and end in this piece.
            count += memmem::find_iter(joined, MARKER)
                .filter(|&at| at < carried && at + MARKER.len() > carried)
                .count();
        }
        count += memmem::find_iter(piece, MARKER).count();
        // Keep the stream's last bytes, which may span several short pieces.
        self.carry
            .extend_from_slice(&piece[piece.len().saturating_sub(MARKER.len() - 1)..]);
        let excess = self.carry.len().saturating_sub(MARKER.len() - 1);
        self.carry.drain(..excess);
        count
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_split_across_pieces_are_counted_once() {
        let stream = b"data: a\n\ndata: b\n\ndata: [DONE]\n\n";
        for cut in 0..stream.len() {
            let mut counter = EventCounter::default();
            let n = counter.feed(&stream[..cut]) + counter.feed(&stream[cut..]);
            assert_eq!(n, 3, "cut at {cut}");
        }
        let mut counter = EventCounter::default();
        let n: usize = stream.iter().map(|b| counter.feed(&[*b])).sum();
        assert_eq!(n, 3);
    }
}
