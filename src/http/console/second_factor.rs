//! `/sign-in/code`: the second step of a password sign-in for a person with
//! a second factor (a code of their authenticator app, or a recovery
//! code). The password step set the pending sign-in's cookie
//! (`super::auth::pending_sign_in`); the rules are
//! `crate::accounts::sign_in_second_factor`'s.

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::auth::{CODE_PATH, in_words, pre_session_form, signed_in};
use super::{Layout, PageError, csrf, field, local_path, page, resource, see_other, with_cookie};
use crate::accounts::{self, SignInError};
use crate::http::session;
use crate::state::AppState;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        resource(CODE_PATH)
            .route(web::get().to(code_page))
            .route(web::post().to(code)),
    );
}

#[derive(Debug, Deserialize)]
struct CodeQuery {
    #[serde(default)]
    next: String,
}

fn render(
    req: &HttpRequest,
    state: &AppState,
    status: StatusCode,
    next: &str,
    error: Option<String>,
) -> HttpResponse {
    let (token, cookie) = csrf::pre_session(req, &state.issuer);
    let layout = Layout::public(state, "Two-factor sign-in", &token);
    let response = page(
        status,
        "sign_in_code",
        &layout,
        minijinja::context! {
            next => local_path(next).unwrap_or(""),
            error,
            passkeys => state.accounts.passkeys.is_some(),
        },
    );
    match cookie {
        Some(cookie) => with_cookie(response, &cookie),
        None => response,
    }
}

async fn code_page(
    req: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<CodeQuery>,
) -> HttpResponse {
    if req.cookie(accounts::pending_cookie_name(&state)).is_none() {
        return see_other("/sign-in?notice=sign-in-expired");
    }
    render(&req, &state, StatusCode::OK, &query.next, None)
}

async fn code(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> Result<HttpResponse, PageError> {
    let form = pre_session_form(&req, &state, &body)?;
    let code = field(&form, "code").map_err(|e| PageError::public(&state, e))?;
    let next = field(&form, "next").map_err(|e| PageError::public(&state, e))?;
    let pending = req.cookie(accounts::pending_cookie_name(&state));
    let pending = pending.as_ref().map(|cookie| cookie.value());
    let peer = session::client_ip(&state, &req);
    let device = session::device_cookie(&state, &req);
    let device = device.as_ref().map(|cookie| cookie.value());
    let now: DateTime<Utc> = state.clock.now();
    let removal = session::render(&accounts::pending_removal_cookie(&state));
    Ok(
        match accounts::sign_in_second_factor(&state, pending, code, peer, device, now).await {
            Ok(session) => {
                let to = local_path(next).unwrap_or("/keys");
                with_cookie(signed_in((&state, &req), &session, to, now).await, &removal)
            }
            Err(SignInError::PendingExpired) => {
                with_cookie(see_other("/sign-in?notice=sign-in-expired"), &removal)
            }
            Err(SignInError::WrongCode) => render(
                &req,
                &state,
                StatusCode::UNAUTHORIZED,
                next,
                Some(
                    "That code is not right. Type the code your app shows now, or a recovery code."
                        .to_owned(),
                ),
            ),
            Err(SignInError::Throttled { retry_after }) => {
                let error = format!(
                    "Too many failed sign-ins. Try again in {}.",
                    in_words(retry_after)
                );
                let mut response = render(
                    &req,
                    &state,
                    StatusCode::TOO_MANY_REQUESTS,
                    next,
                    Some(error),
                );
                if let Ok(value) = header::HeaderValue::from_str(&retry_after.to_string()) {
                    response.headers_mut().insert(header::RETRY_AFTER, value);
                }
                response
            }
            Err(e) => return Err(PageError::public(&state, e)),
        },
    )
}
