//! Events out, the writing side: the event types webhook endpoints may
//! subscribe to, and [`emit`], which queues an event for every endpoint
//! that wants it in the caller's transaction (the outbox `crate::webhooks`
//! delivers from). Every feature that causes an event calls it; it depends
//! on nothing but the database, so they all may.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use diesel::prelude::*;

use crate::db::DbConnection;
use crate::db::schema::{webhook_deliveries, webhook_endpoints};
use crate::time::rfc3339;

/// What happened; its dotted name is the payload's `type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    KeyCreated,
    KeyRotated,
    KeyRevoked,
    /// Revoked because its secret was reported leaked.
    KeyExposed,
    KeyExpiring,
    KeyExpired,
    KeyTransferred,
    KeyApprovalRequested,
    KeyApproved,
    KeyDenied,
    UserCreated,
    UserDisabled,
    UserEnabled,
    SigningKeyRotated,
    /// Sent on request, to one endpoint ("Send test event").
    WebhookTest,
}

impl EventType {
    pub const ALL: [Self; 15] = [
        Self::KeyCreated,
        Self::KeyRotated,
        Self::KeyRevoked,
        Self::KeyExposed,
        Self::KeyExpiring,
        Self::KeyExpired,
        Self::KeyTransferred,
        Self::KeyApprovalRequested,
        Self::KeyApproved,
        Self::KeyDenied,
        Self::UserCreated,
        Self::UserDisabled,
        Self::UserEnabled,
        Self::SigningKeyRotated,
        Self::WebhookTest,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::KeyCreated => "key.created",
            Self::KeyRotated => "key.rotated",
            Self::KeyRevoked => "key.revoked",
            Self::KeyExposed => "key.exposed",
            Self::KeyExpiring => "key.expiring",
            Self::KeyExpired => "key.expired",
            Self::KeyTransferred => "key.transferred",
            Self::KeyApprovalRequested => "key.approval_requested",
            Self::KeyApproved => "key.approved",
            Self::KeyDenied => "key.denied",
            Self::UserCreated => "user.created",
            Self::UserDisabled => "user.disabled",
            Self::UserEnabled => "user.enabled",
            Self::SigningKeyRotated => "signing_key.rotated",
            Self::WebhookTest => "webhook.test",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == text)
    }

    /// Whether the event can happen only once for its object (a key is
    /// created once, expires once): queued once per endpoint even if the
    /// code that notices it runs again (the expiry sweep on two processes).
    pub fn once_per_object(self) -> bool {
        matches!(
            self,
            Self::KeyCreated
                | Self::KeyExpiring
                | Self::KeyExpired
                | Self::KeyApprovalRequested
                | Self::KeyApproved
                | Self::KeyDenied
                | Self::KeyRevoked
                | Self::KeyExposed
                | Self::UserCreated
        )
    }

    /// Every known type's name, for a refusal that lists them.
    pub fn known() -> String {
        Self::ALL.map(Self::as_str).join(", ")
    }
}

/// One event to send: its type, what it is about (a key's row ID, an
/// email, a `kid`: what makes a once-only event unique) and its `data`.
#[derive(Debug, Clone)]
pub struct Event<'a> {
    pub kind: EventType,
    pub object: &'a str,
    pub data: Value,
}

/// Queues `event` for every enabled endpoint that wants its type, in the
/// caller's transaction: if the change rolls back, so does the event.
/// Returns how many deliveries were queued.
pub fn emit(
    conn: &mut DbConnection,
    event: Event<'_>,
    now: DateTime<Utc>,
) -> diesel::QueryResult<usize> {
    let endpoints = subscribed_endpoints(conn, event.kind)?;
    if endpoints.is_empty() {
        return Ok(0);
    }
    let body = body(event.kind, event.data, now);
    let mut queued = 0;
    for endpoint_id in endpoints {
        let id = new_message_id();
        let dedupe = if event.kind.once_per_object() {
            format!("{}:{}:{}", endpoint_id, event.kind.as_str(), event.object)
        } else {
            id.clone()
        };
        queued += insert(conn, &id, &endpoint_id, event.kind, &dedupe, &body, now)?;
    }
    Ok(queued)
}

/// The payload: `{"type", "timestamp", "data"}`.
pub fn body(kind: EventType, data: Value, now: DateTime<Utc>) -> String {
    json!({
        "type": kind.as_str(),
        "timestamp": rfc3339(now),
        "data": data,
    })
    .to_string()
}

/// `msg_` and a time-ordered UUID: the `webhook-id` header.
pub fn new_message_id() -> String {
    format!("msg_{}", uuid::Uuid::now_v7().simple())
}

/// The enabled endpoints that want `kind`.
pub fn subscribed_endpoints(conn: &mut DbConnection, kind: EventType) -> QueryResult<Vec<String>> {
    let rows: Vec<(String, String)> = webhook_endpoints::table
        .filter(webhook_endpoints::enabled.eq(true))
        .select((webhook_endpoints::id, webhook_endpoints::events))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .filter(|(_, events)| events.is_empty() || events.split(' ').any(|e| e == kind.as_str()))
        .map(|(id, _)| id)
        .collect())
}

/// Queues one delivery unless its dedupe key is taken; returns 1 if added.
pub fn insert(
    conn: &mut DbConnection,
    id: &str,
    endpoint_id: &str,
    kind: EventType,
    dedupe: &str,
    body: &str,
    now: DateTime<Utc>,
) -> QueryResult<usize> {
    let insert = diesel::insert_into(webhook_deliveries::table)
        .values((
            webhook_deliveries::id.eq(id),
            webhook_deliveries::endpoint_id.eq(endpoint_id),
            webhook_deliveries::event_type.eq(kind.as_str()),
            webhook_deliveries::dedupe_key.eq(dedupe),
            webhook_deliveries::body.eq(body),
            webhook_deliveries::status.eq("pending"),
            webhook_deliveries::attempts.eq(0),
            webhook_deliveries::created_at.eq(now.naive_utc()),
            webhook_deliveries::next_attempt_at.eq(now.naive_utc()),
        ))
        .on_conflict(webhook_deliveries::dedupe_key)
        .do_nothing();
    match conn {
        DbConnection::Sqlite(c) => insert.execute(c),
        DbConnection::Pg(c) => insert.execute(c),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_parses_from_its_name() {
        for t in EventType::ALL {
            assert_eq!(EventType::parse(t.as_str()), Some(t));
        }
        assert_eq!(EventType::parse("key.made"), None);
        assert!(EventType::known().starts_with("key.created, key.rotated"));
    }
}
