//! Identifiers shaped like Azure's: request ids (UUIDs), object ids (`chatcmpl-…`, `resp_…`, `msg_…`) and timestamps.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

const GOLDEN_GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;
const HEX: &[u8; 16] = b"0123456789abcdef";
const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

static SEEDS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static STATE: Cell<u64> = Cell::new(seed());
}

/// Distinct per thread: wall-clock nanoseconds mixed with a process-wide counter.
fn seed() -> u64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    nanos
        ^ SEEDS
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_mul(GOLDEN_GAMMA)
}

/// A fast non-cryptographic random number (SplitMix64 over a thread-local state).
pub fn next_u64() -> u64 {
    STATE.with(|state| {
        let x = state.get().wrapping_add(GOLDEN_GAMMA);
        state.set(x);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    })
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A random version-4 UUID in its lowercase 36-character text form.
pub fn uuid_v4() -> [u8; 36] {
    let hi = next_u64();
    let lo = next_u64();
    // Version nibble 4 and RFC 4122 variant bits.
    let hi = (hi & !0xF000) | 0x4000;
    let lo = (lo & !(0b11 << 62)) | (0b10 << 62);
    let bits = (u128::from(hi) << 64) | u128::from(lo);
    let mut out = [b'-'; 36];
    let mut nibble = 0;
    for (i, slot) in out.iter_mut().enumerate() {
        if matches!(i, 8 | 13 | 18 | 23) {
            continue;
        }
        *slot = HEX[((bits >> (124 - 4 * nibble)) & 0xF) as usize];
        nibble += 1;
    }
    out
}

/// Appends `digits` random lowercase hex digits.
pub fn push_hex(buf: &mut Vec<u8>, digits: usize) {
    let mut bits = 0;
    for i in 0..digits {
        if i % 16 == 0 {
            bits = next_u64();
        }
        buf.push(HEX[(bits & 0xF) as usize]);
        bits >>= 4;
    }
}

/// Appends `chars` random alphanumeric characters.
pub fn push_base62(buf: &mut Vec<u8>, chars: usize) {
    let mut bits = 0;
    for i in 0..chars {
        if i % 10 == 0 {
            bits = next_u64();
        }
        buf.push(BASE62[(bits % 62) as usize]);
        bits /= 62;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_has_the_canonical_shape() {
        let id = uuid_v4();
        let text = std::str::from_utf8(&id).expect("ascii");
        let groups: Vec<&str> = text.split('-').collect();
        assert_eq!(
            groups.iter().map(|g| g.len()).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12]
        );
        assert!(groups[2].starts_with('4'));
        assert_ne!(uuid_v4(), id);
    }
}
