//! Who is calling the management API, and what they may do.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::{FromRequest, HttpRequest, HttpResponse, ResponseError, web};
use chrono::{DateTime, Utc};
use serde_json::json;

use crate::error::{StoreError, from_store_errors};
use crate::http::error::AppError;
use crate::http::session;
use crate::keys;
use crate::scope::{ADMIN_SCOPE, KEYS_SCOPE};
use crate::state::AppState;
use crate::{access_token, accounts, users};

/// How the caller proved who they are. Both resolve to the same [`Caller`]
/// in [`Caller::from_request`], so no handler tells them apart.
#[derive(Debug, Clone)]
pub enum CallerSource {
    /// An access token issued by this server to the key with this client ID.
    Bearer { client_id: String },
    /// A console session (cookie; plus the `X-CSRF-Token` header on every
    /// state-changing method). The person acts with their role's rights.
    Session { session_id: String },
}

/// What the caller may touch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// `keygate:admin` (or a session of a person whose role grants it):
    /// everything.
    Admin,
    /// `keygate:keys` (or a session of anyone else): the caller's own keys,
    /// nothing else.
    OwnKeys,
}

/// An authenticated caller of the management API.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The email of the person acting: recorded as the actor of every change.
    pub email: String,
    pub access: Access,
    pub source: CallerSource,
}

impl Caller {
    pub fn is_admin(&self) -> bool {
        self.access == Access::Admin
    }

    /// Refuses anyone without `keygate:admin`.
    pub fn require_admin(&self) -> Result<(), AuthError> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(AuthError::InsufficientScope(ADMIN_SCOPE))
        }
    }

    /// Whether the caller may see and change a key of this owner.
    pub fn may_manage_keys_of(&self, owner_email: &str) -> bool {
        self.for_keys().may_manage_keys_of(owner_email)
    }

    /// The caller as the keys service knows them: the person of a console
    /// session, or the key whose token calls, acting for its owner.
    pub fn for_keys(&self) -> keys::Caller {
        let person = keys::Person {
            email: self.email.clone(),
            reach: match self.access {
                Access::Admin => keys::Reach::EveryKey,
                Access::OwnKeys => keys::Reach::OwnKeys,
            },
        };
        match &self.source {
            CallerSource::Session { .. } => keys::Caller::Person(person),
            CallerSource::Bearer { client_id } => keys::Caller::Key {
                client_id: client_id.clone(),
                owner: person,
            },
        }
    }
}

/// Why a request was not allowed, as RFC 6750 §3 says to answer it.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No credentials at all: no `error` attribute (RFC 6750 §3.1).
    #[error("authentication required: send Authorization: Bearer <access token>")]
    Missing,
    #[error("{0}")]
    InvalidToken(&'static str),
    /// The token is good but lacks this scope.
    #[error("this request needs the scope {0}")]
    InsufficientScope(&'static str),
    /// A session cookie that names no live session (ended, expired, its
    /// person disabled).
    #[error("the console session has ended: sign in again")]
    SessionEnded,
    /// A state-changing request on a session without its CSRF token.
    #[error(
        "a console session needs its CSRF token in the X-CSRF-Token header on every request \
         that changes something"
    )]
    CsrfToken,
    /// A session started by a password alone for someone
    /// `KEYGATE_REQUIRE_MFA` covers, who has no second factor yet.
    #[error(
        "a second factor is required of this person: set one up on the console's Security page \
         (/account/security) first"
    )]
    SecondFactorRequired,
    #[error(transparent)]
    Internal(#[from] AppError),
}

impl From<StoreError> for AuthError {
    fn from(e: StoreError) -> Self {
        Self::Internal(e.into())
    }
}

from_store_errors!(AuthError);

impl ResponseError for AuthError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Missing | Self::InvalidToken(_) | Self::SessionEnded => StatusCode::UNAUTHORIZED,
            Self::InsufficientScope(_) | Self::CsrfToken | Self::SecondFactorRequired => {
                StatusCode::FORBIDDEN
            }
            Self::Internal(e) => e.status_code(),
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let Self::CsrfToken = self {
            return HttpResponse::build(self.status_code())
                .json(json!({ "error": "invalid_csrf_token", "message": self.to_string() }));
        }
        if let Self::SecondFactorRequired = self {
            return HttpResponse::build(self.status_code())
                .json(json!({ "error": "second_factor_required", "message": self.to_string() }));
        }
        let challenge = match self {
            Self::Missing | Self::SessionEnded | Self::CsrfToken | Self::SecondFactorRequired => {
                r#"Bearer realm="keygate""#.to_owned()
            }
            Self::InvalidToken(_) => r#"Bearer realm="keygate", error="invalid_token""#.to_owned(),
            Self::InsufficientScope(scope) => {
                format!(r#"Bearer realm="keygate", error="insufficient_scope", scope="{scope}""#)
            }
            Self::Internal(e) => return e.error_response(),
        };
        let code = match self {
            Self::InsufficientScope(_) => "insufficient_scope",
            _ => "unauthorized",
        };
        let mut response = HttpResponse::build(self.status_code());
        if let Ok(value) = HeaderValue::from_str(&challenge) {
            response.insert_header((header::WWW_AUTHENTICATE, value));
        }
        response.json(json!({ "error": code, "message": self.to_string() }))
    }
}

impl FromRequest for Caller {
    type Error = AuthError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    /// A bearer token when there is an `Authorization: Bearer` header;
    /// otherwise the console session of the cookie, if any.
    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let token = bearer_token(req);
        let session = state
            .as_ref()
            .and_then(|state| session::session_token(state, req));
        let csrf = req
            .headers()
            .get(session::CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let changes_state = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
        Box::pin(async move {
            let state = state.ok_or_else(|| {
                AuthError::Internal(AppError::internal(std::io::Error::other(
                    "application state missing",
                )))
            })?;
            let now = state.clock.now();
            match (token, session) {
                (Err(AuthError::Missing), Some(session)) => {
                    let csrf = changes_state.then_some(csrf);
                    from_session(&state, &session, csrf, now).await
                }
                (token, _) => from_bearer(&state, &token?, now).await,
            }
        })
    }
}

/// A live console session; for a state-changing method (`csrf` is `Some`)
/// only with the session's CSRF token. The person acts with their role's
/// rights: a role that grants `keygate:admin` manages everything, any other
/// only the person's own keys.
async fn from_session(
    state: &AppState,
    token: &accounts::SessionToken,
    csrf: Option<Option<String>>,
    now: DateTime<Utc>,
) -> Result<Caller, AuthError> {
    let session = accounts::lookup_session(state, token, now)
        .await?
        .ok_or(AuthError::SessionEnded)?;
    if session.must_enrol {
        return Err(AuthError::SecondFactorRequired);
    }
    if let Some(presented) = csrf
        && !presented.is_some_and(|p| session.csrf_matches(&p))
    {
        return Err(AuthError::CsrfToken);
    }
    let role_name = session.user.role.clone();
    let role = state
        .db(move |conn| users::find_role(conn, &role_name).map_err(AppError::from))
        .await?;
    let admin = role.grants_all || role.scope_list().iter().any(|s| s == ADMIN_SCOPE);
    Ok(Caller {
        email: session.user.email,
        access: if admin {
            Access::Admin
        } else {
            Access::OwnKeys
        },
        source: CallerSource::Session {
            session_id: session.id,
        },
    })
}

/// The token of an `Authorization: Bearer` header (RFC 6750 §2.1). Another
/// scheme counts as no credentials: §3.1 says to answer it without an error
/// code.
fn bearer_token(req: &HttpRequest) -> Result<String, AuthError> {
    let Some(value) = req.headers().get(header::AUTHORIZATION) else {
        return Err(AuthError::Missing);
    };
    let value = value
        .to_str()
        .map_err(|_| AuthError::InvalidToken("the Authorization header is not valid text"))?;
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::Missing);
    }
    let token = token.trim();
    if token.is_empty() {
        return Err(AuthError::InvalidToken("use Authorization: Bearer <token>"));
    }
    Ok(token.to_owned())
}

/// A token this server issued for its own API, not revoked, from a key that
/// may still be used, holding `keygate:admin` or `keygate:keys` both in the
/// token and in what the key's owner may still grant.
async fn from_bearer(
    state: &AppState,
    token: &str,
    now: DateTime<Utc>,
) -> Result<Caller, AuthError> {
    const INVALID: &str = "the access token is invalid, expired or revoked";
    let claims =
        access_token::validate(&state.issuer, &state.signer, token, now).map_err(|reason| {
            tracing::debug!(%reason, "management API token refused");
            AuthError::InvalidToken(INVALID)
        })?;
    if !claims.aud.iter().any(|a| a == &state.issuer) {
        return Err(AuthError::InvalidToken(
            "the access token is not meant for keygate's API",
        ));
    }
    let (claims, credential, owner) = state
        .db(move |conn| -> Result<_, AuthError> {
            let credential =
                access_token::live_credential(conn, &claims, now)?.map_err(|reason| {
                    tracing::debug!(reason, "management API token from an unusable key");
                    AuthError::InvalidToken(INVALID)
                })?;
            let owner = keys::owner_of(conn, &credential.client_id).map_err(AppError::from)?;
            Ok((claims, credential, owner))
        })
        .await?;
    let holds =
        |scope: &str| claims.has_scope(scope) && credential.effective_scopes.contains(scope);
    let access = if holds(ADMIN_SCOPE) {
        Access::Admin
    } else if holds(KEYS_SCOPE) {
        Access::OwnKeys
    } else {
        return Err(AuthError::InsufficientScope(KEYS_SCOPE));
    };
    // A team's key acts for no person: with `keygate:admin` it acts as
    // itself (the audit log names its client ID); `keygate:keys` alone
    // would reach no one's keys.
    let email = match (owner, access) {
        (Some(email), _) => email,
        (None, Access::Admin) => credential.client_id.to_string(),
        (None, Access::OwnKeys) => return Err(AuthError::InsufficientScope(ADMIN_SCOPE)),
    };
    Ok(Caller {
        email,
        access,
        source: CallerSource::Bearer {
            client_id: credential.client_id.into_string(),
        },
    })
}
