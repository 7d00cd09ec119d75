//! `/api/v1/audit-events`: the audit log, newest first; admins only.

use actix_web::{HttpResponse, get, web};
use serde::Deserialize;
use utoipa::IntoParams;

use super::auth::Caller;
use super::doc::{BadRequest, Forbidden, Internal, Unauthorized, Unavailable};
use super::{Page, Paged};
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

/// List audit events, newest first.
#[utoipa::path(
    tag = "audit",
    operation_id = "listAuditEvents",
    params(ListQuery),
    responses(
        (status = 200, description = "a page of audit events", body = Paged<AuditEvent>),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    )
)]
#[get("/audit-events")]
pub async fn list(
    caller: Caller,
    query: web::Query<ListQuery>,
    state: web::Data<AppState>,
) -> actix_web::Result<HttpResponse> {
    caller.require_admin()?;
    let page = Page::parse(query.limit.as_deref(), query.cursor.as_deref())?;
    let query = query.into_inner();
    let filter = EventFilter {
        actor: query.actor,
        target: query.target,
        action: query.action,
        ..EventFilter::default()
    }
    .with_period(query.since.as_deref(), query.until.as_deref())
    .map_err(AppError::bad_request)?;
    let (limit, offset) = (to_i64(page.limit + 1)?, to_i64(page.offset)?);
    let fetched = state
        .db(move |conn| audit::list_filtered(conn, &filter, limit, offset).map_err(AppError::from))
        .await?;
    let page: Paged<AuditEvent> = page.from_fetched(fetched);
    Ok(HttpResponse::Ok().json(page))
}

fn to_i64(n: usize) -> Result<i64, AppError> {
    i64::try_from(n).map_err(|_| AppError::bad_request("the cursor is out of range"))
}
