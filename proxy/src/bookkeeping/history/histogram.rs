//! Latency histograms with fixed, log-spaced bounds (the E12 series: 12 per decade, 1 ms to
//! 3300 s, neighbours 18–25 % apart), so that a quantile read with linear interpolation inside
//! its bucket is within about 10 % of the true value. The same bounds back the `/metrics`
//! histograms. Counts only; never allocates.

use super::codec::{Reader, Writer};

/// Upper bounds of the buckets, in microseconds; one more bucket holds slower requests.
pub const BOUNDS_US: [u64; 79] = {
    const MANTISSAS: [u64; 12] = [100, 120, 150, 180, 220, 270, 330, 390, 470, 560, 680, 820];
    let mut bounds = [0; 79];
    let mut i = 0;
    let mut scale = 10;
    while i < 72 {
        bounds[i] = MANTISSAS[i % 12] * scale;
        i += 1;
        if i % 12 == 0 {
            scale *= 10;
        }
    }
    // 1000 s to 3300 s.
    while i < 79 {
        bounds[i] = MANTISSAS[i - 72] * scale;
        i += 1;
    }
    bounds
};

/// Buckets of a histogram: one per bound, and the overflow bucket.
pub const BUCKETS: usize = BOUNDS_US.len() + 1;

/// The bucket a duration of `us` microseconds falls in (bucket `i` holds values up to
/// `BOUNDS_US[i]`, above `BOUNDS_US[i - 1]`).
pub fn bucket_of(us: u64) -> usize {
    BOUNDS_US.partition_point(|bound| *bound < us)
}

#[derive(Clone, PartialEq, Eq)]
pub struct Histogram {
    counts: [u64; BUCKETS],
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: [0; BUCKETS],
        }
    }
}

impl std::fmt::Debug for Histogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let filled: Vec<(usize, u64)> = self.nonzero().collect();
        f.debug_struct("Histogram")
            .field("buckets", &filled)
            .finish()
    }
}

impl Histogram {
    pub fn add_us(&mut self, us: u64) {
        self.counts[bucket_of(us)] += 1;
    }

    pub fn add_to_bucket(&mut self, bucket: usize, count: u64) {
        let bucket = bucket.min(BUCKETS - 1);
        self.counts[bucket] = self.counts[bucket].saturating_add(count);
    }

    pub fn merge(&mut self, other: &Histogram) {
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            *mine = mine.saturating_add(*theirs);
        }
    }

    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    pub fn counts(&self) -> &[u64; BUCKETS] {
        &self.counts
    }

    /// The buckets that hold something, as (index, count).
    pub fn nonzero(&self) -> impl Iterator<Item = (usize, u64)> + '_ {
        self.counts
            .iter()
            .enumerate()
            .filter(|(_, c)| **c > 0)
            .map(|(i, c)| (i, *c))
    }

    /// The `q` quantile (0..=1) in milliseconds, interpolated linearly inside its bucket; `None`
    /// for an empty histogram. The overflow bucket reads as the last bound.
    pub fn quantile_ms(&self, q: f64) -> Option<f64> {
        let total = self.total();
        if total == 0 {
            return None;
        }
        let rank = q.clamp(0.0, 1.0) * total as f64;
        let mut below = 0u64;
        for (i, count) in self.nonzero() {
            if (below + count) as f64 >= rank {
                let Some(&upper) = BOUNDS_US.get(i) else {
                    return Some(BOUNDS_US[BOUNDS_US.len() - 1] as f64 / 1000.0);
                };
                let lower = if i == 0 { 0 } else { BOUNDS_US[i - 1] };
                let within = ((rank - below as f64) / count as f64).clamp(0.0, 1.0);
                let us = lower as f64 + (upper - lower) as f64 * within;
                return Some(us / 1000.0);
            }
            below += count;
        }
        Some(BOUNDS_US[BOUNDS_US.len() - 1] as f64 / 1000.0)
    }

    /// Writes the non-empty buckets: their number, then (index gap, count) pairs.
    pub fn encode(&self, out: &mut Writer) {
        let filled = self.counts.iter().filter(|c| **c > 0).count();
        out.uint(filled as u64);
        let mut previous = 0;
        for (i, count) in self.nonzero() {
            out.uint((i - previous) as u64);
            out.uint(count);
            previous = i;
        }
    }

    /// Adds what [`Histogram::encode`] wrote, moving each bucket through `map` (the bucket
    /// indexes of a file written with other bounds).
    pub fn add_encoded(
        &mut self,
        input: &mut Reader<'_>,
        map: &BucketMap,
    ) -> Result<(), DecodeError> {
        let filled = input.uint()?;
        let mut index = 0usize;
        for _ in 0..filled {
            index = index
                .checked_add(usize::try_from(input.uint()?).map_err(|_| DecodeError)?)
                .ok_or(DecodeError)?;
            let count = input.uint()?;
            self.add_to_bucket(map.bucket(index), count);
        }
        Ok(())
    }

    /// Skips what [`Histogram::encode`] wrote, checking it as `add_encoded` would.
    pub fn skip_encoded(input: &mut Reader<'_>) -> Result<(), DecodeError> {
        let filled = input.uint()?;
        let mut index = 0usize;
        for _ in 0..filled {
            index = index
                .checked_add(usize::try_from(input.uint()?).map_err(|_| DecodeError)?)
                .ok_or(DecodeError)?;
            input.uint()?;
        }
        Ok(())
    }
}

/// Bytes that do not decode as what was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed usage data")]
pub struct DecodeError;

/// Where the buckets of data written with some bounds go in today's: each old bucket goes to
/// the bucket of its upper bound. The identity when the bounds are the same.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BucketMap {
    Same,
    Moved(Vec<usize>),
}

impl BucketMap {
    pub fn from_bounds(bounds_us: &[u64]) -> BucketMap {
        if bounds_us == BOUNDS_US {
            return BucketMap::Same;
        }
        let mut moved: Vec<usize> = bounds_us.iter().map(|b| bucket_of(*b)).collect();
        // The old overflow bucket.
        moved.push(BUCKETS - 1);
        BucketMap::Moved(moved)
    }

    fn bucket(&self, index: usize) -> usize {
        match self {
            BucketMap::Same => index,
            BucketMap::Moved(moved) => moved.get(index).copied().unwrap_or(BUCKETS - 1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_rise_from_one_millisecond_to_3300_seconds_at_most_25_percent_apart() {
        assert_eq!(BOUNDS_US[0], 1_000);
        assert_eq!(BOUNDS_US[12], 10_000);
        assert_eq!(BOUNDS_US[71], 820_000_000);
        assert_eq!(BOUNDS_US[78], 3_300_000_000);
        for pair in BOUNDS_US.windows(2) {
            let ratio = pair[1] as f64 / pair[0] as f64;
            assert!((1.17..=1.26).contains(&ratio), "{pair:?}");
        }
    }

    #[test]
    fn a_value_goes_to_the_bucket_whose_bound_it_does_not_exceed() {
        assert_eq!(bucket_of(0), 0);
        assert_eq!(bucket_of(1_000), 0);
        assert_eq!(bucket_of(1_001), 1);
        assert_eq!(bucket_of(100_000), 24);
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn quantiles_of_known_samples_are_within_ten_percent() {
        let mut h = Histogram::default();
        // 1..=1000 ms, evenly.
        for ms in 1..=1000u64 {
            h.add_us(ms * 1000);
        }
        for (q, truth) in [(0.5, 500.0), (0.9, 900.0), (0.99, 990.0)] {
            let read = h.quantile_ms(q).expect("values");
            assert!(
                (read - truth).abs() / truth < 0.10,
                "p{} read {read}, true {truth}",
                q * 100.0
            );
        }
    }

    #[test]
    fn one_value_reads_inside_its_bucket_and_an_empty_histogram_reads_nothing() {
        assert_eq!(Histogram::default().quantile_ms(0.5), None);
        let mut h = Histogram::default();
        h.add_us(120_000);
        let p50 = h.quantile_ms(0.5).expect("value");
        assert!((100.0..=120.0).contains(&p50), "{p50}");
        let mut slow = Histogram::default();
        slow.add_us(10_000_000_000);
        assert_eq!(slow.quantile_ms(0.99), Some(3_300_000.0));
    }

    #[test]
    fn interpolation_is_linear_inside_the_bucket() {
        let mut h = Histogram::default();
        // Four values in the bucket (100 ms, 120 ms].
        for _ in 0..4 {
            h.add_us(110_000);
        }
        assert_eq!(h.quantile_ms(0.5), Some(110.0));
        assert_eq!(h.quantile_ms(1.0), Some(120.0));
    }

    #[test]
    fn encoding_round_trips_and_old_bounds_move_to_the_bucket_of_their_upper_bound() {
        let mut h = Histogram::default();
        h.add_us(5);
        h.add_us(250_000);
        h.add_us(250_000);
        h.add_us(u64::MAX);
        let mut out = Writer::default();
        h.encode(&mut out);
        let bytes = out.into_bytes();
        let mut back = Histogram::default();
        back.add_encoded(&mut Reader::new(&bytes), &BucketMap::Same)
            .expect("decodes");
        assert_eq!(back, h);

        // Written with two bounds, 1 ms and 500 ms: one value in each bucket and the overflow.
        let mut old = Writer::default();
        for value in [3, 0, 1, 1, 2, 1, 1] {
            old.uint(value);
        }
        let old = old.into_bytes();
        let coarse = BucketMap::from_bounds(&[1_000, 500_000]);
        let mut moved = Histogram::default();
        moved
            .add_encoded(&mut Reader::new(&old), &coarse)
            .expect("decodes");
        assert_eq!(moved.counts()[bucket_of(1_000)], 1);
        assert_eq!(moved.counts()[bucket_of(500_000)], 2);
        assert_eq!(moved.counts()[BUCKETS - 1], 1);
    }
}
