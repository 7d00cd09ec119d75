//! Why a change to a registered API was refused, in terms that know
//! nothing of HTTP: `crate::error` maps it to a response, once.

use crate::error::{ErrorKind, FeatureError, StoreError};
use crate::text::TextError;

#[derive(Debug, thiserror::Error)]
pub enum ResourceServerError {
    #[error("an API needs a name")]
    MissingName,
    #[error(transparent)]
    InvalidName(TextError),
    /// A scope in keygate's own namespace (`keygate:...`), which no API
    /// may define.
    #[error("{scope:?} is reserved: scopes beginning with \"keygate:\" are keygate's own")]
    ReservedScope { scope: String },
    /// The issuer's own URL, which names keygate, not an API.
    #[error("{identifier} is this keygate's issuer, not an API")]
    IssuerIdentifier { identifier: String },
    #[error("an API with identifier {identifier} already exists")]
    ApiExists { identifier: String },
    #[error("no API with identifier {identifier}")]
    ApiNotFound { identifier: String },
    /// An approval scope the API does not define.
    #[error("scope {scope:?} is not one of this API's scopes, so it cannot need approval")]
    ApprovalScopeUndefined { scope: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

crate::error::from_store_errors!(ResourceServerError);

impl ResourceServerError {
    /// Every code a `ResourceServerError` can have.
    pub const CODES: &[&str] = &[
        "invalid_name",
        "reserved_scope",
        "invalid_identifier",
        "api_exists",
        "api_not_found",
        "unknown_scope",
        "database_unavailable",
        "internal_error",
    ];
}

impl FeatureError for ResourceServerError {
    fn code(&self) -> &'static str {
        match self {
            Self::MissingName | Self::InvalidName(_) => "invalid_name",
            Self::ReservedScope { .. } => "reserved_scope",
            Self::IssuerIdentifier { .. } => "invalid_identifier",
            Self::ApiExists { .. } => "api_exists",
            Self::ApiNotFound { .. } => "api_not_found",
            Self::ApprovalScopeUndefined { .. } => "unknown_scope",
            Self::Store(e) => e.code(),
        }
    }

    fn kind(&self) -> ErrorKind {
        match self {
            Self::MissingName
            | Self::InvalidName(_)
            | Self::ReservedScope { .. }
            | Self::ApprovalScopeUndefined { .. }
            | Self::IssuerIdentifier { .. } => ErrorKind::Invalid,
            Self::ApiExists { .. } => ErrorKind::Conflict,
            Self::ApiNotFound { .. } => ErrorKind::NotFound,
            Self::Store(e) => e.kind(),
        }
    }

    fn field(&self) -> Option<&'static str> {
        match self {
            Self::MissingName | Self::InvalidName(_) => Some("name"),
            Self::ReservedScope { .. } => Some("scopes"),
            Self::ApprovalScopeUndefined { .. } => Some("approval_scopes"),
            Self::ApiExists { .. } | Self::IssuerIdentifier { .. } => Some("identifier"),
            Self::ApiNotFound { .. } | Self::Store(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One of each variant: its code is listed, and every listed code is
    /// one of them.
    #[test]
    fn the_code_list_is_every_code() {
        let text = crate::text::refuse_control_characters("invalid_name", "name", "\u{7}")
            .expect_err("a control character");
        let all = [
            ResourceServerError::MissingName,
            ResourceServerError::InvalidName(text),
            ResourceServerError::ReservedScope { scope: "x".into() },
            ResourceServerError::IssuerIdentifier {
                identifier: "x".into(),
            },
            ResourceServerError::ApiExists {
                identifier: "x".into(),
            },
            ResourceServerError::ApiNotFound {
                identifier: "x".into(),
            },
            ResourceServerError::ApprovalScopeUndefined { scope: "x".into() },
            ResourceServerError::Store(StoreError::Unavailable("x".into())),
            ResourceServerError::Store(StoreError::Query(diesel::result::Error::NotFound)),
        ];
        let mut produced: Vec<&str> = all.iter().map(FeatureError::code).collect();
        produced.dedup();
        assert_eq!(produced, ResourceServerError::CODES);
    }
}
