//! `/api/v1/audit-events`: the audit log, newest first, a page at a time;
//! or with `Accept: application/x-ndjson` every matching event, oldest
//! first, streamed for a SIEM to pull. Admins only.

use std::pin::Pin;
use std::task::{Context, Poll};

use actix_web::http::header;
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse, get, web};
use serde::Deserialize;
use tokio::sync::mpsc;
use utoipa::IntoParams;

use super::auth::Caller;
use super::doc::{BadRequest, Forbidden, Internal, Unauthorized, Unavailable};
use super::{Page, Paged};
use crate::audit::export::{self, After};
use crate::audit::{self, AuditEvent, EventFilter};
use crate::http::error::AppError;
use crate::state::AppState;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only events about this object (a client ID, an email, an API identifier).
    target: Option<String>,
    /// Only events by this actor (an email, `command line` or `keygate`).
    actor: Option<String>,
    /// Only events of this action (`key.created`, `user.updated`, ...).
    action: Option<String>,
    /// Only events at or after this time: an RFC 3339 time, or a
    /// `YYYY-MM-DD` day (UTC) from its start.
    #[param(value_type = Option<String>, example = "2026-12-01")]
    since: Option<String>,
    /// Only events at or before this time: an RFC 3339 time, or a
    /// `YYYY-MM-DD` day (UTC) to its end.
    #[param(value_type = Option<String>, example = "2026-12-31")]
    until: Option<String>,
    /// Items per page, 1 to 100 (default 50).
    #[param(value_type = Option<u8>, minimum = 1, maximum = 100)]
    limit: Option<String>,
    /// Opaque: the `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// The media type of the stream: one JSON object per line.
const NDJSON: &str = "application/x-ndjson";

/// List audit events, newest first.
///
/// A page at a time; or, asked for `application/x-ndjson`, every matching
/// event oldest first, one per line (`limit` and `cursor` do not apply).
#[utoipa::path(
    tag = "audit",
    operation_id = "listAuditEvents",
    params(ListQuery),
    responses(
        (status = 200, description = "a page of audit events, or with `Accept: application/x-ndjson` every matching event, oldest first, one JSON object per line", content(
            (Paged<AuditEvent> = "application/json"),
            (AuditEvent = "application/x-ndjson"),
        )),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    )
)]
#[get("/audit-events")]
pub async fn list(
    req: HttpRequest,
    caller: Caller,
    query: web::Query<ListQuery>,
    state: web::Data<AppState>,
) -> actix_web::Result<HttpResponse> {
    caller.require_admin()?;
    let streamed = wants_ndjson(&req);
    let page = if streamed {
        None
    } else {
        Some(Page::parse(
            query.limit.as_deref(),
            query.cursor.as_deref(),
        )?)
    };
    let query = query.into_inner();
    let filter = EventFilter {
        actor: query.actor,
        target: query.target,
        action: query.action,
        ..EventFilter::default()
    }
    .with_period(query.since.as_deref(), query.until.as_deref())
    .map_err(AppError::bad_request)?;
    let Some(page) = page else {
        return Ok(HttpResponse::Ok()
            .content_type(NDJSON)
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .streaming(stream(state, filter)));
    };
    let (limit, offset) = (to_i64(page.limit + 1)?, to_i64(page.offset)?);
    let fetched = state
        .db(move |conn| audit::list_filtered(conn, &filter, limit, offset).map_err(AppError::from))
        .await?;
    let page: Paged<AuditEvent> = page.from_fetched(fetched);
    Ok(HttpResponse::Ok().json(page))
}

/// Whether the request asks for the stream (`Accept: application/x-ndjson`,
/// alone or first among others).
fn wants_ndjson(req: &HttpRequest) -> bool {
    req.headers()
        .get_all(header::ACCEPT)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|item| {
            item.split(';')
                .next()
                .is_some_and(|media| media.trim().eq_ignore_ascii_case(NDJSON))
        })
}

/// The events as NDJSON, a batch at a time: a task reads the next batch
/// while the client takes the one before, and waits while two are queued,
/// so a slow reader holds at most three batches in memory, whatever the
/// log's size. A database failure midway ends the stream early (the
/// status was sent with the first bytes) and is logged.
fn stream(state: web::Data<AppState>, filter: EventFilter) -> Lines {
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(2);
    tokio::spawn(async move {
        let mut after: Option<After> = None;
        loop {
            let (filter, from) = (filter.clone(), after.clone());
            let batch = state
                .db(move |conn| {
                    export::batch(conn, &filter, from.as_ref(), export::BATCH)
                        .map_err(AppError::from)
                })
                .await;
            let batch = match batch {
                Ok(batch) => batch,
                Err(error) => {
                    tracing::warn!(%error, "audit export: could not read the next events; the stream ends early");
                    let _ = tx.send(Err(std::io::Error::other(error.to_string()))).await;
                    return;
                }
            };
            let mut text = String::new();
            for event in &batch {
                match export::ndjson_line(event) {
                    Ok(line) => text.push_str(&line),
                    Err(error) => {
                        tracing::error!(%error, "audit export: could not write an event");
                        return;
                    }
                }
            }
            let full = i64::try_from(batch.len()).is_ok_and(|n| n == export::BATCH);
            after = After::last_of(&batch);
            // The client went away: stop reading.
            if !text.is_empty() && tx.send(Ok(Bytes::from(text))).await.is_err() {
                return;
            }
            if !full {
                return;
            }
        }
    });
    Lines(rx)
}

/// The stream's body: what the reading task sends.
struct Lines(mpsc::Receiver<Result<Bytes, std::io::Error>>);

impl futures_core::Stream for Lines {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_recv(cx)
    }
}

fn to_i64(n: usize) -> Result<i64, AppError> {
    i64::try_from(n).map_err(|_| AppError::bad_request("the cursor is out of range"))
}
