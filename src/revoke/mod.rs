//! `POST /oauth/revoke` (RFC 7009): a client revokes one of its own access
//! tokens. The token's ID is kept until the token expires; until then it
//! introspects inactive.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use chrono::{DateTime, Utc};

pub use crate::access_token::{
    Revocation, count_revoked_tokens, is_revoked, prune_revoked_tokens, revoke_token,
};

use crate::access_token;
use crate::client_auth;
use crate::error::OAuthError;
use crate::oauth_form::Form;
use crate::state::AppState;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/oauth/revoke")
            .route(web::post().to(revoke))
            .default_service(web::to(|| async {
                OAuthError::MethodNotAllowed { allow: "POST" }.error_response()
            })),
    );
}

async fn revoke(req: HttpRequest, body: web::Bytes, state: web::Data<AppState>) -> HttpResponse {
    match handle(&req, &body, &state).await {
        Ok(()) => HttpResponse::Ok()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .insert_header((header::PRAGMA, "no-cache"))
            .finish(),
        Err(error) => error.error_response(),
    }
}

async fn handle(req: &HttpRequest, body: &[u8], state: &AppState) -> Result<(), OAuthError> {
    let form = Form::from_request(req, body)?;
    form.reject_repeats(&["token", "token_type_hint"])?;
    let now = Utc::now();
    let caller = client_auth::authenticate(req, &form, state, now).await?;
    let token = form.required("token")?;
    // RFC 7009 §2.1: the hint only speeds up a search; every token here is
    // an access token, so any hint (or none) leads to the same lookup.

    // §2.2: an invalid, expired or unknown token is answered with 200 too.
    let Ok(claims) = access_token::validate(&state.issuer, &state.signer, token, now) else {
        return Ok(());
    };
    if claims.client_id != caller.client_id {
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
