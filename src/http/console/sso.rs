//! Single sign-on's two pages: `GET /sign-in/oidc` sends the browser to the
//! identity provider with the flow's cookie set, and
//! `GET /sign-in/oidc/callback` is where the provider sends it back. The
//! rules are `crate::accounts::sso`'s; this is their wire. A refusal is the
//! sign-in page with one plain sentence, and the flow's cookie always goes.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use super::auth::{SignInForm, render_sign_in, signed_in};
use super::{Current, PageError, local_path, resource, see_other, sentence, with_cookie};
use crate::accounts::sso::{self, Callback, ProviderProblem, SsoRefusal};
use crate::http::error::AppError;
use crate::http::session;
use crate::state::AppState;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(resource(sso::START_PATH).route(web::get().to(start)))
        .service(resource(sso::CALLBACK_PATH).route(web::get().to(callback)));
}

#[derive(Debug, Deserialize)]
struct StartQuery {
    #[serde(default)]
    next: String,
    /// `1`: signing in again (`super::auth`'s sign-in page, `again`).
    #[serde(default)]
    again: Option<String>,
}

async fn start(
    req: HttpRequest,
    state: web::Data<AppState>,
    current: Current,
    query: web::Query<StartQuery>,
) -> Result<HttpResponse, PageError> {
    let current = current.map_err(|e| PageError::public(&state, e))?;
    let next = local_path(&query.next).unwrap_or("/keys");
    let again = query.again.as_deref() == Some("1");
    if current.0.is_some() && !again {
        return Ok(see_other(next));
    }
    match sso::start(&state, (next, again), state.clock.now()).await {
        Ok((url, cookie)) => Ok(with_cookie(see_other(&url), &session::render(&cookie))),
        Err(SsoRefusal::NotConfigured) => Err(not_configured(&state)),
        Err(refusal) => {
            tracing::warn!(%refusal, "single sign-on could not start");
            Ok(refused_page(&req, &state, &refusal, None, next))
        }
    }
}

/// What the provider sends back (RFC 6749 §4.1.2; `iss` of RFC 9207 and
/// anything else are ignored: the ID token names its issuer).
#[derive(Debug, Deserialize)]
struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

async fn callback(
    req: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<CallbackQuery>,
) -> Result<HttpResponse, PageError> {
    let flow = req.cookie(sso::flow_cookie_name(&state));
    let removal = session::render(&sso::flow_removal_cookie(&state));
    let callback = Callback {
        code: query.code.as_deref(),
        state: query.state.as_deref(),
        error: query.error.as_deref(),
    };
    let peer = session::client_ip(&state, &req);
    let now = state.clock.now();
    let flow = flow.as_ref().map(|cookie| cookie.value());
    let response = match sso::finish(&state, flow, callback, peer, now).await {
        Ok(done) => {
            let next = local_path(&done.next).unwrap_or("/keys");
            signed_in((&state, &req), &done.session, next, now).await
        }
        Err(refused) => match refused.reason {
            SsoRefusal::NotConfigured => return Err(not_configured(&state)),
            SsoRefusal::Store(e) => return Err(PageError::public(&state, e)),
            ref reason => refused_page(&req, &state, reason, refused.email.as_deref(), ""),
        },
    };
    Ok(with_cookie(response, &removal))
}

fn not_configured(state: &AppState) -> PageError {
    let error = AppError::not_found("not_found", "single sign-on is not set up here");
    PageError::public(state, error)
}

/// The sign-in page with the refusal's sentence.
fn refused_page(
    req: &HttpRequest,
    state: &AppState,
    reason: &SsoRefusal,
    email: Option<&str>,
    next: &str,
) -> HttpResponse {
    let name = state.sso.as_ref().map_or("", |sso| sso.name());
    let status = match reason {
        SsoRefusal::Provider(ProviderProblem::Unreachable(_)) => StatusCode::BAD_GATEWAY,
        SsoRefusal::NoFlow
        | SsoRefusal::StateMismatch
        | SsoRefusal::ProviderDenied(_)
        | SsoRefusal::Provider(_) => StatusCode::BAD_REQUEST,
        _ => StatusCode::FORBIDDEN,
    };
    let form = SignInForm {
        email: "",
        next,
        error: Some(sentence(&reason.message(name, email))),
        notice: None,
        again: false,
    };
    render_sign_in(req, state, status, form)
}
