//! The front door of the OAuth endpoints (token, introspection, revocation):
//! how each is routed, what every answer carries, and the steps every
//! request takes before the endpoint's own work — the form, the client's
//! authentication, the endpoint's typed parameters — in the same order
//! everywhere.

pub mod discovery;
pub mod exchange;
pub mod exposed;
pub mod github_scanning;
pub mod grant;
pub mod introspect;
pub mod presented;
pub mod revoke;
pub mod token;

use actix_web::dev::{Service as _, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::{DefaultHeaders, from_fn};
use actix_web::{FromRequest, Handler, HttpRequest, HttpResponse, Responder, ResponseError, web};
use chrono::{DateTime, Utc};

use crate::client_auth::{self, AuthFailure, ClientAuthError};
use crate::http::edge::BodyFailure;
use crate::http::error::OAuthError;
use crate::http::form::Form;
use crate::http::peer;
use crate::keys::Credential;
use crate::state::AppState;

/// `path` answering POST with `handler`, every other method 405 with
/// `Allow: POST` (RFC 9110 §15.5.6), and every answer — success, error or
/// 405 — marked uncacheable: tokens and what is said about them are never
/// stored (RFC 6749 §5.1, RFC 7009 §2, RFC 7662 §2.2). A body that could
/// not be read (too large, malformed, too slow) is an RFC 6749 error too,
/// not actix's plain text; so is a trusted proxy's unreadable
/// `X-Forwarded-For` (`invalid_request`).
pub fn post_only<F, Args>(path: &str, handler: F) -> impl actix_web::dev::HttpServiceFactory
where
    F: Handler<Args>,
    Args: FromRequest + 'static,
    F::Output: Responder + 'static,
{
    web::resource(path)
        .wrap_fn(|request, service| {
            let response = service.call(request);
            async move { response.await.map(unreadable_body_as_oauth_error) }
        })
        .wrap(from_fn(|request, next| {
            peer::refuse_unreadable_forwarding(request, next, |_, unreadable| {
                OAuthError::InvalidRequest(unreadable.to_string()).error_response()
            })
        }))
        .wrap(
            DefaultHeaders::new()
                .add((header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
                .add((header::PRAGMA, HeaderValue::from_static("no-cache")))
                .add((
                    header::X_CONTENT_TYPE_OPTIONS,
                    HeaderValue::from_static("nosniff"),
                )),
        )
        .route(web::post().to(handler))
        .default_service(web::to(method_not_allowed))
}

/// The extractor's plain-text answer to a body it could not read, as
/// `invalid_request`; any other response unchanged.
fn unreadable_body_as_oauth_error(response: ServiceResponse) -> ServiceResponse {
    match BodyFailure::of_response(&response) {
        Some(failure) => {
            failure.log();
            let (request, old) = response.into_parts();
            let mut answer = OAuthError::UnreadableBody(failure).error_response();
            // The connection's fate (closed after a body deadline) stays.
            answer
                .head_mut()
                .set_connection_type(old.head().connection_type());
            ServiceResponse::new(request, answer)
        }
        None => response,
    }
}

async fn method_not_allowed() -> HttpResponse {
    OAuthError::MethodNotAllowed { allow: "POST" }.error_response()
}

/// A client that was not let in: `invalid_client` or "slow down", whatever
/// the reason.
impl From<ClientAuthError> for OAuthError {
    fn from(error: ClientAuthError) -> Self {
        match error {
            ClientAuthError::InvalidClient => Self::InvalidClient,
            ClientAuthError::Throttled { retry_after_secs } => {
                Self::TooManyRequests { retry_after_secs }
            }
            ClientAuthError::Verification(cause) => Self::ServerError(cause),
            ClientAuthError::Store(error) => error.into(),
        }
    }
}

/// The parameters one endpoint reads from its form.
pub trait Params: Sized {
    /// Parameters that may appear at most once (RFC 6749 §3.2), refused
    /// when repeated before the client is authenticated.
    const SINGLE: &'static [&'static str];

    /// Reads and checks the endpoint's parameters, once the client is known.
    fn from_form(form: &Form) -> Result<Self, OAuthError>;
}

/// An authenticated client's request to an OAuth endpoint.
#[derive(Debug)]
pub struct ClientRequest<P> {
    /// The calling API key, authenticated and usable (shared with the
    /// cache of verified secrets).
    pub client: std::sync::Arc<Credential>,
    pub params: P,
    /// When the request arrived: the one `now` of the whole request.
    pub now: DateTime<Utc>,
    /// The client's address (behind trusted proxies, the forwarded one);
    /// `None` when the peer is unknown.
    pub from: Option<std::net::IpAddr>,
}

/// Parses the form (content type, repeated parameters), authenticates the
/// client (`client_secret_basic`, `client_secret_post` or
/// `private_key_jwt`, throttled), then
/// reads the endpoint's parameters. The first failure is the answer.
pub async fn accept<P: Params>(
    req: &HttpRequest,
    body: &[u8],
    state: &AppState,
) -> Result<ClientRequest<P>, OAuthError> {
    let form = Form::from_request(req, body)?;
    form.reject_repeats(P::SINGLE)?;
    let now = state.clock.now();
    let auth = &state.client_auth;
    let from = peer::client_ip(req, &auth.trusted_proxies);
    let presented = presented::extract(req.headers(), &form).inspect_err(|e| {
        if matches!(e, OAuthError::InvalidClient) {
            auth.metrics
                .count_failure(AuthFailure::NoClientAuthentication.as_str());
        }
    })?;
    // An assertion's `aud` may name the issuer or this endpoint's URL.
    let endpoint = format!("{}{}", state.issuer, req.path());
    let audiences = [state.issuer.as_str(), endpoint.as_str()];
    let client = client_auth::authenticate(auth, presented, &audiences, from, now).await?;
    let params = P::from_form(&form)?;
    Ok(ClientRequest {
        client,
        params,
        now,
        from,
    })
}

/// The `token` of an introspection (RFC 7662 §2.1) or revocation (RFC 7009
/// §2.1) request. `token_type_hint` is only checked for repeats: every token
/// here is an access token, so any hint (or none) leads to the same lookup.
#[derive(Debug)]
pub struct TokenParam {
    pub token: String,
}

impl Params for TokenParam {
    const SINGLE: &'static [&'static str] = &["token", "token_type_hint"];

    fn from_form(form: &Form) -> Result<Self, OAuthError> {
        Ok(Self {
            token: form.required("token")?.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(body: &str) -> Form {
        Form::parse(Some("application/x-www-form-urlencoded"), body.as_bytes()).unwrap()
    }

    #[test]
    fn the_token_parameter_is_required() {
        assert_eq!(
            TokenParam::from_form(&form("token=abc")).unwrap().token,
            "abc"
        );
        assert!(matches!(
            TokenParam::from_form(&form("token_type_hint=access_token")),
            Err(OAuthError::InvalidRequest(_))
        ));
    }
}
