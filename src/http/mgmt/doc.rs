//! What the OpenAPI document says beyond the handlers' own `#[utoipa::path]`
//! attributes: its title, the Bearer and session schemes, and the error answers every
//! handler shares (`{"error": code, "message": ...}`, as [`AppError`] and
//! [`super::auth::AuthError`] write them).
//!
//! [`AppError`]: crate::http::error::AppError

use serde::Serialize;
use utoipa::openapi::request_body::RequestBody;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{
    ContentBuilder, HeaderBuilder, OpenApi as Document, Ref, RefOr, Required, ResponseBuilder,
    Schema, response::Response,
};
use utoipa::{Modify, OpenApi, PartialSchema, ToSchema};
use utoipa_actix_web::OpenApiFactory;

use crate::error::ErrorKind;
use crate::keys::KeyError;
use crate::teams::TeamError;
use crate::webhooks::WebhookError;

/// The body of every error answer.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Error)]
pub struct ErrorBody {
    /// A stable snake_case code, such as `key_not_found`.
    pub error: String,
    /// For a person to read; may change between versions.
    pub message: String,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "keygate management API",
        version = "1",
        description = "Manage API keys, teams, users, registered APIs and read the audit log. \
            Authenticate with `Authorization: Bearer <access token from this server>` whose \
            scope holds `keygate:admin` (everything) or `keygate:keys` (the caller's own keys \
            and their teams' only; any other key answers 404), or with a console session: its cookie, plus \
            the session's CSRF token in the `X-CSRF-Token` header on every method but GET, \
            HEAD and OPTIONS (else 403 `invalid_csrf_token`). A session's person acts with \
            their role's rights: admins manage everything, anyone else their own keys and \
            their teams'.",
    ),
    modifiers(&BearerScheme),
    security(("bearer" = ["keygate:keys"]), ("bearer" = ["keygate:admin"]), ("session" = [])),
    components(
        schemas(ErrorBody),
        responses(
            BadRequest,
            Unauthorized,
            Forbidden,
            NotFound,
            Conflict,
            PayloadTooLarge,
            RequestTimeout,
            Unprocessable,
            Internal,
            Unavailable
        )
    ),
    tags(
        (name = "keys", description = "API keys; `keygate:keys` callers see only their own and their teams'"),
        (name = "teams", description = "teams owning keys; admins manage them, members read their own"),
        (name = "users", description = "people; admins only"),
        (name = "apis", description = "registered resource servers; admins only"),
        (name = "audit", description = "the audit log; admins only"),
        (name = "webhooks", description = "signed event deliveries (Standard Webhooks); admins only"),
        (name = "federations", description = "trusted workloads (workload identity federation, RFC 8693); admins only"),
        (name = "meta", description = "this document"),
    )
)]
struct ApiDoc;

struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut Document) {
        let scheme = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .bearer_format("JWT")
            .description(Some(
                "an RFC 9068 access token issued by this keygate (client-credentials grant) \
                 holding keygate:keys or keygate:admin",
            ))
            .build();
        let session = ApiKeyValue::with_description(
            "keygate-session",
            "a console session cookie (named `__Host-keygate-session` when the issuer is \
             https); state-changing methods also need the session's CSRF token in the \
             `X-CSRF-Token` header",
        );
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("bearer", SecurityScheme::Http(scheme));
        components.add_security_scheme("session", SecurityScheme::ApiKey(ApiKey::Cookie(session)));
    }
}

/// The whole document: the shared parts above plus every documented route.
pub(super) fn complete(routes: &impl OpenApiFactory) -> Document {
    let mut document = ApiDoc::openapi();
    document.paths.merge(routes.paths());
    let mut schemas = Vec::new();
    routes.schemas(&mut schemas);
    document
        .components
        .get_or_insert_with(Default::default)
        .schemas
        .extend(schemas);
    for item in document.paths.paths.values_mut() {
        for operation in [&mut item.post, &mut item.delete].into_iter().flatten() {
            if let Some(body) = &mut operation.request_body {
                optional_means_omitted(body);
            }
        }
        let with_body = [
            &mut item.post,
            &mut item.put,
            &mut item.patch,
            &mut item.delete,
        ];
        for operation in with_body.into_iter().flatten() {
            if operation.request_body.is_some() {
                body_failures(operation);
            }
        }
    }
    document
}

/// Whatever its handler does, a body can be too large for it or arrive too
/// slowly (`http_edge`): every operation that takes one says so.
fn body_failures(operation: &mut utoipa::openapi::path::Operation) {
    for (status, name) in [("408", "RequestTimeout"), ("413", "PayloadTooLarge")] {
        if !operation.responses.responses.contains_key(status) {
            operation
                .responses
                .responses
                .insert(status.to_owned(), Ref::from_response_name(name).into());
        }
    }
}

/// An `Option<T>` request body (rotate, revoke) is one that may be left
/// out, not one that may be JSON `null`: utoipa writes `oneOf: [null, T]`
/// for it, the handlers read `T` or nothing.
fn optional_means_omitted(body: &mut RequestBody) {
    if body.required == Some(Required::True) {
        return;
    }
    for content in body.content.values_mut() {
        if let Some(RefOr::T(Schema::OneOf(one_of))) = &content.schema {
            let reference = one_of
                .items
                .iter()
                .find(|item| matches!(item, RefOr::Ref(_)))
                .cloned();
            if one_of.items.len() == 2 && reference.is_some() {
                content.schema = reference;
            }
        }
    }
}

fn error_response(description: &str, challenge: bool) -> RefOr<Response> {
    let mut builder = ResponseBuilder::new().description(description).content(
        "application/json",
        ContentBuilder::new()
            .schema(Some(Ref::from_schema_name("Error")))
            .build(),
    );
    if challenge {
        builder = builder.header(
            "WWW-Authenticate",
            HeaderBuilder::new()
                .schema(String::schema())
                .description(Some("RFC 6750 §3 challenge"))
                .build(),
        );
    }
    builder.build().into()
}

/// The codes this API's own layers answer with: the body and query
/// parsers, authentication, the last resorts.
const TRANSPORT_CODES: &[(ErrorKind, &str)] = &[
    (ErrorKind::Malformed, "invalid_request"),
    (ErrorKind::Unauthenticated, "unauthorized"),
    (ErrorKind::Forbidden, "insufficient_scope"),
    (ErrorKind::Forbidden, "invalid_csrf_token"),
    (ErrorKind::Internal, "internal_error"),
    (ErrorKind::Unavailable, "database_unavailable"),
];

/// The codes of users, roles and APIs, whose errors are not an enum of
/// their own yet: each goes when its enum's list joins [`FEATURE_CODES`].
const PENDING_CODES: &[(ErrorKind, &str)] = &[
    (ErrorKind::NotFound, "user_not_found"),
    (ErrorKind::NotFound, "api_not_found"),
    (ErrorKind::NotFound, "role_not_found"),
    (ErrorKind::Conflict, "user_exists"),
    (ErrorKind::Conflict, "api_exists"),
    (ErrorKind::Conflict, "last_admin"),
    (ErrorKind::Invalid, "invalid_email"),
    (ErrorKind::Invalid, "invalid_name"),
    (ErrorKind::Invalid, "invalid_identifier"),
    (ErrorKind::Invalid, "invalid_scope"),
    (ErrorKind::Invalid, "reserved_scope"),
];

/// Every feature's codes by kind: each error enum contributes its list.
const FEATURE_CODES: &[&[(ErrorKind, &str)]] = &[
    KeyError::CODES,
    TeamError::CODES,
    WebhookError::CODES,
    crate::federation::FederationError::CODES,
    PENDING_CODES,
];

/// The codes an answer of `kind` may carry, each once, in the order they
/// are listed: the transport's first, then each feature's.
fn codes_of(kind: ErrorKind) -> Vec<&'static str> {
    let mut codes: Vec<&'static str> = Vec::new();
    let lists = std::iter::once(TRANSPORT_CODES).chain(FEATURE_CODES.iter().copied());
    for (of, code) in lists.flatten() {
        if *of == kind && !codes.contains(code) {
            codes.push(code);
        }
    }
    codes
}

/// `what` followed by the codes it may carry: `(a, b, c)`.
fn described(what: &str, codes: &[&str]) -> String {
    format!("{what} ({})", codes.join(", "))
}

macro_rules! error_responses {
    ($($name:ident: $what:literal, $codes:expr, $challenge:literal;)*) => {$(
        pub(super) struct $name;

        impl<'r> utoipa::ToResponse<'r> for $name {
            fn response() -> (&'r str, RefOr<Response>) {
                let codes: Vec<&str> = $codes;
                (stringify!($name), error_response(&described($what, &codes), $challenge))
            }
        }
    )*};
}

error_responses! {
    BadRequest: "malformed JSON, an unknown field, a bad `limit` or `cursor`", codes_of(ErrorKind::Malformed), false;
    Unauthorized: "no, or an invalid, expired or revoked, access token, or a console session that has ended", codes_of(ErrorKind::Unauthenticated), true;
    Forbidden: "the token lacks the scope this needs, a console session's CSRF token is missing or wrong, or the change is not allowed", codes_of(ErrorKind::Forbidden), true;
    NotFound: "no such object, or one the caller may not see", codes_of(ErrorKind::NotFound), false;
    Conflict: "the object exists already, or its state forbids the change (revoked, expired, not waiting for approval, already with that owner), or the owner holds as many active keys as one person may", codes_of(ErrorKind::Conflict), false;
    PayloadTooLarge: "the body is larger than this operation accepts", vec!["payload_too_large"], false;
    RequestTimeout: "the body did not arrive in time; the connection is closed", vec!["request_timeout"], false;
    Unprocessable: "a field holds an invalid value, or a rule refuses it", codes_of(ErrorKind::Invalid), false;
    Internal: "an internal failure; logged, never detailed", codes_of(ErrorKind::Internal), false;
    Unavailable: "the database is unavailable; retry shortly", codes_of(ErrorKind::Unavailable), false;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_answer_lists_the_codes_of_its_kind_once() {
        let forbidden = codes_of(ErrorKind::Forbidden);
        assert_eq!(
            forbidden,
            [
                "insufficient_scope",
                "invalid_csrf_token",
                "scope_not_grantable",
                "key_creation_disabled"
            ]
        );
        assert!(codes_of(ErrorKind::NotFound).contains(&"key_not_found"));
        assert_eq!(codes_of(ErrorKind::Unavailable), ["database_unavailable"]);
        assert_eq!(
            described("no such object", &["a", "b"]),
            "no such object (a, b)"
        );
    }
}
