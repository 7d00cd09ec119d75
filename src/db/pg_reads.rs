//! The warm token path's one read on PostgreSQL, without the blocking pool
//! and shared by the requests that wait for it.
//!
//! Every warm token request needs the change epochs (and, when a failure
//! was counted since its client was last found unthrottled, the client's
//! throttle rows). Through the pool that is a hop to a blocking thread and
//! back around one round trip, per request. Here each async worker thread
//! keeps one `tokio-postgres` connection of its own, with the two
//! statements prepared once, and its requests take **rounds**: a request
//! joins the next round to start, never one already in flight, so what it
//! reads was read after it arrived, and a change committed before it
//! arrived, by any process, is seen (the guarantee the epochs exist for).
//! A round reads the epochs once for every request in it, then the
//! throttle rows of those that need them in one more statement. Under load
//! a round serves dozens of requests with two statements; alone a request
//! costs one round trip, as before.
//!
//! Anything unusual (no connection yet while the database is known to be
//! down, a failed or slow round, a URL this client cannot honour) answers
//! `None`, and the caller reads through the pool as before: its
//! connections wait, reconnect, and report an outage once. A connection
//! found closed is replaced and the round read again at once (a read
//! changes nothing), as the pool does.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use chrono::NaiveDateTime;
use tokio::sync::oneshot;
use tokio_postgres::{Client, Config, NoTls, Statement};

use super::epochs;
use super::fresh::{ANY_CLIENT, Fresh, Probe, ThrottleProbe, ThrottleRow};
use super::pg_tls::{self, Connector, Surroundings};
use super::reachability::Reachability;

/// A round that takes longer than this is abandoned: its requests read
/// through the pool, which tells an outage from a slow moment.
const ROUND_TIMEOUT: Duration = Duration::from_secs(1);
/// After a failed connection attempt, none for this long.
const RECONNECT_AFTER: Duration = Duration::from_millis(250);

const EPOCHS_SQL: &str = "SELECT id, n FROM change_epochs";
/// The live throttle rows of several (subject, address) pairs at once; the
/// caller keeps those of its own pairs.
const THROTTLE_SQL: &str = "SELECT subject, addr, window_start, failures FROM auth_throttle \
     WHERE addr = ANY($1) AND subject = ANY($2) AND window_start > $3";
/// Which of several tokens are revoked (introspection asks).
const REVOKED_SQL: &str = "SELECT jti FROM revoked_tokens WHERE jti = ANY($1)";

/// Why a round read nothing.
#[derive(Debug, thiserror::Error)]
enum RoundError {
    #[error(transparent)]
    Postgres(#[from] tokio_postgres::Error),
    #[error("the change epochs are missing")]
    NoEpochs,
}

/// The per-worker connections and their rounds; one per pool.
pub struct PgReads {
    config: Config,
    connector: Connector,
    reachability: Arc<Reachability>,
    /// Shared with the pool's manager: a connection found dead here means
    /// the server went away, and the pool pings its own before use.
    losses: Arc<AtomicU64>,
    workers: Mutex<Vec<(ThreadId, Arc<Worker>)>>,
    counts: Counts,
}

/// Reads answered by rounds, and the rounds that answered them.
#[derive(Debug, Default)]
pub struct Counts {
    pub reads: AtomicU64,
    pub rounds: AtomicU64,
}

#[derive(Default)]
struct Worker {
    state: Mutex<WorkerState>,
}

#[derive(Default)]
struct WorkerState {
    conn: Option<Arc<Prepared>>,
    /// No connection attempt before this.
    quiet_until: Option<Instant>,
    pending: Vec<Pending>,
    /// A task is running this worker's rounds.
    running: bool,
}

struct Pending {
    probe: Probe,
    reply: oneshot::Sender<Option<Fresh>>,
}

struct Prepared {
    client: Client,
    epochs: Statement,
    throttle: Statement,
    revoked: Statement,
}

impl PgReads {
    /// The reads for `url`, over TLS as libpq would connect to it
    /// (`super::pg_tls`), or `None` when only libpq can: then the pool
    /// keeps every read.
    pub fn new(
        url: &str,
        around: &Surroundings,
        reachability: Arc<Reachability>,
        losses: Arc<AtomicU64>,
    ) -> Option<Self> {
        let (mut config, connector) = match pg_tls::plan(url, around) {
            Ok(plan) => plan,
            Err(reason) => {
                tracing::info!(%reason, "warm-path reads go through the pool");
                return None;
            }
        };
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(ROUND_TIMEOUT);
        }
        config.application_name("keygate warm reads");
        Some(Self {
            config,
            connector,
            reachability,
            losses,
            workers: Mutex::new(Vec::new()),
            counts: Counts::default(),
        })
    }

    /// The epochs (and what the probe asks) as read by a round that
    /// started after this call, or `None`: read through the pool instead.
    pub async fn read(self: &Arc<Self>, probe: Probe) -> Option<Fresh> {
        let worker = self.worker();
        let (reply, answer) = oneshot::channel();
        let start = {
            let mut state = worker.state.lock().unwrap_or_else(PoisonError::into_inner);
            if state.conn.is_none() && !self.may_connect(&state) {
                return None;
            }
            state.pending.push(Pending { probe, reply });
            !std::mem::replace(&mut state.running, true)
        };
        if start {
            tokio::spawn(Arc::clone(self).rounds(worker));
        }
        answer.await.ok().flatten()
    }

    /// How many reads rounds answered, and in how many rounds.
    pub fn counts(&self) -> (u64, u64) {
        (
            self.counts.reads.load(Ordering::Relaxed),
            self.counts.rounds.load(Ordering::Relaxed),
        )
    }

    /// This thread's worker: its connection and rounds.
    fn worker(&self) -> Arc<Worker> {
        let me = std::thread::current().id();
        let mut workers = self.workers.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, worker)) = workers.iter().find(|(id, _)| *id == me) {
            return Arc::clone(worker);
        }
        let worker = Arc::<Worker>::default();
        workers.push((me, Arc::clone(&worker)));
        worker
    }

    fn may_connect(&self, state: &WorkerState) -> bool {
        !self.reachability.is_down() && state.quiet_until.is_none_or(|t| Instant::now() >= t)
    }

    /// Runs rounds while requests wait; each round takes every request
    /// that arrived before it started.
    async fn rounds(self: Arc<Self>, worker: Arc<Worker>) {
        loop {
            let batch = {
                let mut state = worker.state.lock().unwrap_or_else(PoisonError::into_inner);
                if state.pending.is_empty() {
                    state.running = false;
                    return;
                }
                std::mem::take(&mut state.pending)
            };
            let probes: Vec<&Probe> = batch.iter().map(|p| &p.probe).collect();
            let answers =
                match tokio::time::timeout(ROUND_TIMEOUT, self.round(&worker, &probes)).await {
                    Ok(Ok(answers)) => {
                        self.reachability.reachable();
                        Some(answers)
                    }
                    Ok(Err(error)) => {
                        tracing::debug!(%error, "warm-path read failed; reading through the pool");
                        None
                    }
                    Err(_) => {
                        tracing::debug!("warm-path read too slow; reading through the pool");
                        self.drop_connection(&worker);
                        None
                    }
                };
            match answers {
                Some(answers) => {
                    self.counts.rounds.fetch_add(1, Ordering::Relaxed);
                    let reads = u64::try_from(answers.len()).unwrap_or(u64::MAX);
                    self.counts.reads.fetch_add(reads, Ordering::Relaxed);
                    for (pending, fresh) in batch.into_iter().zip(answers) {
                        let _ = pending.reply.send(Some(fresh));
                    }
                }
                None => {
                    for pending in batch {
                        let _ = pending.reply.send(None);
                    }
                }
            }
        }
    }

    /// One round for `probes`, on this worker's connection; a connection
    /// found closed is replaced and the round read again once.
    async fn round(&self, worker: &Worker, probes: &[&Probe]) -> Result<Vec<Fresh>, RoundError> {
        let conn = self.connection(worker).await?;
        match read_round(&conn, probes).await {
            // Not the server's answer to the query: the connection is gone.
            Err(RoundError::Postgres(error)) if error.as_db_error().is_none() => {
                tracing::debug!(%error, "the warm-path connection was found closed; reading again");
                self.lost_connection(worker);
                let conn = self.connection(worker).await?;
                read_round(&conn, probes).await
            }
            other => other,
        }
    }

    async fn connection(&self, worker: &Worker) -> Result<Arc<Prepared>, tokio_postgres::Error> {
        {
            let state = worker.state.lock().unwrap_or_else(PoisonError::into_inner);
            match &state.conn {
                Some(conn) if !conn.client.is_closed() => return Ok(Arc::clone(conn)),
                // The server restarted, or a proxy dropped it.
                Some(_) => {
                    tracing::debug!(
                        "the warm-path connection was found closed; reading again on a new one"
                    );
                    self.losses.fetch_add(1, Ordering::Relaxed);
                }
                None => {}
            }
        }
        match self.connect().await {
            Ok(conn) => {
                let conn = Arc::new(conn);
                let mut state = worker.state.lock().unwrap_or_else(PoisonError::into_inner);
                state.conn = Some(Arc::clone(&conn));
                state.quiet_until = None;
                Ok(conn)
            }
            Err(error) => {
                let mut state = worker.state.lock().unwrap_or_else(PoisonError::into_inner);
                state.conn = None;
                state.quiet_until = Some(Instant::now() + RECONNECT_AFTER);
                Err(error)
            }
        }
    }

    async fn connect(&self) -> Result<Prepared, tokio_postgres::Error> {
        let client = match &self.connector {
            Connector::Plain => {
                let (client, connection) = self.config.connect(NoTls).await?;
                tokio::spawn(drive(connection));
                client
            }
            Connector::Tls(tls) => {
                let (client, connection) = self.config.connect(tls.clone()).await?;
                tokio::spawn(drive(connection));
                client
            }
        };
        let epochs = client.prepare(EPOCHS_SQL).await?;
        let throttle = client.prepare(THROTTLE_SQL).await?;
        let revoked = client.prepare(REVOKED_SQL).await?;
        Ok(Prepared {
            client,
            epochs,
            throttle,
            revoked,
        })
    }

    /// Drops this worker's connection, found dead, and tells the pool.
    fn lost_connection(&self, worker: &Worker) {
        self.losses.fetch_add(1, Ordering::Relaxed);
        self.drop_connection(worker);
    }

    fn drop_connection(&self, worker: &Worker) {
        let mut state = worker.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.conn = None;
    }
}

/// Runs a connection's I/O until it ends.
async fn drive<F: std::future::Future<Output = Result<(), tokio_postgres::Error>>>(connection: F) {
    if let Err(error) = connection.await {
        tracing::debug!(%error, "the warm-path connection ended");
    }
}

/// The epochs, then the throttle rows of the probes whose failure epoch
/// moved, then the revocations asked, in that order on one connection: the
/// rows reflect at least every failure the epoch read counts.
async fn read_round(conn: &Prepared, probes: &[&Probe]) -> Result<Vec<Fresh>, RoundError> {
    let rows = conn.client.query(&conn.epochs, &[]).await?;
    let epochs = epochs::from_rows(
        rows.iter()
            .map(|r| (r.get::<_, i32>(0), r.get::<_, i64>(1))),
    )
    .ok_or(RoundError::NoEpochs)?;
    let needed: Vec<&ThrottleProbe> = probes
        .iter()
        .filter_map(|p| p.throttle.as_ref())
        .filter(|p| p.needed(epochs.failures))
        .collect();
    let rows: Vec<(String, String, NaiveDateTime, i32)> = match needed.iter().map(|p| p.after).min()
    {
        None => Vec::new(),
        Some(after) => {
            let mut addrs: Vec<&str> = needed.iter().map(|p| p.addr.as_str()).collect();
            let mut subjects: Vec<&str> = needed.iter().map(|p| p.subject.as_str()).collect();
            subjects.push(ANY_CLIENT);
            for list in [&mut addrs, &mut subjects] {
                list.sort_unstable();
                list.dedup();
            }
            conn.client
                .query(&conn.throttle, &[&addrs, &subjects, &after])
                .await?
                .iter()
                .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
                .collect()
        }
    };
    let mut jtis: Vec<&str> = probes.iter().filter_map(|p| p.revoked.as_deref()).collect();
    let revoked: Vec<String> = if jtis.is_empty() {
        Vec::new()
    } else {
        jtis.sort_unstable();
        jtis.dedup();
        conn.client
            .query(&conn.revoked, &[&jtis])
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect()
    };
    Ok(probes
        .iter()
        .map(|probe| Fresh {
            epochs,
            revoked: probe
                .revoked
                .as_ref()
                .map(|jti| revoked.iter().any(|r| r == jti)),
            throttle: probe
                .throttle
                .as_ref()
                .filter(|p| p.needed(epochs.failures))
                .map(|p| {
                    rows.iter()
                        .filter(|(subject, addr, start, _)| p.wants(subject, addr, *start))
                        .map(|(subject, _, start, failures)| -> ThrottleRow {
                            (subject.clone(), *start, *failures)
                        })
                        .collect()
                }),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_as_libpq_would_and_the_rest_left_to_the_pool() {
        let around = || Surroundings {
            env: Box::new(|_| None),
            home: None,
        };
        let reads = |url: &str| PgReads::new(url, &around(), Arc::default(), Arc::default());
        let url = "postgres://u:p@127.0.0.1:5432/db";
        let tls = |reads: Option<PgReads>| reads.map(|r| matches!(r.connector, Connector::Tls(_)));
        assert_eq!(tls(reads(url)), Some(true), "prefer");
        assert_eq!(tls(reads(&format!("{url}?sslmode=disable"))), Some(false));
        assert_eq!(tls(reads(&format!("{url}?sslmode=require"))), Some(true));
        assert_eq!(tls(reads(&format!("{url}?sslmode=allow"))), None);
        assert_eq!(tls(reads(&format!("{url}?sslcert=/c.crt"))), None);
    }

    #[test]
    fn a_round_keeps_each_probe_to_its_own_rows() {
        let after = chrono::DateTime::UNIX_EPOCH.naive_utc();
        let later = after + chrono::Duration::seconds(1);
        let probe = ThrottleProbe {
            subject: "kg_a".into(),
            addr: "192.0.2.1".into(),
            after,
            unless_failures: Some(4),
        };
        assert!(probe.wants("kg_a", "192.0.2.1", later));
        assert!(probe.wants(ANY_CLIENT, "192.0.2.1", later));
        assert!(!probe.wants("kg_b", "192.0.2.1", later), "another client");
        assert!(!probe.wants("kg_a", "192.0.2.2", later), "another address");
        assert!(!probe.wants("kg_a", "192.0.2.1", after), "a window over");
        assert!(!probe.needed(4) && probe.needed(5));
    }
}
