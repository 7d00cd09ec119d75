//! `POST /oauth/introspect` (RFC 7662): whether a token is active, and its
//! claims when it is and the caller may see them.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::client_auth;
use crate::error::OAuthError;
use crate::keys::{self, ClientId, Credential};
use crate::oauth_form::Form;
use crate::revoke;
use crate::scope::INTROSPECT_SCOPE;
use crate::signing::SigningAlg;
use crate::state::AppState;
use keygate_verifier::validate::{self, Rules};
use keygate_verifier::{Claims, VerifyError};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/oauth/introspect")
            .route(web::post().to(introspect))
            .default_service(web::to(|| async {
                OAuthError::MethodNotAllowed { allow: "POST" }.error_response()
            })),
    );
}

/// Validates a token as keygate issued it: `typ`, one of keygate's
/// algorithms, a signature by a published key, `iss`, `exp` and `nbf`
/// without leeway, every required claim. Any audience. Says nothing about
/// revocation or the key's state.
pub fn validate_own_token(
    state: &AppState,
    token: &str,
    now: DateTime<Utc>,
) -> Result<Claims, VerifyError> {
    let rules = Rules {
        issuer: state.issuer.clone(),
        audience: None,
        algorithms: [SigningAlg::Es256, SigningAlg::EdDsa, SigningAlg::Rs256]
            .map(SigningAlg::to_jsonwebtoken)
            .to_vec(),
        leeway_secs: 0,
    };
    let ring = state.signer.current();
    validate::validate_token(token, &ring.keys, &rules, now.timestamp())
}

async fn introspect(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> HttpResponse {
    match handle(&req, &body, &state).await {
        Ok(answer) => HttpResponse::Ok()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .insert_header((header::PRAGMA, "no-cache"))
            .json(answer),
        Err(error) => error.error_response(),
    }
}

async fn handle(req: &HttpRequest, body: &[u8], state: &AppState) -> Result<Value, OAuthError> {
    let form = Form::from_request(req, body)?;
    form.reject_repeats(&["token", "token_type_hint"])?;
    let now = Utc::now();
    let caller = client_auth::authenticate(req, &form, state, now).await?;
    let token = form.required("token")?;
    Ok(match active_claims(state, caller, token, now).await? {
        Some(claims) => active_answer(&claims),
        None => json!({ "active": false }),
    })
}

/// The token's claims when it is active and the caller may see it. RFC 7662
/// §2.2: a caller who may not see a token is told it is inactive, nothing
/// more.
async fn active_claims(
    state: &AppState,
    caller: Credential,
    token: &str,
    now: DateTime<Utc>,
) -> Result<Option<Claims>, OAuthError> {
    let claims = match validate_own_token(state, token, now) {
        Ok(claims) => claims,
        Err(reason) => {
            tracing::debug!(%reason, caller = %caller.client_id, "introspected token is invalid");
            return Ok(None);
        }
    };
    let Some(issued_to) = ClientId::parse(&claims.client_id) else {
        return Ok(None);
    };
    let jti = claims.jti.clone();
    let verdict = state
        .db(
            move |conn| -> Result<Result<(), &'static str>, OAuthError> {
                if issued_to.as_str() != caller.client_id
                    && !caller.effective_scopes.contains(INTROSPECT_SCOPE)
                {
                    return Ok(Err("caller may not introspect this token"));
                }
                if revoke::is_revoked(conn, &jti)? {
                    return Ok(Err("token revoked"));
                }
                Ok(match keys::find_credential(conn, &issued_to)? {
                    None => Err("key unknown"),
                    Some(key) => key.refusal(now).map_or(Ok(()), Err),
                })
            },
        )
        .await?;
    match verdict {
        Ok(()) => Ok(Some(claims)),
        Err(reason) => {
            tracing::debug!(reason, "introspected token is inactive");
            Ok(None)
        }
    }
}

fn active_answer(claims: &Claims) -> Value {
    let aud: Value = match claims.aud.as_slice() {
        [one] => one.as_str().into(),
        many => many.into(),
    };
    json!({
        "active": true,
        "scope": claims.scope,
        "client_id": claims.client_id,
        "sub": claims.sub,
        "aud": aud,
        "iss": claims.iss,
        "exp": claims.exp,
        "iat": claims.iat,
        "jti": claims.jti,
        "token_type": "Bearer",
    })
}
