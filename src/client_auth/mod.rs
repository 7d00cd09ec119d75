//! Client authentication for every OAuth endpoint (token, introspection,
//! revocation): RFC 6749 §2.3.1 credentials, argon2 verification bounded and
//! cached, and throttling of failures shared through the database.

pub mod argon2_pool;
pub mod assertion;
pub mod jti;
pub mod known_keys;
pub mod presented;
pub mod throttle;
pub mod verified;

use std::net::IpAddr;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::json;

use crate::audit::{self, Action};
use crate::db::fresh::ThrottleProbe;
use crate::db::{Pool, epochs};
use crate::error::{ErrorKind, FeatureError, StoreError, from_store_errors};
use crate::keys::{self, ClientId, Credential, PlainSecret, SecretHash};
use crate::metrics::Metrics;
use crate::text;
use argon2_pool::Argon2Pool;
use assertion::AssertionFailure;
use known_keys::KnownKeys;
use presented::{ClientCredentials, Presented, PresentedAssertion};
use throttle::ThrottlePolicy;
use verified::VerifiedSecrets;

/// Why a client authentication failed: the `reason` label of
/// `keygate_token_failures_total` and of the audit event. The client always
/// sees the same `invalid_client`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    NoClientAuthentication,
    MalformedClientId,
    Throttled,
    UnknownClient,
    WrongSecret,
    /// A secret for a key that has none (its client signs assertions, or
    /// it is a federation's).
    WrongAuthMethod,
    /// A client assertion that does not pass (which check, precisely).
    Assertion(AssertionFailure),
    /// The secret was right but the key may not be used.
    Refused(keys::Refusal),
}

impl AuthFailure {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NoClientAuthentication => "no_client_authentication",
            Self::MalformedClientId => "malformed_client_id",
            Self::Throttled => "throttled",
            Self::UnknownClient => "unknown_client",
            Self::WrongSecret => "wrong_secret",
            Self::WrongAuthMethod => "wrong_auth_method",
            Self::Assertion(failure) => failure.as_str(),
            Self::Refused(refusal) => refusal.as_str(),
        }
    }
}

/// Why a client was not let in. The client learns no more than
/// `invalid_client` or "slow down" ([`AuthFailure`] says why, to the audit
/// log and the metrics).
#[derive(Debug, thiserror::Error)]
pub enum ClientAuthError {
    /// Never says why: wrong, unknown, expired, revoked and disabled look alike.
    #[error("client authentication failed")]
    InvalidClient,
    /// Too many failures for this client ID from this address, or from it.
    #[error("too many failed attempts; retry later")]
    Throttled { retry_after_secs: i64 },
    /// The argon2 threads are gone.
    #[error("secret verification failed: {0}")]
    Verification(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

from_store_errors!(ClientAuthError);

impl FeatureError for ClientAuthError {
    fn code(&self) -> &'static str {
        match self {
            Self::InvalidClient => "invalid_client",
            Self::Throttled { .. } => "too_many_requests",
            Self::Verification(_) => "internal_error",
            Self::Store(e) => e.code(),
        }
    }

    fn kind(&self) -> ErrorKind {
        match self {
            Self::InvalidClient => ErrorKind::Unauthenticated,
            Self::Throttled { .. } => ErrorKind::Throttled,
            Self::Verification(_) => ErrorKind::Internal,
            Self::Store(e) => e.kind(),
        }
    }
}

/// What client authentication uses, and nothing else of the application.
pub struct ClientAuth {
    pub pool: Pool,
    pub verified: VerifiedSecrets,
    /// Credentials as read at a credential epoch: `private_key_jwt`
    /// clients' (with their public keys parsed) and those of tokens'
    /// issuers that introspection looked up.
    pub known_keys: KnownKeys,
    /// Where every argon2 hash and verification runs: one thread per core,
    /// so a flood of wrong secrets queues instead of starving everything
    /// else, and keeps no more than one argon2 block per thread.
    pub argon2: Argon2Pool,
    pub throttle: ThrottlePolicy,
    pub metrics: Arc<Metrics>,
    /// Reverse proxies trusted to name the client in `X-Forwarded-For`.
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

impl ClientAuth {
    /// The key `client_id` as the database has it at credential epoch
    /// `epoch`, or `None` when it is unknown. The caller read the epoch
    /// after its request arrived ([`Pool::fresh_with`]), so a change any
    /// process committed before is seen: a credential kept from that very
    /// epoch is current, otherwise the key is read afresh and kept. A busy
    /// resource server's introspections thus read the epochs instead of the
    /// key, its owner, role and APIs each time.
    ///
    /// [`Pool::fresh_with`]: crate::db::Pool::fresh_with
    pub async fn credential_at(
        &self,
        client_id: &ClientId,
        epoch: i64,
    ) -> Result<Option<Arc<Credential>>, ClientAuthError> {
        let cached = self.known_keys.get(client_id.as_str());
        if let Some(entry) = cached.filter(|entry| entry.epoch == epoch) {
            return Ok(Some(Arc::clone(&entry.credential)));
        }
        // Read after the epoch: at least as new as the epoch says.
        let id = client_id.clone();
        let credential = self
            .pool
            .read::<_, ClientAuthError>(move |conn| keys::find_credential(conn, &id))
            .await?;
        Ok(credential.map(|credential| {
            let entry = Arc::new(known_keys::Entry::new(epoch, Arc::new(credential)));
            self.known_keys
                .insert(client_id.as_str(), Arc::clone(&entry));
            Arc::clone(&entry.credential)
        }))
    }
}

/// Authenticates the client of an OAuth request from `from` (its address,
/// `http::peer::client_ip`) by the secret or the client assertion it
/// presented at `audiences` (the issuer and the endpoint's URL, either of
/// which an assertion's `aud` may name). Every refusal is the same
/// `invalid_client`; the reason goes to the audit log and the metrics.
pub async fn authenticate(
    auth: &ClientAuth,
    credentials: ClientCredentials,
    audiences: &[&str],
    from: Option<IpAddr>,
    now: DateTime<Utc>,
) -> Result<Arc<Credential>, ClientAuthError> {
    match credentials {
        ClientCredentials::Secret(presented) => {
            authenticate_secret(auth, presented, from, now).await
        }
        ClientCredentials::Assertion(presented) => {
            authenticate_assertion(auth, presented, audiences, from, now).await
        }
    }
}

/// Authenticates a client by a `private_key_jwt` assertion: read without
/// trusting it, the throttle and the credential (kept with its parsed keys
/// while the credential epoch stays), the signature and claims, the key's
/// state, then the `jti` recorded once — the one write.
async fn authenticate_assertion(
    auth: &ClientAuth,
    presented: PresentedAssertion,
    audiences: &[&str],
    from: Option<IpAddr>,
    now: DateTime<Utc>,
) -> Result<Arc<Credential>, ClientAuthError> {
    let addr = &from.map_or_else(|| "unknown".to_owned(), |ip| ip.to_string());
    let unverified = match assertion::read(&presented.assertion, presented.client_id.as_deref()) {
        Ok(unverified) => unverified,
        Err((named, failure)) => {
            let client_id = named.and_then(|id| ClientId::parse(&text::redact_secret(&id)));
            let failure = AuthFailure::Assertion(failure);
            match client_id {
                Some(client_id) => record_failure(auth, client_id, addr, failure, now).await,
                None => auth.metrics.count_failure(failure.as_str()),
            }
            return Err(ClientAuthError::InvalidClient);
        }
    };
    let Some(client_id) = ClientId::parse(&text::redact_secret(&unverified.client_id)) else {
        auth.metrics
            .count_failure(AuthFailure::MalformedClientId.as_str());
        return Err(ClientAuthError::InvalidClient);
    };

    let cached = auth.known_keys.get(client_id.as_str());
    let cached_epoch = cached.as_ref().map(|entry| entry.epoch);
    let probe = ThrottleProbe {
        subject: client_id.as_str().to_owned(),
        addr: addr.to_owned(),
        after: auth.throttle.live_after(now),
        unless_failures: None,
    };
    let read = auth.pool.fresh::<ClientAuthError>(Some(probe)).await?;
    let throttled = read
        .throttle
        .and_then(|rows| auth.throttle.retry_after_of(&rows, now));
    let epoch = read.epochs.credentials;
    let fresh = if throttled.is_some() || cached_epoch == Some(epoch) {
        None
    } else {
        // Read after the epoch: at least as new as the epoch says.
        let id = client_id.clone();
        let credential = auth
            .pool
            .read::<_, ClientAuthError>(move |conn| keys::find_credential(conn, &id))
            .await?;
        Some((epoch, credential))
    };
    if let Some(retry_after_secs) = throttled {
        auth.metrics.count_failure(AuthFailure::Throttled.as_str());
        return Err(ClientAuthError::Throttled { retry_after_secs });
    }
    let entry = match (fresh, cached) {
        (Some((epoch, Some(credential))), _) => {
            let entry = Arc::new(known_keys::Entry::new(epoch, Arc::new(credential)));
            auth.known_keys
                .insert(client_id.as_str(), Arc::clone(&entry));
            Some(entry)
        }
        (Some((_, None)), _) => None,
        (None, cached) => cached,
    };

    let checked = match &entry {
        None => Err(AuthFailure::UnknownClient),
        Some(entry) if entry.credential.auth_method != keys::AuthMethod::PrivateKeyJwt => {
            Err(AuthFailure::WrongAuthMethod)
        }
        Some(entry) => unverified
            .verify(&entry.keys, audiences, now)
            .map_err(AuthFailure::Assertion)
            .and_then(|verified| match entry.credential.refusal_from(from, now) {
                Some(refusal) => Err(AuthFailure::Refused(refusal)),
                None => Ok(verified),
            }),
    };
    let outcome = match (checked, entry) {
        (Ok(verified), Some(entry)) => {
            let id = client_id.clone();
            let first = auth
                .pool
                .write(move |conn| {
                    jti::accept_once(conn, id.as_str(), &verified.jti, verified.remember_until)
                        .map_err(ClientAuthError::from)
                })
                .await?;
            if first {
                Ok(Arc::clone(&entry.credential))
            } else {
                Err(AuthFailure::Assertion(AssertionFailure::Replayed))
            }
        }
        (Ok(_), None) => Err(AuthFailure::UnknownClient),
        (Err(failure), _) => Err(failure),
    };
    match outcome {
        Ok(credential) => Ok(credential),
        Err(failure) => {
            record_failure(auth, client_id, addr, failure, now).await;
            Err(ClientAuthError::InvalidClient)
        }
    }
}

/// Authenticates the client of an OAuth request from `from` (its address,
/// `http::peer::client_ip`) by the secret it presented: applies the failure
/// throttle, verifies the secret, the key's state and its allowed networks.
/// Every refusal is the same `invalid_client`; the reason goes to the audit
/// log and the metrics. The warm path when this very secret was verified
/// moments ago for a credential still current ([`verified`]), the full path
/// otherwise.
async fn authenticate_secret(
    auth: &ClientAuth,
    presented: Presented,
    from: Option<IpAddr>,
    now: DateTime<Utc>,
) -> Result<Arc<Credential>, ClientAuthError> {
    let addr = &from.map_or_else(|| "unknown".to_owned(), |ip| ip.to_string());
    // A client that sent its secret as its ID (credentials swapped, or the
    // secret in `client_id=`) must not have it logged, audited or stored as
    // a throttle subject: from here on it is the redaction marker, which is
    // looked up (finding nothing, at the cost of any unknown ID), counted
    // by the throttle and recorded like any other unknown client ID.
    let presented_id = text::redact_secret(&presented.client_id);
    let Some(client_id) = ClientId::parse(&presented_id) else {
        auth.metrics
            .count_failure(AuthFailure::MalformedClientId.as_str());
        return Err(ClientAuthError::InvalidClient);
    };
    let digest = presented
        .secret
        .is_well_formed()
        .then(|| presented.secret.digest());

    let warm = digest.and_then(|d| auth.verified.warm(client_id.as_str(), &d));
    let (credential, secret_ok) = match warm {
        Some(warm) => {
            // One read (on SQLite without leaving this thread, on
            // PostgreSQL in a round shared with the requests of the same
            // moment): the epochs say whether the credential is still
            // current and whether any failure was counted since this client
            // was last found unthrottled from this address; only then are
            // its throttle rows read.
            let unthrottled_since = warm.unthrottled_since(addr);
            let fresh = auth
                .pool
                .fresh::<ClientAuthError>(Some(ThrottleProbe {
                    subject: client_id.as_str().to_owned(),
                    addr: addr.to_owned(),
                    after: auth.throttle.live_after(now),
                    unless_failures: unthrottled_since,
                }))
                .await?;
            let epochs = fresh.epochs;
            let throttled = fresh
                .throttle
                .and_then(|rows| auth.throttle.retry_after_of(&rows, now));
            if let Some(retry_after_secs) = throttled {
                auth.metrics.count_failure(AuthFailure::Throttled.as_str());
                return Err(ClientAuthError::Throttled { retry_after_secs });
            }
            if unthrottled_since != Some(epochs.failures) {
                warm.found_unthrottled(addr, epochs.failures);
            }
            if epochs.credentials == warm.epoch() && warm.still_verifies(now) {
                (Some(Arc::clone(warm.credential())), true)
            } else {
                full_path(auth, &client_id, addr, presented.secret, digest, now).await?
            }
        }
        None => full_path(auth, &client_id, addr, presented.secret, digest, now).await?,
    };

    let failure = match &credential {
        None => Err(AuthFailure::UnknownClient),
        Some(c) if !c.auth_method.has_secret() => Err(AuthFailure::WrongAuthMethod),
        Some(_) if !secret_ok => Err(AuthFailure::WrongSecret),
        Some(credential) => credential
            .refusal_from(from, now)
            .map_or(Ok(()), |r| Err(AuthFailure::Refused(r))),
    };
    match (failure, credential) {
        (Ok(()), Some(credential)) => Ok(credential),
        (outcome, _) => {
            let reason = outcome.err().unwrap_or(AuthFailure::UnknownClient);
            record_failure(auth, client_id, addr, reason, now).await;
            Err(ClientAuthError::InvalidClient)
        }
    }
}

/// The full path: the throttle, then the key's rows read afresh (with the
/// epoch read before them), then the secret checked against them (argon2,
/// or its decoy for an unknown ID). Returns the credential, if the ID is
/// known, and whether the secret opens it.
async fn full_path(
    auth: &ClientAuth,
    client_id: &ClientId,
    addr: &str,
    secret: PlainSecret,
    digest: Option<[u8; 32]>,
    now: DateTime<Utc>,
) -> Result<(Option<Arc<Credential>>, bool), ClientAuthError> {
    let (throttled, found) = {
        let (id, addr, throttle) = (client_id.clone(), addr.to_owned(), auth.throttle);
        auth.pool
            .run(move |conn| -> Result<_, ClientAuthError> {
                let throttled = throttle.retry_after(conn, id.as_str(), &addr, now)?;
                let found = match throttled {
                    Some(_) => None,
                    None => {
                        let epoch = epochs::read(conn)?.credentials;
                        keys::find_credential(conn, &id)?.map(|c| (epoch, Arc::new(c)))
                    }
                };
                Ok((throttled, found))
            })
            .await?
    };
    if let Some(retry_after_secs) = throttled {
        auth.metrics.count_failure(AuthFailure::Throttled.as_str());
        return Err(ClientAuthError::Throttled { retry_after_secs });
    }
    match (found, digest) {
        (None, digest) => {
            // Same cost as a real check, so timing does not reveal which IDs exist.
            if digest.is_some() {
                verify(auth, SecretHash::decoy().clone(), secret).await?;
            }
            Ok((None, false))
        }
        (Some((_, credential)), digest) if !credential.auth_method.has_secret() => {
            // A key without a secret: the same cost, and never a match.
            if digest.is_some() {
                verify(auth, SecretHash::decoy().clone(), secret).await?;
            }
            Ok((Some(credential), false))
        }
        (Some((_, credential)), None) => Ok((Some(credential), false)),
        (Some((epoch, credential)), Some(digest)) => {
            let ok = check_secret(auth, epoch, &credential, secret, digest, now).await?;
            Ok((Some(credential), ok))
        }
    }
}

/// True when the secret matches the key's current secret or, during a
/// rotation's grace period, its previous one. A match is remembered with
/// the credential and the epoch it was read at.
async fn check_secret(
    auth: &ClientAuth,
    epoch: i64,
    credential: &Arc<Credential>,
    secret: PlainSecret,
    digest: [u8; 32],
    now: DateTime<Utc>,
) -> Result<bool, ClientAuthError> {
    let client_id = credential.client_id.as_str();
    let candidates: Vec<&SecretHash> = std::iter::once(&credential.secret_hash)
        .chain(credential.previous_hash(now))
        .collect();
    let remember = |hash: &SecretHash| {
        let warm = (epoch, Arc::clone(credential));
        auth.verified
            .remember(client_id, hash.as_str(), digest, warm);
    };
    if let Some(hash) = candidates.iter().find(|hash| {
        auth.verified
            .recently_verified(client_id, hash.as_str(), &digest)
    }) {
        remember(hash);
        return Ok(true);
    }
    let mut secret = secret;
    for hash in candidates {
        let (ok, returned) = verify(auth, hash.clone(), secret).await?;
        secret = returned;
        if ok {
            remember(hash);
            return Ok(true);
        }
    }
    Ok(false)
}

/// One argon2 verification off the async workers, on the argon2 threads.
async fn verify(
    auth: &ClientAuth,
    hash: SecretHash,
    secret: PlainSecret,
) -> Result<(bool, PlainSecret), ClientAuthError> {
    auth.argon2
        .run(move || (hash.verify(&secret), secret))
        .await
        .map_err(|e| ClientAuthError::Verification(e.to_string()))
}

async fn record_failure(
    auth: &ClientAuth,
    client_id: ClientId,
    addr: &str,
    failure: AuthFailure,
    now: DateTime<Utc>,
) {
    let reason = failure.as_str();
    auth.metrics.count_failure(reason);
    tracing::info!(client_id = %client_id, addr, reason, "client authentication failed");
    let (addr, throttle) = (addr.to_owned(), auth.throttle);
    let written = auth
        .pool
        .run(move |conn| -> Result<(), ClientAuthError> {
            throttle.record_failure(conn, client_id.as_str(), &addr, now)?;
            audit::record(
                conn,
                now,
                audit::Entry {
                    actor: client_id.as_str(),
                    action: Action::ClientAuthFailed,
                    target: client_id.as_str(),
                    source_addr: Some(&addr),
                    details: json!({ "reason": reason }),
                },
            )?;
            Ok(())
        })
        .await;
    if let Err(error) = written {
        tracing::error!(%error, "could not record a failed client authentication");
    }
}
