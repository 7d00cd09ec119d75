//! The claims of a validated access token.

use serde::Serialize;

/// The RFC 9068 claims of an access token that passed validation. Every
/// field was present in the token; `scope` is empty when the token had none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Claims {
    /// The issuer, equal to the configured one.
    pub iss: String,
    /// The subject: for keygate, the client ID of the API key.
    pub sub: String,
    /// Every audience of the token; the expected one is among them.
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

impl Claims {
    /// True when the space-separated `scope` claim holds `scope` exactly.
    ///
    /// ```
    /// # let claims = keygate::verifier::Claims {
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
