//! Key pairs for token signing (generation, parsing once, signing, public JWK)
//! and the encryption of private keys at rest.
//!
//! Signing goes through aws-lc-rs with the key parsed once: jsonwebtoken's
//! `encode` re-parses the DER key on every call, which costs more than the
//! signature itself at high rates (see shared/NOTES.md).

use aws_lc_rs::aead::{AES_256_GCM, Aad, NONCE_LEN, Nonce, RandomizedNonceKey};
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, RSA_PKCS1_SHA256,
    RsaKeyPair,
};
use aws_lc_rs::{digest, hkdf};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use zeroize::Zeroizing;

use super::MasterKey;
use super::SigningAlg;

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("key generation failed")]
    Generate,
    #[error("stored signing key cannot be decrypted: wrong KEYGATE_SECRET_KEY or corrupted row")]
    Decrypt,
    #[error("stored signing key is not a valid {0} key")]
    Parse(&'static str),
    #[error("signing failed")]
    Sign,
}

/// A parsed private key, ready to sign.
pub enum KeyPair {
    Es256(EcdsaKeyPair),
    EdDsa(Ed25519KeyPair),
    Rs256(RsaKeyPair),
}

impl KeyPair {
    /// A fresh key as PKCS#8 DER.
    pub fn generate(alg: SigningAlg) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let rng = SystemRandom::new();
        let der = match alg {
            SigningAlg::Es256 => {
                EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                    .map_err(|_| CryptoError::Generate)?
                    .as_ref()
                    .to_vec()
            }
            SigningAlg::EdDsa => Ed25519KeyPair::generate_pkcs8(&rng)
                .map_err(|_| CryptoError::Generate)?
                .as_ref()
                .to_vec(),
            SigningAlg::Rs256 => RsaKeyPair::generate(KeySize::Rsa2048)
                .and_then(|k| k.as_der())
                .map_err(|_| CryptoError::Generate)?
                .as_ref()
                .to_vec(),
        };
        Ok(Zeroizing::new(der))
    }

    pub fn from_pkcs8(alg: SigningAlg, der: &[u8]) -> Result<Self, CryptoError> {
        let rejected = |_| CryptoError::Parse(alg.as_str());
        Ok(match alg {
            SigningAlg::Es256 => Self::Es256(
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der)
                    .map_err(rejected)?,
            ),
            SigningAlg::EdDsa => Self::EdDsa(Ed25519KeyPair::from_pkcs8(der).map_err(rejected)?),
            SigningAlg::Rs256 => Self::Rs256(RsaKeyPair::from_pkcs8(der).map_err(rejected)?),
        })
    }

    pub fn alg(&self) -> SigningAlg {
        match self {
            Self::Es256(_) => SigningAlg::Es256,
            Self::EdDsa(_) => SigningAlg::EdDsa,
            Self::Rs256(_) => SigningAlg::Rs256,
        }
    }

    /// The JWS signature of `message` (for ES256 the fixed-width `r || s` form
    /// that RFC 7518 §3.4 requires).
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, CryptoError> {
        match self {
            Self::Es256(key) => key
                .sign(&SystemRandom::new(), message)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| CryptoError::Sign),
            Self::EdDsa(key) => Ok(key.sign(message).as_ref().to_vec()),
            Self::Rs256(key) => {
                let mut signature = vec![0; key.public_modulus_len()];
                key.sign(
                    &RSA_PKCS1_SHA256,
                    &SystemRandom::new(),
                    message,
                    &mut signature,
                )
                .map_err(|_| CryptoError::Sign)?;
                Ok(signature)
            }
        }
    }

    /// The members RFC 7638 hashes for the thumbprint, in lexicographic order.
    fn required_jwk_members(&self) -> Value {
        match self {
            Self::Es256(key) => {
                // Uncompressed SEC1 point: 0x04 || x || y.
                let point = key.public_key().as_ref();
                json!({
                    "crv": "P-256",
                    "kty": "EC",
                    "x": b64(&point[1..33]),
                    "y": b64(&point[33..65]),
                })
            }
            Self::EdDsa(key) => json!({
                "crv": "Ed25519",
                "kty": "OKP",
                "x": b64(key.public_key().as_ref()),
            }),
            Self::Rs256(key) => {
                let public = key.public_key();
                json!({
                    "e": b64(public.exponent().big_endian_without_leading_zero()),
                    "kty": "RSA",
                    "n": b64(public.modulus().big_endian_without_leading_zero()),
                })
            }
        }
    }

    /// RFC 7638 JWK thumbprint (SHA-256): a key ID that names the key itself.
    pub fn thumbprint(&self) -> String {
        // serde_json writes object keys sorted and without whitespace, which is
        // exactly RFC 7638's canonical form.
        let canonical = self.required_jwk_members().to_string();
        b64(digest::digest(&digest::SHA256, canonical.as_bytes()).as_ref())
    }

    /// The public JWK as published in the JWKS.
    pub fn public_jwk(&self, kid: &str) -> Value {
        let mut jwk = self.required_jwk_members();
        if let Value::Object(members) = &mut jwk {
            members.insert("kid".into(), kid.into());
            members.insert("use".into(), "sig".into());
            members.insert("alg".into(), self.alg().as_str().into());
        }
        jwk
    }
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// AES-256-GCM with a key derived from the master secret by HKDF-SHA256. The
/// key ID is bound as associated data, so a ciphertext moved to another row
/// does not decrypt.
pub struct AtRest {
    key: RandomizedNonceKey,
}

struct KeyLen(usize);

impl hkdf::KeyType for KeyLen {
    fn len(&self) -> usize {
        self.0
    }
}

impl AtRest {
    /// The key that seals the signing keys.
    pub fn new(master: &MasterKey) -> Self {
        Self::for_purpose(master, b"signing-key encryption v1")
    }

    /// A key of its own for each kind of secret (`purpose` names it), so
    /// one kind's ciphertexts never open as another's.
    pub fn for_purpose(master: &MasterKey, purpose: &'static [u8]) -> Self {
        let salt = hkdf::Salt::new(hkdf::HKDF_SHA256, b"keygate");
        let prk = salt.extract(master.as_bytes());
        let mut bytes = Zeroizing::new([0u8; 32]);
        // Both calls fail only for an output longer than 255 hash lengths.
        let info = [purpose];
        let okm = prk.expand(&info, KeyLen(32));
        if let Ok(okm) = okm {
            let _ = okm.fill(bytes.as_mut());
        }
        #[allow(clippy::expect_used)]
        let key = RandomizedNonceKey::new(&AES_256_GCM, bytes.as_ref())
            .expect("a 32-byte key is valid for AES-256-GCM");
        Self { key }
    }

    /// `nonce || ciphertext || tag`.
    pub fn seal(&self, kid: &str, plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let mut in_out = plaintext.to_vec();
        let nonce = self
            .key
            .seal_in_place_append_tag(Aad::from(kid.as_bytes()), &mut in_out)
            .map_err(|_| CryptoError::Generate)?;
        let mut out = nonce.as_ref().to_vec();
        out.extend_from_slice(&in_out);
        in_out.iter_mut().for_each(|b| *b = 0);
        Ok(out)
    }

    pub fn open(&self, kid: &str, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        if sealed.len() < NONCE_LEN {
            return Err(CryptoError::Decrypt);
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| CryptoError::Decrypt)?;
        let mut in_out = Zeroizing::new(ciphertext.to_vec());
        let plain_len = self
            .key
            .open_in_place(nonce, Aad::from(kid.as_bytes()), &mut in_out)
            .map_err(|_| CryptoError::Decrypt)?
            .len();
        in_out.truncate(plain_len);
        Ok(in_out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_algorithm_generates_parses_and_signs() {
        for alg in [SigningAlg::Es256, SigningAlg::EdDsa, SigningAlg::Rs256] {
            let der = KeyPair::generate(alg).unwrap();
            let key = KeyPair::from_pkcs8(alg, &der).unwrap();
            assert_eq!(key.alg(), alg);
            assert!(!key.sign(b"message").unwrap().is_empty());
            let jwk = key.public_jwk("k1");
            assert_eq!(jwk["alg"], alg.as_str());
            assert_eq!(jwk["use"], "sig");
            assert!(
                jwk.get("d").is_none(),
                "the public JWK must not carry the private part"
            );
            assert_eq!(key.thumbprint().len(), 43);
        }
    }

    #[test]
    fn thumbprint_matches_rfc_7638_example() {
        // RFC 7638 §3.1 example key and its published thumbprint.
        let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
        let canonical = json!({"e": "AQAB", "kty": "RSA", "n": n}).to_string();
        assert!(canonical.starts_with(r#"{"e":"AQAB","kty":"RSA","n":"#));
        let thumb = b64(digest::digest(&digest::SHA256, canonical.as_bytes()).as_ref());
        assert_eq!(thumb, "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
    }

    #[test]
    fn at_rest_round_trips_and_binds_the_kid() {
        let master = MasterKey::generate();
        let box_ = AtRest::new(&master);
        let sealed = box_.seal("kid-1", b"private key").unwrap();
        assert!(!sealed.windows(11).any(|w| w == b"private key"));
        assert_eq!(
            box_.open("kid-1", &sealed).unwrap().as_slice(),
            b"private key"
        );
        assert!(box_.open("kid-2", &sealed).is_err());
        assert!(
            AtRest::new(&MasterKey::generate())
                .open("kid-1", &sealed)
                .is_err()
        );
        assert!(box_.open("kid-1", &sealed[..5]).is_err());
    }
}
