//! The gate every connection attempt of the pool passes, so that a process
//! exits only once none is under way.

use std::sync::{Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use diesel::ConnectionError;

/// Counts the connection attempts under way and, once closed, refuses new
/// ones. r2d2 opens connections on its own threads (to fill `min_idle`, or
/// for a waiting `get`); a process must not exit while one of them is inside
/// libpq, whose SCRAM-SHA-256 login computes an HMAC through OpenSSL while
/// the exiting thread runs `OPENSSL_cleanup` (SIGSEGV or SIGABRT). Closing
/// the gate and waiting for it to drain makes exit safe.
#[derive(Debug, Default)]
pub(super) struct ConnectGate {
    state: Mutex<GateState>,
    drained: Condvar,
}

#[derive(Debug, Default)]
struct GateState {
    closed: bool,
    in_flight: usize,
}

/// One connection attempt let through the gate; leaving it on drop.
pub(super) struct GatePass<'a>(&'a ConnectGate);

impl ConnectGate {
    pub(super) fn enter(&self) -> Result<GatePass<'_>, ConnectionError> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.closed {
            return Err(ConnectionError::BadConnection(
                "the database pool is shut down".into(),
            ));
        }
        state.in_flight += 1;
        Ok(GatePass(self))
    }

    /// Refuses further attempts and waits up to `timeout` for those under
    /// way; returns how many were still running when it gave up.
    pub(super) fn close(&self, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.closed = true;
        while state.in_flight > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            state = self
                .drained
                .wait_timeout(state, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        state.in_flight
    }
}

impl Drop for GatePass<'_> {
    fn drop(&mut self) {
        let mut state = self.0.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.in_flight -= 1;
        if state.in_flight == 0 {
            self.0.drained.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn a_closed_gate_refuses_new_attempts() {
        let gate = ConnectGate::default();
        drop(gate.enter().unwrap());
        assert_eq!(gate.close(Duration::from_millis(10)), 0);
        assert!(gate.enter().is_err());
    }

    #[test]
    fn close_waits_for_the_attempt_under_way() {
        let gate = Arc::new(ConnectGate::default());
        let (entered, wait_entered) = std::sync::mpsc::channel();
        let worker = {
            let gate = Arc::clone(&gate);
            std::thread::spawn(move || {
                let pass = gate.enter().unwrap();
                entered.send(()).unwrap();
                std::thread::sleep(Duration::from_millis(50));
                drop(pass);
            })
        };
        wait_entered.recv().unwrap();
        let started = Instant::now();
        assert_eq!(gate.close(Duration::from_secs(5)), 0);
        assert!(started.elapsed() >= Duration::from_millis(40));
        worker.join().unwrap();
    }

    #[test]
    fn close_gives_up_after_its_timeout() {
        let gate = ConnectGate::default();
        let _pass = gate.enter().unwrap();
        assert_eq!(gate.close(Duration::from_millis(20)), 1);
    }
}
