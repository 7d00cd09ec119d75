//! Why a token was refused.

/// Why [`Verifier`](super::Verifier) refused a token, or could not decide.
///
/// Every variant except [`Discovery`](Self::Discovery) and
/// [`Introspection`](Self::Introspection) means "this token is not valid":
/// see [`VerifyError::is_invalid_token`]. The messages name no part of the
/// token, so they are safe to return to the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// Not three base64url parts, or a part that is not the JSON it should be.
    #[error("the token is malformed")]
    Malformed,
    /// The header's `alg` is not on the allow-list (`none` and HMAC never are).
    #[error("the token's signing algorithm is not allowed")]
    AlgorithmNotAllowed,
    /// The header's `typ` is not `at+jwt` (RFC 9068 §4).
    #[error("the token is not a JWT access token (typ must be at+jwt)")]
    WrongType,
    /// The header names extensions in `crit`, none of which are understood.
    #[error("the token requires unsupported header extensions")]
    UnsupportedCritical,
    /// The header has no `kid`.
    #[error("the token names no signing key")]
    MissingKeyId,
    /// No published key has the header's `kid`, even after a refetch.
    #[error("the token was signed by an unknown key")]
    UnknownKey,
    /// The `kid` names a key made for another algorithm than the header's.
    #[error("the token's algorithm does not match its key")]
    KeyMismatch,
    /// The signature does not verify: tampered, or signed by another key.
    #[error("the token's signature is invalid")]
    BadSignature,
    /// A required claim is absent or of the wrong type.
    #[error("the token lacks the {0} claim")]
    MissingClaim(&'static str),
    /// `iss` is not the configured issuer.
    #[error("the token was issued by another issuer")]
    WrongIssuer,
    /// `aud` does not contain the expected audience.
    #[error("the token is meant for another audience")]
    WrongAudience,
    /// Past `exp` (plus the leeway).
    #[error("the token has expired")]
    Expired,
    /// Before `nbf` (minus the leeway).
    #[error("the token is not valid yet")]
    NotYetValid,
    /// Online mode: the issuer's introspection says the token is no longer
    /// active (revoked, or its API key was revoked or disabled).
    #[error("the token has been revoked")]
    Inactive,
    /// The issuer's metadata or keys could not be fetched or were unusable.
    #[error("cannot fetch the issuer's keys: {0}")]
    Discovery(String),
    /// Online mode: the introspection request failed.
    #[error("cannot reach the issuer's introspection endpoint: {0}")]
    Introspection(String),
}

impl VerifyError {
    /// True when the token itself is at fault (RFC 6750 `invalid_token`);
    /// false when the verifier could not reach the issuer.
    pub fn is_invalid_token(&self) -> bool {
        !matches!(self, Self::Discovery(_) | Self::Introspection(_))
    }
}
