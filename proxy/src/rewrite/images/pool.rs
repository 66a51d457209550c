//! A fixed set of threads for CPU-heavy image work, fed through a bounded queue. Never runs a
//! job on an async worker and never blocks the caller: a full queue is reported, not waited on.
//!
//! A worker keeps buffers between images (its scratch pixels, its resizer, its allocator heap),
//! which is what makes steady work fast and what an idle process should not hold on to. So a
//! worker that has had no job for [`IDLE_RELEASE`] since its last one first runs the pool's
//! release hook (which frees those buffers while the thread's allocator heap is still live),
//! then hands its place to a fresh thread and ends, and the allocator takes back the thread's
//! heap. (Left to the thread-local destructors, which run while the thread ends, those buffers
//! were measured to stay resident.) The fresh thread, if no job comes within [`SETTLE_AFTER`],
//! makes the allocator return what was freed to the system (see [`settle_allocator`]).

use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

type Job = Box<dyn FnOnce() + Send + 'static>;

/// How long a worker that has run a job waits for the next one before it is renewed.
pub const IDLE_RELEASE: Duration = Duration::from_secs(10);

/// The queue is full (or the pool is gone): the caller should do without the work.
#[derive(Debug, thiserror::Error)]
#[error("the image worker queue is full")]
pub struct Busy;

pub struct WorkerPool {
    queue: SyncSender<Job>,
    threads: usize,
    #[cfg(test)]
    renewed: Arc<AtomicU64>,
    #[cfg(test)]
    settled: Arc<AtomicU64>,
}

/// What every worker thread shares.
struct Shared {
    jobs: Mutex<Receiver<Job>>,
    idle_release: Duration,
    /// Run on a worker before it ends: frees what its jobs keep in thread-locals.
    release: fn(),
    renewed: Arc<AtomicU64>,
    settled: Arc<AtomicU64>,
}

impl WorkerPool {
    /// Starts `threads` workers (at least one) sharing a queue of `capacity` waiting jobs. A
    /// worker runs `release` on its own thread before it is renewed.
    pub fn new(threads: usize, capacity: usize, release: fn()) -> std::io::Result<WorkerPool> {
        WorkerPool::with_idle_release(threads, capacity, IDLE_RELEASE, release)
    }

    /// [`WorkerPool::new`] whose workers are renewed after `idle_release` without a job.
    pub fn with_idle_release(
        threads: usize,
        capacity: usize,
        idle_release: Duration,
        release: fn(),
    ) -> std::io::Result<WorkerPool> {
        let threads = threads.max(1);
        let (queue, jobs) = std::sync::mpsc::sync_channel::<Job>(capacity);
        let renewed = Arc::new(AtomicU64::new(0));
        let settled = Arc::new(AtomicU64::new(0));
        let shared = Arc::new(Shared {
            jobs: Mutex::new(jobs),
            idle_release,
            release,
            renewed: renewed.clone(),
            settled: settled.clone(),
        });
        for index in 0..threads {
            spawn_worker(index, shared.clone(), Waiting::FirstJob)?;
        }
        Ok(WorkerPool {
            queue,
            threads,
            #[cfg(test)]
            renewed,
            #[cfg(test)]
            settled,
        })
    }

    pub fn threads(&self) -> usize {
        self.threads
    }

    /// How many times an idle worker has handed its place to a fresh thread.
    #[cfg(test)]
    pub fn renewed(&self) -> u64 {
        self.renewed.load(Ordering::Relaxed)
    }

    /// How many times a fresh thread that replaced an idle worker has settled the allocator.
    #[cfg(test)]
    pub fn settled(&self) -> u64 {
        self.settled.load(Ordering::Relaxed)
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

fn spawn_worker(index: usize, shared: Arc<Shared>, waiting: Waiting) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name(format!("image-worker-{index}"))
        .spawn(move || work(index, shared, waiting))
        .map(drop)
}

/// How long a worker that replaced an idle one waits for a job before it settles the
/// allocator: longer than mimalloc's purge delay (1 s).
const SETTLE_AFTER: Duration = Duration::from_secs(2);

/// What a worker waits for.
#[derive(Debug, Clone, Copy)]
enum Waiting {
    /// Its first job, for as long as it takes.
    FirstJob,
    /// It replaced an idle worker (started at the instant given): a job, or else, at
    /// [`SETTLE_AFTER`], the allocator is settled and it waits as [`Waiting::FirstJob`].
    Settling(Instant),
    /// It has worked (last at the instant given): a job within `idle_release`, or else it is
    /// renewed.
    NextJob(Instant),
}

/// A worker's loop: one job at a time until the pool is dropped. A panicking job is contained
/// so that the worker lives on. A worker that has worked is renewed once it has been idle for
/// `idle_release`, timed from its last job (not from when it got the queue, so that workers
/// queued behind each other on the lock are all renewed at about the same time).
fn work(index: usize, shared: Arc<Shared>, mut waiting: Waiting) {
    loop {
        let next = {
            let jobs = shared.jobs.lock().unwrap_or_else(|e| e.into_inner());
            let deadline = match waiting {
                Waiting::FirstJob => None,
                Waiting::Settling(start) => Some(start + SETTLE_AFTER),
                Waiting::NextJob(last) => Some(last + shared.idle_release),
            };
            match deadline {
                None => jobs.recv().map_err(|_| RecvTimeoutError::Disconnected),
                Some(deadline) => match deadline.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => jobs.recv_timeout(left),
                    _ => Err(RecvTimeoutError::Timeout),
                },
            }
        };
        match (next, waiting) {
            (Ok(job), _) => {
                if panic::catch_unwind(AssertUnwindSafe(job)).is_err() {
                    tracing::error!("an image job panicked; the image is forwarded unchanged");
                }
                waiting = Waiting::NextJob(Instant::now());
            }
            (Err(RecvTimeoutError::Timeout), Waiting::Settling(_)) => {
                settle_allocator();
                shared.settled.fetch_add(1, Ordering::Relaxed);
                waiting = Waiting::FirstJob;
            }
            (Err(RecvTimeoutError::Timeout), _) => {
                if panic::catch_unwind(shared.release).is_err() {
                    tracing::error!("an idle image worker's release hook panicked");
                }
                match spawn_worker(index, shared.clone(), Waiting::Settling(Instant::now())) {
                    Ok(()) => {
                        shared.renewed.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                    // No fresh thread to be had: this one carries on.
                    Err(err) => {
                        tracing::warn!(error = %err, "an idle image worker could not be renewed");
                        waiting = Waiting::FirstJob;
                    }
                }
            }
            (Err(RecvTimeoutError::Disconnected), _) => return,
        }
    }
}

/// Makes the allocator return to the system what ended workers freed. mimalloc returns freed
/// memory only once its purge delay has passed, and then only when a thread frees whole pages
/// or ends; in an idle process no thread does, and the memory would stay resident. So a
/// short-lived thread allocates one block (never written to, so it costs no resident memory)
/// and ends, which makes mimalloc purge every range that is due. Other allocators just map and
/// unmap the block.
fn settle_allocator() {
    const BLOCK: usize = 4 << 20;
    let settled = std::thread::Builder::new()
        .name("image-settle".into())
        .spawn(|| drop(std::hint::black_box(Vec::<u8>::with_capacity(BLOCK))))
        .map(std::thread::JoinHandle::join);
    if !matches!(settled, Ok(Ok(()))) {
        tracing::debug!("the allocator could not be settled after idle image workers");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    #[actix_rt::test]
    async fn jobs_run_on_named_worker_threads() {
        let pool = WorkerPool::new(2, 8, || ()).expect("pool");
        let name = pool
            .submit(|| std::thread::current().name().map(str::to_string))
            .expect("queued")
            .await
            .expect("result");
        assert!(name.is_some_and(|n| n.starts_with("image-worker-")));
    }

    #[actix_rt::test]
    async fn jobs_run_in_parallel_up_to_the_thread_count() {
        let pool = WorkerPool::new(2, 8, || ()).expect("pool");
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
        let pool = WorkerPool::new(1, 1, || ()).expect("pool");
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
    async fn an_idle_worker_releases_its_buffers_and_is_renewed() {
        thread_local! {
            static SCRATCH: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
        }
        static RELEASED_ON: Mutex<Option<std::thread::ThreadId>> = Mutex::new(None);
        fn release() {
            *RELEASED_ON.lock().expect("lock") = Some(std::thread::current().id());
        }
        let pool =
            WorkerPool::with_idle_release(1, 4, Duration::from_millis(50), release).expect("pool");
        let first = pool
            .submit(|| {
                SCRATCH.set(7);
                std::thread::current().id()
            })
            .expect("queued")
            .await
            .expect("ran");
        test_support::eventually("the idle worker's renewal", Duration::from_secs(10), || {
            std::future::ready(pool.renewed() == 1)
        })
        .await;
        let (second, scratch, name) = pool
            .submit(|| {
                let current = std::thread::current();
                (
                    current.id(),
                    SCRATCH.get(),
                    current.name().map(str::to_string),
                )
            })
            .expect("queued")
            .await
            .expect("ran");
        assert_eq!(
            *RELEASED_ON.lock().expect("lock"),
            Some(first),
            "the hook ran on the idle worker itself"
        );
        assert_ne!(first, second, "a fresh thread");
        test_support::eventually("the allocator settled", Duration::from_secs(10), || {
            std::future::ready(pool.settled() == 1)
        })
        .await;
        assert_eq!(scratch, 0, "the old thread's locals are gone");
        assert_eq!(name.as_deref(), Some("image-worker-0"));
    }

    #[actix_rt::test]
    async fn a_busy_worker_is_not_renewed() {
        let pool =
            WorkerPool::with_idle_release(1, 4, Duration::from_secs(60), || ()).expect("pool");
        let ids = [
            pool.submit(|| std::thread::current().id())
                .expect("queued")
                .await
                .expect("ran"),
            pool.submit(|| std::thread::current().id())
                .expect("queued")
                .await
                .expect("ran"),
        ];
        assert_eq!(ids[0], ids[1]);
        assert_eq!(pool.renewed(), 0);
    }

    #[actix_rt::test]
    async fn a_panicking_job_reports_an_error_and_the_worker_lives_on() {
        let pool = WorkerPool::new(1, 4, || ()).expect("pool");
        let failed = pool
            .submit(|| -> u8 { panic::resume_unwind(Box::new("boom")) })
            .expect("queued")
            .await;
        assert!(failed.is_err());
        assert_eq!(pool.submit(|| 7).expect("queued").await.expect("ok"), 7);
    }
}
