//! Client credentials as a request presented them (RFC 6749 §2.3.1); the
//! transport finds them (`oauth_presented`).

use crate::keys::PlainSecret;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    Basic,
    Post,
}

/// Credentials as presented; the client ID is not yet known to exist.
#[derive(Debug)]
pub struct Presented {
    pub client_id: String,
    pub secret: PlainSecret,
    pub method: AuthMethod,
}
