//! Background jobs: email delivery, the expiry sweep, throttle, revocation
//! and session pruning, keyring refresh. Each is one run on what it uses (the
//! pool, the clock, and its own pieces), never the request handlers' state.
//! `serve` runs them on timers; tests run them once, when they choose, so no
//! test waits for a timer.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::client_auth::throttle::ThrottlePolicy;
use crate::db::{DbConnection, Pool};
use crate::duration::HumanDuration;
use crate::mail::{self, Delivery, worker::BATCH};
use crate::signing::Signer;
use crate::time::Clock;
use crate::webhooks::Dispatcher;
use crate::{access_token, accounts, keys};

/// How often each process re-reads the signing keys: a rotation made
/// elsewhere reaches it within this interval.
const KEYRING_REFRESH: Duration = Duration::from_secs(2);
const THROTTLE_PRUNE: Duration = Duration::from_secs(60);
/// How often revoked token IDs whose tokens have expired are dropped.
const REVOKED_TOKENS_PRUNE: Duration = Duration::from_secs(60);
/// How often the `jti`s of expired client assertions are dropped.
const ASSERTION_JTI_PRUNE: Duration = Duration::from_secs(60);
/// How often ended sessions and expired links are dropped.
const SESSIONS_PRUNE: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Job {
    /// One claim-and-send round of the email outbox.
    MailDelivery,
    /// One round of webhook deliveries: what is due, concurrently.
    WebhookDelivery,
    /// Queues "expires soon" and "expired" emails that are due.
    ExpirySweep,
    /// Denies the requests for approval undecided for 7 days.
    UndecidedRequests,
    /// Drops authentication-throttle windows that have ended.
    ThrottlePrune,
    /// Drops revoked token IDs whose tokens have expired.
    RevokedTokensPrune,
    /// Re-reads the signing keys (a rotation made by another process).
    KeyringRefresh,
    /// Drops console sessions that have ended and links that have expired.
    SessionsPrune,
    /// Drops the `jti`s of client assertions that have expired.
    AssertionJtiPrune,
}

impl Job {
    pub fn name(self) -> &'static str {
        match self {
            Job::MailDelivery => "mail_delivery",
            Job::WebhookDelivery => "webhook_delivery",
            Job::ExpirySweep => "expiry_sweep",
            Job::UndecidedRequests => "undecided_requests",
            Job::ThrottlePrune => "throttle_prune",
            Job::RevokedTokensPrune => "revoked_tokens_prune",
            Job::KeyringRefresh => "keyring_refresh",
            Job::SessionsPrune => "sessions_prune",
            Job::AssertionJtiPrune => "assertion_jti_prune",
        }
    }
}

/// A job run's failure, logged and retried at the next run.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct JobError(String);

impl From<mail::TaskError> for JobError {
    fn from(e: mail::TaskError) -> Self {
        Self(e.to_string())
    }
}

impl From<crate::http::error::AppError> for JobError {
    fn from(e: crate::http::error::AppError) -> Self {
        Self(e.to_string())
    }
}

impl From<crate::error::StoreError> for JobError {
    fn from(e: crate::error::StoreError) -> Self {
        Self(e.to_string())
    }
}

crate::error::from_store_errors!(JobError);

/// What the jobs run on.
pub struct JobsSetup {
    pub pool: Pool,
    pub clock: Clock,
    pub delivery: Delivery,
    pub expiry_warning: HumanDuration,
    /// Named in the expiry emails.
    pub issuer: String,
    pub sweep_interval: Duration,
    pub throttle: ThrottlePolicy,
    pub signer: Arc<Signer>,
    /// `KEYGATE_SESSION_IDLE`: sessions idle this long are over.
    pub session_idle: HumanDuration,
    pub webhooks: Arc<Dispatcher>,
}

/// The jobs of one server; cheap to clone.
#[derive(Clone)]
pub struct Jobs(Arc<JobsSetup>, Arc<Shutdown>);

/// How the periodic jobs are told to stop, and the email worker's task, to
/// wait for.
struct Shutdown {
    requested: watch::Sender<bool>,
    mail_worker: Mutex<Option<JoinHandle<()>>>,
    webhook_worker: Mutex<Option<JoinHandle<()>>>,
}

impl Jobs {
    pub fn new(setup: JobsSetup) -> Self {
        let shutdown = Shutdown {
            requested: watch::Sender::new(false),
            mail_worker: Mutex::default(),
            webhook_worker: Mutex::default(),
        };
        Self(Arc::new(setup), Arc::new(shutdown))
    }

    /// Stops the periodic jobs: none starts another run, and the email
    /// worker finishes the email it is sending and hands the others back
    /// (see [`stopped`](Self::stopped)).
    pub fn stop(&self) {
        self.1.requested.send_replace(true);
        self.0.delivery.stop();
    }

    /// Waits up to `timeout` for the email worker to finish after
    /// [`stop`](Self::stop). Past it, the worker is abandoned: the emails it
    /// had not started are handed back, and the one it was sending keeps
    /// its lease (the server may have accepted it), so it is retried once
    /// the lease ends.
    pub async fn stopped(&self, timeout: Duration) {
        let webhooks = self
            .1
            .webhook_worker
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let deadline = tokio::time::Instant::now() + timeout;
        self.stop_mail_worker(timeout).await;
        if let Some(mut worker) = webhooks {
            if tokio::time::timeout_at(deadline, &mut worker)
                .await
                .is_err()
            {
                worker.abort();
                tracing::warn!(
                    ?timeout,
                    "webhooks: still delivering at shutdown; handing back what is in flight"
                );
            }
            // What an abandoned worker held (nothing after a clean finish).
            self.0.webhooks.release_held().await;
        }
    }

    async fn stop_mail_worker(&self, timeout: Duration) {
        let worker = self
            .1
            .mail_worker
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let Some(mut worker) = worker else {
            return;
        };
        if tokio::time::timeout(timeout, &mut worker).await.is_err() {
            worker.abort();
            tracing::warn!(
                ?timeout,
                "email outbox: still sending at shutdown; that email is retried when its lease ends"
            );
            self.0.delivery.release_unstarted().await;
        }
    }

    /// Runs `job` once, now (by the clock), inside a span named after it;
    /// returns how much it did (emails handled or queued, rows pruned, 1 if
    /// the keyring changed).
    pub async fn run_once(&self, job: Job) -> Result<usize, JobError> {
        let span = tracing::info_span!("job", job = job.name());
        async {
            let result = self.run(job).await;
            // While the database is down the pool has said so once; each
            // job failing on it every few seconds would repeat it.
            report(job, &result, !self.0.pool.is_reachable());
            result
        }
        .instrument(span)
        .await
    }

    async fn run(&self, job: Job) -> Result<usize, JobError> {
        let setup = &*self.0;
        let pool = &setup.pool;
        let now = setup.clock.now();
        match job {
            Job::MailDelivery => Ok(setup.delivery.run_once().await?),
            Job::WebhookDelivery => Ok(setup
                .webhooks
                .run_once()
                .await
                .map_err(|e| JobError(e.to_string()))?),
            Job::ExpirySweep => {
                let warning = setup.expiry_warning;
                let issuer = setup.issuer.clone();
                on_pool(pool, move |conn| {
                    Ok(keys::expiry::sweep(conn, warning, &issuer, now)
                        .map_err(crate::http::error::AppError::from)?)
                })
                .await
            }
            Job::UndecidedRequests => {
                // Denying needs no key limits: only the issuer its emails name.
                let limits = keys::KeyLimits {
                    max_lifetime: None,
                    expiry_warning: setup.expiry_warning,
                    max_keys_per_user: None,
                };
                let service = keys::Service::new(setup.issuer.clone(), limits);
                on_pool(pool, move |conn| {
                    Ok(service
                        .deny_undecided(conn, now)
                        .map_err(crate::http::error::AppError::from)?)
                })
                .await
            }
            Job::ThrottlePrune => {
                let throttle = setup.throttle;
                on_pool(pool, move |conn| Ok(throttle.prune(conn, now)?)).await
            }
            Job::RevokedTokensPrune => {
                on_pool(pool, move |conn| {
                    Ok(access_token::prune_revoked_tokens(conn, now)?)
                })
                .await
            }
            Job::AssertionJtiPrune => {
                on_pool(pool, move |conn| {
                    Ok(crate::client_auth::jti::prune(conn, now)?)
                })
                .await
            }
            Job::SessionsPrune => {
                let idle = setup.session_idle.as_chrono();
                on_pool(pool, move |conn| Ok(accounts::prune(conn, idle, now)?)).await
            }
            Job::KeyringRefresh => {
                let signer = Arc::clone(&setup.signer);
                on_pool(pool, move |conn| {
                    let changed = signer
                        .refresh(conn, now)
                        .map_err(|e| JobError(e.to_string()))?;
                    Ok(usize::from(changed))
                })
                .await
            }
        }
    }

    /// Starts every job on its timer, as `serve` does; each first runs at
    /// once.
    pub fn spawn_periodic(&self) {
        tracing::info!(transport = %self.0.delivery.describe(), "email outbox worker started");
        let sweep_interval = self.0.sweep_interval;
        for (job, every, delay) in [
            (Job::KeyringRefresh, KEYRING_REFRESH, true),
            (Job::RevokedTokensPrune, REVOKED_TOKENS_PRUNE, false),
            (Job::ThrottlePrune, THROTTLE_PRUNE, false),
            (Job::SessionsPrune, SESSIONS_PRUNE, false),
            (Job::AssertionJtiPrune, ASSERTION_JTI_PRUNE, false),
            (Job::ExpirySweep, sweep_interval, true),
            (Job::UndecidedRequests, sweep_interval, true),
        ] {
            let jobs = self.clone();
            let mut stop = self.1.requested.subscribe();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(every);
                if delay {
                    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                }
                loop {
                    tokio::select! {
                        _ = tick.tick() => {}
                        _ = stop.wait_for(|stop| *stop) => return,
                    }
                    // Failures are logged by `run_once` and retried next tick.
                    let _ = jobs.run_once(job).await;
                }
            });
        }
        let jobs = self.clone();
        let mut stop = self.1.requested.subscribe();
        let worker = tokio::spawn(async move {
            let poll = jobs.0.delivery.poll_interval();
            while !*stop.borrow() {
                // A round under way when the stop comes finishes its email
                // and hands the rest back (`Delivery::stop`).
                let handled = jobs.run_once(Job::MailDelivery).await.unwrap_or(0);
                if handled < BATCH {
                    tokio::select! {
                        _ = tokio::time::sleep(poll) => {}
                        _ = stop.wait_for(|stop| *stop) => return,
                    }
                }
            }
        });
        *self
            .1
            .mail_worker
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(worker);
        let webhooks = Arc::clone(&self.0.webhooks);
        let worker = tokio::spawn(webhooks.run(self.1.requested.subscribe()));
        *self
            .1
            .webhook_worker
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(worker);
    }
}

fn report(job: Job, result: &Result<usize, JobError>, database_down: bool) {
    if let (true, Err(error)) = (database_down, result) {
        tracing::debug!(%error, "job failed while the database is unreachable");
        return;
    }
    match (job, result) {
        (Job::MailDelivery, Err(error)) => {
            tracing::warn!(%error, "email outbox: could not read the outbox")
        }
        (Job::WebhookDelivery, Err(error)) => {
            tracing::warn!(%error, "webhooks: could not read the deliveries")
        }
        (Job::ExpirySweep, Ok(0)) => {}
        (Job::ExpirySweep, Ok(queued)) => tracing::info!(queued, "expiry sweep queued emails"),
        (Job::ExpirySweep, Err(error)) => tracing::warn!(%error, "expiry sweep failed"),
        (Job::UndecidedRequests, Ok(0)) => {}
        (Job::UndecidedRequests, Ok(denied)) => {
            tracing::info!(denied, "denied requests for approval undecided for 7 days");
        }
        (Job::UndecidedRequests, Err(error)) => {
            tracing::warn!(%error, "denying undecided requests failed");
        }
        (Job::ThrottlePrune, Err(error)) => {
            tracing::warn!(%error, "could not prune the authentication throttle")
        }
        (Job::RevokedTokensPrune, Ok(0)) => {}
        (Job::RevokedTokensPrune, Ok(n)) => tracing::debug!(n, "pruned expired revoked token IDs"),
        (Job::RevokedTokensPrune, Err(error)) => {
            tracing::warn!(%error, "could not prune revoked token IDs")
        }
        (Job::AssertionJtiPrune, Err(error)) => {
            tracing::warn!(%error, "could not prune client assertion jtis")
        }
        (Job::SessionsPrune, Err(error)) => {
            tracing::warn!(%error, "could not prune ended sessions and expired links")
        }
        (Job::KeyringRefresh, Ok(1)) => tracing::info!("signing keys changed; keyring reloaded"),
        (Job::KeyringRefresh, Err(error)) => {
            tracing::warn!(%error, "could not refresh the signing keys")
        }
        _ => {}
    }
}

/// Runs blocking database work on the blocking pool.
async fn on_pool<T: Send + 'static>(
    pool: &Pool,
    work: impl FnOnce(&mut DbConnection) -> Result<T, JobError> + Send + 'static,
) -> Result<T, JobError> {
    pool.run(work).await
}
