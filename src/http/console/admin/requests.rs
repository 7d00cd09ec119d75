//! `/admin/requests`: the keys waiting for approval (INTERFACE.md
//! "Approval"), with who asked, for whom, the scopes and why, and the
//! admin's decision: approve (the key works from the next request) or deny
//! with an optional reason (the key is revoked). Both go through
//! `keys::Service::approve` / `deny`, which email the person who asked.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Serialize;

use super::shared::admin;
use crate::http::console::keys::{KeyRow, caller, row, service};
use crate::http::console::{
    Current, NoticeQuery, PageError, Viewer, concluded_beside, field, notice_for, page, posted, run,
};
use crate::http::error::AppError;
use crate::keys::{self, KeyFilter, KeyStatus};
use crate::scope::ScopeSet;
use crate::state::AppState;

/// A pending key as the page shows it, with the scopes that made it wait.
#[derive(Debug, Serialize)]
struct RequestRow {
    #[serde(flatten)]
    key: KeyRow,
    approval_scopes: Vec<String>,
}

/// A decision refused, shown beside the row it was about.
#[derive(Debug, Default, Serialize)]
struct Refusal {
    client_id: String,
    reason: String,
    message: String,
    /// Whether the key is still listed (otherwise the refusal is shown
    /// above the list: someone decided first).
    listed: bool,
}

async fn render_requests(
    state: &AppState,
    viewer: &Viewer,
    status: StatusCode,
    refusal: Option<Refusal>,
    notice: Option<&str>,
) -> Result<HttpResponse, PageError> {
    let now = state.clock.now();
    let (pending, marked) = run(state, viewer, move |conn| {
        let filter = KeyFilter {
            owner: None,
            status: Some(KeyStatus::Pending),
        };
        let pending = keys::load_keys(conn, None, &filter, now)?;
        let marked = crate::resource_servers::all_approval_scopes(conn)?;
        Ok::<_, AppError>((pending, marked))
    })
    .await?;
    let rows: Vec<RequestRow> = pending
        .into_iter()
        // The oldest request first: it has waited longest.
        .rev()
        .map(|key| RequestRow {
            approval_scopes: marked_in(&key.scopes, &marked),
            key: row(state, key, now),
        })
        .collect();
    let refusal = refusal.map(|r| Refusal {
        listed: rows.iter().any(|row| row.key.client_id() == r.client_id),
        ..r
    });
    Ok(page(
        status,
        "requests",
        &viewer.layout(state, "Requests", "requests"),
        minijinja::context! { requests => rows, refusal, notice => notice_for(notice) },
    ))
}

fn marked_in(scopes: &ScopeSet, marked: &ScopeSet) -> Vec<String> {
    scopes
        .iter()
        .filter(|s| marked.contains(s))
        .map(str::to_owned)
        .collect()
}

pub(super) async fn requests(
    req: HttpRequest,
    state: web::Data<AppState>,
    current: Current,
    query: web::Query<NoticeQuery>,
) -> Result<HttpResponse, PageError> {
    let viewer = admin(&req, &state, current).await?;
    let notice = query.notice.as_deref();
    render_requests(&state, &viewer, StatusCode::OK, None, notice).await
}

/// Approves the posted key (`deny` false), or denies it with the posted
/// reason.
async fn decide(
    req: HttpRequest,
    state: web::Data<AppState>,
    current: Current,
    body: web::Bytes,
    deny: bool,
) -> Result<HttpResponse, PageError> {
    let viewer = admin(&req, &state, current).await?;
    let (client_id, reason) = posted(&state, &viewer, (&req, &body), |form| {
        let client_id = field(form, "client_id")?.trim().to_owned();
        let reason = if deny {
            field(form, "reason")?.trim().to_owned()
        } else {
            String::new()
        };
        Ok((client_id, reason))
    })?;
    let now = state.clock.now();
    let (service, caller) = (service(&state), caller(&viewer));
    let (id, why) = (client_id.clone(), reason.clone());
    let done = state
        .db(move |conn| {
            if deny {
                let why = (!why.is_empty()).then_some(why.as_str());
                service.deny(conn, &caller, &id, why, now)
            } else {
                service.approve(conn, &caller, &id, now)
            }
        })
        .await
        .map_err(AppError::from);
    let next = if deny {
        "/admin/requests?notice=denied"
    } else {
        "/admin/requests?notice=approved"
    };
    concluded_beside(&state, &viewer, done, next, |refused| {
        let refusal = Refusal {
            client_id,
            reason,
            message: refused.message,
            listed: false,
        };
        render_requests(&state, &viewer, refused.status, Some(refusal), None)
    })
    .await
}

pub(super) async fn approve(
    req: HttpRequest,
    state: web::Data<AppState>,
    current: Current,
    body: web::Bytes,
) -> Result<HttpResponse, PageError> {
    decide(req, state, current, body, false).await
}

pub(super) async fn deny(
    req: HttpRequest,
    state: web::Data<AppState>,
    current: Current,
    body: web::Bytes,
) -> Result<HttpResponse, PageError> {
    decide(req, state, current, body, true).await
}
