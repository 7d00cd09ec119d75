//! Checking a subject token (RFC 8693 §2.1) against a federation's rule:
//! an asymmetric signature by one of the issuer's published keys, then
//! `iss`, `aud`, `exp`, `nbf`, `iat` (60 s leeway), `sub` and the rule's
//! claims, all on keygate's clock.
//!
//! A claim condition compares strings: a string claim must equal the value;
//! a number or boolean claim is compared by its JSON text (`true`, `42`);
//! an object, an array or a missing claim never matches.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;

use super::jwks::{JwksCache, JwksError};
use super::pattern;

/// Leeway on `exp`, `nbf` and `iat`, in seconds.
pub const LEEWAY_SECS: i64 = 60;
/// Longest subject token read.
pub const MAX_TOKEN_LEN: usize = 16 * 1024;

/// What a subject token must satisfy: one federation's rule.
#[derive(Debug, Clone)]
pub struct Rule {
    pub issuer: String,
    pub subject_pattern: String,
    pub audience: String,
    pub claims: BTreeMap<String, String>,
}

/// Why a subject token was not accepted: the audit log's `reason`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    Malformed,
    /// `none`, a symmetric algorithm or one keygate does not know.
    Algorithm(String),
    /// A header that points at a key (`jku`, `x5u`, `jwk`, `x5c`).
    KeyInHeader(&'static str),
    WrongIssuer,
    IssuerUnavailable(String),
    UnknownKey,
    BadSignature,
    WrongAudience,
    MissingExpiry,
    Expired,
    NotYetValid,
    IssuedInTheFuture,
    WrongSubject,
    ClaimMismatch(String),
}

impl Rejection {
    pub fn reason(&self) -> String {
        match self {
            Self::Malformed => "malformed".into(),
            Self::Algorithm(alg) => format!("algorithm not accepted: {alg}"),
            Self::KeyInHeader(name) => format!("header {name} not accepted"),
            Self::WrongIssuer => "issuer does not match".into(),
            Self::IssuerUnavailable(why) => format!("issuer keys unavailable: {why}"),
            Self::UnknownKey => "unknown signing key".into(),
            Self::BadSignature => "signature does not verify".into(),
            Self::WrongAudience => "audience does not match".into(),
            Self::MissingExpiry => "no exp".into(),
            Self::Expired => "expired".into(),
            Self::NotYetValid => "not yet valid (nbf)".into(),
            Self::IssuedInTheFuture => "issued in the future (iat)".into(),
            Self::WrongSubject => "subject does not match the pattern".into(),
            Self::ClaimMismatch(name) => format!("claim {name} does not match"),
        }
    }
}

/// What a token says of itself: its `iss` and `sub`, and whether its
/// signature was verified (what the audit log records, never the token).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Claimed {
    pub iss: Option<String>,
    pub sub: Option<String>,
    pub verified: bool,
}

/// Algorithms accepted: asymmetric ones only.
const ACCEPTED: &[(&str, Algorithm)] = &[
    ("RS256", Algorithm::RS256),
    ("RS384", Algorithm::RS384),
    ("RS512", Algorithm::RS512),
    ("PS256", Algorithm::PS256),
    ("PS384", Algorithm::PS384),
    ("PS512", Algorithm::PS512),
    ("ES256", Algorithm::ES256),
    ("ES384", Algorithm::ES384),
    ("EdDSA", Algorithm::EdDSA),
];

/// Headers that would name a key from outside the issuer's JWKS.
const KEY_HEADERS: &[&str] = &["jku", "x5u", "jwk", "x5c"];

/// Checks `token` against `rule`; the accepted token's claims, or why not
/// (with what the token claimed, for the audit log).
pub async fn check(
    cache: &JwksCache,
    rule: &Rule,
    token: &str,
    now: DateTime<Utc>,
) -> Result<Claimed, (Rejection, Claimed)> {
    let mut claimed = Claimed::default();
    let (header, payload) = split(token).ok_or_else(|| (Rejection::Malformed, claimed.clone()))?;
    claimed.iss = payload.get("iss").and_then(Value::as_str).map(short);
    claimed.sub = payload.get("sub").and_then(Value::as_str).map(short);
    let fail = |r: Rejection, c: &Claimed| Err((r, c.clone()));

    let alg_name = header.get("alg").and_then(Value::as_str).unwrap_or("");
    let Some(alg) = ACCEPTED
        .iter()
        .find(|(name, _)| *name == alg_name)
        .map(|(_, alg)| *alg)
    else {
        return fail(Rejection::Algorithm(short(alg_name)), &claimed);
    };
    if let Some(name) = KEY_HEADERS.iter().find(|h| header.get(**h).is_some()) {
        return fail(Rejection::KeyInHeader(name), &claimed);
    }
    // Only the rule's issuer's keys are ever fetched, never the token's.
    // The raw claim: `claimed.iss` is shortened for the audit log.
    if payload.get("iss").and_then(Value::as_str) != Some(rule.issuer.as_str()) {
        return fail(Rejection::WrongIssuer, &claimed);
    }
    let kid = header.get("kid").and_then(Value::as_str);
    let keys = match cache.keys(&rule.issuer, kid, now).await {
        Ok(keys) => keys,
        Err(JwksError::UnknownKey) => return fail(Rejection::UnknownKey, &claimed),
        Err(JwksError::Unavailable(why)) => {
            return fail(Rejection::IssuerUnavailable(why), &claimed);
        }
    };
    let mut validation = Validation::new(alg);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    // A set without kids: a few tries at most.
    // A key that names its algorithm verifies only that one.
    let verified = keys.iter().take(10).any(|jwk| {
        let named = jwk.common.key_algorithm.map(|a| a.to_string());
        if named.is_some_and(|named| named != alg_name) {
            return false;
        }
        DecodingKey::from_jwk(jwk)
            .and_then(|key| jsonwebtoken::decode::<Value>(token, &key, &validation))
            .is_ok()
    });
    if !verified {
        return fail(Rejection::BadSignature, &claimed);
    }
    claimed.verified = true;
    check_claims(rule, &payload, now).map_err(|r| (r, claimed.clone()))?;
    Ok(claimed)
}

/// The claims of a token whose signature verified.
fn check_claims(rule: &Rule, payload: &Value, now: DateTime<Utc>) -> Result<(), Rejection> {
    let aud_ok = match payload.get("aud") {
        Some(Value::String(aud)) => *aud == rule.audience,
        Some(Value::Array(auds)) => auds.iter().any(|a| a.as_str() == Some(&rule.audience)),
        _ => false,
    };
    if !aud_ok {
        return Err(Rejection::WrongAudience);
    }
    let now = now.timestamp();
    let time = |name: &str| payload.get(name).and_then(Value::as_f64);
    let Some(exp) = time("exp") else {
        return Err(Rejection::MissingExpiry);
    };
    if exp + as_f64(LEEWAY_SECS) <= as_f64(now) {
        return Err(Rejection::Expired);
    }
    if time("nbf").is_some_and(|nbf| nbf > as_f64(now + LEEWAY_SECS)) {
        return Err(Rejection::NotYetValid);
    }
    if time("iat").is_some_and(|iat| iat > as_f64(now + LEEWAY_SECS)) {
        return Err(Rejection::IssuedInTheFuture);
    }
    let sub = payload.get("sub").and_then(Value::as_str).unwrap_or("");
    if sub.is_empty() || !pattern::matches(&rule.subject_pattern, sub) {
        return Err(Rejection::WrongSubject);
    }
    for (name, expected) in &rule.claims {
        let matches = match payload.get(name) {
            Some(Value::String(value)) => value == expected,
            Some(value @ (Value::Bool(_) | Value::Number(_))) => {
                serde_json::from_str::<Value>(expected).ok().as_ref() == Some(value)
            }
            _ => false,
        };
        if !matches {
            return Err(Rejection::ClaimMismatch(name.clone()));
        }
    }
    Ok(())
}

#[allow(clippy::cast_precision_loss)]
fn as_f64(n: i64) -> f64 {
    n as f64
}

/// The header and payload of a compact JWS, unverified.
fn split(token: &str) -> Option<(Value, Value)> {
    if token.len() > MAX_TOKEN_LEN {
        return None;
    }
    let mut parts = token.split('.');
    let (header, payload, _signature) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let decode = |part: &str| -> Option<Value> {
        let bytes = URL_SAFE_NO_PAD.decode(part).ok()?;
        let value: Value = serde_json::from_slice(&bytes).ok()?;
        value.is_object().then_some(value)
    };
    Some((decode(header)?, decode(payload)?))
}

/// A claimed text fit for the audit log: at most 300 characters, no
/// control characters.
fn short(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).take(300).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule() -> Rule {
        Rule {
            issuer: "https://issuer".into(),
            subject_pattern: "repo:acme/app:*".into(),
            audience: "https://keygate".into(),
            claims: BTreeMap::from([
                ("repository".to_owned(), "acme/app".to_owned()),
                ("run_attempt".to_owned(), "1".to_owned()),
            ]),
        }
    }

    fn payload(now: i64) -> Value {
        serde_json::json!({
            "iss": "https://issuer", "aud": ["x", "https://keygate"],
            "sub": "repo:acme/app:ref:refs/heads/main", "repository": "acme/app",
            "run_attempt": 1, "exp": now + 300, "iat": now, "nbf": now,
        })
    }

    #[test]
    fn claims_are_checked_on_keygate_clock() {
        let now = Utc::now();
        let t = now.timestamp();
        assert_eq!(check_claims(&rule(), &payload(t), now), Ok(()));
        let with = |key: &str, value: Value| {
            let mut p = payload(t);
            p[key] = value;
            check_claims(&rule(), &p, now)
        };
        assert_eq!(with("aud", "other".into()), Err(Rejection::WrongAudience));
        assert_eq!(with("exp", (t - 61).into()), Err(Rejection::Expired));
        assert_eq!(with("exp", (t - 30).into()), Ok(()), "within the leeway");
        assert_eq!(with("nbf", (t + 120).into()), Err(Rejection::NotYetValid));
        assert_eq!(with("nbf", (t + 30).into()), Ok(()));
        assert_eq!(
            with("iat", (t + 120).into()),
            Err(Rejection::IssuedInTheFuture)
        );
        assert_eq!(
            with("sub", "repo:acme/other:x".into()),
            Err(Rejection::WrongSubject)
        );
        assert_eq!(
            with("repository", "acme/other".into()),
            Err(Rejection::ClaimMismatch("repository".into()))
        );
        assert_eq!(
            with("run_attempt", serde_json::json!([1])),
            Err(Rejection::ClaimMismatch("run_attempt".into()))
        );
        let mut no_exp = payload(t);
        no_exp.as_object_mut().unwrap().remove("exp");
        assert_eq!(
            check_claims(&rule(), &no_exp, now),
            Err(Rejection::MissingExpiry)
        );
    }

    #[tokio::test]
    async fn the_issuer_is_compared_whole_before_any_fetch() {
        let cache = JwksCache::new(super::super::JwksTuning::default()).unwrap();
        let issuer = format!("https://{}", "a".repeat(292));
        let rule = Rule {
            issuer: issuer.clone(),
            ..rule()
        };
        let part = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
        let h = part(&serde_json::json!({"alg": "ES256", "kid": "k"}));
        let p = part(&serde_json::json!({"iss": format!("{issuer}.evil"), "sub": "x"}));
        let (rejection, claimed) = check(&cache, &rule, &format!("{h}.{p}.sig"), Utc::now())
            .await
            .unwrap_err();
        assert_eq!(rejection, Rejection::WrongIssuer);
        assert_eq!(
            claimed.iss.map(|i| i.len()),
            Some(300),
            "shortened for the log"
        );
        assert!(!claimed.verified);
    }

    #[test]
    fn only_a_compact_jws_of_two_objects_is_read() {
        let part = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
        let h = part(&serde_json::json!({"alg": "ES256"}));
        let p = part(&serde_json::json!({"sub": "x"}));
        assert!(split(&format!("{h}.{p}.sig")).is_some());
        assert!(split(&format!("{h}.{p}")).is_none());
        assert!(split(&format!("{h}.{p}.a.b")).is_none());
        assert!(split(&format!("{h}.{}.s", part(&"x".into()))).is_none());
        assert!(split("not a token").is_none());
    }
}
