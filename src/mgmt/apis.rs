//! `/api/v1/apis`: registered resource servers; admins only.

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use chrono::Utc;
use serde::Deserialize;

use super::auth::Caller;
use super::{Page, PageQuery, location};
use crate::apis;
use crate::error::AppError;
use crate::scope::{Audience, ScopeSet};
use crate::state::AppState;

pub async fn list(
    caller: Caller,
    query: web::Query<PageQuery>,
    state: web::Data<AppState>,
) -> actix_web::Result<HttpResponse> {
    caller.require_admin()?;
    let page = Page::from_query(&query)?;
    let all = state
        .db(|conn| apis::list_apis(conn).map_err(AppError::from))
        .await?;
    Ok(HttpResponse::Ok().json(page.slice(all)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateApi {
    /// The audience URI.
    identifier: String,
    name: String,
    #[serde(default)]
    scopes: Vec<String>,
}

pub async fn create(
    caller: Caller,
    body: web::Json<CreateApi>,
    state: web::Data<AppState>,
) -> actix_web::Result<HttpResponse> {
    caller.require_admin()?;
    let body = body.into_inner();
    let identifier = Audience::parse(&body.identifier)
        .map_err(|m| AppError::invalid("invalid_identifier", m))?;
    let scopes = ScopeSet::parse(&body.scopes.join(" "))
        .map_err(|e| AppError::invalid("invalid_scope", e.to_string()))?;
    let now = Utc::now();
    let api = state
        .db(move |conn| {
            apis::create_api(conn, &identifier, &body.name, &scopes, &caller.email, now)
        })
        .await?;
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, location("apis", &api.identifier)))
        .json(api))
}

/// The identifier arrives percent-encoded (`https%3A%2F%2Fapi.example.com`).
pub async fn read(
    caller: Caller,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> actix_web::Result<HttpResponse> {
    caller.require_admin()?;
    let identifier = path.into_inner();
    let api = state
        .db(move |conn| apis::find_api(conn, &identifier))
        .await?;
    Ok(HttpResponse::Ok().json(api))
}
