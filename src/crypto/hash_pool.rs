//! The threads that hash passwords: a fixed number of them, each keeping one argon2 memory buffer
//! between hashes.
//!
//! Why not tokio's blocking pool: argon2id at the default cost works in 19 MiB of memory. Allocated
//! afresh for every hash on the blocking pool, whose threads come and go (up to 512 of them), those
//! buffers land in glibc's per-thread malloc arenas, which keep what is freed: a process that had
//! 15 MB at rest held hundreds after a few hundred failed logins and never gave it back. Here the
//! number of threads is the bound on concurrent hashes, each reuses its own buffer, and a thread
//! that has been idle for a while ([`IDLE_RELEASE`]) hands its buffer back to the system. Memory
//! for hashing is thus at most `workers × buffer`, whatever the load, and none at rest.
//!
//! Callers wait on a semaphore with one permit per thread. A caller that goes away while waiting
//! queues nothing; once it holds a permit its job is queued at once (the queue never holds more
//! jobs than there are permits) and keeps the permit until the job has run, whether or not anyone
//! still waits for the result.

use anyhow::Context;
use argon2::Block;
use parking_lot::{Condvar, Mutex, MutexGuard};
use std::cell::RefCell;
use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How long a thread keeps its buffer with nothing to do: long enough that a steady trickle of
/// logins reuses it, short enough that memory goes back soon after a burst.
pub const IDLE_RELEASE: Duration = Duration::from_secs(10);

/// The most argon2 memory a stored hash may ask for, unless the configured cost is higher: the
/// bound of [`super::hash_bounds`] (which keeps such a hash from reaching a hashing thread), held
/// here too so that a hash over it fails, never takes the machine's memory.
const MAX_STORED_BLOCKS: usize = super::hash_bounds::ARGON2_MAX_MEMORY_KIB as usize;

/// Buffers are reserved at least this large (virtual size only; just the part a hash uses is ever
/// touched). glibc serves an allocation over 32 MiB (`DEFAULT_MMAP_THRESHOLD_MAX`) with a mapping
/// of its own and unmaps it when freed, so a released buffer really goes back to the system;
/// smaller ones, once one has been freed, come from the arenas and stay there.
const RESERVE_BLOCKS: usize = 32 * 1024 + 1;

type Job = Box<dyn FnOnce() + Send>;

/// A fixed set of hashing threads fed by a bounded queue.
pub struct HashPool {
    permits: Arc<Semaphore>,
    queue: Arc<Queue>,
    counters: Arc<Counters>,
}

struct Queue {
    state: Mutex<QueueState>,
    ready: Condvar,
}

struct QueueState {
    jobs: VecDeque<Job>,
    open: bool,
}

#[derive(Default)]
struct Counters {
    finished: AtomicU64,
    buffers_held: AtomicUsize,
}

impl HashPool {
    /// Starts `workers` threads, each of which keeps a buffer of `kept_blocks` argon2 blocks (the
    /// configured cost) from its first hash until it has been idle for `idle_release`.
    pub fn new(workers: usize, kept_blocks: usize, idle_release: Duration) -> anyhow::Result<Self> {
        let workers = workers.max(1);
        let queue = Arc::new(Queue {
            state: Mutex::new(QueueState {
                jobs: VecDeque::with_capacity(workers),
                open: true,
            }),
            ready: Condvar::new(),
        });
        let counters = Arc::new(Counters::default());
        for i in 0..workers {
            let memory = Memory {
                blocks: Vec::new(),
                kept_blocks: Some(kept_blocks),
                counters: Some(Arc::clone(&counters)),
            };
            let queue = Arc::clone(&queue);
            std::thread::Builder::new()
                .name(format!("authd-hash-{i}"))
                .spawn(move || work(&queue, memory, idle_release))
                .context("cannot start a password hashing thread")?;
        }
        Ok(Self {
            permits: Arc::new(Semaphore::new(workers)),
            queue,
            counters,
        })
    }

    /// Waits for a free thread, then runs `work` on it and returns its result. `queued` is called
    /// as soon as `work` is certain to run to its end, even if this future is dropped from then on.
    pub async fn run<T, F>(&self, work: F, queued: impl FnOnce()) -> anyhow::Result<T>
    where
        T: Send + 'static,
        F: FnOnce() -> anyhow::Result<T> + Send + 'static,
    {
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .context("password hasher is shut down")?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.submit(permit, work, move |result| {
            let _ = tx.send(result);
        })?;
        queued();
        rx.await.context("password hashing thread went away")?
    }

    fn submit<T, F>(
        &self,
        permit: OwnedSemaphorePermit,
        work: F,
        deliver: impl FnOnce(anyhow::Result<T>) + Send + 'static,
    ) -> anyhow::Result<()>
    where
        T: Send + 'static,
        F: FnOnce() -> anyhow::Result<T> + Send + 'static,
    {
        let counters = Arc::clone(&self.counters);
        let job: Job = Box::new(move || {
            // A panic loses only this job (its caller gets an error), never the thread.
            let result = std::panic::catch_unwind(AssertUnwindSafe(work))
                .unwrap_or_else(|_| Err(anyhow::anyhow!("password hashing panicked")));
            counters.finished.fetch_add(1, Ordering::AcqRel);
            // The slot is free before the caller hears back, so its next hash never waits on it.
            drop(permit);
            deliver(result);
        });
        let mut state = lock(&self.queue.state);
        anyhow::ensure!(state.open, "password hasher is shut down");
        // Each job holds a permit, so there are never more than `workers` of them.
        state.jobs.push_back(job);
        drop(state);
        self.queue.ready.notify_one();
        Ok(())
    }

    /// Free permits: threads neither busy nor promised to a queued job.
    pub fn available(&self) -> usize {
        self.permits.available_permits()
    }

    /// Jobs run to their end since start.
    pub fn finished(&self) -> u64 {
        self.counters.finished.load(Ordering::Acquire)
    }

    /// Threads holding an argon2 buffer now.
    pub fn buffers_held(&self) -> usize {
        self.counters.buffers_held.load(Ordering::Acquire)
    }
}

impl Drop for HashPool {
    /// The threads finish what is queued, then end.
    fn drop(&mut self) {
        lock(&self.queue.state).open = false;
        self.queue.ready.notify_all();
    }
}

/// A login flood keeps every core hashing. At equal priority a token check that becomes ready
/// then waits for a scheduler slice behind a hash (milliseconds); at a lower one the async workers
/// run at once and a hash waits a little instead. With nothing else to run, hashes still get the
/// whole machine. On Linux a thread's niceness is its own (`setpriority` on its thread id).
fn lower_priority() {
    let thread = rustix::thread::gettid();
    if let Err(err) = rustix::process::setpriority_process(Some(thread), HASHING_NICE) {
        tracing::debug!(error = %err, "could not lower the hashing thread's priority");
    }
}

fn lock(state: &Mutex<QueueState>) -> MutexGuard<'_, QueueState> {
    state.lock()
}

/// The niceness of hashing threads (0 is the async workers', 19 the lowest).
const HASHING_NICE: i32 = 10;

/// One hashing thread: takes jobs until the pool is dropped.
fn work(queue: &Queue, memory: Memory, idle_release: Duration) {
    lower_priority();
    MEMORY.set(memory);
    loop {
        let holding = MEMORY.with_borrow(|memory| !memory.blocks.is_empty());
        match next_job(queue, holding.then_some(idle_release)) {
            Next::Job(job) => {
                let _ = std::panic::catch_unwind(AssertUnwindSafe(job));
            }
            Next::Idle => MEMORY.with_borrow_mut(Memory::release),
            Next::Closed => return,
        }
    }
}

enum Next {
    Job(Job),
    Idle,
    Closed,
}

/// The next job; `Idle` once `idle_after` has passed without one.
fn next_job(queue: &Queue, idle_after: Option<Duration>) -> Next {
    let mut state = lock(&queue.state);
    loop {
        if let Some(job) = state.jobs.pop_front() {
            return Next::Job(job);
        }
        if !state.open {
            return Next::Closed;
        }
        match idle_after {
            Some(timeout) => {
                let waited = queue.ready.wait_for(&mut state, timeout);
                if waited.timed_out() && state.jobs.is_empty() {
                    return Next::Idle;
                }
            }
            None => queue.ready.wait(&mut state),
        }
    }
}

/// The argon2 memory of this thread: on a hashing thread, the buffer it keeps between hashes.
#[derive(Default)]
struct Memory {
    blocks: Vec<Block>,
    /// Set on hashing threads: the size of the buffer they keep.
    kept_blocks: Option<usize>,
    counters: Option<Arc<Counters>>,
}

impl Memory {
    fn keep(&mut self, blocks: Vec<Block>) {
        self.blocks = blocks;
        if let Some(counters) = &self.counters {
            counters.buffers_held.fetch_add(1, Ordering::AcqRel);
        }
    }

    fn release(&mut self) {
        if !self.blocks.is_empty() {
            self.blocks = Vec::new();
            if let Some(counters) = &self.counters {
                counters.buffers_held.fetch_sub(1, Ordering::AcqRel);
            }
        }
    }
}

thread_local! {
    static MEMORY: RefCell<Memory> = RefCell::new(Memory::default());
}

/// Runs `f` with `count` argon2 blocks of working memory. On a hashing thread this is its kept
/// buffer when `count` fits; a larger count (a stored hash of a higher cost than configured) gets
/// a buffer of its own, freed afterwards, up to a cap. The blocks hold whatever the last hash left
/// in them: argon2 writes every block before it reads it.
pub fn with_blocks<R>(count: usize, f: impl FnOnce(&mut [Block]) -> R) -> anyhow::Result<R> {
    MEMORY.with_borrow_mut(|memory| {
        let kept = memory.kept_blocks.unwrap_or(0);
        if count <= kept {
            if memory.blocks.is_empty() {
                memory.keep(allocate(kept)?);
            }
            let blocks = memory
                .blocks
                .get_mut(..count)
                .context("argon2 buffer too small")?;
            return Ok(f(blocks));
        }
        let cap = kept.max(MAX_STORED_BLOCKS);
        anyhow::ensure!(
            count <= cap,
            "argon2 memory cost of {count} KiB is over the {cap} KiB allowed"
        );
        let mut blocks = allocate(count)?;
        Ok(f(&mut blocks))
    })
}

fn allocate(count: usize) -> anyhow::Result<Vec<Block>> {
    let mut blocks = Vec::new();
    blocks
        .try_reserve_exact(count.max(RESERVE_BLOCKS))
        .with_context(|| format!("cannot allocate {count} KiB for argon2"))?;
    blocks.resize(count, Block::default());
    Ok(blocks)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    const KEPT: usize = 64;

    fn pool(workers: usize) -> anyhow::Result<HashPool> {
        HashPool::new(workers, KEPT, IDLE_RELEASE)
    }

    async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !done() {
            assert!(Instant::now() < deadline, "timed out waiting until {what}");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn never_more_at_once_than_workers_and_never_on_the_async_threads() -> anyhow::Result<()>
    {
        let pool = Arc::new(pool(2)?);
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let mut calls = tokio::task::JoinSet::new();
        for _ in 0..64 {
            let (pool, running, most) =
                (Arc::clone(&pool), Arc::clone(&running), Arc::clone(&most));
            calls.spawn(async move {
                pool.run(
                    move || {
                        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(2));
                        running.fetch_sub(1, Ordering::SeqCst);
                        Ok(std::thread::current().name().map(str::to_owned))
                    },
                    || {},
                )
                .await
            });
        }
        while let Some(call) = calls.join_next().await {
            let thread = call??;
            assert!(
                thread
                    .as_deref()
                    .is_some_and(|n| n.starts_with("authd-hash-")),
                "ran on {thread:?}"
            );
        }
        assert_eq!(most.load(Ordering::SeqCst), 2);
        assert_eq!(pool.finished(), 64);
        assert_eq!(pool.available(), 2);
        Ok(())
    }

    #[tokio::test]
    async fn a_panicking_job_fails_its_caller_and_keeps_the_thread() -> anyhow::Result<()> {
        let pool = pool(1)?;
        let failed = pool
            .run(|| -> anyhow::Result<()> { panic!("inside a hash") }, || {})
            .await;
        assert!(failed.is_err());
        assert_eq!(pool.run(|| Ok(7), || {}).await?, 7);
        assert_eq!(pool.available(), 1);
        Ok(())
    }

    #[tokio::test]
    async fn the_buffer_is_kept_between_hashes_and_given_back_when_idle() -> anyhow::Result<()> {
        let pool = HashPool::new(1, KEPT, Duration::from_millis(200))?;
        let address = || {
            with_blocks(KEPT, |blocks| {
                blocks[0] = Block::new();
                blocks.as_ptr() as usize
            })
        };
        let first = pool.run(address, || {}).await?;
        assert_eq!(pool.buffers_held(), 1);
        let second = pool.run(address, || {}).await?;
        assert_eq!(first, second, "the same buffer serves the next hash");
        wait_until("the idle thread frees its buffer", || {
            pool.buffers_held() == 0
        })
        .await;
        pool.run(address, || {}).await?;
        assert_eq!(
            pool.buffers_held(),
            1,
            "and takes one again when work comes"
        );
        Ok(())
    }

    #[tokio::test]
    async fn larger_costs_get_a_buffer_of_their_own_up_to_the_cap() -> anyhow::Result<()> {
        let pool = pool(1)?;
        let larger = pool
            .run(|| with_blocks(4 * KEPT, |blocks| blocks.len()), || {})
            .await?;
        assert_eq!(larger, 4 * KEPT);
        let kept = pool
            .run(|| with_blocks(KEPT / 2, |blocks| blocks.len()), || {})
            .await?;
        assert_eq!(
            kept,
            KEPT / 2,
            "smaller costs use the front of the kept buffer"
        );
        let huge = pool
            .run(|| with_blocks(MAX_STORED_BLOCKS + 1, |_| ()), || {})
            .await;
        assert!(
            huge.is_err(),
            "a cost over the cap is refused, not allocated"
        );
        Ok(())
    }

    #[tokio::test]
    async fn dropping_the_pool_ends_its_threads_after_their_work() -> anyhow::Result<()> {
        let pool = pool(2)?;
        let queue = Arc::clone(&pool.queue);
        let answer = pool.run(|| Ok(1), || {}).await?;
        drop(pool);
        assert_eq!(answer, 1);
        wait_until("the threads let go of the queue", || {
            Arc::strong_count(&queue) == 1
        })
        .await;
        Ok(())
    }
}
