//! Short SQLite reads on the calling thread, without the hop to the blocking
//! pool.
//!
//! A point read by primary key on SQLite in WAL mode takes microseconds and
//! never waits for a writer, while handing it to a blocking thread and back
//! costs two context switches, which dominated the warm token path. So the
//! warm path's one read (`client_auth`) runs here, on the async worker, over
//! connections of its own: read-only (`query_only`), and with no busy
//! timeout, so that the rare moment SQLite would make a reader wait (a WAL
//! restart, recovery after a crash) is an error at once instead of a worker
//! stalled. Every error falls back to the blocking pool, whose connections
//! wait, reconnect and report the failure as every other read does.
//!
//! PostgreSQL has no such reads: every query there is a network round trip.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, TryLockError};

use diesel::connection::SimpleConnection;
use diesel::sqlite::SqliteConnection;
use diesel::{Connection, QueryResult};

use super::DbConnection;
use super::sqlite_file::SqliteFile;

/// Settings of an inline connection: it never writes, and never waits.
const INLINE_PRAGMAS: &str = "PRAGMA query_only = ON; PRAGMA busy_timeout = 0;";

/// A few connections to the SQLite file, each used by one thread at a time.
pub struct InlineReads {
    file: SqliteFile,
    path: PathBuf,
    /// One per core is enough: a read holds its slot for microseconds, and
    /// a caller that finds every slot busy takes the pool instead.
    slots: Vec<Mutex<Option<DbConnection>>>,
    next: AtomicUsize,
}

impl InlineReads {
    pub fn new(file: SqliteFile, path: PathBuf) -> Self {
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        Self {
            file,
            path,
            slots: (0..cores).map(|_| Mutex::new(None)).collect(),
            next: AtomicUsize::new(0),
        }
    }

    /// `work`'s result on a free inline connection, or `None` when there is
    /// none, the file is not the one opened, or the read failed (the
    /// connection is then dropped, to be opened afresh next time).
    pub fn try_run<T>(&self, work: impl FnOnce(&mut DbConnection) -> QueryResult<T>) -> Option<T> {
        self.file.check().ok()?;
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let count = self.slots.len();
        let mut slot =
            (0..count).find_map(|i| match self.slots[(start + i) % count].try_lock() {
                Ok(guard) => Some(guard),
                // A panic inside a read leaves no half-done state: the
                // connection is dropped below like a failed one.
                Err(TryLockError::Poisoned(poisoned)) => {
                    let mut guard = poisoned.into_inner();
                    *guard = None;
                    Some(guard)
                }
                Err(TryLockError::WouldBlock) => None,
            })?;
        if slot.is_none() {
            *slot = Some(self.open().ok()?);
        }
        let conn = slot.as_mut()?;
        match work(conn) {
            Ok(value) => Some(value),
            Err(error) => {
                tracing::debug!(%error, "inline read failed; using the pool");
                *slot = None;
                None
            }
        }
    }

    fn open(&self) -> diesel::ConnectionResult<DbConnection> {
        let mut conn = SqliteConnection::establish(&self.path.to_string_lossy())?;
        conn.batch_execute(INLINE_PRAGMAS)
            .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
        Ok(DbConnection::Sqlite(conn))
    }
}

#[cfg(test)]
mod tests {
    use diesel::RunQueryDsl;

    use super::*;
    use crate::db::{DatabaseUrl, connect_one};

    fn reads(dir: &tempfile::TempDir) -> InlineReads {
        let path = dir.path().join("t.db");
        let mut conn = connect_one(&DatabaseUrl::Sqlite(path.clone())).unwrap();
        conn.batch_execute("CREATE TABLE t (v INTEGER NOT NULL); INSERT INTO t VALUES (7);")
            .unwrap();
        InlineReads::new(SqliteFile::identify(&path).unwrap(), path)
    }

    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Integer)]
        v: i32,
    }

    fn read_v(conn: &mut DbConnection) -> QueryResult<i32> {
        diesel::sql_query("SELECT v FROM t")
            .get_result::<Row>(conn)
            .map(|r| r.v)
    }

    #[test]
    fn reads_on_the_calling_thread_and_never_writes() {
        let dir = tempfile::tempdir().unwrap();
        let reads = reads(&dir);
        assert_eq!(reads.try_run(read_v), Some(7));
        let write = reads.try_run(|conn| conn.batch_execute("UPDATE t SET v = 8"));
        assert_eq!(write, None, "an inline connection is read-only");
        assert_eq!(reads.try_run(read_v), Some(7));
    }

    #[test]
    fn a_replaced_file_is_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let reads = reads(&dir);
        std::fs::remove_file(dir.path().join("t.db")).unwrap();
        assert_eq!(reads.try_run(read_v), None);
    }
}
