//! `KEYGATE_SECRET_KEY`: the secret that encrypts signing keys at rest and
//! keys the hashes of console session and link tokens.

use std::fmt;

use aws_lc_rs::hmac;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// The 32-byte master secret (`KEYGATE_SECRET_KEY`): encrypts signing keys at
/// rest and signs console sessions. Never printed.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct MasterKey([u8; 32]);

impl MasterKey {
    pub fn from_hex(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text.len() != 64 {
            return Err(format!(
                "must be 64 hex characters (32 bytes), got {} characters",
                text.len()
            ));
        }
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(text, &mut bytes)
            .map_err(|_| "must be 64 hex characters (32 bytes)".to_string())?;
        Ok(Self(bytes))
    }

    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        crate::random::fill(&mut bytes);
        Self(bytes)
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(redacted)")
    }
}

impl MasterKey {
    /// The key that hashes console session and one-time link tokens, derived
    /// from this one for that purpose alone (HMAC-SHA256 of a fixed label).
    pub fn token_hasher(&self) -> TokenHasher {
        let root = hmac::Key::new(hmac::HMAC_SHA256, &self.0);
        let derived = hmac::sign(&root, b"keygate token hashing v1");
        TokenHasher(hmac::Key::new(hmac::HMAC_SHA256, derived.as_ref()))
    }
}

/// Hashes the random tokens of console sessions and one-time links before
/// they are stored or looked up: HMAC-SHA256 under a key derived from
/// `KEYGATE_SECRET_KEY`. The tokens carry 256 bits, so any hash keeps them
/// from being recovered from a stolen database; the key adds that write
/// access to the database alone cannot mint a session or a link.
#[derive(Clone)]
pub struct TokenHasher(hmac::Key);

impl TokenHasher {
    /// Lower-case hex of HMAC(`purpose` NUL `token`): the purpose keeps a
    /// session token from ever matching a link's hash, or the reverse.
    pub fn hash(&self, purpose: &str, token: &str) -> String {
        let mut context = hmac::Context::with_key(&self.0);
        context.update(purpose.as_bytes());
        context.update(&[0]);
        context.update(token.as_bytes());
        hex::encode(context.sign().as_ref())
    }
}

impl fmt::Debug for TokenHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenHasher(redacted)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_hashes_depend_on_the_key_the_purpose_and_the_token() {
        let a = MasterKey::from_hex(&"11".repeat(32))
            .unwrap()
            .token_hasher();
        let b = MasterKey::from_hex(&"22".repeat(32))
            .unwrap()
            .token_hasher();
        let hash = a.hash("session", "tok");
        assert_eq!(hash.len(), 64);
        assert_eq!(hash, a.hash("session", "tok"));
        assert_ne!(hash, b.hash("session", "tok"));
        assert_ne!(hash, a.hash("link", "tok"));
        assert_ne!(hash, a.hash("session", "tok2"));
        assert_eq!(format!("{a:?}"), "TokenHasher(redacted)");
    }
}
