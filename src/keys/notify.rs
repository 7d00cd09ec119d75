//! What a change to a key tells the world, in the caller's transaction:
//! the owner's emails (a team's: its notify address or every enabled
//! member) and the webhook event of the same moment.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde_json::json;

use super::caller::Caller;
use super::model::Key;
use super::owner::{self, Recipient};
use crate::db::DbConnection;
use crate::events::{self, EventType};
use crate::mail::outbox::{AboutKey, QueueError};
use crate::mail::{self, Event};

/// Queues `event`'s email to the key's owner (a team's: its notify address
/// or every enabled member), in the caller's transaction: it names the
/// keygate (`issuer`) it comes from and who acted. True when any was queued.
pub(super) fn notify(
    conn: &mut DbConnection,
    event: Event,
    key: &Key,
    (issuer, by): (&str, &Caller),
    now: DateTime<Utc>,
) -> Result<bool, QueueError> {
    let recipients = owner::recipients(conn, &key.holder())?;
    notify_each(conn, event, key, &recipients, (issuer, by), now)
}

/// Queues `event`'s email about `key` to each of `recipients`.
pub(super) fn notify_each(
    conn: &mut DbConnection,
    event: Event,
    key: &Key,
    recipients: &[Recipient],
    by: (&str, &Caller),
    now: DateTime<Utc>,
) -> Result<bool, QueueError> {
    notify_view(conn, event, (key, key), recipients, by, now)
}

/// [`notify_each`] with what the template shows of the key (`view`: the
/// key with more beside it, such as a transfer's two owners).
pub(super) fn notify_view(
    conn: &mut DbConnection,
    event: Event,
    (key, view): (&Key, &impl serde::Serialize),
    recipients: &[Recipient],
    by: (&str, &Caller),
    now: DateTime<Utc>,
) -> Result<bool, QueueError> {
    let (issuer, by) = by;
    publish(conn, event, (key, view), by, now)?;
    let mut queued = false;
    for recipient in recipients {
        let about = AboutKey {
            id: &key.id,
            owner: &recipient.address,
            relation: &recipient.relation,
            created_by: &key.created_by,
            view,
        };
        queued |= mail::enqueue_key_event(conn, event, about, issuer, by.actor(), now)?;
    }
    Ok(queued)
}

/// The webhook event type of a key's email event: the same moments.
fn event_type(event: Event) -> EventType {
    match event {
        Event::Created => EventType::KeyCreated,
        Event::Rotated => EventType::KeyRotated,
        Event::Revoked => EventType::KeyRevoked,
        Event::Exposed => EventType::KeyExposed,
        Event::Expiring => EventType::KeyExpiring,
        Event::Expired => EventType::KeyExpired,
        Event::Transferred => EventType::KeyTransferred,
        Event::ApprovalRequested => EventType::KeyApprovalRequested,
        Event::Approved => EventType::KeyApproved,
        Event::Denied => EventType::KeyDenied,
    }
}

/// Tells the systems around keygate (`crate::webhooks`) of `event`, in the
/// caller's transaction: the key object as the API shows it (`view`: with
/// a transfer's two owners beside it), who acted and, where there is one,
/// the reason. Every moment a key's owner is emailed about is one event,
/// whoever the email goes to (none, for a team with no one to tell).
fn publish(
    conn: &mut DbConnection,
    event: Event,
    (key, view): (&Key, &impl serde::Serialize),
    by: &Caller,
    now: DateTime<Utc>,
) -> QueryResult<usize> {
    let mut data = serde_json::to_value(view).unwrap_or_else(|_| json!({}));
    data["actor"] = by.actor().into();
    let reason = match event {
        Event::Revoked | Event::Exposed | Event::Denied => {
            key.revoked_reason.clone().map(Into::into)
        }
        Event::Transferred => data
            .get("transfer_reason")
            .filter(|r| !r.is_null())
            .cloned(),
        _ => None,
    };
    if let Some(reason) = reason {
        data["reason"] = reason;
    }
    let event = events::Event {
        kind: event_type(event),
        object: &key.id,
        data,
    };
    events::emit(conn, event, now)
}
