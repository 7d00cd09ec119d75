//! `private_key_jwt` client assertions (RFC 7523 §2.2, §3): read without
//! trusting them (which client they name, which algorithm and key), then
//! verified against the key's public keys, then their claims checked with
//! the request's `now`. Each refusal has its own reason for the audit log;
//! the client always sees the same `invalid_client`.

use std::collections::HashSet;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, Validation};
use serde_json::{Map, Value};

pub use crate::keys::public_keys::ALGORITHMS;
use crate::keys::public_keys::VerifyingKey;

/// RFC 7523 §2.2: the only `client_assertion_type`.
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// Clock skew forgiven on `exp`, `iat` and `nbf`.
pub const LEEWAY_SECS: i64 = 60;
/// The longest an assertion may live (`exp - iat`).
pub const MAX_LIFETIME_SECS: i64 = 3600;
const MAX_ASSERTION_LEN: usize = 16 * 1024;
const MAX_JTI_LEN: usize = 256;
/// Header parameters that would let the assertion choose its own key, or
/// that ask for extensions keygate does not understand.
const REFUSED_HEADERS: [&str; 5] = ["jku", "x5u", "jwk", "x5c", "crit"];

/// Why an assertion was refused: the audit log's `reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssertionFailure {
    /// Not a JWS compact serialization of JSON objects, or oversized.
    Malformed,
    /// `none`, `HS*` or any algorithm not in [`ALGORITHMS`].
    AlgorithmRefused,
    /// `jku`, `x5u`, `jwk`, `x5c` or `crit` in the header.
    HeaderRefused,
    /// `iss` and `sub` missing or different, or the `client_id` parameter
    /// naming another client.
    IssuerMismatch,
    /// No key of the client (by `kid`, or of the algorithm's type) verifies it.
    BadSignature,
    WrongAudience,
    /// `exp`, `iat` or `jti` missing.
    MissingClaim,
    Expired,
    /// `iat` or `nbf` in the future.
    NotYetValid,
    /// `exp` more than 60 minutes after `iat`.
    LifetimeTooLong,
    /// Its `jti` was accepted before.
    Replayed,
}

impl AssertionFailure {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Malformed => "assertion_malformed",
            Self::AlgorithmRefused => "assertion_algorithm_refused",
            Self::HeaderRefused => "assertion_header_refused",
            Self::IssuerMismatch => "assertion_issuer_mismatch",
            Self::BadSignature => "assertion_bad_signature",
            Self::WrongAudience => "assertion_wrong_audience",
            Self::MissingClaim => "assertion_missing_claim",
            Self::Expired => "assertion_expired",
            Self::NotYetValid => "assertion_not_yet_valid",
            Self::LifetimeTooLong => "assertion_lifetime_too_long",
            Self::Replayed => "assertion_replayed",
        }
    }
}

/// An assertion as read, before its signature is checked: nothing in it
/// is trusted yet but the shape.
pub struct Unverified<'a> {
    /// `iss` (equal to `sub`): the client it claims to be.
    pub client_id: String,
    alg: Algorithm,
    kid: Option<String>,
    jwt: &'a str,
}

/// A refusal before the signature is checked, with the client ID the
/// assertion or the request named, if any (for the audit log).
pub type ReadFailure = (Option<String>, AssertionFailure);

/// Reads an assertion without trusting it. `client_id` is the request's
/// `client_id` parameter, if sent.
pub fn read<'a>(jwt: &'a str, client_id: Option<&str>) -> Result<Unverified<'a>, ReadFailure> {
    let named = client_id.map(str::to_owned);
    let malformed = || (named.clone(), AssertionFailure::Malformed);
    if jwt.len() > MAX_ASSERTION_LEN {
        return Err(malformed());
    }
    let mut parts = jwt.split('.');
    let (Some(header), Some(payload), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed());
    };
    let header = json_object(header).ok_or_else(malformed)?;
    let claims = json_object(payload).ok_or_else(malformed)?;
    let string = |name: &str| claims.get(name).and_then(Value::as_str).map(str::to_owned);
    let (iss, sub) = (string("iss"), string("sub"));
    let who = named
        .clone()
        .or_else(|| sub.clone())
        .or_else(|| iss.clone());
    let fail = |failure| Err((who.clone(), failure));

    let alg = header.get("alg").and_then(Value::as_str).unwrap_or("none");
    if !ALGORITHMS.contains(&alg) {
        return fail(AssertionFailure::AlgorithmRefused);
    }
    let Ok(alg) = Algorithm::from_str(alg) else {
        return fail(AssertionFailure::AlgorithmRefused);
    };
    if REFUSED_HEADERS
        .iter()
        .any(|name| header.contains_key(*name))
    {
        return fail(AssertionFailure::HeaderRefused);
    }
    let kid = match header.get("kid") {
        None => None,
        Some(Value::String(kid)) => Some(kid.clone()),
        Some(_) => return fail(AssertionFailure::Malformed),
    };
    match (iss, sub) {
        (Some(iss), Some(sub)) if iss == sub && client_id.is_none_or(|named| named == iss) => {
            Ok(Unverified {
                client_id: iss,
                alg,
                kid,
                jwt,
            })
        }
        _ => fail(AssertionFailure::IssuerMismatch),
    }
}

fn json_object(segment: &str) -> Option<Map<String, Value>> {
    let bytes = URL_SAFE_NO_PAD.decode(segment).ok()?;
    match serde_json::from_slice(&bytes).ok()? {
        Value::Object(map) => Some(map),
        _ => None,
    }
}

/// An assertion that passed every check but the replay check: its `jti`
/// and until when that must be remembered.
#[derive(Debug)]
pub struct Verified {
    pub jti: String,
    pub remember_until: DateTime<Utc>,
}

impl Unverified<'_> {
    /// Checks the signature with the client's `keys` (the one its `kid`
    /// names, or each that fits its algorithm), then the claims: `aud`
    /// holds one of `audiences`, `exp`, `iat` and `jti` present, not
    /// expired, not issued or valid only in the future, at most 60 minutes long.
    pub fn verify(
        &self,
        keys: &[VerifyingKey],
        audiences: &[&str],
        now: DateTime<Utc>,
    ) -> Result<Verified, AssertionFailure> {
        let mut validation = Validation::new(self.alg);
        // Time and audience are checked below, against the request's `now`.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.required_spec_claims = HashSet::new();
        let claims = keys
            .iter()
            .filter(|key| key.fits(self.alg))
            .filter(|key| self.kid.is_none() || key.kid == self.kid)
            .find_map(|key| {
                jsonwebtoken::decode::<Map<String, Value>>(self.jwt, &key.key, &validation).ok()
            })
            .ok_or(AssertionFailure::BadSignature)?
            .claims;
        check_claims(&claims, audiences, now)
    }
}

fn check_claims(
    claims: &Map<String, Value>,
    audiences: &[&str],
    now: DateTime<Utc>,
) -> Result<Verified, AssertionFailure> {
    let aud_ok = match claims.get("aud") {
        Some(Value::String(aud)) => audiences.contains(&aud.as_str()),
        Some(Value::Array(auds)) => auds
            .iter()
            .filter_map(Value::as_str)
            .any(|aud| audiences.contains(&aud)),
        _ => false,
    };
    if !aud_ok {
        return Err(AssertionFailure::WrongAudience);
    }
    let time = |name: &str| claims.get(name).and_then(Value::as_i64);
    let (Some(exp), Some(iat)) = (time("exp"), time("iat")) else {
        return Err(AssertionFailure::MissingClaim);
    };
    let jti = match claims.get("jti") {
        Some(Value::String(jti)) if !jti.is_empty() && jti.len() <= MAX_JTI_LEN => jti.clone(),
        _ => return Err(AssertionFailure::MissingClaim),
    };
    let now_secs = now.timestamp();
    if exp.saturating_add(LEEWAY_SECS) <= now_secs {
        return Err(AssertionFailure::Expired);
    }
    if iat > now_secs.saturating_add(LEEWAY_SECS)
        || time("nbf").is_some_and(|nbf| nbf > now_secs.saturating_add(LEEWAY_SECS))
    {
        return Err(AssertionFailure::NotYetValid);
    }
    if claims.contains_key("nbf") && time("nbf").is_none() {
        return Err(AssertionFailure::Malformed);
    }
    if exp.saturating_sub(iat) > MAX_LIFETIME_SECS {
        return Err(AssertionFailure::LifetimeTooLong);
    }
    let remember_until = DateTime::from_timestamp(exp.saturating_add(LEEWAY_SECS), 0)
        .ok_or(AssertionFailure::Malformed)?;
    Ok(Verified {
        jti,
        remember_until,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(value: Value) -> String {
        URL_SAFE_NO_PAD.encode(value.to_string())
    }

    fn jwt(header: Value, claims: Value) -> String {
        format!("{}.{}.c2ln", segment(header), segment(claims))
    }

    #[test]
    fn none_hmac_and_key_carrying_headers_are_refused() {
        let claims = serde_json::json!({"iss": "kg_a", "sub": "kg_a"});
        for (header, failure) in [
            (
                serde_json::json!({"alg": "none"}),
                AssertionFailure::AlgorithmRefused,
            ),
            (
                serde_json::json!({"alg": "HS256"}),
                AssertionFailure::AlgorithmRefused,
            ),
            (serde_json::json!({}), AssertionFailure::AlgorithmRefused),
            (
                serde_json::json!({"alg": "ES256", "jku": "https://x"}),
                AssertionFailure::HeaderRefused,
            ),
            (
                serde_json::json!({"alg": "ES256", "jwk": {}}),
                AssertionFailure::HeaderRefused,
            ),
        ] {
            let token = jwt(header, claims.clone());
            let (who, got) = read(&token, None).err().unwrap();
            assert_eq!((who.as_deref(), got), (Some("kg_a"), failure));
        }
    }

    #[test]
    fn iss_sub_and_client_id_must_agree() {
        let header = serde_json::json!({"alg": "ES256"});
        let token = jwt(
            header.clone(),
            serde_json::json!({"iss": "kg_a", "sub": "kg_b"}),
        );
        assert_eq!(
            read(&token, None).err().unwrap().1,
            AssertionFailure::IssuerMismatch
        );
        let token = jwt(header, serde_json::json!({"iss": "kg_a", "sub": "kg_a"}));
        assert_eq!(read(&token, Some("kg_a")).ok().unwrap().client_id, "kg_a");
        assert_eq!(
            read(&token, Some("kg_c")).err().unwrap(),
            (Some("kg_c".to_owned()), AssertionFailure::IssuerMismatch)
        );
        assert_eq!(
            read("a.b", None).err().unwrap().1,
            AssertionFailure::Malformed
        );
    }

    #[test]
    fn claims_are_checked_against_now() {
        let now = Utc::now();
        let t = now.timestamp();
        let aud = ["https://kg/oauth/token", "https://kg"];
        let check = |claims: Value| check_claims(claims.as_object().unwrap(), &aud, now);
        let ok = serde_json::json!({"aud": "https://kg", "exp": t + 60, "iat": t, "jti": "j"});
        assert!(check(ok.clone()).is_ok());
        let with = |k: &str, v: Value| {
            let mut c = ok.clone();
            c[k] = v;
            c
        };
        let without = |k: &str| {
            let mut c = ok.clone();
            c.as_object_mut().unwrap().remove(k);
            c
        };
        use AssertionFailure::*;
        assert_eq!(
            check(with("aud", "https://other".into())).err(),
            Some(WrongAudience)
        );
        assert_eq!(
            check(with(
                "aud",
                serde_json::json!(["x", "https://kg/oauth/token"])
            ))
            .err(),
            None
        );
        assert_eq!(check(without("exp")).err(), Some(MissingClaim));
        assert_eq!(check(without("iat")).err(), Some(MissingClaim));
        assert_eq!(check(without("jti")).err(), Some(MissingClaim));
        assert_eq!(check(with("exp", (t - 61).into())).err(), Some(Expired));
        assert_eq!(
            check(with("nbf", (t + 120).into())).err(),
            Some(NotYetValid)
        );
        assert_eq!(
            check(with("exp", (t + 3601).into())).err(),
            Some(LifetimeTooLong)
        );
    }
}
