//! `POST /oauth/introspect` (RFC 7662): whether a token is active, and its
//! claims when it is and the caller may see them.

use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use chrono::{DateTime, Utc};
use keygate_verifier::Claims;
use serde_json::{Value, json};

use crate::access_token;
use crate::db::fresh::Probe;
use crate::http::error::OAuthError;
use crate::http::oauth::{self, ClientRequest, TokenParam};
use crate::keys::{ClientId, Credential};
use crate::scope::INTROSPECT_SCOPE;
use crate::state::AppState;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(oauth::post_only("/oauth/introspect", introspect));
}

async fn introspect(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> HttpResponse {
    match handle(&req, &body, &state).await {
        Ok(answer) => HttpResponse::Ok().json(answer),
        Err(error) => error.error_response(),
    }
}

async fn handle(req: &HttpRequest, body: &[u8], state: &AppState) -> Result<Value, OAuthError> {
    let ClientRequest {
        client,
        params,
        now,
        ..
    } = oauth::accept::<TokenParam>(req, body, state).await?;
    Ok(
        match active_claims(state, client, &params.token, now).await? {
            Some(claims) => active_answer(&claims),
            None => json!({ "active": false }),
        },
    )
}

/// The token's claims when it is active and the caller may see it. RFC 7662
/// §2.2: a caller who may not see a token is told it is inactive, nothing
/// more.
async fn active_claims(
    state: &AppState,
    caller: std::sync::Arc<Credential>,
    token: &str,
    now: DateTime<Utc>,
) -> Result<Option<Claims>, OAuthError> {
    let claims = match access_token::validate(&state.issuer, &state.signer, token, now) {
        Ok(claims) => claims,
        Err(reason) => {
            tracing::debug!(%reason, caller = %caller.client_id, "introspected token is invalid");
            return Ok(None);
        }
    };
    if claims.client_id != caller.client_id.as_str()
        && !caller.effective_scopes.contains(INTROSPECT_SCOPE)
    {
        tracing::debug!("caller may not introspect this token");
        return Ok(None);
    }
    match live_issuer(state, &claims, now).await? {
        Ok(()) => Ok(Some(claims)),
        Err(reason) => {
            tracing::debug!(reason, "introspected token is inactive");
            Ok(None)
        }
    }
}

/// Whether the token is not revoked and the key it was issued from may
/// still be used (not revoked, expired or disabled), as the database has
/// it now; otherwise why not. One read, begun after the request arrived,
/// gives the change epochs and the token's revocation (on PostgreSQL in a
/// round shared with the requests of the moment, on SQLite on this
/// thread); the key comes from the credentials kept at that credential
/// epoch, as on the warm token path.
async fn live_issuer(
    state: &AppState,
    claims: &Claims,
    now: DateTime<Utc>,
) -> Result<Result<(), &'static str>, OAuthError> {
    let Some(issued_to) = ClientId::parse(&claims.client_id) else {
        return Ok(Err("client_id is not one of ours"));
    };
    let probe = Probe {
        throttle: None,
        revoked: Some(claims.jti.clone()),
    };
    let fresh = state.pool.fresh_with::<OAuthError>(probe).await?;
    if fresh.revoked != Some(false) {
        return Ok(Err("token revoked"));
    }
    let epoch = fresh.epochs.credentials;
    Ok(
        match state.client_auth.credential_at(&issued_to, epoch).await? {
            None => Err("key unknown"),
            Some(key) => key.refusal(now).map_or(Ok(()), |r| Err(r.as_str())),
        },
    )
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
