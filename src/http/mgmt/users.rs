//! `/api/v1/users`: admins only. Disabling a person may hand their live
//! keys to another person or a team in the same step.

use actix_web::http::header;
use actix_web::{HttpResponse, get, patch, post, web};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::Caller;
use super::doc::{
    BadRequest, Conflict, Forbidden, Internal, NotFound, Unauthorized, Unavailable, Unprocessable,
};
use super::{Page, PageQuery, Paged, location};
use crate::db::write_transaction;
use crate::http::error::AppError;
use crate::keys::{self, Key, KeyError, KeyOwner};
use crate::state::AppState;
use crate::users::{self, MEMBER_ROLE, NewUserInput, User, UserChanges};

/// The email in the path.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct UserPath {
    /// The user's email (`@` may be percent-encoded).
    email: String,
}

/// List users by email.
#[utoipa::path(
    tag = "users",
    operation_id = "listUsers",
    params(PageQuery),
    responses(
        (status = 200, description = "a page of users", body = Paged<User>),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    )
)]
#[get("/users")]
pub async fn list(
    caller: Caller,
    query: web::Query<PageQuery>,
    state: web::Data<AppState>,
) -> actix_web::Result<HttpResponse> {
    caller.require_admin()?;
    let page = Page::from_query(&query)?;
    let all = state
        .db(|conn| users::list_users(conn).map_err(AppError::from))
        .await?;
    let page: Paged<User> = page.slice(all);
    Ok(HttpResponse::Ok().json(page))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    email: String,
    #[serde(default)]
    name: String,
    /// Default: `member`.
    role: Option<String>,
}

/// Create a user (no password: they set one through an invitation or reset).
#[utoipa::path(
    tag = "users",
    operation_id = "createUser",
    request_body = CreateUser,
    responses(
        (status = 201, description = "the new user", body = User,
            headers(("Location" = String, description = "URL of the new user"))),
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
#[post("/users")]
pub async fn create(
    caller: Caller,
    body: web::Json<CreateUser>,
    state: web::Data<AppState>,
) -> actix_web::Result<HttpResponse> {
    caller.require_admin()?;
    let body = body.into_inner();
    let now = state.clock.now();
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
        .await
        .map_err(AppError::from)?;
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, location("users", &user.email)))
        .json(user))
}

/// Read one user.
#[utoipa::path(
    tag = "users",
    operation_id = "getUser",
    params(UserPath),
    responses(
        (status = 200, description = "the user", body = User),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    )
)]
#[get("/users/{email}")]
pub async fn read(
    caller: Caller,
    path: web::Path<UserPath>,
    state: web::Data<AppState>,
) -> actix_web::Result<HttpResponse> {
    caller.require_admin()?;
    let email = path.into_inner().email;
    let user = state
        .db(move |conn| users::find_user_by_email(conn, &email))
        .await
        .map_err(AppError::from)?;
    Ok(HttpResponse::Ok().json(user))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUser {
    disabled: Option<bool>,
    can_create_keys: Option<bool>,
    role: Option<String>,
    /// With `"disabled": true`: first give every live key of theirs to the
    /// person with this email (not with `transfer_keys_to_team`).
    transfer_keys_to: Option<String>,
    /// With `"disabled": true`: first give every live key of theirs to the
    /// team with this name (not with `transfer_keys_to`).
    transfer_keys_to_team: Option<String>,
}

impl UpdateUser {
    /// To whom a disabled person's keys go: 400 `invalid_request` for both
    /// at once, or for either without `"disabled": true`.
    fn transfer_to(&self) -> Result<Option<KeyOwner>, AppError> {
        let to = match (&self.transfer_keys_to, &self.transfer_keys_to_team) {
            (Some(_), Some(_)) => {
                return Err(AppError::bad_request(
                    "give transfer_keys_to or transfer_keys_to_team, not both",
                ));
            }
            (Some(email), None) => Some(KeyOwner::person(email)),
            (None, Some(team)) => Some(KeyOwner::team(team)),
            (None, None) => None,
        };
        if to.is_some() && self.disabled != Some(true) {
            return Err(AppError::bad_request(
                "transfer_keys_to and transfer_keys_to_team go with \"disabled\": true",
            ));
        }
        Ok(to)
    }
}

/// A user as changed, and what became of their live keys if this change
/// disabled them.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChangedUser {
    #[serde(flatten)]
    user: User,
    /// Client IDs of the live keys given to the new owner.
    keys_transferred: Vec<String>,
    /// Client IDs of the live keys that stopped with the account.
    keys_stopped: Vec<String>,
}

fn client_ids(keys: &[Key]) -> Vec<String> {
    keys.iter().map(|k| k.client_id.to_string()).collect()
}

/// Change a user: disable (their keys and sessions stop at once, unless
/// `transfer_keys_to` or `transfer_keys_to_team` hands the keys over in the
/// same transaction: if one key may not go, nothing changes and the message
/// names it), enable, switch key creation, change role.
#[utoipa::path(
    tag = "users",
    operation_id = "updateUser",
    params(UserPath),
    request_body = UpdateUser,
    responses(
        (status = 200, description = "the changed user", body = ChangedUser),
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
#[patch("/users/{email}")]
pub async fn update(
    caller: Caller,
    path: web::Path<UserPath>,
    body: web::Json<UpdateUser>,
    state: web::Data<AppState>,
) -> actix_web::Result<HttpResponse> {
    caller.require_admin()?;
    let email = path.into_inner().email;
    let body = body.into_inner();
    let transfer_to = body.transfer_to()?;
    let now = state.clock.now();
    let service = keys::Service::new(state.issuer.clone(), state.key_limits());
    let changed = state
        .db(move |conn| {
            if body.disabled != Some(true) {
                let changes = UserChanges {
                    disabled: body.disabled,
                    can_create_keys: body.can_create_keys,
                    role: body.role.as_deref(),
                };
                let user = users::update_user(conn, &email, &changes, &caller.email, now)?;
                return Ok(ChangedUser {
                    user,
                    keys_transferred: Vec::new(),
                    keys_stopped: Vec::new(),
                });
            }
            write_transaction(conn, |conn| {
                let by = caller.for_keys();
                let done = service.disable_person(conn, &by, &email, transfer_to.as_ref(), now)?;
                let mut user = done.user;
                if body.can_create_keys.is_some() || body.role.is_some() {
                    let changes = UserChanges {
                        disabled: None,
                        can_create_keys: body.can_create_keys,
                        role: body.role.as_deref(),
                    };
                    user = users::update_user(conn, &email, &changes, &caller.email, now)?;
                }
                Ok::<_, KeyError>(ChangedUser {
                    user,
                    keys_transferred: client_ids(&done.transferred),
                    keys_stopped: client_ids(&done.stopped),
                })
            })
        })
        .await
        .map_err(AppError::from)?;
    Ok(HttpResponse::Ok().json(changed))
}
