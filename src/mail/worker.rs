//! Sends what the outbox holds: claims due emails with a lease, sends them
//! outside any transaction, then records the outcome at once, so an email the
//! server accepted is never sent again and one it did not is retried with
//! backoff until it goes through or is given up.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use lettre::message::Mailbox;

use super::outbox::{self, OutboxEmail};
use super::transport::{Mailer, Outgoing, SendError, compose};
use super::{MailTuning, TaskError};
use crate::db::{DbConnection, Pool};
use crate::metrics::MailMetrics;
use crate::time::Clock;

/// Emails claimed at once; a full batch is followed by the next without pause.
pub const BATCH: usize = 20;

/// The SMTP exchanges of one send that each may take `smtp_timeout`
/// (connect, greeting, EHLO, STARTTLS, AUTH, MAIL, RCPT, DATA and its end).
const SMTP_STEPS: u32 = 9;

/// The outbox worker's job: everything one delivery round uses.
pub struct Delivery {
    pool: Pool,
    mailer: Mailer,
    from: Mailbox,
    tuning: MailTuning,
    metrics: MailMetrics,
    clock: Clock,
    /// Set when the process shuts down: the round under way finishes the
    /// email it is sending and hands the rest back.
    stopping: Arc<AtomicBool>,
    /// Emails this process claimed and has not started sending: what it
    /// hands back if it stops.
    unstarted: Mutex<Vec<String>>,
}

impl Delivery {
    pub fn new(
        pool: Pool,
        mailer: Mailer,
        from: Mailbox,
        tuning: MailTuning,
        metrics: MailMetrics,
        clock: Clock,
    ) -> Self {
        Self {
            pool,
            mailer,
            from,
            tuning,
            metrics,
            clock,
            stopping: Arc::default(),
            unstarted: Mutex::default(),
        }
    }

    /// Asks the round under way (and any later one) to stop after the
    /// email it is sending, handing the others back to the outbox.
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::Relaxed);
    }

    fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Relaxed)
    }

    fn unstarted(&self) -> std::sync::MutexGuard<'_, Vec<String>> {
        self.unstarted
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Clears the lease on every email this process claimed and did not
    /// start sending, so another process (or this one restarted) takes them
    /// at once rather than when the lease ends. For a round that was
    /// abandoned at shutdown; a round that sees [`stop`](Self::stop) does
    /// it itself.
    pub async fn release_unstarted(&self) {
        let ids = std::mem::take(&mut *self.unstarted());
        if ids.is_empty() {
            return;
        }
        let count = ids.len();
        match self
            .db(move |conn| outbox::release(conn, &ids).map_err(TaskError::from))
            .await
        {
            Ok(()) => tracing::info!(count, "email outbox: handed back unsent emails"),
            Err(error) => self.db_warning(
                &error,
                "could not hand back unsent emails; they wait for their lease to end",
            ),
        }
    }

    /// A warning for a failure of the work itself. A database that could
    /// not be reached or used is the pool's to report, once per outage
    /// (`crate::db::reachability`), and the work is tried again: this would
    /// repeat it every round. The failure is known by its kind, not only by
    /// the pool's flag, which a failed new connection sets: a connection
    /// lost under this query fails it before any new connection has failed.
    fn db_warning(&self, error: &TaskError, what: &'static str) {
        if error.is_unavailable() || !self.pool.is_reachable() {
            tracing::debug!(%error, "email outbox: {what}");
        } else {
            tracing::warn!(%error, "email outbox: {what}");
        }
    }

    pub fn describe(&self) -> String {
        self.mailer.describe()
    }

    /// How long an idle worker waits before the next round.
    pub fn poll_interval(&self) -> Duration {
        self.tuning.poll_interval
    }

    /// One claim-and-send round, then the pending gauge; returns how many
    /// emails it handled (sent, failed or handed back).
    pub async fn run_once(&self) -> Result<usize, TaskError> {
        let handled = self.deliver_due().await;
        self.refresh_gauge().await;
        handled
    }

    async fn db<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut DbConnection) -> Result<T, TaskError> + Send + 'static,
    ) -> Result<T, TaskError> {
        self.pool.run(work).await
    }

    async fn refresh_gauge(&self) {
        match self
            .db(|conn| outbox::pending_count(conn).map_err(TaskError::from))
            .await
        {
            Ok(pending) => {
                self.metrics.outbox_pending.set(pending);
            }
            Err(error) => self.db_warning(&error, "could not count pending emails"),
        }
    }

    /// The end of a lease taken or renewed now.
    fn lease_until(&self) -> chrono::DateTime<chrono::Utc> {
        self.clock.now()
            + chrono::Duration::from_std(self.tuning.lease).unwrap_or(chrono::Duration::seconds(15))
    }

    /// Renews the lease on the emails this round still holds; false when the
    /// database did not take it, so the round stops before its lease can end
    /// under a send.
    async fn renew(&self, held: Vec<String>) -> bool {
        let until = self.lease_until();
        match self
            .db(move |conn| outbox::renew(conn, &held, until).map_err(TaskError::from))
            .await
        {
            Ok(()) => true,
            Err(error) => {
                self.db_warning(&error, "could not renew the lease; stopping this round");
                false
            }
        }
    }

    async fn deliver_due(&self) -> Result<usize, TaskError> {
        if self.is_stopping() {
            return Ok(0);
        }
        let now = self.clock.now();
        let lease_until = self.lease_until();
        let batch = self
            .db(move |conn| {
                outbox::claim_due(conn, now, lease_until, BATCH as i64).map_err(TaskError::from)
            })
            .await?;
        let count = batch.len();
        *self.unstarted() = batch.iter().map(|e| e.id.clone()).collect();
        let mut batch = batch.into_iter();
        while let Some(email) = batch.next() {
            if self.is_stopping() {
                self.release_unstarted().await;
                break;
            }
            self.unstarted().retain(|id| id != &email.id);
            // This email and the rest are held for a whole lease again, and
            // renewed while it is on its way: no other process takes one over
            // while this worker lives, and after a crash they wait one lease.
            let held: Vec<String> = std::iter::once(email.id.clone())
                .chain(batch.as_slice().iter().map(|e| e.id.clone()))
                .collect();
            if !self.renew(held.clone()).await {
                break;
            }
            let outcome = self.send_renewing(&email, held).await;
            self.record(&email, outcome).await;
        }
        // Left leased when a renewal failed: their lease ends on its own.
        self.unstarted().clear();
        Ok(count)
    }

    /// Sends `email`, renewing the lease on `held` every third of it; gives
    /// up (transiently) when a renewal fails or the send takes longer than
    /// every SMTP command's timeout together.
    async fn send_renewing(&self, email: &OutboxEmail, held: Vec<String>) -> Result<(), SendError> {
        let cap = self.tuning.smtp_timeout.saturating_mul(SMTP_STEPS);
        let send = tokio::time::timeout(cap, self.deliver(email));
        tokio::pin!(send);
        let every = (self.tuning.lease / 3).max(Duration::from_millis(100));
        let mut beat = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                outcome = &mut send => {
                    return outcome.unwrap_or_else(|_| Err(SendError::Transient("sending timed out".into())));
                }
                _ = beat.tick() => {
                    if !self.renew(held.clone()).await {
                        return Err(SendError::Transient("the email's lease could not be renewed".into()));
                    }
                }
            }
        }
    }

    async fn deliver(&self, email: &OutboxEmail) -> Result<(), SendError> {
        let message_id = email.message_id();
        let message = compose(
            &self.from,
            &Outgoing {
                message_id: &message_id,
                to: &email.recipient,
                subject: &email.subject,
                text: &email.body_text,
                html: &email.body_html,
            },
            SystemTime::now(),
        )?;
        self.mailer.send(message).await
    }

    /// Writes the outcome; a database hiccup is retried a few times, since a sent
    /// email left unmarked would be sent again once its lease ends.
    async fn record(&self, email: &OutboxEmail, outcome: Result<(), SendError>) {
        let tuning = &self.tuning;
        let now = self.clock.now();
        let attempt = u32::try_from(email.attempts).unwrap_or(0).saturating_add(1);
        let (retry_at, error) = match &outcome {
            Ok(()) => {
                self.metrics.sent.inc();
                tracing::info!(email = %email.id, attempt, "email sent");
                (None, None)
            }
            Err(error) => {
                let give_up = error.is_permanent() || attempt >= tuning.max_attempts;
                self.metrics.count_failure(if error.is_permanent() {
                    "permanent"
                } else {
                    "transient"
                });
                let retry_at = if give_up {
                    tracing::error!(email = %email.id, attempt, %error, "email given up");
                    None
                } else {
                    let delay = backoff(attempt, tuning.retry_base, tuning.retry_cap, jitter());
                    tracing::warn!(email = %email.id, attempt, %error, retry_in = ?delay, "email not sent; will retry");
                    Some(
                        now + chrono::Duration::from_std(delay)
                            .unwrap_or(chrono::Duration::minutes(10)),
                    )
                };
                (retry_at, Some(error.to_string()))
            }
        };
        // Real pauses: they wait for the database to recover, not for the clock.
        let mut failed = None;
        for pause in [0u64, 200, 1000, 5000] {
            tokio::time::sleep(Duration::from_millis(pause)).await;
            let id = email.id.clone();
            let error = error.clone();
            let written = self
                .db(move |conn| {
                    match error {
                        None => outbox::mark_sent(conn, &id, now),
                        Some(e) => outbox::mark_failed_attempt(conn, &id, &e, retry_at, now),
                    }
                    .map_err(TaskError::from)
                })
                .await;
            match written {
                Ok(()) => return,
                Err(e) => {
                    tracing::debug!(email = %email.id, error = %e, "email outbox: could not record the outcome; trying again");
                    failed = Some(e);
                }
            }
        }
        // Said once, and only while the database answers others: during an
        // outage the pool has said so already (one line for the outage).
        if let Some(error) = failed {
            self.db_warning(
                &error,
                "could not record an email's outcome; it is tried again when its lease ends",
            );
        }
    }
}

/// A random number in [0, 1).
fn jitter() -> f64 {
    let mut bytes = [0u8; 8];
    crate::random::fill(&mut bytes);
    (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64
}

/// The delay before attempt `attempt + 1`: `base * 2^(attempt-1)`, capped,
/// with "equal jitter" (half fixed, half random) so that many emails failing
/// together do not retry in lockstep.
pub fn backoff(attempt: u32, base: Duration, cap: Duration, jitter: f64) -> Duration {
    let exponent = attempt.saturating_sub(1).min(31);
    let full = base.saturating_mul(1u32 << exponent).min(cap);
    full / 2 + full.mul_f64(0.5 * jitter.clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let cap = Duration::from_secs(600);
        let upper: Vec<u64> = (1..=12)
            .map(|a| backoff(a, S, cap, 1.0).as_secs())
            .collect();
        assert_eq!(upper, [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 600, 600]);
        assert_eq!(backoff(3, S, cap, 0.0), Duration::from_secs(2));
        assert_eq!(backoff(u32::MAX, S, cap, 0.5), Duration::from_secs(450));
        assert_eq!(backoff(0, S, cap, 1.0), S);
    }

    #[test]
    fn jitter_stays_within_half_to_full() {
        for _ in 0..1000 {
            let j = jitter();
            assert!((0.0..1.0).contains(&j));
            let d = backoff(5, S, Duration::from_secs(600), j);
            assert!(
                d >= Duration::from_secs(8) && d <= Duration::from_secs(16),
                "{d:?}"
            );
        }
    }
}
