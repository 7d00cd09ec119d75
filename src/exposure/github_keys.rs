//! GitHub's secret-scanning public keys (`KEYGATE_GITHUB_SCANNING_KEYS`) and
//! the check of a request's signature against them.
//!
//! The file holds what <https://api.github.com/meta/public_keys/secret_scanning>
//! answers: `{"public_keys": [{"key_identifier", "key", "is_current"}]}`,
//! each key a PEM `PUBLIC KEY` (SubjectPublicKeyInfo) of ECDSA P-256. GitHub
//! signs each request's raw body with one of them (ECDSA P-256 SHA-256,
//! ASN.1 DER, base64 in `Github-Public-Key-Signature`) and names it in
//! `Github-Public-Key-Identifier`. Every listed key is accepted, current or
//! not: GitHub rotates keys and lists the outgoing one while requests signed
//! with it may still arrive.
//!
//! The file is read and checked once at start (a bad one stops start-up),
//! then again whenever its modification time, size or inode changes, so an
//! operator refreshes GitHub's keys without a restart. A bad new file keeps
//! the keys read before and is logged, once per version of the file.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1, ParsedPublicKey};
use base64::Engine as _;
use rustls_pki_types::SubjectPublicKeyInfoDer;
use rustls_pki_types::pem::PemObject;
use serde::Deserialize;

/// A larger file is not GitHub's list of a few keys.
const MAX_FILE_LEN: u64 = 256 * 1024;
/// Longer identifiers are not GitHub's (theirs are 64 hex characters).
const MAX_IDENTIFIER_LEN: usize = 256;
/// A DER P-256 signature is at most 72 bytes; its base64, 96 characters.
const MAX_SIGNATURE_LEN: usize = 256;

/// Why a request's signature was refused. Each says what was wrong and
/// nothing of the body: the keys are public, so naming the reason helps the
/// caller and tells an attacker nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error(
        "the Github-Public-Key-Identifier and Github-Public-Key-Signature headers are required"
    )]
    MissingHeaders,
    #[error("the Github-Public-Key-Identifier names no key of KEYGATE_GITHUB_SCANNING_KEYS")]
    UnknownKey,
    #[error("the Github-Public-Key-Signature is not base64")]
    Undecodable,
    #[error("the Github-Public-Key-Signature does not match the body")]
    Mismatch,
}

/// One key of the file: its identifier and the parsed P-256 public key.
struct ScanningKey {
    identifier: String,
    key: ParsedPublicKey,
}

/// The keys of one version of the file.
struct KeySet(Vec<ScanningKey>);

impl KeySet {
    /// Parses the file's text: GitHub's JSON, at least one key, each
    /// identifier once, each key a PEM SubjectPublicKeyInfo of P-256.
    fn parse(text: &[u8]) -> Result<Self, String> {
        #[derive(Deserialize)]
        struct File {
            public_keys: Vec<Entry>,
        }
        #[derive(Deserialize)]
        struct Entry {
            key_identifier: String,
            key: String,
            // Read only to insist on GitHub's shape; every key is accepted.
            #[serde(rename = "is_current")]
            _is_current: bool,
        }
        let file: File = serde_json::from_slice(text).map_err(|e| {
            format!(
                "not GitHub's JSON of secret-scanning keys \
                 ({{\"public_keys\": [{{\"key_identifier\", \"key\", \"is_current\"}}]}}): {e}"
            )
        })?;
        if file.public_keys.is_empty() {
            return Err("lists no public key".into());
        }
        let mut keys: Vec<ScanningKey> = Vec::with_capacity(file.public_keys.len());
        for entry in file.public_keys {
            let identifier = entry.key_identifier.trim().to_owned();
            if identifier.is_empty()
                || identifier.len() > MAX_IDENTIFIER_LEN
                || !identifier.bytes().all(|b| b.is_ascii_graphic())
            {
                return Err(format!(
                    "the key identifier {identifier:?} is not 1 to {MAX_IDENTIFIER_LEN} printable characters"
                ));
            }
            if keys.iter().any(|k| k.identifier == identifier) {
                return Err(format!("the key identifier {identifier} is listed twice"));
            }
            let spki = SubjectPublicKeyInfoDer::from_pem_slice(entry.key.as_bytes())
                .map_err(|e| format!("the key {identifier} is not a PEM public key: {e}"))?;
            let key = ParsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, spki.as_ref())
                .map_err(|e| format!("the key {identifier} is not an ECDSA P-256 key: {e}"))?;
            keys.push(ScanningKey { identifier, key });
        }
        Ok(Self(keys))
    }

    fn verify(&self, identifier: &str, signature: &str, body: &[u8]) -> Result<(), SignatureError> {
        let key = self
            .0
            .iter()
            .find(|k| k.identifier == identifier.trim())
            .ok_or(SignatureError::UnknownKey)?;
        let signature = signature.trim();
        if signature.len() > MAX_SIGNATURE_LEN {
            return Err(SignatureError::Undecodable);
        }
        let der = base64::engine::general_purpose::STANDARD
            .decode(signature)
            .map_err(|_| SignatureError::Undecodable)?;
        key.key
            .verify_sig(body, &der)
            .map_err(|_| SignatureError::Mismatch)
    }
}

/// What tells one version of the file from another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

impl Stamp {
    fn of(path: &Path) -> std::io::Result<Self> {
        use std::os::unix::fs::MetadataExt as _;
        let meta = std::fs::metadata(path)?;
        Ok(Self {
            modified: meta.modified().ok(),
            len: meta.len(),
            inode: meta.ino(),
        })
    }
}

struct Loaded {
    keys: Arc<KeySet>,
    /// The version `keys` was read from.
    stamp: Stamp,
    /// The newest version that could not be used, logged once.
    refused: Option<Stamp>,
}

/// The keys of `KEYGATE_GITHUB_SCANNING_KEYS`, re-read when the file changes.
pub struct GithubKeys {
    path: PathBuf,
    loaded: RwLock<Loaded>,
}

impl GithubKeys {
    /// Reads and checks the file: the start-up check. The error names the
    /// file and what is wrong with it.
    pub fn load(path: &Path) -> Result<Self, String> {
        let (keys, stamp) = read(path)?;
        Ok(Self {
            path: path.to_owned(),
            loaded: RwLock::new(Loaded {
                keys: Arc::new(keys),
                stamp,
                refused: None,
            }),
        })
    }

    /// Checks `signature` (the `Github-Public-Key-Signature` header) by the
    /// key `identifier` names over the raw `body`, with the file's newest
    /// good version. Reads the file's metadata, and the file when it
    /// changed: call it off the async workers.
    pub fn verify(
        &self,
        identifier: &str,
        signature: &str,
        body: &[u8],
    ) -> Result<(), SignatureError> {
        self.current().verify(identifier, signature, body)
    }

    /// How many keys the newest good version lists.
    pub fn len(&self) -> usize {
        self.current().0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn current(&self) -> Arc<KeySet> {
        let stamp = Stamp::of(&self.path);
        {
            let loaded = self.loaded.read().unwrap_or_else(|e| e.into_inner());
            let unchanged = match &stamp {
                Ok(stamp) => *stamp == loaded.stamp || Some(*stamp) == loaded.refused,
                // A file gone (or unreadable) keeps the keys; logged below once.
                Err(_) => loaded.refused == Some(loaded.stamp),
            };
            if unchanged {
                return Arc::clone(&loaded.keys);
            }
        }
        let mut loaded = self.loaded.write().unwrap_or_else(|e| e.into_inner());
        match stamp
            .map_err(|e| e.to_string())
            .and_then(|_| read(&self.path))
        {
            Ok((keys, stamp)) => {
                tracing::info!(
                    path = %self.path.display(),
                    keys = keys.0.len(),
                    "read GitHub's secret-scanning keys again: the file changed"
                );
                *loaded = Loaded {
                    keys: Arc::new(keys),
                    stamp,
                    refused: None,
                };
            }
            Err(error) => {
                // Logged once per version: the stamp it has now, or, for a
                // file that cannot even be looked at, the one in use.
                let refused = Stamp::of(&self.path).unwrap_or(loaded.stamp);
                if loaded.refused != Some(refused) {
                    tracing::error!(
                        %error,
                        "KEYGATE_GITHUB_SCANNING_KEYS changed and cannot be used; \
                         the keys read before stay in use"
                    );
                    loaded.refused = Some(refused);
                }
            }
        }
        Arc::clone(&loaded.keys)
    }
}

impl fmt::Debug for GithubKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let loaded = self.loaded.read().unwrap_or_else(|e| e.into_inner());
        let identifiers: Vec<&str> = loaded
            .keys
            .0
            .iter()
            .map(|k| k.identifier.as_str())
            .collect();
        f.debug_struct("GithubKeys")
            .field("path", &self.path)
            .field("identifiers", &identifiers)
            .finish()
    }
}

/// One version of the file, with the stamp it was read at.
fn read(path: &Path) -> Result<(KeySet, Stamp), String> {
    let shown = path.display();
    let stamp = Stamp::of(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
    if stamp.len > MAX_FILE_LEN {
        return Err(format!(
            "{shown} is larger than {MAX_FILE_LEN} bytes: not a list of public keys"
        ));
    }
    let text = std::fs::read(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
    let keys = KeySet::parse(&text).map_err(|e| format!("{shown}: {e}"))?;
    Ok((keys, stamp))
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::encoding::AsDer;
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};

    fn pair() -> EcdsaKeyPair {
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &SystemRandom::new())
                .unwrap();
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref()).unwrap()
    }

    fn pem(pair: &EcdsaKeyPair) -> String {
        let der = pair.public_key().as_der().unwrap();
        let b64 = base64::engine::general_purpose::STANDARD.encode(der.as_ref());
        let lines: Vec<&str> = b64
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            lines.join("\n")
        )
    }

    fn file(keys: &[(&str, &EcdsaKeyPair, bool)]) -> String {
        let public_keys: Vec<_> = keys
            .iter()
            .map(|(id, pair, current)| {
                serde_json::json!({ "key_identifier": id, "key": pem(pair), "is_current": current })
            })
            .collect();
        serde_json::json!({ "public_keys": public_keys }).to_string()
    }

    fn sign(pair: &EcdsaKeyPair, body: &[u8]) -> String {
        let sig = pair.sign(&SystemRandom::new(), body).unwrap();
        base64::engine::general_purpose::STANDARD.encode(sig.as_ref())
    }

    #[test]
    fn a_signature_verifies_only_by_its_key_over_its_body() {
        let (old, new, stranger) = (pair(), pair(), pair());
        let keys =
            KeySet::parse(file(&[("old", &old, false), ("new", &new, true)]).as_bytes()).unwrap();
        let body = br#"[{"token":"x","type":"t","url":"","source":"content"}]"#;
        assert_eq!(keys.verify("new", &sign(&new, body), body), Ok(()));
        assert_eq!(keys.verify("old", &sign(&old, body), body), Ok(()));
        assert_eq!(
            keys.verify("new", &sign(&old, body), body),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            keys.verify("new", &sign(&new, body), &body[1..]),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            keys.verify("new", &sign(&stranger, body), body),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            keys.verify("other", &sign(&new, body), body),
            Err(SignatureError::UnknownKey)
        );
        assert_eq!(
            keys.verify("new", "not base64!", body),
            Err(SignatureError::Undecodable)
        );
        assert_eq!(
            keys.verify("new", "AAAA", body),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn a_bad_file_is_refused_with_its_reason() {
        let key = pair();
        let good = pem(&key);
        let cases = [
            ("{}".to_owned(), "GitHub's JSON"),
            (r#"{"public_keys": []}"#.to_owned(), "no public key"),
            (
                serde_json::json!({"public_keys": [{"key_identifier": "a", "key": good}]})
                    .to_string(),
                "is_current",
            ),
            (
                serde_json::json!({"public_keys": [{"key_identifier": "a", "key": "junk", "is_current": true}]})
                    .to_string(),
                "not a PEM public key",
            ),
            (
                serde_json::json!({"public_keys": [{"key_identifier": " ", "key": good, "is_current": true}]})
                    .to_string(),
                "printable",
            ),
            (file(&[("a", &key, true), ("a", &key, false)]), "twice"),
        ];
        for (text, reason) in cases {
            let err = KeySet::parse(text.as_bytes()).err().unwrap();
            assert!(err.contains(reason), "{text}: {err}");
        }
        // An RSA or Ed25519 key is not GitHub's P-256.
        let ed = aws_lc_rs::signature::Ed25519KeyPair::generate().unwrap();
        let der = ed.public_key().as_der().unwrap();
        let b64 = base64::engine::general_purpose::STANDARD.encode(der.as_ref());
        let text = serde_json::json!({"public_keys": [{"key_identifier": "a",
            "key": format!("-----BEGIN PUBLIC KEY-----\n{b64}\n-----END PUBLIC KEY-----\n"),
            "is_current": true}]})
        .to_string();
        let err = KeySet::parse(text.as_bytes()).err().unwrap();
        assert!(err.contains("not an ECDSA P-256 key"), "{err}");
    }

    #[test]
    fn the_file_is_read_again_when_it_changes_and_a_bad_version_keeps_the_old_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.json");
        let replace = |text: &str| {
            // As an operator's `curl -o tmp && mv tmp keys.json` does.
            let tmp = dir.path().join("keys.json.tmp");
            std::fs::write(&tmp, text).unwrap();
            std::fs::rename(&tmp, &path).unwrap();
        };
        assert!(
            GithubKeys::load(&path)
                .unwrap_err()
                .contains(&path.display().to_string())
        );
        let (first, second) = (pair(), pair());
        let body = b"[]";
        replace(&file(&[("first", &first, true)]));
        let keys = GithubKeys::load(&path).unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(keys.verify("first", &sign(&first, body), body), Ok(()));

        replace(&file(&[
            ("first", &first, false),
            ("second", &second, true),
        ]));
        assert_eq!(keys.verify("second", &sign(&second, body), body), Ok(()));
        assert_eq!(keys.len(), 2);

        replace("{not json");
        assert_eq!(keys.verify("second", &sign(&second, body), body), Ok(()));
        std::fs::remove_file(&path).unwrap();
        assert_eq!(keys.verify("first", &sign(&first, body), body), Ok(()));

        replace(&file(&[("second", &second, true)]));
        assert_eq!(
            keys.verify("first", &sign(&first, body), body),
            Err(SignatureError::UnknownKey)
        );
        assert!(!format!("{keys:?}").contains("BEGIN"));
    }
}
