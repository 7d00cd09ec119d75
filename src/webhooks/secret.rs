//! An endpoint's signing secret: 32 random bytes, shown once as `whsec_` +
//! base64, stored sealed with a key derived from the master key, and the
//! Standard Webhooks signature it makes.

use std::fmt;

use aws_lc_rs::hmac;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::signing::{AtRest, CryptoError, MasterKey};

/// The prefix Standard Webhooks gives a secret. Never change it: receivers
/// strip it before decoding.
pub const PREFIX: &str = "whsec_";

/// The secret's bytes: no `Display`, no `Serialize`, a redacted `Debug`,
/// zeroed on drop.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct SigningSecret(Vec<u8>);

impl SigningSecret {
    pub fn generate() -> Self {
        let mut bytes = vec![0u8; 32];
        crate::random::fill(&mut bytes);
        Self(bytes)
    }

    /// `whsec_...` as a receiver configures it: at least 24 bytes (the
    /// specification's example; keygate makes 32).
    pub fn parse(text: &str) -> Option<Self> {
        let encoded = text.strip_prefix(PREFIX)?;
        let bytes = STANDARD.decode(encoded).ok()?;
        if bytes.len() < 24 {
            let _ = Zeroizing::new(bytes);
            return None;
        }
        Some(Self(bytes))
    }

    /// The secret as shown the one time it is shown.
    pub fn reveal(&self) -> Zeroizing<String> {
        Zeroizing::new(format!("{PREFIX}{}", STANDARD.encode(&self.0)))
    }

    /// The `webhook-signature` header's value for one attempt: `v1,` +
    /// base64 of HMAC-SHA256 over `{id}.{timestamp}.{body}`.
    pub fn sign(&self, id: &str, timestamp: i64, body: &str) -> String {
        let key = hmac::Key::new(hmac::HMAC_SHA256, &self.0);
        let mut context = hmac::Context::with_key(&key);
        context.update(id.as_bytes());
        context.update(b".");
        context.update(timestamp.to_string().as_bytes());
        context.update(b".");
        context.update(body.as_bytes());
        format!("v1,{}", STANDARD.encode(context.sign().as_ref()))
    }
}

impl fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningSecret(<redacted>)")
    }
}

/// Seals and opens signing secrets, each bound to its endpoint's ID.
pub struct WebhookSealer(AtRest);

impl WebhookSealer {
    pub fn new(master: &MasterKey) -> Self {
        Self(AtRest::for_purpose(master, b"webhook-secret encryption v1"))
    }

    pub fn seal(&self, endpoint_id: &str, secret: &SigningSecret) -> Result<Vec<u8>, CryptoError> {
        self.0.seal(endpoint_id, &secret.0)
    }

    pub fn open(&self, endpoint_id: &str, sealed: &[u8]) -> Result<SigningSecret, CryptoError> {
        let plain = self.0.open(endpoint_id, sealed)?;
        Ok(SigningSecret(plain.to_vec()))
    }
}

impl fmt::Debug for WebhookSealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSealer")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the Standard Webhooks specification (and of its
    /// reference libraries' tests).
    #[test]
    fn signs_as_the_specification_does() {
        let secret = SigningSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").expect("valid");
        assert_eq!(
            secret.sign(
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1614265330,
                r#"{"test": 2432232314}"#
            ),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn a_secret_shows_as_whsec_and_reads_back() {
        let secret = SigningSecret::generate();
        let shown = secret.reveal();
        assert!(
            shown.starts_with("whsec_") && shown.len() == 6 + 44,
            "{}",
            *shown
        );
        let again = SigningSecret::parse(&shown).expect("reads back");
        assert_eq!(again.sign("a", 1, "b"), secret.sign("a", 1, "b"));
        assert!(SigningSecret::parse("whsec_c2hvcnQ=").is_none());
        assert!(SigningSecret::parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_none());
        assert_eq!(format!("{secret:?}"), "SigningSecret(<redacted>)");
    }

    #[test]
    fn a_sealed_secret_opens_only_for_its_endpoint_and_key() {
        let master = MasterKey::generate();
        let sealer = WebhookSealer::new(&master);
        let secret = SigningSecret::generate();
        let sealed = sealer.seal("endpoint-1", &secret).expect("seals");
        let opened = sealer.open("endpoint-1", &sealed).expect("opens");
        assert_eq!(opened.sign("a", 1, "b"), secret.sign("a", 1, "b"));
        assert!(sealer.open("endpoint-2", &sealed).is_err());
        assert!(
            WebhookSealer::new(&MasterKey::generate())
                .open("endpoint-1", &sealed)
                .is_err()
        );
        // The signing keys' sealer is another key.
        assert!(AtRest::new(&master).open("endpoint-1", &sealed).is_err());
    }
}
