//! Fuzzing of offline validation (`Verifier::verify_offline`) against a
//! model of RFC 9068 §4 written apart from `validate.rs`: for every input the
//! verifier's answer (the claims, or exactly which error) must be the
//! model's. The driver is `keygate-fuzz` (stable Rust).
//!
//! Two targets, one check:
//!
//! - `offline_mutated`: byte mutations of tokens signed with the issuer's
//!   keys (ES256, EdDSA, RS256). Besides agreeing with the model, a token
//!   the verifier accepts must carry a header and payload this issuer
//!   signed, with the claims it signed: mutating a valid token never yields
//!   acceptance with other claims.
//! - `offline_signed`: tokens generated field by field (every `alg`, `typ`,
//!   `kid`, `crit`, every claim missing, null, of the wrong type or value,
//!   headers and payloads that are not objects, repeated members, HMAC with
//!   a published `oct` key) and *validly signed*, so that validation reaches
//!   the claims; the model says which must pass.
//!
//! `cargo bench -p keygate-verifier --bench fuzz -- --seconds 120` runs for
//! that long; `cargo test` runs it briefly with a fixed seed. The keys in
//! `benches/fuzz-keys/` were made for this and sign nothing else.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use keygate_fuzz::{Rng, Target, Verdict};
use keygate_verifier::{Claims, Verifier, VerifyError};
use serde_json::{Value, json};
use std::rc::Rc;

const ISSUER: &str = "https://auth.example.com";
const AUDIENCE: &str = "https://api.example.com";
const LEEWAY: i64 = 30;
const MAX_TOKEN_LEN: usize = 16 * 1024;
const HMAC_SECRET: &[u8] = b"the JWKS publishes this oct key; no token may use it";

struct Key {
    kid: &'static str,
    alg: Algorithm,
    encoding: EncodingKey,
    decoding: DecodingKey,
}

/// The issuer: its keys, the verifier built from its JWKS, and what it signed.
struct Issuer {
    keys: Vec<Key>,
    verifier: Verifier,
}

fn issuer() -> Issuer {
    let specs = [
        (
            "es",
            Algorithm::ES256,
            EncodingKey::from_ec_der(include_bytes!("fuzz-keys/es256.pk8.der")),
        ),
        (
            "ed",
            Algorithm::EdDSA,
            EncodingKey::from_ed_der(include_bytes!("fuzz-keys/ed25519.pk8.der")),
        ),
        (
            "rs",
            Algorithm::RS256,
            EncodingKey::from_rsa_der(include_bytes!("fuzz-keys/rs256.pkcs1.der")),
        ),
    ];
    let mut jwks = Vec::new();
    let mut keys = Vec::new();
    for (kid, alg, encoding) in specs {
        let mut jwk = Jwk::from_encoding_key(&encoding, alg).expect("a JWK from the test key");
        jwk.common.key_id = Some(kid.into());
        let decoding = DecodingKey::from_jwk(&jwk).expect("a decoding key");
        jwks.push(serde_json::to_value(&jwk).unwrap());
        keys.push(Key {
            kid,
            alg,
            encoding,
            decoding,
        });
    }
    // Published, but never usable for an access token.
    jwks.push(json!({"kty": "oct", "kid": "hmac", "alg": "HS256",
        "k": URL_SAFE_NO_PAD.encode(HMAC_SECRET)}));
    let jwks: JwkSet = serde_json::from_value(json!({ "keys": jwks })).unwrap();
    let verifier = Verifier::from_jwks(&jwks, ISSUER, AUDIENCE);
    Issuer { keys, verifier }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// `header.payload.signature`, signed over the exact bytes given.
fn sign(header: &[u8], payload: &[u8], key: &EncodingKey, alg: Algorithm) -> String {
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(payload)
    );
    let signature = jsonwebtoken::crypto::sign(input.as_bytes(), key, alg).expect("signing");
    format!("{input}.{signature}")
}

fn good_claims(now: i64) -> Value {
    json!({"iss": ISSUER, "sub": "kgc_0123456789abcdefghijklm", "aud": AUDIENCE,
        "client_id": "kgc_0123456789abcdefghijklm", "scope": "read write",
        "iat": now, "exp": now + 900, "jti": "0193a5c2-7d1e-7c3a-9f2b-5e8d4c3b2a10"})
}

fn main() -> std::process::ExitCode {
    let issuer = Rc::new(issuer());
    let now = unix_now();
    let mut seeds = Vec::new();
    for key in &issuer.keys {
        let header = json!({"alg": alg_name(key.alg), "typ": "at+jwt", "kid": key.kid});
        let token = sign(
            header.to_string().as_bytes(),
            good_claims(now).to_string().as_bytes(),
            &key.encoding,
            key.alg,
        );
        assert!(
            issuer.verifier.verify_offline(&token).is_ok(),
            "a seed token is valid"
        );
        seeds.push(token);
    }
    let signed_inputs: Vec<String> = seeds
        .iter()
        .map(|t| t.rsplit_once('.').unwrap().0.to_owned())
        .collect();
    let issued = seeds.clone();

    let mutated = {
        let issuer = Rc::clone(&issuer);
        Target::new("offline_mutated", move |input| {
            let token = String::from_utf8_lossy(input);
            let outcome = agree_with_model(&issuer, &token)?;
            if outcome == "accepted" {
                let (signed, _) = token.rsplit_once('.').unwrap_or_default();
                if !signed_inputs.iter().any(|s| s == signed) {
                    return Err("accepted a header and payload the issuer never signed".into());
                }
                // Signed input intact, the signature text changed yet valid:
                // counted, to see whether it ever happens.
                if !issued.iter().any(|t| *t == token) {
                    return Ok("accepted_other_signature");
                }
            }
            Ok(outcome)
        })
        .seeds(&seeds)
        .dictionary([
            ".", "=", "-", "_", "+", "/", "A", "eyJ", "e30", "ey", "..", "%2E",
        ])
    };
    let signed = {
        let issuer = Rc::clone(&issuer);
        let for_generator = Rc::clone(&issuer);
        Target::new("offline_signed", move |input| {
            agree_with_model(&issuer, &String::from_utf8_lossy(input))
        })
        .seeds(&seeds)
        .generator(move |rng| generate_token(&for_generator, rng).into_bytes())
        .generate_one_in(1)
    };
    keygate_fuzz::main("keygate-verifier", &[mutated, signed])
}

/// The verifier's answer must be the model's; the outcome names it.
fn agree_with_model(issuer: &Issuer, token: &str) -> Verdict {
    let before = unix_now();
    let actual = issuer.verifier.verify_offline(token);
    let now = unix_now();
    if now != before {
        // exp and nbf were judged at a second the model cannot know.
        return Ok("clock_tick");
    }
    let expected = model(issuer, token, now);
    if actual != expected {
        return Err(format!(
            "the verifier says {actual:?}, RFC 9068 (the model) says {expected:?}"
        ));
    }
    if let Err(error) = &actual
        && !error.is_invalid_token()
    {
        return Err(format!("offline validation could not decide: {error:?}"));
    }
    Ok(match actual {
        Ok(_) => "accepted",
        Err(e) => error_name(&e),
    })
}

fn error_name(error: &VerifyError) -> &'static str {
    match error {
        VerifyError::Malformed => "Malformed",
        VerifyError::AlgorithmNotAllowed => "AlgorithmNotAllowed",
        VerifyError::WrongType => "WrongType",
        VerifyError::UnsupportedCritical => "UnsupportedCritical",
        VerifyError::MissingKeyId => "MissingKeyId",
        VerifyError::UnknownKey => "UnknownKey",
        VerifyError::KeyMismatch => "KeyMismatch",
        VerifyError::BadSignature => "BadSignature",
        VerifyError::MissingClaim(_) => "MissingClaim",
        VerifyError::WrongIssuer => "WrongIssuer",
        VerifyError::WrongAudience => "WrongAudience",
        VerifyError::Expired => "Expired",
        VerifyError::NotYetValid => "NotYetValid",
        _ => "other",
    }
}

fn alg_name(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::ES256 => "ES256",
        Algorithm::EdDSA => "EdDSA",
        Algorithm::RS256 => "RS256",
        _ => "HS256",
    }
}

/// A JSON object's members in order, repeats kept; `None` for anything
/// that is not a JSON object (RFC 7515 §4 and RFC 7519 §7.2 require one).
fn members(bytes: &[u8]) -> Option<Vec<(String, Value)>> {
    struct Members(Vec<(String, Value)>);
    impl<'de> serde::Deserialize<'de> for Members {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct Visit;
            impl<'de> serde::de::Visitor<'de> for Visit {
                type Value = Members;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("an object")
                }
                fn visit_map<A: serde::de::MapAccess<'de>>(
                    self,
                    mut map: A,
                ) -> Result<Members, A::Error> {
                    let mut all = Vec::new();
                    while let Some(entry) = map.next_entry::<String, Value>()? {
                        all.push(entry);
                    }
                    Ok(Members(all))
                }
            }
            d.deserialize_map(Visit)
        }
    }
    serde_json::from_slice::<Members>(bytes).ok().map(|m| m.0)
}

/// The members named in `known`, each at most once (a repeat is refused, as
/// RFC 7515 §4 allows); `None` when one repeats.
fn known_members<'a>(
    all: &'a [(String, Value)],
    known: &[&str],
) -> Option<Vec<(&'a str, &'a Value)>> {
    let mut found: Vec<(&str, &Value)> = Vec::new();
    for (name, value) in all {
        if known.contains(&name.as_str()) {
            if found.iter().any(|(n, _)| n == name) {
                return None;
            }
            found.push((name, value));
        }
    }
    Some(found)
}

fn member<'a>(found: &[(&str, &'a Value)], name: &str) -> Option<&'a Value> {
    found
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, v)| *v)
        .filter(|v| !v.is_null())
}

/// A string member: `Ok(None)` when absent or null, `Err` when not a string.
fn string<'a>(found: &[(&str, &'a Value)], name: &str) -> Result<Option<&'a str>, VerifyError> {
    match member(found, name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(VerifyError::Malformed),
    }
}

/// A NumericDate member, as a whole number of seconds.
fn date(found: &[(&str, &Value)], name: &str) -> Result<Option<i64>, VerifyError> {
    match member(found, name) {
        None => Ok(None),
        Some(v) => v.as_i64().map(Some).ok_or(VerifyError::Malformed),
    }
}

/// RFC 9068 §4 with keygate's rules, step by step in the documented order:
/// shape, header, key, signature, claims present, claims' values.
fn model(issuer: &Issuer, token: &str, now: i64) -> Result<Claims, VerifyError> {
    use VerifyError::*;
    if token.len() > MAX_TOKEN_LEN {
        return Err(Malformed);
    }
    let parts: Vec<&str> = token.split('.').collect();
    let [header_b64, payload_b64, signature] = parts.as_slice() else {
        return Err(Malformed);
    };
    let header_json = URL_SAFE_NO_PAD.decode(header_b64).map_err(|_| Malformed)?;
    let header_all = members(&header_json).ok_or(Malformed)?;
    let header = known_members(&header_all, &["alg", "typ", "kid", "crit"]).ok_or(Malformed)?;
    let Some(Value::String(alg)) = member(&header, "alg") else {
        return Err(Malformed);
    };
    let typ = string(&header, "typ")?;
    let kid = string(&header, "kid")?;
    let alg = match alg.as_str() {
        "ES256" => Algorithm::ES256,
        "EdDSA" => Algorithm::EdDSA,
        "RS256" => Algorithm::RS256,
        _ => return Err(AlgorithmNotAllowed),
    };
    if !typ.is_some_and(|t| {
        t.eq_ignore_ascii_case("at+jwt") || t.eq_ignore_ascii_case("application/at+jwt")
    }) {
        return Err(WrongType);
    }
    if member(&header, "crit").is_some() {
        return Err(UnsupportedCritical);
    }
    let kid = kid.ok_or(MissingKeyId)?;
    let key = issuer
        .keys
        .iter()
        .find(|k| k.kid == kid)
        .ok_or(UnknownKey)?;
    if key.alg != alg {
        return Err(KeyMismatch);
    }
    let signing_input = &token[..header_b64.len() + 1 + payload_b64.len()];
    let valid =
        jsonwebtoken::crypto::verify(signature, signing_input.as_bytes(), &key.decoding, alg)
            .unwrap_or(false);
    if !valid {
        return Err(BadSignature);
    }

    let payload = URL_SAFE_NO_PAD.decode(payload_b64).map_err(|_| Malformed)?;
    let all = members(&payload).ok_or(Malformed)?;
    let names = [
        "iss",
        "sub",
        "aud",
        "client_id",
        "scope",
        "iat",
        "exp",
        "nbf",
        "jti",
    ];
    let claims = known_members(&all, &names).ok_or(Malformed)?;
    let iss = string(&claims, "iss")?;
    let sub = string(&claims, "sub")?;
    let client_id = string(&claims, "client_id")?;
    let scope = string(&claims, "scope")?;
    let jti = string(&claims, "jti")?;
    let aud: Option<Vec<String>> = match member(&claims, "aud") {
        None => None,
        Some(Value::String(one)) => Some(vec![one.clone()]),
        Some(Value::Array(many)) => Some(
            many.iter()
                .map(|a| a.as_str().map(str::to_owned).ok_or(Malformed))
                .collect::<Result<_, _>>()?,
        ),
        Some(_) => return Err(Malformed),
    };
    let (iat, exp, nbf) = (
        date(&claims, "iat")?,
        date(&claims, "exp")?,
        date(&claims, "nbf")?,
    );

    let iss = iss.ok_or(MissingClaim("iss"))?;
    let exp = exp.ok_or(MissingClaim("exp"))?;
    let aud = aud.filter(|a| !a.is_empty()).ok_or(MissingClaim("aud"))?;
    let sub = sub.ok_or(MissingClaim("sub"))?;
    let client_id = client_id.ok_or(MissingClaim("client_id"))?;
    let iat = iat.ok_or(MissingClaim("iat"))?;
    let jti = jti.ok_or(MissingClaim("jti"))?;
    if iss != ISSUER {
        return Err(WrongIssuer);
    }
    if !aud.iter().any(|a| a == AUDIENCE) {
        return Err(WrongAudience);
    }
    if now >= exp.saturating_add(LEEWAY) {
        return Err(Expired);
    }
    if nbf.is_some_and(|nbf| now.saturating_add(LEEWAY) < nbf) {
        return Err(NotYetValid);
    }
    Ok(Claims {
        iss: iss.into(),
        sub: sub.into(),
        aud,
        client_id: client_id.into(),
        scope: scope.unwrap_or_default().into(),
        iat,
        exp,
        nbf,
        jti: jti.into(),
    })
}

/// A member value: usually `good`, sometimes absent, null, of another type
/// or another value.
fn vary(rng: &mut Rng, good: Value, others: &[Value]) -> Option<Value> {
    match rng.below(30) {
        0 => None,
        1 => Some(Value::Null),
        2 => Some(json!(7)),
        3..=5 => rng.pick(others).cloned().or(Some(good)),
        _ => Some(good),
    }
}

fn object(rng: &mut Rng, members: Vec<(&str, Option<Value>)>) -> Vec<u8> {
    let mut parts: Vec<String> = members
        .into_iter()
        .filter_map(|(name, value)| value.map(|v| format!("{}:{v}", json!(name))))
        .collect();
    if rng.one_in(25) && !parts.is_empty() {
        // A repeated member, valid or not.
        let again = parts[rng.below(parts.len())].clone();
        parts.push(again);
    }
    if rng.one_in(20) {
        parts.push(r#""x-extra":{"nested":[1,2,{}]}"#.into());
    }
    if rng.one_in(40) {
        // Not an object at all: the same values as an array.
        return format!(
            "[{}]",
            parts
                .iter()
                .map(|p| p.split_once(':').unwrap().1)
                .collect::<Vec<_>>()
                .join(",")
        )
        .into_bytes();
    }
    format!("{{{}}}", parts.join(",")).into_bytes()
}

/// A token with a valid signature (by the key its `kid` names, usually)
/// over a header and claims varied member by member.
fn generate_token(issuer: &Issuer, rng: &mut Rng) -> String {
    let now = unix_now();
    let key = &issuer.keys[rng.below(issuer.keys.len())];
    let hmac = rng.one_in(12);
    let (alg, kid) = if hmac {
        (json!("HS256"), json!("hmac"))
    } else {
        (json!(alg_name(key.alg)), json!(key.kid))
    };
    let header_members = vec![
        (
            "alg",
            vary(
                rng,
                alg,
                &[
                    json!("none"),
                    json!("ES384"),
                    json!("PS256"),
                    json!("es256"),
                    json!("EdDSA"),
                    json!("RS256"),
                ],
            ),
        ),
        (
            "typ",
            vary(
                rng,
                json!("at+jwt"),
                &[
                    json!("AT+JWT"),
                    json!("application/at+jwt"),
                    json!("JWT"),
                    json!("at+jwt "),
                ],
            ),
        ),
        (
            "kid",
            vary(
                rng,
                kid,
                &[
                    json!("es"),
                    json!("ed"),
                    json!("rs"),
                    json!("unknown"),
                    json!(""),
                ],
            ),
        ),
        (
            "crit",
            rng.one_in(15).then(|| {
                if rng.one_in(2) {
                    json!(["exp"])
                } else {
                    Value::Null
                }
            }),
        ),
        (
            "jku",
            rng.one_in(15)
                .then(|| json!("https://attacker.example/jwks")),
        ),
    ];
    let header = object(rng, header_members);
    let exp_offsets = [900, 100, 10, -10, -40, -100_000];
    let exp = now + exp_offsets[rng.below(exp_offsets.len())];
    let nbf_offsets = [-100, 0, 10, 40, 100_000];
    let nbf = now + nbf_offsets[rng.below(nbf_offsets.len())];
    let payload_members = vec![
        (
            "iss",
            vary(
                rng,
                json!(ISSUER),
                &[
                    json!("https://auth.example.com/"),
                    json!("https://other.example"),
                ],
            ),
        ),
        ("sub", vary(rng, json!("kgc_1"), &[json!("")])),
        (
            "aud",
            vary(
                rng,
                json!(AUDIENCE),
                &[
                    json!(["x", AUDIENCE]),
                    json!([]),
                    json!("https://other"),
                    json!([1]),
                    json!([AUDIENCE, null]),
                ],
            ),
        ),
        ("client_id", vary(rng, json!("kgc_1"), &[json!("")])),
        (
            "scope",
            vary(rng, json!("read write"), &[json!(""), json!(["read"])]),
        ),
        (
            "iat",
            vary(
                rng,
                json!(now),
                &[json!(1.5), json!(u64::MAX), json!("1700000000"), json!(-1)],
            ),
        ),
        (
            "exp",
            vary(
                rng,
                json!(exp),
                &[
                    json!(i64::MAX),
                    json!(i64::MIN),
                    json!(1e10),
                    json!(u64::MAX),
                    json!("never"),
                ],
            ),
        ),
        ("nbf", rng.one_in(3).then(|| json!(nbf))),
        ("jti", vary(rng, json!("j-1"), &[json!(1)])),
    ];
    let payload = object(rng, payload_members);
    if hmac {
        let secret = EncodingKey::from_secret(HMAC_SECRET);
        return sign(&header, &payload, &secret, Algorithm::HS256);
    }
    // Now and then by another of the issuer's keys than the one named.
    let signer = if rng.one_in(10) {
        &issuer.keys[rng.below(issuer.keys.len())]
    } else {
        key
    };
    sign(&header, &payload, &signer.encoding, signer.alg)
}
