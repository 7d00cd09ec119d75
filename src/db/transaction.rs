//! The write transaction every store uses, and reading what a failed
//! write means.

use diesel::connection::{AnsiTransactionManager, TransactionManager};
use diesel::sqlite::SqliteConnection;

use super::connection::DbConnection;

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

/// True for the engine-level "row already exists" error.
pub fn is_unique_violation(error: &diesel::result::Error) -> bool {
    matches!(
        error,
        diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, _)
    )
}

#[cfg(test)]
mod tests {
    use diesel::connection::SimpleConnection;

    use super::*;
    use crate::db::{DatabaseUrl, connect_one};

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
}
