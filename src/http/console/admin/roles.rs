//! `/admin/roles`: the roles and the scopes each grants, and setting one.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Serialize;

use super::shared::{admin, parse_scopes};
use crate::http::console::{
    Current, NoticeQuery, PageError, Viewer, concluded, field, notice_for, page, posted, run,
};
use crate::http::error::AppError;
use crate::state::AppState;
use crate::users;

#[derive(Debug, Serialize)]
struct RoleRow {
    name: String,
    grants: String,
    scopes: Vec<String>,
    builtin: bool,
}

#[derive(Debug, Default, Serialize)]
struct RoleForm {
    name: String,
    scopes: String,
}

async fn render_roles(
    state: &AppState,
    viewer: &Viewer,
    status: StatusCode,
    form: RoleForm,
    error: Option<String>,
    notice: Option<&str>,
) -> Result<HttpResponse, PageError> {
    let roles = run(state, viewer, |conn| {
        users::list_roles(conn).map_err(AppError::from)
    })
    .await?;
    let rows: Vec<RoleRow> = roles
        .into_iter()
        .map(|r| RoleRow {
            grants: if r.grants_all {
                "every scope, keygate's own included".to_owned()
            } else if r.grants_api_scopes {
                "every scope of every registered API".to_owned()
            } else {
                "only the scopes listed".to_owned()
            },
            scopes: r.scope_list(),
            name: r.name,
            builtin: r.builtin,
        })
        .collect();
    Ok(page(
        status,
        "roles",
        &viewer.layout(state, "Roles", "roles"),
        minijinja::context! { roles => rows, form, error, notice => notice_for(notice) },
    ))
}

pub(super) async fn roles(
    req: HttpRequest,
    state: web::Data<AppState>,
    current: Current,
    query: web::Query<NoticeQuery>,
) -> Result<HttpResponse, PageError> {
    let viewer = admin(&req, &state, current).await?;
    let notice = query.notice.as_deref();
    render_roles(
        &state,
        &viewer,
        StatusCode::OK,
        RoleForm::default(),
        None,
        notice,
    )
    .await
}

pub(super) async fn set_role(
    req: HttpRequest,
    state: web::Data<AppState>,
    current: Current,
    body: web::Bytes,
) -> Result<HttpResponse, PageError> {
    let viewer = admin(&req, &state, current).await?;
    let typed = posted(&state, &viewer, (&req, &body), |form| {
        Ok(RoleForm {
            name: field(form, "name")?.trim().to_owned(),
            scopes: field(form, "scopes")?.trim().to_owned(),
        })
    })?;
    let (actor, now) = (viewer.email().to_owned(), state.clock.now());
    let (name, scopes) = (typed.name.clone(), typed.scopes.clone());
    let done = state
        .db(move |conn| {
            let role = users::set_role(conn, &name, &parse_scopes(&scopes)?, &actor, now)?;
            Ok::<_, AppError>(role)
        })
        .await;
    concluded(
        &state,
        &viewer,
        done,
        "/admin/roles?notice=saved",
        |status, message| render_roles(&state, &viewer, status, typed, Some(message), None),
    )
    .await
}
