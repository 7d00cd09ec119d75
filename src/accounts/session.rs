//! Console sessions as the browser and the handlers see them: the opaque
//! cookie, its CSRF token, and the extractors that turn a request into the
//! signed-in person.
//!
//! The cookie holds 256 random bits (base64url) and nothing else; the
//! database holds only its keyed hash, so every keygate process honours it
//! and a stolen database opens nothing. The CSRF token is derived from the
//! session token under the same key (it is stable for the session, stored
//! nowhere, and unknown to anyone who has not the cookie and the key).

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use actix_web::cookie::{Cookie, SameSite};
use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, web};
use chrono::{DateTime, Utc};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::random_token;
use crate::error::AppError;
use crate::state::{AccountSettings, AppState};
use crate::users::User;

/// The purpose labels of session token and CSRF token hashes.
pub(super) const HASH_PURPOSE: &str = "session";
const CSRF_PURPOSE: &str = "csrf";

/// The cookie's name under an https issuer: `__Host-` makes browsers insist
/// on `Secure`, `Path=/` and no `Domain`, so no other host can set it.
pub const SECURE_COOKIE_NAME: &str = "__Host-keygate-session";
/// The cookie's name under a plain-http issuer (local use), where `__Host-`
/// cannot be had (it requires `Secure`).
pub const PLAIN_COOKIE_NAME: &str = "keygate-session";

/// The header that carries the CSRF token on state-changing API requests.
pub const CSRF_HEADER: &str = "X-CSRF-Token";

/// The session cookie's value in clear. Wiped on drop, never printed.
pub struct SessionToken(Zeroizing<String>);

impl SessionToken {
    pub(super) fn generate() -> Self {
        Self(random_token())
    }

    /// A token as a request presented it.
    pub fn from_presented(text: &str) -> Self {
        Self(Zeroizing::new(text.to_owned()))
    }

    /// The token itself, for the cookie.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionToken(redacted)")
    }
}

/// The session's CSRF token: put it in every form (and the `X-CSRF-Token`
/// header of API calls); compare what comes back with
/// [`Session::csrf_matches`].
#[derive(Clone)]
pub struct CsrfToken(String);

impl CsrfToken {
    pub(super) fn derive(settings: &AccountSettings, token: &SessionToken) -> Self {
        Self(settings.token_hasher.hash(CSRF_PURPOSE, token.expose()))
    }

    /// The token, for a hidden form field or a header.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Constant-time comparison with a presented token.
    pub fn matches(&self, presented: &str) -> bool {
        !presented.is_empty() && bool::from(self.0.as_bytes().ct_eq(presented.as_bytes()))
    }
}

impl fmt::Debug for CsrfToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CsrfToken(redacted)")
    }
}

/// A session just started by signing in: set its cookie with
/// [`session_cookie`](super::session_cookie).
#[derive(Debug)]
pub struct NewSession {
    pub token: SessionToken,
    pub csrf: CsrfToken,
    /// The absolute end (`KEYGATE_SESSION_MAX` from sign-in).
    pub expires_at: DateTime<Utc>,
    /// The signed-in person.
    pub user: User,
}

/// A live session and its person, as read at this request.
#[derive(Debug, Clone)]
pub struct Session {
    /// The session's public handle (the audit log names it; not a secret).
    pub id: String,
    /// The person, as the database has them now (role, state, ...).
    pub user: User,
    pub csrf: CsrfToken,
    pub created_at: DateTime<Utc>,
    /// The absolute end; the idle end moves with every request.
    pub expires_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
}

impl Session {
    /// Whether a presented CSRF token (form field or header) is this
    /// session's; constant-time.
    pub fn csrf_matches(&self, presented: &str) -> bool {
        self.csrf.matches(presented)
    }
}

/// The cookie's name for this keygate's issuer.
pub fn cookie_name(settings: &AccountSettings) -> &'static str {
    if settings.https {
        SECURE_COOKIE_NAME
    } else {
        PLAIN_COOKIE_NAME
    }
}

/// The session token a request carries in its cookie, if any.
pub fn session_token(state: &AppState, req: &HttpRequest) -> Option<SessionToken> {
    req.cookie(cookie_name(&state.accounts))
        .map(|c| SessionToken::from_presented(c.value()))
        .filter(|t| !t.expose().is_empty())
}

/// The cookie that carries a new session: `HttpOnly`, `SameSite=Lax`,
/// `Path=/`, and under https `Secure` with the `__Host-` name. Its `Max-Age`
/// is what is left of the session's absolute lifetime.
pub fn session_cookie(
    state: &AppState,
    token: &SessionToken,
    expires_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Cookie<'static> {
    let left = (expires_at - now).num_seconds().max(0);
    Cookie::build(cookie_name(&state.accounts), token.expose().to_owned())
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(state.accounts.https)
        .max_age(actix_web::cookie::time::Duration::seconds(left))
        .finish()
}

/// The cookie that removes the session cookie from the browser (sign-out).
pub fn removal_cookie(state: &AppState) -> Cookie<'static> {
    let mut cookie = Cookie::build(cookie_name(&state.accounts), "")
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(state.accounts.https)
        .finish();
    cookie.make_removal();
    cookie
}

fn app_state(req: &HttpRequest) -> Result<web::Data<AppState>, AppError> {
    req.app_data::<web::Data<AppState>>()
        .cloned()
        .ok_or_else(|| AppError::internal(std::io::Error::other("application state missing")))
}

/// The extractor for pages that work signed in or not: the live session of
/// the request's cookie, or `None` (no cookie, unknown token, idle or
/// absolute timeout passed, person disabled, or every session of theirs
/// ended by a password change). Reading it moves the session's idle clock
/// (a write at most once a minute). Fails only when the database does
/// (503/500).
#[derive(Debug, Clone)]
pub struct CurrentSession(pub Option<Session>);

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
            let session = super::lookup_session(&state, &token, now)
                .await
                .map_err(AppError::from)?;
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
