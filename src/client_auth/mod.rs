//! Client authentication for every OAuth endpoint (token, introspection,
//! revocation): RFC 6749 §2.3.1 credentials, argon2 verification bounded and
//! cached, and throttling of failures shared through the database.

pub mod presented;
pub mod throttle;
pub mod verified;

use actix_web::{HttpRequest, web};
use chrono::{DateTime, Utc};
use serde_json::json;

use crate::audit::{self, Action};
use crate::error::OAuthError;
use crate::keys::{self, ClientId, Credential, PlainSecret, SecretHash};
use crate::oauth_form::Form;
use crate::state::AppState;
use presented::Presented;

/// Authenticates the client of an OAuth request: finds its credentials
/// (`client_secret_basic` or `client_secret_post`), applies the failure
/// throttle, verifies the secret and the key's state. Every refusal is the
/// same `invalid_client`; the reason goes to the audit log and the metrics.
pub async fn authenticate(
    req: &HttpRequest,
    form: &Form,
    state: &AppState,
    now: DateTime<Utc>,
) -> Result<Credential, OAuthError> {
    let presented = presented::extract(req.headers(), form).inspect_err(|e| {
        if matches!(e, OAuthError::InvalidClient) {
            state.metrics.count_failure("no_client_authentication");
        }
    })?;
    let addr = req
        .peer_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_else(|| "unknown".into());
    verify_presented(state, presented, &addr, now).await
}

/// Verifies presented credentials from `addr`.
async fn verify_presented(
    state: &AppState,
    presented: Presented,
    addr: &str,
    now: DateTime<Utc>,
) -> Result<Credential, OAuthError> {
    let Some(client_id) = ClientId::parse(&presented.client_id) else {
        state.metrics.count_failure("malformed_client_id");
        return Err(OAuthError::InvalidClient);
    };

    let (throttled, credential) = {
        let (id, addr, throttle) = (client_id.clone(), addr.to_owned(), state.throttle);
        state
            .db(move |conn| -> Result<_, OAuthError> {
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
        state.metrics.count_failure("throttled");
        return Err(OAuthError::TooManyRequests { retry_after_secs });
    }

    let failure = match &credential {
        None => {
            // Same cost as a real check, so timing does not reveal which IDs exist.
            if presented.secret.is_well_formed() {
                verify(state, SecretHash::decoy().clone(), presented.secret).await?;
            }
            Some("unknown_client")
        }
        Some(credential) => {
            if check_secret(state, credential, presented.secret, now).await? {
                credential.refusal(now)
            } else {
                Some("wrong_secret")
            }
        }
    };

    match (failure, credential) {
        (None, Some(credential)) => Ok(credential),
        (reason, _) => {
            let reason = reason.unwrap_or("unknown_client");
            record_failure(state, client_id, addr, reason, now).await;
            Err(OAuthError::InvalidClient)
        }
    }
}

/// True when the secret matches the key's current secret or, during a
/// rotation's grace period, its previous one.
async fn check_secret(
    state: &AppState,
    credential: &Credential,
    secret: PlainSecret,
    now: DateTime<Utc>,
) -> Result<bool, OAuthError> {
    if !secret.is_well_formed() {
        return Ok(false);
    }
    let digest = secret.digest();
    let candidates: Vec<&str> = std::iter::once(credential.secret_hash.as_str())
        .chain(credential.previous_hash(now))
        .collect();
    if candidates.iter().any(|phc| {
        state
            .verified
            .recently_verified(&credential.client_id, phc, &digest)
    }) {
        return Ok(true);
    }
    let mut secret = secret;
    for phc in candidates {
        let (ok, returned) = verify(state, SecretHash::from_stored(phc.to_owned()), secret).await?;
        secret = returned;
        if ok {
            state.verified.remember(&credential.client_id, phc, digest);
            return Ok(true);
        }
    }
    Ok(false)
}

/// One argon2 verification off the async workers, at most one per core at once.
async fn verify(
    state: &AppState,
    hash: SecretHash,
    secret: PlainSecret,
) -> Result<(bool, PlainSecret), OAuthError> {
    let _slot = state
        .argon2_slots
        .acquire()
        .await
        .map_err(|e| OAuthError::ServerError(e.to_string()))?;
    Ok(web::block(move || (hash.verify(&secret), secret)).await?)
}

async fn record_failure(
    state: &AppState,
    client_id: ClientId,
    addr: &str,
    reason: &'static str,
    now: DateTime<Utc>,
) {
    state.metrics.count_failure(reason);
    tracing::info!(client_id = %client_id, addr, reason, "client authentication failed");
    let (addr, throttle) = (addr.to_owned(), state.throttle);
    let written = state
        .db(move |conn| -> Result<(), OAuthError> {
            throttle.record_failure(conn, client_id.as_str(), &addr, now)?;
            audit::record(
                conn,
                now,
                client_id.as_str(),
                Action::ClientAuthFailed,
                client_id.as_str(),
                Some(&addr),
                json!({ "reason": reason }),
            )?;
            Ok(())
        })
        .await;
    if let Err(error) = written {
        tracing::error!(%error, "could not record a failed client authentication");
    }
}
