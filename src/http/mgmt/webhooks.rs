//! `/api/v1/webhooks`: admins register endpoints (the signing secret shown
//! once, in the creation's answer), change their events, description or
//! whether they are on, read their recent deliveries, send a test event and
//! resend a delivery.

use actix_web::http::header;
use actix_web::{HttpResponse, delete, get, patch, post, web};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::Caller;
use super::doc::{
    BadRequest, Conflict, Forbidden, Internal, NotFound, Unauthorized, Unavailable, Unprocessable,
};
use super::{Page, PageQuery, Paged, given, location, secret_response};
use crate::db::DbConnection;
use crate::http::error::AppError;
use crate::state::AppState;
use crate::webhooks::{
    self, DeliveryView, Endpoint, EndpointChange, NewEndpoint, WebhookError, endpoint,
};

/// How many deliveries the delivery log shows.
const RECENT: i64 = 50;

async fn run<T: Send + 'static>(
    state: &AppState,
    work: impl FnOnce(&mut DbConnection) -> Result<T, WebhookError> + Send + 'static,
) -> Result<T, AppError> {
    Ok(state.db(work).await?)
}

/// The endpoint's ID in the path.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct WebhookPath {
    /// The endpoint's ID.
    id: String,
}

/// An endpoint and one of its deliveries in the path.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct DeliveryPath {
    /// The endpoint's ID.
    id: String,
    /// The delivery's ID (its `webhook-id`).
    delivery_id: String,
}

/// List webhook endpoints, oldest first (admins).
#[utoipa::path(
    tag = "webhooks",
    operation_id = "listWebhooks",
    params(PageQuery),
    responses(
        (status = 200, description = "a page of endpoints", body = Paged<Endpoint>),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    )
)]
#[get("/webhooks")]
pub async fn list(
    caller: Caller,
    query: web::Query<PageQuery>,
    state: web::Data<AppState>,
) -> actix_web::Result<HttpResponse> {
    caller.require_admin()?;
    let page = Page::from_query(&query)?;
    let all = run(&state, endpoint::list).await?;
    let page: Paged<Endpoint> = page.slice(all);
    Ok(HttpResponse::Ok().json(page))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhook {
    /// http or https, no credentials, at most 2048 bytes.
    url: String,
    /// The event types to send; left out: every type (later ones too).
    events: Option<Vec<String>>,
    #[serde(default)]
    description: String,
}

/// An endpoint just registered, with its signing secret: shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedWebhook {
    #[serde(flatten)]
    endpoint: Endpoint,
    /// `whsec_` + base64 of 32 random bytes: the key of every delivery's
    /// signature. Never shown again.
    secret: String,
}

/// Register a webhook endpoint (admins). The answer holds its signing
/// secret, the only time it is shown.
#[utoipa::path(
    tag = "webhooks",
    operation_id = "createWebhook",
    request_body = CreateWebhook,
    responses(
        (status = 201, description = "the new endpoint and its secret", body = CreatedWebhook,
            headers(("Location" = String, description = "URL of the new endpoint"))),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 422, response = Unprocessable),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    )
)]
#[post("/webhooks")]
pub async fn create(
    caller: Caller,
    body: web::Json<CreateWebhook>,
    state: web::Data<AppState>,
) -> actix_web::Result<HttpResponse> {
    caller.require_admin()?;
    let body = body.into_inner();
    let now = state.clock.now();
    let sealer = std::sync::Arc::clone(&state.webhook_sealer);
    let created = run(&state, move |conn| {
        let new = NewEndpoint {
            url: &body.url,
            events: body.events.as_deref(),
            description: &body.description,
        };
        endpoint::create(conn, &sealer, new, &caller.email, now)
    })
    .await?;
    let answer = CreatedWebhook {
        secret: created.secret.reveal().to_string(),
        endpoint: created.endpoint,
    };
    let builder = {
        let mut b = HttpResponse::Created();
        b.insert_header((header::LOCATION, location("webhooks", &answer.endpoint.id)));
        b
    };
    Ok(secret_response(builder, &answer))
}

/// Read one endpoint (admins).
#[utoipa::path(
    tag = "webhooks",
    operation_id = "getWebhook",
    params(WebhookPath),
    responses(
        (status = 200, description = "the endpoint", body = Endpoint),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    )
)]
#[get("/webhooks/{id}")]
pub async fn read(
    caller: Caller,
    path: web::Path<WebhookPath>,
    state: web::Data<AppState>,
) -> actix_web::Result<HttpResponse> {
    caller.require_admin()?;
    let id = path.into_inner().id;
    let found = run(&state, move |conn| endpoint::find(conn, &id)).await?;
    Ok(HttpResponse::Ok().json(found))
}

/// A change to an endpoint; a field left out stays as it is.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateWebhook {
    /// The event types to send; `null`: every type.
    #[serde(default, deserialize_with = "given")]
    #[schema(value_type = Option<Vec<String>>, nullable)]
    events: Option<Option<Vec<String>>>,
    description: Option<String>,
    /// `false` switches it off; `true` switches it back on and forgets its
    /// failures.
    enabled: Option<bool>,
}

/// Change an endpoint's events, description, or switch it off or on (admins).
#[utoipa::path(
    tag = "webhooks",
    operation_id = "updateWebhook",
    params(WebhookPath),
    request_body = UpdateWebhook,
    responses(
        (status = 200, description = "the changed endpoint", body = Endpoint),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 422, response = Unprocessable),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    )
)]
#[patch("/webhooks/{id}")]
pub async fn update(
    caller: Caller,
    path: web::Path<WebhookPath>,
    body: web::Json<UpdateWebhook>,
    state: web::Data<AppState>,
) -> actix_web::Result<HttpResponse> {
    caller.require_admin()?;
    let id = path.into_inner().id;
    let body = body.into_inner();
    let change = EndpointChange {
        events: body.events,
        description: body.description,
        enabled: body.enabled,
    };
    let now = state.clock.now();
    let changed = run(&state, move |conn| {
        endpoint::update(conn, &id, &change, &caller.email, now)
    })
    .await?;
    Ok(HttpResponse::Ok().json(changed))
}

/// Remove an endpoint and its delivery log (admins).
#[utoipa::path(
    tag = "webhooks",
    operation_id = "deleteWebhook",
    params(WebhookPath),
    responses(
        (status = 204, description = "removed"),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    )
)]
#[delete("/webhooks/{id}")]
pub async fn remove(
    caller: Caller,
    path: web::Path<WebhookPath>,
    state: web::Data<AppState>,
) -> actix_web::Result<HttpResponse> {
    caller.require_admin()?;
    let id = path.into_inner().id;
    let now = state.clock.now();
    run(&state, move |conn| {
        endpoint::remove(conn, &id, &caller.email, now)
    })
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// An endpoint's 50 most recent deliveries, newest first (admins).
#[utoipa::path(
    tag = "webhooks",
    operation_id = "listWebhookDeliveries",
    params(WebhookPath),
    responses(
        (status = 200, description = "the deliveries", body = Vec<DeliveryView>),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    )
)]
#[get("/webhooks/{id}/deliveries")]
pub async fn deliveries(
    caller: Caller,
    path: web::Path<WebhookPath>,
    state: web::Data<AppState>,
) -> actix_web::Result<HttpResponse> {
    caller.require_admin()?;
    let id = path.into_inner().id;
    let recent = run(&state, move |conn| webhooks::recent(conn, &id, RECENT)).await?;
    Ok(HttpResponse::Ok().json(recent))
}

/// Queue a `webhook.test` event for this endpoint (admins).
#[utoipa::path(
    tag = "webhooks",
    operation_id = "testWebhook",
    params(WebhookPath),
    responses(
        (status = 202, description = "the queued delivery", body = DeliveryView),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    )
)]
#[post("/webhooks/{id}/test")]
pub async fn test(
    caller: Caller,
    path: web::Path<WebhookPath>,
    state: web::Data<AppState>,
) -> actix_web::Result<HttpResponse> {
    caller.require_admin()?;
    let id = path.into_inner().id;
    let now = state.clock.now();
    let queued = run(&state, move |conn| {
        webhooks::send_test(conn, &id, &caller.email, now)
    })
    .await?;
    Ok(HttpResponse::Accepted().json(queued))
}

/// Send a delivered or given-up delivery again, with the same
/// `webhook-id` and body (admins).
#[utoipa::path(
    tag = "webhooks",
    operation_id = "resendWebhookDelivery",
    params(DeliveryPath),
    responses(
        (status = 202, description = "the delivery, queued again", body = DeliveryView),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    )
)]
#[post("/webhooks/{id}/deliveries/{delivery_id}/resend")]
pub async fn resend(
    caller: Caller,
    path: web::Path<DeliveryPath>,
    state: web::Data<AppState>,
) -> actix_web::Result<HttpResponse> {
    caller.require_admin()?;
    let DeliveryPath { id, delivery_id } = path.into_inner();
    let now = state.clock.now();
    let queued = run(&state, move |conn| {
        webhooks::resend(conn, &id, &delivery_id, &caller.email, now)
    })
    .await?;
    Ok(HttpResponse::Accepted().json(queued))
}
