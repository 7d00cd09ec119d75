//! The access tokens this server issued, as its own endpoints check them:
//! offline validation with the verifier crate's rules against the current
//! keyring, the revocation list, and whether the issuing key may still be
//! used. Introspection, revocation and the management API's bearer
//! authentication all come here, so they cannot judge a token differently.

mod revoked;

use chrono::{DateTime, Utc};
use keygate_verifier::validate::{self, Rules};
use keygate_verifier::{Claims, VerifyError};

pub use revoked::{
    Revocation, count_revoked_tokens, is_revoked, prune_revoked_tokens, revoke_token,
};

use crate::db::DbConnection;
use crate::keys::{self, ClientId, Credential};
use crate::signing::{Signer, SigningAlg};

/// Validates a token as keygate issued it: `typ`, one of keygate's
/// algorithms, a signature by a published key, `iss`, `exp` and `nbf`
/// without leeway, every required claim. Any audience. Says nothing about
/// revocation or the key's state: see [`live_credential`].
pub fn validate(
    issuer: &str,
    signer: &Signer,
    token: &str,
    now: DateTime<Utc>,
) -> Result<Claims, VerifyError> {
    let rules = Rules {
        issuer: issuer.to_owned(),
        audience: None,
        algorithms: [SigningAlg::Es256, SigningAlg::EdDsa, SigningAlg::Rs256]
            .map(SigningAlg::to_jsonwebtoken)
            .to_vec(),
        leeway_secs: 0,
    };
    let ring = signer.current();
    validate::validate_token(token, &ring.keys, &rules, now.timestamp())
}

/// The key a validated token was issued from, when the token is not revoked
/// and that key may still be used (not revoked, expired or disabled);
/// otherwise why not, for the debug log.
pub fn live_credential(
    conn: &mut DbConnection,
    claims: &Claims,
    now: DateTime<Utc>,
) -> diesel::QueryResult<Result<Credential, &'static str>> {
    let Some(issued_to) = ClientId::parse(&claims.client_id) else {
        return Ok(Err("client_id is not one of ours"));
    };
    if is_revoked(conn, &claims.jti)? {
        return Ok(Err("token revoked"));
    }
    Ok(match keys::find_credential(conn, &issued_to)? {
        None => Err("key unknown"),
        Some(key) => match key.refusal(now) {
            Some(refusal) => Err(refusal.as_str()),
            None => Ok(key),
        },
    })
}
