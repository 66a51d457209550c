//! The stop signals both binaries obey: SIGTERM (container stop) and SIGINT (Ctrl-C).
//! Registered before a listener is announced, so a stop sent right after start-up is not lost.

use anyhow::Context as _;
use tokio::signal::unix::{Signal, SignalKind, signal};

pub struct StopSignals {
    term: Signal,
    int: Signal,
}

impl StopSignals {
    pub fn register() -> anyhow::Result<StopSignals> {
        Ok(StopSignals {
            term: signal(SignalKind::terminate()).context("listening for SIGTERM")?,
            int: signal(SignalKind::interrupt()).context("listening for SIGINT")?,
        })
    }

    pub async fn recv(&mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
    }
}
