//! `/admin/audit`: the audit log, filtered by actor, target, action and
//! period, a page of events at a time.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};

use super::shared::admin;
use crate::audit::{self, EventFilter};
use crate::http::console::keys::{EventRow, event_row};
use crate::http::console::{Current, PageError, page, run};
use crate::http::error::AppError;
use crate::state::AppState;

const AUDIT_PAGE: i64 = 50;

#[derive(Debug, Default, Deserialize, Serialize)]
pub(super) struct AuditQuery {
    #[serde(default)]
    actor: String,
    #[serde(default)]
    target: String,
    #[serde(default)]
    action: String,
    /// `YYYY-MM-DD` (UTC) or an RFC 3339 time, inclusive.
    #[serde(default)]
    since: String,
    #[serde(default)]
    until: String,
    #[serde(default)]
    page: Option<u32>,
}

impl AuditQuery {
    /// The link to page `to` of the same filters.
    fn link(&self, to: u32) -> String {
        let mut q = form_urlencoded::Serializer::new(String::new());
        for (k, v) in [
            ("actor", &self.actor),
            ("target", &self.target),
            ("action", &self.action),
            ("since", &self.since),
            ("until", &self.until),
        ] {
            if !v.is_empty() {
                q.append_pair(k, v);
            }
        }
        q.append_pair("page", &to.to_string());
        format!("/admin/audit?{}", q.finish())
    }
}

pub(super) async fn audit_log(
    req: HttpRequest,
    state: web::Data<AppState>,
    current: Current,
    query: web::Query<AuditQuery>,
) -> Result<HttpResponse, PageError> {
    let viewer = admin(&req, &state, current).await?;
    let query = query.into_inner();
    let page_no = query.page.unwrap_or(1).max(1);
    let filter = EventFilter {
        actor: non_empty(&query.actor),
        target: non_empty(&query.target),
        action: non_empty(&query.action),
        ..EventFilter::default()
    }
    .with_period(Some(&query.since), Some(&query.until))
    .map_err(|message| viewer.failed(&state, AppError::bad_request(message)))?;
    let offset = i64::from(page_no - 1) * AUDIT_PAGE;
    let (mut events, actions) = run(&state, &viewer, move |conn| {
        // One more than a page: whether there is a next one.
        let events = audit::list_filtered(conn, &filter, AUDIT_PAGE + 1, offset)?;
        Ok::<_, AppError>((events, audit::recorded_actions(conn)?))
    })
    .await?;
    let has_next = events.len() as i64 > AUDIT_PAGE;
    events.truncate(AUDIT_PAGE as usize);
    let rows: Vec<EventRow> = events.into_iter().map(event_row).collect();
    Ok(page(
        StatusCode::OK,
        "audit",
        &viewer.layout(&state, "Audit log", "audit"),
        minijinja::context! {
            events => rows,
            filters => &query,
            actions,
            page => page_no,
            previous => (page_no > 1).then(|| query.link(page_no - 1)),
            next => has_next.then(|| query.link(page_no + 1)),
        },
    ))
}

fn non_empty(text: &str) -> Option<String> {
    let t = text.trim();
    (!t.is_empty()).then(|| t.to_owned())
}
