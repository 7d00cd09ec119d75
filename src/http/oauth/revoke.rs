//! `POST /oauth/revoke` (RFC 7009): a client revokes one of its own access
//! tokens. The token's ID is kept until the token expires; until then it
//! introspects inactive.

use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use chrono::{DateTime, Utc};

pub use crate::access_token::{
    Revocation, count_revoked_tokens, is_revoked, prune_revoked_tokens, revoke_token,
};

use crate::access_token;
use crate::http::error::OAuthError;
use crate::http::oauth::{self, ClientRequest, TokenParam};
use crate::state::AppState;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(oauth::post_only("/oauth/revoke", revoke));
}

async fn revoke(req: HttpRequest, body: web::Bytes, state: web::Data<AppState>) -> HttpResponse {
    match handle(&req, &body, &state).await {
        Ok(()) => HttpResponse::Ok().finish(),
        Err(error) => error.error_response(),
    }
}

async fn handle(req: &HttpRequest, body: &[u8], state: &AppState) -> Result<(), OAuthError> {
    let ClientRequest {
        client: caller,
        params,
        now,
        ..
    } = oauth::accept::<TokenParam>(req, body, state).await?;

    // §2.2: an invalid, expired or unknown token is answered with 200 too.
    let Ok(claims) = access_token::validate(&state.issuer, &state.signer, &params.token, now)
    else {
        return Ok(());
    };
    if claims.client_id != caller.client_id.as_str() {
        return Err(OAuthError::UnauthorizedClient(
            "a client may revoke only its own tokens".into(),
        ));
    }
    let Some(expires_at) = DateTime::<Utc>::from_timestamp(claims.exp, 0) else {
        return Ok(());
    };
    let addr = req.peer_addr().map(|a| a.ip().to_string());
    let revoked = state
        .db(move |conn| -> Result<bool, OAuthError> {
            Ok(revoke_token(
                conn,
                &Revocation {
                    jti: &claims.jti,
                    client_id: &claims.client_id,
                    expires_at,
                    source_addr: addr.as_deref(),
                },
                now,
            )?)
        })
        .await?;
    if revoked {
        tracing::info!(client_id = %caller.client_id, "access token revoked");
    }
    Ok(())
}
