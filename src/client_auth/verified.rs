//! Remembers secrets verified moments ago so that a busy client does not pay
//! argon2 (~16 ms of a core) on every token request.
//!
//! An entry holds the SHA-256 of the presented secret and the stored argon2
//! hash it was verified against. It is honoured only while the key's stored
//! hash is still that one, so a rotation or revocation (both change the row,
//! and the row is read on every request) takes effect at once. Losing the
//! cache costs only CPU: it is per process by design.

use std::time::{Duration, Instant};

use quick_cache::sync::Cache;
use subtle::ConstantTimeEq;

const CAPACITY: usize = 10_000;
const MAX_AGE: Duration = Duration::from_secs(300);

#[derive(Clone)]
struct Entry {
    digest: [u8; 32],
    phc: String,
    at: Instant,
}

pub struct VerifiedSecrets {
    cache: Cache<String, Entry>,
}

impl Default for VerifiedSecrets {
    fn default() -> Self {
        Self {
            cache: Cache::new(CAPACITY),
        }
    }
}

impl VerifiedSecrets {
    /// True when `digest` was verified against `phc` within the last minutes.
    pub fn recently_verified(&self, client_id: &str, phc: &str, digest: &[u8; 32]) -> bool {
        self.cache.get(client_id).is_some_and(|entry| {
            entry.at.elapsed() < MAX_AGE
                && entry.phc.as_bytes().ct_eq(phc.as_bytes()).into()
                && bool::from(entry.digest.ct_eq(digest))
        })
    }

    pub fn remember(&self, client_id: &str, phc: &str, digest: [u8; 32]) {
        self.cache.insert(
            client_id.to_owned(),
            Entry {
                digest,
                phc: phc.to_owned(),
                at: Instant::now(),
            },
        );
    }

    pub fn forget(&self, client_id: &str) {
        self.cache.remove(client_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn honoured_only_for_the_same_secret_and_hash() {
        let cache = VerifiedSecrets::default();
        cache.remember("c", "$argon2id$a", [1; 32]);
        assert!(cache.recently_verified("c", "$argon2id$a", &[1; 32]));
        assert!(!cache.recently_verified("c", "$argon2id$b", &[1; 32]));
        assert!(!cache.recently_verified("c", "$argon2id$a", &[2; 32]));
        assert!(!cache.recently_verified("d", "$argon2id$a", &[1; 32]));
        cache.forget("c");
        assert!(!cache.recently_verified("c", "$argon2id$a", &[1; 32]));
    }
}
