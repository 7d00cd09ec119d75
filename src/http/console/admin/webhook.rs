//! `/admin/webhooks/{id}`: one webhook endpoint: its details, changing its
//! description and event types, switching it off or on, sending a test
//! event, its recent deliveries (each delivered or given-up one can be sent
//! again), and removing it behind a confirmation page of its own. Every
//! change goes through `crate::webhooks`, as the API's does.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use super::shared::{Errors, admin, errors_of, flag};
use super::webhooks::{EndpointForm, event_types};
use crate::http::console::{
    Current, NoticeQuery, PageError, Viewer, concluded_beside, notice_for, page, posted, run,
    see_other,
};
use crate::http::error::AppError;
use crate::state::AppState;
use crate::webhooks::{self, EndpointChange, endpoint};

/// How many deliveries the endpoint's page lists, newest first.
const RECENT: i64 = 50;

#[derive(Debug, Deserialize)]
pub(super) struct EndpointPath {
    id: String,
}

#[derive(Debug, Deserialize)]
pub(super) struct DeliveryPath {
    id: String,
    delivery_id: String,
}

/// What the endpoint page's forms sent, kept when one comes back refused.
#[derive(Debug, Default)]
struct EndpointPageForms {
    settings: Option<EndpointForm>,
    errors: Errors,
}

async fn render_endpoint(
    state: &AppState,
    viewer: &Viewer,
    (status, id): (StatusCode, String),
    forms: EndpointPageForms,
    notice: Option<&str>,
) -> Result<HttpResponse, PageError> {
    let (endpoint, deliveries) = run(state, viewer, move |conn| {
        let endpoint = endpoint::find(conn, &id)?;
        let deliveries = webhooks::recent(conn, &endpoint.id, RECENT)?;
        Ok::<_, AppError>((endpoint, deliveries))
    })
    .await?;
    let settings = forms
        .settings
        .unwrap_or_else(|| EndpointForm::of(&endpoint));
    Ok(page(
        status,
        "webhook",
        &viewer.layout(state, "Webhook endpoint", "webhooks"),
        minijinja::context! {
            endpoint,
            deliveries,
            settings,
            event_types => event_types(),
            errors => forms.errors,
            notice => notice_for(notice),
        },
    ))
}

pub(super) async fn endpoint_page(
    req: HttpRequest,
    state: web::Data<AppState>,
    current: Current,
    path: web::Path<EndpointPath>,
    query: web::Query<NoticeQuery>,
) -> Result<HttpResponse, PageError> {
    let viewer = admin(&req, &state, current).await?;
    let at = (StatusCode::OK, path.into_inner().id);
    let notice = query.notice.as_deref();
    render_endpoint(&state, &viewer, at, EndpointPageForms::default(), notice).await
}

/// How a form of the endpoint page ends: back to the page with a notice,
/// or the page again with the refusal beside its field in `form`.
async fn endpoint_concluded<T>(
    state: &AppState,
    viewer: &Viewer,
    (id, notice): (String, &str),
    done: Result<T, AppError>,
    (again, form): (impl FnOnce(Errors) -> EndpointPageForms, &str),
) -> Result<HttpResponse, PageError> {
    let next = format!("/admin/webhooks/{id}?notice={notice}");
    concluded_beside(state, viewer, done, &next, |refused| {
        let status = refused.status;
        let forms = again(errors_of(form, refused));
        render_endpoint(state, viewer, (status, id), forms, None)
    })
    .await
}

/// Changes the endpoint `id` and ends as [`endpoint_concluded`] does.
async fn change_endpoint(
    state: &AppState,
    viewer: &Viewer,
    (id, notice): (String, &str),
    change: EndpointChange,
    again: (impl FnOnce(Errors) -> EndpointPageForms, &str),
) -> Result<HttpResponse, PageError> {
    let (actor, now, target) = (viewer.email().to_owned(), state.clock.now(), id.clone());
    let done = state
        .db(move |conn| endpoint::update(conn, &target, &change, &actor, now))
        .await
        .map_err(AppError::from);
    endpoint_concluded(state, viewer, (id, notice), done, again).await
}

pub(super) async fn update_endpoint(
    req: HttpRequest,
    state: web::Data<AppState>,
    current: Current,
    path: web::Path<EndpointPath>,
    body: web::Bytes,
) -> Result<HttpResponse, PageError> {
    let viewer = admin(&req, &state, current).await?;
    let form = posted(&state, &viewer, (&req, &body), EndpointForm::read)?;
    let change = EndpointChange {
        events: Some(form.events()),
        description: Some(form.description.clone()),
        enabled: None,
    };
    let again = |errors| EndpointPageForms {
        settings: Some(form),
        errors,
    };
    let at = (path.into_inner().id, "saved");
    change_endpoint(&state, &viewer, at, change, (again, "settings")).await
}

pub(super) async fn set_state(
    req: HttpRequest,
    state: web::Data<AppState>,
    current: Current,
    path: web::Path<EndpointPath>,
    body: web::Bytes,
) -> Result<HttpResponse, PageError> {
    let viewer = admin(&req, &state, current).await?;
    let enabled = posted(&state, &viewer, (&req, &body), |form| {
        flag(form, "enabled")?.ok_or_else(|| AppError::bad_request("enabled must be true or false"))
    })?;
    let change = EndpointChange {
        enabled: Some(enabled),
        ..EndpointChange::default()
    };
    let notice = if enabled { "webhook-on" } else { "webhook-off" };
    let again = |errors| EndpointPageForms {
        errors,
        ..EndpointPageForms::default()
    };
    let at = (path.into_inner().id, notice);
    change_endpoint(&state, &viewer, at, change, (again, "state")).await
}

pub(super) async fn send_test(
    req: HttpRequest,
    state: web::Data<AppState>,
    current: Current,
    path: web::Path<EndpointPath>,
    body: web::Bytes,
) -> Result<HttpResponse, PageError> {
    let viewer = admin(&req, &state, current).await?;
    posted(&state, &viewer, (&req, &body), |_| Ok(()))?;
    let id = path.into_inner().id;
    let (actor, now, target) = (viewer.email().to_owned(), state.clock.now(), id.clone());
    let done = state
        .db(move |conn| webhooks::send_test(conn, &target, &actor, now))
        .await
        .map_err(AppError::from);
    let again = |errors| EndpointPageForms {
        errors,
        ..EndpointPageForms::default()
    };
    let at = (id, "webhook-test-queued");
    endpoint_concluded(&state, &viewer, at, done, (again, "deliveries")).await
}

pub(super) async fn resend(
    req: HttpRequest,
    state: web::Data<AppState>,
    current: Current,
    path: web::Path<DeliveryPath>,
    body: web::Bytes,
) -> Result<HttpResponse, PageError> {
    let viewer = admin(&req, &state, current).await?;
    posted(&state, &viewer, (&req, &body), |_| Ok(()))?;
    let DeliveryPath { id, delivery_id } = path.into_inner();
    let (actor, now, target) = (viewer.email().to_owned(), state.clock.now(), id.clone());
    let done = state
        .db(move |conn| webhooks::resend(conn, &target, &delivery_id, &actor, now))
        .await
        .map_err(AppError::from);
    let again = |errors| EndpointPageForms {
        errors,
        ..EndpointPageForms::default()
    };
    let at = (id, "webhook-resent");
    endpoint_concluded(&state, &viewer, at, done, (again, "deliveries")).await
}

/// `GET /admin/webhooks/{id}/remove`: what removing the endpoint does,
/// and the form that does it.
pub(super) async fn remove_confirmation(
    req: HttpRequest,
    state: web::Data<AppState>,
    current: Current,
    path: web::Path<EndpointPath>,
) -> Result<HttpResponse, PageError> {
    let viewer = admin(&req, &state, current).await?;
    let id = path.into_inner().id;
    let endpoint = run(&state, &viewer, move |conn| {
        endpoint::find(conn, &id).map_err(AppError::from)
    })
    .await?;
    Ok(page(
        StatusCode::OK,
        "webhook_remove",
        &viewer.layout(&state, "Remove webhook endpoint", "webhooks"),
        minijinja::context! { endpoint },
    ))
}

pub(super) async fn remove(
    req: HttpRequest,
    state: web::Data<AppState>,
    current: Current,
    path: web::Path<EndpointPath>,
    body: web::Bytes,
) -> Result<HttpResponse, PageError> {
    let viewer = admin(&req, &state, current).await?;
    posted(&state, &viewer, (&req, &body), |_| Ok(()))?;
    let id = path.into_inner().id;
    let (actor, now) = (viewer.email().to_owned(), state.clock.now());
    run(&state, &viewer, move |conn| {
        endpoint::remove(conn, &id, &actor, now).map_err(AppError::from)
    })
    .await?;
    Ok(see_other("/admin/webhooks?notice=webhook-removed"))
}
