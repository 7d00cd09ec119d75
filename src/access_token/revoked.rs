//! The revocation list: IDs of revoked access tokens, kept until the token's
//! own expiry.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde_json::json;

use crate::audit::{self, Action};
use crate::db::schema::revoked_tokens;
use crate::db::{DbConnection, is_unique_violation, write_transaction};
use crate::time::rfc3339;

#[derive(Insertable)]
#[diesel(table_name = revoked_tokens)]
struct NewRevokedToken<'a> {
    jti: &'a str,
    client_id: &'a str,
    expires_at: chrono::NaiveDateTime,
    revoked_at: chrono::NaiveDateTime,
}

/// What is being revoked, and by whom.
pub struct Revocation<'a> {
    pub jti: &'a str,
    pub client_id: &'a str,
    pub expires_at: DateTime<Utc>,
    pub source_addr: Option<&'a str>,
}

/// Records the revocation and its audit event together. Idempotent: a token
/// already revoked stays so and returns false.
pub fn revoke_token(
    conn: &mut DbConnection,
    revocation: &Revocation<'_>,
    now: DateTime<Utc>,
) -> QueryResult<bool> {
    let written = write_transaction(conn, |conn| {
        if is_revoked(conn, revocation.jti)? {
            return Ok(false);
        }
        diesel::insert_into(revoked_tokens::table)
            .values(NewRevokedToken {
                jti: revocation.jti,
                client_id: revocation.client_id,
                expires_at: revocation.expires_at.naive_utc(),
                revoked_at: now.naive_utc(),
            })
            .execute(conn)?;
        audit::record(
            conn,
            now,
            audit::Entry {
                actor: revocation.client_id,
                action: Action::TokenRevoked,
                target: revocation.jti,
                source_addr: revocation.source_addr,
                details: json!({
                    "client_id": revocation.client_id,
                    "expires_at": rfc3339(revocation.expires_at),
                }),
            },
        )?;
        Ok(true)
    });
    match written {
        // Another request revoked the same token at the same moment.
        Err(error) if is_unique_violation(&error) => Ok(false),
        other => other,
    }
}

/// Whether the token `jti` is revoked (the warm reads ask it too).
pub use crate::db::fresh::is_revoked;

/// Drops the rows of tokens that have expired anyway; returns how many.
pub fn prune_revoked_tokens(conn: &mut DbConnection, now: DateTime<Utc>) -> QueryResult<usize> {
    diesel::delete(revoked_tokens::table.filter(revoked_tokens::expires_at.le(now.naive_utc())))
        .execute(conn)
}

/// How many revoked token IDs are kept.
pub fn count_revoked_tokens(conn: &mut DbConnection) -> QueryResult<i64> {
    revoked_tokens::table.count().get_result(conn)
}
