//! `/api/v1/audit-events`: the audit log, newest first; admins only.

use actix_web::{HttpResponse, web};
use serde::Deserialize;

use super::Page;
use super::auth::Caller;
use crate::audit;
use crate::error::AppError;
use crate::state::AppState;

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    target: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

pub async fn list(
    caller: Caller,
    query: web::Query<ListQuery>,
    state: web::Data<AppState>,
) -> actix_web::Result<HttpResponse> {
    caller.require_admin()?;
    let page = Page::parse(query.limit.as_deref(), query.cursor.as_deref())?;
    let target = query.into_inner().target;
    let (limit, offset) = (to_i64(page.limit + 1)?, to_i64(page.offset)?);
    let fetched = state
        .db(move |conn| {
            audit::list_events(conn, target.as_deref(), limit, offset).map_err(AppError::from)
        })
        .await?;
    Ok(HttpResponse::Ok().json(page.from_fetched(fetched)))
}

fn to_i64(n: usize) -> Result<i64, AppError> {
    i64::try_from(n).map_err(|_| AppError::bad_request("the cursor is out of range"))
}
