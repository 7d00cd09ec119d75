//! A `private_key_jwt` key's public keys (RFC 7523 §2.2): what a person
//! gives (PEM SubjectPublicKeyInfo blocks, a JWK or a JWKS) checked and
//! turned into the JWKS keygate stores, each key's RFC 7638 thumbprint, and
//! the stored JWKS as keys that verify client assertions.
//!
//! Only asymmetric keys fit: EC P-256 (ES256), Ed25519 (EdDSA) and RSA of
//! at least 2048 bits (RS256/384/512, PS256/384/512). Private key material
//! is refused with a word to give the public half instead.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{
    AlgorithmParameters, CommonParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm, PublicKeyUse,
    ThumbprintHash,
};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::Value;

/// The most public keys one key may hold (a roll-over needs two or three).
pub const MAX_PUBLIC_KEYS: usize = 5;
/// The shortest RSA modulus accepted (RFC 7518 §3.3; NIST SP 800-131A).
pub const MIN_RSA_BITS: usize = 2048;
/// The longest input read (a JWKS of five 4096-bit RSA keys fits easily).
const MAX_INPUT: usize = 64 * 1024;

/// Every signing algorithm a client assertion may use: what the metadata
/// advertises. `none` and `HS*` never.
pub const ALGORITHMS: [&str; 8] = [
    "ES256", "EdDSA", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
];

/// Why what a person gave is not a usable set of public keys; the message
/// says what to give instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PublicKeyError(pub String);

fn refuse<T>(why: impl Into<String>) -> Result<T, PublicKeyError> {
    Err(PublicKeyError(why.into()))
}

/// Public keys checked and ready to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKeys {
    /// The JWKS as stored: each key's public parameters, `kid` (its
    /// thumbprint unless the person named it) and, if given, `alg` and `use`.
    pub jwks: String,
    /// Each key's RFC 7638 SHA-256 thumbprint (base64url), in order.
    pub thumbprints: Vec<String>,
}

/// Parses PEM public keys (one or several blocks), a JWK or a JWKS.
pub fn parse(text: &str) -> Result<PublicKeys, PublicKeyError> {
    let text = text.trim();
    if text.is_empty() {
        return refuse("no public key given: paste a PEM public key, a JWK or a JWKS");
    }
    if text.len() > MAX_INPUT {
        return refuse("the public keys are too long (at most 64 KiB)");
    }
    let jwks = if text.starts_with('{') {
        from_json(text)?
    } else if text.starts_with("-----BEGIN") {
        from_pem(text)?
    } else {
        return refuse(
            "not a public key: give a PEM public key (-----BEGIN PUBLIC KEY-----), a JWK or a JWKS",
        );
    };
    if jwks.is_empty() {
        return refuse("the JWKS holds no key");
    }
    if jwks.len() > MAX_PUBLIC_KEYS {
        return refuse(format!(
            "at most {MAX_PUBLIC_KEYS} public keys per key (enough for a roll-over)"
        ));
    }
    let mut keys = Vec::with_capacity(jwks.len());
    let mut thumbprints = Vec::with_capacity(jwks.len());
    for jwk in jwks {
        let (jwk, thumbprint) = canonical(jwk)?;
        if thumbprints.contains(&thumbprint) {
            return refuse("the same public key is given twice");
        }
        let kid = jwk.common.key_id.clone();
        if keys.iter().any(|k: &Jwk| k.common.key_id == kid) {
            return refuse("two public keys have the same kid");
        }
        thumbprints.push(thumbprint);
        keys.push(jwk);
    }
    let jwks = serde_json::to_string(&JwkSet { keys })
        .map_err(|e| PublicKeyError(format!("the public keys could not be written: {e}")))?;
    Ok(PublicKeys { jwks, thumbprints })
}

/// True when `text` looks like it holds private key material (a PEM
/// private key, a JWK with a private member): a form must not show it
/// again.
pub fn holds_private_key(text: &str) -> bool {
    text.contains("PRIVATE KEY")
        || ["\"d\"", "\"p\"", "\"q\"", "\"k\""]
            .iter()
            .any(|member| text.contains(member))
}

/// The thumbprints of the keys of a stored JWKS (empty if it does not read).
pub fn thumbprints(stored: &str) -> Vec<String> {
    serde_json::from_str::<JwkSet>(stored)
        .map(|set| {
            set.keys
                .iter()
                .filter_map(|jwk| jwk.thumbprint(ThumbprintHash::SHA256).ok())
                .collect()
        })
        .unwrap_or_default()
}

/// One stored public key, ready to verify signatures.
pub struct VerifyingKey {
    pub kid: Option<String>,
    /// The algorithms it verifies: its type's, narrowed by its `alg`.
    pub algorithms: Vec<Algorithm>,
    pub key: DecodingKey,
}

impl VerifyingKey {
    pub fn fits(&self, alg: Algorithm) -> bool {
        self.algorithms.contains(&alg)
    }
}

/// The keys of a stored JWKS that verify signatures (a key that does not
/// read verifies nothing).
pub fn verifying_keys(stored: &str) -> Vec<VerifyingKey> {
    let Ok(set) = serde_json::from_str::<JwkSet>(stored) else {
        return Vec::new();
    };
    set.keys
        .iter()
        .filter_map(|jwk| {
            let algorithms = algorithms_of(jwk).ok()?;
            Some(VerifyingKey {
                kid: jwk.common.key_id.clone(),
                algorithms,
                key: DecodingKey::from_jwk(jwk).ok()?,
            })
        })
        .collect()
}

/// The algorithms a checked key verifies.
fn algorithms_of(jwk: &Jwk) -> Result<Vec<Algorithm>, PublicKeyError> {
    let of_type: &[Algorithm] = match &jwk.algorithm {
        AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P256 => {
            &[Algorithm::ES256]
        }
        AlgorithmParameters::EllipticCurve(_) => {
            return refuse("only the EC curve P-256 is accepted (or Ed25519, or RSA)");
        }
        AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => {
            &[Algorithm::EdDSA]
        }
        AlgorithmParameters::OctetKeyPair(_) => {
            return refuse("only the OKP curve Ed25519 is accepted");
        }
        AlgorithmParameters::RSA(_) => &[
            Algorithm::RS256,
            Algorithm::RS384,
            Algorithm::RS512,
            Algorithm::PS256,
            Algorithm::PS384,
            Algorithm::PS512,
        ],
        AlgorithmParameters::OctetKey(_) => {
            return refuse("a symmetric key (kty oct) is refused: give a public key");
        }
        _ => {
            return refuse("unsupported key type: give an EC P-256, Ed25519 or RSA public key");
        }
    };
    match jwk.common.key_algorithm {
        None => Ok(of_type.to_vec()),
        Some(alg) => match algorithm_of(alg) {
            Some(alg) if of_type.contains(&alg) => Ok(vec![alg]),
            _ => refuse(format!(
                "the key's alg {alg:?} does not fit its type or is not accepted"
            )),
        },
    }
}

fn algorithm_of(alg: KeyAlgorithm) -> Option<Algorithm> {
    Some(match alg {
        KeyAlgorithm::ES256 => Algorithm::ES256,
        KeyAlgorithm::EdDSA => Algorithm::EdDSA,
        KeyAlgorithm::RS256 => Algorithm::RS256,
        KeyAlgorithm::RS384 => Algorithm::RS384,
        KeyAlgorithm::RS512 => Algorithm::RS512,
        KeyAlgorithm::PS256 => Algorithm::PS256,
        KeyAlgorithm::PS384 => Algorithm::PS384,
        KeyAlgorithm::PS512 => Algorithm::PS512,
        _ => return None,
    })
}

/// A key reduced to what is stored, checked, with its thumbprint (and its
/// `kid` set to that thumbprint when it had none).
fn canonical(jwk: Jwk) -> Result<(Jwk, String), PublicKeyError> {
    algorithms_of(&jwk)?;
    if let AlgorithmParameters::RSA(rsa) = &jwk.algorithm {
        let bits = modulus_bits(&rsa.n)?;
        if bits < MIN_RSA_BITS {
            return refuse(format!(
                "the RSA key has {bits} bits; at least {MIN_RSA_BITS} are required"
            ));
        }
    }
    if let AlgorithmParameters::EllipticCurve(ec) = &jwk.algorithm {
        let (x, y) = (b64(&ec.x)?, b64(&ec.y)?);
        if x.len() != 32 || y.len() != 32 {
            return refuse("the EC P-256 key's coordinates must be 32 bytes each");
        }
    }
    if let AlgorithmParameters::OctetKeyPair(okp) = &jwk.algorithm
        && b64(&okp.x)?.len() != 32
    {
        return refuse("the Ed25519 key must be 32 bytes");
    }
    match &jwk.common.public_key_use {
        None | Some(PublicKeyUse::Signature) => {}
        Some(_) => return refuse("the key's use must be \"sig\""),
    }
    DecodingKey::from_jwk(&jwk).map_err(|e| PublicKeyError(format!("not a usable key: {e}")))?;
    let thumbprint = jwk
        .thumbprint(ThumbprintHash::SHA256)
        .map_err(|e| PublicKeyError(format!("not a usable key: {e}")))?;
    let kid = match jwk.common.key_id {
        Some(kid) if kid.is_empty() || kid.len() > 200 || kid.chars().any(char::is_control) => {
            return refuse("a kid must be 1 to 200 printable characters");
        }
        Some(kid) => kid,
        None => thumbprint.clone(),
    };
    let stored = Jwk {
        common: CommonParameters {
            public_key_use: jwk.common.public_key_use,
            key_algorithm: jwk.common.key_algorithm,
            key_id: Some(kid),
            ..CommonParameters::default()
        },
        algorithm: jwk.algorithm,
    };
    Ok((stored, thumbprint))
}

fn b64(text: &str) -> Result<Vec<u8>, PublicKeyError> {
    URL_SAFE_NO_PAD
        .decode(text.trim_end_matches('='))
        .map_err(|_| PublicKeyError("a key parameter is not base64url".into()))
}

/// The bit length of a base64url big-endian modulus.
fn modulus_bits(n: &str) -> Result<usize, PublicKeyError> {
    let bytes = b64(n)?;
    let Some(first) = bytes.iter().position(|b| *b != 0) else {
        return refuse("the RSA modulus is zero");
    };
    let significant = &bytes[first..];
    let leading = significant
        .first()
        .map_or(0, |b| b.leading_zeros() as usize);
    Ok(significant.len() * 8 - leading)
}

/// A JWK or a JWKS, refusing private and symmetric material before it is
/// read as a key.
fn from_json(text: &str) -> Result<Vec<Jwk>, PublicKeyError> {
    let value: Value =
        serde_json::from_str(text).map_err(|e| PublicKeyError(format!("not valid JSON: {e}")))?;
    let objects = match value.get("keys") {
        Some(Value::Array(keys)) => keys.clone(),
        Some(_) => return refuse("a JWKS's \"keys\" must be an array"),
        None => vec![value],
    };
    objects
        .into_iter()
        .map(|object| {
            let Value::Object(map) = &object else {
                return refuse("each key must be a JSON object (a JWK)");
            };
            if map.get("kty").and_then(Value::as_str) == Some("oct") {
                return refuse("a symmetric key (kty oct) is refused: give a public key");
            }
            if ["d", "p", "q", "dp", "dq", "qi", "k"]
                .iter()
                .any(|private| map.contains_key(*private))
            {
                return refuse(
                    "this is a private key: give only its public half (keep the private key with the client)",
                );
            }
            serde_json::from_value::<Jwk>(object).map_err(|e| {
                PublicKeyError(format!(
                    "not a supported JWK (EC P-256, OKP Ed25519 or RSA): {e}"
                ))
            })
        })
        .collect()
}

/// Every PEM block of the text, each a SubjectPublicKeyInfo.
fn from_pem(text: &str) -> Result<Vec<Jwk>, PublicKeyError> {
    let mut keys = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("-----BEGIN ") {
        let block = &rest[start..];
        let label_end = block[11..]
            .find("-----")
            .map(|i| i + 11)
            .ok_or_else(|| PublicKeyError("a PEM block has no end".into()))?;
        let label = &block[11..label_end];
        let end_marker = format!("-----END {label}-----");
        let end = block
            .find(&end_marker)
            .ok_or_else(|| PublicKeyError(format!("the PEM block {label} has no END line")))?
            + end_marker.len();
        keys.push(pem_key(label, &block[..end])?);
        rest = &block[end..];
    }
    if !rest.trim().is_empty() {
        return refuse("text after the last PEM block");
    }
    Ok(keys)
}

fn pem_key(label: &str, block: &str) -> Result<Jwk, PublicKeyError> {
    if label.contains("PRIVATE KEY") {
        return refuse(
            "this is a private key: give only its public half (openssl pkey -pubout), and keep the private key with the client",
        );
    }
    if label != "PUBLIC KEY" && label != "RSA PUBLIC KEY" {
        return refuse(format!(
            "a PEM block of {label} is not a public key: give -----BEGIN PUBLIC KEY-----"
        ));
    }
    let bytes = block.as_bytes();
    let key = DecodingKey::from_ec_pem(bytes)
        .or_else(|_| DecodingKey::from_ed_pem(bytes))
        .or_else(|_| DecodingKey::from_rsa_pem(bytes))
        .map_err(|_| {
            PublicKeyError(
                "the PEM public key is not an EC P-256, Ed25519 or RSA key keygate can read".into(),
            )
        })?;
    Jwk::from_decoding_key(&key, None).map_err(|_| {
        PublicKeyError("only the EC curve P-256 is accepted (or Ed25519, or RSA)".into())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const EC_JWK: &str = r#"{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}"#;

    #[test]
    fn a_jwk_gets_its_thumbprint_as_kid() {
        let keys = parse(EC_JWK).unwrap();
        assert_eq!(keys.thumbprints.len(), 1);
        let set: Value = serde_json::from_str(&keys.jwks).unwrap();
        assert_eq!(set["keys"][0]["kid"], keys.thumbprints[0].as_str());
        assert_eq!(thumbprints(&keys.jwks), keys.thumbprints);
        assert_eq!(verifying_keys(&keys.jwks).len(), 1);
    }

    #[test]
    fn private_and_symmetric_material_is_refused() {
        let private = EC_JWK.replace("\"kty\"", "\"d\":\"abc\",\"kty\"");
        assert!(parse(&private).unwrap_err().0.contains("private key"));
        assert!(holds_private_key(&private));
        assert!(!holds_private_key(EC_JWK));
        assert!(
            parse(r#"{"kty":"oct","k":"c2VjcmV0"}"#)
                .unwrap_err()
                .0
                .contains("symmetric")
        );
        assert!(
            parse("-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----")
                .unwrap_err()
                .0
                .contains("private key")
        );
    }

    #[test]
    fn rsa_modulus_bits_are_counted() {
        assert_eq!(
            modulus_bits(&URL_SAFE_NO_PAD.encode([0x01, 0xff])).unwrap(),
            9
        );
        assert_eq!(
            modulus_bits(&URL_SAFE_NO_PAD.encode([0x00, 0x80, 0])).unwrap(),
            16
        );
    }
}
