//! The JSON management API under `/api/v1`: keys, teams, users, APIs and
//! the audit log, authenticated by a bearer token from this server (see [`auth`]).
//! Handlers stay thin: parse, call the feature's store function, map the
//! result. Every error is an [`AppError`] (or an [`auth::AuthError`]), so the
//! body is always `{"error": code, "message": ...}`.

mod apis;
mod audit;
pub mod auth;
mod doc;
mod federations;
mod handover;
mod keys;
mod teams;
mod users;
mod webhooks;

use std::sync::Arc;

use actix_web::dev::ResourceDef;
use actix_web::error::JsonPayloadError;
use actix_web::http::header;
use actix_web::middleware::{DefaultHeaders, from_fn};
use actix_web::{HttpRequest, HttpResponse, ResponseError, get, web};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::http::edge::BodyFailure;
use crate::http::error::AppError;
use crate::http::peer;

pub use apis::CreateApi;
pub use auth::{Access, Caller, CallerSource};
pub use doc::ErrorBody;
pub use handover::{DenyBody, TransferKey};
pub use keys::{CheckedCreateKey, CreateKey, RevokeBody, RotateBody, UpdateKey};
pub use teams::{CreateTeam, UpdateTeam};
pub use users::{CreateUser, UpdateUser};
pub use webhooks::{CreateWebhook, UpdateWebhook};

const MAX_BODY: usize = 64 * 1024;
const PREFIX: &str = "/api/v1";

/// Every route of the API, each registered through its `#[utoipa::path]`
/// handler: what is served and what is documented come from the same
/// attribute, so no route can be served undocumented.
fn documented_scope() -> utoipa_actix_web::scope::Scope<
    impl actix_web::dev::ServiceFactory<
        actix_web::dev::ServiceRequest,
        Config = (),
        Response = actix_web::dev::ServiceResponse,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    utoipa_actix_web::scope(PREFIX)
        .service(openapi)
        .service(keys::list)
        .service(keys::create)
        .service(keys::read)
        .service(keys::update)
        .service(keys::delete)
        .service(keys::rotate)
        .service(keys::revoke)
        .service(handover::transfer)
        .service(handover::approve)
        .service(handover::deny)
        .service(teams::list)
        .service(teams::create)
        .service(teams::read)
        .service(teams::update)
        .service(teams::add_member)
        .service(teams::remove_member)
        .service(users::list)
        .service(users::create)
        .service(users::read)
        .service(users::update)
        .service(apis::list)
        .service(apis::create)
        .service(apis::read)
        .service(apis::update)
        .service(audit::list)
        .service(webhooks::list)
        .service(webhooks::create)
        .service(webhooks::read)
        .service(webhooks::update)
        .service(webhooks::remove)
        .service(webhooks::deliveries)
        .service(webhooks::test)
        .service(webhooks::resend)
        .service(federations::list)
        .service(federations::create)
        .service(federations::read)
        .service(federations::remove)
}

/// The OpenAPI 3.1 document of the routes [`routes`] serves.
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    doc::complete(&documented_scope())
}

/// The served document, rendered once at start-up (`None`: it could not be).
struct OpenApiText(Option<web::Bytes>);

pub fn routes(cfg: &mut web::ServiceConfig) {
    let scope = documented_scope();
    let document = doc::complete(&scope);
    let allowed = Arc::new(allowed_methods(&document));
    let text = match document.to_pretty_json() {
        Ok(text) => Some(web::Bytes::from(text)),
        Err(e) => {
            tracing::error!(error = %e, "the OpenAPI document could not be rendered");
            None
        }
    };
    cfg.service(
        scope
            .wrap(from_fn(|request, next| {
                peer::refuse_unreadable_forwarding(request, next, |_, unreadable| {
                    AppError::bad_request(unreadable.to_string()).error_response()
                })
            }))
            // Every answer, errors included: nothing here is for a cache, and
            // nothing is to be read as anything but what it says it is.
            .wrap(
                DefaultHeaders::new()
                    .add((header::CACHE_CONTROL, "no-store"))
                    .add((header::X_CONTENT_TYPE_OPTIONS, "nosniff")),
            )
            .app_data(web::Data::new(OpenApiText(text)))
            .app_data(
                web::JsonConfig::default()
                    .limit(MAX_BODY)
                    .error_handler(|err, _| json_body_error(&err).into()),
            )
            .app_data(web::QueryConfig::default().error_handler(|err, _| {
                AppError::bad_request(format!("invalid query string: {err}")).into()
            }))
            .default_service(web::to(move |req: HttpRequest| {
                let allowed = Arc::clone(&allowed);
                async move { unrouted(&req, &allowed) }
            })),
    );
}

/// A JSON body that could not be read (413, 408, 400) or parsed (400).
fn json_body_error(error: &JsonPayloadError) -> AppError {
    match error {
        JsonPayloadError::OverflowKnownLength { .. } | JsonPayloadError::Overflow { .. } => {
            BodyFailure::TooLarge.into()
        }
        JsonPayloadError::Payload(payload) => BodyFailure::from_payload(payload).into(),
        other => AppError::bad_request(format!("invalid JSON body: {other}")),
    }
}

/// Each documented path as actix matches it, with the methods it answers.
fn allowed_methods(document: &utoipa::openapi::OpenApi) -> Vec<(ResourceDef, String)> {
    document
        .paths
        .paths
        .iter()
        .map(|(path, item)| {
            let methods: Vec<&str> = [
                ("GET", item.get.is_some()),
                ("PUT", item.put.is_some()),
                ("POST", item.post.is_some()),
                ("DELETE", item.delete.is_some()),
                ("PATCH", item.patch.is_some()),
            ]
            .into_iter()
            .filter_map(|(name, present)| present.then_some(name))
            .collect();
            (ResourceDef::new(path.as_str()), methods.join(", "))
        })
        .collect()
}

/// A request no handler took: 405 with `Allow` (RFC 9110 §15.5.6) on a
/// documented path, 404 anywhere else.
fn unrouted(req: &HttpRequest, allowed: &[(ResourceDef, String)]) -> HttpResponse {
    let path = req.path();
    match allowed.iter().find(|(def, _)| def.is_match(path)) {
        Some((_, methods)) => {
            let mut response = AppError::method_not_allowed(format!(
                "{} is not allowed here; use {methods}",
                req.method()
            ))
            .error_response();
            if let Ok(value) = header::HeaderValue::from_str(methods) {
                response.headers_mut().insert(header::ALLOW, value);
            }
            response
        }
        None => AppError::not_found("not_found", "no such endpoint").error_response(),
    }
}

/// This document.
#[utoipa::path(
    tag = "meta",
    operation_id = "getOpenApi",
    security(()),
    responses(
        (status = 200, description = "this OpenAPI 3.1 document", content_type = "application/json", body = Object),
        (status = 500, response = doc::Internal),
    )
)]
#[get("/openapi.json")]
async fn openapi(text: web::Data<OpenApiText>) -> Result<HttpResponse, AppError> {
    let text = text
        .0
        .clone()
        .ok_or_else(|| AppError::internal(std::io::Error::other("no OpenAPI document")))?;
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .body(text))
}

/// `limit` and `cursor` of a list request. Both arrive as text so that a
/// bad value gets this API's own 400, not the query parser's.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Items per page, 1 to 100 (default 50).
    #[param(value_type = Option<u8>, minimum = 1, maximum = 100)]
    pub limit: Option<String>,
    /// Opaque: the `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// A validated page request: how many items, from which position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub limit: usize,
    pub offset: usize,
}

/// One page of a list.
#[derive(Debug, Serialize, ToSchema)]
pub struct Paged<T> {
    pub items: Vec<T>,
    /// Pass as `cursor` for the next page; null on the last page.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
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
    pub fn slice<T>(&self, all: Vec<T>) -> Paged<T> {
        let more = all.len() > self.offset.saturating_add(self.limit);
        let items: Vec<T> = all.into_iter().skip(self.offset).take(self.limit).collect();
        self.respond(items, more)
    }

    /// From a page fetched with `limit + 1` rows: the extra one says more follow.
    pub fn from_fetched<T>(&self, mut fetched: Vec<T>) -> Paged<T> {
        let more = fetched.len() > self.limit;
        fetched.truncate(self.limit);
        self.respond(fetched, more)
    }

    fn respond<T>(&self, items: Vec<T>, more: bool) -> Paged<T> {
        Paged {
            items,
            next_cursor: more.then(|| self.next_cursor()),
        }
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

/// The most an optional body may hold: actix's own limit for a raw body,
/// which rotate and revoke had before they read it themselves.
const MAX_OPTIONAL_BODY: usize = 256 * 1024;

/// A JSON body that may be left out entirely (rotate, revoke), whatever its
/// content type says.
pub async fn optional_json<T: DeserializeOwned + Default>(
    payload: web::Payload,
) -> Result<T, AppError> {
    let body = payload
        .to_bytes_limited(MAX_OPTIONAL_BODY)
        .await
        .map_err(|_| {
            AppError::payload_too_large(format!(
                "the body is larger than {} KiB",
                MAX_OPTIONAL_BODY / 1024
            ))
        })?
        .map_err(|e| match e.as_error::<actix_web::error::PayloadError>() {
            Some(payload) => AppError::from(BodyFailure::from_payload(payload)),
            None => AppError::bad_request(format!("could not read the body: {e}")),
        })?;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    parse_json(&body)
}

/// A request body read as `T`, as `web::Json` reads one (serde_json, the
/// whole body), or 400 `invalid_request` saying why not.
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, AppError> {
    serde_json::from_slice(body)
        .map_err(|e| AppError::bad_request(format!("invalid JSON body: {e}")))
}

/// A field that was given, `null` included: `Some(None)` for `null`, while
/// `#[serde(default)]` leaves a missing one `None`.
pub(super) fn given<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

/// 200 with a body that holds a secret: never cached.
pub fn secret_response(
    mut builder: actix_web::HttpResponseBuilder,
    body: &impl Serialize,
) -> HttpResponse {
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
        assert!(answer.items.is_empty());
        assert!(answer.next_cursor.is_none());
    }

    #[test]
    fn slices_report_whether_more_follow() {
        let page = Page::parse(Some("2"), None).unwrap();
        let first = page.slice(vec![1, 2, 3]);
        assert_eq!(first.items, [1, 2]);
        let cursor = first.next_cursor.unwrap();
        let second = Page::parse(Some("2"), Some(&cursor))
            .unwrap()
            .slice(vec![1, 2, 3]);
        assert_eq!(second.items, [3]);
        assert!(second.next_cursor.is_none());
    }
}
