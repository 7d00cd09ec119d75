//! The errors every feature shares: [`StoreError`], the one way database
//! and blocking-pool failures enter them, and [`FeatureError`], what each
//! feature's own error enum says of itself (a stable code, a kind of
//! failure, the form field it is about) so the transport (`http::error`)
//! can answer it without knowing the feature.

/// What kind of failure a feature's error is, in terms that know nothing of
/// HTTP. Each transport maps it once: `http::error` to a status, the
/// console to a page, the CLI to one line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// A request that is malformed (400).
    Malformed,
    /// A value that is well formed but not acceptable (422).
    Invalid,
    /// The caller is not, or no longer, authenticated (401).
    Unauthenticated,
    /// The caller may not do this (403).
    Forbidden,
    /// No such object, or one the caller may not see (404).
    NotFound,
    /// The object exists already, or its state forbids the change (409).
    Conflict,
    /// Too many attempts; retry later (429).
    Throttled,
    /// keygate failed: logged with its cause, never detailed (500).
    Internal,
    /// The database cannot be reached right now; worth a retry (503).
    Unavailable,
}

/// A feature's error enum (`KeyError`, `AccountError`, ...): a stable
/// snake_case code, the kind of failure and, for a form's errors, the field
/// it belongs to. Its `Display` is the message the caller reads, so it
/// holds no secret and, for `Internal` and `Unavailable`, no more than a
/// summary (the cause is logged through `source()`).
pub trait FeatureError: std::error::Error + Send + Sync + 'static {
    fn code(&self) -> &'static str;

    fn kind(&self) -> ErrorKind;

    fn field(&self) -> Option<&'static str> {
        None
    }
}

/// A failure of the storage underneath a request: the database unavailable
/// (no connection to be had within the checkout timeout, a connection lost
/// under a query, SQLite's file locked past the busy timeout or unreadable),
/// a query that failed otherwise, or the blocking thread pool gone. Each
/// error type says once, in its `From<StoreError>`, what these mean to its
/// callers; [`from_store_errors!`] derives the conversions from the three
/// sources through it, so `?` works on each of them alike.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error(transparent)]
    Query(diesel::result::Error),
    #[error(transparent)]
    Blocking(#[from] actix_web::error::BlockingError),
}

impl From<diesel::r2d2::PoolError> for StoreError {
    fn from(error: diesel::r2d2::PoolError) -> Self {
        Self::Unavailable(error.to_string())
    }
}

impl From<diesel::result::Error> for StoreError {
    fn from(error: diesel::result::Error) -> Self {
        if means_unavailable(&error) {
            Self::Unavailable(error.to_string())
        } else {
            Self::Query(error)
        }
    }
}

/// Whether a query failed because the database could not be reached or
/// used at that moment, rather than because of the query: worth a retry,
/// so a 503 and not a 500. PostgreSQL: the connection dropped under the
/// query (the server stopped or restarted, the network went). SQLite: the
/// file locked by another process beyond the busy timeout, or unreadable
/// (its disk gone).
fn means_unavailable(error: &diesel::result::Error) -> bool {
    use diesel::result::{DatabaseErrorKind, Error};
    match error {
        Error::DatabaseError(
            DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand,
            _,
        )
        | Error::BrokenTransactionManager => true,
        Error::DatabaseError(DatabaseErrorKind::Unknown, info) => {
            let message = info.message();
            [
                "database is locked",
                "database table is locked",
                "disk I/O error",
                "unable to open database file",
                "server closed the connection unexpectedly",
                "no connection to the server",
            ]
            .iter()
            .any(|m| message.contains(m))
        }
        _ => false,
    }
}

/// `From` the pool's, diesel's and the blocking pool's errors for a type
/// that implements `From<StoreError>`.
macro_rules! from_store_errors {
    ($target:ty) => {
        impl From<diesel::r2d2::PoolError> for $target {
            fn from(error: diesel::r2d2::PoolError) -> Self {
                $crate::error::StoreError::from(error).into()
            }
        }

        impl From<diesel::result::Error> for $target {
            fn from(error: diesel::result::Error) -> Self {
                $crate::error::StoreError::from(error).into()
            }
        }

        impl From<actix_web::error::BlockingError> for $target {
            fn from(error: actix_web::error::BlockingError) -> Self {
                $crate::error::StoreError::from(error).into()
            }
        }
    };
}
pub(crate) use from_store_errors;

/// A database that cannot be reached is worth retrying; anything else is
/// keygate's failure.
impl FeatureError for StoreError {
    fn code(&self) -> &'static str {
        match self {
            Self::Unavailable(_) => "database_unavailable",
            Self::Query(_) | Self::Blocking(_) => "internal_error",
        }
    }

    fn kind(&self) -> ErrorKind {
        match self {
            Self::Unavailable(_) => ErrorKind::Unavailable,
            Self::Query(_) | Self::Blocking(_) => ErrorKind::Internal,
        }
    }
}
