//! RFC 8414 authorization server metadata and the JWKS (RFC 7517).

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use serde_json::json;

use crate::http::error::AppError;
use crate::resource_servers;
use crate::state::AppState;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/.well-known/oauth-authorization-server",
        web::get().to(metadata),
    )
    // For clients that only look for OpenID Connect discovery.
    .route("/.well-known/openid-configuration", web::get().to(metadata))
    .route("/.well-known/jwks.json", web::get().to(jwks));
}

async fn metadata(state: web::Data<AppState>) -> Result<HttpResponse, AppError> {
    let scopes = state
        .db(|conn| resource_servers::known_scopes(conn).map_err(AppError::from))
        .await?;
    let issuer = &state.issuer;
    let alg = state
        .signer
        .current()
        .active
        .as_ref()
        .map(|key| key.alg().as_str());
    let auth_methods = [
        "client_secret_basic",
        "client_secret_post",
        "private_key_jwt",
    ];
    let assertion_algs = crate::client_auth::assertion::ALGORITHMS;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
        .json(json!({
            "issuer": issuer,
            "token_endpoint": format!("{issuer}/oauth/token"),
            "jwks_uri": format!("{issuer}/.well-known/jwks.json"),
            "introspection_endpoint": format!("{issuer}/oauth/introspect"),
            "revocation_endpoint": format!("{issuer}/oauth/revoke"),
            "exposure_endpoint": format!("{issuer}/oauth/exposed"),
            "grant_types_supported": [
                "client_credentials",
                "urn:ietf:params:oauth:grant-type:token-exchange"
            ],
            "response_types_supported": [],
            "token_endpoint_auth_methods_supported": auth_methods,
            "introspection_endpoint_auth_methods_supported": auth_methods,
            "revocation_endpoint_auth_methods_supported": auth_methods,
            "token_endpoint_auth_signing_alg_values_supported": assertion_algs,
            "introspection_endpoint_auth_signing_alg_values_supported": assertion_algs,
            "revocation_endpoint_auth_signing_alg_values_supported": assertion_algs,
            "scopes_supported": scopes.to_vec(),
            "access_token_signing_alg_values_supported": alg.into_iter().collect::<Vec<_>>(),
        })))
}

async fn jwks(state: web::Data<AppState>) -> HttpResponse {
    let ring = state.signer.current();
    HttpResponse::Ok()
        .insert_header((
            header::CACHE_CONTROL,
            format!("public, max-age={}", state.jwks_max_age.num_seconds()),
        ))
        .content_type("application/jwk-set+json")
        .body(ring.jwks.as_str().to_owned())
}
