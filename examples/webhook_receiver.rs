//! A receiver of keygate's webhooks that checks every delivery with the
//! Standard Webhooks reference library before trusting it (docs/WEBHOOKS.md).
//!
//! ```text
//! WEBHOOK_SECRET=whsec_... cargo run --example webhook_receiver
//! keygate webhooks add http://127.0.0.1:8787/keygate
//! ```

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use standardwebhooks::Webhook;

/// Verifies, then acts: a 2xx tells keygate the event arrived; anything
/// else has it retried with the same `webhook-id`.
async fn receive(request: HttpRequest, body: web::Bytes, hook: web::Data<Webhook>) -> HttpResponse {
    // The library takes the `http` crate's header map.
    let mut headers = http::HeaderMap::new();
    for (name, value) in request.headers() {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(name.as_str().as_bytes()),
            http::HeaderValue::from_bytes(value.as_bytes()),
        ) {
            headers.append(name, value);
        }
    }
    if hook.verify(&body, &headers).is_err() {
        return HttpResponse::BadRequest().finish();
    }
    let Ok(event) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return HttpResponse::BadRequest().finish();
    };
    // Deduplicate by `webhook-id`: a retry or a resend carries the same one.
    println!(
        "{} {} {}",
        headers["webhook-id"].to_str().unwrap_or_default(),
        event["type"],
        event["data"]
    );
    HttpResponse::NoContent().finish()
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let secret = std::env::var("WEBHOOK_SECRET")
        .map_err(|_| std::io::Error::other("set WEBHOOK_SECRET to the endpoint's whsec_ secret"))?;
    let hook = Webhook::new(&secret)
        .map_err(|_| std::io::Error::other("WEBHOOK_SECRET is not a whsec_ secret"))?;
    let hook = web::Data::new(hook);
    HttpServer::new(move || {
        App::new()
            .app_data(hook.clone())
            .route("/keygate", web::post().to(receive))
    })
    .bind(("127.0.0.1", 8787))?
    .run()
    .await
}
