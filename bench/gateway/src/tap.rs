//! A timing relay in front of the fake: passes bytes both ways unchanged and notes when each
//! SSE event of a response left the fake, keyed by the request's `x-request-id`. Comparing
//! those instants with the client's gives the delay of each event through what sits between
//! (the gateway, Caddy, or nothing), free of the fake's own timer jitter.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use memchr::memmem;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::events::EventCounter;

const HEADER: &[u8] = b"\r\nx-request-id:";

type Arrivals = Arc<Mutex<HashMap<String, Vec<Instant>>>>;

pub struct Tap {
    pub addr: SocketAddr,
    arrivals: Arrivals,
}

impl Tap {
    /// Listens on a loopback port and relays every connection to `upstream`.
    pub async fn start(upstream: SocketAddr) -> std::io::Result<Tap> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let arrivals: Arrivals = Arc::default();
        let shared = arrivals.clone();
        tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let arrivals = shared.clone();
                tokio::spawn(async move {
                    if let Ok(outbound) = TcpStream::connect(upstream).await {
                        relay(inbound, outbound, arrivals).await;
                    }
                });
            }
        });
        Ok(Tap { addr, arrivals })
    }

    /// The instants at which the events of request `id` left the fake, in order.
    pub fn take(&self, id: &str) -> Option<Vec<Instant>> {
        self.arrivals
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id)
    }

    pub fn clear(&self) {
        self.arrivals
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }
}

async fn relay(inbound: TcpStream, outbound: TcpStream, arrivals: Arrivals) {
    let _ = inbound.set_nodelay(true);
    let _ = outbound.set_nodelay(true);
    let (mut in_read, mut in_write) = inbound.into_split();
    let (mut out_read, mut out_write) = outbound.into_split();
    // HTTP/1.1 without pipelining: a response belongs to the last request head seen.
    let current: Arc<Mutex<String>> = Arc::default();

    let requests = {
        let current = current.clone();
        async move {
            let mut buf = vec![0u8; 64 * 1024];
            let mut window: Vec<u8> = Vec::with_capacity(8 * 1024);
            loop {
                let n = match in_read.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                window.extend_from_slice(&buf[..n]);
                note_request_ids(&mut window, &current);
                if out_write.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
            let _ = out_write.shutdown().await;
        }
    };
    let responses = async move {
        let mut buf = vec![0u8; 64 * 1024];
        let mut counter = EventCounter::default();
        loop {
            let n = match out_read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let at = Instant::now();
            let events = counter.feed(&buf[..n]);
            if events > 0 {
                let id = current.lock().unwrap_or_else(|e| e.into_inner()).clone();
                arrivals
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .entry(id)
                    .or_default()
                    .extend(std::iter::repeat_n(at, events));
            }
            if in_write.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = in_write.shutdown().await;
    };
    tokio::join!(requests, responses);
}

/// Takes every complete `x-request-id` header out of `window` into `current`, and keeps the
/// window small.
fn note_request_ids(window: &mut Vec<u8>, current: &Mutex<String>) {
    let mut consumed = 0;
    while let Some(at) = memmem::find(&window[consumed..], HEADER) {
        let value_start = consumed + at + HEADER.len();
        let Some(len) = memmem::find(&window[value_start..], b"\r\n") else {
            break;
        };
        let value = String::from_utf8_lossy(window[value_start..value_start + len].trim_ascii());
        *current.lock().unwrap_or_else(|e| e.into_inner()) = value.into_owned();
        consumed = value_start + len;
    }
    if consumed > 0 {
        window.drain(..consumed);
    }
    if window.len() > 4 * 1024 {
        let excess = window.len() - 256;
        window.drain(..excess);
    }
}
