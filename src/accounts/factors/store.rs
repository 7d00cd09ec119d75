//! The rows of second factors: a person's authenticator app
//! (`totp_factors`) and recovery codes (`recovery_codes`), and the
//! sessions' `must_enrol` flag they clear.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;

use crate::db::DbConnection;
use crate::db::schema::{passkeys, recovery_codes, sessions, sso_identities, totp_factors, users};

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = totp_factors)]
pub(crate) struct TotpRow {
    pub secret_sealed: String,
    pub confirmed_at: Option<NaiveDateTime>,
}

pub(crate) fn totp_of(conn: &mut DbConnection, user_id: &str) -> QueryResult<Option<TotpRow>> {
    totp_factors::table
        .find(user_id)
        .select(TotpRow::as_select())
        .first(conn)
        .optional()
}

/// A new secret waiting to be confirmed, replacing one that waited.
pub(crate) fn put_unconfirmed_totp(
    conn: &mut DbConnection,
    user_id: &str,
    sealed: &str,
    now: DateTime<Utc>,
) -> QueryResult<()> {
    diesel::delete(
        totp_factors::table
            .filter(totp_factors::user_id.eq(user_id))
            .filter(totp_factors::confirmed_at.is_null()),
    )
    .execute(conn)?;
    diesel::insert_into(totp_factors::table)
        .values((
            totp_factors::user_id.eq(user_id),
            totp_factors::secret_sealed.eq(sealed),
            totp_factors::last_step.eq(0_i64),
            totp_factors::created_at.eq(now.naive_utc()),
        ))
        .execute(conn)?;
    Ok(())
}

/// Confirms the waiting secret with the step its first code matched;
/// false when none waits.
pub(crate) fn confirm_totp(
    conn: &mut DbConnection,
    user_id: &str,
    step: i64,
    now: DateTime<Utc>,
) -> QueryResult<bool> {
    let changed = diesel::update(
        totp_factors::table
            .filter(totp_factors::user_id.eq(user_id))
            .filter(totp_factors::confirmed_at.is_null()),
    )
    .set((
        totp_factors::confirmed_at.eq(now.naive_utc()),
        totp_factors::last_step.eq(step),
    ))
    .execute(conn)?;
    Ok(changed == 1)
}

/// Takes `step` for a confirmed secret if no code of that step or a later
/// one was taken before: one conditional write, so of two processes seeing
/// the same code at once, one wins.
pub(crate) fn take_step(conn: &mut DbConnection, user_id: &str, step: i64) -> QueryResult<bool> {
    let changed = diesel::update(
        totp_factors::table
            .filter(totp_factors::user_id.eq(user_id))
            .filter(totp_factors::confirmed_at.is_not_null())
            .filter(totp_factors::last_step.lt(step)),
    )
    .set(totp_factors::last_step.eq(step))
    .execute(conn)?;
    Ok(changed == 1)
}

pub(crate) fn delete_totp(conn: &mut DbConnection, user_id: &str) -> QueryResult<usize> {
    diesel::delete(totp_factors::table.filter(totp_factors::user_id.eq(user_id))).execute(conn)
}

/// The person's codes, all replaced by these hashes.
pub(crate) fn replace_recovery_codes(
    conn: &mut DbConnection,
    user_id: &str,
    hashes: &[String],
    now: DateTime<Utc>,
) -> QueryResult<()> {
    delete_recovery_codes(conn, user_id)?;
    for hash in hashes {
        diesel::insert_into(recovery_codes::table)
            .values((
                recovery_codes::id.eq(uuid::Uuid::now_v7().to_string()),
                recovery_codes::user_id.eq(user_id),
                recovery_codes::code_hash.eq(hash),
                recovery_codes::created_at.eq(now.naive_utc()),
            ))
            .execute(conn)?;
    }
    Ok(())
}

/// Uses the unused code with this hash, if the person has one.
pub(crate) fn use_recovery_code(
    conn: &mut DbConnection,
    user_id: &str,
    hash: &str,
    now: DateTime<Utc>,
) -> QueryResult<bool> {
    let changed = diesel::update(
        recovery_codes::table
            .filter(recovery_codes::user_id.eq(user_id))
            .filter(recovery_codes::code_hash.eq(hash))
            .filter(recovery_codes::used_at.is_null()),
    )
    .set(recovery_codes::used_at.eq(now.naive_utc()))
    .execute(conn)?;
    Ok(changed >= 1)
}

pub(crate) fn recovery_codes_left(conn: &mut DbConnection, user_id: &str) -> QueryResult<i64> {
    recovery_codes::table
        .filter(recovery_codes::user_id.eq(user_id))
        .filter(recovery_codes::used_at.is_null())
        .count()
        .get_result(conn)
}

pub(crate) fn delete_recovery_codes(conn: &mut DbConnection, user_id: &str) -> QueryResult<usize> {
    diesel::delete(recovery_codes::table.filter(recovery_codes::user_id.eq(user_id))).execute(conn)
}

/// Whether the person has a second factor (a confirmed authenticator app
/// or a passkey).
pub(crate) fn has_factor(conn: &mut DbConnection, user_id: &str) -> QueryResult<bool> {
    Ok(has_totp(conn, user_id)? || has_passkey(conn, user_id)?)
}

/// Whether the person has a passkey.
pub(crate) fn has_passkey(conn: &mut DbConnection, user_id: &str) -> QueryResult<bool> {
    Ok(super::passkeys::count_passkeys(conn, user_id)? > 0)
}

/// Whether the person has a confirmed authenticator app.
pub(crate) fn has_totp(conn: &mut DbConnection, user_id: &str) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        totp_factors::table
            .filter(totp_factors::user_id.eq(user_id))
            .filter(totp_factors::confirmed_at.is_not_null()),
    ))
    .get_result(conn)
}

/// Lets the person's sessions do everything again (they enrolled).
pub(crate) fn clear_must_enrol(conn: &mut DbConnection, user_id: &str) -> QueryResult<usize> {
    diesel::update(
        sessions::table
            .filter(sessions::user_id.eq(user_id))
            .filter(sessions::must_enrol.eq(true)),
    )
    .set(sessions::must_enrol.eq(false))
    .execute(conn)
}

/// How each person signs in, for the people page.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct SignInMethods {
    pub password: bool,
    /// Signed in through the identity provider at least once.
    pub sso: bool,
    /// Has a confirmed authenticator app.
    pub totp: bool,
    /// Has at least one passkey.
    pub passkeys: bool,
}

/// [`SignInMethods`] of every person, by email.
pub fn sign_in_methods(conn: &mut DbConnection) -> QueryResult<HashMap<String, SignInMethods>> {
    let people: Vec<(String, String, Option<String>)> = users::table
        .select((users::id, users::email, users::password_hash))
        .load(conn)?;
    let sso: Vec<String> = sso_identities::table
        .select(sso_identities::user_id)
        .load(conn)?;
    let totp: Vec<String> = totp_factors::table
        .filter(totp_factors::confirmed_at.is_not_null())
        .select(totp_factors::user_id)
        .load(conn)?;
    let with_passkeys: Vec<String> = passkeys::table
        .select(passkeys::user_id)
        .distinct()
        .load(conn)?;
    Ok(people
        .into_iter()
        .map(|(id, email, hash)| {
            let methods = SignInMethods {
                password: hash.is_some(),
                sso: sso.contains(&id),
                totp: totp.contains(&id),
                passkeys: with_passkeys.contains(&id),
            };
            (email, methods)
        })
        .collect())
}
