//! Remembers secrets verified moments ago, and the credential they were
//! verified for, so that a busy client pays neither argon2 (~16 ms of a
//! core) nor the reads of its key, owner, role and APIs on every request.
//!
//! An entry holds the SHA-256 of the presented secret, the stored argon2
//! hash it was verified against and the credential as read at a
//! [credential epoch](crate::db::epochs). It is honoured only while that
//! epoch is still the database's: the request reads the epochs (two rows by
//! primary key) before trusting the entry, and any change to a key, person,
//! role or API moves the credential epoch in the change's own transaction.
//! So a revocation, rotation, disabled owner or narrowed role committed by
//! any process is honoured by the very next request on every process.
//! Likewise the entry remembers at which failure epoch its client was last
//! found unthrottled from an address: until another failure is counted
//! anywhere, it still is. Losing the cache costs only CPU: it is per
//! process by design.
//!
//! Only a request that presents the very secret verified before reaches the
//! entry's credential; any other secret takes the full path (the key's rows
//! read, argon2 or its decoy), so the cache tells a prober nothing about
//! which client IDs exist.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use quick_cache::sync::Cache;
use subtle::ConstantTimeEq;

use crate::keys::Credential;

const CAPACITY: usize = 10_000;
/// How long a verification is trusted before argon2 runs again.
const MAX_AGE: Duration = Duration::from_secs(300);

struct Entry {
    digest: [u8; 32],
    phc: String,
    at: Instant,
    /// The credential the secret was verified for, and the epoch it was
    /// read at (the epoch was read first).
    warm: (i64, Arc<Credential>),
    /// The address this client was last found unthrottled from, and the
    /// failure epoch read before that throttle check.
    unthrottled: Mutex<Option<(String, i64)>>,
}

impl Entry {
    fn matches(&self, digest: &[u8; 32]) -> bool {
        self.at.elapsed() < MAX_AGE && bool::from(self.digest.ct_eq(digest))
    }
}

/// A credential verified moments ago for the secret presented now.
pub struct Warm(Arc<Entry>);

impl Warm {
    /// The credential epoch the credential was read at.
    pub fn epoch(&self) -> i64 {
        self.0.warm.0
    }

    pub fn credential(&self) -> &Arc<Credential> {
        &self.0.warm.1
    }

    /// Whether the hash the secret was verified against still opens the
    /// key at `now`: the current one, or the previous one while its grace
    /// runs (a grace ends with time, not with a change of the row).
    pub fn still_verifies(&self, now: DateTime<Utc>) -> bool {
        let credential = self.credential();
        std::iter::once(&credential.secret_hash)
            .chain(credential.previous_hash(now))
            .any(|hash| bool::from(hash.as_str().as_bytes().ct_eq(self.0.phc.as_bytes())))
    }

    /// The failure epoch read before the last throttle check that found
    /// the client unthrottled from `addr`. While no failure has been counted
    /// since (the epoch still reads the same), it still is: a window only
    /// ends with time, and never starts without a failure.
    pub fn unthrottled_since(&self, addr: &str) -> Option<i64> {
        let seen = self
            .0
            .unthrottled
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        seen.as_ref()
            .and_then(|(at, epoch)| (at == addr).then_some(*epoch))
    }

    /// Remembers a throttle check that found the client unthrottled from
    /// `addr`, made after the failure epoch read `failures`.
    pub fn found_unthrottled(&self, addr: &str, failures: i64) {
        let mut seen = self
            .0
            .unthrottled
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *seen = Some((addr.to_owned(), failures));
    }
}

pub struct VerifiedSecrets {
    cache: Cache<String, Arc<Entry>>,
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
            entry.matches(digest) && bool::from(entry.phc.as_bytes().ct_eq(phc.as_bytes()))
        })
    }

    /// The credential `digest` was verified for within the last minutes.
    pub fn warm(&self, client_id: &str, digest: &[u8; 32]) -> Option<Warm> {
        let entry = self.cache.get(client_id)?;
        entry.matches(digest).then_some(Warm(entry))
    }

    /// Remembers that `digest` verifies against `phc`, for `credential` as
    /// read at `epoch`.
    pub fn remember(
        &self,
        client_id: &str,
        phc: &str,
        digest: [u8; 32],
        warm: (i64, Arc<Credential>),
    ) {
        self.cache.insert(
            client_id.to_owned(),
            Arc::new(Entry {
                digest,
                phc: phc.to_owned(),
                at: Instant::now(),
                warm,
                unthrottled: Mutex::new(None),
            }),
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
        let credential = Arc::new(Credential::for_tests("$argon2id$a"));
        cache.remember("c", "$argon2id$a", [1; 32], (3, Arc::clone(&credential)));
        assert!(cache.recently_verified("c", "$argon2id$a", &[1; 32]));
        assert!(!cache.recently_verified("c", "$argon2id$b", &[1; 32]));
        assert!(!cache.recently_verified("c", "$argon2id$a", &[2; 32]));
        assert!(!cache.recently_verified("d", "$argon2id$a", &[1; 32]));
        let warm = cache.warm("c", &[1; 32]).unwrap();
        assert_eq!(warm.epoch(), 3);
        assert!(warm.still_verifies(Utc::now()));
        assert!(cache.warm("c", &[2; 32]).is_none(), "another secret");
        cache.forget("c");
        assert!(!cache.recently_verified("c", "$argon2id$a", &[1; 32]));
        assert!(cache.warm("c", &[1; 32]).is_none());
    }

    #[test]
    fn a_previous_secret_stops_verifying_when_its_grace_ends() {
        let cache = VerifiedSecrets::default();
        let mut credential = Credential::for_tests("$argon2id$new");
        let now = Utc::now();
        credential.previous_secret_hash = Some(crate::keys::SecretHash::from_stored(
            "$argon2id$old".to_owned(),
        ));
        credential.previous_secret_expires_at =
            Some((now + chrono::Duration::minutes(5)).naive_utc());
        cache.remember("c", "$argon2id$old", [1; 32], (0, Arc::new(credential)));
        let warm = cache.warm("c", &[1; 32]).unwrap();
        assert!(warm.still_verifies(now));
        assert!(!warm.still_verifies(now + chrono::Duration::minutes(6)));
    }

    #[test]
    fn an_unthrottled_address_is_remembered_with_its_failure_epoch() {
        let cache = VerifiedSecrets::default();
        let credential = Arc::new(Credential::for_tests("$argon2id$a"));
        cache.remember("c", "$argon2id$a", [1; 32], (0, credential));
        let warm = cache.warm("c", &[1; 32]).unwrap();
        assert_eq!(warm.unthrottled_since("192.0.2.1"), None);
        warm.found_unthrottled("192.0.2.1", 5);
        let again = cache.warm("c", &[1; 32]).unwrap();
        assert_eq!(again.unthrottled_since("192.0.2.1"), Some(5));
        assert_eq!(
            again.unthrottled_since("192.0.2.2"),
            None,
            "another address"
        );
    }
}
