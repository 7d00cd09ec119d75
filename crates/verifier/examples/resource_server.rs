//! A resource server protected by keygate access tokens.
//!
//! ```text
//! RESOURCE_ISSUER=http://127.0.0.1:8080 \
//! RESOURCE_AUDIENCE=https://api.example.com \
//! RESOURCE_LISTEN=127.0.0.1:8000 \
//!     cargo run -p keygate-verifier --features actix --example resource_server
//! ```
//!
//! - `GET /whoami`  any valid token: shows its claims
//! - `GET /widgets` needs the `read` scope
//! - `POST /widgets` needs the `write` scope
//!
//! With `RESOURCE_CLIENT_ID` and `RESOURCE_CLIENT_SECRET` (an API key holding
//! `keygate:introspect`) every token is also confirmed through keygate's
//! introspection endpoint, so revoked tokens and tokens of revoked keys stop
//! working within seconds instead of at their expiry.
//!
//! See docs/RESOURCE_SERVERS.md for a walkthrough.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::IsTerminal;

use actix_web::{App, HttpResponse, HttpServer, web};
use keygate_verifier::{Authenticated, BearerError, Verifier};
use serde_json::json;
use tracing_subscriber::EnvFilter;

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

async fn whoami(auth: Authenticated) -> HttpResponse {
    HttpResponse::Ok().json(auth.claims())
}

async fn list_widgets(auth: Authenticated) -> Result<HttpResponse, BearerError> {
    auth.require_scope("read")?;
    Ok(HttpResponse::Ok().json(json!({
        "client_id": auth.client_id,
        "widgets": ["sprocket", "gear", "flange"],
    })))
}

async fn create_widget(auth: Authenticated) -> Result<HttpResponse, BearerError> {
    auth.require_scope("write")?;
    Ok(HttpResponse::Created().json(json!({ "created_by": auth.client_id })))
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();

    let issuer = env_or("RESOURCE_ISSUER", "http://127.0.0.1:8080");
    let audience = env_or("RESOURCE_AUDIENCE", "https://api.example.com");
    let listen = env_or("RESOURCE_LISTEN", "127.0.0.1:8000");

    let mut builder = Verifier::builder(&issuer, &audience);
    let online = match (
        std::env::var("RESOURCE_CLIENT_ID"),
        std::env::var("RESOURCE_CLIENT_SECRET"),
    ) {
        (Ok(id), Ok(secret)) => {
            builder = builder.online(id, secret);
            true
        }
        _ => false,
    };
    let verifier = builder
        .build()
        .await
        .map_err(|e| std::io::Error::other(format!("cannot use issuer {issuer}: {e}")))?;
    tracing::info!(%issuer, %audience, %listen, online, "resource server listening");

    let verifier = web::Data::new(verifier);
    HttpServer::new(move || {
        App::new()
            .app_data(verifier.clone())
            .route("/whoami", web::get().to(whoami))
            .route("/widgets", web::get().to(list_widgets))
            .route("/widgets", web::post().to(create_widget))
    })
    .bind(&listen)?
    .run()
    .await
}
