//! The public keys of the issuers federations trust, found through
//! `{issuer}/.well-known/openid-configuration` and its `jwks_uri`, and
//! cached by this process (they are public; nothing here must be shared
//! with other processes).
//!
//! Bounds: every fetch (discovery and JWKS together) has a deadline and a
//! body cap enforced while reading; a redirect to another host (or from
//! https to http) is not followed; at most `max_issuers` issuers are kept.
//! An issuer's keys are fresh for `ttl` and, when a refresh fails, kept for
//! `serve_stale_for` more. A `kid` not in the set triggers a refresh at
//! most once every `refetch_after` per issuer. Requests for one issuer
//! share one fetch (they wait on that issuer's lock, at most the
//! deadline); no lock is held across the network that other issuers'
//! requests need.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use jsonwebtoken::jwk::{Jwk, PublicKeyUse};
use serde_json::Value;

/// The cache's bounds (defaults: 5 s per fetch, 256 KiB per document,
/// 10 minutes fresh, an hour stale, a refresh for an unknown `kid` at
/// most every 10 s, 100 issuers).
#[derive(Debug, Clone, Copy)]
pub struct JwksTuning {
    pub timeout: Duration,
    pub max_body: usize,
    pub ttl: chrono::Duration,
    pub serve_stale_for: chrono::Duration,
    pub refetch_after: chrono::Duration,
    pub max_issuers: usize,
}

impl Default for JwksTuning {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(5),
            max_body: 256 * 1024,
            ttl: chrono::Duration::minutes(10),
            serve_stale_for: chrono::Duration::hours(1),
            refetch_after: chrono::Duration::seconds(10),
            max_issuers: 100,
        }
    }
}

/// Why no key could be found for a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwksError {
    /// The issuer's keys could not be fetched (down, slow, too large,
    /// malformed, redirected away) and none are cached.
    Unavailable(String),
    /// The keys are known and none has the token's `kid`.
    UnknownKey,
}

#[derive(Debug, Clone, Default)]
struct Cached {
    keys: Option<Arc<Vec<Jwk>>>,
    fetched_at: Option<DateTime<Utc>>,
    attempted_at: Option<DateTime<Utc>>,
    last_error: Option<String>,
    /// Counts attempts: a request that waited for another's fetch sees it moved.
    attempts: u64,
}

#[derive(Debug, Default)]
struct Issuer {
    cached: Mutex<Cached>,
    /// Held across one fetch: requests for this issuer share it.
    fetching: tokio::sync::Mutex<()>,
}

impl Issuer {
    fn snapshot(&self) -> Cached {
        self.cached
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// The process's cache of trusted issuers' keys.
pub struct JwksCache {
    client: reqwest::Client,
    tuning: JwksTuning,
    issuers: Mutex<HashMap<String, Arc<Issuer>>>,
}

impl std::fmt::Debug for JwksCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwksCache")
            .field("tuning", &self.tuning)
            .finish_non_exhaustive()
    }
}

impl JwksCache {
    pub fn new(tuning: JwksTuning) -> Result<Self, String> {
        let policy = reqwest::redirect::Policy::custom(|attempt| {
            let first = attempt.previous().first().cloned();
            let same_host = first.as_ref().is_some_and(|first| {
                first.host_str() == attempt.url().host_str()
                    && first.port_or_known_default() == attempt.url().port_or_known_default()
                    && !(first.scheme() == "https" && attempt.url().scheme() != "https")
            });
            if same_host && attempt.previous().len() < 3 {
                attempt.follow()
            } else {
                attempt.stop()
            }
        });
        let client = reqwest::Client::builder()
            .redirect(policy)
            .timeout(tuning.timeout)
            .connect_timeout(tuning.timeout)
            .user_agent(concat!("keygate/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build the federation HTTP client: {e}"))?;
        Ok(Self {
            client,
            tuning,
            issuers: Mutex::new(HashMap::new()),
        })
    }

    /// The keys of `issuer` that may have signed a token with `kid` (every
    /// key for a token without one), fetching or refreshing them within
    /// the bounds above.
    pub async fn keys(
        &self,
        issuer: &str,
        kid: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Vec<Jwk>, JwksError> {
        let entry = self.entry(issuer);
        let before = entry.snapshot();
        if let Some(found) = self.usable(&before, kid, now, false) {
            return found;
        }
        let _fetching = entry.fetching.lock().await;
        let current = entry.snapshot();
        if current.attempts != before.attempts {
            // Another request fetched while this one waited: its result.
            return self.usable(&current, kid, now, true).unwrap_or_else(|| {
                Err(JwksError::Unavailable(
                    current.last_error.clone().unwrap_or_default(),
                ))
            });
        }
        let fetched = self.fetch(issuer).await;
        let updated = {
            let mut cached = entry.cached.lock().unwrap_or_else(PoisonError::into_inner);
            cached.attempted_at = Some(now);
            cached.attempts += 1;
            match fetched {
                Ok(keys) => {
                    cached.keys = Some(Arc::new(keys));
                    cached.fetched_at = Some(now);
                    cached.last_error = None;
                }
                Err(error) => {
                    tracing::warn!(issuer, %error, "could not fetch a trusted issuer's keys");
                    cached.last_error = Some(error);
                }
            }
            cached.clone()
        };
        self.usable(&updated, kid, now, true).unwrap_or_else(|| {
            Err(JwksError::Unavailable(
                updated.last_error.unwrap_or_default(),
            ))
        })
    }

    /// What the cached state answers without a fetch, or `None` when a
    /// fetch is due (never after one, `fetched`: then an answer).
    fn usable(
        &self,
        cached: &Cached,
        kid: Option<&str>,
        now: DateTime<Utc>,
        fetched: bool,
    ) -> Option<Result<Vec<Jwk>, JwksError>> {
        let may_retry = !fetched
            && cached
                .attempted_at
                .is_none_or(|at| now - at >= self.tuning.refetch_after);
        let (Some(keys), Some(fetched_at)) = (&cached.keys, cached.fetched_at) else {
            return (!may_retry).then(|| {
                Err(JwksError::Unavailable(
                    cached.last_error.clone().unwrap_or_default(),
                ))
            });
        };
        let age = now - fetched_at;
        if age >= self.tuning.ttl + self.tuning.serve_stale_for {
            // Too old to serve at all.
            return (!may_retry).then(|| {
                Err(JwksError::Unavailable(
                    cached.last_error.clone().unwrap_or_default(),
                ))
            });
        }
        if age >= self.tuning.ttl && may_retry {
            return None;
        }
        let found = matching(keys, kid);
        if found.is_empty() {
            if may_retry {
                return None;
            }
            // After a failed refresh, say why the key could not be found.
            return Some(Err(match &cached.last_error {
                Some(error) => JwksError::Unavailable(error.clone()),
                None => JwksError::UnknownKey,
            }));
        }
        Some(Ok(found))
    }

    /// The issuer's entry, made if needed; the least recently fetched one
    /// goes when the cache is full.
    fn entry(&self, issuer: &str) -> Arc<Issuer> {
        let mut issuers = self.issuers.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(entry) = issuers.get(issuer) {
            return Arc::clone(entry);
        }
        if issuers.len() >= self.tuning.max_issuers {
            let oldest = issuers
                .iter()
                .min_by_key(|(_, entry)| entry.snapshot().attempted_at)
                .map(|(name, _)| name.clone());
            if let Some(oldest) = oldest {
                issuers.remove(&oldest);
            }
        }
        let entry = Arc::new(Issuer::default());
        issuers.insert(issuer.to_owned(), Arc::clone(&entry));
        entry
    }

    /// Discovery, then the JWKS, within one deadline.
    async fn fetch(&self, issuer: &str) -> Result<Vec<Jwk>, String> {
        let work = async {
            let discovery = format!(
                "{}/.well-known/openid-configuration",
                issuer.trim_end_matches('/')
            );
            let document = self.get_json(&discovery).await?;
            if document.get("issuer").and_then(Value::as_str) != Some(issuer) {
                return Err("the discovery document names another issuer".to_owned());
            }
            let jwks_uri = document
                .get("jwks_uri")
                .and_then(Value::as_str)
                .ok_or("the discovery document has no jwks_uri")?;
            super::check_issuer_url(jwks_uri).map_err(|e| format!("jwks_uri: {e}"))?;
            let jwks = self.get_json(jwks_uri).await?;
            parse_keys(&jwks)
        };
        tokio::time::timeout(self.tuning.timeout, work)
            .await
            .map_err(|_| format!("no answer within {:?}", self.tuning.timeout))?
    }

    /// A JSON document read with the body cap enforced while it arrives.
    async fn get_json(&self, url: &str) -> Result<Value, String> {
        let mut response = self
            .client
            .get(url)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        if !response.status().is_success() {
            return Err(format!("{url}: HTTP {}", response.status().as_u16()));
        }
        let max = self.tuning.max_body;
        if response
            .content_length()
            .is_some_and(|n| n > u64::try_from(max).unwrap_or(u64::MAX))
        {
            return Err(format!("{url}: larger than {max} bytes"));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| format!("{url}: {e}"))? {
            if body.len() + chunk.len() > max {
                return Err(format!("{url}: larger than {max} bytes"));
            }
            body.extend_from_slice(&chunk);
        }
        serde_json::from_slice(&body).map_err(|e| format!("{url}: not JSON: {e}"))
    }
}

/// The signing keys of a JWKS; keys of unknown types, or meant for
/// encryption, are skipped.
fn parse_keys(jwks: &Value) -> Result<Vec<Jwk>, String> {
    let keys = jwks
        .get("keys")
        .and_then(Value::as_array)
        .ok_or("the JWKS has no keys")?;
    Ok(keys
        .iter()
        .filter_map(|k| serde_json::from_value::<Jwk>(k.clone()).ok())
        .filter(|k| !matches!(k.common.public_key_use, Some(PublicKeyUse::Encryption)))
        .collect())
}

/// The keys with `kid`, or every key for a token without one.
fn matching(keys: &[Jwk], kid: Option<&str>) -> Vec<Jwk> {
    keys.iter()
        .filter(|k| kid.is_none() || k.common.key_id.as_deref() == kid)
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_and_encryption_keys_are_skipped() {
        let jwks = serde_json::json!({"keys": [
            {"kty": "EC", "crv": "P-256", "kid": "a", "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
            {"kty": "EC", "crv": "P-256", "kid": "b", "use": "enc", "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
            {"kty": "weird", "kid": "c"}
        ]});
        let keys = parse_keys(&jwks).unwrap();
        assert!(keys.iter().any(|k| k.common.key_id.as_deref() == Some("a")));
        assert!(!keys.iter().any(|k| k.common.key_id.as_deref() == Some("b")));
        assert_eq!(matching(&keys, Some("a")).len(), 1);
        assert!(matching(&keys, Some("z")).is_empty());
        assert!(parse_keys(&serde_json::json!({})).is_err());
    }
}
