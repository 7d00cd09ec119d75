//! The change epochs (migration `change_epochs`): counters that database
//! triggers move in the same transaction as the changes they stand for, so
//! a process may keep what it read in memory for as long as the counter
//! still reads the same. Reading both is one statement without parameters
//! (two rows by primary key): the one read of the warm token path.

use diesel::prelude::*;

use super::DbConnection;
use super::schema::change_epochs;

/// The counters' values at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Epochs {
    /// Moves with every change to a key (but its last use), a person, a
    /// role or an API: whatever a credential is made of.
    pub credentials: i64,
    /// Moves with every failure the client throttle counts.
    pub failures: i64,
}

const CREDENTIALS: i32 = 1;
const FAILURES: i32 = 2;

/// Reads both counters. What is read after this reflects at least every
/// change the values stand for.
pub fn read(conn: &mut DbConnection) -> QueryResult<Epochs> {
    // No WHERE and no LIMIT: a bound parameter the planner looked at makes
    // SQLite prepare the statement again at every run.
    let rows: Vec<(i32, i64)> = change_epochs::table
        .select((change_epochs::id, change_epochs::n))
        .load(conn)?;
    from_rows(rows).ok_or(diesel::result::Error::NotFound)
}

/// The counters from the table's (id, n) rows, if both are there.
pub fn from_rows(rows: impl IntoIterator<Item = (i32, i64)>) -> Option<Epochs> {
    let (mut credentials, mut failures) = (None, None);
    for (id, n) in rows {
        match id {
            CREDENTIALS => credentials = Some(n),
            FAILURES => failures = Some(n),
            _ => {}
        }
    }
    Some(Epochs {
        credentials: credentials?,
        failures: failures?,
    })
}

#[cfg(test)]
mod tests {
    use diesel::connection::SimpleConnection;

    use super::*;
    use crate::db::{DatabaseUrl, connect_one, migrate};

    #[test]
    fn credential_changes_and_throttled_failures_move_their_counter_only() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = connect_one(&DatabaseUrl::Sqlite(dir.path().join("t.db"))).unwrap();
        migrate(&mut conn).unwrap();
        let start = read(&mut conn).unwrap();
        conn.batch_execute(
            "INSERT INTO auth_throttle (subject, addr, window_start, failures) \
             VALUES ('kg_x', '192.0.2.1', '2026-12-02 00:00:00', 1)",
        )
        .unwrap();
        let failed = read(&mut conn).unwrap();
        assert_eq!(failed.credentials, start.credentials);
        assert_eq!(failed.failures, start.failures + 1);
        conn.batch_execute("UPDATE roles SET scopes = 'read' WHERE name = 'member'")
            .unwrap();
        let changed = read(&mut conn).unwrap();
        assert_eq!(changed.credentials, start.credentials + 1);
        assert_eq!(changed.failures, failed.failures);
        conn.batch_execute("DELETE FROM auth_throttle").unwrap();
        assert_eq!(
            read(&mut conn).unwrap(),
            changed,
            "pruning throttles nobody"
        );
    }
}
