//! The console's stylesheet and script, embedded in the binary and served by
//! keygate itself (no CDN: the console works offline). Their URLs carry a
//! digest of the content, so browsers may cache them forever and still see
//! every new version at once.

use std::sync::LazyLock;

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use aws_lc_rs::digest;
use serde::Serialize;

const CSS: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/templates/console/assets/console.css"
));
const JS: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/templates/console/assets/console.js"
));

/// The versioned URLs pages link to.
#[derive(Debug, Clone, Serialize)]
pub struct AssetUrls {
    pub css: String,
    pub js: String,
}

fn version(content: &str) -> String {
    hex::encode(&digest::digest(&digest::SHA256, content.as_bytes()).as_ref()[..6])
}

pub static URLS: LazyLock<AssetUrls> = LazyLock::new(|| AssetUrls {
    css: format!("/assets/console-{}.css", version(CSS)),
    js: format!("/assets/console-{}.js", version(JS)),
});

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route(&URLS.css, web::get().to(css))
        .route(&URLS.js, web::get().to(js));
}

fn asset(content_type: &'static str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((header::CACHE_CONTROL, "public, max-age=31536000, immutable"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .body(body)
}

async fn css() -> HttpResponse {
    asset("text/css; charset=utf-8", CSS)
}

async fn js() -> HttpResponse {
    asset("text/javascript; charset=utf-8", JS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_change_with_the_content() {
        assert_ne!(version("a"), version("b"));
        assert!(URLS.css.starts_with("/assets/console-") && URLS.css.ends_with(".css"));
        assert!(URLS.js.ends_with(".js"));
    }
}
