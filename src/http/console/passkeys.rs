//! Passkeys at the console's edge: the JSON endpoints the console's script
//! calls around `navigator.credentials` (WebAuthn exists only in script),
//! and the plain forms that rename and remove one. Each ceremony's first
//! request sets its sealed cookie and answers the options; the second
//! answers JSON (`{"redirect": ...}`, and the recovery codes once when a
//! first factor was added) and removes the cookie. State-changing requests
//! carry the CSRF token in `X-CSRF-Token`: the session's, or before signing
//! in the double-submit token of [`super::csrf`]. The rules are
//! `crate::accounts`'.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use super::{
    Current, PageError, field, local_path, posted, resource, security, viewer, with_cookie,
};
use crate::accounts::factors::{self, passkeys};
use crate::accounts::{self, Session};
use crate::http::error::AppError;
use crate::http::session;
use crate::state::AppState;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        resource("/account/security/passkeys/options").route(web::post().to(registration_options)),
    )
    .service(resource("/account/security/passkeys").route(web::post().to(register)))
    .service(resource("/account/security/passkeys/{id}/remove").route(web::post().to(remove)))
    .service(resource("/account/security/passkeys/{id}/rename").route(web::post().to(rename)))
    .service(resource("/sign-in/passkey/options").route(web::post().to(sign_in_options)))
    .service(resource("/sign-in/code/passkey/options").route(web::post().to(second_factor_options)))
    .service(resource("/sign-in/passkey").route(web::post().to(sign_in)));
}

fn csrf_header(req: &HttpRequest) -> &str {
    req.headers()
        .get(session::CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

fn refused_csrf() -> AppError {
    AppError::forbidden(
        "invalid_csrf_token",
        "this request did not come from this keygate's page: reload it and try again",
    )
}

/// A signed-in request's session, its CSRF header checked.
fn checked(req: &HttpRequest, session: &Session) -> Result<(), AppError> {
    if session.csrf_matches(csrf_header(req)) {
        Ok(())
    } else {
        Err(refused_csrf())
    }
}

/// A request before sign-in, its double-submit CSRF header checked.
fn checked_public(req: &HttpRequest, state: &AppState) -> Result<(), AppError> {
    if super::csrf::pre_session_matches(req, &state.issuer, csrf_header(req)) {
        Ok(())
    } else {
        Err(refused_csrf())
    }
}

fn with_ceremony(options: serde_json::Value, cookie: &accounts::SessionCookie) -> HttpResponse {
    with_cookie(HttpResponse::Ok().json(options), &session::render(cookie))
}

fn ceremony_cookie(req: &HttpRequest, state: &AppState) -> Option<String> {
    req.cookie(passkeys::ceremony_cookie_name(&state.accounts))
        .map(|c| c.value().to_owned())
}

fn json_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, AppError> {
    serde_json::from_slice(body)
        .map_err(|e| AppError::bad_request(format!("not the JSON expected: {e}")))
}

async fn registration_options(
    req: HttpRequest,
    state: web::Data<AppState>,
    session: Session,
) -> Result<HttpResponse, AppError> {
    checked(&req, &session)?;
    let now = state.clock.now();
    let (options, cookie) = factors::begin_passkey_registration(&state, &session, now).await?;
    Ok(with_ceremony(options, &cookie))
}

#[derive(Debug, Deserialize)]
struct Registration {
    #[serde(default)]
    name: String,
    credential: serde_json::Value,
}

async fn register(
    req: HttpRequest,
    state: web::Data<AppState>,
    session: Session,
    body: web::Bytes,
) -> Result<HttpResponse, AppError> {
    checked(&req, &session)?;
    let registration: Registration = json_body(&body)?;
    let ceremony = ceremony_cookie(&req, &state);
    let now = state.clock.now();
    let credential = registration.credential.to_string();
    let codes = factors::finish_passkey_registration(
        &state,
        &session,
        (&registration.name, &credential, ceremony.as_deref()),
        now,
    )
    .await?;
    let removal = session::render(&passkeys::ceremony_removal_cookie(&state.accounts));
    let response = HttpResponse::Ok().json(json!({
        "redirect": format!("{}?notice=passkey-added", security::SECURITY_PATH),
        "recovery_codes": codes.as_ref().map(|c| c.expose().collect::<Vec<_>>()),
    }));
    Ok(with_cookie(response, &removal))
}

async fn remove(
    req: HttpRequest,
    state: web::Data<AppState>,
    current: Current,
    id: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, PageError> {
    let viewer = viewer(&req, &state, current).await?;
    posted(&state, &viewer, (&req, &body), |_| Ok(()))?;
    let now = state.clock.now();
    let done = factors::remove_passkey(&state, &viewer.session, &id, now).await;
    security::back_with(&state, &viewer, done, "passkey-removed").await
}

async fn rename(
    req: HttpRequest,
    state: web::Data<AppState>,
    current: Current,
    id: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, PageError> {
    let viewer = viewer(&req, &state, current).await?;
    let name = posted(&state, &viewer, (&req, &body), |form| {
        field(form, "name").map(str::to_owned)
    })?;
    let now = state.clock.now();
    let done = factors::rename_passkey(&state, &viewer.session, &id, &name, now).await;
    security::back_with(&state, &viewer, done, "passkey-renamed").await
}

async fn sign_in_options(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    checked_public(&req, &state)?;
    let (options, cookie) = accounts::begin_passkey_sign_in(&state, state.clock.now()).await?;
    Ok(with_ceremony(options, &cookie))
}

async fn second_factor_options(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    checked_public(&req, &state)?;
    let pending = req.cookie(accounts::pending_cookie_name(&state));
    let pending = pending.as_ref().map(|c| c.value());
    let (options, cookie) =
        accounts::begin_passkey_second_factor(&state, pending, state.clock.now()).await?;
    Ok(with_ceremony(options, &cookie))
}

#[derive(Debug, Deserialize)]
struct Assertion {
    credential: serde_json::Value,
    #[serde(default)]
    next: String,
}

async fn sign_in(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> Result<HttpResponse, AppError> {
    checked_public(&req, &state)?;
    let assertion: Assertion = json_body(&body)?;
    let ceremony = ceremony_cookie(&req, &state);
    let pending = req.cookie(accounts::pending_cookie_name(&state));
    let pending = pending.as_ref().map(|c| c.value().to_owned());
    let peer = session::client_ip(&state, &req);
    let now = state.clock.now();
    let credential = assertion.credential.to_string();
    let signed_in = accounts::sign_in_with_passkey(
        &state,
        &credential,
        (ceremony.as_deref(), pending.as_deref()),
        peer,
        now,
    )
    .await?;
    super::auth::end_replaced(&state, &req).await;
    let next = local_path(&assertion.next).unwrap_or("/keys");
    let mut response = HttpResponse::Ok().json(json!({ "redirect": next }));
    let mut cookies = session::signed_in_cookies(&state, &signed_in, now).to_vec();
    cookies.push(session::render(&passkeys::ceremony_removal_cookie(
        &state.accounts,
    )));
    cookies.push(session::render(&accounts::pending_removal_cookie(&state)));
    for cookie in cookies {
        if let Ok(value) = cookie.to_string().parse() {
            response
                .headers_mut()
                .append(actix_web::http::header::SET_COOKIE, value);
        }
    }
    Ok(response)
}
