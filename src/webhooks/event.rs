//! The event types endpoints may subscribe to, and [`emit`]: an event
//! queued for every endpoint that wants it, in the caller's transaction.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::error::WebhookError;
use super::{endpoint, outbox};
use crate::audit::{self, Action};
use crate::db::{DbConnection, write_transaction};
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
    fn once_per_object(self) -> bool {
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
    let endpoints = outbox::subscribed_endpoints(conn, event.kind)?;
    if endpoints.is_empty() {
        return Ok(0);
    }
    let body = body(event.kind, event.data, now);
    let mut queued = 0;
    for endpoint_id in endpoints {
        let id = outbox::new_message_id();
        let dedupe = if event.kind.once_per_object() {
            format!("{}:{}:{}", endpoint_id, event.kind.as_str(), event.object)
        } else {
            id.clone()
        };
        queued += outbox::insert(conn, &id, &endpoint_id, event.kind, &dedupe, &body, now)?;
    }
    Ok(queued)
}

/// Queues a `webhook.test` event for one endpoint (whatever types it
/// wants), audited; returns the delivery as the delivery log shows it.
pub fn send_test(
    conn: &mut DbConnection,
    endpoint_id: &str,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<outbox::DeliveryView, WebhookError> {
    write_transaction(conn, |conn| {
        let endpoint = endpoint::find(conn, endpoint_id)?;
        if !endpoint.enabled {
            return Err(WebhookError::EndpointDisabled { id: endpoint.id });
        }
        let body = body(
            EventType::WebhookTest,
            json!({ "endpoint_id": endpoint.id, "actor": actor }),
            now,
        );
        let id = outbox::new_message_id();
        outbox::insert(
            conn,
            &id,
            &endpoint.id,
            EventType::WebhookTest,
            &id,
            &body,
            now,
        )?;
        audit::record(
            conn,
            now,
            audit::Entry {
                actor,
                action: Action::WebhookTested,
                target: &format!("webhook:{}", endpoint.id),
                source_addr: None,
                details: json!({ "delivery": id }),
            },
        )?;
        outbox::find_view(conn, &id)
    })
}

/// The payload: `{"type", "timestamp", "data"}`.
fn body(kind: EventType, data: Value, now: DateTime<Utc>) -> String {
    json!({
        "type": kind.as_str(),
        "timestamp": rfc3339(now),
        "data": data,
    })
    .to_string()
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
