//! Why an account operation failed, in terms that know nothing of HTTP.
//! Each operation has its own enum, naming only the outcomes it can have;
//! `crate::error` maps any of them to a response, once, and the console
//! answers each refusal on its page.

use super::password::{HashingFailure, PasswordProblem};
use crate::error::{ErrorKind, FeatureError, StoreError, from_store_errors};
use crate::mail::outbox::QueueError;
use crate::users::UserError;

/// The one message of every refused sign-in.
pub const REFUSED_MESSAGE: &str = "wrong email address or password";

/// Why an invitation was not made.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// The person exists and may not be invited (again); `hint` says what
    /// to do instead.
    #[error("a user with email {email} already exists{hint}")]
    UserExists { email: String, hint: &'static str },
    #[error("{email} is disabled: enable them before inviting them again")]
    UserDisabled { email: String },
    /// The address or the new person's name or role was refused.
    #[error(transparent)]
    User(#[from] UserError),
    #[error(transparent)]
    Mail(#[from] QueueError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why a sign-in failed.
#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    /// Wrong password, unknown address, disabled person, no password yet:
    /// one answer for all (the audit log says which).
    #[error("{REFUSED_MESSAGE}")]
    Refused,
    /// Too many failures for this account from this address, or from this
    /// address altogether, or for this account from every address (unless
    /// the browser holds its device cookie): try again after `retry_after`
    /// seconds, whatever the password.
    #[error("too many failed sign-ins; try again in {retry_after} seconds")]
    Throttled { retry_after: i64 },
    /// `KEYGATE_PASSWORD_SIGN_IN=off`: people sign in through the identity
    /// provider only.
    #[error("passwords are not used to sign in here")]
    PasswordSignInOff,
    /// The password was right and the person has a second factor: set the
    /// pending sign-in's cookie and ask for a code
    /// ([`super::pending`]). Not a refusal; no session yet.
    #[error("a second factor is needed to finish signing in")]
    SecondFactorNeeded(super::pending::PendingSignIn),
    /// The second step without a live pending sign-in (none, another
    /// keygate's, or older than 5 minutes): sign in again.
    #[error("that sign-in expired: enter your password again")]
    PendingExpired,
    /// A code that is none of the person's (counted as a wrong password).
    #[error("that code is not right")]
    WrongCode,
    /// A passkey that did not sign in: unknown, its signature or challenge
    /// wrong, its ceremony expired, or passkeys unavailable here.
    #[error(transparent)]
    Passkey(#[from] super::factors::passkeys::CeremonyError),
    #[error(transparent)]
    Hashing(#[from] HashingFailure),
    /// The database (503 when unreachable) or another internal failure.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why a password could not be set through a link.
#[derive(Debug, thiserror::Error)]
pub enum SetPasswordError {
    /// Unknown, used or expired link, or the person is disabled.
    #[error("this link is invalid, used or expired: ask for a new one")]
    InvalidLink,
    /// The new password breaks the policy: show the message.
    #[error(transparent)]
    Weak(PasswordProblem),
    #[error(transparent)]
    Hashing(#[from] HashingFailure),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why a signed-in person's password change failed.
#[derive(Debug, thiserror::Error)]
pub enum ChangePasswordError {
    #[error("the current password is wrong")]
    WrongPassword,
    #[error("too many failed attempts; try again in {retry_after} seconds")]
    Throttled { retry_after: i64 },
    #[error(transparent)]
    Weak(PasswordProblem),
    #[error(transparent)]
    Hashing(#[from] HashingFailure),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why a reset request was not taken.
#[derive(Debug, thiserror::Error)]
pub enum ResetError {
    #[error("too many requests; try again in {retry_after} seconds")]
    Throttled { retry_after: i64 },
    #[error(transparent)]
    Mail(#[from] QueueError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

from_store_errors!(AccountError);
from_store_errors!(SignInError);
from_store_errors!(SetPasswordError);
from_store_errors!(ChangePasswordError);
from_store_errors!(ResetError);

/// The code of a refusal for too many attempts (sign-in, password change,
/// reset requests).
const THROTTLED: &str = "too_many_attempts";
const INTERNAL: &str = "internal_error";

impl AccountError {
    /// Every code an `AccountError` can have: its own and
    /// [`UserError::CODES`] (`user_exists` among them).
    pub const CODES: &[&str] = &ACCOUNT_CODES;
}

const ACCOUNT_CODES: [&str; 1 + UserError::CODES.len()] =
    concat(&["user_disabled"], UserError::CODES);

/// `a` then `b`, in a constant.
const fn concat<const N: usize>(a: &[&'static str], b: &[&'static str]) -> [&'static str; N] {
    let mut all = [""; N];
    let mut i = 0;
    while i < N {
        all[i] = if i < a.len() { a[i] } else { b[i - a.len()] };
        i += 1;
    }
    all
}

impl FeatureError for AccountError {
    fn code(&self) -> &'static str {
        match self {
            Self::UserExists { .. } => "user_exists",
            Self::UserDisabled { .. } => "user_disabled",
            Self::User(e) => e.code(),
            Self::Mail(e) => e.code(),
            Self::Store(e) => e.code(),
        }
    }

    fn kind(&self) -> ErrorKind {
        match self {
            Self::UserExists { .. } | Self::UserDisabled { .. } => ErrorKind::Conflict,
            Self::User(e) => e.kind(),
            Self::Mail(e) => e.kind(),
            Self::Store(e) => e.kind(),
        }
    }

    fn field(&self) -> Option<&'static str> {
        match self {
            Self::UserExists { .. } | Self::UserDisabled { .. } => Some("email"),
            Self::User(e) => e.field(),
            Self::Mail(_) | Self::Store(_) => None,
        }
    }
}

impl SignInError {
    pub const CODES: &[&str] = &[
        "invalid_credentials",
        THROTTLED,
        "password_sign_in_off",
        "second_factor_needed",
        "sign_in_expired",
        "wrong_code",
        "passkey_refused",
        INTERNAL,
        "database_unavailable",
    ];
}

impl FeatureError for SignInError {
    fn code(&self) -> &'static str {
        match self {
            Self::Refused => "invalid_credentials",
            Self::Throttled { .. } => THROTTLED,
            Self::PasswordSignInOff => "password_sign_in_off",
            Self::SecondFactorNeeded(_) => "second_factor_needed",
            Self::PendingExpired => "sign_in_expired",
            Self::WrongCode => "wrong_code",
            Self::Passkey(super::factors::passkeys::CeremonyError::Store(e)) => e.code(),
            Self::Passkey(_) => "passkey_refused",
            Self::Hashing(e) => e.code(),
            Self::Store(e) => e.code(),
        }
    }

    fn kind(&self) -> ErrorKind {
        match self {
            Self::Refused => ErrorKind::Unauthenticated,
            Self::Throttled { .. } => ErrorKind::Throttled,
            Self::PasswordSignInOff => ErrorKind::Forbidden,
            Self::SecondFactorNeeded(_) | Self::PendingExpired | Self::WrongCode => {
                ErrorKind::Unauthenticated
            }
            Self::Passkey(super::factors::passkeys::CeremonyError::Store(e)) => e.kind(),
            Self::Passkey(_) => ErrorKind::Unauthenticated,
            Self::Hashing(e) => e.kind(),
            Self::Store(e) => e.kind(),
        }
    }
}

impl SetPasswordError {
    pub const CODES: &[&str] = &[
        "invalid_link",
        "password_too_short",
        "password_too_long",
        "password_too_common",
        "password_is_email",
        INTERNAL,
        "database_unavailable",
    ];
}

impl FeatureError for SetPasswordError {
    fn code(&self) -> &'static str {
        match self {
            Self::InvalidLink => "invalid_link",
            Self::Weak(problem) => problem.code(),
            Self::Hashing(e) => e.code(),
            Self::Store(e) => e.code(),
        }
    }

    fn kind(&self) -> ErrorKind {
        match self {
            Self::InvalidLink => ErrorKind::NotFound,
            Self::Weak(_) => ErrorKind::Invalid,
            Self::Hashing(e) => e.kind(),
            Self::Store(e) => e.kind(),
        }
    }

    fn field(&self) -> Option<&'static str> {
        matches!(self, Self::Weak(_)).then_some("password")
    }
}

impl ChangePasswordError {
    pub const CODES: &[&str] = &[
        "wrong_password",
        THROTTLED,
        "password_too_short",
        "password_too_long",
        "password_too_common",
        "password_is_email",
        INTERNAL,
        "database_unavailable",
    ];
}

impl FeatureError for ChangePasswordError {
    fn code(&self) -> &'static str {
        match self {
            Self::WrongPassword => "wrong_password",
            Self::Throttled { .. } => THROTTLED,
            Self::Weak(problem) => problem.code(),
            Self::Hashing(e) => e.code(),
            Self::Store(e) => e.code(),
        }
    }

    fn kind(&self) -> ErrorKind {
        match self {
            Self::WrongPassword | Self::Weak(_) => ErrorKind::Invalid,
            Self::Throttled { .. } => ErrorKind::Throttled,
            Self::Hashing(e) => e.kind(),
            Self::Store(e) => e.kind(),
        }
    }

    fn field(&self) -> Option<&'static str> {
        match self {
            Self::WrongPassword => Some("current_password"),
            Self::Weak(_) => Some("password"),
            _ => None,
        }
    }
}

impl ResetError {
    pub const CODES: &[&str] = &[THROTTLED, INTERNAL, "database_unavailable"];
}

impl FeatureError for ResetError {
    fn code(&self) -> &'static str {
        match self {
            Self::Throttled { .. } => THROTTLED,
            Self::Mail(e) => e.code(),
            Self::Store(e) => e.code(),
        }
    }

    fn kind(&self) -> ErrorKind {
        match self {
            Self::Throttled { .. } => ErrorKind::Throttled,
            Self::Mail(e) => e.kind(),
            Self::Store(e) => e.kind(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client_auth::argon2_pool::Argon2PoolError;

    fn codes(errors: &[&dyn FeatureError]) -> Vec<&'static str> {
        let mut codes: Vec<&str> = errors.iter().map(|e| e.code()).collect();
        codes.sort_unstable();
        codes.dedup();
        codes
    }

    fn sorted(codes: &[&'static str]) -> Vec<&'static str> {
        let mut codes = codes.to_vec();
        codes.sort_unstable();
        codes
    }

    /// One of each variant of each enum: its code is listed, and every
    /// listed code is one of them.
    #[test]
    fn the_code_lists_are_every_code() {
        let down = || StoreError::Unavailable("down".into());
        let lost = || HashingFailure::Lost(Argon2PoolError::Lost);
        let account = codes(&[
            &AccountError::UserExists {
                email: "x".into(),
                hint: "",
            },
            &AccountError::UserDisabled { email: "x".into() },
            &AccountError::User(UserError::RoleNotFound { name: "x".into() }),
            &AccountError::Store(down()),
            &AccountError::Mail(QueueError::Store(down())),
        ]);
        assert!(account.iter().all(|c| AccountError::CODES.contains(c)));
        assert!(
            UserError::CODES
                .iter()
                .all(|c| AccountError::CODES.contains(c))
        );
        assert!(AccountError::CODES.contains(&"user_disabled"));
        assert_eq!(
            codes(&[
                &SignInError::Refused,
                &SignInError::Throttled { retry_after: 1 },
                &SignInError::PasswordSignInOff,
                &SignInError::SecondFactorNeeded(crate::accounts::pending::PendingSignIn {
                    cookie: crate::accounts::session::SessionCookie::new("n", None, 0, false),
                }),
                &SignInError::PendingExpired,
                &SignInError::WrongCode,
                &SignInError::Passkey(crate::accounts::factors::passkeys::CeremonyError::Expired),
                &SignInError::Hashing(lost()),
                &SignInError::Store(down()),
            ]),
            sorted(SignInError::CODES)
        );
        let weak = [
            PasswordProblem::TooShort,
            PasswordProblem::TooLong,
            PasswordProblem::Common,
            PasswordProblem::IsEmail,
        ];
        let mut set: Vec<SetPasswordError> = weak.map(SetPasswordError::Weak).into();
        set.extend([
            SetPasswordError::InvalidLink,
            SetPasswordError::Hashing(lost()),
            SetPasswordError::Store(down()),
        ]);
        let set: Vec<&dyn FeatureError> = set.iter().map(|e| e as &dyn FeatureError).collect();
        assert_eq!(codes(&set), sorted(SetPasswordError::CODES));
        let mut change: Vec<ChangePasswordError> = weak.map(ChangePasswordError::Weak).into();
        change.extend([
            ChangePasswordError::WrongPassword,
            ChangePasswordError::Throttled { retry_after: 1 },
            ChangePasswordError::Hashing(lost()),
            ChangePasswordError::Store(down()),
        ]);
        let change: Vec<&dyn FeatureError> =
            change.iter().map(|e| e as &dyn FeatureError).collect();
        assert_eq!(codes(&change), sorted(ChangePasswordError::CODES));
        assert_eq!(
            codes(&[
                &ResetError::Throttled { retry_after: 1 },
                &ResetError::Store(StoreError::Query(diesel::result::Error::NotFound)),
                &ResetError::Store(down()),
            ]),
            sorted(ResetError::CODES)
        );
    }
}
