//! An endpoint that has failed every attempt for 5 days is switched off:
//! it receives nothing more, what it had pending is given up, the change is
//! audited and every enabled admin is emailed, in one transaction.

use chrono::{DateTime, Utc};
use serde_json::json;

use super::endpoint;
use super::error::WebhookError;
use super::outbox;
use crate::audit::{self, Action};
use crate::db::{DbConnection, write_transaction};
use crate::mail::{self, AdminNotice, WebhookNotice};
use crate::time::rfc3339;

/// How long an endpoint may fail every attempt before it is switched off.
pub const SWITCH_OFF_AFTER: chrono::Duration = chrono::Duration::days(5);

/// Why a failed delivery can end the endpoint: a switch-off that could not
/// be written (its email failed to render, the database failed).
#[derive(Debug, thiserror::Error)]
pub enum HealthError {
    #[error(transparent)]
    Webhook(#[from] WebhookError),
    #[error(transparent)]
    Queue(#[from] mail::outbox::QueueError),
}

impl From<diesel::result::Error> for HealthError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Webhook(e.into())
    }
}

/// Switches the endpoint off if it has been failing since `since` for
/// [`SWITCH_OFF_AFTER`]; returns whether this call did.
pub fn switch_off_if_failing(
    conn: &mut DbConnection,
    endpoint_id: &str,
    since: DateTime<Utc>,
    issuer: &str,
    now: DateTime<Utc>,
) -> Result<bool, HealthError> {
    if now - since < SWITCH_OFF_AFTER {
        return Ok(false);
    }
    let failing_days = (now - since).num_days();
    let reason = format!("every delivery failed for {failing_days} days");
    write_transaction(conn, |conn| {
        let last_error = outbox::last_error(conn, endpoint_id)?;
        if !outbox::switch_off(conn, endpoint_id, &reason, now)? {
            return Ok(false);
        }
        let endpoint = endpoint::find(conn, endpoint_id)?;
        audit::record(
            conn,
            now,
            audit::Entry {
                actor: audit::SYSTEM,
                action: Action::WebhookDisabled,
                target: &format!("webhook:{}", endpoint.id),
                source_addr: None,
                details: json!({
                    "url": endpoint.url,
                    "failing_since": rfc3339(since),
                    "last_error": last_error,
                }),
            },
        )?;
        let failing_since = rfc3339(since);
        let occurred_at = rfc3339(now);
        let about = format!("{}:{}", endpoint.id, occurred_at);
        for admin in crate::users::enabled_admin_emails(conn)? {
            let context = WebhookNotice {
                product: mail::PRODUCT,
                issuer,
                recipient: &admin,
                endpoint_id: &endpoint.id,
                url: &endpoint.url,
                description: &endpoint.description,
                failing_since: &failing_since,
                failing_days,
                last_error: last_error.as_deref(),
                occurred_at: &occurred_at,
            };
            mail::enqueue_notice(
                conn,
                AdminNotice::WebhookDisabled,
                &about,
                &admin,
                &context,
                now,
            )?;
        }
        tracing::warn!(endpoint = %endpoint.id, failing_days, "webhook endpoint switched off; the admins are emailed");
        Ok(true)
    })
}
