//! Delivers what the outbox holds: claims due deliveries with a lease (one
//! per endpoint at a time, so a receiver that stalls holds one slot and
//! never delays the others), posts each signed, records the outcome, and
//! retries on the contract's schedule. Bounded everywhere: 16 in flight per
//! process, 10 s per attempt, redirects not followed, at most a few KiB of
//! a response read.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;
use tokio::task::JoinSet;

use super::WebhookTuning;
use super::endpoint;
use super::health;
use super::outbox::{self, Attempt, Claimed};
use super::secret::WebhookSealer;
use crate::db::{DbConnection, Pool};
use crate::error::StoreError;
use crate::metrics::WebhookMetrics;
use crate::time::Clock;

/// The delays after each failed attempt (the contract's "about 5 s, 5 min,
/// 30 min, 2 h, 5 h, 10 h and 10 h"); after the last, the delivery is
/// given up.
pub const SCHEDULE: [Duration; 7] = [
    Duration::from_secs(5),
    Duration::from_secs(5 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(2 * 3600),
    Duration::from_secs(5 * 3600),
    Duration::from_secs(10 * 3600),
    Duration::from_secs(10 * 3600),
];

/// How long a worker owns a delivery it claimed: longer than an attempt
/// can take, so it needs no renewal; after a crash the delivery waits at
/// most this long.
const LEASE: Duration = Duration::from_secs(30);

/// The most of a response body read (for the delivery log); the rest is
/// dropped unread.
const MAX_RESPONSE_READ: usize = 4 * 1024;
/// The most of a response body kept in the delivery log.
const MAX_RESPONSE_KEPT: usize = 200;

/// A delivery task's failure outside the attempt itself.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct TaskError {
    message: String,
    /// The database could not be reached or used at that moment
    /// ([`StoreError::Unavailable`]).
    unavailable: bool,
}

impl TaskError {
    fn other(message: String) -> Self {
        Self {
            message,
            unavailable: false,
        }
    }
}

impl From<StoreError> for TaskError {
    fn from(e: StoreError) -> Self {
        Self {
            unavailable: matches!(e, StoreError::Unavailable(_)),
            message: e.to_string(),
        }
    }
}

crate::error::from_store_errors!(TaskError);

/// The delay before the attempt after `attempts` failed ones, jittered by
/// up to a tenth either way; `None` once the schedule is used up.
pub fn retry_delay(attempts: u32, jitter: f64) -> Option<Duration> {
    let index = usize::try_from(attempts.checked_sub(1)?).ok()?;
    let base = *SCHEDULE.get(index)?;
    Some(base.mul_f64(0.9 + 0.2 * jitter.clamp(0.0, 1.0)))
}

/// A random number in [0, 1).
fn jitter() -> f64 {
    let mut bytes = [0u8; 8];
    crate::random::fill(&mut bytes);
    (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64
}

/// The delivery worker of one process.
pub struct Dispatcher {
    pool: Pool,
    sealer: Arc<WebhookSealer>,
    client: reqwest::Client,
    tuning: WebhookTuning,
    metrics: WebhookMetrics,
    clock: Clock,
    /// Named in the "switched off" email.
    issuer: String,
    /// Deliveries this process holds a lease on: what it hands back when
    /// it stops before recording them.
    held: Mutex<Vec<String>>,
}

impl Dispatcher {
    pub fn new(
        pool: Pool,
        sealer: Arc<WebhookSealer>,
        tuning: WebhookTuning,
        metrics: WebhookMetrics,
        clock: Clock,
        issuer: String,
    ) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            // No `timeout` here: the attempt's own deadline (in `post`)
            // covers the whole exchange and says so in the delivery log;
            // the client's, racing it, left "operation timed out" instead.
            .connect_timeout(tuning.timeout)
            .user_agent(concat!("keygate-webhooks/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build the webhook HTTP client: {e}"))?;
        Ok(Self {
            pool,
            sealer,
            client,
            tuning,
            metrics,
            clock,
            issuer,
            held: Mutex::default(),
        })
    }

    fn held(&self) -> std::sync::MutexGuard<'_, Vec<String>> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }

    async fn db<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut DbConnection) -> Result<T, TaskError> + Send + 'static,
    ) -> Result<T, TaskError> {
        self.pool.run(work).await
    }

    /// A warning for a failure of the work itself. A database that could
    /// not be reached or used is the pool's to report, once per outage
    /// (`crate::db::reachability`): known by the failure's kind, not only by
    /// the pool's flag, which a failed new connection sets, since a
    /// connection lost under this query fails it before any new one has.
    fn db_warning(&self, error: &TaskError, what: &'static str) {
        if error.unavailable || !self.pool.is_reachable() {
            tracing::debug!(%error, "webhooks: {what}");
        } else {
            tracing::warn!(%error, "webhooks: {what}");
        }
    }

    /// Claims up to `free` due deliveries (none when `free` is 0).
    async fn claim(&self, free: usize) -> Result<Vec<Claimed>, TaskError> {
        let now = self.clock.now();
        let until =
            now + chrono::Duration::from_std(LEASE).unwrap_or(chrono::Duration::seconds(30));
        let claimed = self
            .db(move |conn| Ok(outbox::claim_due(conn, now, until, free)?))
            .await?;
        self.held().extend(claimed.iter().map(|c| c.id.clone()));
        Ok(claimed)
    }

    /// One round, for tests and `jobs`: claims what is due (up to the
    /// concurrency), delivers it all concurrently and records the
    /// outcomes; returns how many were attempted.
    pub async fn run_once(self: &Arc<Self>) -> Result<usize, TaskError> {
        let claimed = self.claim(self.tuning.concurrency).await?;
        let count = claimed.len();
        let mut set = JoinSet::new();
        for delivery in claimed {
            let this = Arc::clone(self);
            set.spawn(async move { this.attempt(delivery).await });
        }
        while set.join_next().await.is_some() {}
        self.refresh_gauges().await;
        Ok(count)
    }

    /// Delivers until `stop` turns true: keeps up to the concurrency in
    /// flight, claiming more as each finishes or every poll interval. At
    /// the stop, the deliveries in flight finish (each within its timeout).
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let mut set: JoinSet<()> = JoinSet::new();
        let mut gauges = tokio::time::interval(Duration::from_secs(5));
        gauges.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let stopping = *stop.borrow();
            if stopping {
                break;
            }
            let free = self.tuning.concurrency.saturating_sub(set.len());
            match self.claim(free).await {
                Ok(claimed) => {
                    for delivery in claimed {
                        let this = Arc::clone(&self);
                        set.spawn(async move { this.attempt(delivery).await });
                    }
                }
                Err(error) => self.db_warning(&error, "could not read the deliveries"),
            }
            let mut refresh = false;
            tokio::select! {
                Some(_) = set.join_next(), if !set.is_empty() => {}
                _ = tokio::time::sleep(self.tuning.poll_interval) => {}
                _ = gauges.tick() => refresh = true,
                changed = stop.changed() => {
                    if changed.is_err() {
                        break;
                    }
                }
            }
            if refresh {
                self.refresh_gauges().await;
            }
        }
        while set.join_next().await.is_some() {}
    }

    /// Gives back the leases of deliveries claimed and not recorded (the
    /// worker was abandoned at shutdown): due again at once, for any
    /// process. A receiver may have had one of them: it comes again with
    /// the same `webhook-id`.
    pub async fn release_held(&self) {
        let ids = std::mem::take(&mut *self.held());
        if ids.is_empty() {
            return;
        }
        let count = ids.len();
        match self.db(move |conn| Ok(outbox::release(conn, &ids)?)).await {
            Ok(()) => tracing::info!(count, "webhooks: handed back deliveries in flight"),
            Err(error) => self.db_warning(
                &error,
                "could not hand back deliveries in flight; they wait for their lease to end",
            ),
        }
    }

    async fn refresh_gauges(&self) {
        match self.db(|conn| Ok(outbox::pending(conn)?)).await {
            Ok((count, oldest)) => {
                self.metrics.pending.set(count);
                let age = oldest.map_or(0, |at| (self.clock.now() - at).num_seconds().max(0));
                self.metrics.oldest_pending_seconds.set(age);
            }
            Err(error) => self.db_warning(&error, "could not count pending deliveries"),
        }
    }

    /// One attempt at `delivery`, its outcome recorded.
    async fn attempt(&self, delivery: Claimed) {
        let endpoint_id = delivery.endpoint_id.clone();
        let target = self
            .db(move |conn| Ok(endpoint::delivery_target(conn, &endpoint_id)?))
            .await;
        let (url, sealed) = match target {
            Ok(Some(target)) => target,
            // Switched off or removed since the claim: nothing to send.
            Ok(None) => return self.forget(&delivery.id),
            Err(error) => {
                self.db_warning(
                    &error,
                    "could not read an endpoint; its delivery waits for its lease",
                );
                return self.forget(&delivery.id);
            }
        };
        let outcome = match self.sealer.open(&delivery.endpoint_id, &sealed) {
            Ok(secret) => self.post(&url, &delivery, &secret).await,
            Err(_) => Attempt {
                status: None,
                error: Some(
                    "the signing secret could not be opened (was KEYGATE_SECRET_KEY changed?)"
                        .into(),
                ),
            },
        };
        self.record(&delivery, outcome).await;
        self.forget(&delivery.id);
    }

    fn forget(&self, id: &str) {
        self.held().retain(|held| held != id);
    }

    async fn post(&self, url: &str, delivery: &Claimed, secret: &super::SigningSecret) -> Attempt {
        // The wall clock, not the (test) clock: receivers compare it with theirs.
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        let signature = secret.sign(&delivery.id, timestamp, &delivery.body);
        let request = self
            .client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("webhook-id", &delivery.id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(delivery.body.clone());
        let exchange = async {
            let mut response = request.send().await?;
            let status = response.status();
            let mut head = Vec::new();
            while head.len() < MAX_RESPONSE_READ {
                match response.chunk().await? {
                    Some(chunk) => head.extend_from_slice(&chunk),
                    None => break,
                }
            }
            Ok::<_, reqwest::Error>((status, head))
        };
        match tokio::time::timeout(self.tuning.timeout, exchange).await {
            Err(_) => Attempt {
                status: None,
                error: Some(format!(
                    "no answer within {} s",
                    self.tuning.timeout.as_secs()
                )),
            },
            Ok(Err(error)) => Attempt {
                status: None,
                error: Some(describe(&error)),
            },
            Ok(Ok((status, _))) if status.is_success() => Attempt {
                status: Some(status.as_u16()),
                error: None,
            },
            Ok(Ok((status, head))) => {
                let text = String::from_utf8_lossy(&head);
                let excerpt: String = text
                    .chars()
                    .filter(|c| !c.is_control())
                    .take(MAX_RESPONSE_KEPT)
                    .collect();
                let error = if status.is_redirection() {
                    format!("HTTP {status}: redirects are not followed")
                } else if excerpt.trim().is_empty() {
                    format!("HTTP {status}")
                } else {
                    format!("HTTP {status}: {excerpt}")
                };
                Attempt {
                    status: Some(status.as_u16()),
                    error: Some(error),
                }
            }
        }
    }

    async fn record(&self, delivery: &Claimed, attempt: Attempt) {
        let now = self.clock.now();
        let attempts = u32::try_from(delivery.attempts)
            .unwrap_or(0)
            .saturating_add(1);
        let retry_at = if attempt.delivered() {
            None
        } else {
            retry_delay(attempts, jitter())
                .map(|d| now + chrono::Duration::from_std(d).unwrap_or(chrono::Duration::hours(10)))
        };
        let outcome = match (attempt.delivered(), retry_at) {
            (true, _) => "delivered",
            (false, Some(_)) => "retried",
            (false, None) => "failed",
        };
        self.metrics.count(outcome);
        match outcome {
            "delivered" => {
                tracing::info!(delivery = %delivery.id, event = %delivery.event_type, attempt = attempts, "webhook delivered")
            }
            "retried" => {
                tracing::warn!(delivery = %delivery.id, attempt = attempts, error = attempt.error.as_deref().unwrap_or(""), "webhook not delivered; will retry")
            }
            _ => {
                tracing::error!(delivery = %delivery.id, attempt = attempts, error = attempt.error.as_deref().unwrap_or(""), "webhook given up")
            }
        }
        let claimed = delivery.clone();
        let issuer = self.issuer.clone();
        let written = self
            .db(move |conn| {
                let failing_since =
                    outbox::record_attempt(conn, &claimed, &attempt, retry_at, now)?;
                if let Some(since) = failing_since {
                    health::switch_off_if_failing(conn, &claimed.endpoint_id, since, &issuer, now)
                        .map_err(|e| TaskError::other(e.to_string()))?;
                }
                Ok(())
            })
            .await;
        if let Err(error) = written {
            self.db_warning(
                &error,
                "could not record a delivery's outcome; it is tried again when its lease ends",
            );
        }
    }
}

/// A transport failure in words, without the URL (its query may carry
/// something the admin would rather not see in logs).
fn describe(error: &reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "could not connect"
    } else if error.is_body() || error.is_decode() {
        "the answer broke off"
    } else {
        "the request failed"
    };
    let mut cause: &dyn std::error::Error = error;
    while let Some(next) = cause.source() {
        cause = next;
    }
    format!("{kind}: {cause}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_follow_the_contracts_schedule_then_stop() {
        let mid: Vec<u64> = (1..=7)
            .map(|a| retry_delay(a, 0.5).expect("scheduled").as_secs())
            .collect();
        assert_eq!(mid, [5, 300, 1800, 7200, 18000, 36000, 36000]);
        assert_eq!(retry_delay(8, 0.5), None);
        assert_eq!(retry_delay(0, 0.5), None);
        assert_eq!(retry_delay(1, 0.0), Some(Duration::from_millis(4500)));
        assert_eq!(retry_delay(1, 1.0), Some(Duration::from_millis(5500)));
    }
}
