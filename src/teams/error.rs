//! Why a change to a team was refused, in terms that know nothing of HTTP:
//! `crate::error` maps it to a response, once.

use crate::error::{ErrorKind, FeatureError, StoreError};
use crate::text::TextError;

#[derive(Debug, thiserror::Error)]
pub enum TeamError {
    #[error(
        "{name:?} is not a valid team name: a lower-case letter or digit, then up to 62 \
         lower-case letters, digits and hyphens"
    )]
    InvalidName { name: String },
    #[error(transparent)]
    InvalidDescription(TextError),
    #[error("the description may hold at most {max} characters")]
    DescriptionLength { max: usize },
    #[error("{text:?} is not a valid email address")]
    InvalidNotify { text: String },
    #[error("a team named {name} already exists")]
    TeamExists { name: String },
    #[error("no team named {name:?} (see `keygate teams list`)")]
    TeamNotFound { name: String },
    #[error("no role named {name:?}")]
    RoleNotFound { name: String },
    #[error("no user with email {email}")]
    NoUserWithEmail { email: String },
    #[error("user {email} is disabled and cannot join a team")]
    MemberDisabled { email: String },
    #[error("{email} is not a member of team {team}")]
    NotAMember { email: String, team: String },
    #[error("give the role, the notify address, the description or disabled")]
    NothingToChange,
    #[error(transparent)]
    Store(#[from] StoreError),
}

crate::error::from_store_errors!(TeamError);

impl TeamError {
    /// Every code a `TeamError` can have, with its kind: what the
    /// management API's document lists. A test keeps it complete.
    pub const CODES: &[(ErrorKind, &'static str)] = &[
        (ErrorKind::Invalid, "invalid_team_name"),
        (ErrorKind::Invalid, "invalid_description"),
        (ErrorKind::Invalid, "invalid_email"),
        (ErrorKind::Conflict, "team_exists"),
        (ErrorKind::NotFound, "team_not_found"),
        (ErrorKind::Invalid, "role_not_found"),
        (ErrorKind::NotFound, "user_not_found"),
        (ErrorKind::Invalid, "user_disabled"),
        (ErrorKind::NotFound, "not_a_member"),
        (ErrorKind::Invalid, "nothing_to_change"),
        (ErrorKind::Unavailable, "database_unavailable"),
        (ErrorKind::Internal, "internal_error"),
    ];
}

impl FeatureError for TeamError {
    fn code(&self) -> &'static str {
        match self {
            Self::InvalidName { .. } => "invalid_team_name",
            Self::InvalidDescription(_) | Self::DescriptionLength { .. } => "invalid_description",
            Self::InvalidNotify { .. } => "invalid_email",
            Self::TeamExists { .. } => "team_exists",
            Self::TeamNotFound { .. } => "team_not_found",
            Self::RoleNotFound { .. } => "role_not_found",
            Self::NoUserWithEmail { .. } => "user_not_found",
            Self::MemberDisabled { .. } => "user_disabled",
            Self::NotAMember { .. } => "not_a_member",
            Self::NothingToChange => "nothing_to_change",
            Self::Store(e) => e.code(),
        }
    }

    fn kind(&self) -> ErrorKind {
        match self {
            Self::TeamExists { .. } => ErrorKind::Conflict,
            Self::TeamNotFound { .. } | Self::NoUserWithEmail { .. } | Self::NotAMember { .. } => {
                ErrorKind::NotFound
            }
            Self::Store(e) => e.kind(),
            _ => ErrorKind::Invalid,
        }
    }

    fn field(&self) -> Option<&'static str> {
        match self {
            Self::InvalidName { .. } | Self::TeamExists { .. } => Some("name"),
            Self::InvalidDescription(_) | Self::DescriptionLength { .. } => Some("description"),
            Self::InvalidNotify { .. } => Some("notify"),
            Self::RoleNotFound { .. } => Some("role"),
            Self::NoUserWithEmail { .. } | Self::MemberDisabled { .. } => Some("email"),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_code_list_is_every_code() {
        let x = || "x".to_owned();
        let text = crate::text::refuse_control_characters("invalid_description", "d", "\u{7}")
            .expect_err("a control character");
        let all = [
            TeamError::InvalidName { name: x() },
            TeamError::InvalidDescription(text),
            TeamError::InvalidNotify { text: x() },
            TeamError::TeamExists { name: x() },
            TeamError::TeamNotFound { name: x() },
            TeamError::RoleNotFound { name: x() },
            TeamError::NoUserWithEmail { email: x() },
            TeamError::MemberDisabled { email: x() },
            TeamError::NotAMember {
                email: x(),
                team: x(),
            },
            TeamError::NothingToChange,
            TeamError::Store(StoreError::Unavailable(x())),
            TeamError::Store(StoreError::Query(diesel::result::Error::NotFound)),
        ];
        let produced: Vec<(ErrorKind, &str)> = all.iter().map(|e| (e.kind(), e.code())).collect();
        assert_eq!(produced, TeamError::CODES);
    }
}
