//! One connection type over SQLite and PostgreSQL, and opening one of the
//! engine a URL names, with the session settings keygate needs.

use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::sqlite::SqliteConnection;
use diesel::{Connection, ConnectionError};

use super::database_url::DatabaseUrl;
use super::lasting;
use super::sqlite_file;

#[derive(diesel::MultiConnection)]
pub enum DbConnection {
    Sqlite(SqliteConnection),
    Pg(PgConnection),
}

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

/// Opens one connection of the URL's engine, with its session settings.
pub(super) fn establish(url: &DatabaseUrl) -> Result<DbConnection, ConnectionError> {
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
            let mut conn = connect_postgres(&with_client_defaults(url))?;
            conn.batch_execute("SET TIME ZONE 'UTC'")
                .map_err(ConnectionError::CouldntSetupConfiguration)?;
            Ok(DbConnection::Pg(conn))
        }
    }
}

/// libpq's own connection to `url`, opened on a thread that never exits
/// (`lasting`): what any code of this process that talks to PostgreSQL
/// through libpq uses, the test harness's administration included.
pub fn connect_postgres(url: &str) -> Result<PgConnection, ConnectionError> {
    let url = url.to_owned();
    lasting::run(move || PgConnection::establish(&url))
        .map_err(|e| ConnectionError::BadConnection(e.to_string()))?
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

/// libpq's messages span lines; logs and CLI errors want one.
pub(super) fn one_line(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
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
}
