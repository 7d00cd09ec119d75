//! Passwords of people: the policy a new one must meet, and argon2id
//! hashing and verification (the OWASP parameters client secrets use).
//!
//! The policy follows NIST SP 800-63B: length, not composition rules. A
//! password needs at least [`MIN_PASSWORD_CHARS`] characters (12: long enough
//! that guessing is hopeless under the login throttle, short enough for a
//! passphrase of three words), at most [`MAX_PASSWORD_CHARS`], must not be on
//! the list of common passwords shipped in the binary, and must not be the
//! person's email address.

use std::collections::HashSet;
use std::fmt;
use std::sync::LazyLock;

use zeroize::Zeroizing;

use crate::client_auth::argon2_pool::{Argon2Pool, Argon2PoolError};
use crate::error::{ErrorKind, FeatureError};

pub const MIN_PASSWORD_CHARS: usize = 12;
/// Longer input is refused rather than hashed: nobody types more, and it
/// bounds the work one request can ask for.
pub const MAX_PASSWORD_CHARS: usize = 1024;

/// Why a new password was refused; the message is for the person choosing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PasswordProblem {
    #[error("the password must have at least {MIN_PASSWORD_CHARS} characters")]
    TooShort,
    #[error("the password may have at most {MAX_PASSWORD_CHARS} characters")]
    TooLong,
    #[error("this password is on a list of commonly used passwords: choose another")]
    Common,
    #[error("the password may not be your email address")]
    IsEmail,
}

impl PasswordProblem {
    /// A stable snake_case code for APIs and forms.
    pub fn code(self) -> &'static str {
        match self {
            Self::TooShort => "password_too_short",
            Self::TooLong => "password_too_long",
            Self::Common => "password_too_common",
            Self::IsEmail => "password_is_email",
        }
    }
}

/// `src/accounts/common-passwords.txt`: see its header for the source.
const COMMON_PASSWORDS: &str = include_str!("common-passwords.txt");

static COMMON: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    COMMON_PASSWORDS
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect()
});

/// Checks a new password for the person with `email`.
pub fn check_password_policy(password: &str, email: &str) -> Result<(), PasswordProblem> {
    let chars = password.chars().count();
    if chars < MIN_PASSWORD_CHARS {
        return Err(PasswordProblem::TooShort);
    }
    if chars > MAX_PASSWORD_CHARS {
        return Err(PasswordProblem::TooLong);
    }
    let lower = Zeroizing::new(password.to_lowercase());
    if COMMON.contains(lower.as_str()) {
        return Err(PasswordProblem::Common);
    }
    let email = email.trim().to_lowercase();
    let local = email.split('@').next().unwrap_or_default();
    if *lower == email || *lower == local {
        return Err(PasswordProblem::IsEmail);
    }
    Ok(())
}

/// A password in clear, as a person typed it: wiped on drop, never printed.
pub struct Password(Zeroizing<String>);

impl Password {
    pub fn new(text: &str) -> Self {
        Self(Zeroizing::new(text.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Hashes with argon2id and a random salt (~16 ms of a core: call it
    /// off the async workers).
    pub fn hash(&self) -> Result<String, argon2::password_hash::Error> {
        crate::argon2id::hash(self.0.as_bytes())
    }

    /// Constant-time verification against a stored PHC string; a malformed
    /// one verifies nothing. Input past the maximum length is refused
    /// without hashing.
    pub fn verify(&self, phc: &str) -> bool {
        if self.0.chars().count() > MAX_PASSWORD_CHARS {
            return false;
        }
        crate::argon2id::verify(self.0.as_bytes(), phc)
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(redacted)")
    }
}

/// The hash of a random password, verified against when the account is
/// unknown (or has no password yet) so that timing does not tell.
pub fn decoy_hash() -> &'static str {
    static DECOY: LazyLock<String> = LazyLock::new(|| {
        Password::new(&crate::random::alphanumeric(32))
            .hash()
            .unwrap_or_default()
    });
    &DECOY
}

/// Loads the list and hashes the decoy before the first request needs them.
pub fn warm_up() {
    LazyLock::force(&COMMON);
    decoy_hash();
}

/// keygate's own failure with a password: the argon2 threads lost the
/// work, or hashing failed. Logged, never shown.
#[derive(Debug, thiserror::Error)]
pub enum HashingFailure {
    #[error(transparent)]
    Lost(#[from] Argon2PoolError),
    #[error("hashing the password failed: {0}")]
    Hash(String),
}

impl FeatureError for HashingFailure {
    fn code(&self) -> &'static str {
        "internal_error"
    }

    fn kind(&self) -> ErrorKind {
        ErrorKind::Internal
    }
}

/// Verifies `password` against `phc`, or against the decoy hash when there
/// is none (an unknown person costs the same work), on the argon2 threads
/// client authentication uses (one per core), never on the async workers.
pub(super) async fn verify_off_thread(
    argon2: &Argon2Pool,
    password: Password,
    phc: Option<String>,
) -> Result<bool, HashingFailure> {
    Ok(argon2
        .run(move || password.verify(phc.as_deref().unwrap_or(decoy_hash())))
        .await?)
}

/// Hashes a new password on the argon2 threads.
pub(super) async fn hash_off_thread(
    argon2: &Argon2Pool,
    password: Password,
) -> Result<String, HashingFailure> {
    argon2
        .run(move || password.hash())
        .await?
        .map_err(|e| HashingFailure::Hash(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_refuses_short_common_and_email_passwords() {
        let email = "Alice.Smith@example.com";
        assert_eq!(
            check_password_policy("short", email),
            Err(PasswordProblem::TooShort)
        );
        assert_eq!(
            check_password_policy("ééééééééééé", email),
            Err(PasswordProblem::TooShort),
            "11 characters, 22 bytes"
        );
        assert!(check_password_policy("éééééééééééé", email).is_ok());
        assert_eq!(
            check_password_policy(&"x".repeat(MAX_PASSWORD_CHARS + 1), email),
            Err(PasswordProblem::TooLong)
        );
        for common in ["password1234", "QWERTY123456", "qwertyuiop123"] {
            assert_eq!(
                check_password_policy(common, email),
                Err(PasswordProblem::Common),
                "{common}"
            );
        }
        assert_eq!(
            check_password_policy("alice.smith@EXAMPLE.com", email),
            Err(PasswordProblem::IsEmail)
        );
        assert_eq!(
            check_password_policy("alice.smith1", "alice.smith1@example.com"),
            Err(PasswordProblem::IsEmail)
        );
        assert!(check_password_policy("correct horse battery", email).is_ok());
    }

    #[test]
    fn the_shipped_list_is_loaded_and_only_holds_long_entries() {
        assert!(COMMON.len() > 250, "{}", COMMON.len());
        assert!(
            COMMON
                .iter()
                .all(|p| p.chars().count() >= MIN_PASSWORD_CHARS)
        );
        assert!(COMMON.iter().all(|p| *p == p.to_lowercase()));
    }

    #[test]
    fn hashes_verify_only_their_password() {
        let password = Password::new("correct horse battery");
        let hash = password.hash().unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(password.verify(&hash));
        assert!(!Password::new("correct horse battery!").verify(&hash));
        assert!(!password.verify("garbage"));
        assert!(!password.verify(decoy_hash()));
        assert_eq!(format!("{password:?}"), "Password(redacted)");
    }
}
