//! The RFC 9068 claims of an access token: what keygate signs and what the
//! verifier hands back, one type, so issuer and validator cannot disagree.

use serde::{Serialize, Serializer};

/// The RFC 9068 claims of an access token. keygate's token endpoint
/// serializes exactly this type into the tokens it signs; the verifier
/// returns it for a token that passed validation, every field having been
/// present in the token (`scope` is empty when the token had none).
///
/// Serialized, `aud` is a string when it holds one audience and an array
/// otherwise (RFC 7519 §4.1.3), and `nbf` is left out when `None`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Claims {
    /// The issuer, equal to the configured one.
    pub iss: String,
    /// The subject: for keygate, the client ID of the API key.
    pub sub: String,
    /// Every audience of the token; the expected one is among them.
    #[serde(serialize_with = "one_or_many")]
    pub aud: Vec<String>,
    pub client_id: String,
    /// Space-separated scopes.
    pub scope: String,
    /// Issued at, seconds since the Unix epoch.
    pub iat: i64,
    /// Expires at, seconds since the Unix epoch.
    pub exp: i64,
    /// Not before, when the token has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    /// The token's unique ID.
    pub jti: String,
}

/// RFC 7519 §4.1.3: a single audience as a plain string.
fn one_or_many<S: Serializer>(aud: &[String], serializer: S) -> Result<S::Ok, S::Error> {
    match aud {
        [one] => serializer.serialize_str(one),
        many => many.serialize(serializer),
    }
}

impl Claims {
    /// True when the space-separated `scope` claim holds `scope` exactly.
    ///
    /// ```
    /// # let claims = keygate_verifier::Claims {
    /// #     iss: "https://auth.example.com".into(), sub: "kgc_1".into(),
    /// #     aud: vec!["https://api.example.com".into()], client_id: "kgc_1".into(),
    /// #     scope: "read write".into(), iat: 0, exp: 900, nbf: None, jti: "j".into(),
    /// # };
    /// assert!(claims.has_scope("read"));
    /// assert!(!claims.has_scope("rea"));
    /// ```
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes().any(|s| s == scope)
    }

    /// Each scope of the token.
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.scope.split(' ').filter(|s| !s.is_empty())
    }
}
