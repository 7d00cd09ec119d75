//! The web console at `/`: server-rendered pages (templates in
//! `templates/console/`) for people to sign in and manage their keys, and for
//! admins to manage people, APIs, roles and read the audit log.
//!
//! Every action is a plain HTML form (no JavaScript needed); a small script
//! file adds copy buttons and confirmations. Every response carries the
//! security headers of [`security_headers`]: a strict CSP without
//! `unsafe-inline`, `frame-ancestors 'none'`, no referrer, no sniffing, and
//! `no-store` so no page with a person's data (least of all a secret) is
//! kept in a cache or shown again by the back button.

mod assets;
mod csrf;
mod render;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::DefaultHeaders;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};

use crate::state::AppState;

pub use render::RenderError;

/// The console's Content-Security-Policy: nothing inline, nothing foreign.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; \
     frame-ancestors 'none'; base-uri 'none'";

/// The headers every console response carries, errors included.
pub fn security_headers() -> DefaultHeaders {
    DefaultHeaders::new()
        .add((header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY))
        .add((header::REFERRER_POLICY, "no-referrer"))
        .add((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .add((header::X_FRAME_OPTIONS, "DENY"))
        .add((header::CACHE_CONTROL, "no-store"))
        .add(("Cross-Origin-Opener-Policy", "same-origin"))
        .add((
            "Permissions-Policy",
            "camera=(), microphone=(), geolocation=()",
        ))
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.configure(assets::routes);
    cfg.service(
        web::resource("/sign-in")
            .wrap(security_headers())
            .route(web::get().to(sign_in_page)),
    );
}

/// What every page's layout needs.
#[derive(Debug, Serialize)]
struct Layout<'a> {
    title: &'a str,
    issuer: &'a str,
    assets: &'static assets::AssetUrls,
    /// Narrow, centred content: the pages before signing in.
    narrow: bool,
    csrf: &'a str,
}

/// A rendered page, or a plain error when rendering fails (a bug: logged).
fn page(
    status: StatusCode,
    name: &str,
    layout: &Layout<'_>,
    context: impl Serialize,
) -> HttpResponse {
    let context = minijinja::context! {
        ..minijinja::Value::from_serialize(context),
        ..minijinja::Value::from_serialize(layout)
    };
    match render::render(name, context) {
        Ok(html) => HttpResponse::build(status)
            .content_type("text/html; charset=utf-8")
            .body(html),
        Err(error) => {
            tracing::error!(%error, "console page failed to render");
            HttpResponse::InternalServerError()
                .content_type("text/plain; charset=utf-8")
                .body("The page failed to render; the server's log says why.\n")
        }
    }
}

#[derive(Debug, Deserialize)]
struct SignInQuery {
    #[serde(default)]
    next: String,
}

async fn sign_in_page(
    req: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<SignInQuery>,
) -> HttpResponse {
    let (token, cookie) = csrf::pre_session(&req, &state.issuer);
    let layout = Layout {
        title: "Sign in",
        issuer: &state.issuer,
        assets: &assets::URLS,
        narrow: true,
        csrf: &token,
    };
    let mut response = page(
        StatusCode::OK,
        "sign_in",
        &layout,
        minijinja::context! {
            next => local_path(&query.next).unwrap_or(""),
            email => "",
        },
    );
    if let Some(cookie) = cookie
        && let Ok(value) = HeaderValue::from_str(&cookie.to_string())
    {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

/// `next` when it is a path on this site (`/keys`), never another origin
/// (`//evil.example`, `https://...`): no open redirect.
fn local_path(next: &str) -> Option<&str> {
    let ok = next.starts_with('/')
        && !next.starts_with("//")
        && !next.starts_with("/\\")
        && !next.chars().any(|c| c.is_control());
    ok.then_some(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_stays_on_this_site() {
        assert_eq!(local_path("/keys/kg_1"), Some("/keys/kg_1"));
        assert_eq!(local_path("//evil.example/"), None);
        assert_eq!(local_path("/\\evil.example/"), None);
        assert_eq!(local_path("https://evil.example/"), None);
        assert_eq!(local_path("/keys\r\nSet-Cookie: x"), None);
        assert_eq!(local_path(""), None);
    }
}
