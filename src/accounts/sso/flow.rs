//! A sign-in through the provider between its start and the browser's
//! return: the `state`, `nonce` and PKCE verifier sent out, where to go
//! afterwards, and when it started. The browser carries it in a cookie
//! sealed (AES-256-GCM under a key of its own derived from
//! `KEYGATE_SECRET_KEY`), so every keygate process can finish a flow
//! another started, the browser can neither read nor alter it, and nothing
//! is stored until someone has signed in.
//!
//! The cookie is `HttpOnly`, `SameSite=Lax` (the provider sends the browser
//! back with a top-level GET, which `Lax` lets it carry), lives 10 minutes
//! and is removed by the callback whatever its outcome, so a callback
//! replayed later finds no flow.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::signing::AtRest;

/// How long a browser may take at the provider.
pub const FLOW_LIFETIME: Duration = Duration::minutes(10);
/// The cookie's name under an https issuer (`__Host-`: `Secure`, `Path=/`,
/// no `Domain`).
pub const SECURE_FLOW_COOKIE_NAME: &str = "__Host-keygate-sso";
/// The cookie's name under a plain-http issuer.
pub const PLAIN_FLOW_COOKIE_NAME: &str = "keygate-sso";

/// Bound as associated data, so no other sealed value opens as a flow.
const AAD: &str = "sso flow v1";
/// The longest cookie value read.
const MAX_SEALED: usize = 2048;

/// The secrets of one flow. Wiped on drop, never printed.
pub(super) struct Flow {
    state: Zeroizing<String>,
    nonce: Zeroizing<String>,
    verifier: Zeroizing<String>,
}

impl Flow {
    pub(super) fn new(state: String, nonce: String, verifier: String) -> Self {
        Self {
            state: Zeroizing::new(state),
            nonce: Zeroizing::new(nonce),
            verifier: Zeroizing::new(verifier),
        }
    }

    pub(super) fn nonce(&self) -> &str {
        &self.nonce
    }

    pub(super) fn verifier(&self) -> &str {
        &self.verifier
    }

    /// Whether the `state` that came back is this flow's; constant-time.
    pub(super) fn state_matches(&self, presented: &str) -> bool {
        !presented.is_empty() && bool::from(self.state.as_bytes().ct_eq(presented.as_bytes()))
    }
}

impl fmt::Debug for Flow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Flow(redacted)")
    }
}

/// What the cookie holds, sealed; wiped on drop.
#[derive(Serialize, Deserialize, zeroize::Zeroize, zeroize::ZeroizeOnDrop)]
struct Sealed {
    state: String,
    nonce: String,
    verifier: String,
    next: String,
    started: i64,
    /// Signing in again: the provider was asked to authenticate afresh.
    #[serde(default)]
    again: bool,
}

/// A flow opened from its cookie.
pub(super) struct Opened {
    pub flow: Flow,
    /// The local path to go to once signed in.
    pub next: String,
    /// Signing in again ([`seal`]'s `again`).
    pub again: bool,
}

/// The flow sealed into a cookie value, with the local path to go to
/// afterwards and whether it signs the person in again.
pub(super) fn seal(
    key: &AtRest,
    flow: &Flow,
    (next, again): (&str, bool),
    now: DateTime<Utc>,
) -> Option<String> {
    let sealed = Sealed {
        state: flow.state.to_string(),
        nonce: flow.nonce.to_string(),
        verifier: flow.verifier.to_string(),
        next: next.to_owned(),
        started: now.timestamp(),
        again,
    };
    let plain = Zeroizing::new(serde_json::to_vec(&sealed).ok()?);
    let bytes = key.seal(AAD, &plain).ok()?;
    Some(URL_SAFE_NO_PAD.encode(bytes))
}

/// The flow a cookie value holds, if it is one keygate sealed less than
/// [`FLOW_LIFETIME`] before `now`.
pub(super) fn open(key: &AtRest, value: &str, now: DateTime<Utc>) -> Option<Opened> {
    if value.len() > MAX_SEALED {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD.decode(value).ok()?;
    let plain = key.open(AAD, &bytes).ok()?;
    let mut sealed: Sealed = serde_json::from_slice(&plain).ok()?;
    let started = DateTime::from_timestamp(sealed.started, 0)?;
    let flow = Flow::new(
        std::mem::take(&mut sealed.state),
        std::mem::take(&mut sealed.nonce),
        std::mem::take(&mut sealed.verifier),
    );
    // A flow from the future (another process's clock ahead) is as good as
    // a fresh one; one older than its lifetime is over.
    if now - started > FLOW_LIFETIME {
        return None;
    }
    Some(Opened {
        flow,
        next: std::mem::take(&mut sealed.next),
        again: sealed.again,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signing::MasterKey;

    fn key() -> AtRest {
        AtRest::for_purpose(&MasterKey::generate(), b"test")
    }

    #[test]
    fn a_sealed_flow_opens_until_it_expires() {
        let key = key();
        let now = Utc::now();
        // Long enough that random ciphertext cannot hold them by chance
        // (two letters would, in about one run of twenty).
        let (state, nonce, verifier) =
            ("stateX0f3a9c1e7b", "nonceX5b7d2e8a4c", "verifierX9c4f1a6d");
        let flow = Flow::new(state.into(), nonce.into(), verifier.into());
        let value = seal(&key, &flow, ("/keys/kg_1", true), now).unwrap();
        for secret in [state, nonce, verifier] {
            assert!(!value.contains(secret), "{value}");
        }
        let opened = open(&key, &value, now + Duration::minutes(9)).unwrap();
        assert_eq!(opened.next, "/keys/kg_1");
        assert!(opened.again);
        assert!(opened.flow.state_matches(state));
        assert!(!opened.flow.state_matches("stateX0f3a9c1e7B"));
        assert!(!opened.flow.state_matches(""));
        assert_eq!(opened.flow.nonce(), nonce);
        assert_eq!(opened.flow.verifier(), verifier);
        assert!(open(&key, &value, now + Duration::minutes(11)).is_none());
    }

    #[test]
    fn a_cookie_from_another_key_or_altered_does_not_open() {
        let now = Utc::now();
        let flow = Flow::new("st".into(), "no".into(), "ve".into());
        let value = seal(&key(), &flow, ("/", false), now).unwrap();
        assert!(open(&key(), &value, now).is_none());
        let key = key();
        let value = seal(&key, &flow, ("/", false), now).unwrap();
        let mut altered = value.into_bytes();
        altered[20] = if altered[20] == b'A' { b'B' } else { b'A' };
        assert!(open(&key, &String::from_utf8(altered).unwrap(), now).is_none());
        assert!(open(&key, "not base64!", now).is_none());
        assert!(open(&key, &"A".repeat(5000), now).is_none());
    }

    #[test]
    fn flows_print_nothing_secret() {
        let flow = Flow::new("st".into(), "no".into(), "ve".into());
        assert_eq!(format!("{flow:?}"), "Flow(redacted)");
    }
}
