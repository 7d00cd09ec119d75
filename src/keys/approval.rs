//! Keys that wait for an admin (INTERFACE.md "Approval"): a key holding a
//! scope some API marks as needing approval, created by someone who is not
//! an admin, is created `pending`; the token endpoint refuses it until an
//! admin approves it. A denied key is revoked; a request undecided for
//! [`UNDECIDED_FOR`] is denied by keygate.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde_json::json;

use super::caller::Caller;
use super::error::KeyError;
use super::model::{ApiKey, Key, KeyStatus};
use super::notify::notify_each;
use super::owner;
use super::rules;
use super::service::{Lock, Service, record, visible_row};
use crate::audit::Action;
use crate::db::schema::{api_keys, users};
use crate::db::{DbConnection, write_transaction};
use crate::mail::Event;
use crate::mail::outbox::QueueError;

/// How long a request may wait for a decision before keygate denies it.
pub const UNDECIDED_FOR: chrono::Duration = chrono::Duration::days(7);

/// The reason a request undecided for [`UNDECIDED_FOR`] is revoked with.
pub const UNDECIDED_REASON: &str = "not approved within 7 days";

impl Service {
    /// Approves a pending key: it works from the next request on. Admins only.
    pub fn approve(
        &self,
        conn: &mut DbConnection,
        caller: &Caller,
        client_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Key, KeyError> {
        if !caller.is_admin() {
            return Err(KeyError::AdminOnly);
        }
        write_transaction(conn, |conn| {
            let (row, owner) = visible_row(conn, caller, client_id, Lock::ForUpdate)?;
            refuse_unless_pending(&row, now)?;
            let row: ApiKey = diesel::update(api_keys::table.find(&row.id))
                .set((
                    api_keys::pending_since.eq(None::<chrono::NaiveDateTime>),
                    api_keys::approved_by.eq(caller.actor()),
                    api_keys::approved_at.eq(now.naive_utc()),
                    api_keys::updated_at.eq(now.naive_utc()),
                ))
                .returning(ApiKey::columns())
                .get_result(conn)?;
            record(
                conn,
                (caller, Action::KeyApproved, client_id),
                None,
                json!({ "scopes": row.scopes.to_vec(), "requested_by": row.created_by }),
                now,
            )?;
            let key = Key::new(row, owner, now);
            self.tell_requester(conn, Event::Approved, &key, caller, now)?;
            Ok(key)
        })
    }

    /// Denies a pending key: it is revoked for good. Admins only.
    pub fn deny(
        &self,
        conn: &mut DbConnection,
        caller: &Caller,
        client_id: &str,
        reason: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Key, KeyError> {
        if !caller.is_admin() {
            return Err(KeyError::AdminOnly);
        }
        let reason = rules::check_reason(reason)?;
        write_transaction(conn, |conn| {
            let (row, owner) = visible_row(conn, caller, client_id, Lock::ForUpdate)?;
            refuse_unless_pending(&row, now)?;
            let revoked_reason = match reason {
                Some(reason) => format!("denied: {reason}"),
                None => "denied".to_owned(),
            };
            let row: ApiKey = diesel::update(api_keys::table.find(&row.id))
                .set((
                    api_keys::revoked_at.eq(now.naive_utc()),
                    api_keys::revoked_by.eq(caller.actor()),
                    api_keys::revoked_reason.eq(&revoked_reason),
                    api_keys::updated_at.eq(now.naive_utc()),
                ))
                .returning(ApiKey::columns())
                .get_result(conn)?;
            record(
                conn,
                (caller, Action::KeyDenied, client_id),
                None,
                json!({ "reason": reason, "requested_by": row.created_by }),
                now,
            )?;
            let key = Key::new(row, owner, now);
            self.tell_requester(conn, Event::Denied, &key, caller, now)?;
            Ok(key)
        })
    }

    /// Denies every request undecided for [`UNDECIDED_FOR`]; returns how
    /// many. Each in its own transaction, so one failure leaves the others
    /// done and itself for the next sweep.
    pub fn deny_undecided(
        &self,
        conn: &mut DbConnection,
        now: DateTime<Utc>,
    ) -> Result<usize, KeyError> {
        let cutoff = (now - UNDECIDED_FOR).naive_utc();
        let stale: Vec<String> = api_keys::table
            .filter(api_keys::pending_since.le(cutoff))
            .filter(api_keys::revoked_at.is_null())
            .select(api_keys::client_id)
            .load(conn)?;
        let mut denied = 0;
        for client_id in stale {
            match self.deny(
                conn,
                &Caller::Keygate,
                &client_id,
                Some(UNDECIDED_REASON),
                now,
            ) {
                Ok(_) => denied += 1,
                // Decided or revoked since it was read: nothing left to do.
                Err(KeyError::NotPending(_) | KeyError::Revoked(_) | KeyError::Expired(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(denied)
    }

    /// Emails the person who asked for `key` (its creator), or its owners
    /// when no person did.
    fn tell_requester(
        &self,
        conn: &mut DbConnection,
        event: Event,
        key: &Key,
        caller: &Caller,
        now: DateTime<Utc>,
    ) -> Result<bool, QueueError> {
        let creator: Option<String> = users::table
            .filter(users::email.eq(&key.created_by))
            .select(users::email)
            .first(conn)
            .optional()?;
        let recipients = match creator {
            Some(email) => vec![owner::Recipient::new(email, "who asked for this API key")],
            None => owner::recipients(conn, &key.holder())?,
        };
        notify_each(conn, event, key, &recipients, (&self.issuer, caller), now)
    }
}

/// Refuses to decide on a key that is not waiting for a decision.
fn refuse_unless_pending(row: &ApiKey, now: DateTime<Utc>) -> Result<(), KeyError> {
    match row.status(now) {
        KeyStatus::Pending => Ok(()),
        KeyStatus::Revoked => Err(KeyError::Revoked(row.client_id.to_string())),
        KeyStatus::Expired => Err(KeyError::Expired(row.client_id.to_string())),
        KeyStatus::Active => Err(KeyError::NotPending(row.client_id.to_string())),
    }
}
