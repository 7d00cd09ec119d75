//! Why the keys service refuses, in words that know nothing of HTTP: each
//! refusal has a stable code (the management API's `error`), a kind (its
//! status, chosen once in `crate::error`) and, for a form's refusals, the
//! console field it belongs to.

use chrono::{DateTime, Utc};

use super::limits::{
    MAX_DESCRIPTION_LEN, MAX_GRACE_DAYS, MAX_NAME_LEN, MAX_NETWORKS, MAX_TOKENS_PER_MINUTE,
};
use crate::duration::HumanDuration;
use crate::error::{ErrorKind, FeatureError, StoreError, from_store_errors};
use crate::mail::outbox::QueueError;
use crate::scope::Audience;
use crate::time::rfc3339;

/// A text a person gives a key that may not hold control characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextField {
    Name,
    Description,
    Reason,
}

impl TextField {
    fn in_words(self) -> &'static str {
        match self {
            Self::Name => "key's name",
            Self::Description => "description",
            Self::Reason => "reason",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("a key needs a name of 1 to {MAX_NAME_LEN} characters")]
    NameLength,
    #[error("the description may hold at most {MAX_DESCRIPTION_LEN} characters")]
    DescriptionLength,
    #[error("the reason is too long")]
    ReasonLength,
    #[error(
        "the {} may not contain control characters (found U+{:04X})",
        .field.in_words(),
        u32::from(*.found)
    )]
    ControlCharacter { field: TextField, found: char },
    #[error("expiry {asked} is past the configured maximum of {max} (KEYGATE_KEY_MAX_LIFETIME)")]
    ExpiryTooLong {
        asked: HumanDuration,
        max: HumanDuration,
    },
    /// An expiry that is not a duration; the text says which and why.
    #[error("{0}")]
    InvalidExpiry(String),
    /// A grace period that is not a duration; the text says which and why.
    #[error("{0}")]
    InvalidGrace(String),
    #[error("grace {0} is longer than the maximum of {MAX_GRACE_DAYS} days")]
    GraceTooLong(HumanDuration),
    #[error(
        "grace {grace} would outlive the key, which expires at {}: \
         the old secret may work at most until then",
        rfc3339(*.expires_at)
    )]
    GraceOutlivesKey {
        grace: HumanDuration,
        expires_at: DateTime<Utc>,
    },
    /// A scope that is not a scope token; the text names it.
    #[error("{0}")]
    InvalidScope(String),
    #[error("tick at least one scope")]
    NoScopes,
    #[error("scope {0:?} is not registered by any API (see `keygate apis add`)")]
    UnknownScope(String),
    #[error("role {role:?} of {owner} may not grant scope {scope:?}")]
    ScopeNotGrantable {
        scope: String,
        role: String,
        owner: String,
    },
    /// An audience that is not an absolute URI; the text says why.
    #[error("{0}")]
    InvalidAudience(String),
    #[error("audience {0} is not a registered API (see `keygate apis add`)")]
    UnknownAudience(Audience),
    #[error(
        "scope {scope:?} belongs to none of the audiences given ({given}): \
         add the audience of the API that defines it (see `keygate apis list`), \
         or give no audience and let the scopes decide"
    )]
    ScopeOutsideAudience { scope: String, given: String },
    /// Holds the item as typed, already redacted if it could be a secret.
    #[error("{0:?} is not an IP address or network (such as 10.0.0.0/8 or 2001:db8::/32)")]
    InvalidNetwork(String),
    #[error("a key may list at most {MAX_NETWORKS} networks")]
    TooManyNetworks,
    #[error("the issuance limit must be 1 to {MAX_TOKENS_PER_MINUTE} tokens per minute")]
    TokenLimitOutOfRange,
    #[error(
        "the issuance limit must be a number of tokens per minute (1 to {MAX_TOKENS_PER_MINUTE}) or \"none\""
    )]
    TokenLimitNotANumber,
    #[error("give the allowed networks, the issuance limit or both")]
    NothingToChange,
    #[error("no user with email {0}")]
    OwnerNotFound(String),
    #[error("no team named {0:?} (see `keygate teams list`)")]
    TeamNotFound(String),
    #[error("team {0} is disabled")]
    TeamDisabled(String),
    #[error("key {client_id} already belongs to {owner}")]
    SameOwner { client_id: String, owner: String },
    #[error(
        "{to} may not hold key {client_id}: role {role:?} may not grant {}",
        .scopes.join(", ")
    )]
    TransferNotGrantable {
        client_id: String,
        to: String,
        role: String,
        scopes: Vec<String>,
    },
    #[error("key {0} is not waiting for approval")]
    NotPending(String),
    /// Approving, denying and managing teams are for administrators.
    #[error("only an administrator may do this")]
    AdminOnly,
    /// A transfer that is part of a larger change (disabling a person)
    /// was refused: the change is undone, and the refusal names the key.
    #[error("key {client_id} ({name}): {source}")]
    InTransfer {
        client_id: String,
        name: String,
        source: Box<KeyError>,
    },
    #[error(transparent)]
    User(#[from] crate::users::UserError),
    #[error("user {0} is disabled")]
    OwnerDisabled(String),
    #[error("user {0} may not create keys: an administrator switched key creation off")]
    CreationDisabled(String),
    #[error(
        "{owner} already holds {active} active {}, the most one person may hold \
         (KEYGATE_MAX_KEYS_PER_USER={max}): revoke one first",
        if *.max == 1 { "key" } else { "keys" }
    )]
    LimitReached {
        owner: String,
        active: i64,
        max: u32,
    },
    /// A caller who may manage only their own keys named another owner.
    #[error(
        "only an administrator may manage the keys of another person or of a team one does \
         not belong to"
    )]
    ForeignOwner,
    /// No such key, or one the caller may not see: the same answer.
    #[error("no key with client ID {0}")]
    NotFound(String),
    #[error("key {0} is revoked; revocation cannot be undone")]
    Revoked(String),
    #[error("key {0} is already revoked")]
    AlreadyRevoked(String),
    #[error("key {0} has expired; create a new key")]
    Expired(String),
    #[error(
        "key {0} has no secret: its client signs with a private key or is a federation's \
         (change its public keys with `keys set --public-key`)"
    )]
    NoSecret(String),
    /// Public keys for a key whose client authenticates otherwise.
    #[error(
        "key {0} authenticates with a secret or a federation, not private_key_jwt: public keys \
         are only for keys created with a public key"
    )]
    NotPrivateKeyJwt(String),
    #[error("invalid public key: {0}")]
    InvalidPublicKey(#[from] super::public_keys::PublicKeyError),
    #[error("hashing the secret failed: {0}")]
    Hash(argon2::password_hash::Error),
    #[error(transparent)]
    Email(#[from] QueueError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

from_store_errors!(KeyError);

impl KeyError {
    /// Every code a `KeyError` can have, by kind: what the management API's
    /// document lists (`crate::http::mgmt`). A test keeps it complete.
    pub const CODES: &[(ErrorKind, &'static str)] = &[
        (ErrorKind::Invalid, "invalid_name"),
        (ErrorKind::Invalid, "invalid_description"),
        (ErrorKind::Invalid, "invalid_reason"),
        (ErrorKind::Invalid, "expiry_too_long"),
        (ErrorKind::Invalid, "invalid_duration"),
        (ErrorKind::Invalid, "grace_too_long"),
        (ErrorKind::Invalid, "invalid_scope"),
        (ErrorKind::Invalid, "no_scopes"),
        (ErrorKind::Invalid, "unknown_scope"),
        (ErrorKind::Forbidden, "scope_not_grantable"),
        (ErrorKind::Invalid, "invalid_audience"),
        (ErrorKind::Invalid, "unknown_audience"),
        (ErrorKind::Invalid, "scope_outside_audience"),
        (ErrorKind::Invalid, "invalid_network"),
        (ErrorKind::Invalid, "invalid_token_limit"),
        (ErrorKind::Invalid, "nothing_to_change"),
        (ErrorKind::NotFound, "user_not_found"),
        (ErrorKind::NotFound, "team_not_found"),
        (ErrorKind::Invalid, "team_disabled"),
        (ErrorKind::Conflict, "same_owner"),
        (ErrorKind::Conflict, "key_not_pending"),
        (ErrorKind::Invalid, "owner_disabled"),
        (ErrorKind::Forbidden, "key_creation_disabled"),
        (ErrorKind::Conflict, "key_limit_reached"),
        (ErrorKind::Forbidden, "insufficient_scope"),
        (ErrorKind::NotFound, "key_not_found"),
        (ErrorKind::Conflict, "key_revoked"),
        (ErrorKind::Conflict, "key_expired"),
        (ErrorKind::Conflict, "key_has_no_secret"),
        (ErrorKind::Conflict, "key_not_private_key_jwt"),
        (ErrorKind::Invalid, "invalid_public_key"),
        (ErrorKind::Internal, "internal_error"),
        (ErrorKind::Unavailable, "database_unavailable"),
    ];
}

impl FeatureError for KeyError {
    fn code(&self) -> &'static str {
        match self {
            Self::NameLength
            | Self::ControlCharacter {
                field: TextField::Name,
                ..
            } => "invalid_name",
            Self::DescriptionLength
            | Self::ControlCharacter {
                field: TextField::Description,
                ..
            } => "invalid_description",
            Self::ReasonLength
            | Self::ControlCharacter {
                field: TextField::Reason,
                ..
            } => "invalid_reason",
            Self::ExpiryTooLong { .. } => "expiry_too_long",
            Self::InvalidExpiry(_) | Self::InvalidGrace(_) => "invalid_duration",
            Self::GraceTooLong(_) | Self::GraceOutlivesKey { .. } => "grace_too_long",
            Self::InvalidScope(_) => "invalid_scope",
            Self::NoScopes => "no_scopes",
            Self::UnknownScope(_) => "unknown_scope",
            Self::ScopeNotGrantable { .. } => "scope_not_grantable",
            Self::InvalidAudience(_) => "invalid_audience",
            Self::UnknownAudience(_) => "unknown_audience",
            Self::ScopeOutsideAudience { .. } => "scope_outside_audience",
            Self::InvalidNetwork(_) | Self::TooManyNetworks => "invalid_network",
            Self::TokenLimitOutOfRange | Self::TokenLimitNotANumber => "invalid_token_limit",
            Self::NothingToChange => "nothing_to_change",
            Self::OwnerNotFound(_) => "user_not_found",
            Self::TeamNotFound(_) => "team_not_found",
            Self::TeamDisabled(_) => "team_disabled",
            Self::SameOwner { .. } => "same_owner",
            Self::TransferNotGrantable { .. } => "scope_not_grantable",
            Self::NotPending(_) => "key_not_pending",
            Self::AdminOnly => "insufficient_scope",
            Self::InTransfer { source, .. } => source.code(),
            Self::User(e) => e.code(),
            Self::OwnerDisabled(_) => "owner_disabled",
            Self::CreationDisabled(_) => "key_creation_disabled",
            Self::LimitReached { .. } => "key_limit_reached",
            Self::ForeignOwner => "insufficient_scope",
            Self::NotFound(_) => "key_not_found",
            Self::Revoked(_) | Self::AlreadyRevoked(_) => "key_revoked",
            Self::Expired(_) => "key_expired",
            Self::NoSecret(_) => "key_has_no_secret",
            Self::NotPrivateKeyJwt(_) => "key_not_private_key_jwt",
            Self::InvalidPublicKey(_) => "invalid_public_key",
            Self::Hash(_) => "internal_error",
            Self::Email(e) => e.code(),
            Self::Store(e) => e.code(),
        }
    }

    fn kind(&self) -> ErrorKind {
        match self {
            Self::ScopeNotGrantable { .. }
            | Self::TransferNotGrantable { .. }
            | Self::CreationDisabled(_)
            | Self::ForeignOwner
            | Self::AdminOnly => ErrorKind::Forbidden,
            Self::OwnerNotFound(_) | Self::TeamNotFound(_) | Self::NotFound(_) => {
                ErrorKind::NotFound
            }
            Self::InTransfer { source, .. } => source.kind(),
            Self::User(e) => e.kind(),
            Self::SameOwner { .. }
            | Self::NotPending(_)
            | Self::LimitReached { .. }
            | Self::Revoked(_)
            | Self::AlreadyRevoked(_)
            | Self::Expired(_)
            | Self::NoSecret(_)
            | Self::NotPrivateKeyJwt(_) => ErrorKind::Conflict,
            Self::Hash(_) => ErrorKind::Internal,
            Self::Email(e) => e.kind(),
            Self::Store(e) => e.kind(),
            _ => ErrorKind::Invalid,
        }
    }

    /// The console form field a refusal is shown beside; `None`: above the form.
    fn field(&self) -> Option<&'static str> {
        match self {
            Self::NameLength
            | Self::ControlCharacter {
                field: TextField::Name,
                ..
            } => Some("name"),
            Self::DescriptionLength
            | Self::ControlCharacter {
                field: TextField::Description,
                ..
            } => Some("description"),
            Self::ReasonLength
            | Self::ControlCharacter {
                field: TextField::Reason,
                ..
            } => Some("reason"),
            Self::ExpiryTooLong { .. } | Self::InvalidExpiry(_) => Some("expires_in"),
            Self::InvalidGrace(_) | Self::GraceTooLong(_) | Self::GraceOutlivesKey { .. } => {
                Some("grace")
            }
            Self::InvalidScope(_)
            | Self::NoScopes
            | Self::UnknownScope(_)
            | Self::ScopeNotGrantable { .. } => Some("scopes"),
            Self::InvalidAudience(_)
            | Self::UnknownAudience(_)
            | Self::ScopeOutsideAudience { .. } => Some("audience"),
            Self::InvalidNetwork(_) | Self::TooManyNetworks => Some("allowed_networks"),
            Self::TokenLimitOutOfRange | Self::TokenLimitNotANumber => {
                Some("max_tokens_per_minute")
            }
            // Who is to hold the key: the create form's owner, the
            // transfer form's new owner.
            Self::OwnerNotFound(_)
            | Self::OwnerDisabled(_)
            | Self::TeamNotFound(_)
            | Self::TeamDisabled(_)
            | Self::SameOwner { .. }
            | Self::TransferNotGrantable { .. }
            | Self::ForeignOwner => Some("owner"),
            Self::InvalidPublicKey(_) => Some("public_key"),
            _ => None,
        }
    }
}

/// Refuses text holding a control character or a bidirectional control
/// ([`crate::text::is_refused`]): an ESC or BEL in a key's name would drive
/// the terminal of whoever lists it, an override would make it read as
/// another name.
pub(super) fn refuse_control_characters(field: TextField, text: &str) -> Result<(), KeyError> {
    match crate::text::first_refused(text) {
        None => Ok(()),
        Some(found) => Err(KeyError::ControlCharacter { field, found }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::error::AppError;

    fn every_variant() -> Vec<KeyError> {
        let d = HumanDuration::from_secs(60);
        let s = || String::from("x");
        let mut all = vec![
            KeyError::NameLength,
            KeyError::DescriptionLength,
            KeyError::ReasonLength,
            KeyError::ExpiryTooLong { asked: d, max: d },
            KeyError::InvalidExpiry(s()),
            KeyError::InvalidGrace(s()),
            KeyError::GraceTooLong(d),
            KeyError::GraceOutlivesKey {
                grace: d,
                expires_at: Utc::now(),
            },
            KeyError::InvalidScope(s()),
            KeyError::NoScopes,
            KeyError::UnknownScope(s()),
            KeyError::ScopeNotGrantable {
                scope: s(),
                role: s(),
                owner: s(),
            },
            KeyError::InvalidAudience(s()),
            KeyError::ScopeOutsideAudience {
                scope: s(),
                given: s(),
            },
            KeyError::InvalidNetwork(s()),
            KeyError::TooManyNetworks,
            KeyError::TokenLimitOutOfRange,
            KeyError::TokenLimitNotANumber,
            KeyError::NothingToChange,
            KeyError::OwnerNotFound(s()),
            KeyError::OwnerDisabled(s()),
            KeyError::TeamNotFound(s()),
            KeyError::TeamDisabled(s()),
            KeyError::SameOwner {
                client_id: s(),
                owner: s(),
            },
            KeyError::TransferNotGrantable {
                client_id: s(),
                to: s(),
                role: s(),
                scopes: vec![s()],
            },
            KeyError::NotPending(s()),
            KeyError::AdminOnly,
            KeyError::CreationDisabled(s()),
            KeyError::LimitReached {
                owner: s(),
                active: 1,
                max: 1,
            },
            KeyError::ForeignOwner,
            KeyError::NotFound(s()),
            KeyError::Revoked(s()),
            KeyError::AlreadyRevoked(s()),
            KeyError::Expired(s()),
            KeyError::NoSecret(s()),
            KeyError::NotPrivateKeyJwt(s()),
            KeyError::InvalidPublicKey(super::super::public_keys::PublicKeyError(s())),
            KeyError::Hash(argon2::password_hash::Error::Algorithm),
            KeyError::Store(StoreError::Unavailable(s())),
        ];
        if let Ok(audience) = Audience::parse("https://api.example.com") {
            all.push(KeyError::UnknownAudience(audience));
        }
        for field in [TextField::Name, TextField::Description, TextField::Reason] {
            all.push(KeyError::ControlCharacter {
                field,
                found: '\u{1b}',
            });
        }
        all
    }

    #[test]
    fn every_code_is_listed_with_its_kind_and_every_listed_code_occurs() {
        let all = every_variant();
        for error in &all {
            assert!(
                KeyError::CODES.contains(&(error.kind(), error.code())),
                "{error:?} is not in KeyError::CODES"
            );
        }
        for listed in KeyError::CODES {
            assert!(
                listed.1 == "internal_error" || all.iter().any(|e| (e.kind(), e.code()) == *listed),
                "{listed:?} is listed but never produced"
            );
        }
    }

    #[test]
    fn a_refusal_keeps_its_message_and_names_its_field() {
        let error = AppError::from(KeyError::ControlCharacter {
            field: TextField::Name,
            found: '\u{7}',
        });
        assert_eq!((error.code, error.field), ("invalid_name", Some("name")));
        assert_eq!(
            error.message,
            "the key's name may not contain control characters (found U+0007)"
        );
        let limit = KeyError::LimitReached {
            owner: "a@example.com".into(),
            active: 1,
            max: 1,
        };
        assert_eq!(
            limit.to_string(),
            "a@example.com already holds 1 active key, the most one person may hold \
             (KEYGATE_MAX_KEYS_PER_USER=1): revoke one first"
        );
    }
}
