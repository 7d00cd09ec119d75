//! keygate as a WebAuthn relying party (`webauthn-rs`): the issuer's host
//! is the RP ID and its origin the only origin accepted. Browsers allow
//! WebAuthn only in a secure context on a domain, so there is one when the
//! issuer is https, or plain http on `localhost`.

use std::sync::Arc;

use webauthn_rs::prelude::{Url, Webauthn, WebauthnBuilder};

/// keygate as a WebAuthn relying party.
#[derive(Clone)]
pub struct RelyingParty(Arc<Webauthn>);

impl std::fmt::Debug for RelyingParty {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RelyingParty")
    }
}

impl RelyingParty {
    /// The relying party of `issuer`, when browsers allow one there: an
    /// https URL on a domain, or http on `localhost`.
    pub fn for_issuer(issuer: &str) -> Option<Self> {
        let origin = Url::parse(issuer).ok()?;
        let host = origin.domain()?.to_owned();
        let secure = origin.scheme() == "https" || host == "localhost";
        if !secure {
            return None;
        }
        let mut origin_only = origin.clone();
        origin_only.set_path("");
        let webauthn = WebauthnBuilder::new(&host, &origin_only)
            .ok()?
            .rp_name("keygate")
            .build()
            .ok()?;
        Some(Self(Arc::new(webauthn)))
    }

    pub(crate) fn webauthn(&self) -> &Webauthn {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passkeys_exist_on_https_domains_and_localhost_only() {
        assert!(RelyingParty::for_issuer("https://keys.example.com").is_some());
        assert!(RelyingParty::for_issuer("http://localhost:8080").is_some());
        assert!(RelyingParty::for_issuer("http://127.0.0.1:8080").is_none());
        assert!(RelyingParty::for_issuer("http://keys.example.com").is_none());
        assert!(RelyingParty::for_issuer("https://10.0.0.1").is_none());
    }
}
