//! `/keys`: the signed-in person's own keys and their teams', newest first
//! (an admin's too: every key is on "All keys").

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};

use super::shared::{KeyRow, own_caller, row, service};
use crate::http::console::{Current, PageError, notice_for, page, viewer};
use crate::http::console::{NoticeQuery, run};
use crate::state::AppState;

pub(super) async fn list(
    req: HttpRequest,
    state: web::Data<AppState>,
    current: Current,
    query: web::Query<NoticeQuery>,
) -> Result<HttpResponse, PageError> {
    let viewer = viewer(&req, &state, current).await?;
    let now = state.clock.now();
    let (service, caller) = (service(&state), own_caller(&viewer));
    let keys = run(&state, &viewer, move |conn| {
        service.list(conn, &caller, &crate::keys::KeyFilter::default(), now)
    })
    .await?;
    let rows: Vec<KeyRow> = keys.into_iter().map(|k| row(&state, k, now)).collect();
    let user = &viewer.session.user;
    Ok(page(
        StatusCode::OK,
        "keys",
        &viewer.layout(&state, "My keys", "keys"),
        minijinja::context! {
            keys => rows,
            all_keys => false,
            may_create => user.can_create_keys,
            cannot_create => " An administrator has switched off key creation for your account; your existing keys keep working.",
            notice => notice_for(query.notice.as_deref()),
        },
    ))
}
