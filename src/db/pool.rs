//! The r2d2 pool: checkouts that give up promptly while the database is
//! down, blocking work kept off the async workers, short SQLite reads on
//! the calling thread, and a shutdown that waits for connection attempts.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use diesel::r2d2;

use super::connection::{DbConnection, DbError, connect_one, one_line};
use super::database_url::DatabaseUrl;
use super::fresh::{self, Fresh, Probe, ThrottleProbe};
use super::gate::ConnectGate;
use super::inline::InlineReads;
use super::manager::Manager;
use super::pg_reads::PgReads;
use super::pg_tls;
use super::reachability::Reachability;
use super::sqlite_file::SqliteFile;

/// How long a checkout waits for a connection, on the request path and in
/// the background jobs alike. A healthy pool hands one out in microseconds
/// (an idle connection) or a few milliseconds (a new one, SCRAM login
/// included); it makes a caller wait only when every connection is busy,
/// and a token request holds one for about a millisecond, so a second is a
/// thousand times the normal wait: past it the database is unreachable or
/// overloaded, and a client is better served by a prompt 503 with
/// `Retry-After` (to retry, or to try another instance) than by a request
/// that hangs for r2d2's default 30 s or libpq's connect timeout. It also
/// bounds r2d2's reconnection back-off (half of it), so a database that
/// returns is found again within half a second.
pub const CHECKOUT_TIMEOUT: Duration = Duration::from_secs(1);

pub type PooledConnection = r2d2::PooledConnection<Manager>;

/// Whether a query failed because the connection is gone.
fn is_closed_connection(error: &diesel::result::Error) -> bool {
    use diesel::result::{DatabaseErrorKind as Kind, Error};
    matches!(
        error,
        Error::DatabaseError(Kind::ClosedConnection | Kind::UnableToSendCommand, _)
    )
}

/// The r2d2 pool and the gate its connection attempts pass; cheap to clone.
#[derive(Clone)]
pub struct Pool {
    inner: r2d2::Pool<Manager>,
    gate: Arc<ConnectGate>,
    sqlite_file: Option<SqliteFile>,
    reachability: Arc<Reachability>,
    /// SQLite only: reads that need no hop to the blocking pool.
    inline: Option<Arc<InlineReads>>,
    /// SQLite only: taken by [`Pool::write`], so this process's short writes
    /// queue here in order instead of meeting SQLite's write lock and
    /// sleeping in its busy handler.
    sqlite_writer: Option<Arc<std::sync::Mutex<()>>>,
    /// PostgreSQL only: the warm path's reads on each worker's own
    /// connection, shared by the requests waiting for them.
    pg_reads: Option<Arc<PgReads>>,
}

impl Pool {
    /// A connection from the pool, waiting up to [`CHECKOUT_TIMEOUT`]. While
    /// the database is known to be down (the last connection attempt
    /// failed) or the SQLite file is gone, an idle connection that still
    /// answers is used but none is waited for: the caller's 503 comes at
    /// once, and r2d2 goes on reconnecting in the background.
    pub fn get(&self) -> Result<PooledConnection, r2d2::PoolError> {
        let wait = match self.check_file() {
            Err(problem) => {
                self.reachability.failed(&problem);
                Duration::ZERO
            }
            Ok(()) if self.reachability.is_down() => Duration::ZERO,
            Ok(()) => CHECKOUT_TIMEOUT,
        };
        self.inner.get_timeout(wait)
    }

    /// Whether the database answered last time it was asked.
    pub fn is_reachable(&self) -> bool {
        !self.reachability.is_down()
    }

    /// Whether the SQLite file the pool opened is still the one at its path
    /// (always true on PostgreSQL).
    pub fn check_file(&self) -> Result<(), String> {
        self.sqlite_file.as_ref().map_or(Ok(()), SqliteFile::check)
    }

    /// Runs blocking database work on the blocking thread pool, never on the
    /// async workers, inside the caller's tracing span.
    pub async fn run<T, E>(
        &self,
        work: impl FnOnce(&mut DbConnection) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<r2d2::PoolError> + From<actix_web::error::BlockingError> + Send + 'static,
    {
        self.blocking(move |pool| pool.with_connection(work)?).await
    }

    /// Runs a short write on the hot path (one row inserted) like
    /// [`Pool::run`]; on SQLite, one such write at a time in this process:
    /// concurrent writers otherwise find the file locked and wait in SQLite's
    /// busy handler, which sleeps milliseconds for a lock held microseconds.
    /// (Other processes on the same file still meet the busy handler.)
    pub async fn write<T, E>(
        &self,
        work: impl FnOnce(&mut DbConnection) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<r2d2::PoolError> + From<actix_web::error::BlockingError> + Send + 'static,
    {
        let writer = self.sqlite_writer.clone();
        self.blocking(move |pool| {
            let _turn = writer
                .as_ref()
                .map(|w| w.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
            pool.with_connection(work)?
        })
        .await
    }

    /// Runs a short read (a few point lookups by key): on SQLite on the
    /// calling thread when an inline connection is free and answers at once
    /// (`inline`), otherwise, and always on PostgreSQL, like [`Pool::run`].
    pub async fn read<T, E>(
        &self,
        work: impl Fn(&mut DbConnection) -> diesel::QueryResult<T> + Send + 'static,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<diesel::result::Error>
            + From<r2d2::PoolError>
            + From<actix_web::error::BlockingError>
            + Send
            + 'static,
    {
        if let Some(value) = self.inline.as_ref().and_then(|i| i.try_run(&work)) {
            // The file answered: an outage the pool saw is over.
            self.reachability.reachable();
            return Ok(value);
        }
        // A read changes nothing, so one that met a connection which died
        // unseen (see `PING_AFTER_IDLE`) runs once more on another.
        self.blocking(move |pool| match pool.with_connection(&work)? {
            Err(error) if is_closed_connection(&error) => {
                tracing::debug!("a pooled connection was found closed; reading again");
                pool.with_connection(&work)?.map_err(E::from)
            }
            other => other.map_err(E::from),
        })
        .await
    }

    /// The change epochs and, for `probe`, the throttle rows, as read after
    /// this call began (a change any process committed before is seen): on
    /// PostgreSQL in a round shared with the requests waiting at the same
    /// moment, on SQLite inline, otherwise through the pool.
    pub async fn fresh<E>(&self, probe: Option<ThrottleProbe>) -> Result<Fresh, E>
    where
        E: From<diesel::result::Error>
            + From<r2d2::PoolError>
            + From<actix_web::error::BlockingError>
            + Send
            + 'static,
    {
        let probe = Probe {
            throttle: probe,
            revoked: None,
        };
        self.fresh_with(probe).await
    }

    /// [`fresh`](Self::fresh) for any [`Probe`]: the throttle rows and the
    /// revocation of a token are read in the same round or read.
    pub async fn fresh_with<E>(&self, probe: Probe) -> Result<Fresh, E>
    where
        E: From<diesel::result::Error>
            + From<r2d2::PoolError>
            + From<actix_web::error::BlockingError>
            + Send
            + 'static,
    {
        if let Some(pg) = &self.pg_reads
            && let Some(fresh) = pg.read(probe.clone()).await
        {
            return Ok(fresh);
        }
        self.read(move |conn| fresh::read(conn, &probe)).await
    }

    /// PostgreSQL: how many warm-path reads shared rounds answered, and in
    /// how many rounds (none on SQLite, or where only libpq can connect as
    /// the URL asks: `db::pg_tls`).
    pub fn shared_read_counts(&self) -> Option<(u64, u64)> {
        self.pg_reads.as_ref().map(|pg| pg.counts())
    }

    /// `work` on the blocking thread pool, never on the async workers,
    /// inside the caller's tracing span.
    async fn blocking<T, E>(
        &self,
        work: impl FnOnce(&Pool) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<actix_web::error::BlockingError> + Send + 'static,
    {
        let pool = self.clone();
        let span = tracing::Span::current();
        actix_web::web::block(move || {
            let _entered = span.enter();
            work(&pool)
        })
        .await?
    }

    /// `work` on a connection of the pool; a failure is remembered with the
    /// connection, so that it is checked before it is used again.
    fn with_connection<T, E>(
        &self,
        work: impl FnOnce(&mut DbConnection) -> Result<T, E>,
    ) -> Result<Result<T, E>, r2d2::PoolError> {
        let mut conn = self.get()?;
        let outcome = work(&mut conn);
        conn.failed = outcome.is_err();
        if !conn.failed {
            // It answered: an outage the pool saw is over. (Being handed
            // out says nothing: a connection used moments ago is not
            // pinged, see `PING_AFTER_IDLE`.)
            self.reachability.reachable();
        }
        Ok(outcome)
    }
}

/// Builds the pool after opening one connection directly, so that a wrong URL
/// or a database that is down fails at once with one clear line instead of
/// after the pool's retries. Call [`close`] before the process exits.
pub fn connect(url: &DatabaseUrl) -> Result<Pool, DbError> {
    drop(connect_one(url)?);
    let sqlite_file = match url {
        DatabaseUrl::Sqlite(path) => Some(
            SqliteFile::identify(path).map_err(|e| DbError::Connect(format!("{url:?}: {e}")))?,
        ),
        DatabaseUrl::Postgres(_) => None,
    };
    let gate = Arc::<ConnectGate>::default();
    let reachability = Arc::<Reachability>::default();
    let losses = Arc::<AtomicU64>::default();
    let manager = Manager::new(
        url.clone(),
        Arc::clone(&gate),
        sqlite_file.clone(),
        Arc::clone(&reachability),
        Arc::clone(&losses),
    );
    let max_size = match url {
        // One writer at a time anyway; readers share the WAL.
        DatabaseUrl::Sqlite(_) => 8,
        DatabaseUrl::Postgres(_) => 16,
    };
    let inner = r2d2::Pool::builder()
        .max_size(max_size)
        .min_idle(Some(1))
        .connection_timeout(CHECKOUT_TIMEOUT)
        // Failed attempts are logged by `Reachability`, once per outage.
        .error_handler(Box::new(r2d2::NopErrorHandler))
        .build(manager)
        .map_err(|e| DbError::Connect(format!("{url:?}: {}", one_line(&e.to_string()))))?;
    let inline = match (url, &sqlite_file) {
        (DatabaseUrl::Sqlite(path), Some(file)) => {
            Some(Arc::new(InlineReads::new(file.clone(), path.clone())))
        }
        _ => None,
    };
    let pg_reads = match url {
        DatabaseUrl::Postgres(text) => {
            let around = pg_tls::Surroundings::of_this_process();
            PgReads::new(text, &around, Arc::clone(&reachability), losses).map(Arc::new)
        }
        DatabaseUrl::Sqlite(_) => None,
    };
    Ok(Pool {
        pg_reads,
        inner,
        gate,
        sqlite_writer: sqlite_file
            .is_some()
            .then(|| Arc::new(std::sync::Mutex::new(()))),
        sqlite_file,
        reachability,
        inline,
    })
}

/// Shuts the pool's connection attempts: none starts after this returns, and
/// those under way have finished (or `timeout` passed, which is logged). The
/// pool's idle connections stay usable until the pool is dropped.
pub fn close(pool: &Pool, timeout: Duration) {
    let unfinished = pool.gate.close(timeout);
    if unfinished > 0 {
        tracing::warn!(
            unfinished,
            "database connection attempts still running at shutdown"
        );
    }
}
