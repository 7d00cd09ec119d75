//! Validation of keygate's access tokens for Rust resource servers.
//!
//! A [`Verifier`] knows one issuer and one audience. It discovers the
//! issuer's JWKS through RFC 8414 metadata, keeps the keys for as long as the
//! JWKS response's `Cache-Control: max-age` allows, and validates tokens
//! offline per RFC 9068 §4:
//!
//! - header `typ` is `at+jwt` (or `application/at+jwt`, any case);
//! - `alg` is on an allow-list of asymmetric algorithms (ES256, EdDSA and
//!   RS256 by default; `none` and HMAC are refused whatever the list says)
//!   and matches the algorithm of the key named by `kid`;
//! - the signature verifies with that key, taken only from the issuer's own
//!   JWKS (`jku`, `x5u`, `jwk` and `x5c` headers are never used, and `kid` is
//!   used for nothing but a lookup in the fetched set);
//! - `iss` is the issuer, `aud` (a string or an array) holds the audience,
//!   `exp` and `nbf` hold with a small leeway ([`DEFAULT_LEEWAY`]), and
//!   `iss`, `sub`, `aud`, `exp`, `iat`, `client_id` and `jti` are present.
//!
//! A token naming an unknown `kid` makes the verifier refetch the JWKS, at
//! most once per [`DEFAULT_REFETCH_INTERVAL`] (configurable), so a signing-key
//! rotation is picked up without a restart while a flood of made-up key IDs
//! cannot turn into a flood of requests to the issuer.
//!
//! Offline validation accepts a token until its `exp` even if it was revoked
//! (RFC 7009) or its API key was revoked. Resource servers that need
//! revocation to bite sooner turn on the *online mode*
//! ([`VerifierBuilder::online`]): after offline validation the token is
//! confirmed through the issuer's introspection endpoint (RFC 7662), with
//! answers cached for [`DEFAULT_ONLINE_CACHE_TTL`] per token.
//!
//! The caches read monotonic time from [`Instant::now`], or from a
//! [`ManualClock`] given to [`VerifierBuilder::clock`], which tests advance
//! instead of sleeping.
//!
//! For actix-web, the `Authenticated` extractor (feature `actix`) turns all
//! of this into RFC 6750 responses.
//!
//! The crate depends on no database, mail or password-hashing library: a
//! resource server compiles what it uses, nothing of the server.
//!
//! ```no_run
//! use keygate_verifier::Verifier;
//!
//! # async fn example() -> Result<(), keygate_verifier::VerifyError> {
//! let verifier = Verifier::builder("https://auth.example.com", "https://api.example.com")
//!     .build()
//!     .await?;
//! let claims = verifier.verify("eyJhbGciOiJFUzI1NiIs...").await?;
//! if claims.has_scope("read") {
//!     println!("{} may read", claims.client_id);
//! }
//! # Ok(())
//! # }
//! ```

#![forbid(unsafe_code)]

/// The README's example, compiled as a doc test.
#[cfg(all(doctest, feature = "actix"))]
#[doc = include_str!("../README.md")]
struct ReadmeExample;

#[cfg(feature = "actix")]
mod actix;
mod claims;
mod clock;
mod error;
mod keys;
mod online;
pub mod validate;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

pub use jsonwebtoken::Algorithm;
pub use jsonwebtoken::jwk::JwkSet;

#[cfg(feature = "actix")]
pub use actix::{Authenticated, BearerError};
pub use claims::Claims;
use clock::Clock;
pub use clock::ManualClock;
pub use error::VerifyError;
pub use keys::KeySet;
use online::Online;
use validate::Rules;

/// Clock skew tolerated on `exp` and `nbf`: small enough that an expired
/// token is refused within seconds, large enough for servers whose clocks
/// drift apart between NTP corrections.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);
/// At most one JWKS refetch per this interval for tokens naming an unknown
/// `kid`.
pub const DEFAULT_REFETCH_INTERVAL: Duration = Duration::from_secs(30);
/// How long an introspection answer is reused in online mode.
pub const DEFAULT_ONLINE_CACHE_TTL: Duration = Duration::from_secs(10);
/// Algorithms accepted unless [`VerifierBuilder::algorithms`] says otherwise.
pub const DEFAULT_ALGORITHMS: [Algorithm; 3] =
    [Algorithm::ES256, Algorithm::EdDSA, Algorithm::RS256];

/// JWKS lifetime when the response has no usable `Cache-Control`.
const DEFAULT_KEYS_TTL: Duration = Duration::from_secs(300);
/// Bounds on the JWKS lifetime, whatever `Cache-Control` says.
const MIN_KEYS_TTL: Duration = Duration::from_secs(10);
const MAX_KEYS_TTL: Duration = Duration::from_secs(24 * 3600);
/// Metadata and JWKS documents larger than this are refused.
const MAX_DOCUMENT_LEN: usize = 1024 * 1024;
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// Validates access tokens of one issuer for one audience. Cheap to clone:
/// clones share the key cache.
#[derive(Clone)]
pub struct Verifier {
    inner: Arc<Inner>,
}

struct Inner {
    rules: Rules,
    realm: String,
    /// Where keys come from; `None` for a verifier built from a static JWKS.
    source: Option<Source>,
    keys: RwLock<Arc<CachedKeys>>,
    /// One fetch at a time; waiters reuse its result.
    fetching: tokio::sync::Mutex<()>,
    refetch_interval: Duration,
    fetches: AtomicU64,
    online: Option<Online>,
    clock: Clock,
}

struct Source {
    http: reqwest::Client,
    jwks_uri: String,
}

struct CachedKeys {
    set: Arc<KeySet>,
    /// When the last fetch was attempted, successful or not.
    fetched_at: Instant,
    fresh_until: Instant,
}

impl CachedKeys {
    fn fetched(set: Arc<KeySet>, now: Instant, ttl: Duration) -> Self {
        Self {
            set,
            fetched_at: now,
            fresh_until: now + ttl,
        }
    }

    /// The cache lifetime has passed: refresh whatever the token.
    fn is_stale(&self, now: Instant) -> bool {
        now >= self.fresh_until
    }

    /// A token names `kid`, which these keys lack: worth a refetch unless
    /// the last attempt was less than `interval` ago.
    fn may_refetch_for(&self, kid: &str, now: Instant, interval: Duration) -> bool {
        !self.set.contains(kid) && now.duration_since(self.fetched_at) >= interval
    }
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("issuer", &self.inner.rules.issuer)
            .field("audience", &self.inner.rules.audience)
            .field("keys", &self.current_keys().set)
            .field("online", &self.inner.online.is_some())
            .finish()
    }
}

/// Configures a [`Verifier`]; see [`Verifier::builder`].
#[must_use]
pub struct VerifierBuilder {
    issuer: String,
    audience: String,
    algorithms: Vec<Algorithm>,
    leeway: Duration,
    refetch_interval: Duration,
    http: Option<reqwest::Client>,
    online: Option<(String, zeroize::Zeroizing<String>)>,
    online_cache_ttl: Duration,
    realm: Option<String>,
    clock: Clock,
}

impl VerifierBuilder {
    /// Clock skew tolerated on `exp` and `nbf` (default [`DEFAULT_LEEWAY`]).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// The accepted signing algorithms (default [`DEFAULT_ALGORITHMS`]).
    /// Symmetric (HMAC) algorithms are ignored: a resource server holds no
    /// secret key, and accepting HMAC would let anyone holding the public
    /// key forge tokens.
    pub fn algorithms(mut self, algorithms: &[Algorithm]) -> Self {
        self.algorithms = algorithms.to_vec();
        self
    }

    /// At most one JWKS refetch per `interval` for tokens naming an unknown
    /// `kid` (default [`DEFAULT_REFETCH_INTERVAL`]).
    pub fn unknown_kid_refetch_interval(mut self, interval: Duration) -> Self {
        self.refetch_interval = interval;
        self
    }

    /// The HTTP client for discovery, the JWKS and introspection (default:
    /// rustls, 10 s timeout, no redirects).
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.http = Some(client);
        self
    }

    /// Online mode: confirm each offline-valid token through the issuer's
    /// introspection endpoint, authenticating with this API key. The key
    /// should hold the `keygate:introspect` scope: without it, keygate
    /// reports every token but the key's own as inactive.
    pub fn online(
        mut self,
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
    ) -> Self {
        self.online = Some((
            client_id.into(),
            zeroize::Zeroizing::new(client_secret.into()),
        ));
        self
    }

    /// How long an introspection answer is reused (default
    /// [`DEFAULT_ONLINE_CACHE_TTL`]): a revocation bites within this time.
    pub fn online_cache_ttl(mut self, ttl: Duration) -> Self {
        self.online_cache_ttl = ttl;
        self
    }

    /// The `realm` of `WWW-Authenticate` challenges (default: the audience).
    pub fn realm(mut self, realm: impl Into<String>) -> Self {
        self.realm = Some(realm.into());
        self
    }

    /// For tests: read the caches' time (JWKS lifetime, unknown-`kid`
    /// refetch interval, online answers' TTL) from `clock` instead of
    /// [`Instant::now`], so a test advances it rather than sleeping. Token
    /// `exp` and `nbf` are still checked against the system's wall time.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use keygate_verifier::{ManualClock, Verifier};
    ///
    /// # async fn example() -> Result<(), keygate_verifier::VerifyError> {
    /// let clock = ManualClock::new();
    /// let verifier = Verifier::builder("https://auth.example.com", "https://api.example.com")
    ///     .online("kgc_...", "kgs_...")
    ///     .clock(&clock)
    ///     .build()
    ///     .await?;
    /// // ... verify a token, revoke it at the issuer ...
    /// clock.advance(keygate_verifier::DEFAULT_ONLINE_CACHE_TTL);
    /// // ... now the verifier asks the issuer again.
    /// # Ok(())
    /// # }
    /// ```
    pub fn clock(mut self, clock: &ManualClock) -> Self {
        self.clock = Clock::Manual(clock.clone());
        self
    }

    fn rules(&self) -> Rules {
        Rules {
            issuer: self.issuer.clone(),
            audience: Some(self.audience.clone()),
            algorithms: self.algorithms.clone(),
            leeway_secs: self.leeway.as_secs(),
        }
    }

    fn into_verifier(
        self,
        source: Option<Source>,
        keys: CachedKeys,
        online: Option<Online>,
    ) -> Verifier {
        Verifier {
            inner: Arc::new(Inner {
                rules: self.rules(),
                realm: self.realm.unwrap_or_else(|| self.audience.clone()),
                source,
                keys: RwLock::new(Arc::new(keys)),
                fetching: tokio::sync::Mutex::new(()),
                refetch_interval: self.refetch_interval,
                fetches: AtomicU64::new(0),
                online,
                clock: self.clock,
            }),
        }
    }

    /// Discovers the issuer (RFC 8414 metadata at
    /// `{issuer}/.well-known/oauth-authorization-server`, whose `issuer` must
    /// equal the configured one) and fetches its keys.
    pub async fn build(self) -> Result<Verifier, VerifyError> {
        let http = match &self.http {
            Some(client) => client.clone(),
            None => default_http_client()?,
        };
        let metadata = fetch_metadata(&http, &self.issuer).await?;
        let online = match &self.online {
            None => None,
            Some((client_id, secret)) => {
                let endpoint = metadata.introspection_endpoint.clone().ok_or_else(|| {
                    VerifyError::Discovery("the issuer has no introspection endpoint".into())
                })?;
                Some(Online::new(
                    http.clone(),
                    endpoint,
                    client_id.clone(),
                    secret.clone(),
                    self.online_cache_ttl,
                    self.clock.clone(),
                ))
            }
        };
        let source = Source {
            http,
            jwks_uri: metadata.jwks_uri,
        };
        let (set, ttl) = fetch_jwks(&source).await?;
        let keys = CachedKeys::fetched(Arc::new(set), self.clock.now(), ttl);
        let verifier = self.into_verifier(Some(source), keys, online);
        verifier.inner.fetches.fetch_add(1, Ordering::Relaxed);
        Ok(verifier)
    }

    /// A verifier over a fixed JWKS that never touches the network: for
    /// tests, benchmarks and air-gapped deployments that ship the keys.
    /// Online mode is not available this way and is ignored.
    pub fn build_with_jwks(self, jwks: &JwkSet) -> Verifier {
        let keys = CachedKeys::fetched(
            Arc::new(KeySet::from_jwks(jwks)),
            self.clock.now(),
            MAX_KEYS_TTL,
        );
        self.into_verifier(None, keys, None)
    }
}

impl Verifier {
    /// Starts configuring a verifier for tokens issued by `issuer` (exactly
    /// as it appears in the tokens' `iss`, e.g. `https://auth.example.com`)
    /// for `audience` (this resource server's identifier, as registered with
    /// `keygate apis add`).
    pub fn builder(issuer: impl Into<String>, audience: impl Into<String>) -> VerifierBuilder {
        VerifierBuilder {
            issuer: issuer.into(),
            audience: audience.into(),
            algorithms: DEFAULT_ALGORITHMS.to_vec(),
            leeway: DEFAULT_LEEWAY,
            refetch_interval: DEFAULT_REFETCH_INTERVAL,
            http: None,
            online: None,
            online_cache_ttl: DEFAULT_ONLINE_CACHE_TTL,
            realm: None,
            clock: Clock::System,
        }
    }

    /// A verifier over a fixed JWKS with default settings, which never
    /// touches the network: for tests, benchmarks and offline use.
    ///
    /// ```
    /// use keygate_verifier::{JwkSet, Verifier, VerifyError};
    ///
    /// let jwks: JwkSet = serde_json::from_str(r#"{"keys": []}"#).unwrap();
    /// let verifier = Verifier::from_jwks(&jwks, "https://auth.example.com", "https://api.example.com");
    /// assert_eq!(verifier.verify_offline("not.a.token"), Err(VerifyError::Malformed));
    /// ```
    pub fn from_jwks(
        jwks: &JwkSet,
        issuer: impl Into<String>,
        audience: impl Into<String>,
    ) -> Verifier {
        Self::builder(issuer, audience).build_with_jwks(jwks)
    }

    pub fn issuer(&self) -> &str {
        &self.inner.rules.issuer
    }

    pub fn audience(&self) -> &str {
        self.inner.rules.audience.as_deref().unwrap_or_default()
    }

    /// The `realm` of this verifier's `WWW-Authenticate` challenges.
    pub fn realm(&self) -> &str {
        &self.inner.realm
    }

    /// How many times the JWKS has been fetched, the first fetch included.
    pub fn jwks_fetches(&self) -> u64 {
        self.inner.fetches.load(Ordering::Relaxed)
    }

    /// The key IDs currently held.
    pub fn key_ids(&self) -> Vec<String> {
        self.current_keys().set.kids().map(str::to_owned).collect()
    }

    /// Validates `token` with the keys already held, without any network
    /// access (no refetch, no online confirmation). Synchronous and cheap:
    /// one signature verification.
    pub fn verify_offline(&self, token: &str) -> Result<Claims, VerifyError> {
        let keys = self.current_keys();
        validate::validate_token(token, &keys.set, &self.inner.rules, unix_now())
    }

    /// Validates `token`: refreshes the keys when their cache lifetime has
    /// passed or the token names an unknown `kid` (rate-limited), validates
    /// offline, then in online mode confirms through introspection.
    pub async fn verify(&self, token: &str) -> Result<Claims, VerifyError> {
        let rules = &self.inner.rules;
        let parsed = validate::parse(token, rules)?;
        let kid = parsed.kid().ok_or(VerifyError::MissingKeyId)?;
        let mut keys = self.current_keys();
        if self.inner.source.is_some() {
            let clock = &self.inner.clock;
            if keys.is_stale(clock.now()) {
                keys = self.refetch(|cached| cached.is_stale(clock.now())).await;
            }
            if !keys.set.contains(kid) {
                let interval = self.inner.refetch_interval;
                keys = self
                    .refetch(|cached| cached.may_refetch_for(kid, clock.now(), interval))
                    .await;
            }
        }
        let claims = validate::validate(&parsed, &keys.set, rules, unix_now())?;
        if let Some(online) = &self.inner.online {
            online.confirm(token, &claims).await?;
        }
        Ok(claims)
    }

    fn current_keys(&self) -> Arc<CachedKeys> {
        match self.inner.keys.read() {
            Ok(keys) => Arc::clone(&keys),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    fn store_keys(&self, keys: CachedKeys) -> Arc<CachedKeys> {
        let keys = Arc::new(keys);
        match self.inner.keys.write() {
            Ok(mut slot) => *slot = Arc::clone(&keys),
            Err(poisoned) => *poisoned.into_inner() = Arc::clone(&keys),
        }
        keys
    }

    /// Fetches the JWKS if `needed` still holds once this task has the fetch
    /// lock (concurrent callers wait for one fetch and share it). A failed
    /// fetch keeps the old keys and counts as an attempt, so a failing
    /// issuer is not retried before the refetch interval either.
    async fn refetch(&self, needed: impl Fn(&CachedKeys) -> bool) -> Arc<CachedKeys> {
        let Some(source) = &self.inner.source else {
            return self.current_keys();
        };
        let _guard = self.inner.fetching.lock().await;
        let cached = self.current_keys();
        if !needed(&cached) {
            return cached;
        }
        self.inner.fetches.fetch_add(1, Ordering::Relaxed);
        let now = self.inner.clock.now();
        match fetch_jwks(source).await {
            Ok((set, ttl)) => {
                tracing::debug!(keys = set.len(), "fetched the issuer's JWKS");
                self.store_keys(CachedKeys::fetched(Arc::new(set), now, ttl))
            }
            Err(error) => {
                tracing::warn!(%error, "could not refresh the issuer's JWKS; keeping the old keys");
                self.store_keys(CachedKeys::fetched(
                    Arc::clone(&cached.set),
                    now,
                    self.inner.refetch_interval.max(MIN_KEYS_TTL),
                ))
            }
        }
    }
}

/// Seconds since the Unix epoch (negative before it, which no real clock is).
fn unix_now() -> i64 {
    match std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        Ok(since) => i64::try_from(since.as_secs()).unwrap_or(i64::MAX),
        Err(before) => i64::try_from(before.duration().as_secs()).map_or(i64::MIN, |s| -s),
    }
}

fn default_http_client() -> Result<reqwest::Client, VerifyError> {
    reqwest::Client::builder()
        .timeout(HTTP_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| VerifyError::Discovery(e.to_string()))
}

#[derive(serde::Deserialize)]
struct Metadata {
    issuer: String,
    jwks_uri: String,
    introspection_endpoint: Option<String>,
}

/// RFC 8414 §3: the well-known segment goes between the host and the
/// issuer's path.
fn metadata_url(issuer: &str) -> Result<String, VerifyError> {
    let url = url::Url::parse(issuer)
        .map_err(|_| VerifyError::Discovery(format!("issuer {issuer:?} is not a URL")))?;
    if !matches!(url.scheme(), "https" | "http")
        || url.query().is_some()
        || url.fragment().is_some()
    {
        return Err(VerifyError::Discovery(format!(
            "issuer {issuer:?} must be an http(s) URL without query or fragment"
        )));
    }
    let path = url.path().trim_end_matches('/');
    Ok(format!(
        "{}/.well-known/oauth-authorization-server{path}",
        url.origin().ascii_serialization()
    ))
}

async fn get_document(http: &reqwest::Client, url: &str) -> Result<reqwest::Response, VerifyError> {
    let response = http
        .get(url)
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| VerifyError::Discovery(format!("GET {url}: {e}")))?;
    if !response.status().is_success() {
        return Err(VerifyError::Discovery(format!(
            "GET {url}: status {}",
            response.status()
        )));
    }
    if response
        .content_length()
        .is_some_and(|len| len > MAX_DOCUMENT_LEN as u64)
    {
        return Err(VerifyError::Discovery(format!("GET {url}: too large")));
    }
    Ok(response)
}

async fn read_json<T: serde::de::DeserializeOwned>(
    url: &str,
    response: reqwest::Response,
) -> Result<T, VerifyError> {
    let body = response
        .bytes()
        .await
        .map_err(|e| VerifyError::Discovery(format!("GET {url}: {e}")))?;
    if body.len() > MAX_DOCUMENT_LEN {
        return Err(VerifyError::Discovery(format!("GET {url}: too large")));
    }
    serde_json::from_slice(&body)
        .map_err(|e| VerifyError::Discovery(format!("GET {url}: not the expected JSON: {e}")))
}

async fn fetch_metadata(http: &reqwest::Client, issuer: &str) -> Result<Metadata, VerifyError> {
    let url = metadata_url(issuer)?;
    let metadata: Metadata = read_json(&url, get_document(http, &url).await?).await?;
    // RFC 8414 §3.3: the metadata must name the issuer it was fetched for.
    if metadata.issuer != issuer {
        return Err(VerifyError::Discovery(format!(
            "the metadata names issuer {:?}, not {issuer:?}",
            metadata.issuer
        )));
    }
    let jwks = url::Url::parse(&metadata.jwks_uri)
        .map_err(|_| VerifyError::Discovery("jwks_uri is not a URL".into()))?;
    let issuer_scheme = issuer.split(':').next().unwrap_or_default();
    if !(jwks.scheme() == "https" || jwks.scheme() == issuer_scheme) {
        return Err(VerifyError::Discovery(
            "jwks_uri must use https when the issuer does".into(),
        ));
    }
    Ok(metadata)
}

/// The key set and how long it may be cached.
async fn fetch_jwks(source: &Source) -> Result<(KeySet, Duration), VerifyError> {
    let url = &source.jwks_uri;
    let response = get_document(&source.http, url).await?;
    let ttl = response
        .headers()
        .get(reqwest::header::CACHE_CONTROL)
        .and_then(|v| v.to_str().ok())
        .map_or(DEFAULT_KEYS_TTL, cache_lifetime);
    let jwks: JwkSet = read_json(url, response).await?;
    Ok((KeySet::from_jwks(&jwks), ttl))
}

/// The lifetime `Cache-Control` grants, within [`MIN_KEYS_TTL`] and
/// [`MAX_KEYS_TTL`].
fn cache_lifetime(cache_control: &str) -> Duration {
    let mut lifetime = None;
    for directive in cache_control.split(',').map(str::trim) {
        let lower = directive.to_ascii_lowercase();
        if lower == "no-store" || lower == "no-cache" {
            return MIN_KEYS_TTL;
        }
        if let Some(secs) = lower.strip_prefix("max-age=") {
            lifetime = secs
                .trim_matches('"')
                .parse::<u64>()
                .ok()
                .map(Duration::from_secs);
        }
    }
    lifetime
        .unwrap_or(DEFAULT_KEYS_TTL)
        .clamp(MIN_KEYS_TTL, MAX_KEYS_TTL)
}

#[cfg(test)]
mod tests;
