//! Signing keys: generation, encryption at rest, the in-memory keyring every
//! process refreshes from the database, JWT signing and the JWKS.

pub mod crypto;
mod master_key;
mod store;

use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, RwLock};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};

pub use crypto::{AtRest, CryptoError, KeyPair};
pub use master_key::{MasterKey, TokenHasher};
pub use store::{
    PUBLISH_MARGIN, SigningKeyInfo, SigningKeyRow, ensure_signing_key, list_signing_keys,
    load_published_keys, rotate_signing_key,
};

use keygate_verifier::{Claims, KeySet};

use crate::db::DbConnection;

/// Algorithms keygate signs with: asymmetric only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SigningAlg {
    Es256,
    EdDsa,
    Rs256,
}

impl SigningAlg {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Es256 => "ES256",
            Self::EdDsa => "EdDSA",
            Self::Rs256 => "RS256",
        }
    }

    pub fn to_jsonwebtoken(self) -> jsonwebtoken::Algorithm {
        match self {
            Self::Es256 => jsonwebtoken::Algorithm::ES256,
            Self::EdDsa => jsonwebtoken::Algorithm::EdDSA,
            Self::Rs256 => jsonwebtoken::Algorithm::RS256,
        }
    }
}

impl FromStr for SigningAlg {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "ES256" => Ok(Self::Es256),
            "EdDSA" => Ok(Self::EdDsa),
            "RS256" => Ok(Self::Rs256),
            _ => Err(format!("must be ES256, EdDSA or RS256, got {text:?}")),
        }
    }
}

impl fmt::Display for SigningAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The key new tokens are signed with, its JWS header already encoded.
pub struct ActiveKey {
    pub kid: String,
    pair: KeyPair,
    header_b64: String,
}

impl ActiveKey {
    /// A signing key named `kid` (public for tests and benchmarks that sign
    /// tokens the way keygate does).
    pub fn new(kid: String, pair: KeyPair) -> Self {
        let header = serde_json::json!({
            "alg": pair.alg().as_str(),
            "typ": "at+jwt",
            "kid": kid,
        });
        let header_b64 = URL_SAFE_NO_PAD.encode(header.to_string());
        Self {
            kid,
            pair,
            header_b64,
        }
    }

    pub fn alg(&self) -> SigningAlg {
        self.pair.alg()
    }

    /// Compact JWS of `claims` with header `{alg, typ: "at+jwt", kid}`.
    /// Only the verifier crate's [`Claims`] are signed, so what keygate
    /// issues is exactly what resource servers validate.
    pub fn sign_jwt(&self, claims: &Claims) -> Result<String, CryptoError> {
        let payload = serde_json::to_vec(claims).map_err(|_| CryptoError::Sign)?;
        let mut token = String::with_capacity(self.header_b64.len() + payload.len() * 4 / 3 + 100);
        token.push_str(&self.header_b64);
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(&payload, &mut token);
        let signature = self.pair.sign(token.as_bytes())?;
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(&signature, &mut token);
        Ok(token)
    }
}

/// Each published key's ID and retirement dates.
type Fingerprint = Vec<(String, Option<DateTime<Utc>>, Option<DateTime<Utc>>)>;

/// One consistent view of the signing keys: which signs, which are published.
pub struct Keyring {
    pub active: Option<Arc<ActiveKey>>,
    /// The JWKS document, serialised once per change.
    pub jwks: Arc<String>,
    /// The same public keys, parsed for verifying tokens (introspection).
    pub keys: Arc<KeySet>,
    /// What the view was built from; a refresh that reads the same rows keeps it.
    fingerprint: Fingerprint,
}

impl Keyring {
    fn empty() -> Self {
        Self {
            active: None,
            jwks: Arc::new(r#"{"keys":[]}"#.to_owned()),
            keys: Arc::new(KeySet::default()),
            fingerprint: Vec::new(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    #[error(transparent)]
    Database(#[from] diesel::result::Error),
    #[error(transparent)]
    Crypto(#[from] CryptoError),
}

/// The process's copy of the signing keys. Every process polls the database
/// (see `refresh`), so a rotation made by the CLI or another process reaches
/// it within seconds, without a restart.
pub struct Signer {
    at_rest: AtRest,
    ring: RwLock<Arc<Keyring>>,
}

impl Signer {
    pub fn new(at_rest: AtRest) -> Self {
        Self {
            at_rest,
            ring: RwLock::new(Arc::new(Keyring::empty())),
        }
    }

    pub fn at_rest(&self) -> &AtRest {
        &self.at_rest
    }

    pub fn current(&self) -> Arc<Keyring> {
        match self.ring.read() {
            Ok(ring) => Arc::clone(&ring),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Re-reads the published keys; rebuilds the keyring only when they changed.
    pub fn refresh(
        &self,
        conn: &mut DbConnection,
        now: DateTime<Utc>,
    ) -> Result<bool, KeyringError> {
        let rows = load_published_keys(conn, now)?;
        let fingerprint: Fingerprint = rows
            .iter()
            .map(|r| (r.kid.clone(), r.retired_at(), r.publish_until()))
            .collect();
        if self.current().fingerprint == fingerprint {
            return Ok(false);
        }
        let mut keys = Vec::with_capacity(rows.len());
        let mut active = None;
        // Rows come newest first; the newest unretired key signs.
        for row in &rows {
            let pair = row.decrypt(&self.at_rest)?;
            keys.push(pair.public_jwk(&row.kid));
            if active.is_none() && row.retired_at.is_none() {
                active = Some(Arc::new(ActiveKey::new(row.kid.clone(), pair)));
            }
        }
        let jwks = serde_json::json!({ "keys": keys });
        let parsed = serde_json::from_value::<jsonwebtoken::jwk::JwkSet>(jwks.clone())
            .map(|set| KeySet::from_jwks(&set))
            .map_err(|_| CryptoError::Parse("JWK"))?;
        let ring = Keyring {
            active,
            jwks: Arc::new(jwks.to_string()),
            keys: Arc::new(parsed),
            fingerprint,
        };
        match self.ring.write() {
            Ok(mut slot) => *slot = Arc::new(ring),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(ring),
        }
        Ok(true)
    }
}
