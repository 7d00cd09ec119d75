//! One connection type over SQLite and PostgreSQL, its pool, migrations and
//! the write-transaction helper every store uses.

mod database_url;
pub mod epochs;
mod inline;
mod reachability;
pub mod schema;
mod sqlite_file;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use diesel::connection::{AnsiTransactionManager, SimpleConnection, TransactionManager};
use diesel::pg::PgConnection;
use diesel::r2d2::{self, ManageConnection, R2D2Connection};
use diesel::sqlite::SqliteConnection;
use diesel::{Connection, ConnectionError};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

pub use database_url::DatabaseUrl;
use inline::InlineReads;
use reachability::Reachability;
use sqlite_file::SqliteFile;

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

#[derive(diesel::MultiConnection)]
pub enum DbConnection {
    Sqlite(SqliteConnection),
    Pg(PgConnection),
}

pub type PooledConnection = r2d2::PooledConnection<Manager>;

/// How long after going back to the pool a PostgreSQL connection is handed
/// out again without a ping (HikariCP's `aliveBypassWindowMs`, 500 ms by
/// default, the same idea): under load every checkout finds one used
/// moments ago, and a `SELECT 1` before each would cost as much as the
/// token endpoint's own read. A connection idle longer is pinged, so one a
/// restarted server left dead is replaced before use; one that died within
/// the window fails its first query, is dropped as broken, and
/// [`Pool::read`] retries such a read once on another.
pub const PING_AFTER_IDLE: Duration = Duration::from_millis(500);

/// A pooled connection and when it last went back to the pool; derefs to
/// the connection, so callers never see it.
pub struct Tracked {
    conn: DbConnection,
    returned: Instant,
    /// The work it last ran failed: pinged when it comes back.
    failed: bool,
    /// [`Manager::losses`] when it went back to the pool.
    losses_seen: u64,
}

/// Whether a query failed because the connection is gone.
fn is_closed_connection(error: &diesel::result::Error) -> bool {
    use diesel::result::{DatabaseErrorKind as Kind, Error};
    matches!(
        error,
        Error::DatabaseError(Kind::ClosedConnection | Kind::UnableToSendCommand, _)
    )
}

impl std::ops::Deref for Tracked {
    type Target = DbConnection;

    fn deref(&self) -> &DbConnection {
        &self.conn
    }
}

impl std::ops::DerefMut for Tracked {
    fn deref_mut(&mut self) -> &mut DbConnection {
        &mut self.conn
    }
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

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// Per-connection SQLite settings: WAL and a busy timeout let the CLI write
/// while `serve` runs; foreign keys are off by default in SQLite.
const SQLITE_PRAGMAS: &str = "PRAGMA busy_timeout = 5000; PRAGMA journal_mode = WAL; \
                              PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;";

/// Applies [`SQLITE_PRAGMAS`]. Switching a new file to WAL takes an
/// exclusive lock, and SQLite answers "database is locked" at once, without
/// its busy handler, when another process is switching it at the same
/// moment (two servers starting together on a new file): wait and retry, as
/// the busy timeout would, for up to 5 s.
fn set_up_sqlite(conn: &mut SqliteConnection) -> diesel::QueryResult<()> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match conn.batch_execute(SQLITE_PRAGMAS) {
            Err(diesel::result::Error::DatabaseError(_, info))
                if info.message().contains("database is locked") && Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(20));
            }
            other => return other,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("cannot connect to the database: {0}")]
    Connect(String),
    #[error("database migration failed: {0}")]
    Migrate(String),
}

/// Counts the connection attempts under way and, once closed, refuses new
/// ones. r2d2 opens connections on its own threads (to fill `min_idle`, or
/// for a waiting `get`); a process must not exit while one of them is inside
/// libpq, whose SCRAM-SHA-256 login computes an HMAC through OpenSSL while
/// the exiting thread runs `OPENSSL_cleanup` (SIGSEGV or SIGABRT). Closing
/// the gate and waiting for it to drain makes exit safe.
#[derive(Debug, Default)]
struct ConnectGate {
    state: Mutex<GateState>,
    drained: Condvar,
}

#[derive(Debug, Default)]
struct GateState {
    closed: bool,
    in_flight: usize,
}

/// One connection attempt let through the gate; leaving it on drop.
struct GatePass<'a>(&'a ConnectGate);

impl ConnectGate {
    fn enter(&self) -> Result<GatePass<'_>, ConnectionError> {
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
    fn close(&self, timeout: Duration) -> usize {
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

/// Opens connections of the engine named by the URL scheme. diesel's own
/// `MultiConnection::establish` would try SQLite first, which accepts any
/// string as a file name, so the choice is made here.
#[derive(Debug, Clone)]
pub struct Manager {
    url: DatabaseUrl,
    gate: Arc<ConnectGate>,
    /// The SQLite file as first opened: never silently a new one.
    sqlite_file: Option<SqliteFile>,
    /// Told of every attempt's outcome: the pool's one log of an outage.
    reachability: Arc<Reachability>,
    /// How many pooled connections were found dead (PostgreSQL).
    losses: Arc<AtomicU64>,
}

impl Manager {
    fn check_file(&self) -> Result<(), ConnectionError> {
        match &self.sqlite_file {
            Some(file) => file.check().map_err(ConnectionError::BadConnection),
            None => Ok(()),
        }
    }
}

impl ManageConnection for Manager {
    type Connection = Tracked;
    type Error = ConnectionError;

    fn connect(&self) -> Result<Tracked, ConnectionError> {
        let _pass = self.gate.enter()?;
        let opened = self.check_file().and_then(|()| establish(&self.url));
        match &opened {
            Ok(_) => self.reachability.reachable(),
            Err(error) => self.reachability.failed(&one_line(&error.to_string())),
        }
        Ok(Tracked {
            conn: opened?,
            returned: Instant::now(),
            failed: false,
            losses_seen: self.losses.load(Ordering::Relaxed),
        })
    }

    /// Run at every checkout. A SQLite connection is refused when its file
    /// is no longer at its path (so a deleted database is a 503, not
    /// writes into an unlinked file), but never pinged: it cannot go away
    /// under the process, and a `SELECT 1` would only cost a parse. A
    /// PostgreSQL connection can (a restarted server, a dropped link): it
    /// is pinged when it has been idle for [`PING_AFTER_IDLE`], or when it
    /// went back to the pool before another was found dead.
    fn is_valid(&self, conn: &mut Tracked) -> Result<(), ConnectionError> {
        self.check_file()?;
        let stale = conn.returned.elapsed() >= PING_AFTER_IDLE
            || conn.losses_seen != self.losses.load(Ordering::Relaxed);
        match &mut conn.conn {
            DbConnection::Sqlite(_) => Ok(()),
            DbConnection::Pg(_) if !stale => Ok(()),
            pg @ DbConnection::Pg(_) => {
                pg.ping()
                    .map_err(ConnectionError::CouldntSetupConfiguration)?;
                self.reachability.reachable();
                Ok(())
            }
        }
    }

    /// Run when a connection goes back to the pool. One whose work failed
    /// is pinged (off the request's path only on errors): a dead one is
    /// dropped, and every connection returned before it is then pinged at
    /// its next checkout, since a server that went away took them all.
    fn has_broken(&self, conn: &mut Tracked) -> bool {
        let failed = std::mem::take(&mut conn.failed);
        conn.returned = Instant::now();
        conn.losses_seen = self.losses.load(Ordering::Relaxed);
        if std::thread::panicking() {
            return true;
        }
        // diesel marks a connection whose query met a closed socket as
        // broken, which also counts as found dead.
        let broken = conn.conn.is_broken();
        let is_pg = matches!(conn.conn, DbConnection::Pg(_));
        let dead = failed && is_pg && (broken || conn.conn.ping().is_err());
        if dead {
            self.losses.fetch_add(1, Ordering::Relaxed);
        }
        broken || dead
    }
}

/// Opens one connection of the URL's engine, with its session settings.
fn establish(url: &DatabaseUrl) -> Result<DbConnection, ConnectionError> {
    match url {
        DatabaseUrl::Sqlite(path) => {
            sqlite_file::create_private(path).map_err(|e| {
                ConnectionError::BadConnection(format!("cannot create {}: {e}", path.display()))
            })?;
            let path = path.to_string_lossy();
            let mut conn = SqliteConnection::establish(&path)?;
            set_up_sqlite(&mut conn).map_err(ConnectionError::CouldntSetupConfiguration)?;
            Ok(DbConnection::Sqlite(conn))
        }
        DatabaseUrl::Postgres(url) => {
            let mut conn = PgConnection::establish(&with_client_defaults(url))?;
            conn.batch_execute("SET TIME ZONE 'UTC'")
                .map_err(ConnectionError::CouldntSetupConfiguration)?;
            Ok(DbConnection::Pg(conn))
        }
    }
}

/// libpq settings keygate needs unless the URL sets them itself:
///
/// - `gssencmode=disable`: libpq built with GSSAPI probes Kerberos on every
///   connection unless told not to, and its thread-local cleanup can abort a
///   multi-threaded process at exit (`krb5int_getspecific` assertion).
///   keygate authenticates to PostgreSQL by password or certificate.
/// - `connect_timeout=3`: libpq waits for the operating system otherwise
///   (two minutes of SYN retries to a host that is gone), holding one of
///   r2d2's few connection threads, delaying the reconnection once the
///   database is back, and holding up shutdown, which waits for attempts
///   under way.
/// - `tcp_user_timeout=5000`: a connection whose peer vanished (a network
///   partition, a host powered off) otherwise hangs the query on it for the
///   kernel's fifteen minutes of retransmissions; with it, the query fails
///   after five seconds without acknowledgement and the pool reconnects.
fn with_client_defaults(url: &str) -> String {
    let mut url = url.to_owned();
    for (name, value) in [
        ("gssencmode", "disable"),
        ("connect_timeout", "3"),
        ("tcp_user_timeout", "5000"),
    ] {
        if !url.contains(&format!("{name}=")) {
            let separator = if url.contains('?') { '&' } else { '?' };
            url = format!("{url}{separator}{name}={value}");
        }
    }
    url
}

/// One connection on the calling thread, no pool: what a one-shot command
/// (the CLI, a test's look at the rows) needs. It starts no background
/// thread, so the process may exit as soon as it is done.
pub fn connect_one(url: &DatabaseUrl) -> Result<DbConnection, DbError> {
    establish(url).map_err(|e| DbError::Connect(format!("{url:?}: {}", one_line(&e.to_string()))))
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
    let manager = Manager {
        url: url.clone(),
        gate: Arc::clone(&gate),
        sqlite_file: sqlite_file.clone(),
        reachability: Arc::clone(&reachability),
        losses: Arc::default(),
    };
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
    Ok(Pool {
        inner,
        gate,
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

/// libpq's messages span lines; logs and CLI errors want one.
fn one_line(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Applies pending migrations of the connection's engine; returns how many ran.
pub fn migrate(conn: &mut DbConnection) -> Result<usize, DbError> {
    let applied = match conn {
        DbConnection::Sqlite(c) => {
            // Several processes may start at once on one new file: the write
            // lock taken up front makes the others wait (busy timeout) and
            // then find nothing pending, where each would otherwise see the
            // migrations pending and all but one fail on "table already
            // exists". diesel's per-migration transactions nest as savepoints.
            AnsiTransactionManager::begin_transaction_sql(c, "BEGIN IMMEDIATE")
                .map_err(|e| DbError::Migrate(e.to_string()))?;
            let result = c.run_pending_migrations(SQLITE_MIGRATIONS).map(|v| v.len());
            let ended = match result {
                Ok(_) => AnsiTransactionManager::commit_transaction(c),
                Err(_) => AnsiTransactionManager::rollback_transaction(c),
            };
            ended.map_err(|e| DbError::Migrate(e.to_string()))?;
            result
        }
        DbConnection::Pg(c) => {
            // Several processes may start at once on one database: serialise them.
            c.batch_execute("SELECT pg_advisory_lock(7411036)")
                .map_err(|e| DbError::Migrate(e.to_string()))?;
            let result = c
                .run_pending_migrations(POSTGRES_MIGRATIONS)
                .map(|v| v.len());
            let _ = c.batch_execute("SELECT pg_advisory_unlock(7411036)");
            result
        }
    };
    applied.map_err(|e| DbError::Migrate(e.to_string()))
}

/// Runs `f` in a transaction that takes the write lock up front. On SQLite a
/// deferred transaction that reads and then writes can fail at once with
/// SQLITE_BUSY when another process wrote in between; `BEGIN IMMEDIATE` waits
/// for the busy timeout instead. On PostgreSQL it is an ordinary transaction.
/// Inside another transaction it is a savepoint of it (so one store function
/// may call another, all or nothing together).
pub fn write_transaction<T, E>(
    conn: &mut DbConnection,
    f: impl FnOnce(&mut DbConnection) -> Result<T, E>,
) -> Result<T, E>
where
    E: From<diesel::result::Error>,
{
    let outermost_sqlite = match conn {
        DbConnection::Sqlite(inner) => !in_transaction(inner)?,
        DbConnection::Pg(_) => false,
    };
    match conn {
        DbConnection::Sqlite(inner) if outermost_sqlite => {
            AnsiTransactionManager::begin_transaction_sql(inner, "BEGIN IMMEDIATE")?
        }
        _ => DbConnection::begin_transaction(conn)?,
    }
    match f(conn) {
        Ok(value) => {
            DbConnection::commit_transaction(conn)?;
            Ok(value)
        }
        Err(error) => {
            // The caller's error is the one worth reporting.
            let _ = DbConnection::rollback_transaction(conn);
            Err(error)
        }
    }
}

fn in_transaction(conn: &mut SqliteConnection) -> diesel::QueryResult<bool> {
    let depth =
        <AnsiTransactionManager as TransactionManager<SqliteConnection>>::transaction_manager_status_mut(conn)
            .transaction_depth()?;
    Ok(depth.is_some())
}

/// Lets a type that wraps a `Text` column be read straight from a row:
/// `$from(String)` builds it from what keygate itself wrote, so every layer
/// above the store holds the type, never the string. The type also derives
/// `diesel::deserialize::FromSqlRow`.
#[macro_export]
macro_rules! text_column {
    ($ty:ty, $from:expr) => {
        impl<DB> diesel::deserialize::FromSql<diesel::sql_types::Text, DB> for $ty
        where
            DB: diesel::backend::Backend,
            String: diesel::deserialize::FromSql<diesel::sql_types::Text, DB>,
        {
            fn from_sql(bytes: DB::RawValue<'_>) -> diesel::deserialize::Result<Self> {
                <String as diesel::deserialize::FromSql<diesel::sql_types::Text, DB>>::from_sql(
                    bytes,
                )
                .map($from)
            }
        }
    };
}

/// True for the engine-level "row already exists" error.
pub fn is_unique_violation(error: &diesel::result::Error) -> bool {
    matches!(
        error,
        diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, _)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libpq_defaults_are_added_unless_the_url_sets_them() {
        assert_eq!(
            with_client_defaults("postgres://u:p@h/db"),
            "postgres://u:p@h/db?gssencmode=disable&connect_timeout=3&tcp_user_timeout=5000"
        );
        assert_eq!(
            with_client_defaults("postgres://h/db?sslmode=require&connect_timeout=10"),
            "postgres://h/db?sslmode=require&connect_timeout=10&gssencmode=disable\
             &tcp_user_timeout=5000"
        );
    }

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

    /// A write transaction inside another is a savepoint: its failure undoes
    /// only its own writes, and the outer one still commits.
    #[test]
    fn a_nested_write_transaction_is_a_savepoint() {
        use diesel::RunQueryDsl;
        let dir = tempfile::tempdir().unwrap();
        let url = DatabaseUrl::Sqlite(dir.path().join("t.db"));
        let mut conn = connect_one(&url).unwrap();
        conn.batch_execute("CREATE TABLE t (v TEXT NOT NULL)")
            .unwrap();
        let insert = |conn: &mut DbConnection, v: &str| {
            diesel::sql_query(format!("INSERT INTO t (v) VALUES ('{v}')")).execute(conn)
        };
        write_transaction(&mut conn, |conn| {
            insert(conn, "outer")?;
            let inner: Result<(), diesel::result::Error> = write_transaction(conn, |conn| {
                insert(conn, "inner")?;
                Err(diesel::result::Error::RollbackTransaction)
            });
            assert!(inner.is_err());
            write_transaction(conn, |conn| insert(conn, "kept"))?;
            Ok::<_, diesel::result::Error>(())
        })
        .unwrap();
        #[derive(diesel::QueryableByName)]
        struct Row {
            #[diesel(sql_type = diesel::sql_types::Text)]
            v: String,
        }
        let rows: Vec<Row> = diesel::sql_query("SELECT v FROM t ORDER BY rowid")
            .load(&mut conn)
            .unwrap();
        let values: Vec<&str> = rows.iter().map(|r| r.v.as_str()).collect();
        assert_eq!(values, ["outer", "kept"]);
    }

    /// Every column of `api_keys` a credential is made of moves the
    /// credential epoch when updated, on both engines; only the last-use
    /// bookkeeping, which token requests write, does not. A column added
    /// later fails here until the triggers name it (or this list does).
    #[test]
    fn every_credential_column_moves_the_epoch() {
        use diesel::RunQueryDsl;
        const NOT_VERSIONED: [&str; 3] = ["last_used_at", "last_used_from", "last_used_user_agent"];
        const POSTGRES: &str =
            include_str!("../../migrations/postgres/2026-12-02-000005_change_epochs/up.sql");
        let dir = tempfile::tempdir().unwrap();
        let mut conn = connect_one(&DatabaseUrl::Sqlite(dir.path().join("t.db"))).unwrap();
        migrate(&mut conn).unwrap();
        #[derive(diesel::QueryableByName)]
        struct Text {
            #[diesel(sql_type = diesel::sql_types::Text)]
            t: String,
        }
        let texts = |conn: &mut DbConnection, sql: &str| -> Vec<String> {
            diesel::sql_query(sql)
                .load::<Text>(conn)
                .unwrap()
                .into_iter()
                .map(|r| r.t)
                .collect()
        };
        let columns = texts(
            &mut conn,
            "SELECT name AS t FROM pragma_table_info('api_keys')",
        );
        let sqlite = texts(
            &mut conn,
            "SELECT sql AS t FROM sqlite_master WHERE name = 'api_keys_update_epoch'",
        );
        let listed = |sql: &str| -> Vec<String> {
            let start = sql.find("UPDATE OF").expect("a column list") + "UPDATE OF".len();
            let end = start + sql[start..].find("ON api_keys").expect("its end");
            sql[start..end]
                .split(',')
                .map(|c| c.trim().to_owned())
                .collect()
        };
        for trigger in [sqlite[0].as_str(), POSTGRES] {
            let mut expected: Vec<&str> = columns
                .iter()
                .map(String::as_str)
                .filter(|c| !NOT_VERSIONED.contains(c))
                .collect();
            let mut named = listed(trigger);
            expected.sort_unstable();
            named.sort_unstable();
            assert_eq!(named, expected, "{trigger}");
        }
    }

    #[test]
    fn close_gives_up_after_its_timeout() {
        let gate = ConnectGate::default();
        let _pass = gate.enter().unwrap();
        assert_eq!(gate.close(Duration::from_millis(20)), 1);
    }
}
