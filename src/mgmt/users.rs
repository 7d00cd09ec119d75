//! `/api/v1/users`: admins only.

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use chrono::Utc;
use serde::Deserialize;

use super::auth::Caller;
use super::{Page, PageQuery, location};
use crate::state::AppState;
use crate::users::{self, MEMBER_ROLE, NewUserInput, UserChanges};

pub async fn list(
    caller: Caller,
    query: web::Query<PageQuery>,
    state: web::Data<AppState>,
) -> actix_web::Result<HttpResponse> {
    caller.require_admin()?;
    let page = Page::from_query(&query)?;
    let all = state
        .db(|conn| users::list_users(conn).map_err(crate::error::AppError::from))
        .await?;
    Ok(HttpResponse::Ok().json(page.slice(all)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    email: String,
    #[serde(default)]
    name: String,
    /// Default: `member`.
    role: Option<String>,
}

pub async fn create(
    caller: Caller,
    body: web::Json<CreateUser>,
    state: web::Data<AppState>,
) -> actix_web::Result<HttpResponse> {
    caller.require_admin()?;
    let body = body.into_inner();
    let now = Utc::now();
    let user = state
        .db(move |conn| {
            let input = NewUserInput {
                email: &body.email,
                name: &body.name,
                role: body.role.as_deref().unwrap_or(MEMBER_ROLE),
                password_hash: None,
            };
            users::create_user(conn, input, &caller.email, now)
        })
        .await?;
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, location("users", &user.email)))
        .json(user))
}

pub async fn read(
    caller: Caller,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> actix_web::Result<HttpResponse> {
    caller.require_admin()?;
    let email = path.into_inner();
    let user = state
        .db(move |conn| users::find_user_by_email(conn, &email))
        .await?;
    Ok(HttpResponse::Ok().json(user))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateUser {
    disabled: Option<bool>,
    can_create_keys: Option<bool>,
    role: Option<String>,
}

pub async fn update(
    caller: Caller,
    path: web::Path<String>,
    body: web::Json<UpdateUser>,
    state: web::Data<AppState>,
) -> actix_web::Result<HttpResponse> {
    caller.require_admin()?;
    let email = path.into_inner();
    let body = body.into_inner();
    let now = Utc::now();
    let user = state
        .db(move |conn| {
            let changes = UserChanges {
                disabled: body.disabled,
                can_create_keys: body.can_create_keys,
                role: body.role.as_deref(),
            };
            users::update_user(conn, &email, &changes, &caller.email, now)
        })
        .await?;
    Ok(HttpResponse::Ok().json(user))
}
