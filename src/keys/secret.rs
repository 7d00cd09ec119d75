//! Client IDs and client secrets: their format, generation, hashing and
//! verification.
//!
//! A secret looks like `kgs_<43 alphanumerics><6 checksum>`: 256 bits from the
//! OS CSPRNG, a prefix secret scanners can match, and a CRC32 checksum so a
//! scanner (and keygate itself) can tell a real secret from a random string
//! without a database lookup.

use std::fmt;

use aws_lc_rs::digest;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::random;
use crate::signing::TokenHasher;

/// The purpose under which a secret's lookup tag is keyed. Never change it:
/// every stored tag was made with it.
const LOOKUP_PURPOSE: &str = "api key secret lookup";

/// Prefix of every client ID. Never change it: issued client IDs, clients'
/// configuration and log searches rely on it.
pub const CLIENT_ID_PREFIX: &str = "kgc_";
/// Prefix of every client secret (defined with the other rules on text).
pub use crate::text::SECRET_PREFIX;

const CLIENT_ID_BODY_LEN: usize = 24;
/// 43 base-62 characters carry 256.03 bits.
const SECRET_BODY_LEN: usize = 43;
const CHECKSUM_LEN: usize = 6;
/// Longer presented client IDs are rejected before any lookup.
const MAX_CLIENT_ID_LEN: usize = 128;

/// A client ID. Public, but still checked for shape before it reaches a query.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, diesel::FromSqlRow,
)]
#[serde(transparent)]
pub struct ClientId(String);

crate::text_column!(ClientId, ClientId::from_stored);

impl ClientId {
    pub fn generate() -> Self {
        Self(format!(
            "{CLIENT_ID_PREFIX}{}",
            random::alphanumeric(CLIENT_ID_BODY_LEN)
        ))
    }

    /// Accepts any printable, reasonably short string: a client ID that does
    /// not exist is an authentication failure, not a malformed request.
    pub fn parse(text: &str) -> Option<Self> {
        let ok = !text.is_empty()
            && text.len() <= MAX_CLIENT_ID_LEN
            && text.bytes().all(|b| b.is_ascii_graphic());
        ok.then(|| Self(text.to_owned()))
    }

    /// A client ID read back from the database, where only generated ones are.
    pub fn from_stored(text: String) -> Self {
        Self(text)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A client secret in clear. No `Display`, no `Serialize`, a redacted `Debug`,
/// wiped from memory on drop: the compiler keeps it out of logs.
pub struct PlainSecret(Zeroizing<String>);

impl PlainSecret {
    pub fn generate() -> Self {
        let body = random::alphanumeric(SECRET_BODY_LEN);
        let checksum = checksum(&body);
        Self(Zeroizing::new(format!("{SECRET_PREFIX}{body}{checksum}")))
    }

    /// Wraps a secret as presented by a client.
    pub fn from_presented(text: String) -> Self {
        Self(Zeroizing::new(text))
    }

    /// The secret itself, for the one place it is shown (creation output) and
    /// for hashing.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// True when the secret has keygate's shape and its checksum matches.
    /// Lets a flood of made-up secrets be refused without paying argon2.
    pub fn is_well_formed(&self) -> bool {
        let Some(rest) = self.0.strip_prefix(SECRET_PREFIX) else {
            return false;
        };
        if rest.len() != SECRET_BODY_LEN + CHECKSUM_LEN
            || !rest.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            return false;
        }
        let (body, sum) = rest.split_at(SECRET_BODY_LEN);
        checksum(body).as_bytes().ct_eq(sum.as_bytes()).into()
    }

    /// SHA-256 of the secret: what the verification cache remembers, so a
    /// secret verified moments ago need not pay argon2 again.
    pub fn digest(&self) -> [u8; 32] {
        let d = digest::digest(&digest::SHA256, self.0.as_bytes());
        let mut out = [0u8; 32];
        out.copy_from_slice(d.as_ref());
        out
    }

    /// A keyed, non-reversible tag of the secret (HMAC-SHA-256 under
    /// `KEYGATE_SECRET_KEY`), stored beside its argon2 hash so that a
    /// reported secret finds its key without a scan (`crate::exposure`).
    /// Without the master key it tells nothing about the secret.
    pub fn lookup_tag(&self, hasher: &TokenHasher) -> String {
        hasher.hash(LOOKUP_PURPOSE, self.expose())
    }

    /// Hashes with argon2id (OWASP parameters) and a random salt. Costs ~16 ms
    /// of one core: call it off the async workers.
    pub fn hash(&self) -> Result<SecretHash, argon2::password_hash::Error> {
        Ok(SecretHash(crate::argon2id::hash(self.0.as_bytes())?))
    }
}

impl fmt::Debug for PlainSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PlainSecret(redacted)")
    }
}

fn checksum(body: &str) -> String {
    let crc = crc32fast::hash(format!("{SECRET_PREFIX}{body}").as_bytes());
    random::base62_fixed(u64::from(crc), CHECKSUM_LEN)
}

/// An argon2id PHC string: all that is stored of a secret.
#[derive(Clone, PartialEq, Eq, diesel::FromSqlRow)]
pub struct SecretHash(String);

crate::text_column!(SecretHash, SecretHash::from_stored);

impl SecretHash {
    pub fn from_stored(phc: String) -> Self {
        Self(phc)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Constant-time verification (argon2 compares its output in constant
    /// time). A malformed stored hash verifies nothing.
    pub fn verify(&self, secret: &PlainSecret) -> bool {
        crate::argon2id::verify(secret.expose().as_bytes(), &self.0)
    }

    /// A hash of a random secret, verified against when the client ID is
    /// unknown so that the response time does not reveal which IDs exist.
    pub fn decoy() -> &'static SecretHash {
        static DECOY: std::sync::OnceLock<SecretHash> = std::sync::OnceLock::new();
        DECOY.get_or_init(|| {
            PlainSecret::generate()
                .hash()
                .unwrap_or_else(|_| SecretHash(String::new()))
        })
    }
}

impl fmt::Debug for SecretHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretHash(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn generated_secret_has_prefix_length_and_checksum() {
        let secret = PlainSecret::generate();
        let text = secret.expose();
        assert!(text.starts_with(SECRET_PREFIX));
        assert_eq!(
            text.len(),
            SECRET_PREFIX.len() + SECRET_BODY_LEN + CHECKSUM_LEN
        );
        assert!(secret.is_well_formed());
    }

    #[test]
    fn a_changed_character_breaks_the_checksum() {
        let secret = PlainSecret::generate();
        let mut text = secret.expose().to_owned();
        let i = SECRET_PREFIX.len() + 3;
        let replacement = if &text[i..=i] == "a" { "b" } else { "a" };
        text.replace_range(i..=i, replacement);
        assert!(!PlainSecret::from_presented(text).is_well_formed());
        assert!(!PlainSecret::from_presented("kgs_short".into()).is_well_formed());
        assert!(!PlainSecret::from_presented(String::new()).is_well_formed());
    }

    #[test]
    fn client_ids_are_distinct_from_secrets() {
        let id = ClientId::generate();
        assert!(id.as_str().starts_with(CLIENT_ID_PREFIX));
        assert!(!id.as_str().starts_with(SECRET_PREFIX));
        assert_ne!(ClientId::generate(), id);
    }

    #[test]
    fn client_id_parse_rejects_junk() {
        assert!(ClientId::parse("").is_none());
        assert!(ClientId::parse("has space").is_none());
        assert!(ClientId::parse(&"x".repeat(129)).is_none());
        assert!(ClientId::parse("kgc_abc").is_some());
    }

    #[test]
    fn hash_verifies_only_the_right_secret() {
        let secret = PlainSecret::generate();
        let hash = secret.hash().unwrap();
        assert!(hash.as_str().starts_with("$argon2id$"));
        assert!(!hash.as_str().contains(secret.expose()));
        assert!(hash.verify(&secret));
        assert!(!hash.verify(&PlainSecret::generate()));
        assert!(!SecretHash::from_stored("garbage".into()).verify(&secret));
    }

    #[test]
    fn debug_output_is_redacted() {
        let secret = PlainSecret::generate();
        assert_eq!(format!("{secret:?}"), "PlainSecret(redacted)");
        assert!(!format!("{:?}", secret.hash().unwrap()).contains("argon2"));
    }

    proptest! {
        #[test]
        fn random_strings_are_not_well_formed(text in "kgs_[0-9A-Za-z]{49}") {
            // One in 62^6 random strings has a valid checksum; effectively none.
            prop_assume!(text.len() == 53);
            let secret = PlainSecret::from_presented(text);
            prop_assert!(!secret.is_well_formed());
        }
    }
}
