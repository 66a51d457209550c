//! A fixed set of threads for CPU-heavy image work, fed through a bounded queue. Never runs a
//! job on an async worker and never blocks the caller: a full queue is reported, not waited on.

use std::panic::{self, AssertUnwindSafe};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

type Job = Box<dyn FnOnce() + Send + 'static>;

/// The queue is full (or the pool is gone): the caller should do without the work.
#[derive(Debug, thiserror::Error)]
#[error("the image worker queue is full")]
pub struct Busy;

pub struct WorkerPool {
    queue: SyncSender<Job>,
    threads: usize,
}

impl WorkerPool {
    /// Starts `threads` workers (at least one) sharing a queue of `capacity` waiting jobs.
    pub fn new(threads: usize, capacity: usize) -> std::io::Result<WorkerPool> {
        let threads = threads.max(1);
        let (queue, jobs) = std::sync::mpsc::sync_channel::<Job>(capacity);
        let jobs = Arc::new(Mutex::new(jobs));
        for index in 0..threads {
            let jobs = jobs.clone();
            std::thread::Builder::new()
                .name(format!("image-worker-{index}"))
                .spawn(move || work(&jobs))?;
        }
        Ok(WorkerPool { queue, threads })
    }

    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Queues `job`; its result arrives on the returned receiver. A job whose receiver was
    /// dropped before a worker picked it up (the request went away) is not run. A job that
    /// panics drops its sender, so the receiver sees an error.
    pub fn submit<T, F>(&self, job: F) -> Result<oneshot::Receiver<T>, Busy>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move || {
            if tx.is_closed() {
                return;
            }
            let _ = tx.send(job());
        });
        match self.queue.try_send(job) {
            Ok(()) => Ok(rx),
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => Err(Busy),
        }
    }
}

/// A worker's loop: one job at a time until the pool is dropped. A panicking job is contained
/// so that the worker lives on.
fn work(jobs: &Mutex<Receiver<Job>>) {
    loop {
        let next = jobs.lock().unwrap_or_else(|e| e.into_inner()).recv();
        let Ok(job) = next else {
            return;
        };
        if panic::catch_unwind(AssertUnwindSafe(job)).is_err() {
            tracing::error!("an image job panicked; the image is forwarded unchanged");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    #[actix_rt::test]
    async fn jobs_run_on_named_worker_threads() {
        let pool = WorkerPool::new(2, 8).expect("pool");
        let name = pool
            .submit(|| std::thread::current().name().map(str::to_string))
            .expect("queued")
            .await
            .expect("result");
        assert!(name.is_some_and(|n| n.starts_with("image-worker-")));
    }

    #[actix_rt::test]
    async fn jobs_run_in_parallel_up_to_the_thread_count() {
        let pool = WorkerPool::new(2, 8).expect("pool");
        let (arrived_tx, arrived) = mpsc::channel();
        let (release_tx, release) = mpsc::channel::<()>();
        let release = Arc::new(Mutex::new(release));
        let mut results = Vec::new();
        for _ in 0..2 {
            let arrived_tx = arrived_tx.clone();
            let release = release.clone();
            results.push(
                pool.submit(move || {
                    let _ = arrived_tx.send(());
                    let _ = release
                        .lock()
                        .expect("lock")
                        .recv_timeout(Duration::from_secs(10));
                })
                .expect("queued"),
            );
        }
        // Both jobs are running at once: each has arrived before either is released.
        for _ in 0..2 {
            arrived
                .recv_timeout(Duration::from_secs(10))
                .expect("both jobs start");
        }
        for _ in 0..2 {
            release_tx.send(()).expect("release");
        }
        for result in results {
            result.await.expect("done");
        }
    }

    #[actix_rt::test]
    async fn a_full_queue_says_busy_instead_of_waiting() {
        let pool = WorkerPool::new(1, 1).expect("pool");
        let (started_tx, started) = mpsc::channel();
        let (release_tx, release) = mpsc::channel::<()>();
        let running = pool
            .submit(move || {
                let _ = started_tx.send(());
                let _ = release.recv_timeout(Duration::from_secs(10));
            })
            .expect("queued");
        started
            .recv_timeout(Duration::from_secs(10))
            .expect("running");
        let waiting = pool.submit(|| ()).expect("one slot in the queue");
        assert!(matches!(pool.submit(|| ()), Err(Busy)));
        release_tx.send(()).expect("release");
        running.await.expect("done");
        waiting.await.expect("done");
    }

    #[actix_rt::test]
    async fn a_panicking_job_reports_an_error_and_the_worker_lives_on() {
        let pool = WorkerPool::new(1, 4).expect("pool");
        let failed = pool
            .submit(|| -> u8 { panic::resume_unwind(Box::new("boom")) })
            .expect("queued")
            .await;
        assert!(failed.is_err());
        assert_eq!(pool.submit(|| 7).expect("queued").await.expect("ok"), 7);
    }
}
