//! The JSON management API under `/api/v1`: keys, users, APIs and the audit
//! log, authenticated by a bearer token from this server (see [`auth`]).
//! Handlers stay thin: parse, call the feature's store function, map the
//! result. Every error is an [`AppError`] (or an [`auth::AuthError`]), so the
//! body is always `{"error": code, "message": ...}`.

mod apis;
mod audit;
pub mod auth;
mod keys;
mod users;

use actix_web::http::header;
use actix_web::{HttpResponse, ResponseError, web};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::error::AppError;

pub use auth::{Access, Caller, CallerSource};

/// The OpenAPI 3.1 description of every route below.
pub const OPENAPI: &str = include_str!("openapi.json");

const MAX_BODY: usize = 64 * 1024;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/api/v1")
            .app_data(
                web::JsonConfig::default()
                    .limit(MAX_BODY)
                    .error_handler(|err, _| {
                        AppError::bad_request(format!("invalid JSON body: {err}")).into()
                    }),
            )
            .app_data(web::QueryConfig::default().error_handler(|err, _| {
                AppError::bad_request(format!("invalid query string: {err}")).into()
            }))
            .route("/openapi.json", web::get().to(openapi))
            .service(
                web::resource("/keys")
                    .route(web::get().to(keys::list))
                    .route(web::post().to(keys::create)),
            )
            .service(
                web::resource("/keys/{client_id}")
                    .route(web::get().to(keys::read))
                    .route(web::delete().to(keys::revoke)),
            )
            .route("/keys/{client_id}/rotate", web::post().to(keys::rotate))
            .route("/keys/{client_id}/revoke", web::post().to(keys::revoke))
            .service(
                web::resource("/users")
                    .route(web::get().to(users::list))
                    .route(web::post().to(users::create)),
            )
            .service(
                web::resource("/users/{email}")
                    .route(web::get().to(users::read))
                    .route(web::patch().to(users::update)),
            )
            .service(
                web::resource("/apis")
                    .route(web::get().to(apis::list))
                    .route(web::post().to(apis::create)),
            )
            .route("/apis/{identifier}", web::get().to(apis::read))
            .route("/audit-events", web::get().to(audit::list))
            .default_service(web::to(|| async {
                AppError::not_found("not_found", "no such endpoint").error_response()
            })),
    );
}

async fn openapi() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(OPENAPI)
}

/// `limit` and `cursor` of a list request.
#[derive(Debug, Deserialize)]
pub struct PageQuery {
    pub limit: Option<String>,
    pub cursor: Option<String>,
}

/// A validated page request: how many items, from which position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub limit: usize,
    pub offset: usize,
}

const DEFAULT_LIMIT: usize = 50;
const MAX_LIMIT: usize = 100;
const CURSOR_PREFIX: &str = "o:";

impl Page {
    pub fn parse(limit: Option<&str>, cursor: Option<&str>) -> Result<Self, AppError> {
        let limit = match limit {
            None => DEFAULT_LIMIT,
            Some(text) => text
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=MAX_LIMIT).contains(n))
                .ok_or_else(|| {
                    AppError::bad_request(format!("limit must be an integer from 1 to {MAX_LIMIT}"))
                })?,
        };
        let offset = match cursor {
            None => 0,
            Some(cursor) => decode_cursor(cursor)
                .ok_or_else(|| AppError::bad_request("the cursor is not one this API gave out"))?,
        };
        Ok(Self { limit, offset })
    }

    pub fn from_query(query: &PageQuery) -> Result<Self, AppError> {
        Self::parse(query.limit.as_deref(), query.cursor.as_deref())
    }

    /// The cursor of the page after this one.
    fn next_cursor(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!("{CURSOR_PREFIX}{}", self.offset + self.limit))
    }

    /// `{"items": [...], "next_cursor": ...}` from every item of the list.
    pub fn slice<T: serde::Serialize>(&self, all: Vec<T>) -> Value {
        let more = all.len() > self.offset.saturating_add(self.limit);
        let items: Vec<T> = all.into_iter().skip(self.offset).take(self.limit).collect();
        self.respond(items, more)
    }

    /// From a page fetched with `limit + 1` rows: the extra one says more follow.
    pub fn from_fetched<T: serde::Serialize>(&self, mut fetched: Vec<T>) -> Value {
        let more = fetched.len() > self.limit;
        fetched.truncate(self.limit);
        self.respond(fetched, more)
    }

    fn respond<T: serde::Serialize>(&self, items: Vec<T>, more: bool) -> Value {
        json!({
            "items": items,
            "next_cursor": more.then(|| self.next_cursor()),
        })
    }
}

fn decode_cursor(cursor: &str) -> Option<usize> {
    let bytes = URL_SAFE_NO_PAD.decode(cursor).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let digits = text.strip_prefix(CURSOR_PREFIX)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// A JSON body that may be left out entirely (rotate, revoke).
pub fn optional_json<T: DeserializeOwned + Default>(body: &[u8]) -> Result<T, AppError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body)
        .map_err(|e| AppError::bad_request(format!("invalid JSON body: {e}")))
}

/// 200 with a body that holds a secret: never cached.
pub fn secret_response(mut builder: actix_web::HttpResponseBuilder, body: Value) -> HttpResponse {
    builder
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"))
        .json(body)
}

/// Everything but RFC 3986's unreserved characters.
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// `Location` of a created object, its last segment percent-encoded.
pub fn location(collection: &str, id: &str) -> String {
    let encoded = percent_encoding::utf8_percent_encode(id, SEGMENT).to_string();
    format!("/api/v1/{collection}/{encoded}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip() {
        let page = Page::parse(Some("10"), None).unwrap();
        let next = page.next_cursor();
        assert_eq!(
            Page::parse(Some("10"), Some(&next)).unwrap(),
            Page {
                limit: 10,
                offset: 10
            }
        );
    }

    #[test]
    fn bad_limits_and_cursors_are_refused() {
        for limit in ["0", "101", "-1", "x", ""] {
            assert!(Page::parse(Some(limit), None).is_err(), "{limit}");
        }
        let not_ours = URL_SAFE_NO_PAD.encode("x:3");
        for cursor in ["", "!!", "bzo", not_ours.as_str()] {
            assert!(Page::parse(None, Some(cursor)).is_err(), "{cursor}");
        }
    }

    #[test]
    fn huge_offsets_are_an_empty_last_page() {
        let cursor = URL_SAFE_NO_PAD.encode(format!("o:{}", usize::MAX));
        let page = Page::parse(Some("100"), Some(&cursor)).unwrap();
        let answer = page.slice(vec![1, 2, 3]);
        assert_eq!(answer["items"], json!([]));
        assert!(answer["next_cursor"].is_null());
    }

    #[test]
    fn slices_report_whether_more_follow() {
        let page = Page::parse(Some("2"), None).unwrap();
        let first = page.slice(vec![1, 2, 3]);
        assert_eq!(first["items"], json!([1, 2]));
        let cursor = first["next_cursor"].as_str().unwrap();
        let second = Page::parse(Some("2"), Some(cursor))
            .unwrap()
            .slice(vec![1, 2, 3]);
        assert_eq!(second["items"], json!([3]));
        assert!(second["next_cursor"].is_null());
    }
}
