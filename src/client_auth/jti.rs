//! The `jti` of every accepted client assertion, kept until the assertion
//! could no longer be accepted anyway, so each is accepted once by every
//! process on the database (RFC 7523 §3, item 7).

use chrono::{DateTime, Utc};
use diesel::prelude::*;

use crate::db::DbConnection;
use crate::db::schema::client_assertion_jtis;

/// Records `jti` for `client_id` until `until`; false when it was already
/// there (a replay). The primary key decides, so two processes racing with
/// the same assertion cannot both win.
pub fn accept_once(
    conn: &mut DbConnection,
    client_id: &str,
    jti: &str,
    until: DateTime<Utc>,
) -> QueryResult<bool> {
    let insert = diesel::insert_into(client_assertion_jtis::table)
        .values((
            client_assertion_jtis::client_id.eq(client_id),
            client_assertion_jtis::jti.eq(jti),
            client_assertion_jtis::expires_at.eq(until.naive_utc()),
        ))
        .on_conflict_do_nothing();
    let inserted = match conn {
        DbConnection::Pg(pg) => insert.execute(pg)?,
        DbConnection::Sqlite(sqlite) => insert.execute(sqlite)?,
    };
    Ok(inserted == 1)
}

/// Deletes the `jti`s whose assertions have expired (leeway included):
/// what the prune job runs. Returns how many went.
pub fn prune(conn: &mut DbConnection, now: DateTime<Utc>) -> QueryResult<usize> {
    diesel::delete(
        client_assertion_jtis::table.filter(client_assertion_jtis::expires_at.lt(now.naive_utc())),
    )
    .execute(conn)
}
