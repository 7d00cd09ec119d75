//! The whole audit log out, oldest first, for a SIEM (`GET
//! /api/v1/audit-events` with `Accept: application/x-ndjson`) or a file
//! (`keygate audit export`): read in batches ordered by (time, ID) and
//! written as they come, so millions of events take the memory of one
//! batch. A batch starts after the last event of the one before (keyset,
//! not an offset), so events recorded meanwhile neither shift nor repeat
//! what is still to come.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::{AuditEvent, EventFilter};
use crate::db::DbConnection;
use crate::db::schema::audit_events;

/// Events read at a time.
pub const BATCH: i64 = 500;

/// The CSV export's columns, in order: the fields of an event.
pub const CSV_HEADER: [&str; 7] = [
    "id",
    "occurred_at",
    "actor",
    "action",
    "target",
    "source_addr",
    "details",
];

/// Where the next batch starts: after this event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct After {
    occurred_at: NaiveDateTime,
    id: String,
}

impl After {
    /// Past the last event of `batch`, or `None` when it is empty.
    pub fn last_of(batch: &[AuditEvent]) -> Option<Self> {
        batch.last().map(|e| Self {
            occurred_at: e.occurred_at,
            id: e.id.clone(),
        })
    }
}

/// Up to `limit` events `filter` keeps, oldest first, after `after`.
pub fn batch(
    conn: &mut DbConnection,
    filter: &EventFilter,
    after: Option<&After>,
    limit: i64,
) -> QueryResult<Vec<AuditEvent>> {
    let mut query = audit_events::table
        .select(AuditEvent::as_select())
        .order((audit_events::occurred_at.asc(), audit_events::id.asc()))
        .limit(limit)
        .into_boxed();
    if let Some(after) = after {
        query = query.filter(
            audit_events::occurred_at
                .gt(after.occurred_at)
                .or(audit_events::occurred_at
                    .eq(after.occurred_at)
                    .and(audit_events::id.gt(after.id.clone()))),
        );
    }
    if let Some(actor) = &filter.actor {
        query = query.filter(audit_events::actor.eq(actor.clone()));
    }
    if let Some(target) = &filter.target {
        query = query.filter(audit_events::target.eq(target.clone()));
    }
    if let Some(action) = &filter.action {
        query = query.filter(audit_events::action.eq(action.clone()));
    }
    if let Some(since) = filter.since {
        query = query.filter(audit_events::occurred_at.ge(since.naive_utc()));
    }
    if let Some(until) = filter.until {
        query = query.filter(audit_events::occurred_at.le(until.naive_utc()));
    }
    query.load(conn)
}

/// One event as a line of NDJSON: the object `/api/v1/audit-events` lists.
pub fn ndjson_line(event: &AuditEvent) -> serde_json::Result<String> {
    let mut line = serde_json::to_string(event)?;
    line.push('\n');
    Ok(line)
}

/// One event as a CSV record ([`CSV_HEADER`]'s columns; `details` as its
/// JSON text), safe to open in a spreadsheet (`crate::csv`).
pub fn csv_record(event: &AuditEvent) -> serde_json::Result<String> {
    let value = serde_json::to_value(event)?;
    let text = |name: &str| match &value[name] {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    };
    Ok(crate::csv::record(CSV_HEADER.map(text)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(details: &str) -> AuditEvent {
        AuditEvent {
            id: "0193".into(),
            occurred_at: chrono::DateTime::from_timestamp(1_764_979_200, 0)
                .unwrap()
                .naive_utc(),
            actor: "command line".into(),
            action: "key.created".into(),
            target: "=cmd|'/C calc'!A0".into(),
            source_addr: None,
            details: details.into(),
        }
    }

    #[test]
    fn a_line_is_the_listed_object_and_a_record_is_safe_in_a_spreadsheet() {
        let e = event(r#"{"name":"ci, nightly"}"#);
        let line = ndjson_line(&e).unwrap();
        assert!(line.ends_with('\n') && !line[..line.len() - 1].contains('\n'));
        let parsed: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(parsed["details"]["name"], "ci, nightly");
        assert_eq!(parsed["occurred_at"], "2025-12-06T00:00:00Z");
        assert_eq!(
            csv_record(&e).unwrap(),
            "0193,2025-12-06T00:00:00Z,command line,key.created,'=cmd|'/C calc'!A0,,\
             \"{\"\"name\"\":\"\"ci, nightly\"\"}\"\r\n"
        );
    }
}
