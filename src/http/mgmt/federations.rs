//! `/api/v1/federations`: admins list, add, read and remove the trusted
//! workloads (workload identity federation): each an external issuer's
//! tokens, matched by subject, audience and claims, exchanged for a
//! federated key's access tokens.

use std::collections::BTreeMap;

use actix_web::http::header;
use actix_web::{HttpResponse, delete, get, post, web};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::auth::Caller;
use super::doc::{
    BadRequest, Conflict, ErrorBody, Forbidden, Internal, NotFound, Unauthorized, Unavailable,
    Unprocessable,
};
use super::keys::{parse_scopes, service};
use super::{Page, PageQuery, Paged, location};
use crate::federation::{self, Federation, FederationError, NewFederation};
use crate::keys::{KeyError, KeyOwner};
use crate::scope::Audience;
use crate::state::AppState;

/// The federation's name (or ID) in the path.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct FederationPath {
    /// The federation's name or ID.
    name: String,
}

/// List federations by name (admins).
#[utoipa::path(
    tag = "federations",
    operation_id = "listFederations",
    params(PageQuery),
    responses(
        (status = 200, description = "a page of federations", body = Paged<Federation>),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    )
)]
#[get("/federations")]
pub async fn list(
    caller: Caller,
    query: web::Query<PageQuery>,
    state: web::Data<AppState>,
) -> actix_web::Result<HttpResponse> {
    caller.require_admin()?;
    let page = Page::from_query(&query)?;
    let (keys, now) = (service(&state), state.clock.now());
    let all = state
        .db(move |conn| federation::list(conn, &keys, &caller.for_keys(), now))
        .await
        .map_err(crate::http::error::AppError::from)?;
    let page: Paged<Federation> = page.slice(all);
    Ok(HttpResponse::Ok().json(page))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateFederation {
    /// Letters, digits, `-`, `_`, `.`; unique.
    name: String,
    /// The issuer's URL, as its tokens' `iss`: https (http only on a
    /// loopback address).
    issuer: String,
    /// The pattern the tokens' `sub` must match: `*` matches any run of
    /// characters; a pattern of only `*` is refused.
    subject: String,
    /// What the tokens' `aud` must hold; default: keygate's issuer.
    audience: Option<String>,
    /// Further claims the tokens must carry with these exact values.
    #[serde(default)]
    claims: BTreeMap<String, String>,
    /// The owning person's email (or `team`).
    owner: Option<String>,
    /// The owning team's name, instead of `owner`.
    team: Option<String>,
    /// The federated key's scopes, each as its own string.
    scopes: Vec<String>,
    /// Registered API identifiers its tokens may target.
    #[serde(default)]
    resources: Vec<String>,
}

impl CreateFederation {
    fn checked(self) -> Result<NewFederation, FederationError> {
        let owner = match (self.owner, self.team) {
            (Some(email), None) => KeyOwner::person(&email),
            (None, Some(team)) => KeyOwner::team(&team),
            _ => {
                return Err(FederationError::InvalidOwner);
            }
        };
        Ok(NewFederation {
            name: self.name,
            issuer: self.issuer,
            subject: self.subject,
            audience: self.audience,
            claims: self.claims.into_iter().collect(),
            owner,
            scopes: parse_scopes(&self.scopes)?,
            resources: self
                .resources
                .iter()
                .map(|a| Audience::parse(a).map_err(KeyError::InvalidAudience))
                .collect::<Result<_, _>>()?,
        })
    }
}

/// Add a federation and its federated key (admins).
#[utoipa::path(
    tag = "federations",
    operation_id = "createFederation",
    request_body = CreateFederation,
    responses(
        (status = 201, description = "the new federation", body = Federation,
            headers(("Location" = String, description = "URL of the new federation"))),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, description = "no user has the `owner` email, or no team the `team` name (user_not_found, team_not_found)", body = ErrorBody),
        (status = 409, response = Conflict),
        (status = 422, response = Unprocessable),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    )
)]
#[post("/federations")]
pub async fn create(
    caller: Caller,
    body: web::Json<CreateFederation>,
    state: web::Data<AppState>,
) -> actix_web::Result<HttpResponse> {
    caller.require_admin()?;
    let new = body
        .into_inner()
        .checked()
        .map_err(crate::http::error::AppError::from)?;
    let (keys, now) = (service(&state), state.clock.now());
    let issuer = state.issuer.clone();
    let tagger = state.accounts.token_hasher.clone();
    let created = state
        .db(move |conn| {
            federation::add(conn, &keys, &caller.for_keys(), new, &issuer, &tagger, now)
        })
        .await
        .map_err(crate::http::error::AppError::from)?;
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, location("federations", &created.name)))
        .json(created))
}

/// Read one federation (admins).
#[utoipa::path(
    tag = "federations",
    operation_id = "getFederation",
    params(FederationPath),
    responses(
        (status = 200, description = "the federation", body = Federation),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    )
)]
#[get("/federations/{name}")]
pub async fn read(
    caller: Caller,
    path: web::Path<FederationPath>,
    state: web::Data<AppState>,
) -> actix_web::Result<HttpResponse> {
    caller.require_admin()?;
    let name = path.into_inner().name;
    let (keys, now) = (service(&state), state.clock.now());
    let found = state
        .db(move |conn| federation::get(conn, &keys, &caller.for_keys(), &name, now))
        .await
        .map_err(crate::http::error::AppError::from)?;
    Ok(HttpResponse::Ok().json(found))
}

/// Remove a federation; its federated key is revoked at once (admins).
#[utoipa::path(
    tag = "federations",
    operation_id = "deleteFederation",
    params(FederationPath),
    responses(
        (status = 204, description = "removed, its key revoked"),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    )
)]
#[delete("/federations/{name}")]
pub async fn remove(
    caller: Caller,
    path: web::Path<FederationPath>,
    state: web::Data<AppState>,
) -> actix_web::Result<HttpResponse> {
    caller.require_admin()?;
    let name = path.into_inner().name;
    let (keys, now) = (service(&state), state.clock.now());
    state
        .db(move |conn| federation::remove(conn, &keys, &caller.for_keys(), &name, now))
        .await
        .map_err(crate::http::error::AppError::from)?;
    Ok(HttpResponse::NoContent().finish())
}
