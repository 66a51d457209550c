//! Scenario 10: what chat ⇄ Responses translation costs. Both cases reach the same
//! Responses-only deployment of the fake through the proxy and get the same answer from it: a
//! Responses client on a model without translation, and a chat client on a model whose
//! `"chat/completions": "responses"` override translates the request, the answer and the
//! stream. Non-stream requests use scenario 1's method (one at a time, interleaved rounds);
//! streams run through the timing tap like scenario 3.
//!
//! A translated stream has fewer events than the stream it comes from (the Responses
//! bookkeeping events have no chat chunk), so events cannot be paired by position. Each event
//! the client receives is paired instead with the last event that left the fake before it
//! arrived: the fake spaces its deltas far more apart than any delay measured, so the pairing
//! is unambiguous, and both cases are measured the same way.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::load::{self, Dist, Failures, StreamRecord, Until};
use crate::scenarios::{Bench, STREAM_TEXT};
use crate::stack::{
    CLIENT_KEY, RESPONSES_MODEL, RESPONSES_TAPPED_MODEL, TRANSLATED_MODEL, TRANSLATED_TAPPED_MODEL,
};

const CHUNKS: usize = 20;
/// Far above any event delay through the proxy, so that pairing by time cannot go wrong.
const GAP_MS: u64 = 10;
const STREAM_CONNECTIONS: usize = 32;
const STREAM_ROUNDS: usize = 5;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TranslationCase {
    /// `POST /v1/responses` on a Responses deployment: passed through.
    Untranslated,
    /// `POST /v1/chat/completions` on the same deployment: translated.
    Translated,
}

impl TranslationCase {
    pub fn label(self) -> &'static str {
        match self {
            TranslationCase::Untranslated => "Responses client, no translation",
            TranslationCase::Translated => "chat client, translated to Responses",
        }
    }

    fn model(self, tapped: bool) -> &'static str {
        match (self, tapped) {
            (TranslationCase::Untranslated, false) => RESPONSES_MODEL,
            (TranslationCase::Untranslated, true) => RESPONSES_TAPPED_MODEL,
            (TranslationCase::Translated, false) => TRANSLATED_MODEL,
            (TranslationCase::Translated, true) => TRANSLATED_TAPPED_MODEL,
        }
    }

    fn request(
        self,
        addr: std::net::SocketAddr,
        tapped: bool,
        extra: &str,
        id: Option<&str>,
    ) -> Vec<u8> {
        let model = self.model(tapped);
        let (path, body) = match self {
            TranslationCase::Untranslated => (
                "/v1/responses",
                format!(
                    r#"{{"model":"{model}","instructions":"You are a concise assistant.","input":"In one sentence: why put a gateway in front of Azure AI Foundry?","temperature":0.2{extra}}}"#
                ),
            ),
            TranslationCase::Translated => (
                "/v1/chat/completions",
                format!(
                    r#"{{"model":"{model}","messages":[{{"role":"system","content":"You are a concise assistant."}},{{"role":"user","content":"In one sentence: why put a gateway in front of Azure AI Foundry?"}}],"temperature":0.2{extra}}}"#
                ),
            ),
        };
        let bearer = format!("Bearer {CLIENT_KEY}");
        let mut headers = vec![
            ("content-type", "application/json"),
            ("authorization", bearer.as_str()),
        ];
        if let Some(id) = id {
            headers.push(("x-request-id", id));
        }
        crate::client::request("POST", addr, path, &headers, body.as_bytes())
    }
}

const CASES: [TranslationCase; 2] = [TranslationCase::Untranslated, TranslationCase::Translated];

pub struct TranslationStreams {
    pub case: TranslationCase,
    pub streams: usize,
    pub events_per_stream: usize,
    pub failures: Failures,
    pub event_delay: Dist,
}

pub struct TranslationResult {
    pub latency: Vec<(TranslationCase, Dist)>,
    pub latency_failures: Failures,
    pub rounds: usize,
    pub streams: Vec<TranslationStreams>,
    pub chunks: usize,
    pub gap_ms: u64,
    pub connections: usize,
    pub stream_rounds: usize,
}

impl TranslationResult {
    pub fn latency_of(&self, case: TranslationCase) -> Option<&Dist> {
        self.latency
            .iter()
            .find(|(c, _)| *c == case)
            .map(|(_, d)| d)
    }

    pub fn event_delay_of(&self, case: TranslationCase) -> Option<&Dist> {
        self.streams
            .iter()
            .find(|s| s.case == case && s.event_delay.len() > 0)
            .map(|s| &s.event_delay)
    }
}

pub async fn translation(bench: &mut Bench<'_>) -> anyhow::Result<TranslationResult> {
    let addr = bench.stack.proxy_addr;
    let requests: Vec<Vec<u8>> = CASES
        .iter()
        .map(|case| case.request(addr, false, "", None))
        .collect();
    let mut latency_failures = Failures::default();
    for request in &requests {
        latency_failures.merge(load::sequential(addr, request, 300).await.failures);
    }
    let rounds = 10;
    let per_round = bench.plan.sequential_requests / rounds;
    let mut samples: Vec<Vec<u64>> = vec![Vec::new(); CASES.len()];
    for round in 0..rounds {
        for k in 0..CASES.len() {
            let i = (round + k) % CASES.len();
            let run = load::sequential(addr, &requests[i], per_round).await;
            latency_failures.merge(run.failures);
            samples[i].extend_from_slice(run.latency.samples());
        }
    }
    let latency: Vec<(TranslationCase, Dist)> = CASES
        .iter()
        .copied()
        .zip(samples.into_iter().map(Dist::new))
        .collect();
    for (case, dist) in &latency {
        eprintln!(
            "  {:<40} p50 {:>6} µs  p90 {:>6} µs  p99 {:>6} µs",
            case.label(),
            dist.q(0.5) / 1000,
            dist.q(0.9) / 1000,
            dist.q(0.99) / 1000
        );
    }

    let streams = stream_cases(bench).await?;
    Ok(TranslationResult {
        latency,
        latency_failures,
        rounds,
        streams,
        chunks: CHUNKS,
        gap_ms: GAP_MS,
        connections: STREAM_CONNECTIONS,
        stream_rounds: STREAM_ROUNDS,
    })
}

fn stream_extra() -> String {
    format!(
        r#","stream":true,"fake":{{"stream_chunks":{CHUNKS},"chunk_gap_ms":{GAP_MS},"text":"{STREAM_TEXT}"}}"#
    )
}

/// Both cases' streams, in interleaved rounds (each round starting with the next case), so
/// that a slow moment of the machine hits both alike.
async fn stream_cases(bench: &mut Bench<'_>) -> anyhow::Result<Vec<TranslationStreams>> {
    let addr = bench.stack.proxy_addr;
    let mut rows = Vec::new();
    let mut requests = Vec::new();
    for case in CASES {
        let expected = events_through_proxy(addr, case).await?;
        let extra = stream_extra();
        let request_for: load::RequestFor =
            Arc::new(move |id: &str| case.request(addr, true, &extra, Some(id)));
        requests.push(request_for);
        rows.push(TranslationStreams {
            case,
            streams: 0,
            events_per_stream: expected,
            failures: Failures::default(),
            event_delay: Dist::new(Vec::new()),
        });
    }
    let stagger = Duration::from_millis(GAP_MS * CHUNKS as u64);
    let rounds = STREAM_ROUNDS;
    let per_round = Duration::from_secs(bench.plan.stream_secs) / rounds as u32;
    let mut delays: Vec<Vec<u64>> = vec![Vec::new(); CASES.len()];
    for (i, request_for) in requests.iter().enumerate() {
        let warm = Until::Elapsed(Duration::from_millis(500));
        let expected = rows[i].events_per_stream;
        load::streams(
            addr,
            request_for.clone(),
            "tw",
            STREAM_CONNECTIONS,
            warm,
            stagger,
            expected,
        )
        .await;
    }
    for round in 0..rounds {
        for k in 0..CASES.len() {
            let i = (round + k) % CASES.len();
            bench.stack.tap.clear();
            let tag = format!("t10-{round}");
            let until = Until::Elapsed(per_round);
            let expected = rows[i].events_per_stream;
            let run = load::streams(
                addr,
                requests[i].clone(),
                &tag,
                STREAM_CONNECTIONS,
                until,
                stagger,
                expected,
            )
            .await;
            rows[i].streams += run.streams.len();
            rows[i].failures.merge(run.failures);
            for stream in &run.streams {
                match bench.stack.tap.take(&stream.id) {
                    Some(left) if !left.is_empty() => {
                        delays[i].extend(delays_by_time(stream, &left))
                    }
                    _ => rows[i].failures.add("stream not seen by the tap".into()),
                }
            }
        }
    }
    for (row, delays) in rows.iter_mut().zip(delays) {
        row.event_delay = Dist::new(delays);
        eprintln!(
            "  {:<40} {} streams of {} events, event delay p50 {} µs p99 {} µs",
            row.case.label(),
            row.streams,
            row.events_per_stream,
            row.event_delay.q(0.5) / 1000,
            row.event_delay.q(0.99) / 1000
        );
    }
    Ok(rows)
}

/// The delay of each event the client received after the last event that had left the fake.
fn delays_by_time(stream: &StreamRecord, left: &[Instant]) -> Vec<u64> {
    let mut delays = Vec::with_capacity(stream.events.len());
    let mut next = 0;
    for &arrived in &stream.events {
        while next < left.len() && left[next] <= arrived {
            next += 1;
        }
        if next > 0 {
            delays.push((arrived - left[next - 1]).as_nanos() as u64);
        }
    }
    delays
}

/// Events in one stream of `case` as the client receives it.
async fn events_through_proxy(
    addr: std::net::SocketAddr,
    case: TranslationCase,
) -> anyhow::Result<usize> {
    let extra = format!(
        r#","stream":true,"fake":{{"stream_chunks":{CHUNKS},"chunk_gap_ms":0,"text":"{STREAM_TEXT}"}}"#
    );
    let request = case.request(addr, false, &extra, None);
    let mut conn = crate::client::Connection::open(addr).await?;
    let mut counter = crate::events::EventCounter::default();
    let mut events = 0;
    let response = conn
        .exchange(&request, |piece, _| events += counter.feed(piece))
        .await?;
    anyhow::ensure!(
        response.status == 200,
        "a stream of {} answered {}",
        case.label(),
        response.status
    );
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_event_is_paired_with_the_last_one_that_left_before_it() {
        let t0 = Instant::now();
        let at = |us: u64| t0 + Duration::from_micros(us);
        let left = [at(0), at(0), at(10_000), at(20_000), at(20_000)];
        let stream = StreamRecord {
            id: "s".into(),
            sent: t0,
            first_byte: at(100),
            // The first two upstream events became one client event; the last two as well.
            events: vec![at(150), at(10_120), at(20_090)],
        };
        let delays = delays_by_time(&stream, &left);
        assert_eq!(delays, vec![150_000, 120_000, 90_000]);
    }
}
