//! `/admin/apis`: the registered APIs (token audiences), their scopes, and
//! which of those need an admin's approval (`/admin/apis/approval`).

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Serialize;

use super::shared::{admin, parse_scopes};
use crate::http::console::{
    Current, NoticeQuery, PageError, Viewer, concluded, field, notice_for, page, posted, run,
};
use crate::http::error::AppError;
use crate::http::form::Form;
use crate::resource_servers;
use crate::scope::Audience;
use crate::state::AppState;

#[derive(Debug, Default, Serialize)]
struct ApiForm {
    identifier: String,
    name: String,
    scopes: String,
}

impl ApiForm {
    /// The API form's fields as typed.
    fn read(form: &Form) -> Result<Self, AppError> {
        Ok(Self {
            identifier: field(form, "identifier")?.trim().to_owned(),
            name: field(form, "name")?.trim().to_owned(),
            scopes: field(form, "scopes")?.trim().to_owned(),
        })
    }
}

async fn render_apis(
    state: &AppState,
    viewer: &Viewer,
    status: StatusCode,
    form: ApiForm,
    error: Option<String>,
    notice: Option<&str>,
) -> Result<HttpResponse, PageError> {
    let apis = run(state, viewer, |conn| {
        resource_servers::list_apis(conn).map_err(AppError::from)
    })
    .await?;
    Ok(page(
        status,
        "apis",
        &viewer.layout(state, "APIs", "apis"),
        minijinja::context! { apis, form, error, notice => notice_for(notice) },
    ))
}

pub(super) async fn apis(
    req: HttpRequest,
    state: web::Data<AppState>,
    current: Current,
    query: web::Query<NoticeQuery>,
) -> Result<HttpResponse, PageError> {
    let viewer = admin(&req, &state, current).await?;
    let notice = query.notice.as_deref();
    render_apis(
        &state,
        &viewer,
        StatusCode::OK,
        ApiForm::default(),
        None,
        notice,
    )
    .await
}

pub(super) async fn add_api(
    req: HttpRequest,
    state: web::Data<AppState>,
    current: Current,
    body: web::Bytes,
) -> Result<HttpResponse, PageError> {
    let viewer = admin(&req, &state, current).await?;
    let typed = posted(&state, &viewer, (&req, &body), ApiForm::read)?;
    let (actor, now) = (viewer.email().to_owned(), state.clock.now());
    let (identifier, name, scopes) = (
        typed.identifier.clone(),
        typed.name.clone(),
        typed.scopes.clone(),
    );
    let issuer = state.issuer.clone();
    let done = state
        .db(move |conn| {
            let identifier = Audience::parse(&identifier)
                .map_err(|m| AppError::invalid("invalid_audience", m))?;
            let scopes = parse_scopes(&scopes)?;
            let at = (&identifier, issuer.as_str());
            let api = resource_servers::create_api(conn, at, &name, &scopes, &actor, now)?;
            Ok::<_, AppError>(api)
        })
        .await;
    concluded(
        &state,
        &viewer,
        done,
        "/admin/apis?notice=saved",
        |status, message| render_apis(&state, &viewer, status, typed, Some(message), None),
    )
    .await
}

pub(super) async fn update_api(
    req: HttpRequest,
    state: web::Data<AppState>,
    current: Current,
    body: web::Bytes,
) -> Result<HttpResponse, PageError> {
    let viewer = admin(&req, &state, current).await?;
    let typed = posted(&state, &viewer, (&req, &body), ApiForm::read)?;
    let (actor, now) = (viewer.email().to_owned(), state.clock.now());
    let done = state
        .db(move |conn| {
            let scopes = parse_scopes(&typed.scopes)?;
            let (identifier, name) = (&typed.identifier, &typed.name);
            let api = resource_servers::update_api(conn, identifier, name, &scopes, &actor, now)?;
            Ok::<_, AppError>(api)
        })
        .await;
    saved(&state, &viewer, done).await
}

/// Which of an API's scopes need approval: one `approval` field per ticked
/// scope, replacing the previous set (none ticked: none needs approval).
pub(super) async fn set_approval(
    req: HttpRequest,
    state: web::Data<AppState>,
    current: Current,
    body: web::Bytes,
) -> Result<HttpResponse, PageError> {
    let viewer = admin(&req, &state, current).await?;
    let (identifier, ticked) = posted(&state, &viewer, (&req, &body), |form| {
        let identifier = field(form, "identifier")?.trim().to_owned();
        Ok((identifier, form.all("approval").join(" ")))
    })?;
    let (actor, now) = (viewer.email().to_owned(), state.clock.now());
    let done = state
        .db(move |conn| {
            let approval = parse_scopes(&ticked)?;
            let api =
                resource_servers::set_approval_scopes(conn, &identifier, &approval, &actor, now)?;
            Ok::<_, AppError>(api)
        })
        .await;
    saved(&state, &viewer, done).await
}

/// How a change to a registered API ends: the page with "Saved.", or the
/// page again with the refusal above its forms.
async fn saved<T>(
    state: &AppState,
    viewer: &Viewer,
    done: Result<T, AppError>,
) -> Result<HttpResponse, PageError> {
    let next = "/admin/apis?notice=saved";
    concluded(state, viewer, done, next, |status, message| {
        let blank = ApiForm::default();
        render_apis(state, viewer, status, blank, Some(message), None)
    })
    .await
}
