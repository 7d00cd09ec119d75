//! The deliveries table: one row per event and endpoint, written in the
//! transaction of the change; claimed by workers with a lease (several
//! processes never deliver one row at once), and its outcome recorded.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

use super::error::WebhookError;
use crate::db::schema::{webhook_deliveries, webhook_endpoints};
use crate::db::{DbConnection, write_transaction};
use crate::events::{self, EventType};
use crate::time::from_db;

/// Where a delivery stands; stored as its lower-case name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Waiting for its next attempt.
    Pending,
    /// The receiver answered 2xx.
    Delivered,
    /// Given up: out of attempts, or its endpoint was switched off.
    Failed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
        }
    }
}

/// A claimed delivery, as the worker sends it.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = webhook_deliveries)]
pub struct Claimed {
    pub id: String,
    pub endpoint_id: String,
    pub event_type: String,
    pub body: String,
    pub attempts: i32,
}

/// Due, unleased pending deliveries of enabled endpoints, oldest first: a
/// candidate list the claim narrows to one per endpoint with none in flight.
macro_rules! due {
    ($now:expr, $limit:expr) => {
        webhook_deliveries::table
            .filter(
                webhook_deliveries::endpoint_id.eq_any(
                    webhook_endpoints::table
                        .filter(webhook_endpoints::enabled.eq(true))
                        .select(webhook_endpoints::id),
                ),
            )
            .filter(webhook_deliveries::status.eq(Status::Pending.as_str()))
            .filter(webhook_deliveries::next_attempt_at.le($now))
            .filter(
                webhook_deliveries::locked_until
                    .is_null()
                    .or(webhook_deliveries::locked_until.le($now)),
            )
            .select((webhook_deliveries::id, webhook_deliveries::endpoint_id))
            .order((
                webhook_deliveries::next_attempt_at.asc(),
                webhook_deliveries::id.asc(),
            ))
            .limit($limit)
    };
}

/// The PostgreSQL advisory lock, held for the claiming transaction, that
/// makes the processes' claims take turns (the migrations' lock is 7411036,
/// the signing keys' 7411037).
const CLAIM_LOCK: &str = "SELECT pg_advisory_xact_lock(7411038)";

/// Whether the endpoint has a delivery in flight somewhere (a live lease).
fn in_flight_anywhere(conn: &mut DbConnection, now: NaiveDateTime) -> QueryResult<Vec<String>> {
    webhook_deliveries::table
        .filter(webhook_deliveries::status.eq(Status::Pending.as_str()))
        .filter(webhook_deliveries::locked_until.gt(now))
        .select(webhook_deliveries::endpoint_id)
        .distinct()
        .load(conn)
}

/// At most one per endpoint, none for an endpoint in `busy`, up to `limit`.
fn one_per_endpoint(
    candidates: Vec<(String, String)>,
    busy: &[String],
    limit: usize,
) -> Vec<String> {
    let mut taken: Vec<&str> = Vec::new();
    let mut ids = Vec::new();
    for (id, endpoint) in &candidates {
        if ids.len() == limit {
            break;
        }
        if busy.contains(endpoint) || taken.contains(&endpoint.as_str()) {
            continue;
        }
        taken.push(endpoint);
        ids.push(id.clone());
    }
    ids
}

/// Takes up to `limit` due deliveries, one per endpoint and none for an
/// endpoint with one in flight anywhere (so a receiver that stalls holds
/// one slot, and events reach each endpoint in order), and leases them to
/// the caller until `lease_until`. Claims are serialized (SQLite's write
/// transaction; on PostgreSQL a transaction-scoped advisory lock), so each
/// sees the leases of the claims before it.
pub fn claim_due(
    conn: &mut DbConnection,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
    limit: usize,
) -> QueryResult<Vec<Claimed>> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let now = now.naive_utc();
    let until = lease_until.naive_utc();
    // Mostly nothing is due: a plain read spares SQLite a write lock.
    let any: Vec<(String, String)> = due!(now, 1).load(conn)?;
    if any.is_empty() {
        return Ok(Vec::new());
    }
    // Enough candidates that a few busy endpoints' backlogs do not hide
    // the others' rows.
    let window = i64::try_from(limit.saturating_mul(20)).unwrap_or(i64::MAX);
    let lease = |conn: &mut DbConnection, ids: &[String]| {
        diesel::update(webhook_deliveries::table.filter(webhook_deliveries::id.eq_any(ids)))
            .set(webhook_deliveries::locked_until.eq(until))
            .execute(conn)
    };
    let ids: Vec<String> = match conn {
        DbConnection::Pg(_) => conn.transaction(|conn| {
            // Claims take turns: without it, two processes claiming at once
            // both see no lease on an endpoint, SKIP LOCKED hands each a
            // different row of it, and it has two deliveries in flight, the
            // newer perhaps first. A claim holds the lock for milliseconds.
            conn.batch_execute(CLAIM_LOCK)?;
            let busy = in_flight_anywhere(conn, now)?;
            let DbConnection::Pg(pg) = conn else {
                unreachable!("matched above")
            };
            let candidates: Vec<(String, String)> =
                due!(now, window).for_update().skip_locked().load(pg)?;
            let ids = one_per_endpoint(candidates, &busy, limit);
            lease(conn, &ids)?;
            Ok::<_, diesel::result::Error>(ids)
        })?,
        DbConnection::Sqlite(_) => write_transaction(conn, |conn| {
            let busy = in_flight_anywhere(conn, now)?;
            let candidates = due!(now, window).load(conn)?;
            let ids = one_per_endpoint(candidates, &busy, limit);
            lease(conn, &ids)?;
            Ok::<_, diesel::result::Error>(ids)
        })?,
    };
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    webhook_deliveries::table
        .filter(webhook_deliveries::id.eq_any(&ids))
        .order((
            webhook_deliveries::next_attempt_at.asc(),
            webhook_deliveries::id.asc(),
        ))
        .select(Claimed::as_select())
        .load(conn)
}

/// What one attempt came to.
#[derive(Debug, Clone)]
pub struct Attempt {
    /// The receiver's status code, if it answered.
    pub status: Option<u16>,
    /// Why it failed (no answer in time, a refused connection, a non-2xx
    /// status); `None` for a delivery.
    pub error: Option<String>,
}

impl Attempt {
    pub fn delivered(&self) -> bool {
        self.error.is_none()
    }
}

/// Records an attempt on a leased delivery: delivered, retried at
/// `retry_at`, or given up (`None`); and the endpoint's health with it.
/// Returns the endpoint's `failing_since` after the attempt.
pub fn record_attempt(
    conn: &mut DbConnection,
    claimed: &Claimed,
    attempt: &Attempt,
    retry_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> QueryResult<Option<DateTime<Utc>>> {
    let status = match (attempt.delivered(), retry_at) {
        (true, _) => Status::Delivered,
        (false, Some(_)) => Status::Pending,
        (false, None) => Status::Failed,
    };
    let next = retry_at.unwrap_or(now).naive_utc();
    write_transaction(conn, |conn| {
        diesel::update(webhook_deliveries::table.find(&claimed.id))
            .set((
                webhook_deliveries::status.eq(status.as_str()),
                webhook_deliveries::attempts.eq(webhook_deliveries::attempts + 1),
                webhook_deliveries::next_attempt_at.eq(next),
                webhook_deliveries::locked_until.eq(None::<NaiveDateTime>),
                webhook_deliveries::last_attempt_at.eq(now.naive_utc()),
                webhook_deliveries::last_status.eq(attempt.status.map(i32::from)),
                webhook_deliveries::last_error.eq(attempt.error.as_deref()),
                webhook_deliveries::delivered_at.eq(attempt.delivered().then_some(now.naive_utc())),
            ))
            .execute(conn)?;
        let endpoint = webhook_endpoints::table.find(&claimed.endpoint_id);
        if attempt.delivered() {
            diesel::update(endpoint)
                .set(webhook_endpoints::failing_since.eq(None::<NaiveDateTime>))
                .execute(conn)?;
            return Ok(None);
        }
        diesel::update(endpoint.filter(webhook_endpoints::failing_since.is_null()))
            .set(webhook_endpoints::failing_since.eq(now.naive_utc()))
            .execute(conn)?;
        let since: Option<Option<NaiveDateTime>> = endpoint
            .select(webhook_endpoints::failing_since)
            .first(conn)
            .optional()?;
        Ok(since.flatten().map(from_db))
    })
}

/// Gives leased deliveries back untried: due again at once, for any process.
pub fn release(conn: &mut DbConnection, ids: &[String]) -> QueryResult<()> {
    diesel::update(webhook_deliveries::table.filter(webhook_deliveries::id.eq_any(ids)))
        .set(webhook_deliveries::locked_until.eq(None::<NaiveDateTime>))
        .execute(conn)
        .map(|_| ())
}

/// Switches off an endpoint that has failed every attempt since
/// `failing_since`: it receives nothing more, and what it still had
/// pending is given up. Returns false if it was off already.
pub(super) fn switch_off(
    conn: &mut DbConnection,
    endpoint_id: &str,
    reason: &str,
    now: DateTime<Utc>,
) -> QueryResult<bool> {
    let changed = diesel::update(
        webhook_endpoints::table
            .find(endpoint_id)
            .filter(webhook_endpoints::enabled.eq(true)),
    )
    .set((
        webhook_endpoints::enabled.eq(false),
        webhook_endpoints::disabled_reason.eq(reason),
        webhook_endpoints::updated_at.eq(now.naive_utc()),
    ))
    .execute(conn)?;
    if changed == 0 {
        return Ok(false);
    }
    diesel::update(
        webhook_deliveries::table
            .filter(webhook_deliveries::endpoint_id.eq(endpoint_id))
            .filter(webhook_deliveries::status.eq(Status::Pending.as_str())),
    )
    .set((
        webhook_deliveries::status.eq(Status::Failed.as_str()),
        webhook_deliveries::locked_until.eq(None::<NaiveDateTime>),
        webhook_deliveries::last_error.eq("the endpoint was switched off"),
    ))
    .execute(conn)?;
    Ok(true)
}

/// The error of the endpoint's most recent failed attempt.
pub(super) fn last_error(
    conn: &mut DbConnection,
    endpoint_id: &str,
) -> QueryResult<Option<String>> {
    let found: Option<Option<String>> = webhook_deliveries::table
        .filter(webhook_deliveries::endpoint_id.eq(endpoint_id))
        .filter(webhook_deliveries::last_error.is_not_null())
        .order(webhook_deliveries::last_attempt_at.desc())
        .select(webhook_deliveries::last_error)
        .first(conn)
        .optional()?;
    Ok(found.flatten())
}

/// The pending count and the oldest pending delivery's creation time (of
/// enabled endpoints): the metrics' gauges.
pub fn pending(conn: &mut DbConnection) -> QueryResult<(i64, Option<DateTime<Utc>>)> {
    let pending = webhook_deliveries::table
        .inner_join(webhook_endpoints::table)
        .filter(webhook_endpoints::enabled.eq(true))
        .filter(webhook_deliveries::status.eq(Status::Pending.as_str()));
    let count = pending.count().get_result(conn)?;
    let oldest: Option<NaiveDateTime> = pending
        .select(diesel::dsl::min(webhook_deliveries::created_at))
        .first(conn)?;
    Ok((count, oldest.map(from_db)))
}

/// A delivery as the API and the console show it; its body is the event.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DeliveryView {
    /// The `webhook-id` it is sent with.
    pub id: String,
    pub event_type: String,
    /// `pending`, `delivered` or `failed`.
    pub status: String,
    pub attempts: i32,
    #[schema(required = true)]
    pub last_status_code: Option<i32>,
    #[schema(required = true)]
    pub last_error: Option<String>,
    #[serde(with = "crate::time::utc")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: DateTime<Utc>,
    #[serde(with = "crate::time::utc_opt")]
    #[schema(required = true, value_type = Option<String>, format = DateTime)]
    pub last_attempt_at: Option<DateTime<Utc>>,
    /// When it is tried next; `null` once delivered or given up.
    #[serde(with = "crate::time::utc_opt")]
    #[schema(required = true, value_type = Option<String>, format = DateTime)]
    pub next_attempt_at: Option<DateTime<Utc>>,
    #[serde(with = "crate::time::utc_opt")]
    #[schema(required = true, value_type = Option<String>, format = DateTime)]
    pub delivered_at: Option<DateTime<Utc>>,
}

type DeliveryRow = (
    String,
    String,
    String,
    i32,
    Option<i32>,
    Option<String>,
    NaiveDateTime,
    Option<NaiveDateTime>,
    NaiveDateTime,
    Option<NaiveDateTime>,
);

fn view(
    (id, event_type, status, attempts, code, error, created, last, next, delivered): DeliveryRow,
) -> DeliveryView {
    let pending = status == Status::Pending.as_str();
    DeliveryView {
        id,
        event_type,
        status,
        attempts,
        last_status_code: code,
        last_error: error,
        created_at: from_db(created),
        last_attempt_at: last.map(from_db),
        next_attempt_at: pending.then(|| from_db(next)),
        delivered_at: delivered.map(from_db),
    }
}

macro_rules! view_columns {
    () => {
        (
            webhook_deliveries::id,
            webhook_deliveries::event_type,
            webhook_deliveries::status,
            webhook_deliveries::attempts,
            webhook_deliveries::last_status,
            webhook_deliveries::last_error,
            webhook_deliveries::created_at,
            webhook_deliveries::last_attempt_at,
            webhook_deliveries::next_attempt_at,
            webhook_deliveries::delivered_at,
        )
    };
}

/// An endpoint's most recent deliveries, newest first.
pub fn recent(
    conn: &mut DbConnection,
    endpoint_id: &str,
    limit: i64,
) -> Result<Vec<DeliveryView>, WebhookError> {
    super::endpoint::find(conn, endpoint_id)?;
    let rows: Vec<DeliveryRow> = webhook_deliveries::table
        .filter(webhook_deliveries::endpoint_id.eq(endpoint_id.trim()))
        .order((
            webhook_deliveries::created_at.desc(),
            webhook_deliveries::id.desc(),
        ))
        .limit(limit)
        .select(view_columns!())
        .load(conn)?;
    Ok(rows.into_iter().map(view).collect())
}

pub(super) fn find_view(conn: &mut DbConnection, id: &str) -> Result<DeliveryView, WebhookError> {
    let row: DeliveryRow = webhook_deliveries::table
        .find(id)
        .select(view_columns!())
        .first(conn)
        .optional()?
        .ok_or_else(|| WebhookError::DeliveryNotFound { id: id.to_owned() })?;
    Ok(view(row))
}

/// Queues a delivered or given-up delivery again, same ID and body (a
/// receiver that deduplicates by `webhook-id` sees the same event): due at
/// once, its attempts counted afresh.
pub fn resend(
    conn: &mut DbConnection,
    endpoint_id: &str,
    delivery_id: &str,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<DeliveryView, WebhookError> {
    write_transaction(conn, |conn| {
        let endpoint = super::endpoint::find(conn, endpoint_id)?;
        if !endpoint.enabled {
            return Err(WebhookError::EndpointDisabled { id: endpoint.id });
        }
        let target = webhook_deliveries::table
            .find(delivery_id.trim())
            .filter(webhook_deliveries::endpoint_id.eq(endpoint_id.trim()));
        let status: String = target
            .select(webhook_deliveries::status)
            .first(conn)
            .optional()?
            .ok_or_else(|| WebhookError::DeliveryNotFound {
                id: delivery_id.to_owned(),
            })?;
        if status == Status::Pending.as_str() {
            return Err(WebhookError::DeliveryPending {
                id: delivery_id.to_owned(),
            });
        }
        diesel::update(target)
            .set((
                webhook_deliveries::status.eq(Status::Pending.as_str()),
                webhook_deliveries::attempts.eq(0),
                webhook_deliveries::next_attempt_at.eq(now.naive_utc()),
                webhook_deliveries::locked_until.eq(None::<NaiveDateTime>),
                webhook_deliveries::delivered_at.eq(None::<NaiveDateTime>),
            ))
            .execute(conn)?;
        crate::audit::record(
            conn,
            now,
            crate::audit::Entry {
                actor,
                action: crate::audit::Action::WebhookResent,
                target: &format!("webhook:{}", endpoint.id),
                source_addr: None,
                details: serde_json::json!({ "delivery": delivery_id.trim() }),
            },
        )?;
        let row: DeliveryRow = target.select(view_columns!()).first(conn)?;
        Ok(view(row))
    })
}

/// Queues a `webhook.test` event for one endpoint (whatever types it
/// wants), audited; returns the delivery as the delivery log shows it.
pub fn send_test(
    conn: &mut DbConnection,
    endpoint_id: &str,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<DeliveryView, WebhookError> {
    write_transaction(conn, |conn| {
        let endpoint = super::endpoint::find(conn, endpoint_id)?;
        if !endpoint.enabled {
            return Err(WebhookError::EndpointDisabled { id: endpoint.id });
        }
        let body = events::body(
            EventType::WebhookTest,
            json!({ "endpoint_id": endpoint.id, "actor": actor }),
            now,
        );
        let id = events::new_message_id();
        events::insert(
            conn,
            &id,
            &endpoint.id,
            EventType::WebhookTest,
            &id,
            &body,
            now,
        )?;
        crate::audit::record(
            conn,
            now,
            crate::audit::Entry {
                actor,
                action: crate::audit::Action::WebhookTested,
                target: &format!("webhook:{}", endpoint.id),
                source_addr: None,
                details: json!({ "delivery": id }),
            },
        )?;
        find_view(conn, &id)
    })
}
