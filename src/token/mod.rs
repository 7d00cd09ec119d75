//! `POST /oauth/token`: the client-credentials grant (RFC 6749 §4.4) issuing
//! RFC 9068 JWT access tokens.

mod policy;

use std::time::Instant;

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::Utc;
use keygate_verifier::Claims;
use serde_json::json;

use crate::error::OAuthError;
use crate::keys;
use crate::oauth_endpoint::{self, ClientRequest, Params};
use crate::oauth_form::Form;
use crate::scope::{self, ScopeSet};
use crate::state::AppState;
use policy::{audience_scopes, choose_audience, grant_scope};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(oauth_endpoint::post_only("/oauth/token", token));
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
        let scope = form
            .single("scope")?
            .map(ScopeSet::parse)
            .transpose()
            .map_err(|e| OAuthError::InvalidScope(e.to_string()))?;
        let resources = form
            .all("resource")
            .iter()
            .chain(form.all("audience"))
            .cloned()
            .collect();
        Ok(Self { scope, resources })
    }
}

async fn token(req: HttpRequest, body: web::Bytes, state: web::Data<AppState>) -> HttpResponse {
    let started = Instant::now();
    let outcome = issue(&req, &body, &state).await;
    state
        .metrics
        .token_request_duration
        .observe(started.elapsed().as_secs_f64());
    match outcome {
        Ok(response) => {
            state.metrics.tokens_issued.inc();
            response
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
) -> Result<HttpResponse, OAuthError> {
    let ClientRequest {
        client,
        params,
        now,
    } = oauth_endpoint::accept::<GrantRequest>(req, body, state).await?;

    let asked: Vec<&str> = params.resources.iter().map(String::as_str).collect();
    let holds_own_scopes = client.effective_scopes.iter().any(scope::is_builtin);
    let audience = choose_audience(
        &asked,
        &client.audiences.to_vec(),
        holds_own_scopes,
        &state.issuer,
    )?;
    if client.last_use_is_stale(now) {
        record_use(state, &client.key_id, now);
    }
    let defined = audience_scopes(&audience, &state.issuer, &client.audience_scopes);
    let scope = grant_scope(params.scope, &client.effective_scopes, &audience, &defined)?;

    let ring = state.signer.current();
    let signing_key = ring
        .active
        .as_ref()
        .ok_or_else(|| OAuthError::TemporarilyUnavailable("no active signing key".into()))?;
    let ttl = state.token_ttl.as_secs();
    let iat = now.timestamp();
    let claims = Claims {
        iss: state.issuer.clone(),
        sub: client.client_id.to_string(),
        aud: vec![audience],
        client_id: client.client_id.into_string(),
        scope: scope.to_string(),
        iat,
        exp: iat + ttl,
        nbf: None,
        jti: uuid::Uuid::new_v4().to_string(),
    };
    let access_token = signing_key
        .sign_jwt(&claims)
        .map_err(|e| OAuthError::ServerError(e.to_string()))?;
    tracing::debug!(client_id = %claims.client_id, kid = %signing_key.kid, "token issued");

    Ok(HttpResponse::Ok().json(json!({
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": ttl,
        "scope": claims.scope,
    })))
}

/// Updates `last_used_at` in the background: the response does not wait for
/// a write, and a failure costs only the timestamp.
fn record_use(state: &AppState, key_id: &str, now: chrono::DateTime<Utc>) {
    let (pool, key_id) = (state.pool.clone(), key_id.to_owned());
    tokio::task::spawn_blocking(move || {
        let touched = pool.get().map_err(|e| e.to_string()).and_then(|mut conn| {
            keys::touch_last_used(&mut conn, &key_id, now).map_err(|e| e.to_string())
        });
        if let Err(error) = touched {
            tracing::warn!(%error, "could not record a key's last use");
        }
    });
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
