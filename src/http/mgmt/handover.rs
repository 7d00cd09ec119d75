//! Who a key belongs to and whether it may work: `POST
//! /api/v1/keys/{client_id}/transfer` (to a person or a team; the client ID
//! and the secret stay), `/approve` and `/deny` (admins decide on a key
//! waiting for approval).

use actix_web::{HttpResponse, post, web};
use serde::Deserialize;
use utoipa::ToSchema;

use super::auth::Caller;
use super::doc::{
    BadRequest, Conflict, Forbidden, Internal, NotFound, PayloadTooLarge, Unauthorized,
    Unavailable, Unprocessable,
};
use super::keys::{KeyPath, run, service};
use super::optional_json;
use crate::http::error::AppError;
use crate::keys::{Key, KeyOwner};
use crate::state::AppState;

/// Whom a key goes to: a person (`to`) or a team (`to_team`), not both.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransferKey {
    /// The new owner's email (not with `to_team`).
    to: Option<String>,
    /// The new owning team's name (not with `to`).
    to_team: Option<String>,
    /// Recorded in the audit log and both owners' emails.
    reason: Option<String>,
}

impl TransferKey {
    /// The new owner: 400 `invalid_request` unless exactly one is given.
    pub fn new_owner(&self) -> Result<KeyOwner, AppError> {
        match (&self.to, &self.to_team) {
            (Some(email), None) => Ok(KeyOwner::person(email)),
            (None, Some(team)) => Ok(KeyOwner::team(team)),
            _ => Err(AppError::bad_request(
                "give the new owner: either \"to\" (a person's email) or \"to_team\" \
                 (a team's name)",
            )),
        }
    }
}

/// Give a key to another person or team. The client ID and the secret stay,
/// so nothing using the key breaks. Refused, with nothing changed, for a
/// revoked or expired key, an unknown or disabled new owner, the owner it
/// has, or a key holding scopes the new owner's role may not grant (the
/// message names them). Both owners are emailed.
#[utoipa::path(
    tag = "keys",
    operation_id = "transferKey",
    params(KeyPath),
    request_body = TransferKey,
    responses(
        (status = 200, description = "the key, with its new owner", body = Key),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 422, response = Unprocessable),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    )
)]
#[post("/keys/{client_id}/transfer")]
pub async fn transfer(
    caller: Caller,
    path: web::Path<KeyPath>,
    body: web::Json<TransferKey>,
    state: web::Data<AppState>,
) -> actix_web::Result<HttpResponse> {
    let client_id = path.into_inner().client_id;
    let body = body.into_inner();
    let to = body.new_owner()?;
    let service = service(&state);
    let now = state.clock.now();
    let key = run(&state, move |conn| {
        let reason = body.reason.as_deref();
        service.transfer(conn, &caller.for_keys(), &client_id, &to, reason, now)
    })
    .await?;
    Ok(HttpResponse::Ok().json(key))
}

/// Approve a key waiting for approval (admins): it works from the next
/// token request on. The person who asked for it is emailed.
#[utoipa::path(
    tag = "keys",
    operation_id = "approveKey",
    params(KeyPath),
    responses(
        (status = 200, description = "the approved key", body = Key),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    )
)]
#[post("/keys/{client_id}/approve")]
pub async fn approve(
    caller: Caller,
    path: web::Path<KeyPath>,
    state: web::Data<AppState>,
) -> actix_web::Result<HttpResponse> {
    caller.require_admin()?;
    let client_id = path.into_inner().client_id;
    let service = service(&state);
    let now = state.clock.now();
    let key = run(&state, move |conn| {
        service.approve(conn, &caller.for_keys(), &client_id, now)
    })
    .await?;
    Ok(HttpResponse::Ok().json(key))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DenyBody {
    /// Recorded in the audit log and the requester's email.
    reason: Option<String>,
}

/// Deny a key waiting for approval (admins): it is revoked for good. The
/// person who asked for it is emailed.
#[utoipa::path(
    tag = "keys",
    operation_id = "denyKey",
    params(KeyPath),
    request_body(content = Option<DenyBody>, description = "may be left out"),
    responses(
        (status = 200, description = "the denied key, revoked", body = Key),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 413, response = PayloadTooLarge),
        (status = 422, response = Unprocessable),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    )
)]
#[post("/keys/{client_id}/deny")]
pub async fn deny(
    caller: Caller,
    path: web::Path<KeyPath>,
    body: web::Payload,
    state: web::Data<AppState>,
) -> actix_web::Result<HttpResponse> {
    caller.require_admin()?;
    let client_id = path.into_inner().client_id;
    let body: DenyBody = optional_json(body).await?;
    let service = service(&state);
    let now = state.clock.now();
    let key = run(&state, move |conn| {
        let reason = body.reason.as_deref();
        service.deny(conn, &caller.for_keys(), &client_id, reason, now)
    })
    .await?;
    Ok(HttpResponse::Ok().json(key))
}
