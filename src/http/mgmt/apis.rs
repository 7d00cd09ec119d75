//! `/api/v1/apis`: registered resource servers; admins only.

use actix_web::http::header;
use actix_web::{HttpResponse, get, patch, post, web};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::auth::Caller;
use super::doc::{
    BadRequest, Conflict, Forbidden, Internal, NotFound, Unauthorized, Unavailable, Unprocessable,
};
use super::{Page, PageQuery, Paged, location};
use crate::http::error::AppError;
use crate::resource_servers::{self, Api, ApiChange};
use crate::scope::{Audience, ScopeSet};
use crate::state::AppState;

/// List registered APIs by identifier.
#[utoipa::path(
    tag = "apis",
    operation_id = "listApis",
    params(PageQuery),
    responses(
        (status = 200, description = "a page of APIs", body = Paged<Api>),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    )
)]
#[get("/apis")]
pub async fn list(
    caller: Caller,
    query: web::Query<PageQuery>,
    state: web::Data<AppState>,
) -> actix_web::Result<HttpResponse> {
    caller.require_admin()?;
    let page = Page::from_query(&query)?;
    let all = state
        .db(|conn| resource_servers::list_apis(conn).map_err(AppError::from))
        .await?;
    let page: Paged<Api> = page.slice(all);
    Ok(HttpResponse::Ok().json(page))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApi {
    /// The audience URI.
    identifier: String,
    name: String,
    #[serde(default)]
    scopes: Vec<String>,
}

impl CreateApi {
    /// The identifier and scopes parsed: 422 `invalid_identifier` or
    /// `invalid_scope`.
    pub fn check(&self) -> Result<(Audience, ScopeSet), AppError> {
        let identifier = Audience::parse(&self.identifier)
            .map_err(|m| AppError::invalid("invalid_identifier", m))?;
        Ok((identifier, parse_scopes(&self.scopes)?))
    }
}

/// Register an API (a resource server) and the scopes it understands.
#[utoipa::path(
    tag = "apis",
    operation_id = "createApi",
    request_body = CreateApi,
    responses(
        (status = 201, description = "the registered API", body = Api,
            headers(("Location" = String, description = "URL of the new API"))),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 409, response = Conflict),
        (status = 422, response = Unprocessable),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    )
)]
#[post("/apis")]
pub async fn create(
    caller: Caller,
    body: web::Json<CreateApi>,
    state: web::Data<AppState>,
) -> actix_web::Result<HttpResponse> {
    caller.require_admin()?;
    let body = body.into_inner();
    let (identifier, scopes) = body.check()?;
    let (now, issuer) = (state.clock.now(), state.issuer.clone());
    let api = state
        .db(move |conn| {
            let at = (&identifier, issuer.as_str());
            resource_servers::create_api(conn, at, &body.name, &scopes, &caller.email, now)
        })
        .await
        .map_err(AppError::from)?;
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, location("apis", &api.identifier)))
        .json(api))
}

/// The identifier in the path.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ApiPath {
    /// The API's identifier, percent-encoded (`https%3A%2F%2Fapi.example.com`).
    identifier: String,
}

/// Read one registered API.
#[utoipa::path(
    tag = "apis",
    operation_id = "getApi",
    params(ApiPath),
    responses(
        (status = 200, description = "the API", body = Api),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    )
)]
#[get("/apis/{identifier}")]
pub async fn read(
    caller: Caller,
    path: web::Path<ApiPath>,
    state: web::Data<AppState>,
) -> actix_web::Result<HttpResponse> {
    caller.require_admin()?;
    let identifier = path.into_inner().identifier;
    let api = state
        .db(move |conn| resource_servers::find_api(conn, &identifier))
        .await
        .map_err(AppError::from)?;
    Ok(HttpResponse::Ok().json(api))
}

/// What may change about an API; a field left out stays as it is.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateApi {
    name: Option<String>,
    /// The scopes the API defines from now on: a scope left out is no longer
    /// put in this API's tokens, whatever keys hold it.
    scopes: Option<Vec<String>>,
    /// Those of its scopes that a key created by someone who is not an admin
    /// may hold only once an admin approves it; `[]`: none. Each must be one
    /// of the API's scopes (as changed by `scopes`).
    approval_scopes: Option<Vec<String>>,
}

/// Each string exactly one scope: `"read write"` is two and refused, not
/// read as both (422 `invalid_scope`).
fn parse_scopes(scopes: &[String]) -> Result<ScopeSet, AppError> {
    let invalid = |message: String| AppError::invalid("invalid_scope", message);
    for scope in scopes {
        let parsed = ScopeSet::parse(scope).map_err(|e| invalid(e.to_string()))?;
        if parsed.iter().collect::<Vec<_>>() != [scope.as_str()] {
            return Err(invalid(format!(
                "{scope:?} is not one scope; give each scope as its own string"
            )));
        }
    }
    Ok(scopes.iter().cloned().collect())
}

/// Rename an API, change the scopes it defines or those needing approval:
/// all the fields given, or, if one is refused, none.
#[utoipa::path(
    tag = "apis",
    operation_id = "updateApi",
    params(ApiPath),
    request_body = UpdateApi,
    responses(
        (status = 200, description = "the API as changed", body = Api),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 422, response = Unprocessable),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    )
)]
#[patch("/apis/{identifier}")]
pub async fn update(
    caller: Caller,
    path: web::Path<ApiPath>,
    body: web::Json<UpdateApi>,
    state: web::Data<AppState>,
) -> actix_web::Result<HttpResponse> {
    caller.require_admin()?;
    let identifier = path.into_inner().identifier;
    let body = body.into_inner();
    let change = ApiChange {
        scopes: body.scopes.as_deref().map(parse_scopes).transpose()?,
        approval_scopes: body
            .approval_scopes
            .as_deref()
            .map(parse_scopes)
            .transpose()?,
        name: body.name,
    };
    let now = state.clock.now();
    let api = state
        .db(move |conn| {
            resource_servers::change_api(conn, &identifier, &change, &caller.email, now)
        })
        .await
        .map_err(AppError::from)?;
    Ok(HttpResponse::Ok().json(api))
}
