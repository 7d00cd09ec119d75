//! What every request handler shares.

use std::sync::Arc;

use actix_web::web;
use chrono::Duration;
use tokio::sync::Semaphore;

use crate::client_auth::throttle::ThrottlePolicy;
use crate::client_auth::verified::VerifiedSecrets;
use crate::db::{DbConnection, Pool};
use crate::duration::HumanDuration;
use crate::ops::metrics::Metrics;
use crate::signing::Signer;
use crate::time::Clock;

pub struct AppState {
    pub pool: Pool,
    /// Read once per request, at the handler; `now` is passed down from there.
    pub clock: Clock,
    pub issuer: String,
    pub token_ttl: HumanDuration,
    pub signer: Arc<Signer>,
    pub verified: VerifiedSecrets,
    /// Bounds concurrent argon2 verifications to the number of cores, so a
    /// flood of wrong secrets queues instead of starving everything else.
    pub argon2_slots: Semaphore,
    pub throttle: ThrottlePolicy,
    pub metrics: Arc<Metrics>,
    /// How long the JWKS may be cached by resource servers.
    pub jwks_max_age: Duration,
    /// Reverse proxies trusted to name the client in `X-Forwarded-For`.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Longest expiry a key may be given (`None`: keys may never expire).
    pub key_max_lifetime: Option<HumanDuration>,
    /// How long before expiry a key's owner is warned.
    pub expiry_warning: HumanDuration,
}

impl AppState {
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
        let pool = self.pool.clone();
        web::block(move || {
            let mut conn = pool.get()?;
            work(&mut conn)
        })
        .await?
    }
}
