//! `/api/v1/keys`: a `keygate:keys` caller sees and changes only their own
//! keys; another's key answers 404, exactly as a missing one does.

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use chrono::Utc;
use serde::Deserialize;

use super::auth::{AuthError, Caller};
use super::{Page, location, optional_json, secret_response};
use crate::duration::HumanDuration;
use crate::error::AppError;
use crate::keys::{self, KeyStatus, KeyView, NewKeyRequest};
use crate::scope::{ADMIN_SCOPE, Audience, ScopeSet};
use crate::state::AppState;

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    owner: Option<String>,
    status: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

fn parse_status(text: &str) -> Result<KeyStatus, AppError> {
    match text {
        "active" => Ok(KeyStatus::Active),
        "expired" => Ok(KeyStatus::Expired),
        "revoked" => Ok(KeyStatus::Revoked),
        _ => Err(AppError::bad_request(
            "status must be active, expired or revoked",
        )),
    }
}

pub async fn list(
    caller: Caller,
    query: web::Query<ListQuery>,
    state: web::Data<AppState>,
) -> actix_web::Result<HttpResponse> {
    let page = Page::parse(query.limit.as_deref(), query.cursor.as_deref())?;
    let status = query.status.as_deref().map(parse_status).transpose()?;
    let owner = match (&query.owner, caller.is_admin()) {
        (owner, true) => owner.clone(),
        (Some(owner), false) if !caller.may_manage_keys_of(owner) => {
            return Err(AuthError::InsufficientScope(ADMIN_SCOPE).into());
        }
        (_, false) => Some(caller.email.clone()),
    };
    let now = Utc::now();
    let all = state
        .db(move |conn| keys::list_api_keys(conn, owner.as_deref(), now))
        .await?;
    let matching: Vec<KeyView> = all
        .into_iter()
        .filter(|k| status.is_none_or(|s| k.status == s))
        .collect();
    Ok(HttpResponse::Ok().json(page.slice(matching)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    scopes: Vec<String>,
    #[serde(default)]
    audiences: Vec<String>,
    /// Such as `90d`; default and maximum: `KEYGATE_KEY_MAX_LIFETIME`.
    expires_in: Option<String>,
    /// Admins only; default: the caller.
    owner: Option<String>,
}

fn parse_scopes(scopes: &[String]) -> Result<ScopeSet, AppError> {
    for scope in scopes {
        let parsed = ScopeSet::parse(scope)
            .map_err(|e| AppError::invalid("invalid_scope", e.to_string()))?;
        if parsed.iter().count() != 1 {
            return Err(AppError::invalid(
                "invalid_scope",
                format!("{scope:?} is not one scope; give each scope as its own string"),
            ));
        }
    }
    Ok(scopes.iter().cloned().collect())
}

pub async fn create(
    caller: Caller,
    body: web::Json<CreateKey>,
    state: web::Data<AppState>,
) -> actix_web::Result<HttpResponse> {
    let body = body.into_inner();
    let owner = match body.owner {
        Some(owner) if !caller.may_manage_keys_of(&owner) => {
            return Err(AuthError::InsufficientScope(ADMIN_SCOPE).into());
        }
        Some(owner) => owner,
        None => caller.email.clone(),
    };
    let scopes = parse_scopes(&body.scopes)?;
    let audiences = body
        .audiences
        .iter()
        .map(|a| Audience::parse(a).map_err(|m| AppError::invalid("invalid_audience", m)))
        .collect::<Result<Vec<_>, _>>()?;
    let expires_in = body
        .expires_in
        .as_deref()
        .map(|d| {
            d.parse::<HumanDuration>().map_err(|e| {
                AppError::invalid("invalid_duration", format!("expires_in {d:?}: {e}"))
            })
        })
        .transpose()?;
    let (max, warning) = (state.key_max_lifetime, state.expiry_warning);
    let actor = caller.email.clone();
    let now = Utc::now();
    let issued = state
        .db(move |conn| {
            let request = NewKeyRequest {
                owner_email: &owner,
                name: &body.name,
                description: &body.description,
                scopes,
                audiences,
                expires_in,
            };
            keys::create_api_key(conn, request, max, warning, &actor, now)
        })
        .await?;
    let mut builder = HttpResponse::Created();
    builder.insert_header((header::LOCATION, location("keys", &issued.key.client_id)));
    Ok(secret_response(builder, issued.to_json()))
}

/// The key if the caller may see it; otherwise the same 404 as for no key.
fn visible(caller: &Caller, view: KeyView, client_id: &str) -> Result<KeyView, AppError> {
    if caller.may_manage_keys_of(&view.owner) {
        Ok(view)
    } else {
        Err(AppError::not_found(
            "key_not_found",
            format!("no key with client ID {client_id}"),
        ))
    }
}

pub async fn read(
    caller: Caller,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> actix_web::Result<HttpResponse> {
    let client_id = path.into_inner();
    let now = Utc::now();
    let view = state
        .db(move |conn| {
            let (_, view) = keys::find_key_view(conn, &client_id, now)?;
            visible(&caller, view, &client_id)
        })
        .await?;
    Ok(HttpResponse::Ok().json(view))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RotateBody {
    /// How long the old secret keeps working, such as `1h`; default none.
    grace: Option<String>,
}

pub async fn rotate(
    caller: Caller,
    path: web::Path<String>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> actix_web::Result<HttpResponse> {
    let client_id = path.into_inner();
    let body: RotateBody = optional_json(&body)?;
    let grace = body
        .grace
        .as_deref()
        .map(|g| {
            HumanDuration::parse_or_zero(g)
                .map_err(|e| AppError::invalid("invalid_duration", format!("grace {g:?}: {e}")))
        })
        .transpose()?
        .flatten();
    let now = Utc::now();
    let issued = state
        .db(move |conn| {
            let (_, view) = keys::find_key_view(conn, &client_id, now)?;
            visible(&caller, view, &client_id)?;
            keys::rotate_api_key(conn, &client_id, grace, &caller.email, now)
        })
        .await?;
    Ok(secret_response(HttpResponse::Ok(), issued.to_json()))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RevokeBody {
    reason: Option<String>,
}

/// `POST .../revoke` and `DELETE /keys/{client_id}` alike.
pub async fn revoke(
    caller: Caller,
    path: web::Path<String>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> actix_web::Result<HttpResponse> {
    let client_id = path.into_inner();
    let body: RevokeBody = optional_json(&body)?;
    let now = Utc::now();
    let view = state
        .db(move |conn| {
            let (_, view) = keys::find_key_view(conn, &client_id, now)?;
            visible(&caller, view, &client_id)?;
            keys::revoke_api_key(conn, &client_id, body.reason.as_deref(), &caller.email, now)
        })
        .await?;
    Ok(HttpResponse::Ok().json(view))
}
