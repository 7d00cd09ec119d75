//! Threads that never exit, for the work that makes a thread use OpenSSL:
//! opening a PostgreSQL connection (libpq's SCRAM-SHA-256 login draws its
//! nonce and computes its HMACs through OpenSSL) and closing one that runs
//! over TLS.
//!
//! A thread that uses OpenSSL 3 registers per-thread state, which the
//! thread frees as it exits. `OPENSSL_cleanup`, which libcrypto runs at
//! process exit, walks every thread's registration without a lock; a thread
//! exiting at that moment frees what it walks, and the process ends in
//! SIGSEGV inside libcrypto (seen once in the test suite, after all 512
//! tests had passed: the pools of the last tests were dropped, their r2d2
//! threads exited as the binary did). r2d2's threads cannot be joined and
//! the test harness's threads end whenever their test does, so no thread
//! that may exit does this work: it is handed to one of these, which wait
//! for the next piece forever once done. There are as many as ever ran at
//! once (a few in a server; more in the tests, which open many pools).

use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::mpsc::{Sender, channel, sync_channel};
use std::sync::{Mutex, PoisonError};

type Work = Box<dyn FnOnce() + Send>;

/// A sender to each lasting thread waiting for work.
static IDLE: Mutex<Vec<Sender<Work>>> = Mutex::new(Vec::new());

/// No lasting thread could take the work: none was idle and the operating
/// system would not start another.
#[derive(Debug, thiserror::Error)]
#[error("cannot start a thread for the database connection: {0}")]
pub(super) struct NoThread(String);

/// Runs `work` on a lasting thread and returns what it returned (or
/// panics with its panic).
pub(super) fn run<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, NoThread> {
    let (done, outcome) = sync_channel(1);
    hand_over(Box::new(move || {
        let _ = done.send(catch_unwind(AssertUnwindSafe(work)));
    }))
    .map_err(|(_, error)| error)?;
    match outcome.recv() {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(panic)) => resume_unwind(panic),
        // A lasting thread runs its work inside `catch_unwind` and always
        // sends; only a thread killed from outside Rust ends here.
        Err(_) => Err(NoThread("the thread ended before its work".into())),
    }
}

/// Runs `work` on a lasting thread without waiting for it; on this thread
/// if none can take it.
pub(super) fn detach(work: impl FnOnce() + Send + 'static) {
    if let Err((work, _)) = hand_over(Box::new(move || {
        let _ = catch_unwind(AssertUnwindSafe(work));
    })) {
        work();
    }
}

/// Gives `work` to an idle lasting thread, or to a new one; returns it
/// with the reason when neither can take it.
fn hand_over(mut work: Work) -> Result<(), (Work, NoThread)> {
    loop {
        let idle = IDLE.lock().unwrap_or_else(PoisonError::into_inner).pop();
        let Some(thread) = idle else { break };
        match thread.send(work) {
            Ok(()) => return Ok(()),
            // Its receiver is gone: the thread was killed from outside Rust.
            Err(returned) => work = returned.0,
        }
    }
    let (to_thread, inbox) = channel::<Work>();
    let back = to_thread.clone();
    let started = std::thread::Builder::new()
        .name("keygate-libpq".into())
        .spawn(move || {
            // `back` lives as long as the thread, so `recv` never fails.
            while let Ok(work) = inbox.recv() {
                work();
                IDLE.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(back.clone());
            }
        });
    if let Err(error) = started {
        return Err((work, NoThread(error.to_string())));
    }
    to_thread.send(work).map_err(|returned| {
        (
            returned.0,
            NoThread("the new thread ended before its work".into()),
        )
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::{Duration, Instant};

    use super::*;

    #[test]
    fn work_runs_elsewhere_and_its_result_comes_back() {
        let here = std::thread::current().id();
        let there = run(|| std::thread::current().id()).unwrap();
        assert_ne!(here, there);
        assert_eq!(run(|| 6 * 7).unwrap(), 42);
    }

    #[test]
    fn a_panic_in_the_work_reaches_the_caller_and_the_thread_lasts() {
        let caught = std::panic::catch_unwind(|| run(|| panic!("the work failed")));
        assert!(caught.is_err());
        assert_eq!(run(|| "still here").unwrap(), "still here");
    }

    #[test]
    fn pieces_of_work_run_at_once_on_as_many_threads() {
        // Each piece waits (up to five seconds) until all three have started:
        // only three threads running them at once see that.
        let started = Arc::new(AtomicUsize::new(0));
        let waiting: Vec<_> = (0..3)
            .map(|_| {
                let started = Arc::clone(&started);
                std::thread::spawn(move || {
                    run(move || {
                        started.fetch_add(1, Ordering::SeqCst);
                        let deadline = Instant::now() + Duration::from_secs(5);
                        while started.load(Ordering::SeqCst) < 3 && Instant::now() < deadline {
                            std::thread::sleep(Duration::from_millis(1));
                        }
                        started.load(Ordering::SeqCst)
                    })
                    .unwrap()
                })
            })
            .collect();
        for thread in waiting {
            assert_eq!(thread.join().unwrap(), 3);
        }
    }
}
