//! The scenarios of the benchmark. Each one measures the same load direct to the fake, through
//! the proxy and (when Caddy runs) through Caddy and the proxy, in the same run, and returns
//! raw figures; the report turns them into tables. Scenario 8 instead compares two pools of
//! deployments through the proxy: one with a throttling deployment, one without.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use base64::Engine as _;

use crate::client;
use crate::load::{self, Dist, Failures, Run, StreamRun, Until};
use crate::processes::{Child, Measured, Probe, Usage};
use crate::stack::{self, CLIENT_KEY, ConfigVariant, DEPLOYMENT, PoolSettings, Stack};

/// Where a request goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    /// Straight to the fake upstream.
    Direct,
    /// Through the proxy.
    Proxy,
    /// Through Caddy, then the proxy.
    Caddy,
}

impl Via {
    pub fn label(self) -> &'static str {
        match self {
            Via::Direct => "direct to the fake",
            Via::Proxy => "proxy",
            Via::Caddy => "Caddy + proxy",
        }
    }
}

/// How long and how hard each scenario runs.
#[derive(Clone, Copy)]
pub struct Plan {
    pub sequential_requests: usize,
    pub throughput_secs: u64,
    pub slow_upstream_secs: u64,
    pub stream_secs: u64,
    pub long_streams: usize,
    pub long_stream_chunks: usize,
    pub reload_secs: u64,
    pub image_requests: usize,
    /// Per pool of scenario 8, in interleaved rounds of `pool_round_secs`.
    pub pool_secs: u64,
    pub pool_round_secs: u64,
}

impl Plan {
    pub fn full() -> Plan {
        Plan {
            sequential_requests: 5000,
            throughput_secs: 5,
            slow_upstream_secs: 3,
            stream_secs: 5,
            long_streams: 1000,
            long_stream_chunks: 10,
            reload_secs: 5,
            image_requests: 20,
            pool_secs: 30,
            pool_round_secs: 5,
        }
    }

    pub fn quick() -> Plan {
        Plan {
            sequential_requests: 1000,
            throughput_secs: 2,
            slow_upstream_secs: 1,
            stream_secs: 2,
            long_streams: 1000,
            long_stream_chunks: 3,
            reload_secs: 2,
            image_requests: 5,
            pool_secs: 6,
            pool_round_secs: 2,
        }
    }
}

pub const STREAM_TEXT: &str = "Gateways sit between clients and models: they check keys, map model \
names to deployments, and pass every streamed token through as soon as it arrives.";

const MESSAGES: &str = r#""messages":[{"role":"system","content":"You are a concise assistant."},{"role":"user","content":"In one sentence: why put a gateway in front of Azure AI Foundry?"}],"temperature":0.2"#;

pub struct Bench<'a> {
    pub stack: &'a mut Stack,
    pub plan: Plan,
}

impl Bench<'_> {
    pub fn vias(&self) -> Vec<Via> {
        let mut vias = vec![Via::Direct, Via::Proxy];
        if self.stack.caddy.is_some() {
            vias.push(Via::Caddy);
        }
        vias
    }

    fn addr(&self, via: Via, tapped: bool) -> SocketAddr {
        match via {
            Via::Direct if tapped => self.stack.tap.addr,
            Via::Direct => self.stack.fake_addr,
            Via::Proxy => self.stack.proxy_addr,
            Via::Caddy => self
                .stack
                .caddy
                .as_ref()
                .map_or(self.stack.proxy_addr, |(_, addr)| *addr),
        }
    }

    /// What CPU (and memory) is read of: the fake, the proxy, Caddy, the load generator.
    fn measured(&self) -> Vec<Measured> {
        let mut out = vec![
            Measured {
                name: "fake-foundry",
                probe: Probe::FakeThreads,
            },
            self.stack.proxy.measured(),
        ];
        if let Some((caddy, _)) = &self.stack.caddy {
            out.push(caddy.measured());
        }
        out.push(Measured {
            name: "load generator",
            probe: Probe::LoadGenerator,
        });
        out
    }
}

/// A chat completions request as the client at `via` sends it. `extra` is appended to the
/// JSON body (starting with a comma).
pub fn chat_request(
    via: Via,
    addr: SocketAddr,
    tapped: bool,
    extra: &str,
    request_id: Option<&str>,
) -> Vec<u8> {
    let model = match via {
        Via::Direct => DEPLOYMENT,
        _ if tapped => stack::TAPPED_MODEL,
        _ => stack::MODEL,
    };
    chat_request_for(model, CLIENT_KEY, via, addr, extra, request_id)
}

/// [`chat_request`] for `model`, with client key `key` (when not direct).
pub fn chat_request_for(
    model: &str,
    key: &str,
    via: Via,
    addr: SocketAddr,
    extra: &str,
    request_id: Option<&str>,
) -> Vec<u8> {
    let body = format!(r#"{{"model":"{model}",{MESSAGES}{extra}}}"#);
    let bearer = format!("Bearer {key}");
    let mut headers = vec![("content-type", "application/json")];
    let path = match via {
        Via::Direct => {
            headers.push(("api-key", "bench-azure-key"));
            "/openai/v1/chat/completions"
        }
        _ => {
            headers.push(("authorization", bearer.as_str()));
            "/v1/chat/completions"
        }
    };
    if let Some(id) = request_id {
        headers.push(("x-request-id", id));
    }
    client::request("POST", addr, path, &headers, body.as_bytes())
}

// ---------------------------------------------------------------------------------------------
// 1. Added latency, one request at a time.

pub struct LatencyResult {
    pub rows: Vec<(Via, Dist)>,
    pub failures: Failures,
}

pub async fn latency(bench: &mut Bench<'_>) -> LatencyResult {
    let vias = bench.vias();
    let rounds = 10;
    let per_round = bench.plan.sequential_requests / rounds;
    let mut samples: Vec<Vec<u64>> = vec![Vec::new(); vias.len()];
    let mut failures = Failures::default();
    for &via in &vias {
        let addr = bench.addr(via, false);
        let request = chat_request(via, addr, false, "", None);
        failures.merge(load::sequential(addr, &request, 300).await.failures);
    }
    // Interleaved rounds, so that a slow moment of the machine hits every path alike.
    for _ in 0..rounds {
        for (i, &via) in vias.iter().enumerate() {
            let addr = bench.addr(via, false);
            let request = chat_request(via, addr, false, "", None);
            let run = load::sequential(addr, &request, per_round).await;
            failures.merge(run.failures);
            samples[i].extend_from_slice(run.latency.samples());
        }
    }
    LatencyResult {
        rows: vias
            .into_iter()
            .zip(samples)
            .map(|(via, s)| (via, Dist::new(s)))
            .collect(),
        failures,
    }
}

// ---------------------------------------------------------------------------------------------
// 2. Throughput at 32 and 256 connections.

pub struct ThroughputRow {
    /// The fake's delay before each answer.
    pub upstream_ms: u64,
    pub connections: usize,
    pub via: Via,
    pub run: Run,
    /// CPU seconds per process during the run: fake, proxy, Caddy, load generator.
    pub cpu: Vec<(&'static str, f64)>,
}

/// The fake's delay in the second throughput run: an upstream that is not free.
pub const SLOW_UPSTREAM_MS: u64 = 20;

/// Closed loops at each of `connections`, with the fake answering after `upstream_ms`.
pub async fn throughput(
    bench: &mut Bench<'_>,
    connections: &[usize],
    upstream_ms: u64,
    duration: Duration,
) -> Vec<ThroughputRow> {
    let mut rows = Vec::new();
    let extra = if upstream_ms > 0 {
        format!(r#","fake":{{"latency_ms":{upstream_ms}}}"#)
    } else {
        String::new()
    };
    for &conns in connections {
        for via in bench.vias() {
            let addr = bench.addr(via, false);
            let request = Arc::new(chat_request(via, addr, false, &extra, None));
            let warm = (duration / 5).max(Duration::from_millis(500));
            load::closed_loop(addr, request.clone(), conns, warm).await;
            let before = cpu_snapshot(bench);
            let run = load::closed_loop(addr, request, conns, duration).await;
            let after = cpu_snapshot(bench);
            let cpu = cpu_delta(&before, &after);
            eprintln!(
                "  {upstream_ms:>2} ms upstream, {conns:>3} connections, {:<20} {:>8.0} req/s  p99 {:>7} µs  failed {}",
                via.label(),
                run.rps(),
                run.latency.q(0.99) / 1000,
                run.failures.total()
            );
            rows.push(ThroughputRow {
                upstream_ms,
                connections: conns,
                via,
                run,
                cpu,
            });
        }
    }
    rows
}

fn cpu_snapshot(bench: &Bench<'_>) -> Vec<(&'static str, Usage)> {
    bench
        .measured()
        .into_iter()
        .map(|m| (m.name, m.usage()))
        .collect()
}

fn cpu_delta(
    before: &[(&'static str, Usage)],
    after: &[(&'static str, Usage)],
) -> Vec<(&'static str, f64)> {
    before
        .iter()
        .zip(after)
        .map(|((name, b), (_, a))| (*name, a.cpu_seconds_since(b)))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// 3. Streaming: time to first byte and the delay of each event.

pub struct StreamResult {
    pub via: Via,
    pub streams: usize,
    pub events_per_stream: usize,
    pub failures: Failures,
    pub ttfb: Dist,
    /// From the event leaving the fake (seen by the tap) to its arrival at the client.
    pub event_delay: Dist,
    /// Events of which the tap saw no match (should be none).
    pub unmatched: usize,
    /// Events that reached the client in the same read as the next one although the fake sent
    /// them at least half a gap apart: held back until the next arrived.
    pub held_back: usize,
}

pub const STREAM_CHUNKS: usize = 20;
pub const STREAM_GAP_MS: u64 = 5;

fn stream_extra(chunks: usize, gap_ms: u64) -> String {
    format!(
        r#","stream":true,"fake":{{"stream_chunks":{chunks},"chunk_gap_ms":{gap_ms},"text":"{STREAM_TEXT}"}}"#
    )
}

/// Events in one stream of `chunks` chunks, counted on a direct request.
pub async fn events_per_stream(bench: &Bench<'_>, chunks: usize) -> anyhow::Result<usize> {
    let addr = bench.addr(Via::Direct, false);
    let request = chat_request(Via::Direct, addr, false, &stream_extra(chunks, 0), None);
    let mut conn = client::Connection::open(addr).await?;
    let mut counter = crate::events::EventCounter::default();
    let mut events = 0;
    let response = conn
        .exchange(&request, |piece, _| events += counter.feed(piece))
        .await?;
    anyhow::ensure!(
        response.status == 200,
        "a direct stream answered {}",
        response.status
    );
    Ok(events)
}

pub async fn streaming(bench: &mut Bench<'_>) -> anyhow::Result<Vec<StreamResult>> {
    let expected = events_per_stream(bench, STREAM_CHUNKS).await?;
    let extra = stream_extra(STREAM_CHUNKS, STREAM_GAP_MS);
    let mut results = Vec::new();
    for via in bench.vias() {
        let addr = bench.addr(via, true);
        let extra = extra.clone();
        let request_for: load::RequestFor =
            Arc::new(move |id: &str| chat_request(via, addr, true, &extra, Some(id)));
        // Independent clients: the streams start spread over the length of one stream.
        let stagger = Duration::from_millis(STREAM_GAP_MS * STREAM_CHUNKS as u64);
        let warm = Until::Elapsed(Duration::from_millis(500));
        load::streams(
            addr,
            request_for.clone(),
            "warm",
            32,
            warm,
            stagger,
            expected,
        )
        .await;
        bench.stack.tap.clear();
        let until = Until::Elapsed(Duration::from_secs(bench.plan.stream_secs));
        let run = load::streams(addr, request_for, "s3", 32, until, stagger, expected).await;
        let result = match_events(bench, via, run, expected);
        eprintln!(
            "  {:<20} {} streams, {} events held back, ttfb p50 {} µs, event delay p50 {} µs p99 {} µs max {} µs",
            via.label(),
            result.streams,
            result.held_back,
            result.ttfb.q(0.5) / 1000,
            result.event_delay.q(0.5) / 1000,
            result.event_delay.q(0.99) / 1000,
            result.event_delay.max() / 1000
        );
        results.push(result);
    }
    Ok(results)
}

fn match_events(bench: &Bench<'_>, via: Via, run: StreamRun, expected: usize) -> StreamResult {
    let mut ttfb = Vec::with_capacity(run.streams.len());
    let mut delays = Vec::with_capacity(run.streams.len() * expected);
    let mut unmatched = 0;
    let mut held_back = 0;
    let half_gap = Duration::from_millis(STREAM_GAP_MS) / 2;
    for stream in &run.streams {
        ttfb.push((stream.first_byte - stream.sent).as_nanos() as u64);
        match bench.stack.tap.take(&stream.id) {
            Some(left) if left.len() == stream.events.len() => {
                for (arrived, left) in stream.events.iter().zip(&left) {
                    delays.push(arrived.saturating_duration_since(*left).as_nanos() as u64);
                }
                held_back += (1..left.len())
                    .filter(|&k| {
                        stream.events[k] == stream.events[k - 1]
                            && left[k].saturating_duration_since(left[k - 1]) >= half_gap
                    })
                    .count();
            }
            _ => unmatched += stream.events.len(),
        }
    }
    StreamResult {
        via,
        streams: run.streams.len(),
        events_per_stream: expected,
        failures: run.failures,
        ttfb: Dist::new(ttfb),
        event_delay: Dist::new(delays),
        unmatched,
        held_back,
    }
}

// ---------------------------------------------------------------------------------------------
// 4. A thousand concurrent streams.

pub struct ManyStreamsResult {
    pub via: Via,
    /// The proxy's `server.upstream.pool` during the run.
    pub pool: PoolSettings,
    pub started: usize,
    pub completed: usize,
    pub failures: Failures,
    pub elapsed: Duration,
    /// From the moment every client starts to connect to the last event of the stream that
    /// ended last.
    pub slowest: Option<Duration>,
    /// Per process: RSS before, peak RSS during, CPU seconds, in KiB and seconds.
    pub processes: Vec<ProcessLoad>,
}

pub struct ProcessLoad {
    pub name: &'static str,
    /// `None` for what runs inside the load generator's process.
    pub rss_before_kib: Option<u64>,
    pub rss_peak_kib: Option<u64>,
    pub cpu_seconds: f64,
}

/// The burst on every path, with the config the stack serves.
pub async fn many_streams(bench: &mut Bench<'_>) -> anyhow::Result<Vec<ManyStreamsResult>> {
    let mut results = Vec::new();
    for via in bench.vias() {
        results.push(stream_burst(bench, via).await?);
        // Let the closed connections go before the next path.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Ok(results)
}

/// The burst through the proxy with the original gateway's `server.upstream.pool`, then the
/// config is put back. No upstream request goes out between the reload and the burst, and none
/// of the burst's requests finds an idle connection, so the 60 s keep-alive of those settings
/// (longer than the fake's 5 s) never sends a request on a connection the fake has closed.
pub async fn many_streams_original_pool(
    bench: &mut Bench<'_>,
) -> anyhow::Result<ManyStreamsResult> {
    let before = bench.stack.config();
    bench
        .stack
        .apply_config(ConfigVariant {
            pool: PoolSettings::Original,
            ..before
        })
        .await?;
    let result = stream_burst(bench, Via::Proxy).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    bench.stack.apply_config(before).await?;
    result
}

/// `long_streams` clients connect at once through `via`, each for one stream of
/// `long_stream_chunks` chunks 1 s apart.
async fn stream_burst(bench: &mut Bench<'_>, via: Via) -> anyhow::Result<ManyStreamsResult> {
    let chunks = bench.plan.long_stream_chunks;
    let count = bench.plan.long_streams;
    let expected = events_per_stream(bench, chunks).await?;
    let extra = stream_extra(chunks, 1000);
    let addr = bench.addr(via, false);
    let request_for: load::RequestFor =
        Arc::new(move |id: &str| chat_request(via, addr, false, &extra, Some(id)));
    let measured = bench.measured();
    let before: Vec<Usage> = measured.iter().map(Measured::usage).collect();
    let sampling = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sampler = {
        let (measured, sampling) = (measured.clone(), sampling.clone());
        tokio::spawn(async move {
            let mut peaks: Vec<Option<u64>> = vec![None; measured.len()];
            while sampling.load(std::sync::atomic::Ordering::Relaxed) {
                for (peak, m) in peaks.iter_mut().zip(&measured) {
                    *peak = (*peak).max(m.usage().rss_kib);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            peaks
        })
    };
    let run = load::streams(
        addr,
        request_for,
        "s4",
        count,
        Until::OneEach,
        Duration::ZERO,
        expected,
    )
    .await;
    sampling.store(false, std::sync::atomic::Ordering::Relaxed);
    let peaks = sampler.await.unwrap_or_default();
    let after: Vec<Usage> = measured.iter().map(Measured::usage).collect();
    let processes = measured
        .iter()
        .enumerate()
        .map(|(i, m)| ProcessLoad {
            name: m.name,
            rss_before_kib: before[i].rss_kib,
            rss_peak_kib: peaks.get(i).copied().flatten().max(after[i].rss_kib),
            cpu_seconds: after[i].cpu_seconds_since(&before[i]),
        })
        .collect();
    let pool = bench.stack.config().pool;
    let slowest = run.slowest();
    eprintln!(
        "  {:<20} {} of {count} streams complete in {:.1} s, slowest {:.2} s (pool {pool:?}), failures: {}",
        via.label(),
        run.streams.len(),
        run.elapsed.as_secs_f64(),
        slowest.unwrap_or_default().as_secs_f64(),
        run.failures.describe()
    );
    Ok(ManyStreamsResult {
        via,
        pool,
        started: count,
        completed: run.streams.len(),
        failures: run.failures,
        elapsed: run.elapsed,
        slowest,
        processes,
    })
}

// ---------------------------------------------------------------------------------------------
// 5. Idle memory.

pub struct IdleRow {
    pub name: String,
    pub rss_kib: Option<u64>,
    pub note: String,
}

pub fn idle_row(name: &str, child: &Child, note: &str) -> IdleRow {
    IdleRow {
        name: name.into(),
        rss_kib: Some(child.rss_kib()),
        note: note.into(),
    }
}

// ---------------------------------------------------------------------------------------------
// 6. Hot reload under load.

pub struct ReloadResult {
    pub run: Run,
    pub writes: u64,
    /// Reloads the proxy counted (writes close together are applied as one).
    pub applied: u64,
    /// The last write is what serves afterwards.
    pub last_applied: bool,
    pub rejected: bool,
    pub connections: usize,
}

pub async fn reload_under_load(bench: &mut Bench<'_>) -> anyhow::Result<ReloadResult> {
    let connections = 32;
    let via = Via::Proxy;
    let addr = bench.addr(via, false);
    let request = Arc::new(chat_request(via, addr, false, "", None));
    let duration = Duration::from_secs(bench.plan.reload_secs);
    let generation_before = bench.stack.generation().await?;
    let stack = &mut *bench.stack;
    let writer = async {
        let mut writes = 0u64;
        let mut variant = stack.config();
        let end = Instant::now() + duration;
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        while Instant::now() < end {
            tick.tick().await;
            variant.revision += 1;
            if stack.write_config(variant).is_ok() {
                writes += 1;
            }
        }
        writes
    };
    let (run, writes) = tokio::join!(
        load::closed_loop(addr, request, connections, duration),
        writer
    );
    // Writes close together are applied together; the last one must be what serves.
    let last = format!("reload-{}", bench.stack.config().revision);
    let proxy = bench.stack.proxy_addr;
    let last_applied = test_support::wait_until(
        "the proxy to serve the last config written",
        Duration::from_secs(5),
        || serves_model(proxy, &last),
    )
    .await
    .is_ok();
    let generation_after = bench.stack.generation().await?;
    let status = bench.stack.ops_json("/status").await?;
    Ok(ReloadResult {
        run,
        writes,
        applied: generation_after.saturating_sub(generation_before),
        last_applied,
        rejected: !status["config"]["rejected"].is_null(),
        connections,
    })
}

/// Whether `GET /v1/models` through the proxy lists `id`.
async fn serves_model(proxy: SocketAddr, id: &str) -> bool {
    let bearer = format!("Bearer {CLIENT_KEY}");
    let request = client::request(
        "GET",
        proxy,
        "/v1/models",
        &[("authorization", bearer.as_str())],
        b"",
    );
    let Ok(mut conn) = client::Connection::open(proxy).await else {
        return false;
    };
    let mut body = Vec::new();
    match conn
        .exchange(&request, |piece, _| body.extend_from_slice(piece))
        .await
    {
        Ok(response) if response.status == 200 => {
            serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v["data"].as_array().cloned())
                .is_some_and(|models| models.iter().any(|m| m["id"] == id))
        }
        _ => false,
    }
}

// ---------------------------------------------------------------------------------------------
// 7. A request with a 2 MB image.

pub struct ImageResult {
    pub image_bytes: usize,
    pub width: u32,
    pub height: u32,
    pub body_bytes: usize,
    pub rows: Vec<ImageRow>,
    /// Image bytes the proxy received and forwarded with compression on (its /stats).
    pub compressed: Option<(u64, u64)>,
    pub note: Option<String>,
}

pub struct ImageRow {
    pub label: String,
    pub via: Via,
    pub latency: Dist,
    pub failures: Failures,
}

/// A photo-like JPEG of about 2 MB: smooth gradients with fine noise, as a camera makes.
pub fn photo_jpeg() -> anyhow::Result<(Vec<u8>, u32, u32)> {
    let (width, height) = (2800u32, 2100u32);
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let img = image::RgbImage::from_fn(width, height, |x, y| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let noise = (seed % 23) as i32 - 11;
        let fx = x as f32 / width as f32;
        let fy = y as f32 / height as f32;
        let wave = ((fx * 18.0).sin() * (fy * 11.0).cos() * 40.0) as i32;
        let r = 90 + (fx * 120.0) as i32 + wave + noise;
        let g = 70 + (fy * 140.0) as i32 - wave / 2 + noise;
        let b = 160 - (fx * fy * 120.0) as i32 + wave / 3 + noise;
        image::Rgb([
            r.clamp(0, 255) as u8,
            g.clamp(0, 255) as u8,
            b.clamp(0, 255) as u8,
        ])
    });
    let mut out = Vec::new();
    let encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 92);
    img.write_with_encoder(encoder)
        .context("encoding the test JPEG")?;
    Ok((out, width, height))
}

pub async fn image_request(bench: &mut Bench<'_>) -> anyhow::Result<ImageResult> {
    let (jpeg, width, height) = photo_jpeg()?;
    let b64 = base64::engine::general_purpose::STANDARD.encode(&jpeg);
    let n = bench.plan.image_requests;
    let mut rows = Vec::new();
    let mut note = None;

    rows.push(measure_image(bench, "direct to the fake", Via::Direct, &b64, n).await);
    let mut compressed = None;
    let off = ConfigVariant {
        image_compression: false,
        ..bench.stack.config()
    };
    let on = ConfigVariant {
        image_compression: true,
        ..off
    };
    let switched = async {
        bench.stack.apply_config(off).await?;
        rows.push(measure_image(bench, "proxy, compression off", Via::Proxy, &b64, n).await);
        bench.stack.apply_config(on).await?;
        let stats_before = bench.stack.ops_json("/stats").await?;
        rows.push(measure_image(bench, "proxy, compression on", Via::Proxy, &b64, n).await);
        let stats_after = bench.stack.ops_json("/stats").await?;
        let field = |v: &serde_json::Value, k: &str| v["images"][k].as_u64().unwrap_or(0);
        let before = field(&stats_after, "bytes_before") - field(&stats_before, "bytes_before");
        let after = field(&stats_after, "bytes_after") - field(&stats_before, "bytes_after");
        if before > 0 {
            compressed = Some((before, after));
        }
        if bench.stack.caddy.is_some() {
            rows.push(
                measure_image(bench, "Caddy + proxy, compression on", Via::Caddy, &b64, n).await,
            );
        }
        anyhow::Ok(())
    };
    if let Err(err) = switched.await {
        note = Some(format!("compression could not be switched: {err:#}"));
    }
    if compressed.is_none() && note.is_none() {
        note = Some("the proxy reported no compressed image".into());
    }
    let body_bytes = image_chat_request(Via::Proxy, bench.stack.proxy_addr, &b64).len();
    Ok(ImageResult {
        image_bytes: jpeg.len(),
        width,
        height,
        body_bytes,
        rows,
        compressed,
        note,
    })
}

async fn measure_image(bench: &Bench<'_>, label: &str, via: Via, b64: &str, n: usize) -> ImageRow {
    let addr = bench.addr(via, false);
    let request = image_chat_request(via, addr, b64);
    let warm = load::sequential(addr, &request, 2).await;
    let run = load::sequential(addr, &request, n).await;
    let mut failures = warm.failures;
    failures.merge(run.failures);
    ImageRow {
        label: label.to_string(),
        via,
        latency: run.latency,
        failures,
    }
}

fn image_chat_request(via: Via, addr: SocketAddr, b64: &str) -> Vec<u8> {
    let model = match via {
        Via::Direct => DEPLOYMENT,
        _ => stack::MODEL,
    };
    let body = format!(
        r#"{{"model":"{model}","messages":[{{"role":"user","content":[{{"type":"text","text":"What is in this picture?"}},{{"type":"image_url","image_url":{{"url":"data:image/jpeg;base64,{b64}","detail":"high"}}}}]}}],"max_tokens":50}}"#
    );
    let bearer = format!("Bearer {CLIENT_KEY}");
    let (path, auth) = match via {
        Via::Direct => (
            "/openai/v1/chat/completions",
            ("api-key", "bench-azure-key"),
        ),
        _ => ("/v1/chat/completions", ("authorization", bearer.as_str())),
    };
    client::request(
        "POST",
        addr,
        path,
        &[("content-type", "application/json"), auth],
        body.as_bytes(),
    )
}

// ---------------------------------------------------------------------------------------------
// 8. A pool with throttling.

/// Connections of scenario 8.
pub const POOL_CONNECTIONS: usize = 32;

pub struct PoolResult {
    /// The pool without 429s, then the one whose second deployment throttles.
    pub rows: Vec<PoolRow>,
    pub round_secs: u64,
    pub rounds: u64,
}

pub struct PoolRow {
    pub model: &'static str,
    pub throttled: bool,
    pub run: Run,
    /// Per deployment of the pool, what the proxy counted during the run.
    pub deployments: Vec<DeploymentCounts>,
}

impl PoolRow {
    /// 429 answers the client got.
    pub fn client_429s(&self) -> u64 {
        self.run.failures.0.get("HTTP 429").copied().unwrap_or(0)
    }

    pub fn requests(&self) -> u64 {
        self.run.ok + self.run.failures.total()
    }
}

/// A deployment's counters in the proxy's `/stats`, or their growth over a run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeploymentCounts {
    /// `upstream/deployment`, as `x-gateway-deployment` names it.
    pub name: String,
    pub requests: u64,
    pub succeeded: u64,
    pub throttled: u64,
    pub failovers_out: u64,
}

impl DeploymentCounts {
    fn add_growth(&mut self, before: &DeploymentCounts, after: &DeploymentCounts) {
        self.requests += after.requests.saturating_sub(before.requests);
        self.succeeded += after.succeeded.saturating_sub(before.succeeded);
        self.throttled += after.throttled.saturating_sub(before.throttled);
        self.failovers_out += after.failovers_out.saturating_sub(before.failovers_out);
    }
}

/// The deployments of the proxy's `/stats`.
async fn deployment_counts(stack: &Stack) -> anyhow::Result<Vec<DeploymentCounts>> {
    let stats = stack.ops_json("/stats").await?;
    let list = stats["deployments"]
        .as_array()
        .context("/stats has no deployments")?;
    let count = |d: &serde_json::Value, key: &str| d[key].as_u64().unwrap_or(0);
    Ok(list
        .iter()
        .map(|d| DeploymentCounts {
            name: format!(
                "{}/{}",
                d["upstream"].as_str().unwrap_or("?"),
                d["deployment"].as_str().unwrap_or("?")
            ),
            requests: count(d, "requests"),
            succeeded: count(d, "succeeded"),
            throttled: count(d, "throttled"),
            failovers_out: count(d, "failovers_out"),
        })
        .collect())
}

/// The same closed loop through the proxy on two pools of two deployments, the fake and a
/// second fake: on one pool the second fake answers 429 to every second request it receives,
/// on the other it never does. The pools take turns in rounds, so that a busy moment of the
/// machine falls on both alike.
pub async fn pool_throttling(bench: &mut Bench<'_>) -> anyhow::Result<PoolResult> {
    let via = Via::Proxy;
    let addr = bench.addr(via, false);
    let extra = format!(r#","fake":{{"latency_ms":{SLOW_UPSTREAM_MS}}}"#);
    let pools = [
        (stack::POOL_MODEL, stack::POOL_B, false),
        (stack::THROTTLED_POOL_MODEL, stack::POOL_B_THROTTLED, true),
    ];
    let round = Duration::from_secs(bench.plan.pool_round_secs.max(1));
    let rounds = (bench.plan.pool_secs / bench.plan.pool_round_secs.max(1)).max(1);
    let mut rows: Vec<PoolRow> = pools
        .iter()
        .map(|&(model, second, throttled)| PoolRow {
            model,
            throttled,
            run: Run::default(),
            deployments: [
                format!("fake/{DEPLOYMENT}"),
                format!("{second}/{DEPLOYMENT}"),
            ]
            .into_iter()
            .map(|name| DeploymentCounts {
                name,
                ..DeploymentCounts::default()
            })
            .collect(),
        })
        .collect();
    let requests: Vec<Arc<Vec<u8>>> = pools
        .iter()
        .map(|&(model, _, _)| {
            Arc::new(chat_request_for(model, CLIENT_KEY, via, addr, &extra, None))
        })
        .collect();
    for request in &requests {
        let warm = (round / 5).max(Duration::from_millis(500));
        load::closed_loop(addr, request.clone(), POOL_CONNECTIONS, warm).await;
    }
    for _ in 0..rounds {
        for (row, request) in rows.iter_mut().zip(&requests) {
            let before = deployment_counts(bench.stack).await?;
            let run = load::closed_loop(addr, request.clone(), POOL_CONNECTIONS, round).await;
            let after = deployment_counts(bench.stack).await?;
            row.run.merge(run);
            for counts in &mut row.deployments {
                let find = |list: &[DeploymentCounts]| {
                    list.iter().find(|d| d.name == counts.name).cloned()
                };
                let (Some(b), Some(a)) = (find(&before), find(&after)) else {
                    anyhow::bail!("/stats does not list deployment {}", counts.name);
                };
                counts.add_growth(&b, &a);
            }
        }
    }
    for row in &rows {
        eprintln!(
            "  {:<22} {} requests, failures: {}, p50 {:.2} ms p99 {:.2} ms; {}",
            row.model,
            row.requests(),
            row.run.failures.describe(),
            row.run.latency.q(0.5) as f64 / 1e6,
            row.run.latency.q(0.99) as f64 / 1e6,
            row.deployments
                .iter()
                .map(|d| format!(
                    "{}: {} answered, {} × 429, {} failovers",
                    d.name, d.succeeded, d.throttled, d.failovers_out
                ))
                .collect::<Vec<_>>()
                .join("; ")
        );
    }
    Ok(PoolResult {
        rows,
        round_secs: round.as_secs(),
        rounds,
    })
}
