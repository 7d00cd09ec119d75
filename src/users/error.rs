//! Why a change to people or roles was refused, in terms that know nothing
//! of HTTP: `crate::error` maps it to a response, once.

use crate::error::{ErrorKind, FeatureError, StoreError};
use crate::text::TextError;

#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("{text:?} is not a valid email address")]
    InvalidEmail { text: String },
    #[error(transparent)]
    InvalidName(TextError),
    #[error("a user with email {email} already exists")]
    UserExists { email: String },
    #[error("no user with email {email}")]
    NoUserWithEmail { email: String },
    #[error("no user with id {id}")]
    NoUserWithId { id: String },
    /// The change would leave nobody able to manage keygate over the API.
    #[error(
        "{email} is the last enabled admin: keygate needs at least one; make another user \
         an admin first (`keygate users add EMAIL --role admin`)"
    )]
    LastAdmin { email: String },
    #[error("no role named {name:?}")]
    RoleNotFound { name: String },
    #[error("{name:?} is not a valid role name (letters, digits, - and _)")]
    InvalidRoleName { name: String },
    #[error("scope {scope:?} is not registered by any API (see `keygate apis add`)")]
    UnknownScope { scope: String },
    #[error("the built-in role {name:?} cannot be changed")]
    BuiltinRole { name: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

crate::error::from_store_errors!(UserError);

impl UserError {
    /// Every code a `UserError` can have.
    pub const CODES: &[&str] = &[
        "invalid_email",
        "invalid_name",
        "user_exists",
        "user_not_found",
        "last_admin",
        "role_not_found",
        "invalid_role_name",
        "unknown_scope",
        "builtin_role",
        "database_unavailable",
        "internal_error",
    ];
}

impl FeatureError for UserError {
    fn code(&self) -> &'static str {
        match self {
            Self::InvalidEmail { .. } => "invalid_email",
            Self::InvalidName(_) => "invalid_name",
            Self::UserExists { .. } => "user_exists",
            Self::NoUserWithEmail { .. } | Self::NoUserWithId { .. } => "user_not_found",
            Self::LastAdmin { .. } => "last_admin",
            Self::RoleNotFound { .. } => "role_not_found",
            Self::InvalidRoleName { .. } => "invalid_role_name",
            Self::UnknownScope { .. } => "unknown_scope",
            Self::BuiltinRole { .. } => "builtin_role",
            Self::Store(e) => e.code(),
        }
    }

    fn kind(&self) -> ErrorKind {
        match self {
            Self::InvalidEmail { .. }
            | Self::InvalidName(_)
            | Self::InvalidRoleName { .. }
            | Self::UnknownScope { .. } => ErrorKind::Invalid,
            Self::UserExists { .. } | Self::LastAdmin { .. } => ErrorKind::Conflict,
            Self::NoUserWithEmail { .. }
            | Self::NoUserWithId { .. }
            | Self::RoleNotFound { .. } => ErrorKind::NotFound,
            Self::BuiltinRole { .. } => ErrorKind::Forbidden,
            Self::Store(e) => e.kind(),
        }
    }

    fn field(&self) -> Option<&'static str> {
        match self {
            Self::InvalidEmail { .. } | Self::UserExists { .. } => Some("email"),
            Self::InvalidName(_) | Self::InvalidRoleName { .. } => Some("name"),
            Self::RoleNotFound { .. } => Some("role"),
            Self::UnknownScope { .. } => Some("scopes"),
            _ => None,
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
        let name = || "x".to_owned();
        let text = crate::text::refuse_control_characters("invalid_name", "name", "\u{7}")
            .expect_err("a control character");
        let all = [
            UserError::InvalidEmail { text: name() },
            UserError::InvalidName(text),
            UserError::UserExists { email: name() },
            UserError::NoUserWithEmail { email: name() },
            UserError::NoUserWithId { id: name() },
            UserError::LastAdmin { email: name() },
            UserError::RoleNotFound { name: name() },
            UserError::InvalidRoleName { name: name() },
            UserError::UnknownScope { scope: name() },
            UserError::BuiltinRole { name: name() },
            UserError::Store(StoreError::Unavailable(name())),
            UserError::Store(StoreError::Query(diesel::result::Error::NotFound)),
        ];
        let mut produced: Vec<&str> = all.iter().map(FeatureError::code).collect();
        produced.dedup();
        assert_eq!(produced, UserError::CODES);
    }
}
