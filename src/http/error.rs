//! How errors become answers, once: `AppError` for the management API, the
//! console and the CLI (a status, a stable snake_case code, a message), and
//! `OAuthError` for the OAuth endpoints (exactly the RFC 6749 / 7009 / 7662
//! / 8707 codes). Every feature's error ([`FeatureError`]) and a database
//! failure ([`StoreError`]) convert into them here.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;

use crate::error::{ErrorKind, FeatureError, StoreError, from_store_errors};
use crate::http::edge::BodyFailure;

/// An error with a stable snake_case code, a message for the caller, and for
/// internal failures a cause that is logged but never shown.
#[derive(Debug)]
pub struct AppError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// The form field a refusal is about, when a feature's error names one.
    pub field: Option<&'static str>,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl AppError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            field: None,
            source: None,
        }
    }

    /// Bad input: 422 with a code naming what is wrong.
    pub fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }

    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }

    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, code, message)
    }

    pub fn payload_too_large(message: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", message)
    }

    pub fn request_timeout(message: impl Into<String>) -> Self {
        Self::new(StatusCode::REQUEST_TIMEOUT, "request_timeout", message)
    }

    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            message,
        )
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    pub fn internal(cause: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self {
            source: Some(Box::new(cause)),
            ..Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                "internal server error",
            )
        }
    }

    pub fn unavailable(cause: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self {
            source: Some(Box::new(cause)),
            ..Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "database_unavailable",
                "the database is unavailable; try again shortly",
            )
        }
    }

    fn is_unavailable(&self) -> bool {
        self.status == StatusCode::SERVICE_UNAVAILABLE
    }

    pub fn is_internal(&self) -> bool {
        self.source.is_some()
    }
}

impl std::fmt::Display for AppError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.source {
            Some(cause) => write!(f, "{}: {}", self.message, cause),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for AppError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// The status of each kind of failure.
pub fn status_of(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::Malformed => StatusCode::BAD_REQUEST,
        ErrorKind::Invalid => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorKind::Unauthenticated => StatusCode::UNAUTHORIZED,
        ErrorKind::Forbidden => StatusCode::FORBIDDEN,
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::Conflict => StatusCode::CONFLICT,
        ErrorKind::Throttled => StatusCode::TOO_MANY_REQUESTS,
        ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
    }
}

/// Every feature's error becomes an `AppError` here, once.
impl<E: FeatureError> From<E> for AppError {
    fn from(error: E) -> Self {
        match error.kind() {
            ErrorKind::Internal => Self::internal(error),
            ErrorKind::Unavailable => Self::unavailable(error),
            kind => Self {
                field: error.field(),
                ..Self::new(status_of(kind), error.code(), error.to_string())
            },
        }
    }
}

/// A body that could not be read: 413, 408 or 400, each the client's doing.
impl From<BodyFailure> for AppError {
    fn from(failure: BodyFailure) -> Self {
        failure.log();
        let message = failure.to_string();
        match failure {
            BodyFailure::TooLarge => Self::payload_too_large(message),
            BodyFailure::TimedOut => Self::request_timeout(message),
            BodyFailure::Malformed(_) => Self::bad_request(message),
        }
    }
}

from_store_errors!(AppError);

impl ResponseError for AppError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status);
        if self.is_unavailable() {
            // The pool logs the outage itself, once (`db::Reachability`).
            if let Some(cause) = &self.source {
                tracing::debug!(error = %cause, code = self.code, "request failed");
            }
            response.insert_header((header::RETRY_AFTER, RETRY_AFTER_UNAVAILABLE));
        } else if let Some(cause) = &self.source {
            tracing::error!(error = %cause, code = self.code, "request failed");
        }
        response.json(json!({ "error": self.code, "message": self.message }))
    }
}

/// `Retry-After` of a 503 (RFC 9110 §10.2.3), in seconds: the pool finds a
/// database that is back within half a second, so a client may try again
/// in one.
const RETRY_AFTER_UNAVAILABLE: &str = "1";

/// RFC 6749 §5.2 (and RFC 7009, 8707, 6585) error responses.
#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    #[error("invalid_request: {0}")]
    InvalidRequest(String),
    /// Never says why: wrong, unknown, expired, revoked and disabled look alike.
    #[error("invalid_client")]
    InvalidClient,
    #[error("unauthorized_client: {0}")]
    UnauthorizedClient(String),
    /// A grant (a token exchange's subject token) not accepted; the
    /// description never says which check failed.
    #[error("invalid_grant: {0}")]
    InvalidGrant(String),
    #[error("unsupported_grant_type")]
    UnsupportedGrantType(String),
    #[error("unsupported_token_type")]
    UnsupportedTokenType,
    #[error("invalid_scope: {0}")]
    InvalidScope(String),
    #[error("invalid_target: {0}")]
    InvalidTarget(String),
    #[error("too_many_requests")]
    TooManyRequests { retry_after_secs: i64 },
    #[error("method_not_allowed")]
    MethodNotAllowed { allow: &'static str },
    /// `invalid_request` with 413, 408 or 400: the body could not be read.
    #[error("invalid_request: {0}")]
    UnreadableBody(BodyFailure),
    #[error("server_error")]
    ServerError(String),
    #[error("temporarily_unavailable")]
    TemporarilyUnavailable(String),
}

impl OAuthError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidRequest(_) | Self::MethodNotAllowed { .. } | Self::UnreadableBody(_) => {
                "invalid_request"
            }
            Self::InvalidClient => "invalid_client",
            Self::UnauthorizedClient(_) => "unauthorized_client",
            Self::InvalidGrant(_) => "invalid_grant",
            Self::UnsupportedGrantType(_) => "unsupported_grant_type",
            Self::UnsupportedTokenType => "unsupported_token_type",
            Self::InvalidScope(_) => "invalid_scope",
            Self::InvalidTarget(_) => "invalid_target",
            Self::TooManyRequests { .. } => "too_many_requests",
            Self::ServerError(_) => "server_error",
            Self::TemporarilyUnavailable(_) => "temporarily_unavailable",
        }
    }

    fn description(&self) -> Option<String> {
        match self {
            Self::InvalidRequest(d)
            | Self::UnauthorizedClient(d)
            | Self::InvalidGrant(d)
            | Self::InvalidScope(d)
            | Self::InvalidTarget(d) => Some(d.clone()),
            Self::UnsupportedGrantType(grant) => Some(format!(
                "grant type {grant:?} is not supported; use client_credentials"
            )),
            Self::InvalidClient => Some("client authentication failed".into()),
            Self::MethodNotAllowed { allow } => Some(format!("use {allow}")),
            Self::UnreadableBody(failure) => Some(failure.to_string()),
            Self::TooManyRequests { .. } => Some("too many failed attempts; retry later".into()),
            Self::UnsupportedTokenType | Self::ServerError(_) | Self::TemporarilyUnavailable(_) => {
                None
            }
        }
    }
}

/// RFC 6749 §5.2 has `temporarily_unavailable` for a database that cannot
/// be reached and `server_error` for the rest.
impl From<StoreError> for OAuthError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Unavailable(_) => Self::TemporarilyUnavailable(error.to_string()),
            StoreError::Query(_) | StoreError::Blocking(_) => Self::ServerError(error.to_string()),
        }
    }
}

from_store_errors!(OAuthError);

impl ResponseError for OAuthError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::InvalidClient => StatusCode::UNAUTHORIZED,
            Self::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Self::UnreadableBody(BodyFailure::TooLarge) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnreadableBody(BodyFailure::TimedOut) => StatusCode::REQUEST_TIMEOUT,
            Self::ServerError(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::TemporarilyUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            Self::ServerError(cause) => tracing::error!(error = %cause, "oauth request failed"),
            // An outage is logged by the pool, once, not by every request
            // it refuses (`db::Reachability`).
            Self::TemporarilyUnavailable(cause) => {
                tracing::debug!(error = %cause, "oauth request failed")
            }
            _ => {}
        }
        let mut body = json!({ "error": self.code() });
        if let Some(description) = self.description() {
            body["error_description"] = description.into();
        }
        // `Cache-Control: no-store` is added by the endpoint's resource
        // (`oauth::post_only`), to errors and successes alike.
        let mut response = HttpResponse::build(self.status_code());
        match self {
            Self::InvalidClient => {
                response.insert_header((header::WWW_AUTHENTICATE, r#"Basic realm="keygate""#));
            }
            Self::TooManyRequests { retry_after_secs } => {
                if let Ok(value) = HeaderValue::from_str(&(*retry_after_secs).max(1).to_string()) {
                    response.insert_header((header::RETRY_AFTER, value));
                }
            }
            Self::MethodNotAllowed { allow } => {
                response.insert_header((header::ALLOW, *allow));
            }
            Self::TemporarilyUnavailable(_) => {
                response.insert_header((header::RETRY_AFTER, RETRY_AFTER_UNAVAILABLE));
            }
            _ => {}
        }
        response.json(body)
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use diesel::result::{DatabaseErrorKind, Error};

    fn database_error(kind: DatabaseErrorKind, message: &str) -> Error {
        Error::DatabaseError(kind, Box::new(message.to_owned()))
    }

    #[test]
    fn a_lost_or_locked_database_is_unavailable_and_a_bad_query_is_not() {
        for unavailable in [
            database_error(
                DatabaseErrorKind::ClosedConnection,
                "server closed the connection unexpectedly",
            ),
            database_error(DatabaseErrorKind::UnableToSendCommand, "no connection"),
            database_error(DatabaseErrorKind::Unknown, "database is locked"),
            database_error(DatabaseErrorKind::Unknown, "disk I/O error"),
            Error::BrokenTransactionManager,
        ] {
            let error = StoreError::from(unavailable);
            assert!(matches!(error, StoreError::Unavailable(_)), "{error:?}");
            assert_eq!(
                AppError::from(error).status,
                StatusCode::SERVICE_UNAVAILABLE
            );
        }
        for failed in [
            database_error(DatabaseErrorKind::UniqueViolation, "duplicate key"),
            database_error(DatabaseErrorKind::Unknown, "no such column: x"),
            Error::NotFound,
        ] {
            let error = StoreError::from(failed);
            assert!(matches!(error, StoreError::Query(_)), "{error:?}");
            assert!(matches!(
                OAuthError::from(error),
                OAuthError::ServerError(_)
            ));
        }
    }

    #[derive(Debug, thiserror::Error)]
    enum Example {
        #[error("name too long")]
        LongName,
        #[error("failed")]
        Broke(#[source] std::io::Error),
    }

    impl FeatureError for Example {
        fn code(&self) -> &'static str {
            match self {
                Self::LongName => "invalid_name",
                Self::Broke(_) => "broke",
            }
        }

        fn kind(&self) -> ErrorKind {
            match self {
                Self::LongName => ErrorKind::Invalid,
                Self::Broke(_) => ErrorKind::Internal,
            }
        }

        fn field(&self) -> Option<&'static str> {
            matches!(self, Self::LongName).then_some("name")
        }
    }

    #[test]
    fn a_feature_error_keeps_its_code_and_field_and_an_internal_one_says_nothing() {
        let refusal = AppError::from(Example::LongName);
        assert_eq!(refusal.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            (refusal.code, refusal.field),
            ("invalid_name", Some("name"))
        );
        assert_eq!(refusal.message, "name too long");
        assert!(!refusal.is_internal());

        let failure = AppError::from(Example::Broke(std::io::Error::other("disk on fire")));
        assert_eq!(failure.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!((failure.code, failure.field), ("internal_error", None));
        assert_eq!(failure.message, "internal server error");
        assert!(failure.is_internal());
    }

    #[test]
    fn a_503_says_when_to_retry_and_shows_no_cause() {
        let response = OAuthError::from(StoreError::Unavailable(
            "connection to server at 127.0.0.1 failed".into(),
        ))
        .error_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers().get(header::RETRY_AFTER).unwrap(), "1");
        let response = AppError::from(StoreError::Unavailable("x".into())).error_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers().get(header::RETRY_AFTER).unwrap(), "1");
    }
}
