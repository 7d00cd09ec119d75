//! The public keys of `private_key_jwt` clients, parsed once and kept with
//! the credential they belong to and the [credential epoch](crate::db::epochs)
//! it was read at. An entry is honoured only while that epoch is still the
//! database's (the request reads it first), so new public keys, a
//! revocation or a disabled owner committed by any process bite on the very
//! next assertion on every process, and a busy client pays one signature
//! check instead of reading its key, owner, role and APIs each time.

use std::sync::Arc;

use quick_cache::sync::Cache;

use crate::keys::Credential;
use crate::keys::public_keys::{self, VerifyingKey};

const CAPACITY: usize = 10_000;

pub struct Entry {
    pub epoch: i64,
    pub credential: Arc<Credential>,
    pub keys: Vec<VerifyingKey>,
}

impl Entry {
    /// The credential as read at `epoch`, with its public keys parsed.
    pub fn new(epoch: i64, credential: Arc<Credential>) -> Self {
        let keys = credential
            .public_keys
            .as_deref()
            .map(public_keys::verifying_keys)
            .unwrap_or_default();
        Self {
            epoch,
            credential,
            keys,
        }
    }
}

pub struct KnownKeys {
    cache: Cache<String, Arc<Entry>>,
}

impl Default for KnownKeys {
    fn default() -> Self {
        Self {
            cache: Cache::new(CAPACITY),
        }
    }
}

impl KnownKeys {
    /// The entry of `client_id`, whatever its epoch (the caller compares).
    pub fn get(&self, client_id: &str) -> Option<Arc<Entry>> {
        self.cache.get(client_id)
    }

    pub fn insert(&self, client_id: &str, entry: Arc<Entry>) {
        self.cache.insert(client_id.to_owned(), entry);
    }
}
