//! The threads argon2 runs on: one per core, kept for the process's life.
//!
//! One verification costs ~16 ms of a core and 19 MiB of memory. Run on the
//! shared blocking pool, each of its many threads kept its own allocator
//! arena with an argon2 block in it (404 MiB resident after a burst of
//! wrong secrets, for 40 MiB when ready); here as many threads exist as may
//! run at once, and each keeps one block and computes in it
//! ([`crate::argon2id::keep_memory`]), so the process's argon2 memory is at
//! most one block per core. A flood of wrong
//! secrets queues here, never on the async workers or the database's
//! blocking threads, and the warm token path never comes here at all.
//!
//! The threads run at a lower scheduling priority (niceness 10): idle
//! cores are all theirs, so a burst of new clients is verified at full
//! speed, but when the cores are contended the async workers, which answer
//! the clients already verified, come first. Without it a flood of wrong
//! secrets kept every core busy with argon2 and halved valid clients'
//! throughput.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rayon::{ThreadPool, ThreadPoolBuilder};
use thread_priority::{ThreadPriority, ThreadPriorityValue, set_current_thread_priority};

/// The crate's portable priority whose Linux niceness is 10: it maps
/// 0..=99 onto niceness 19..=-20 (`runs_at_a_lower_priority` checks it).
const PRIORITY: u8 = 22;

#[derive(Debug, thiserror::Error)]
pub enum Argon2PoolError {
    #[error("cannot start the argon2 threads: {0}")]
    Start(#[from] rayon::ThreadPoolBuildError),
    #[error("an argon2 computation panicked")]
    Lost,
}

pub struct Argon2Pool {
    threads: ThreadPool,
    /// Computations started since the pool was made.
    runs: Arc<AtomicU64>,
}

impl Argon2Pool {
    /// `threads` threads (at least one).
    pub fn new(threads: usize) -> Result<Self, Argon2PoolError> {
        let threads = ThreadPoolBuilder::new()
            .num_threads(threads.max(1))
            .thread_name(|i| format!("keygate-argon2-{i}"))
            // rayon aborts the process on a panic in spawned work unless
            // told otherwise: the waiting caller gets `Lost` instead.
            .panic_handler(|_| tracing::error!("an argon2 computation panicked"))
            .start_handler(|_| {
                lower_priority();
                crate::argon2id::keep_memory();
            })
            .build()?;
        Ok(Self {
            threads,
            runs: Arc::default(),
        })
    }

    /// How many computations the pool has started: what a request cost in
    /// argon2, counted rather than timed.
    pub fn runs(&self) -> u64 {
        self.runs.load(Ordering::Relaxed)
    }

    /// Runs `work` (an argon2 hash or verification) on one of the threads,
    /// in turn with the others waiting.
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Argon2PoolError> {
        let (done, result) = tokio::sync::oneshot::channel();
        let runs = Arc::clone(&self.runs);
        self.threads.spawn(move || {
            runs.fetch_add(1, Ordering::Relaxed);
            // The caller may have gone (its client hung up): nothing to tell.
            let _ = done.send(work());
        });
        result.await.map_err(|_| Argon2PoolError::Lost)
    }
}

/// Lowers the calling thread's priority to [`PRIORITY`]; a system that
/// refuses leaves it as it was, which costs only the fairness above.
fn lower_priority() {
    let lowered = ThreadPriorityValue::try_from(PRIORITY)
        .map_err(|e| e.to_owned())
        .and_then(|p| {
            set_current_thread_priority(ThreadPriority::Crossplatform(p))
                .map_err(|e| format!("{e:?}"))
        });
    if let Err(error) = lowered {
        tracing::warn!(%error, "cannot lower the argon2 threads' priority");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn runs_work_on_its_own_threads() {
        let pool = Argon2Pool::new(2).unwrap();
        let name = pool
            .run(|| std::thread::current().name().map(str::to_owned))
            .await
            .unwrap();
        assert!(name.unwrap().starts_with("keygate-argon2-"));
        assert_eq!(pool.runs(), 1);
    }

    /// Linux: the 19th field of `/proc/thread-self/stat` is the niceness.
    #[tokio::test]
    async fn runs_at_a_lower_priority() {
        let pool = Argon2Pool::new(1).unwrap();
        let stat = pool
            .run(|| std::fs::read_to_string("/proc/thread-self/stat").unwrap())
            .await
            .unwrap();
        let after_name = &stat[stat.rfind(')').unwrap() + 2..];
        let nice: i32 = after_name.split(' ').nth(16).unwrap().parse().unwrap();
        assert_eq!(nice, 10, "{stat}");
    }

    #[tokio::test]
    async fn each_thread_computes_in_one_block_it_keeps() {
        let pool = Argon2Pool::new(1).unwrap();
        assert_eq!(pool.run(crate::argon2id::kept_bytes).await.unwrap(), 0);
        for _ in 0..2 {
            let kept = pool
                .run(|| {
                    crate::argon2id::hash(b"x").unwrap();
                    crate::argon2id::kept_bytes()
                })
                .await
                .unwrap();
            assert_eq!(kept, 19456 * 1024);
        }
    }

    #[tokio::test]
    async fn a_panic_is_an_error_and_the_pool_goes_on() {
        let pool = Argon2Pool::new(1).unwrap();
        let lost = pool.run(|| -> u8 { panic!("boom") }).await;
        assert!(matches!(lost, Err(Argon2PoolError::Lost)));
        assert_eq!(pool.run(|| 7).await.unwrap(), 7);
    }
}
