//! The schema's migrations, one set per engine, embedded in the binary.

use diesel::connection::{AnsiTransactionManager, SimpleConnection, TransactionManager};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use super::connection::{DbConnection, DbError};

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::{DatabaseUrl, connect_one};

    /// Every column of `api_keys` a credential is made of moves the
    /// credential epoch when updated, on both engines; only the last-use
    /// bookkeeping, which token requests write, does not. A column added
    /// later fails here until the triggers name it (or this list does).
    #[test]
    fn every_credential_column_moves_the_epoch() {
        use diesel::RunQueryDsl;
        const NOT_VERSIONED: [&str; 4] = [
            "last_used_at",
            "last_used_from",
            "last_used_user_agent",
            "last_used_by",
        ];
        const POSTGRES: &str =
            include_str!("../../migrations/postgres/2026-12-08-000001_secretless/up.sql");
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
}
