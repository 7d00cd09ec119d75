//! RFC 9068 §4 validation of one access token against a key set: pure, no
//! I/O, shared by the resource-server [`Verifier`](super::Verifier) and
//! keygate's own introspection endpoint.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use serde::Deserialize;

use super::claims::Claims;
use super::error::VerifyError;
use super::keys::KeySet;

/// Longer tokens are refused before any decoding.
pub const MAX_TOKEN_LEN: usize = 16 * 1024;

/// What a token must satisfy besides a good signature.
#[derive(Debug, Clone)]
pub struct Rules {
    pub issuer: String,
    /// `None` accepts any audience (keygate's introspection endpoint).
    pub audience: Option<String>,
    /// Asymmetric algorithms only; `none` and HMAC are refused whatever
    /// this holds.
    pub algorithms: Vec<Algorithm>,
    /// Seconds of clock skew tolerated on `exp` and `nbf`.
    pub leeway_secs: u64,
}

/// The JOSE header, as far as validation needs it. `jku`, `x5u`, `jwk` and
/// `x5c` are ignored on purpose: keys come only from the issuer's JWKS.
#[derive(Deserialize)]
struct Header {
    alg: String,
    typ: Option<String>,
    kid: Option<String>,
    crit: Option<serde_json::Value>,
}

/// The parts of a compact JWS, header decoded.
pub struct Parsed<'a> {
    alg: Algorithm,
    header: Header,
    signing_input: &'a str,
    payload_b64: &'a str,
    signature_b64: &'a str,
}

impl Parsed<'_> {
    pub fn kid(&self) -> Option<&str> {
        self.header.kid.as_deref()
    }
}

/// Splits the token and checks the header alone: algorithm, type,
/// critical extensions, key ID present.
pub fn parse<'a>(token: &'a str, rules: &Rules) -> Result<Parsed<'a>, VerifyError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(VerifyError::Malformed);
    }
    let mut parts = token.split('.');
    let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(VerifyError::Malformed);
    };
    let header_json = URL_SAFE_NO_PAD
        .decode(header_b64)
        .map_err(|_| VerifyError::Malformed)?;
    let header: Header = json_object(&header_json)?;

    let alg = allowed_algorithm(&header.alg, &rules.algorithms)
        .ok_or(VerifyError::AlgorithmNotAllowed)?;
    if !header.typ.as_deref().is_some_and(is_access_token_type) {
        return Err(VerifyError::WrongType);
    }
    if header.crit.is_some() {
        return Err(VerifyError::UnsupportedCritical);
    }
    if header.kid.is_none() {
        return Err(VerifyError::MissingKeyId);
    }
    let signing_input = &token[..header_b64.len() + 1 + payload_b64.len()];
    Ok(Parsed {
        alg,
        header,
        signing_input,
        payload_b64,
        signature_b64,
    })
}

/// Verifies the signature with the header's key, then the claims.
pub fn validate(
    parsed: &Parsed<'_>,
    keys: &KeySet,
    rules: &Rules,
    now: i64,
) -> Result<Claims, VerifyError> {
    let kid = parsed.kid().ok_or(VerifyError::MissingKeyId)?;
    let key = keys.get(kid).ok_or(VerifyError::UnknownKey)?;
    if key.alg != parsed.alg {
        return Err(VerifyError::KeyMismatch);
    }
    let verified = jsonwebtoken::crypto::verify(
        parsed.signature_b64,
        parsed.signing_input.as_bytes(),
        &key.key,
        key.alg,
    )
    .map_err(|_| VerifyError::BadSignature)?;
    if !verified {
        return Err(VerifyError::BadSignature);
    }
    let payload = URL_SAFE_NO_PAD
        .decode(parsed.payload_b64)
        .map_err(|_| VerifyError::Malformed)?;
    let raw: RawClaims = json_object(&payload)?;
    check_claims(raw, rules, now)
}

/// A JSON object read into `T`: the JOSE header and the claims set must be
/// UTF-8 JSON objects (RFC 7515 §5.2, RFC 7519 §7.2). serde alone is more
/// lenient on both counts: it fills a struct from a JSON array of its
/// fields in order, and skips the members it ignores without checking that
/// they are UTF-8. A repeated member is refused.
fn json_object<T: serde::de::DeserializeOwned>(json: &[u8]) -> Result<T, VerifyError> {
    let text = std::str::from_utf8(json).map_err(|_| VerifyError::Malformed)?;
    if !text.trim_start().starts_with('{') {
        return Err(VerifyError::Malformed);
    }
    serde_json::from_str(text).map_err(|_| VerifyError::Malformed)
}

/// [`parse`] then [`validate`].
pub fn validate_token(
    token: &str,
    keys: &KeySet,
    rules: &Rules,
    now: i64,
) -> Result<Claims, VerifyError> {
    validate(&parse(token, rules)?, keys, rules, now)
}

/// RFC 9068 §2.1: `at+jwt`, or the full media type, case-insensitively.
fn is_access_token_type(typ: &str) -> bool {
    typ.eq_ignore_ascii_case("at+jwt") || typ.eq_ignore_ascii_case("application/at+jwt")
}

const ASYMMETRIC: [Algorithm; 9] = [
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
];

/// The header's algorithm when it is asymmetric and allowed.
fn allowed_algorithm(alg: &str, allowed: &[Algorithm]) -> Option<Algorithm> {
    let alg: Algorithm = alg.parse().ok()?;
    (ASYMMETRIC.contains(&alg) && allowed.contains(&alg)).then_some(alg)
}

/// `aud` as RFC 7519 §4.1.3 allows: one string or an array of them.
#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
struct RawClaims {
    iss: Option<String>,
    sub: Option<String>,
    aud: Option<OneOrMany>,
    client_id: Option<String>,
    scope: Option<String>,
    iat: Option<i64>,
    exp: Option<i64>,
    nbf: Option<i64>,
    jti: Option<String>,
}

fn check_claims(raw: RawClaims, rules: &Rules, now: i64) -> Result<Claims, VerifyError> {
    let iss = raw.iss.ok_or(VerifyError::MissingClaim("iss"))?;
    let exp = raw.exp.ok_or(VerifyError::MissingClaim("exp"))?;
    let aud = match raw.aud.ok_or(VerifyError::MissingClaim("aud"))? {
        OneOrMany::One(one) => vec![one],
        OneOrMany::Many(many) if !many.is_empty() => many,
        OneOrMany::Many(_) => return Err(VerifyError::MissingClaim("aud")),
    };
    let sub = raw.sub.ok_or(VerifyError::MissingClaim("sub"))?;
    let client_id = raw
        .client_id
        .ok_or(VerifyError::MissingClaim("client_id"))?;
    let iat = raw.iat.ok_or(VerifyError::MissingClaim("iat"))?;
    let jti = raw.jti.ok_or(VerifyError::MissingClaim("jti"))?;

    if iss != rules.issuer {
        return Err(VerifyError::WrongIssuer);
    }
    if let Some(expected) = &rules.audience
        && !aud.iter().any(|a| a == expected)
    {
        return Err(VerifyError::WrongAudience);
    }
    let leeway = i64::try_from(rules.leeway_secs).unwrap_or(i64::MAX);
    // RFC 7519 §4.1.4: not accepted on or after `exp`.
    if now >= exp.saturating_add(leeway) {
        return Err(VerifyError::Expired);
    }
    if raw.nbf.is_some_and(|nbf| now.saturating_add(leeway) < nbf) {
        return Err(VerifyError::NotYetValid);
    }
    Ok(Claims {
        iss,
        sub,
        aud,
        client_id,
        scope: raw.scope.unwrap_or_default(),
        iat,
        exp,
        nbf: raw.nbf,
        jti,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn never_panics(token in "[A-Za-z0-9_.=-]{0,300}") {
            let _ = validate_token(&token, &KeySet::default(), &rules(), 0);
        }

        #[test]
        fn never_panics_on_any_header(header in "\\PC{0,80}") {
            let t = format!("{}.e30.c2ln", URL_SAFE_NO_PAD.encode(header));
            let _ = validate_token(&t, &KeySet::default(), &rules(), 0);
        }
    }

    /// Found by `benches/fuzz.rs` (offline_signed): a header or claims set
    /// written as a JSON array of the members' values was read as if it were
    /// the object, so a signed `["EdDSA","at+jwt","ed"]` passed as a header.
    #[test]
    fn header_and_claims_must_be_json_objects() {
        let array_header = format!(
            "{}.e30.c2ln",
            URL_SAFE_NO_PAD.encode(r#"["ES256","at+jwt","k"]"#)
        );
        assert_eq!(
            parse(&array_header, &rules()).err(),
            Some(VerifyError::Malformed)
        );
        let claims = r#" ["https://issuer","c",["https://api"],"c","read",100,200,null,"j"]"#;
        assert!(json_object::<RawClaims>(claims.as_bytes()).is_err());
        let object = r#" {"iss":"https://issuer","sub":"c","aud":"https://api","client_id":"c",
            "iat":100,"exp":200,"jti":"j"}"#;
        let raw: RawClaims = json_object(object.as_bytes()).unwrap();
        assert!(check_claims(raw, &rules(), 150).is_ok());
        let repeated = r#"{"iss":"https://issuer","iss":"https://issuer"}"#;
        assert!(json_object::<RawClaims>(repeated.as_bytes()).is_err());
    }

    /// Found by `benches/fuzz.rs` (offline_mutated): invalid UTF-8 in a
    /// member the header struct ignores went unnoticed.
    #[test]
    fn header_and_claims_must_be_utf8() {
        let header = b"{\"alg\":\"ES256\",\"typ\":\"at+jwt\",\"kid\":\"k\",\"se\":\"r\xa5te\"}";
        let token = format!("{}.e30.c2ln", URL_SAFE_NO_PAD.encode(header));
        assert_eq!(parse(&token, &rules()).err(), Some(VerifyError::Malformed));
        let claims = b"{\"iss\":\"https://issuer\",\"x\":\"\xff\"}";
        assert!(json_object::<RawClaims>(claims).is_err());
    }

    fn rules() -> Rules {
        Rules {
            issuer: "https://issuer".into(),
            audience: Some("https://api".into()),
            algorithms: vec![Algorithm::ES256, Algorithm::HS256],
            leeway_secs: 0,
        }
    }

    fn token(header: serde_json::Value) -> String {
        format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode("{}"),
            URL_SAFE_NO_PAD.encode("sig")
        )
    }

    #[test]
    fn refuses_none_and_hmac_even_when_listed() {
        for alg in ["none", "HS256", "None", "es256"] {
            let t = token(serde_json::json!({"alg": alg, "typ": "at+jwt", "kid": "k"}));
            assert_eq!(
                parse(&t, &rules()).err(),
                Some(VerifyError::AlgorithmNotAllowed),
                "{alg}"
            );
        }
    }

    #[test]
    fn typ_must_be_at_jwt_in_any_case() {
        for (typ, ok) in [
            (Some("at+jwt"), true),
            (Some("AT+JWT"), true),
            (Some("application/at+jwt"), true),
            (Some("JWT"), false),
            (None, false),
        ] {
            let t = token(serde_json::json!({"alg": "ES256", "typ": typ, "kid": "k"}));
            assert_eq!(parse(&t, &rules()).is_ok(), ok, "{typ:?}");
        }
    }

    #[test]
    fn malformed_tokens_are_refused() {
        for t in [
            "",
            "a.b",
            "a.b.c.d",
            "!!.b.c",
            &"a".repeat(MAX_TOKEN_LEN + 1),
        ] {
            assert_eq!(parse(t, &rules()).err(), Some(VerifyError::Malformed));
        }
    }

    /// What the issuer serializes is what validation reads back.
    #[test]
    fn signed_claims_read_back_unchanged() {
        for aud in [
            vec!["https://api".to_owned()],
            vec!["x".into(), "https://api".into()],
        ] {
            let claims = Claims {
                iss: "https://issuer".into(),
                sub: "c".into(),
                aud,
                client_id: "c".into(),
                scope: "read write".into(),
                iat: 100,
                exp: 200,
                nbf: None,
                jti: "j".into(),
            };
            let json = serde_json::to_vec(&claims).unwrap();
            let raw: RawClaims = serde_json::from_slice(&json).unwrap();
            assert_eq!(check_claims(raw, &rules(), 150), Ok(claims));
        }
        let one = Claims {
            iss: "i".into(),
            sub: "s".into(),
            aud: vec!["a".into()],
            client_id: "s".into(),
            scope: String::new(),
            iat: 0,
            exp: 1,
            nbf: None,
            jti: "j".into(),
        };
        assert_eq!(
            serde_json::to_value(&one).unwrap(),
            serde_json::json!({"iss": "i", "sub": "s", "aud": "a", "client_id": "s",
                "scope": "", "iat": 0, "exp": 1, "jti": "j"})
        );
    }

    #[test]
    fn claims_rules() {
        let base = || RawClaims {
            iss: Some("https://issuer".into()),
            sub: Some("c".into()),
            aud: Some(OneOrMany::Many(vec!["x".into(), "https://api".into()])),
            client_id: Some("c".into()),
            scope: Some("read".into()),
            iat: Some(100),
            exp: Some(200),
            nbf: None,
            jti: Some("j".into()),
        };
        assert!(check_claims(base(), &rules(), 150).is_ok());
        assert_eq!(
            check_claims(base(), &rules(), 200).err(),
            Some(VerifyError::Expired)
        );
        let lenient = Rules {
            leeway_secs: 30,
            ..rules()
        };
        assert!(check_claims(base(), &lenient, 229).is_ok());
        let early = RawClaims {
            nbf: Some(160),
            ..base()
        };
        assert_eq!(
            check_claims(early, &rules(), 150).err(),
            Some(VerifyError::NotYetValid)
        );
        let no_jti = RawClaims {
            jti: None,
            ..base()
        };
        assert_eq!(
            check_claims(no_jti, &rules(), 150).err(),
            Some(VerifyError::MissingClaim("jti"))
        );
    }
}
