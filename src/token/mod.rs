//! `POST /oauth/token`: the client-credentials grant (RFC 6749 §4.4) issuing
//! RFC 9068 JWT access tokens.

use std::time::Instant;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::Utc;
use keygate_verifier::Claims;
use serde_json::json;

use crate::client_auth;
use crate::error::OAuthError;
use crate::keys::{self, Credential};
use crate::oauth_form::Form;
use crate::scope::{ScopeSet, audiences_from_stored};
use crate::state::AppState;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/oauth/token")
            .route(web::post().to(token))
            .default_service(web::to(|| async {
                actix_web::ResponseError::error_response(&OAuthError::MethodNotAllowed {
                    allow: "POST",
                })
            })),
    );
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
    let form = Form::from_request(req, body)?;
    form.reject_repeats(&["grant_type", "scope"])?;
    let now = Utc::now();
    let credential = client_auth::authenticate(req, &form, state, now).await?;

    match form.required("grant_type")? {
        "client_credentials" => {}
        other => return Err(OAuthError::UnsupportedGrantType(other.to_owned())),
    }

    let requested = form
        .single("scope")?
        .map(ScopeSet::parse)
        .transpose()
        .map_err(|e| OAuthError::InvalidScope(e.to_string()))?;
    let audience = choose_audience(&credential, &form, &state.issuer)?;

    if credential.last_use_is_stale(now) {
        record_use(state, &credential.key_id, now);
    }
    let effective = &credential.effective_scopes;
    let scope = match requested {
        Some(requested) => {
            if let Some(missing) = requested.iter().find(|s| !effective.contains(s)) {
                return Err(OAuthError::InvalidScope(format!(
                    "this key may not request scope {missing:?}"
                )));
            }
            requested
        }
        None => effective.clone(),
    };

    let ring = state.signer.current();
    let signing_key = ring
        .active
        .as_ref()
        .ok_or_else(|| OAuthError::TemporarilyUnavailable("no active signing key".into()))?;
    let ttl = state.token_ttl.as_secs();
    let iat = now.timestamp();
    let claims = Claims {
        iss: state.issuer.clone(),
        sub: credential.client_id.clone(),
        aud: vec![audience],
        client_id: credential.client_id.clone(),
        scope: scope.to_string(),
        iat,
        exp: iat + ttl,
        nbf: None,
        jti: uuid::Uuid::new_v4().to_string(),
    };
    let access_token = signing_key
        .sign_jwt(&claims)
        .map_err(|e| OAuthError::ServerError(e.to_string()))?;
    tracing::debug!(client_id = %credential.client_id, kid = %signing_key.kid, "token issued");

    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"))
        .json(json!({
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

/// RFC 8707: the resource asked for, which the key must hold; else the key's
/// only audience; else the issuer when the key has none.
fn choose_audience(
    credential: &Credential,
    form: &Form,
    issuer: &str,
) -> Result<String, OAuthError> {
    let asked: Vec<&String> = form
        .all("resource")
        .iter()
        .chain(form.all("audience"))
        .collect();
    let held = audiences_from_stored(&credential.audiences);
    match (asked.as_slice(), held.as_slice()) {
        ([], []) => Ok(issuer.to_owned()),
        ([], [only]) => Ok(only.clone()),
        ([], _) => Err(OAuthError::InvalidTarget(
            "this key has several audiences: name one with the resource parameter".into(),
        )),
        ([one], []) if one.as_str() == issuer => Ok(issuer.to_owned()),
        ([one], held) if held.iter().any(|h| h == *one) => Ok((*one).clone()),
        ([one], _) => Err(OAuthError::InvalidTarget(format!(
            "this key may not obtain tokens for {one:?}"
        ))),
        (_, _) => Err(OAuthError::InvalidTarget(
            "give at most one resource".into(),
        )),
    }
}
