//! The identity provider as keygate's client of it, through the
//! `openidconnect` crate: its discovery document and keys (cached by this
//! process for an hour, fetched again at once when an ID token names a key
//! the cache has not), the authorization request (code flow, PKCE S256,
//! `state`, `nonce`, scope `openid email profile`), and the code exchanged
//! for an ID token whose signature, `iss`, `aud`, `exp` and `nonce` are
//! checked, read into the [`Identity`] it vouches for.
//!
//! Its HTTP client follows no redirects (a redirect from the provider is a
//! refusal, never a request elsewhere) and gives up after 10 seconds.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use openidconnect::core::{
    CoreAuthPrompt, CoreAuthenticationFlow, CoreClient, CoreClientAuthMethod, CoreIdTokenClaims,
    CoreProviderMetadata, CoreUserInfoClaims,
};
use openidconnect::{
    AuthType, AuthorizationCode, ClaimsVerificationError, ClientId, ClientSecret, CsrfToken,
    IssuerUrl, Nonce, OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope,
    SignatureVerificationError, TokenResponse,
};
use tokio::sync::Mutex;

use super::flow::Flow;
use super::settings::SsoSettings;

/// Google's issuer: its authorization endpoint refuses `prompt=login`.
const GOOGLE_ISSUER: &str = "https://accounts.google.com";
/// How long discovery and keys are kept before they are fetched again.
const METADATA_MAX_AGE: Duration = Duration::from_secs(3600);
/// A key the cache does not know fetches the keys again at once, then not
/// again for this long (a provider that keeps sending unknown keys is not
/// asked at every sign-in).
const MIN_REFRESH_INTERVAL: Duration = Duration::from_secs(30);
/// Every request to the provider gives up after this long.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Who the provider says signed in.
#[derive(Debug, Clone)]
pub struct Identity {
    /// The provider's `sub`.
    pub subject: String,
    /// Lower-cased; `None` when the provider shared none.
    pub email: Option<String>,
    /// `email_verified` exactly `true`.
    pub email_verified: bool,
    pub name: Option<String>,
    /// When the provider last had the person authenticate (`auth_time`),
    /// and when it issued the ID token (`iat`), both by its clock.
    pub authenticated_at: Option<chrono::DateTime<Utc>>,
    pub issued_at: chrono::DateTime<Utc>,
}

impl Identity {
    /// Whether the provider had the person authenticate within `window`
    /// before it issued the ID token: both times are the provider's, so
    /// keygate's clock plays no part. A token without `auth_time` (which
    /// `max_age` obliges a provider to send, and some still do not) is
    /// taken at its word that `prompt=login` or `max_age` was honoured.
    pub fn authenticated_within(&self, window: chrono::Duration) -> bool {
        self.authenticated_at
            .is_none_or(|at| self.issued_at - at <= window)
    }
}

/// What went wrong with the provider, in words for the log (never a token
/// or a code).
#[derive(Debug, thiserror::Error)]
pub enum ProviderProblem {
    #[error("the provider could not be reached or answered wrongly: {0}")]
    Unreachable(String),
    #[error("the provider refused the code: {0}")]
    CodeRefused(String),
    #[error("the ID token was not accepted: {0}")]
    IdToken(String),
}

struct Discovered {
    metadata: CoreProviderMetadata,
    at: Instant,
    /// When an unknown key last made it fetch again.
    forced_at: Option<Instant>,
}

pub(super) struct Provider {
    issuer: IssuerUrl,
    client_id: ClientId,
    client_secret: ClientSecret,
    redirect: RedirectUrl,
    http: reqwest::Client,
    discovered: Mutex<Option<Discovered>>,
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provider")
            .field("issuer", &self.issuer.as_str())
            .field("client_id", &self.client_id.as_str())
            .field("redirect", &self.redirect.as_str())
            .finish_non_exhaustive()
    }
}

impl Provider {
    pub(super) fn new(settings: &SsoSettings, redirect_uri: &str) -> Result<Self, String> {
        let issuer = IssuerUrl::new(settings.issuer.clone())
            .map_err(|e| format!("KEYGATE_OIDC_ISSUER: {e}"))?;
        let redirect = RedirectUrl::new(redirect_uri.to_owned())
            .map_err(|e| format!("the redirect URI {redirect_uri}: {e}"))?;
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(REQUEST_TIMEOUT)
            .user_agent(concat!("keygate/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("the identity provider's HTTP client: {e}"))?;
        Ok(Self {
            issuer,
            client_id: ClientId::new(settings.client_id.clone()),
            client_secret: ClientSecret::new(settings.client_secret.expose().to_owned()),
            redirect,
            http,
            discovered: Mutex::new(None),
        })
    }

    /// The discovery document and keys: cached, or fetched when older than
    /// an hour, or when `unknown_key` says an ID token named a key the cache
    /// lacks (at most once per [`MIN_REFRESH_INTERVAL`]). A failed fetch
    /// falls back on what the cache holds.
    async fn metadata(&self, unknown_key: bool) -> Result<CoreProviderMetadata, ProviderProblem> {
        let mut discovered = self.discovered.lock().await;
        let mut forced_at = None;
        if let Some(known) = discovered.as_ref() {
            let fresh = known.at.elapsed() < METADATA_MAX_AGE;
            let forced_lately = known
                .forced_at
                .is_some_and(|at| at.elapsed() < MIN_REFRESH_INTERVAL);
            if fresh && (!unknown_key || forced_lately) {
                return Ok(known.metadata.clone());
            }
            forced_at = if unknown_key {
                Some(Instant::now())
            } else {
                known.forced_at
            };
        }
        match CoreProviderMetadata::discover_async(self.issuer.clone(), &self.http).await {
            Ok(metadata) => {
                *discovered = Some(Discovered {
                    metadata: metadata.clone(),
                    at: Instant::now(),
                    forced_at,
                });
                Ok(metadata)
            }
            Err(e) => {
                let problem = error_chain(&e);
                match discovered.as_ref() {
                    Some(known) => {
                        tracing::warn!(
                            issuer = self.issuer.as_str(),
                            problem,
                            "identity provider discovery failed; using what was fetched before"
                        );
                        Ok(known.metadata.clone())
                    }
                    None => Err(ProviderProblem::Unreachable(problem)),
                }
            }
        }
    }

    /// keygate's client at the provider, as its metadata describes it:
    /// `client_secret_basic` unless the provider takes only
    /// `client_secret_post`.
    fn client(
        &self,
        metadata: CoreProviderMetadata,
    ) -> openidconnect::core::CoreClient<
        openidconnect::EndpointSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointMaybeSet,
        openidconnect::EndpointMaybeSet,
    > {
        let post_only = metadata
            .token_endpoint_auth_methods_supported()
            .is_some_and(|methods| {
                methods.contains(&CoreClientAuthMethod::ClientSecretPost)
                    && !methods.contains(&CoreClientAuthMethod::ClientSecretBasic)
            });
        let client = CoreClient::from_provider_metadata(
            metadata,
            self.client_id.clone(),
            Some(self.client_secret.clone()),
        )
        .set_redirect_uri(self.redirect.clone());
        if post_only {
            client.set_auth_type(AuthType::RequestBody)
        } else {
            client
        }
    }

    /// The URL to send the browser to, and the flow to remember until it
    /// comes back.
    pub(super) async fn authorization(
        &self,
        again: bool,
    ) -> Result<(String, Flow), ProviderProblem> {
        let client = self.client(self.metadata(false).await?);
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .add_scope(Scope::new("email".into()))
            .add_scope(Scope::new("profile".into()))
            .set_pkce_challenge(challenge);
        if again {
            // Signing in again (OpenID Connect Core §3.1.2.1): the provider
            // authenticates the person afresh rather than riding its own
            // session, and `max_age` obliges it to say when (`auth_time`).
            // Google refuses the whole request over `prompt=login`, a value
            // it does not support; `max_age` alone asks it the same.
            if self.issuer.as_str() != GOOGLE_ISSUER {
                request = request.add_prompt(CoreAuthPrompt::Login);
            }
            request = request.set_max_age(Duration::ZERO);
        }
        let (url, state, nonce) = request.url();
        let flow = Flow::new(
            state.secret().clone(),
            nonce.secret().clone(),
            verifier.secret().clone(),
        );
        Ok((url.into(), flow))
    }

    /// The code exchanged (with the flow's PKCE verifier) and the ID token
    /// checked against the flow's nonce at `now`; the email from the user
    /// info endpoint when the ID token carries none.
    pub(super) async fn identity(
        &self,
        code: &str,
        flow: &Flow,
        now: DateTime<Utc>,
    ) -> Result<Identity, ProviderProblem> {
        let client = self.client(self.metadata(false).await?);
        let request = client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .map_err(|e| ProviderProblem::Unreachable(e.to_string()))?
            .set_pkce_verifier(PkceCodeVerifier::new(flow.verifier().to_owned()));
        let token = request
            .request_async(&self.http)
            .await
            .map_err(|e| ProviderProblem::CodeRefused(error_chain(&e)))?;
        let id_token = token
            .id_token()
            .ok_or_else(|| ProviderProblem::IdToken("the token response has no id_token".into()))?;
        let nonce = Nonce::new(flow.nonce().to_owned());
        let verified = {
            let verifier = client.id_token_verifier().set_time_fn(move || now);
            id_token.claims(&verifier, &nonce).cloned()
        };
        let claims: CoreIdTokenClaims = match verified {
            Ok(claims) => claims,
            Err(ClaimsVerificationError::SignatureVerification(
                SignatureVerificationError::NoMatchingKey,
            )) => {
                // The provider may have rotated its keys since the cache
                // was filled: fetch them again, once.
                let client = self.client(self.metadata(true).await?);
                let verifier = client.id_token_verifier().set_time_fn(move || now);
                id_token
                    .claims(&verifier, &nonce)
                    .cloned()
                    .map_err(|e| ProviderProblem::IdToken(error_chain(&e)))?
            }
            Err(e) => return Err(ProviderProblem::IdToken(error_chain(&e))),
        };
        // Entra ID sends no `email_verified`: its `xms_edov` optional claim
        // (the email's domain verified by the tenant) says the same.
        let email_verified = claims
            .email_verified()
            .or_else(|| payload_bool(&id_token.to_string(), "xms_edov"))
            == Some(true);
        let mut identity = Identity {
            subject: claims.subject().as_str().to_owned(),
            email: claims.email().map(|e| e.as_str().to_lowercase()),
            email_verified,
            name: claims
                .name()
                .and_then(|n| n.get(None))
                .map(|n| n.as_str().to_owned()),
            authenticated_at: claims.auth_time(),
            issued_at: claims.issue_time(),
        };
        if identity.email.is_none()
            && let Ok(request) =
                client.user_info(token.access_token().clone(), Some(claims.subject().clone()))
        {
            let info: CoreUserInfoClaims = request
                .request_async(&self.http)
                .await
                .map_err(|e| ProviderProblem::Unreachable(error_chain(&e)))?;
            identity.email = info.email().map(|e| e.as_str().to_lowercase());
            identity.email_verified = info.email_verified() == Some(true);
        }
        Ok(identity)
    }
}

/// A boolean claim of a JWT whose signature was already checked, which the
/// crate's standard claims do not name.
fn payload_bool(jwt: &str, claim: &str) -> Option<bool> {
    use base64::Engine;
    let payload = jwt.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    match &claims[claim] {
        serde_json::Value::Bool(value) => Some(*value),
        serde_json::Value::String(text) => text.parse().ok(),
        _ => None,
    }
}

/// An error and its causes on one line.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fresh_authentication_is_one_the_provider_dates_near_its_token() {
        let issued_at = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let identity = |authenticated_at| Identity {
            subject: "s".into(),
            email: None,
            email_verified: false,
            name: None,
            authenticated_at,
            issued_at,
        };
        let window = chrono::Duration::minutes(15);
        assert!(identity(Some(issued_at)).authenticated_within(window));
        assert!(identity(Some(issued_at - window)).authenticated_within(window));
        let old = issued_at - window - chrono::Duration::seconds(1);
        assert!(!identity(Some(old)).authenticated_within(window));
        assert!(
            identity(None).authenticated_within(window),
            "no auth_time: the provider is taken at its word"
        );
    }

    #[test]
    fn a_claim_the_crate_does_not_name_is_read_from_the_payload() {
        use base64::Engine;
        let encode =
            |json: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json.as_bytes());
        let jwt =
            |payload: &str| format!("{}.{}.sig", encode(r#"{"alg":"RS256"}"#), encode(payload));
        assert_eq!(
            payload_bool(&jwt(r#"{"xms_edov":true}"#), "xms_edov"),
            Some(true)
        );
        assert_eq!(
            payload_bool(&jwt(r#"{"xms_edov":"false"}"#), "xms_edov"),
            Some(false)
        );
        assert_eq!(payload_bool(&jwt(r#"{"xms_edov":1}"#), "xms_edov"), None);
        assert_eq!(payload_bool(&jwt("{}"), "xms_edov"), None);
        assert_eq!(payload_bool("not a jwt", "xms_edov"), None);
    }
}
