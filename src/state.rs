//! What every request handler shares.

use std::sync::Arc;

use chrono::Duration;

use crate::client_auth::ClientAuth;
use crate::db::{DbConnection, Pool};
use crate::duration::HumanDuration;
use crate::keys::KeyLimits;
use crate::keys::issuance::Issuance;
use crate::keys::last_use::RecentUses;
use crate::ops::metrics::Metrics;
use crate::signing::{Signer, TokenHasher};
use crate::time::Clock;

pub struct AppState {
    pub pool: Pool,
    /// Read once per request, at the handler; `now` is passed down from there.
    pub clock: Clock,
    pub issuer: String,
    pub token_ttl: HumanDuration,
    pub signer: Arc<Signer>,
    pub client_auth: ClientAuth,
    /// This process's shares of each limited key's tokens for the current
    /// minute (`crate::keys::issuance`).
    pub issuance: Issuance,
    /// The last use of each key this process recorded (`last_used_*`).
    pub recent_uses: RecentUses,
    pub metrics: Arc<Metrics>,
    /// How long the JWKS may be cached by resource servers.
    pub jwks_max_age: Duration,
    /// Longest expiry a key may be given (`None`: keys may never expire).
    pub key_max_lifetime: Option<HumanDuration>,
    /// How long before expiry a key's owner is warned.
    pub expiry_warning: HumanDuration,
    /// Active keys one person may hold (`KEYGATE_MAX_KEYS_PER_USER`).
    pub max_keys_per_user: Option<u32>,
    /// What accounts and sessions use (`crate::accounts`).
    pub accounts: AccountSettings,
}

/// The settings of people's accounts: sessions and one-time links. Defined
/// here rather than in `accounts`, which reads the state and so cannot be
/// read by it.
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
}

impl AppState {
    /// What key creation checks, on every path.
    pub fn key_limits(&self) -> KeyLimits {
        KeyLimits {
            max_lifetime: self.key_max_lifetime,
            expiry_warning: self.expiry_warning,
            max_keys_per_user: self.max_keys_per_user,
        }
    }

    /// Runs blocking database work on the blocking pool, never on the async
    /// workers.
    pub async fn db<T, E>(
        &self,
        work: impl FnOnce(&mut DbConnection) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<diesel::r2d2::PoolError> + From<actix_web::error::BlockingError> + Send + 'static,
    {
        self.pool.run(work).await
    }
}
