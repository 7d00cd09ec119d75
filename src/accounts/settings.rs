//! What the people's side is given: its settings, and what it needs from
//! the application that runs it.

use crate::client_auth::argon2_pool::Argon2Pool;
use crate::client_auth::throttle::ThrottlePolicy;
use crate::db::Pool;
use crate::duration::HumanDuration;
use crate::signing::TokenHasher;

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
}

impl AccountSettings {
    /// A cookie's name: `secure` (a `__Host-` name, which browsers accept
    /// only `Secure`) under an https issuer, `plain` otherwise.
    pub(super) fn cookie_name(&self, secure: &'static str, plain: &'static str) -> &'static str {
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
