//! Whether the database answers, as the pool last saw it: the one place an
//! outage is logged (when it starts, now and then while it lasts, when it
//! ends), so that a thousand refused requests make three log lines, not a
//! thousand; and what lets a request fail at once instead of waiting out the
//! checkout timeout while the database is known to be down.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// While an outage lasts, it is logged again at most this often.
const REMIND_EVERY: Duration = Duration::from_secs(30);

#[derive(Debug, Default)]
pub struct Reachability {
    /// Fast path of every checkout: a relaxed load, no lock, while all is well.
    down: AtomicBool,
    outage: Mutex<Option<Outage>>,
}

#[derive(Debug)]
struct Outage {
    since: Instant,
    last_logged: Instant,
    /// Failures since the last log line.
    unlogged: u64,
}

impl Reachability {
    /// True while the last word on the database is a failure.
    pub fn is_down(&self) -> bool {
        self.down.load(Ordering::Relaxed)
    }

    /// A connection could not be opened, or the SQLite file is not there:
    /// logged when the outage starts and every [`REMIND_EVERY`] while it
    /// lasts. `problem` is one line and holds no password (libpq's messages
    /// name the host, port and user, never the password).
    pub fn failed(&self, problem: &str) {
        let now = Instant::now();
        let mut outage = self.outage.lock().unwrap_or_else(PoisonError::into_inner);
        match outage.as_mut() {
            None => {
                self.down.store(true, Ordering::Relaxed);
                *outage = Some(Outage {
                    since: now,
                    last_logged: now,
                    unlogged: 0,
                });
                tracing::error!(
                    %problem,
                    "database unreachable: requests that need it answer 503 until it is back"
                );
            }
            Some(o) if now.duration_since(o.last_logged) >= REMIND_EVERY => {
                tracing::error!(
                    %problem,
                    down_for = %seconds(now.duration_since(o.since)),
                    failures_since_last_report = o.unlogged + 1,
                    "database still unreachable"
                );
                o.last_logged = now;
                o.unlogged = 0;
            }
            Some(o) => o.unlogged += 1,
        }
    }

    /// A connection was opened or checked out: the outage, if any, is over.
    pub fn reachable(&self) {
        if !self.is_down() {
            return;
        }
        let mut outage = self.outage.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(o) = outage.take() {
            self.down.store(false, Ordering::Relaxed);
            tracing::info!(
                down_for = %seconds(o.since.elapsed()),
                "database reachable again"
            );
        }
    }
}

/// Seconds to a tenth, for a log line: `12.3s`.
fn seconds(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outage_starts_with_a_failure_and_ends_with_a_success() {
        let r = Reachability::default();
        assert!(!r.is_down());
        r.reachable();
        assert!(!r.is_down());
        r.failed("connection refused");
        assert!(r.is_down());
        for _ in 0..1000 {
            r.failed("connection refused");
        }
        assert!(r.is_down());
        r.reachable();
        assert!(!r.is_down());
    }
}
