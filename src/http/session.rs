//! The console session at the HTTP edge: the cookie a request presents and
//! the one a response sets, the client address sign-in is throttled by,
//! and the extractors that turn a request into the signed-in person. The
//! rules are `crate::accounts`'; this is their wire.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr};
use std::pin::Pin;

use actix_web::cookie::{Cookie, SameSite};
use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, web};
use chrono::{DateTime, Utc};

use crate::accounts::{
    self, CurrentSession, DeviceCookie, NewSession, Session, SessionCookie, SessionToken,
};
use crate::http::error::AppError;
use crate::state::AppState;

/// The header that carries the CSRF token on state-changing API requests.
pub const CSRF_HEADER: &str = "X-CSRF-Token";

/// The session token a request carries in its cookie, if any.
pub fn session_token(state: &AppState, req: &HttpRequest) -> Option<SessionToken> {
    req.cookie(accounts::cookie_name(&state.accounts))
        .map(|c| SessionToken::from_presented(c.value()))
        .filter(|t| !t.expose().is_empty())
}

/// The device cookie a request carries, if any ([`accounts::DeviceCookie`]).
pub fn device_cookie(state: &AppState, req: &HttpRequest) -> Option<Cookie<'static>> {
    req.cookie(accounts::device_cookie_name(&state.accounts))
}

/// The client address of a request, as the throttle counts it (behind
/// `KEYGATE_TRUSTED_PROXIES`, the forwarded one); unspecified when unknown.
pub fn client_ip(state: &AppState, req: &HttpRequest) -> IpAddr {
    crate::http::peer::client_ip(req, &state.client_auth.trusted_proxies)
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
}

/// The session cookie as a `Set-Cookie` header carries it: `HttpOnly`,
/// `SameSite=Lax`, `Path=/`, and `Secure` when the account rules say.
pub fn render(cookie: &SessionCookie) -> Cookie<'static> {
    let kept = (SameSite::Lax, cookie.max_age_secs());
    let mut rendered = build(cookie.name(), cookie.value(), cookie.secure(), kept);
    if cookie.is_removal() {
        rendered.make_removal();
    }
    rendered
}

/// The cookie that carries a new session ([`accounts::session_cookie`]).
pub fn session_cookie(
    state: &AppState,
    token: &SessionToken,
    expires_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Cookie<'static> {
    render(&accounts::session_cookie(state, token, expires_at, now))
}

/// The device cookie as a `Set-Cookie` header carries it: `HttpOnly`,
/// `SameSite=Strict` (only the sign-in form, on this site, needs it),
/// `Path=/`, a year's `Max-Age`, and `Secure` when the account rules say.
fn render_device(cookie: &DeviceCookie) -> Cookie<'static> {
    let kept = (SameSite::Strict, cookie.max_age_secs());
    build(cookie.name(), cookie.value(), cookie.secure(), kept)
}

/// An `HttpOnly`, `Path=/` cookie, sent as `same_site` says and kept
/// `max_age_secs`.
fn build(
    name: &'static str,
    value: &str,
    secure: bool,
    (same_site, max_age_secs): (SameSite, i64),
) -> Cookie<'static> {
    Cookie::build(name, value.to_owned())
        .path("/")
        .http_only(true)
        .same_site(same_site)
        .secure(secure)
        .max_age(actix_web::cookie::time::Duration::seconds(max_age_secs))
        .finish()
}

/// The cookies a successful sign-in sets: the new session's and the
/// browser's new device cookie.
pub fn signed_in_cookies(
    state: &AppState,
    session: &NewSession,
    now: DateTime<Utc>,
) -> [Cookie<'static>; 2] {
    [
        session_cookie(state, &session.token, session.expires_at, now),
        render_device(&session.device),
    ]
}

/// The cookie that removes the session cookie from the browser (sign-out).
pub fn removal_cookie(state: &AppState) -> Cookie<'static> {
    render(&accounts::removal_cookie(state))
}

fn app_state(req: &HttpRequest) -> Result<web::Data<AppState>, AppError> {
    req.app_data::<web::Data<AppState>>()
        .cloned()
        .ok_or_else(|| AppError::internal(std::io::Error::other("application state missing")))
}

/// The extractor for pages that work signed in or not: the live session of
/// the request's cookie, or `None` ([`accounts::lookup_session`]). Fails
/// only when the database does (503/500).
impl FromRequest for CurrentSession {
    type Error = AppError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let found = app_state(req).map(|state| {
            let token = session_token(&state, req);
            (state, token)
        });
        Box::pin(async move {
            let (state, token) = found?;
            let Some(token) = token else {
                return Ok(Self(None));
            };
            let now = state.clock.now();
            let session = accounts::lookup_session(&state, &token, now).await?;
            Ok(Self(session))
        })
    }
}

/// The extractor for pages only a signed-in person may see: as
/// [`CurrentSession`], but without a live session it fails with 401
/// (`{"error": "unauthorized", ...}`). A console page that would rather
/// redirect to the sign-in page takes [`CurrentSession`] and decides.
impl FromRequest for Session {
    type Error = AppError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let current = CurrentSession::from_request(req, payload);
        Box::pin(async move {
            current
                .await?
                .0
                .ok_or_else(|| AppError::unauthorized("sign in first"))
        })
    }
}
