//! One-time links that let a person set a password: invitations and
//! password resets. A link is `{issuer}/set-password?token=TOKEN`; the token
//! is 256 random bits, URL-safe, and only its keyed hash is stored.

use std::fmt;

use chrono::{DateTime, Utc};
use zeroize::Zeroizing;

use super::token::random_token;
use crate::users::User;

/// The purpose label of link token hashes.
pub(super) const HASH_PURPOSE: &str = "link";

/// What a link is for; stored as its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkPurpose {
    /// A new person sets their first password.
    Invite,
    /// A person who forgot their password sets a new one.
    Reset,
}

impl LinkPurpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Invite => "invite",
            Self::Reset => "reset",
        }
    }

    pub(super) fn from_stored(text: &str) -> Self {
        match text {
            "invite" => Self::Invite,
            _ => Self::Reset,
        }
    }
}

/// A link's token in clear: only in the email (and, when mail goes to
/// files, on the inviter's screen). Wiped on drop, never printed.
pub struct LinkToken(Zeroizing<String>);

impl LinkToken {
    pub(super) fn generate() -> Self {
        Self(random_token())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for LinkToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LinkToken(redacted)")
    }
}

/// The page that takes a link: `{issuer}/set-password?token=TOKEN`.
pub const SET_PASSWORD_PATH: &str = "/set-password";

/// A link's full URL. Holds the token, so it has the token's care: no
/// `Display`, a redacted `Debug`.
pub struct LinkUrl(Zeroizing<String>);

impl LinkUrl {
    pub(super) fn new(issuer: &str, token: &LinkToken) -> Self {
        // The token is base64url: nothing in it needs escaping in a query.
        Self(Zeroizing::new(format!(
            "{issuer}{SET_PASSWORD_PATH}?token={}",
            token.expose()
        )))
    }

    /// The URL itself, for the one place it is shown.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for LinkUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LinkUrl(redacted)")
    }
}

/// An invitation just made: the link (queued by email already) and the person.
#[derive(Debug)]
pub struct InviteLink {
    pub url: LinkUrl,
    pub expires_at: DateTime<Utc>,
    pub user: User,
    /// The person did not exist before this invitation.
    pub created_user: bool,
}

/// What a live link is for, to render the set-password page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkInfo {
    pub email: String,
    pub purpose: LinkPurpose,
    pub expires_at: DateTime<Utc>,
}
