//! Sessions and one-time links in the database. Tokens arrive here already
//! hashed ([`crate::signing::TokenHasher`]); nothing here sees one in clear.

use chrono::{DateTime, Duration, NaiveDateTime, Utc};
use diesel::prelude::*;

use super::links::LinkPurpose;
use crate::audit::{self, Action};
use crate::db::DbConnection;
use crate::db::schema::{account_links, sessions, users};
use crate::time::from_db;
use crate::users::User;

/// How stale `last_seen_at` may get before a request writes it: at most one
/// write a minute per session, so browsing is not a stream of writes. The
/// idle timeout is therefore exact to within this.
pub const TOUCH_INTERVAL: Duration = Duration::seconds(60);

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = sessions)]
pub struct SessionRow {
    pub id: String,
    pub created_at: NaiveDateTime,
    pub last_seen_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
    pub must_enrol: bool,
}

impl SessionRow {
    /// Whether the session is over at `now`: past its absolute end, idle for
    /// `idle`, or its person disabled.
    fn is_over(&self, user: &User, idle: Duration, now: DateTime<Utc>) -> bool {
        user.disabled || from_db(self.expires_at) <= now || from_db(self.last_seen_at) + idle <= now
    }
}

/// Starts a session for `user_id`, ending at `expires_at` at the latest;
/// also drops that person's sessions that have ended (absolute or idle).
pub fn insert_session(
    conn: &mut DbConnection,
    token_hash: &str,
    user_id: &str,
    (expires_at, idle): (DateTime<Utc>, Duration),
    (source_addr, must_enrol): (&str, bool),
    now: DateTime<Utc>,
) -> QueryResult<String> {
    diesel::delete(
        sessions::table
            .filter(sessions::user_id.eq(user_id))
            .filter(
                sessions::expires_at
                    .le(now.naive_utc())
                    .or(sessions::last_seen_at.le((now - idle).naive_utc())),
            ),
    )
    .execute(conn)?;
    let id = uuid::Uuid::now_v7().to_string();
    diesel::insert_into(sessions::table)
        .values((
            sessions::id.eq(&id),
            sessions::token_hash.eq(token_hash),
            sessions::user_id.eq(user_id),
            sessions::created_at.eq(now.naive_utc()),
            sessions::last_seen_at.eq(now.naive_utc()),
            sessions::expires_at.eq(expires_at.naive_utc()),
            sessions::source_addr.eq(source_addr),
            sessions::must_enrol.eq(must_enrol),
        ))
        .execute(conn)?;
    Ok(id)
}

/// The live session with this token hash and its person. A session found
/// over is deleted; a live one has its idle clock moved to `now` when it is
/// [`TOUCH_INTERVAL`] stale.
pub fn find_live_session(
    conn: &mut DbConnection,
    token_hash: &str,
    idle: Duration,
    now: DateTime<Utc>,
) -> QueryResult<Option<(SessionRow, User)>> {
    let found: Option<(SessionRow, User)> = sessions::table
        .inner_join(users::table)
        .filter(sessions::token_hash.eq(token_hash))
        .select((SessionRow::as_select(), User::as_select()))
        .first(conn)
        .optional()?;
    let Some((mut row, user)) = found else {
        return Ok(None);
    };
    if row.is_over(&user, idle, now) {
        delete_session(conn, &row.id)?;
        return Ok(None);
    }
    if now - from_db(row.last_seen_at) >= TOUCH_INTERVAL {
        diesel::update(sessions::table.find(&row.id))
            .set(sessions::last_seen_at.eq(now.naive_utc()))
            .execute(conn)?;
        row.last_seen_at = now.naive_utc();
    }
    Ok(Some((row, user)))
}

pub fn delete_session(conn: &mut DbConnection, id: &str) -> QueryResult<usize> {
    diesel::delete(sessions::table.find(id)).execute(conn)
}

/// Ends every session of the person: a password change.
pub fn delete_sessions_of(conn: &mut DbConnection, user_id: &str) -> QueryResult<usize> {
    diesel::delete(sessions::table.filter(sessions::user_id.eq(user_id))).execute(conn)
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = account_links)]
pub struct LinkRow {
    pub id: String,
    pub purpose: String,
    pub expires_at: NaiveDateTime,
}

/// Writes a link; links of the same purpose still unused for the person
/// stop working (the newest email is the one that counts).
pub fn insert_link(
    conn: &mut DbConnection,
    purpose: LinkPurpose,
    token_hash: &str,
    user_id: &str,
    expires_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> QueryResult<String> {
    diesel::update(
        account_links::table
            .filter(account_links::user_id.eq(user_id))
            .filter(account_links::purpose.eq(purpose.as_str()))
            .filter(account_links::used_at.is_null()),
    )
    .set(account_links::used_at.eq(now.naive_utc()))
    .execute(conn)?;
    let id = uuid::Uuid::now_v7().to_string();
    diesel::insert_into(account_links::table)
        .values((
            account_links::id.eq(&id),
            account_links::token_hash.eq(token_hash),
            account_links::purpose.eq(purpose.as_str()),
            account_links::user_id.eq(user_id),
            account_links::created_at.eq(now.naive_utc()),
            account_links::expires_at.eq(expires_at.naive_utc()),
        ))
        .execute(conn)?;
    Ok(id)
}

/// The unused, unexpired link with this token hash and its person.
pub fn find_live_link(
    conn: &mut DbConnection,
    token_hash: &str,
    now: DateTime<Utc>,
) -> QueryResult<Option<(LinkRow, User)>> {
    account_links::table
        .inner_join(users::table)
        .filter(account_links::token_hash.eq(token_hash))
        .filter(account_links::used_at.is_null())
        .filter(account_links::expires_at.gt(now.naive_utc()))
        .select((LinkRow::as_select(), User::as_select()))
        .first(conn)
        .optional()
}

/// Marks the link used, if it still was unused and unexpired; true when
/// this call did it (so of two uses at once, one wins).
pub fn use_link(conn: &mut DbConnection, id: &str, now: DateTime<Utc>) -> QueryResult<bool> {
    let changed = diesel::update(
        account_links::table
            .find(id)
            .filter(account_links::used_at.is_null())
            .filter(account_links::expires_at.gt(now.naive_utc())),
    )
    .set(account_links::used_at.eq(now.naive_utc()))
    .execute(conn)?;
    Ok(changed == 1)
}

/// Retires every unused link of the person: once a password is set, older
/// invitations and resets stop working.
pub fn retire_links_of(
    conn: &mut DbConnection,
    user_id: &str,
    now: DateTime<Utc>,
) -> QueryResult<usize> {
    diesel::update(
        account_links::table
            .filter(account_links::user_id.eq(user_id))
            .filter(account_links::used_at.is_null()),
    )
    .set(account_links::used_at.eq(now.naive_utc()))
    .execute(conn)
}

/// Whether a reset link was made for the person within `within`: one reset
/// email per person in that time, however often someone asks.
pub fn recent_reset_exists(
    conn: &mut DbConnection,
    user_id: &str,
    within: Duration,
    now: DateTime<Utc>,
) -> QueryResult<bool> {
    let count: i64 = account_links::table
        .filter(account_links::user_id.eq(user_id))
        .filter(account_links::purpose.eq(LinkPurpose::Reset.as_str()))
        .filter(account_links::used_at.is_null())
        .filter(account_links::created_at.gt((now - within).naive_utc()))
        .count()
        .get_result(conn)?;
    Ok(count > 0)
}

/// Sets the person's password hash.
pub fn set_password_hash(
    conn: &mut DbConnection,
    user_id: &str,
    hash: &str,
    now: DateTime<Utc>,
) -> QueryResult<()> {
    diesel::update(users::table.find(user_id))
        .set((
            users::password_hash.eq(Some(hash)),
            users::updated_at.eq(now.naive_utc()),
        ))
        .execute(conn)
        .map(|_| ())
}

/// Stores a new password hash, retires the person's unused links, ends
/// every session of theirs and audits `account.password_set`, naming `via`
/// (how it was set) and how many sessions ended; returns the person as now
/// stored.
pub fn set_new_password(
    conn: &mut DbConnection,
    user_id: &str,
    phc: &str,
    via: &str,
    now: DateTime<Utc>,
) -> QueryResult<User> {
    set_password_hash(conn, user_id, phc, now)?;
    retire_links_of(conn, user_id, now)?;
    let ended = delete_sessions_of(conn, user_id)?;
    let user: User = users::table
        .find(user_id)
        .select(User::as_select())
        .first(conn)?;
    audit::record(
        conn,
        now,
        audit::Entry {
            actor: &user.email,
            action: Action::PasswordSet,
            target: &user.email,
            source_addr: None,
            details: serde_json::json!({ "via": via, "sessions_ended": ended }),
        },
    )?;
    Ok(user)
}

/// The person with this (normalised) email, if any.
pub fn find_person(conn: &mut DbConnection, email: &str) -> QueryResult<Option<User>> {
    users::table
        .filter(users::email.eq(email))
        .select(User::as_select())
        .first(conn)
        .optional()
}

/// Records that `user_id` signed in through the provider `issuer` as its
/// account `subject`: linked at the first time, its last time moved at
/// each. Returns the subject it was linked to before when that differs
/// (the provider gave the address to another of its accounts).
pub fn link_sso_identity(
    conn: &mut DbConnection,
    user_id: &str,
    (issuer, subject): (&str, &str),
    now: DateTime<Utc>,
) -> QueryResult<Option<String>> {
    use crate::db::schema::sso_identities as links;
    let known: Option<(String, String)> = links::table
        .find(user_id)
        .select((links::issuer, links::subject))
        .first(conn)
        .optional()?;
    match known {
        None => {
            diesel::insert_into(links::table)
                .values((
                    links::user_id.eq(user_id),
                    links::issuer.eq(issuer),
                    links::subject.eq(subject),
                    links::first_at.eq(now.naive_utc()),
                    links::last_at.eq(now.naive_utc()),
                ))
                .execute(conn)?;
            Ok(None)
        }
        Some((was_issuer, was_subject)) => {
            diesel::update(links::table.find(user_id))
                .set((
                    links::issuer.eq(issuer),
                    links::subject.eq(subject),
                    links::last_at.eq(now.naive_utc()),
                ))
                .execute(conn)?;
            Ok((was_issuer != issuer || was_subject != subject).then_some(was_subject))
        }
    }
}

/// Drops sessions that are over (absolute or idle) and links that have
/// expired, used or not (the `sessions_prune` job); returns how many rows
/// went.
pub fn prune(conn: &mut DbConnection, idle: Duration, now: DateTime<Utc>) -> QueryResult<usize> {
    let sessions = diesel::delete(
        sessions::table.filter(
            sessions::expires_at
                .le(now.naive_utc())
                .or(sessions::last_seen_at.le((now - idle).naive_utc())),
        ),
    )
    .execute(conn)?;
    let links =
        diesel::delete(account_links::table.filter(account_links::expires_at.le(now.naive_utc())))
            .execute(conn)?;
    Ok(sessions + links)
}
