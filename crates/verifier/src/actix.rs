//! The actix-web side: an extractor that validates the request's bearer
//! token and RFC 6750 error responses.

use std::future::Future;
use std::ops::Deref;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{FromRequest, HttpRequest, HttpResponse, ResponseError, web};
use serde_json::json;

use super::{Claims, Verifier, VerifyError};

/// The validated claims of the request's `Authorization: Bearer` token.
///
/// Reads the [`Verifier`] from the app data (`web::Data<Verifier>` or a
/// plain `Verifier`). Without a token the request is refused with 401 and
/// `WWW-Authenticate: Bearer realm="..."`; with an invalid one, 401 and
/// `error="invalid_token"` (RFC 6750 §3). A handler requires a scope with
/// [`Authenticated::require_scope`], which answers 403 `insufficient_scope`.
///
/// ```no_run
/// use actix_web::{App, HttpResponse, HttpServer, web};
/// use keygate_verifier::{Authenticated, BearerError, Verifier};
///
/// async fn list_widgets(auth: Authenticated) -> Result<HttpResponse, BearerError> {
///     auth.require_scope("read")?;
///     Ok(HttpResponse::Ok().json(serde_json::json!({"client": auth.client_id})))
/// }
///
/// # async fn run() -> std::io::Result<()> {
/// let verifier = Verifier::builder("https://auth.example.com", "https://api.example.com")
///     .build()
///     .await
///     .expect("issuer reachable");
/// let verifier = web::Data::new(verifier);
/// HttpServer::new(move || {
///     App::new()
///         .app_data(verifier.clone())
///         .route("/widgets", web::get().to(list_widgets))
/// })
/// .bind("127.0.0.1:8000")?
/// .run()
/// .await
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Authenticated {
    claims: Claims,
    realm: String,
}

impl Authenticated {
    pub fn claims(&self) -> &Claims {
        &self.claims
    }

    pub fn into_claims(self) -> Claims {
        self.claims
    }

    /// Ok when the token holds `scope`; otherwise the 403
    /// `insufficient_scope` error to return from the handler.
    pub fn require_scope(&self, scope: &str) -> Result<(), BearerError> {
        if self.claims.has_scope(scope) {
            Ok(())
        } else {
            Err(BearerError::InsufficientScope {
                realm: self.realm.clone(),
                scope: scope.to_owned(),
            })
        }
    }
}

impl Deref for Authenticated {
    type Target = Claims;

    fn deref(&self) -> &Claims {
        &self.claims
    }
}

impl FromRequest for Authenticated {
    type Error = BearerError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, BearerError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let verifier = req
            .app_data::<web::Data<Verifier>>()
            .map(|data| data.get_ref().clone())
            .or_else(|| req.app_data::<Verifier>().cloned());
        let token = bearer_token(req);
        Box::pin(async move {
            let Some(verifier) = verifier else {
                return Err(BearerError::NotConfigured);
            };
            let realm = verifier.realm().to_owned();
            let token = match token {
                BearerToken::Missing => return Err(BearerError::Missing { realm }),
                BearerToken::Malformed => return Err(BearerError::InvalidRequest { realm }),
                BearerToken::Present(token) => token,
            };
            match verifier.verify(&token).await {
                Ok(claims) => Ok(Self { claims, realm }),
                Err(error) if error.is_invalid_token() => {
                    Err(BearerError::InvalidToken { realm, error })
                }
                Err(error) => Err(BearerError::Unavailable(error)),
            }
        })
    }
}

enum BearerToken {
    Missing,
    Malformed,
    Present(String),
}

/// RFC 6750 §2.1: `Authorization: Bearer <token68>`, scheme in any case.
/// Another scheme counts as no bearer token at all.
fn bearer_token(req: &HttpRequest) -> BearerToken {
    let mut values = req.headers().get_all(header::AUTHORIZATION);
    let Some(value) = values.next() else {
        return BearerToken::Missing;
    };
    if values.next().is_some() {
        return BearerToken::Malformed;
    }
    let Ok(value) = value.to_str() else {
        return BearerToken::Malformed;
    };
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return BearerToken::Missing;
    }
    let token = rest.trim_matches(' ');
    let token68 = |b: u8| b.is_ascii_alphanumeric() || b"-._~+/=".contains(&b);
    if token.is_empty() || !token.bytes().all(token68) {
        return BearerToken::Malformed;
    }
    BearerToken::Present(token.to_owned())
}

/// Why a request to a protected route was refused, as an RFC 6750 response.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BearerError {
    /// No bearer token: 401 with a bare `Bearer realm="..."` challenge.
    #[error("a bearer token is required")]
    Missing { realm: String },
    /// A malformed `Authorization` header: 400 `invalid_request`.
    #[error("the Authorization header is malformed")]
    InvalidRequest { realm: String },
    /// The token is not valid: 401 `invalid_token`.
    #[error("{error}")]
    InvalidToken { realm: String, error: VerifyError },
    /// The token lacks the route's scope: 403 `insufficient_scope`.
    #[error("the token lacks the {scope} scope")]
    InsufficientScope { realm: String, scope: String },
    /// The issuer could not be reached to decide: 503.
    #[error("{0}")]
    Unavailable(VerifyError),
    /// No `Verifier` in the app data: a programming error, 500.
    #[error("no Verifier in the app data")]
    NotConfigured,
}

impl BearerError {
    /// The `WWW-Authenticate` challenge, when the status calls for one.
    fn challenge(&self) -> Option<String> {
        let (realm, params) = match self {
            Self::Missing { realm } => (realm, String::new()),
            Self::InvalidRequest { realm } => (
                realm,
                format!(
                    r#", error="invalid_request", error_description="{}""#,
                    quote(&self.to_string())
                ),
            ),
            Self::InvalidToken { realm, error } => (
                realm,
                format!(
                    r#", error="invalid_token", error_description="{}""#,
                    quote(&error.to_string())
                ),
            ),
            Self::InsufficientScope { realm, scope } => (
                realm,
                format!(r#", error="insufficient_scope", scope="{}""#, quote(scope)),
            ),
            Self::Unavailable(_) | Self::NotConfigured => return None,
        };
        Some(format!(r#"Bearer realm="{}"{params}"#, quote(realm)))
    }

    fn code(&self) -> &'static str {
        match self {
            Self::Missing { .. } => "unauthorized",
            Self::InvalidRequest { .. } => "invalid_request",
            Self::InvalidToken { .. } => "invalid_token",
            Self::InsufficientScope { .. } => "insufficient_scope",
            Self::Unavailable(_) => "temporarily_unavailable",
            Self::NotConfigured => "server_error",
        }
    }
}

/// The inside of an RFC 9110 quoted-string: printable ASCII, with `"` and
/// `\` escaped; anything else is dropped.
fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            ' '..='~' => out.push(c),
            _ => {}
        }
    }
    out
}

impl ResponseError for BearerError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Missing { .. } | Self::InvalidToken { .. } => StatusCode::UNAUTHORIZED,
            Self::InvalidRequest { .. } => StatusCode::BAD_REQUEST,
            Self::InsufficientScope { .. } => StatusCode::FORBIDDEN,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::NotConfigured => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        if let Some(challenge) = self
            .challenge()
            .and_then(|c| HeaderValue::from_str(&c).ok())
        {
            response.insert_header((header::WWW_AUTHENTICATE, challenge));
        }
        let description = match self {
            Self::Unavailable(error) => {
                tracing::warn!(%error, "cannot validate a bearer token");
                "the authorization server is unreachable; try again shortly".to_owned()
            }
            Self::NotConfigured => {
                tracing::error!("Authenticated used without a Verifier in the app data");
                "internal server error".to_owned()
            }
            other => other.to_string(),
        };
        response
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .json(json!({ "error": self.code(), "error_description": description }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_follow_rfc_6750() {
        let realm = "api".to_owned();
        assert_eq!(
            BearerError::Missing {
                realm: realm.clone()
            }
            .challenge()
            .unwrap(),
            r#"Bearer realm="api""#
        );
        assert_eq!(
            BearerError::InvalidToken {
                realm: realm.clone(),
                error: VerifyError::Expired
            }
            .challenge()
            .unwrap(),
            r#"Bearer realm="api", error="invalid_token", error_description="the token has expired""#
        );
        assert_eq!(
            BearerError::InsufficientScope {
                realm,
                scope: "re\"ad".into()
            }
            .challenge()
            .unwrap(),
            r#"Bearer realm="api", error="insufficient_scope", scope="re\"ad""#
        );
    }

    #[test]
    fn reads_bearer_tokens() {
        let req = |v: &str| {
            actix_web::test::TestRequest::default()
                .insert_header((header::AUTHORIZATION, v))
                .to_http_request()
        };
        assert!(
            matches!(bearer_token(&req("Bearer abc.def-_.x")), BearerToken::Present(t) if t == "abc.def-_.x")
        );
        assert!(matches!(
            bearer_token(&req("bearer abc")),
            BearerToken::Present(_)
        ));
        assert!(matches!(
            bearer_token(&req("Basic abc")),
            BearerToken::Missing
        ));
        assert!(matches!(
            bearer_token(&req("Bearer")),
            BearerToken::Malformed
        ));
        assert!(matches!(
            bearer_token(&req("Bearer a b")),
            BearerToken::Malformed
        ));
        assert!(matches!(
            bearer_token(&actix_web::test::TestRequest::default().to_http_request()),
            BearerToken::Missing
        ));
    }
}
