//! What every request handler shares.

use std::sync::Arc;

use chrono::Duration;

pub use crate::accounts::AccountSettings;
use crate::client_auth::ClientAuth;
use crate::client_auth::argon2_pool::Argon2Pool;
use crate::client_auth::throttle::ThrottlePolicy;
use crate::db::{DbConnection, Pool};
use crate::duration::HumanDuration;
use crate::keys::KeyLimits;
use crate::keys::issuance::Issuance;
use crate::keys::last_use::RecentUses;
use crate::metrics::Metrics;
use crate::signing::Signer;
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
    /// The argon2 work leak reports may cost per minute, every address
    /// together (`crate::exposure::budget`).
    pub exposure_budget: crate::exposure::budget::Budget,
    /// One leak report's database work at a time in this process: a flood
    /// of reports queues behind itself, not in front of token requests,
    /// which need the same connections and cores.
    pub exposure_turn: tokio::sync::Semaphore,
    /// Seals each webhook endpoint's signing secret (`crate::webhooks`).
    pub webhook_sealer: Arc<crate::webhooks::WebhookSealer>,
    /// The keys of the issuers federations trust, cached by this process.
    pub federation_keys: crate::federation::JwksCache,
    /// The identity provider of `KEYGATE_OIDC_*`, if one is configured.
    pub sso: Option<Arc<crate::accounts::sso::Sso>>,
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

/// What single sign-on needs besides (`crate::accounts::sso`).
impl crate::accounts::sso::SsoRegistry for AppState {
    fn sso(&self) -> Option<&Arc<crate::accounts::sso::Sso>> {
        self.sso.as_ref()
    }
}

/// What the people's side needs from the application (`crate::accounts`).
impl crate::accounts::Registry for AppState {
    fn pool(&self) -> &Pool {
        &self.pool
    }

    fn account_settings(&self) -> &AccountSettings {
        &self.accounts
    }

    fn issuer(&self) -> &str {
        &self.issuer
    }

    fn throttle(&self) -> ThrottlePolicy {
        self.client_auth.throttle
    }

    fn argon2(&self) -> &Argon2Pool {
        &self.client_auth.argon2
    }
}
