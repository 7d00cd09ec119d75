//! `POST /oauth/token`: the client-credentials grant (RFC 6749 §4.4) issuing
//! RFC 9068 JWT access tokens.

pub mod client_auth;
pub mod form;
pub mod throttle;
pub mod verified;

use std::time::Instant;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;

use crate::audit::{self, Action};
use crate::error::OAuthError;
use crate::keys::{self, ClientId, Credential, PlainSecret, SecretHash};
use crate::scope::{ScopeSet, audiences_from_stored};
use crate::state::AppState;
use client_auth::Presented;
use form::Form;

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

/// The RFC 9068 claims of an access token.
#[derive(Debug, Serialize)]
pub struct AccessTokenClaims<'a> {
    pub iss: &'a str,
    pub sub: &'a str,
    pub aud: &'a str,
    pub client_id: &'a str,
    pub scope: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
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
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let form = Form::parse(content_type, body)?;
    form.reject_repeats(&["grant_type", "scope"])?;
    let presented = client_auth::extract(req.headers(), &form).inspect_err(|e| {
        if matches!(e, OAuthError::InvalidClient) {
            state.metrics.count_failure("no_client_authentication");
        }
    })?;
    let addr = req
        .peer_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_else(|| "unknown".into());

    let now = Utc::now();
    let credential = authenticate(state, presented, &addr, now).await?;

    match form.single("grant_type")? {
        None => return Err(OAuthError::InvalidRequest("grant_type is required".into())),
        Some("client_credentials") => {}
        Some(other) => return Err(OAuthError::UnsupportedGrantType(other.to_owned())),
    }

    let requested = form
        .single("scope")?
        .map(ScopeSet::parse)
        .transpose()
        .map_err(|e| OAuthError::InvalidScope(e.to_string()))?;
    let audience = choose_audience(&credential, &form, &state.issuer)?;

    let credential_for_db = credential.clone();
    let effective = state
        .db(move |conn| -> Result<ScopeSet, OAuthError> {
            let scopes = credential_for_db.effective_scopes(conn)?;
            keys::touch_last_used(conn, &credential_for_db, now)?;
            Ok(scopes)
        })
        .await?;
    let scope = match requested {
        Some(requested) => {
            if let Some(missing) = requested.iter().find(|s| !effective.contains(s)) {
                return Err(OAuthError::InvalidScope(format!(
                    "this key may not request scope {missing:?}"
                )));
            }
            requested
        }
        None => effective,
    };

    let ring = state.signer.current();
    let signing_key = ring
        .active
        .as_ref()
        .ok_or_else(|| OAuthError::TemporarilyUnavailable("no active signing key".into()))?;
    let ttl = state.token_ttl.as_secs();
    let iat = now.timestamp();
    let claims = AccessTokenClaims {
        iss: &state.issuer,
        sub: &credential.client_id,
        aud: &audience,
        client_id: &credential.client_id,
        scope: scope.to_string(),
        iat,
        exp: iat + ttl,
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

/// Verifies the presented credentials. Every failure looks the same to the
/// caller; the reason goes to the audit log and the metrics.
async fn authenticate(
    state: &AppState,
    presented: Presented,
    addr: &str,
    now: DateTime<Utc>,
) -> Result<Credential, OAuthError> {
    let Some(client_id) = ClientId::parse(&presented.client_id) else {
        state.metrics.count_failure("malformed_client_id");
        return Err(OAuthError::InvalidClient);
    };

    let (throttled, credential) = {
        let (id, addr, throttle) = (client_id.clone(), addr.to_owned(), state.throttle);
        state
            .db(move |conn| -> Result<_, OAuthError> {
                let throttled = throttle.retry_after(conn, id.as_str(), &addr, now)?;
                let credential = match throttled {
                    Some(_) => None,
                    None => keys::find_credential(conn, &id)?,
                };
                Ok((throttled, credential))
            })
            .await?
    };
    if let Some(retry_after_secs) = throttled {
        state.metrics.count_failure("throttled");
        return Err(OAuthError::TooManyRequests { retry_after_secs });
    }

    let failure = match &credential {
        None => {
            // Same cost as a real check, so timing does not reveal which IDs exist.
            if presented.secret.is_well_formed() {
                verify(state, SecretHash::decoy().clone(), presented.secret).await?;
            }
            Some("unknown_client")
        }
        Some(credential) => {
            if check_secret(state, credential, presented.secret, now).await? {
                credential.refusal(now)
            } else {
                Some("wrong_secret")
            }
        }
    };

    match (failure, credential) {
        (None, Some(credential)) => Ok(credential),
        (reason, _) => {
            let reason = reason.unwrap_or("unknown_client");
            record_failure(state, client_id, addr, reason, now).await;
            Err(OAuthError::InvalidClient)
        }
    }
}

/// True when the secret matches the key's current secret or, during a
/// rotation's grace period, its previous one.
async fn check_secret(
    state: &AppState,
    credential: &Credential,
    secret: PlainSecret,
    now: DateTime<Utc>,
) -> Result<bool, OAuthError> {
    if !secret.is_well_formed() {
        return Ok(false);
    }
    let digest = secret.digest();
    let candidates: Vec<&str> = std::iter::once(credential.secret_hash.as_str())
        .chain(credential.previous_hash(now))
        .collect();
    if candidates.iter().any(|phc| {
        state
            .verified
            .recently_verified(&credential.client_id, phc, &digest)
    }) {
        return Ok(true);
    }
    let mut secret = secret;
    for phc in candidates {
        let (ok, returned) = verify(state, SecretHash::from_stored(phc.to_owned()), secret).await?;
        secret = returned;
        if ok {
            state.verified.remember(&credential.client_id, phc, digest);
            return Ok(true);
        }
    }
    Ok(false)
}

/// One argon2 verification off the async workers, at most one per core at once.
async fn verify(
    state: &AppState,
    hash: SecretHash,
    secret: PlainSecret,
) -> Result<(bool, PlainSecret), OAuthError> {
    let _slot = state
        .argon2_slots
        .acquire()
        .await
        .map_err(|e| OAuthError::ServerError(e.to_string()))?;
    Ok(web::block(move || (hash.verify(&secret), secret)).await?)
}

async fn record_failure(
    state: &AppState,
    client_id: ClientId,
    addr: &str,
    reason: &'static str,
    now: DateTime<Utc>,
) {
    state.metrics.count_failure(reason);
    tracing::info!(client_id = %client_id, addr, reason, "client authentication failed");
    let (addr, throttle) = (addr.to_owned(), state.throttle);
    let written = state
        .db(move |conn| -> Result<(), OAuthError> {
            throttle.record_failure(conn, client_id.as_str(), &addr, now)?;
            audit::record(
                conn,
                now,
                client_id.as_str(),
                Action::ClientAuthFailed,
                client_id.as_str(),
                Some(&addr),
                json!({ "reason": reason }),
            )?;
            Ok(())
        })
        .await;
    if let Err(error) = written {
        tracing::error!(%error, "could not record a failed client authentication");
    }
}
