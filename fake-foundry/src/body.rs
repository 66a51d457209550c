//! Response bodies sent piece by piece: paced SSE events, fragmented writes, scripted connection
//! cuts, and the lifecycle guard that counts streams started, completed and cancelled.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;
use tokio::time::{Instant, Sleep};

/// Counters of SSE body streams.
#[derive(Debug, Default)]
pub struct StreamStats {
    started: AtomicUsize,
    completed: AtomicUsize,
    cancelled: AtomicUsize,
}

impl StreamStats {
    pub fn started(&self) -> usize {
        self.started.load(Ordering::SeqCst)
    }

    pub fn completed(&self) -> usize {
        self.completed.load(Ordering::SeqCst)
    }

    pub fn cancelled(&self) -> usize {
        self.cancelled.load(Ordering::SeqCst)
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Running,
    Completed,
    /// Ended on purpose by a scripted cut: neither completed nor cancelled.
    Cut,
}

/// Counts a stream as started on creation; on drop, as cancelled unless it completed or was cut.
pub struct StreamGuard {
    stats: Arc<StreamStats>,
    outcome: Outcome,
}

impl StreamGuard {
    pub fn new(stats: Arc<StreamStats>) -> Self {
        stats.started.fetch_add(1, Ordering::SeqCst);
        Self {
            stats,
            outcome: Outcome::Running,
        }
    }

    fn complete(&mut self) {
        if self.outcome == Outcome::Running {
            self.outcome = Outcome::Completed;
            self.stats.completed.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn cut(&mut self) {
        self.outcome = Outcome::Cut;
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        if self.outcome == Outcome::Running {
            self.stats.cancelled.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// Where the pieces of a [`PacedBody`] end.
enum Cuts {
    /// Interior offsets (ascending, strictly between 0 and the limit); the last piece ends at the
    /// limit.
    At { points: Vec<usize>, next: usize },
    /// Fixed-size pieces.
    Every(usize),
}

/// A body yielded as slices of one pre-rendered buffer, with an optional pause before every
/// piece but the first, optionally failing after `limit` bytes so that the server aborts the
/// connection without finishing the response.
pub struct PacedBody {
    bytes: Bytes,
    sent: usize,
    limit: usize,
    cuts: Cuts,
    gap: Duration,
    /// Yield once between pieces even without a gap, so each piece is flushed on its own.
    flush_between: bool,
    sleep: Option<Pin<Box<Sleep>>>,
    waiting: bool,
    yielded_since_flush: bool,
    abort: bool,
    guard: Option<StreamGuard>,
}

impl PacedBody {
    /// Every byte, pausing `gap` at each of `gap_points`.
    pub fn paced(bytes: Bytes, gap_points: Vec<usize>, gap: Duration) -> Self {
        let limit = bytes.len();
        let points = if gap.is_zero() {
            Vec::new()
        } else {
            gap_points
        };
        Self::new(bytes, limit, Cuts::At { points, next: 0 }, gap, false)
    }

    /// The first `limit` bytes (paced like [`PacedBody::paced`]), then a failure that cuts the
    /// connection.
    pub fn cut(bytes: Bytes, limit: usize, gap_points: Vec<usize>, gap: Duration) -> Self {
        let limit = limit.min(bytes.len());
        let points = if gap.is_zero() {
            Vec::new()
        } else {
            gap_points.into_iter().filter(|&p| p < limit).collect()
        };
        let mut body = Self::new(bytes, limit, Cuts::At { points, next: 0 }, gap, false);
        body.abort = true;
        body
    }

    /// Every byte in pieces of `piece` bytes with `gap` between them.
    pub fn fragmented(bytes: Bytes, piece: usize, gap: Duration) -> Self {
        let limit = bytes.len();
        Self::new(bytes, limit, Cuts::Every(piece.max(1)), gap, true)
    }

    fn new(bytes: Bytes, limit: usize, cuts: Cuts, gap: Duration, flush_between: bool) -> Self {
        Self {
            bytes,
            sent: 0,
            limit,
            cuts,
            gap,
            flush_between,
            sleep: None,
            waiting: false,
            yielded_since_flush: false,
            abort: false,
            guard: None,
        }
    }

    /// Tracks this body's lifecycle in `stats`.
    pub fn tracked(mut self, stats: Arc<StreamStats>) -> Self {
        self.guard = Some(StreamGuard::new(stats));
        self
    }

    fn next_end(&mut self) -> usize {
        match &mut self.cuts {
            Cuts::At { points, next } => match points.get(*next) {
                Some(&point) => {
                    *next += 1;
                    point
                }
                None => self.limit,
            },
            Cuts::Every(piece) => (self.sent + *piece).min(self.limit),
        }
    }

    /// Waits out the gap before the next piece; `Ready` when it may be sent.
    fn poll_gap(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.sent == 0 {
            return Poll::Ready(());
        }
        if self.gap.is_zero() {
            if self.flush_between && self.yielded_since_flush {
                // Returning Pending lets the server flush what it has buffered first.
                self.yielded_since_flush = false;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            return Poll::Ready(());
        }
        if !self.waiting {
            let deadline = Instant::now() + self.gap;
            match &mut self.sleep {
                Some(sleep) => sleep.as_mut().reset(deadline),
                None => self.sleep = Some(Box::pin(tokio::time::sleep_until(deadline))),
            }
            self.waiting = true;
        }
        let pending = self
            .sleep
            .as_mut()
            .is_some_and(|sleep| sleep.as_mut().poll(cx).is_pending());
        if pending {
            return Poll::Pending;
        }
        self.waiting = false;
        Poll::Ready(())
    }
}

impl Stream for PacedBody {
    type Item = Result<Bytes, io::Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.sent >= this.limit {
            if !this.abort {
                return Poll::Ready(None);
            }
            if this.yielded_since_flush {
                // Let the server flush the pieces already yielded before the connection dies.
                this.yielded_since_flush = false;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            this.abort = false;
            if let Some(guard) = &mut this.guard {
                guard.cut();
            }
            return Poll::Ready(Some(Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "fake-foundry: scripted connection cut",
            ))));
        }
        if this.poll_gap(cx).is_pending() {
            return Poll::Pending;
        }
        let end = this.next_end();
        let piece = this.bytes.slice(this.sent..end);
        this.sent = end;
        this.yielded_since_flush = true;
        let finished = this.sent >= this.limit && !this.abort;
        if let Some(guard) = this.guard.as_mut().filter(|_| finished) {
            guard.complete();
        }
        Poll::Ready(Some(Ok(piece)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    async fn collect(mut body: PacedBody) -> (Vec<Bytes>, bool) {
        let mut pieces = Vec::new();
        while let Some(item) = body.next().await {
            match item {
                Ok(piece) => pieces.push(piece),
                Err(_) => return (pieces, true),
            }
        }
        (pieces, false)
    }

    #[tokio::test]
    async fn paced_splits_at_gap_points_only_with_a_gap() {
        let bytes = Bytes::from_static(b"aaabbbccc");
        let (pieces, failed) =
            collect(PacedBody::paced(bytes.clone(), vec![3, 6], Duration::ZERO)).await;
        assert_eq!((pieces.len(), failed), (1, false));
        let (pieces, _) = collect(PacedBody::paced(
            bytes,
            vec![3, 6],
            Duration::from_millis(1),
        ))
        .await;
        assert_eq!(pieces, ["aaa", "bbb", "ccc"]);
    }

    #[tokio::test]
    async fn cut_fails_after_the_limit() {
        let bytes = Bytes::from_static(b"aaabbbccc");
        let (pieces, failed) = collect(PacedBody::cut(bytes, 6, vec![3, 6], Duration::ZERO)).await;
        assert_eq!(pieces, ["aaabbb"]);
        assert!(failed);
    }

    #[tokio::test]
    async fn fragmented_pieces_cover_the_body() {
        let bytes = Bytes::from_static("a世界b".as_bytes());
        let (pieces, _) = collect(PacedBody::fragmented(bytes, 2, Duration::ZERO)).await;
        assert_eq!(pieces.len(), 4);
        assert_eq!(pieces.concat(), "a世界b".as_bytes());
    }

    #[tokio::test]
    async fn guard_counts_outcomes() {
        let stats = Arc::new(StreamStats::default());
        let bytes = Bytes::from_static(b"aaabbb");
        collect(PacedBody::paced(bytes.clone(), vec![3], Duration::ZERO).tracked(stats.clone()))
            .await;
        collect(PacedBody::cut(bytes.clone(), 3, vec![], Duration::ZERO).tracked(stats.clone()))
            .await;
        let mut dropped = PacedBody::fragmented(bytes, 1, Duration::ZERO).tracked(stats.clone());
        assert!(dropped.next().await.is_some());
        drop(dropped);
        assert_eq!(
            (stats.started(), stats.completed(), stats.cancelled()),
            (3, 1, 1)
        );
    }
}
