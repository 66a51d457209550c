//! One time bucket of the usage history (a minute, an hour or a day): counters per series
//! (model × client key × deployment), and latency and time-to-first-byte histograms per route
//! (model × deployment) and per client key. A `FrameBuilder` is the bucket while it still grows
//! (hash maps, fixed-size histograms); `encode` turns it into the compact bytes a closed bucket
//! is kept and written in (only what holds something, as LEB128), and `decode` feeds those bytes
//! to a `FrameSink`.
//!
//! The histograms are kept per route and per key rather than per series: a full histogram per
//! series and hour is what would make a year of history large, and the counters, which must add
//! up exactly for every filter, are per series.

use foldhash::HashMap;

use super::codec::{Reader, Writer};
use super::histogram::{BucketMap, DecodeError, Histogram};
use crate::bookkeeping::stats::ErrorClass;

pub const ERROR_CLASSES: usize = ErrorClass::ALL.len();

/// Interned ids of the three dimensions; 0 stands for "none" (a request refused before its
/// model, key or deployment was known).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Series {
    pub model: u32,
    pub key: u32,
    pub deployment: u32,
}

/// What one finished request adds.
#[derive(Debug, Clone, Copy, Default)]
pub struct Measure {
    pub succeeded: bool,
    pub cancelled: bool,
    pub error: Option<ErrorClass>,
    pub rate_limited: bool,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub cached_tokens: u64,
    pub reasoning_tokens: u64,
    pub latency_us: u64,
    pub ttfb_us: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    pub requests: u64,
    pub successes: u64,
    pub cancelled: u64,
    pub rate_limited: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub cached_tokens: u64,
    pub reasoning_tokens: u64,
    /// Failed requests per `ErrorClass::index`.
    pub errors: [u64; ERROR_CLASSES],
}

impl Counts {
    fn count(&mut self, m: &Measure) {
        self.requests += 1;
        self.successes += u64::from(m.succeeded);
        self.cancelled += u64::from(m.cancelled);
        self.rate_limited += u64::from(m.rate_limited);
        if let Some(class) = m.error {
            self.errors[class.index()] += 1;
        }
        self.prompt_tokens = self.prompt_tokens.saturating_add(m.prompt_tokens);
        self.completion_tokens = self.completion_tokens.saturating_add(m.completion_tokens);
        self.cached_tokens = self.cached_tokens.saturating_add(m.cached_tokens);
        self.reasoning_tokens = self.reasoning_tokens.saturating_add(m.reasoning_tokens);
    }

    pub fn add(&mut self, other: &Counts) {
        for (mine, theirs) in self.fields_mut().into_iter().zip(other.fields()) {
            *mine = mine.saturating_add(theirs);
        }
        for (mine, theirs) in self.errors.iter_mut().zip(&other.errors) {
            *mine = mine.saturating_add(*theirs);
        }
    }

    fn fields(&self) -> [u64; 8] {
        [
            self.requests,
            self.successes,
            self.cancelled,
            self.rate_limited,
            self.prompt_tokens,
            self.completion_tokens,
            self.cached_tokens,
            self.reasoning_tokens,
        ]
    }

    fn fields_mut(&mut self) -> [&mut u64; 8] {
        [
            &mut self.requests,
            &mut self.successes,
            &mut self.cancelled,
            &mut self.rate_limited,
            &mut self.prompt_tokens,
            &mut self.completion_tokens,
            &mut self.cached_tokens,
            &mut self.reasoning_tokens,
        ]
    }

    /// `requests`, then a byte with a bit for each other field that is not zero (the errors
    /// last), then those fields; most cells have several zeros.
    fn encode(&self, out: &mut Writer) {
        let fields = self.fields();
        let errors = self.errors.iter().filter(|n| **n > 0).count();
        let mut present = u8::from(errors > 0) << 7;
        for (bit, value) in fields[1..].iter().enumerate() {
            present |= u8::from(*value > 0) << bit;
        }
        out.uint(fields[0]);
        out.raw(&[present]);
        for value in fields[1..].iter().filter(|v| **v > 0) {
            out.uint(*value);
        }
        if errors > 0 {
            out.uint(errors as u64);
            for (class, n) in self.errors.iter().enumerate().filter(|(_, n)| **n > 0) {
                out.uint(class as u64);
                out.uint(*n);
            }
        }
    }

    fn decode(input: &mut Reader<'_>, maps: &IdMaps) -> Result<Counts, DecodeError> {
        let mut counts = Counts::default();
        let requests = input.uint()?;
        let present = input.raw(1)?[0];
        let mut fields = counts.fields_mut();
        *fields[0] = requests;
        for (bit, field) in fields[1..].iter_mut().enumerate() {
            if present & (1 << bit) != 0 {
                **field = input.uint()?;
            }
        }
        if present & 0x80 != 0 {
            let classes = input.count(2)?;
            for _ in 0..classes {
                let class = usize::try_from(input.uint()?).map_err(|_| DecodeError)?;
                let n = input.uint()?;
                if let Some(class) = maps.class(class) {
                    counts.errors[class] = counts.errors[class].saturating_add(n);
                }
            }
        }
        Ok(counts)
    }
}

/// The latency and time-to-first-byte histograms of one route or key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hists {
    pub latency: Histogram,
    pub ttfb: Histogram,
}

impl Hists {
    fn count(&mut self, m: &Measure) {
        self.latency.add_us(m.latency_us);
        if let Some(ttfb) = m.ttfb_us {
            self.ttfb.add_us(ttfb);
        }
    }

    pub fn merge(&mut self, other: &Hists) {
        self.latency.merge(&other.latency);
        self.ttfb.merge(&other.ttfb);
    }

    pub fn encode(&self, out: &mut Writer) {
        self.latency.encode(out);
        self.ttfb.encode(out);
    }

    pub fn add_encoded(
        &mut self,
        input: &mut Reader<'_>,
        maps: &IdMaps,
    ) -> Result<(), DecodeError> {
        self.latency.add_encoded(input, &maps.buckets)?;
        self.ttfb.add_encoded(input, &maps.buckets)
    }

    fn skip_encoded(input: &mut Reader<'_>) -> Result<(), DecodeError> {
        Histogram::skip_encoded(input)?;
        Histogram::skip_encoded(input)
    }
}

/// How the ids, error classes and histogram buckets of stored bytes translate into the running
/// process's (bytes of a file written by another process may differ in all three).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdMaps {
    /// Per dimension (model, key, deployment): stored id → id; `None` is the identity.
    pub ids: [Option<Vec<u32>>; 3],
    /// Stored class index → `ErrorClass::index`; `None` is the identity. Unknown classes map
    /// to `None` and are dropped.
    pub classes: Option<Vec<Option<usize>>>,
    pub buckets: BucketMap,
}

impl IdMaps {
    pub const IDENTITY: IdMaps = IdMaps {
        ids: [None, None, None],
        classes: None,
        buckets: BucketMap::Same,
    };

    pub fn is_identity(&self) -> bool {
        *self == IdMaps::IDENTITY
    }

    fn id(&self, dimension: usize, stored: u32) -> Result<u32, DecodeError> {
        match &self.ids[dimension] {
            None => Ok(stored),
            Some(map) => map.get(stored as usize).copied().ok_or(DecodeError),
        }
    }

    fn class(&self, stored: usize) -> Option<usize> {
        match &self.classes {
            None => (stored < ERROR_CLASSES).then_some(stored),
            Some(map) => map.get(stored).copied().flatten(),
        }
    }
}

/// What receives a decoded frame. For the histograms it says where they go: `None` skips them.
pub trait FrameSink {
    fn cell(&mut self, series: Series, counts: &Counts);
    fn route(&mut self, model: u32, deployment: u32) -> Option<&mut Hists>;
    fn key(&mut self, key: u32) -> Option<&mut Hists>;
}

/// A bucket that still grows.
#[derive(Debug, Default, Clone)]
pub struct FrameBuilder {
    cells: HashMap<Series, Counts>,
    routes: HashMap<(u32, u32), Hists>,
    keys: HashMap<u32, Hists>,
}

impl FrameBuilder {
    pub fn record(&mut self, series: Series, measure: &Measure) {
        self.cells.entry(series).or_default().count(measure);
        self.routes
            .entry((series.model, series.deployment))
            .or_default()
            .count(measure);
        self.keys.entry(series.key).or_default().count(measure);
    }

    pub fn is_empty(&self) -> bool {
        self.cells.is_empty()
    }

    /// Empties the bucket, keeping its memory for the next one.
    pub fn clear(&mut self) {
        self.cells.clear();
        self.routes.clear();
        self.keys.clear();
    }

    pub fn add(&mut self, other: &FrameBuilder) {
        for (series, counts) in &other.cells {
            self.cells.entry(*series).or_default().add(counts);
        }
        for (route, hists) in &other.routes {
            self.routes.entry(*route).or_default().merge(hists);
        }
        for (key, hists) in &other.keys {
            self.keys.entry(*key).or_default().merge(hists);
        }
    }

    /// Adds bytes that [`FrameBuilder::encode`] wrote.
    pub fn add_encoded(&mut self, bytes: &[u8], maps: &IdMaps) -> Result<(), DecodeError> {
        decode(bytes, maps, self)
    }

    /// The compact form: the cells, routes and keys in id order, then nothing else.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Writer::with_capacity(self.cells.len() * 24 + 16);
        let mut cells: Vec<_> = self.cells.iter().collect();
        cells.sort_unstable_by_key(|(series, _)| **series);
        out.uint(cells.len() as u64);
        for (series, counts) in cells {
            out.uint(series.model.into());
            out.uint(series.key.into());
            out.uint(series.deployment.into());
            counts.encode(&mut out);
        }
        let mut routes: Vec<_> = self.routes.iter().collect();
        routes.sort_unstable_by_key(|(route, _)| **route);
        out.uint(routes.len() as u64);
        for ((model, deployment), hists) in routes {
            out.uint((*model).into());
            out.uint((*deployment).into());
            hists.encode(&mut out);
        }
        let mut keys: Vec<_> = self.keys.iter().collect();
        keys.sort_unstable_by_key(|(key, _)| **key);
        out.uint(keys.len() as u64);
        for (key, hists) in keys {
            out.uint((*key).into());
            hists.encode(&mut out);
        }
        out.into_bytes()
    }

    #[cfg(test)]
    pub fn requests(&self) -> u64 {
        self.cells.values().map(|c| c.requests).sum()
    }
}

impl FrameSink for FrameBuilder {
    fn cell(&mut self, series: Series, counts: &Counts) {
        self.cells.entry(series).or_default().add(counts);
    }

    fn route(&mut self, model: u32, deployment: u32) -> Option<&mut Hists> {
        Some(self.routes.entry((model, deployment)).or_default())
    }

    fn key(&mut self, key: u32) -> Option<&mut Hists> {
        Some(self.keys.entry(key).or_default())
    }
}

/// Feeds the bytes of one frame to `sink`, translating ids through `maps`.
pub fn decode(bytes: &[u8], maps: &IdMaps, sink: &mut impl FrameSink) -> Result<(), DecodeError> {
    let mut input = Reader::new(bytes);
    let cells = input.count(5)?;
    for _ in 0..cells {
        let series = Series {
            model: maps.id(0, input.id()?)?,
            key: maps.id(1, input.id()?)?,
            deployment: maps.id(2, input.id()?)?,
        };
        let counts = Counts::decode(&mut input, maps)?;
        sink.cell(series, &counts);
    }
    let routes = input.count(4)?;
    for _ in 0..routes {
        let model = maps.id(0, input.id()?)?;
        let deployment = maps.id(2, input.id()?)?;
        match sink.route(model, deployment) {
            Some(hists) => hists.add_encoded(&mut input, maps)?,
            None => Hists::skip_encoded(&mut input)?,
        }
    }
    let keys = input.count(3)?;
    for _ in 0..keys {
        let key = maps.id(1, input.id()?)?;
        match sink.key(key) {
            Some(hists) => hists.add_encoded(&mut input, maps)?,
            None => Hists::skip_encoded(&mut input)?,
        }
    }
    if input.is_empty() {
        Ok(())
    } else {
        Err(DecodeError)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn measure(latency_ms: u64, tokens: u64) -> Measure {
        Measure {
            succeeded: true,
            prompt_tokens: tokens,
            completion_tokens: 1,
            latency_us: latency_ms * 1000,
            ttfb_us: Some(latency_ms * 500),
            ..Measure::default()
        }
    }

    fn series(model: u32, key: u32) -> Series {
        Series {
            model,
            key,
            deployment: model,
        }
    }

    #[test]
    fn a_frame_reads_back_what_was_recorded() {
        let mut frame = FrameBuilder::default();
        frame.record(series(1, 1), &measure(100, 10));
        frame.record(series(1, 2), &measure(200, 20));
        frame.record(
            series(0, 0),
            &Measure {
                error: Some(ErrorClass::Unauthorized),
                latency_us: 50,
                ..Measure::default()
            },
        );
        let bytes = frame.encode();
        let mut back = FrameBuilder::default();
        back.add_encoded(&bytes, &IdMaps::IDENTITY)
            .expect("decodes");
        assert_eq!(back.cells, frame.cells);
        assert_eq!(back.routes, frame.routes);
        assert_eq!(back.keys, frame.keys);
        assert_eq!(back.encode(), bytes, "the encoding is canonical");
        assert_eq!(back.cells[&series(0, 0)].errors[0], 1);
        assert_eq!(back.routes[&(1, 1)].latency.total(), 2);
        assert_eq!(back.keys[&2].ttfb.total(), 1);
    }

    #[test]
    fn frames_add_up() {
        let mut a = FrameBuilder::default();
        a.record(series(1, 1), &measure(100, 10));
        let mut b = FrameBuilder::default();
        b.record(series(1, 1), &measure(100, 5));
        b.record(series(2, 1), &measure(100, 5));
        let mut sum = FrameBuilder::default();
        sum.add_encoded(&a.encode(), &IdMaps::IDENTITY).expect("a");
        sum.add(&b);
        assert_eq!(sum.cells[&series(1, 1)].requests, 2);
        assert_eq!(sum.cells[&series(1, 1)].prompt_tokens, 15);
        assert_eq!(sum.keys[&1].latency.total(), 3);
        assert_eq!(sum.requests(), 3);
    }

    #[test]
    fn ids_and_classes_of_stored_bytes_are_translated() {
        let mut frame = FrameBuilder::default();
        frame.record(
            series(1, 1),
            &Measure {
                error: Some(ErrorClass::Forbidden),
                ..measure(10, 1)
            },
        );
        let maps = IdMaps {
            ids: [Some(vec![0, 7]), Some(vec![0, 3]), None],
            classes: Some(vec![None, Some(ErrorClass::Busy.index())]),
            buckets: BucketMap::Same,
        };
        let mut back = FrameBuilder::default();
        back.add_encoded(&frame.encode(), &maps).expect("decodes");
        let cell = back.cells[&Series {
            model: 7,
            key: 3,
            deployment: 1,
        }];
        assert_eq!(cell.errors[ErrorClass::Busy.index()], 1);
        assert!(back.routes.contains_key(&(7, 1)));
        assert!(back.keys.contains_key(&3));
    }

    #[test]
    fn damaged_bytes_are_an_error_not_a_panic() {
        let mut frame = FrameBuilder::default();
        frame.record(series(1, 1), &measure(100, 10));
        let bytes = frame.encode();
        for cut in 0..bytes.len() {
            let mut sink = FrameBuilder::default();
            assert!(
                decode(&bytes[..cut], &IdMaps::IDENTITY, &mut sink).is_err(),
                "cut at {cut}"
            );
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode(&longer, &IdMaps::IDENTITY, &mut FrameBuilder::default()).is_err());
    }
}
