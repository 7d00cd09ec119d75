//! API keys: long-lived client credentials that clients exchange for tokens.
//!
//! - `service`: every change to a key and every read of one for a caller,
//!   through [`Service`], with the rules of `rules` and [`limits`]; its
//!   refusals are [`KeyError`]s, its key the [`Key`] (once, with its
//!   secret, the [`IssuedKey`]);
//! - `credential`: what the OAuth endpoints read on every request;
//! - `lookup`: finding a key by its secret alone (exposure reports);
//! - [`last_use`]: recording when and from where a key was used;
//! - [`envelope`], [`issuance`]: where a key may be used from and how many
//!   tokens a minute it may get; [`expiry`]: the expiry emails' sweep.

pub mod approval;
mod caller;
mod credential;
pub mod envelope;
mod error;
pub mod expiry;
pub mod issuance;
pub mod last_use;
pub mod limits;
mod lookup;
mod model;
mod notify;
mod owner;
pub mod public_keys;
mod rules;
pub mod secret;
mod service;
mod transfer;

pub use caller::{Caller, Person, Reach};
pub use credential::{Credential, Refusal, find_credential};
pub use envelope::{AllowedNetworks, Envelope, EnvelopeChange};
pub use error::{KeyError, TextField};
pub use last_use::{UseSite, touch_last_used};
pub use limits::MAX_GRACE_DAYS;
pub use lookup::{find_any_by_secret_lookup, find_by_secret_lookup};
pub use model::{ApiKey, AuthMethod, IssuedKey, Key, KeyStatus};
pub use owner::{KeyOwner, Recipient, recipients};
pub use rules::{KeyLimits, NewCredential, NewKeyRequest, parse_grace};
pub use secret::{ClientId, PlainSecret, SecretHash};
pub use service::{Exposure, KeyFilter, Service, list_api_keys, load_keys, owner_of};
pub use transfer::Disabled;
