//! The load generator: one request at a time, closed loops of N keep-alive connections for a
//! fixed time, and streams whose events are timed as they arrive. Every failure is counted by
//! kind; a failed connection is replaced and the loop goes on.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Barrier;

use crate::client::Connection;
use crate::events::EventCounter;

/// Sorted samples in nanoseconds.
#[derive(Debug, Clone, Default)]
pub struct Dist(Vec<u64>);

impl Dist {
    pub fn new(mut samples: Vec<u64>) -> Dist {
        samples.sort_unstable();
        Dist(samples)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn samples(&self) -> &[u64] {
        &self.0
    }

    /// The `q` quantile (nearest rank) in nanoseconds; 0 when empty.
    pub fn q(&self, q: f64) -> u64 {
        if self.0.is_empty() {
            return 0;
        }
        let rank = ((q * self.0.len() as f64).ceil() as usize).clamp(1, self.0.len());
        self.0[rank - 1]
    }

    pub fn max(&self) -> u64 {
        self.0.last().copied().unwrap_or(0)
    }

    pub fn mean(&self) -> u64 {
        if self.0.is_empty() {
            return 0;
        }
        (self.0.iter().map(|&v| u128::from(v)).sum::<u128>() / self.0.len() as u128) as u64
    }
}

/// Failures by kind ("HTTP 502", "io: connection reset", ...).
#[derive(Debug, Clone, Default)]
pub struct Failures(pub BTreeMap<String, u64>);

impl Failures {
    pub fn add(&mut self, kind: String) {
        *self.0.entry(kind).or_default() += 1;
    }

    pub fn total(&self) -> u64 {
        self.0.values().sum()
    }

    pub fn merge(&mut self, other: Failures) {
        for (kind, n) in other.0 {
            *self.0.entry(kind).or_default() += n;
        }
    }

    pub fn describe(&self) -> String {
        if self.0.is_empty() {
            return "none".into();
        }
        self.0
            .iter()
            .map(|(kind, n)| format!("{n}× {kind}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Non-streaming requests: latencies of the successful ones and the failures.
#[derive(Debug, Clone, Default)]
pub struct Run {
    pub latency: Dist,
    pub ok: u64,
    pub failures: Failures,
    pub elapsed: Duration,
}

impl Run {
    pub fn rps(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Adds the requests of `other`, a run of the same load at another time.
    pub fn merge(&mut self, other: Run) {
        let mut samples = std::mem::take(&mut self.latency).0;
        samples.extend_from_slice(other.latency.samples());
        self.latency = Dist::new(samples);
        self.ok += other.ok;
        self.failures.merge(other.failures);
        self.elapsed += other.elapsed;
    }
}

fn io_kind(err: &std::io::Error) -> String {
    format!("io: {}", err.kind())
}

/// `count` requests one after the other on one keep-alive connection.
pub async fn sequential(addr: SocketAddr, request: &[u8], count: usize) -> Run {
    let mut samples = Vec::with_capacity(count);
    let mut failures = Failures::default();
    let mut conn: Option<Connection> = None;
    let started = Instant::now();
    for _ in 0..count {
        if conn.is_none() {
            match Connection::open(addr).await {
                Ok(c) => conn = Some(c),
                Err(err) => {
                    failures.add(io_kind(&err));
                    continue;
                }
            }
        }
        let Some(c) = conn.as_mut() else { continue };
        let sent = Instant::now();
        match c.exchange(request, |_, _| {}).await {
            Ok(response) => {
                let took = sent.elapsed().as_nanos() as u64;
                if response.status == 200 {
                    samples.push(took);
                } else {
                    failures.add(format!("HTTP {}", response.status));
                }
                if !response.keep_alive {
                    conn = None;
                }
            }
            Err(err) => {
                failures.add(io_kind(&err));
                conn = None;
            }
        }
    }
    Run {
        ok: samples.len() as u64,
        latency: Dist::new(samples),
        failures,
        elapsed: started.elapsed(),
    }
}

/// `connections` keep-alive connections, each sending its next request as soon as the last
/// one is answered, for `duration`.
pub async fn closed_loop(
    addr: SocketAddr,
    request: Arc<Vec<u8>>,
    connections: usize,
    duration: Duration,
) -> Run {
    let barrier = Arc::new(Barrier::new(connections + 1));
    let mut tasks = Vec::with_capacity(connections);
    for _ in 0..connections {
        let (barrier, request) = (barrier.clone(), request.clone());
        tasks.push(tokio::spawn(async move {
            let mut conn = Connection::open(addr).await.ok();
            barrier.wait().await;
            let deadline = Instant::now() + duration;
            let mut samples = Vec::with_capacity(16 * 1024);
            let mut failures = Failures::default();
            let mut last_done = Instant::now();
            while Instant::now() < deadline {
                let c = match conn.as_mut() {
                    Some(c) => c,
                    None => match Connection::open(addr).await {
                        Ok(c) => conn.insert(c),
                        Err(err) => {
                            failures.add(io_kind(&err));
                            tokio::time::sleep(Duration::from_millis(10)).await;
                            continue;
                        }
                    },
                };
                let sent = Instant::now();
                match c.exchange(&request, |_, _| {}).await {
                    Ok(response) => {
                        last_done = Instant::now();
                        if response.status == 200 {
                            samples.push((last_done - sent).as_nanos() as u64);
                        } else {
                            failures.add(format!("HTTP {}", response.status));
                        }
                        if !response.keep_alive {
                            conn = None;
                        }
                    }
                    Err(err) => {
                        last_done = Instant::now();
                        failures.add(io_kind(&err));
                        conn = None;
                    }
                }
            }
            (samples, failures, last_done)
        }));
    }
    barrier.wait().await;
    let started = Instant::now();
    let mut samples = Vec::new();
    let mut failures = Failures::default();
    let mut end = started;
    for task in tasks {
        if let Ok((s, f, last)) = task.await {
            samples.extend(s);
            failures.merge(f);
            end = end.max(last);
        }
    }
    Run {
        ok: samples.len() as u64,
        latency: Dist::new(samples),
        failures,
        elapsed: end - started,
    }
}

/// One streamed response as the client saw it.
#[derive(Debug, Clone)]
pub struct StreamRecord {
    pub id: String,
    pub sent: Instant,
    pub first_byte: Instant,
    /// When each SSE event arrived, in order.
    pub events: Vec<Instant>,
}

#[derive(Debug, Default)]
pub struct StreamRun {
    pub streams: Vec<StreamRecord>,
    pub failures: Failures,
    /// When the connections were let go.
    pub started: Option<Instant>,
    pub elapsed: Duration,
}

impl StreamRun {
    /// From the start of the run to the last event of the stream that ended last.
    pub fn slowest(&self) -> Option<Duration> {
        let started = self.started?;
        self.streams
            .iter()
            .filter_map(|s| s.events.last())
            .max()
            .map(|last| last.saturating_duration_since(started))
    }
}

/// How long each connection keeps streaming.
#[derive(Clone, Copy)]
pub enum Until {
    /// Stream after stream until the time is up.
    Elapsed(Duration),
    /// One stream per connection, each connecting when the run starts: a burst of new clients.
    OneEach,
}

pub type RequestFor = Arc<dyn Fn(&str) -> Vec<u8> + Send + Sync>;

/// `connections` connections streaming responses; each request gets its own `x-request-id`
/// (`{tag}-{connection}-{n}`) through `request_for`. Connection `i` starts `i / connections`
/// of `stagger` after the first, so that the streams are not in lockstep. A stream counts as
/// complete when it ends with the expected number of events.
pub async fn streams(
    addr: SocketAddr,
    request_for: RequestFor,
    tag: &str,
    connections: usize,
    until: Until,
    stagger: Duration,
    expected_events: usize,
) -> StreamRun {
    let barrier = Arc::new(Barrier::new(connections + 1));
    let mut tasks = Vec::with_capacity(connections);
    for index in 0..connections {
        let (barrier, request_for) = (barrier.clone(), request_for.clone());
        let tag = tag.to_string();
        tasks.push(tokio::spawn(async move {
            let mut conn = match until {
                Until::Elapsed(_) => Connection::open(addr).await.ok(),
                Until::OneEach => None,
            };
            barrier.wait().await;
            let offset = stagger.mul_f64(index as f64 / connections as f64);
            if !offset.is_zero() {
                tokio::time::sleep(offset).await;
            }
            let deadline = match until {
                Until::Elapsed(d) => Some(Instant::now() + d),
                Until::OneEach => None,
            };
            let mut records = Vec::new();
            let mut failures = Failures::default();
            let mut n = 0u64;
            loop {
                match deadline {
                    Some(deadline) if Instant::now() >= deadline => break,
                    None if n > 0 => break,
                    _ => {}
                }
                n += 1;
                let c = match conn.as_mut() {
                    Some(c) => c,
                    None => match Connection::open(addr).await {
                        Ok(c) => conn.insert(c),
                        Err(err) => {
                            failures.add(io_kind(&err));
                            tokio::time::sleep(Duration::from_millis(10)).await;
                            continue;
                        }
                    },
                };
                let id = format!("{tag}-{index}-{n}");
                let request = request_for(&id);
                let mut counter = EventCounter::default();
                let mut events = Vec::with_capacity(expected_events);
                let sent = Instant::now();
                let result = c
                    .exchange(&request, |piece, at| {
                        let k = counter.feed(piece);
                        events.extend(std::iter::repeat_n(at, k));
                    })
                    .await;
                match result {
                    Ok(response) if response.status == 200 && events.len() == expected_events => {
                        records.push(StreamRecord {
                            id,
                            sent,
                            first_byte: response.first_byte,
                            events,
                        });
                        if !response.keep_alive {
                            conn = None;
                        }
                    }
                    Ok(response) if response.status == 200 => {
                        failures.add(format!(
                            "incomplete stream ({} of {expected_events} events)",
                            events.len()
                        ));
                        conn = None;
                    }
                    Ok(response) => {
                        failures.add(format!("HTTP {}", response.status));
                        if !response.keep_alive {
                            conn = None;
                        }
                    }
                    Err(err) => {
                        failures.add(io_kind(&err));
                        conn = None;
                    }
                }
            }
            (records, failures)
        }));
    }
    barrier.wait().await;
    let started = Instant::now();
    let mut run = StreamRun {
        started: Some(started),
        ..StreamRun::default()
    };
    for task in tasks {
        if let Ok((records, failures)) = task.await {
            run.streams.extend(records);
            run.failures.merge(failures);
        }
    }
    run.elapsed = started.elapsed();
    run
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merged_runs_keep_every_sample_in_order() {
        let mut a = Run {
            latency: Dist::new(vec![5, 1]),
            ok: 2,
            elapsed: Duration::from_secs(1),
            ..Run::default()
        };
        let mut failures = Failures::default();
        failures.add("HTTP 429".into());
        a.merge(Run {
            latency: Dist::new(vec![3]),
            ok: 1,
            failures,
            elapsed: Duration::from_secs(2),
        });
        assert_eq!(a.latency.samples(), &[1, 3, 5]);
        assert_eq!((a.ok, a.failures.total()), (3, 1));
        assert_eq!(a.elapsed, Duration::from_secs(3));
    }

    #[test]
    fn slowest_stream_counts_from_the_start_of_the_run() {
        let started = Instant::now();
        let stream = |last_ms: u64| StreamRecord {
            id: String::new(),
            sent: started,
            first_byte: started,
            events: vec![started, started + Duration::from_millis(last_ms)],
        };
        let run = StreamRun {
            streams: vec![stream(900), stream(1200), stream(1000)],
            started: Some(started),
            ..StreamRun::default()
        };
        assert_eq!(run.slowest(), Some(Duration::from_millis(1200)));
        assert_eq!(StreamRun::default().slowest(), None);
    }
}
