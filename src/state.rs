//! What every request handler shares.

use std::sync::Arc;

use chrono::Duration;

use crate::client_auth::ClientAuth;
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
    pub client_auth: ClientAuth,
    pub metrics: Arc<Metrics>,
    /// How long the JWKS may be cached by resource servers.
    pub jwks_max_age: Duration,
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
        self.pool.run(work).await
    }
}
