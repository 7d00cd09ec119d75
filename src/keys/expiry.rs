//! The expiry sweep: queues one "expires soon" email for each key entering
//! its warning window and one "expired" email for each key past its expiry.
//! The outbox's unique dedupe key makes that exactly once, across restarts
//! and across processes sweeping at the same moment.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::dsl::{exists, not};
use diesel::prelude::*;

use super::caller::Caller;
use super::error::KeyError;
use super::model::{ApiKey, Key};
use super::notify::notify;
use super::owner::KeyOwner;
use crate::db::schema::{api_keys, email_outbox, teams, users};
use crate::db::{DbConnection, write_transaction};
use crate::duration::HumanDuration;
use crate::mail::Event;

/// Keys handled per event and round; the next round takes the rest.
const ROUND: i64 = 200;

/// Queues the due "expires soon" and "expired" emails; returns how many.
pub fn sweep(
    conn: &mut DbConnection,
    warning: HumanDuration,
    issuer: &str,
    now: DateTime<Utc>,
) -> Result<usize, KeyError> {
    let mut queued = 0;
    let window_end = (now + warning.as_chrono()).naive_utc();
    let ids = expiring_keys(conn, now, window_end)?;
    let expiring = with_owners(conn, &ids)?;
    let ids = expired_keys(conn, now)?;
    let expired = with_owners(conn, &ids)?;
    for (event, keys) in [(Event::Expiring, expiring), (Event::Expired, expired)] {
        for (row, owner) in keys {
            let key = Key::new(row, owner, now);
            let added = write_transaction(conn, |conn| {
                notify(conn, event, &key, (issuer, &Caller::Keygate), now)
            })?;
            queued += usize::from(added);
        }
    }
    Ok(queued)
}

/// Keys with no `event` email queued yet.
macro_rules! without_email {
    ($event:expr) => {
        not(exists(
            email_outbox::table
                .filter(email_outbox::key_id.eq(api_keys::id.nullable()))
                .filter(email_outbox::event.eq($event.as_str())),
        ))
    };
}

fn expiring_keys(
    conn: &mut DbConnection,
    now: DateTime<Utc>,
    window_end: NaiveDateTime,
) -> QueryResult<Vec<String>> {
    api_keys::table
        .filter(api_keys::revoked_at.is_null())
        .filter(api_keys::expires_at.gt(now.naive_utc()))
        .filter(api_keys::expires_at.le(window_end))
        .filter(without_email!(Event::Expiring))
        .select(api_keys::id)
        .order(api_keys::expires_at.asc())
        .limit(ROUND)
        .load(conn)
}

fn expired_keys(conn: &mut DbConnection, now: DateTime<Utc>) -> QueryResult<Vec<String>> {
    api_keys::table
        .filter(api_keys::revoked_at.is_null())
        .filter(api_keys::expires_at.le(now.naive_utc()))
        .filter(without_email!(Event::Expired))
        .select(api_keys::id)
        .order(api_keys::expires_at.asc())
        .limit(ROUND)
        .load(conn)
}

fn with_owners(conn: &mut DbConnection, ids: &[String]) -> QueryResult<Vec<(ApiKey, KeyOwner)>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<(ApiKey, Option<String>, Option<String>)> = api_keys::table
        .left_join(users::table)
        .left_join(teams::table)
        .filter(api_keys::id.eq_any(ids))
        .order(api_keys::expires_at.asc())
        .select((
            ApiKey::as_select(),
            users::email.nullable(),
            teams::name.nullable(),
        ))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|(row, email, team)| (row, KeyOwner::from_columns(email, team)))
        .collect())
}
