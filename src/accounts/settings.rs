//! What the people's side is given: its settings, and what it needs from
//! the application that runs it.

use std::sync::Arc;

use crate::client_auth::argon2_pool::Argon2Pool;
use crate::client_auth::throttle::ThrottlePolicy;
use crate::db::Pool;
use crate::duration::HumanDuration;
use crate::signing::{AtRest, MasterKey, TokenHasher};

/// The settings of people's accounts: sessions and one-time links.
#[derive(Debug, Clone)]
pub struct AccountSettings {
    /// `KEYGATE_SESSION_IDLE`.
    pub session_idle: HumanDuration,
    /// `KEYGATE_SESSION_MAX`.
    pub session_max: HumanDuration,
    /// `KEYGATE_INVITE_TTL`.
    pub invite_ttl: HumanDuration,
    /// Keys the hashes of session and link tokens (from `KEYGATE_SECRET_KEY`).
    pub token_hasher: TokenHasher,
    /// Emails go to `.eml` files (no SMTP URL): whoever invites may be shown
    /// the link, since no mail server will carry it.
    pub mail_to_files: bool,
    /// Whether the issuer is https: session cookies are then `Secure` and
    /// `__Host-` prefixed.
    pub https: bool,
    /// `KEYGATE_PASSWORD_SIGN_IN`: whether people may sign in to the
    /// console with a password (and set one from a link).
    pub password_sign_in: bool,
    /// `KEYGATE_REQUIRE_MFA`: whom a password sign-in sends to enrol a
    /// second factor first.
    pub require_mfa: RequireMfa,
    /// Seals TOTP secrets and sign-ins waiting for their second factor.
    pub sealer: AccountSealer,
    /// keygate as a WebAuthn relying party, when the issuer allows one
    /// (https, or http on localhost).
    pub passkeys: Option<super::relying_party::RelyingParty>,
}

/// `KEYGATE_REQUIRE_MFA`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RequireMfa {
    #[default]
    Off,
    Admins,
    Everyone,
}

impl RequireMfa {
    /// `off`, `admins` or `everyone`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "off" => Some(Self::Off),
            "admins" => Some(Self::Admins),
            "everyone" => Some(Self::Everyone),
            _ => None,
        }
    }

    /// Whether a person of `role` must have a second factor.
    pub fn covers(self, role: &str) -> bool {
        match self {
            Self::Off => false,
            Self::Admins => role == crate::users::ADMIN_ROLE,
            Self::Everyone => true,
        }
    }
}

/// AES-256-GCM under a key derived from `KEYGATE_SECRET_KEY` for accounts
/// alone; what is sealed names its use and owner as associated data, so no
/// sealed value opens as another. Never printed.
#[derive(Clone)]
pub struct AccountSealer(Arc<AtRest>);

impl AccountSealer {
    pub fn new(master: &MasterKey) -> Self {
        Self(Arc::new(AtRest::for_purpose(
            master,
            b"accounts sealing v1",
        )))
    }

    pub(super) fn seal(&self, bound_to: &str, plain: &[u8]) -> Option<Vec<u8>> {
        self.0.seal(bound_to, plain).ok()
    }

    pub(super) fn open(
        &self,
        bound_to: &str,
        sealed: &[u8],
    ) -> Option<zeroize::Zeroizing<Vec<u8>>> {
        self.0.open(bound_to, sealed).ok()
    }
}

impl std::fmt::Debug for AccountSealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AccountSealer(redacted)")
    }
}

impl AccountSettings {
    /// A cookie's name: `secure` (a `__Host-` name, which browsers accept
    /// only `Secure`) under an https issuer, `plain` otherwise.
    pub(crate) fn cookie_name(&self, secure: &'static str, plain: &'static str) -> &'static str {
        if self.https { secure } else { plain }
    }
}

/// What the account functions need from the application running them, and
/// no more (Ory Hydra's per-package registry). The application state
/// implements it (`crate::state`), so this module never names the state
/// nor anything of HTTP, and a caller passes `&state` as it is.
pub trait Registry {
    fn pool(&self) -> &Pool;

    fn account_settings(&self) -> &AccountSettings;

    /// The issuer: the base of every link.
    fn issuer(&self) -> &str;

    /// Client authentication's failure throttle, which sign-in shares.
    fn throttle(&self) -> ThrottlePolicy;

    /// The argon2 threads client authentication uses (one per core), so a
    /// login flood queues there rather than starving everything else.
    fn argon2(&self) -> &Argon2Pool;
}

/// A handle to a registry (`web::Data<AppState>`, `Arc<...>`) is one too.
impl<T> Registry for T
where
    T: std::ops::Deref<Target: Registry>,
{
    fn pool(&self) -> &Pool {
        (**self).pool()
    }

    fn account_settings(&self) -> &AccountSettings {
        (**self).account_settings()
    }

    fn issuer(&self) -> &str {
        (**self).issuer()
    }

    fn throttle(&self) -> ThrottlePolicy {
        (**self).throttle()
    }

    fn argon2(&self) -> &Argon2Pool {
        (**self).argon2()
    }
}
