//! `POST /oauth/token`: the client-credentials grant (RFC 6749 §4.4) and
//! the token exchange of a federated key (RFC 8693, [`exchange`]), issuing
//! RFC 9068 JWT access tokens.

use std::time::Instant;

use actix_web::{HttpRequest, HttpResponse, web};

use super::grant::{Grant, answer, asked};
use crate::http::error::OAuthError;
use crate::http::form::Form;
use crate::http::oauth::{self, ClientRequest, Params, exchange};
use crate::scope::ScopeSet;
use crate::state::AppState;
use crate::token::GrantError;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(oauth::post_only("/oauth/token", token));
}

/// A client-credentials grant request (RFC 6749 §4.4.2, RFC 8707 §2).
#[derive(Debug)]
struct GrantRequest {
    /// `scope`, when given.
    scope: Option<ScopeSet>,
    /// Every `resource` and `audience` (its alias) given.
    resources: Vec<String>,
}

impl Params for GrantRequest {
    const SINGLE: &'static [&'static str] = &["grant_type", "scope"];

    fn from_form(form: &Form) -> Result<Self, OAuthError> {
        match form.required("grant_type")? {
            "client_credentials" => {}
            other => return Err(OAuthError::UnsupportedGrantType(other.to_owned())),
        }
        let (scope, resources) = asked(form)?;
        Ok(Self { scope, resources })
    }
}

/// A grant the key cannot have (RFC 6749 §5.2, RFC 8707 §2).
impl From<GrantError> for OAuthError {
    fn from(error: GrantError) -> Self {
        match error {
            GrantError::InvalidScope(why) => Self::InvalidScope(why),
            GrantError::InvalidTarget(why) => Self::InvalidTarget(why),
        }
    }
}

async fn token(req: HttpRequest, body: web::Bytes, state: web::Data<AppState>) -> HttpResponse {
    let started = Instant::now();
    let outcome = if exchange::wanted(&req, &body) {
        exchange::exchange(&req, &body, &state).await
    } else {
        issue(&req, &body, &state).await
    };
    state
        .metrics
        .token_request_duration
        .observe(started.elapsed().as_secs_f64());
    match outcome {
        Ok(answer) => {
            state.metrics.tokens_issued.inc();
            HttpResponse::Ok().json(answer)
        }
        Err(error) => {
            // Authentication failures were counted with their reason already.
            if !matches!(
                error,
                OAuthError::InvalidClient | OAuthError::TooManyRequests { .. }
            ) {
                state.metrics.count_failure(error.code());
            }
            actix_web::ResponseError::error_response(&error)
        }
    }
}

async fn issue(
    req: &HttpRequest,
    body: &[u8],
    state: &AppState,
) -> Result<serde_json::Value, OAuthError> {
    let ClientRequest {
        client,
        params,
        now,
        from,
    } = oauth::accept::<GrantRequest>(req, body, state).await?;
    let grant = Grant {
        scope: params.scope,
        resources: &params.resources,
        now,
        from,
        used_by: None,
    };
    answer(req, state, &client, grant).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(body: &str) -> Result<GrantRequest, OAuthError> {
        let form = Form::parse(Some("application/x-www-form-urlencoded"), body.as_bytes())?;
        form.reject_repeats(GrantRequest::SINGLE)?;
        GrantRequest::from_form(&form)
    }

    #[test]
    fn reads_a_client_credentials_grant() {
        let request = grant("grant_type=client_credentials&scope=read+write&resource=https%3A%2F%2Fa&audience=https%3A%2F%2Fb").unwrap();
        assert_eq!(request.scope, ScopeSet::parse("read write").ok());
        assert_eq!(request.resources, ["https://a", "https://b"]);
        let bare = grant("grant_type=client_credentials").unwrap();
        assert_eq!(bare.scope, None);
        assert!(bare.resources.is_empty());
    }

    #[test]
    fn refuses_what_rfc_6749_refuses() {
        assert!(matches!(grant(""), Err(OAuthError::InvalidRequest(_))));
        assert!(matches!(
            grant("grant_type=password"),
            Err(OAuthError::UnsupportedGrantType(g)) if g == "password"
        ));
        assert!(matches!(
            grant("grant_type=client_credentials&scope=a%22b"),
            Err(OAuthError::InvalidScope(_))
        ));
        assert!(matches!(
            grant("grant_type=client_credentials&scope=a&scope=b"),
            Err(OAuthError::InvalidRequest(_))
        ));
    }
}
