//! The pool's connection manager: it opens connections through the gate,
//! tells [`Reachability`] how each attempt went, and decides at checkout and
//! return whether a connection may still be used.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use diesel::ConnectionError;
use diesel::r2d2::{ManageConnection, R2D2Connection};

use super::connection::{DbConnection, establish, one_line};
use super::database_url::DatabaseUrl;
use super::gate::ConnectGate;
use super::reachability::Reachability;
use super::sqlite_file::SqliteFile;

/// How long after going back to the pool a PostgreSQL connection is handed
/// out again without a ping (HikariCP's `aliveBypassWindowMs`, 500 ms by
/// default, the same idea): under load every checkout finds one used
/// moments ago, and a `SELECT 1` before each would cost as much as the
/// token endpoint's own read. A connection idle longer is pinged, so one a
/// restarted server left dead is replaced before use; one that died within
/// the window fails its first query, is dropped as broken, and
/// [`Pool::read`](super::Pool::read) retries such a read once on another.
pub const PING_AFTER_IDLE: Duration = Duration::from_millis(500);

/// A pooled connection and when it last went back to the pool; derefs to
/// the connection, so callers never see it.
pub struct Tracked {
    /// `None` only while it is being dropped.
    conn: Option<DbConnection>,
    returned: Instant,
    /// The work it last ran failed: pinged when it comes back.
    pub(super) failed: bool,
    /// [`Manager::losses`] when it went back to the pool.
    losses_seen: u64,
}

impl std::ops::Deref for Tracked {
    type Target = DbConnection;

    // `conn` is `None` only inside `drop`, where nothing derefs.
    #[allow(clippy::expect_used)]
    fn deref(&self) -> &DbConnection {
        self.conn.as_ref().expect("a connection until dropped")
    }
}

impl std::ops::DerefMut for Tracked {
    #[allow(clippy::expect_used)]
    fn deref_mut(&mut self) -> &mut DbConnection {
        self.conn.as_mut().expect("a connection until dropped")
    }
}

/// A PostgreSQL connection is closed on a lasting thread: over TLS, closing
/// it uses OpenSSL, and r2d2 drops connections on its own threads, which
/// exit with the pool (see `lasting`).
impl Drop for Tracked {
    fn drop(&mut self) {
        if let Some(DbConnection::Pg(conn)) = self.conn.take() {
            super::lasting::detach(move || drop(conn));
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
    /// How many connections were found dead (PostgreSQL), pooled or the
    /// warm path's own (`pg_reads`).
    losses: Arc<AtomicU64>,
}

impl Manager {
    pub(super) fn new(
        url: DatabaseUrl,
        gate: Arc<ConnectGate>,
        sqlite_file: Option<SqliteFile>,
        reachability: Arc<Reachability>,
        losses: Arc<AtomicU64>,
    ) -> Self {
        Self {
            url,
            gate,
            sqlite_file,
            reachability,
            losses,
        }
    }

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
            conn: Some(opened?),
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
        match &mut **conn {
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
        let broken = conn.is_broken();
        let is_pg = matches!(**conn, DbConnection::Pg(_));
        let dead = failed && is_pg && (broken || conn.ping().is_err());
        if dead {
            self.losses.fetch_add(1, Ordering::Relaxed);
        }
        broken || dead
    }
}
