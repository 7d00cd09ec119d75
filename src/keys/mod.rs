//! API keys: long-lived client credentials that clients exchange for tokens.

pub mod envelope;
pub mod expiry;
pub mod issuance;
pub mod last_use;
mod model;
pub mod secret;
mod store;

pub use envelope::{AllowedNetworks, Envelope, EnvelopeChange};
pub use model::{ApiKey, IssuedKey, IssuedKeyJson, KeyStatus, KeyView};
pub use secret::{ClientId, PlainSecret, SecretHash};
pub use store::{
    Credential, KeyLimits, NewKeyRequest, Refusal, UseSite, create_api_key,
    find_any_by_secret_lookup, find_by_secret_lookup, find_credential, find_key, find_key_view,
    list_api_keys, revoke_api_key, revoke_exposed_api_key, rotate_api_key, set_envelope,
    touch_last_used,
};
