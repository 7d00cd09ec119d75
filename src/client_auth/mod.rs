//! Client authentication for every OAuth endpoint (token, introspection,
//! revocation): RFC 6749 §2.3.1 credentials, argon2 verification bounded and
//! cached, and throttling of failures shared through the database.

pub mod presented;
pub mod throttle;
pub mod verified;

use std::net::IpAddr;
use std::sync::Arc;

use actix_web::http::header::HeaderMap;
use actix_web::web;
use chrono::{DateTime, Utc};
use serde_json::json;

use crate::audit::{self, Action};
use crate::db::Pool;
use crate::error::OAuthError;
use crate::keys::{self, ClientId, Credential, PlainSecret, SecretHash};
use crate::oauth_form::Form;
use crate::ops::metrics::Metrics;
use crate::text;
use presented::Presented;
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
            Self::Refused(refusal) => refusal.as_str(),
        }
    }
}

/// What client authentication uses, and nothing else of the application.
pub struct ClientAuth {
    pub pool: Pool,
    pub verified: VerifiedSecrets,
    /// Bounds concurrent argon2 verifications to the number of cores, so a
    /// flood of wrong secrets queues instead of starving everything else.
    pub argon2_slots: tokio::sync::Semaphore,
    pub throttle: ThrottlePolicy,
    pub metrics: Arc<Metrics>,
    /// Reverse proxies trusted to name the client in `X-Forwarded-For`.
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

/// Authenticates the client of an OAuth request from `from` (its address,
/// [`client_ip`]): finds its credentials (`client_secret_basic` or
/// `client_secret_post`), applies the failure throttle, verifies the secret,
/// the key's state and its allowed networks. Every refusal is the same
/// `invalid_client`; the reason goes to the audit log and the metrics.
pub async fn authenticate(
    headers: &HeaderMap,
    form: &Form,
    from: Option<IpAddr>,
    auth: &ClientAuth,
    now: DateTime<Utc>,
) -> Result<Credential, OAuthError> {
    let presented = presented::extract(headers, form).inspect_err(|e| {
        if matches!(e, OAuthError::InvalidClient) {
            auth.metrics
                .count_failure(AuthFailure::NoClientAuthentication.as_str());
        }
    })?;
    verify_presented(auth, presented, from, now).await
}

/// The address failures are counted against: see [`peer::client_address`].
pub use crate::peer::{client_address, client_ip};

/// Verifies presented credentials from `from`.
async fn verify_presented(
    auth: &ClientAuth,
    presented: Presented,
    from: Option<IpAddr>,
    now: DateTime<Utc>,
) -> Result<Credential, OAuthError> {
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
        return Err(OAuthError::InvalidClient);
    };

    let (throttled, credential) = {
        let (id, addr, throttle) = (client_id.clone(), addr.to_owned(), auth.throttle);
        auth.pool
            .run(move |conn| -> Result<_, OAuthError> {
                let throttled = throttle.retry_after(conn, id.as_str(), &addr, now)?;
                let credential = match throttled {
                    Some(_) => None,
                    None => keys::find_credential(conn, &id)?,
                };
                Ok((throttled, credential))
            })
            .await?
    };
    if let Some(retry_after_secs) = throttled {
        auth.metrics.count_failure(AuthFailure::Throttled.as_str());
        return Err(OAuthError::TooManyRequests { retry_after_secs });
    }

    let failure = match &credential {
        None => {
            // Same cost as a real check, so timing does not reveal which IDs exist.
            if presented.secret.is_well_formed() {
                verify(auth, SecretHash::decoy().clone(), presented.secret).await?;
            }
            Err(AuthFailure::UnknownClient)
        }
        Some(credential) => {
            if check_secret(auth, credential, presented.secret, now).await? {
                credential
                    .refusal_from(from, now)
                    .map_or(Ok(()), |r| Err(AuthFailure::Refused(r)))
            } else {
                Err(AuthFailure::WrongSecret)
            }
        }
    };

    match (failure, credential) {
        (Ok(()), Some(credential)) => Ok(credential),
        (outcome, _) => {
            let reason = outcome.err().unwrap_or(AuthFailure::UnknownClient);
            record_failure(auth, client_id, addr, reason, now).await;
            Err(OAuthError::InvalidClient)
        }
    }
}

/// True when the secret matches the key's current secret or, during a
/// rotation's grace period, its previous one.
async fn check_secret(
    auth: &ClientAuth,
    credential: &Credential,
    secret: PlainSecret,
    now: DateTime<Utc>,
) -> Result<bool, OAuthError> {
    if !secret.is_well_formed() {
        return Ok(false);
    }
    let digest = secret.digest();
    let client_id = credential.client_id.as_str();
    let candidates: Vec<&SecretHash> = std::iter::once(&credential.secret_hash)
        .chain(credential.previous_hash(now))
        .collect();
    if candidates.iter().any(|hash| {
        auth.verified
            .recently_verified(client_id, hash.as_str(), &digest)
    }) {
        return Ok(true);
    }
    let mut secret = secret;
    for hash in candidates {
        let (ok, returned) = verify(auth, hash.clone(), secret).await?;
        secret = returned;
        if ok {
            auth.verified.remember(client_id, hash.as_str(), digest);
            return Ok(true);
        }
    }
    Ok(false)
}

/// One argon2 verification off the async workers, at most one per core at once.
async fn verify(
    auth: &ClientAuth,
    hash: SecretHash,
    secret: PlainSecret,
) -> Result<(bool, PlainSecret), OAuthError> {
    let _slot = auth
        .argon2_slots
        .acquire()
        .await
        .map_err(|e| OAuthError::ServerError(e.to_string()))?;
    Ok(web::block(move || (hash.verify(&secret), secret)).await?)
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
        .run(move |conn| -> Result<(), OAuthError> {
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
