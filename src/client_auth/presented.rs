//! Client credentials as a request presented them (RFC 6749 §2.3.1, RFC
//! 7523 §2.2); the transport finds them (`oauth_presented`).

use crate::keys::PlainSecret;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    Basic,
    Post,
}

/// A secret as presented; the client ID is not yet known to exist.
#[derive(Debug)]
pub struct Presented {
    pub client_id: String,
    pub secret: PlainSecret,
    pub method: AuthMethod,
}

/// A `private_key_jwt` client assertion as presented: nothing in it is
/// trusted yet.
pub struct PresentedAssertion {
    /// The `client_id` parameter, when sent (it must name the assertion's
    /// client).
    pub client_id: Option<String>,
    /// The JWT (never logged: a replay within its lifetime would be refused,
    /// but it is a credential all the same).
    pub assertion: String,
}

impl std::fmt::Debug for PresentedAssertion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PresentedAssertion")
            .field("client_id", &self.client_id)
            .field("assertion", &"[redacted]")
            .finish()
    }
}

/// However the client authenticates.
#[derive(Debug)]
pub enum ClientCredentials {
    Secret(Presented),
    Assertion(PresentedAssertion),
}
