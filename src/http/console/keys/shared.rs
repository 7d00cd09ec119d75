//! What the key pages share: the keys service and the viewer as its
//! caller, a key's row, and refusals placed beside their fields.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::http::console::{Viewer, sentence};
use crate::http::error::AppError;
use crate::keys::envelope;
use crate::keys::{self, AllowedNetworks, Envelope, Key, KeyError, KeyStatus};
use crate::state::AppState;

/// The keys service of this keygate.
pub(in crate::http::console) fn service(state: &AppState) -> keys::Service {
    keys::Service::new(state.issuer.clone(), state.key_limits())
}

/// The viewer as the keys service knows them: an admin reaches every key.
pub(in crate::http::console) fn caller(viewer: &Viewer) -> keys::Caller {
    keys::Caller::Person(keys::Person {
        email: viewer.email().to_owned(),
        reach: if viewer.is_admin() {
            keys::Reach::EveryKey
        } else {
            keys::Reach::OwnKeys
        },
    })
}

/// The viewer reaching only their own keys and their teams', whatever
/// their role: whose keys "My keys" lists.
pub(super) fn own_caller(viewer: &Viewer) -> keys::Caller {
    keys::Caller::Person(keys::Person {
        email: viewer.email().to_owned(),
        reach: keys::Reach::OwnKeys,
    })
}

/// A key as the list and detail pages show it.
#[derive(Debug, Serialize)]
pub(in crate::http::console) struct KeyRow {
    #[serde(flatten)]
    key: Key,
    /// Active and inside the expiry warning window.
    pub(in crate::http::console) expiring: bool,
}

impl KeyRow {
    pub(in crate::http::console) fn status(&self) -> KeyStatus {
        self.key.status
    }

    pub(in crate::http::console) fn client_id(&self) -> &str {
        self.key.client_id.as_str()
    }
}

pub(in crate::http::console) fn row(state: &AppState, key: Key, now: DateTime<Utc>) -> KeyRow {
    let expiring = key.status == KeyStatus::Active
        && key
            .expires_at
            .is_some_and(|at| at - now <= state.expiry_warning.as_chrono());
    KeyRow { key, expiring }
}

/// The envelope typed into a form.
pub(super) fn envelope_of(networks: &str, limit: &str) -> Result<Envelope, KeyError> {
    Ok(Envelope {
        allowed_networks: AllowedNetworks::parse(networks)?,
        max_tokens_per_minute: envelope::parse_tokens_per_minute(limit)?,
    })
}

#[derive(Debug, Deserialize)]
pub(super) struct KeyPath {
    pub(super) client_id: String,
}

/// Errors by field; `form` for the rest.
#[derive(Debug, Default, Serialize)]
pub(super) struct FieldErrors {
    owner: Option<String>,
    name: Option<String>,
    description: Option<String>,
    scopes: Option<String>,
    audience: Option<String>,
    expires_in: Option<String>,
    allowed_networks: Option<String>,
    max_tokens_per_minute: Option<String>,
    public_key: Option<String>,
    form: Option<String>,
}

impl FieldErrors {
    /// Puts a refusal beside the field it names (`AppError::field`), or
    /// above the form.
    pub(super) fn from_error(error: &AppError) -> Self {
        let mut errors = Self::default();
        let slot = match error.field {
            Some("owner") => &mut errors.owner,
            Some("name") => &mut errors.name,
            Some("description") => &mut errors.description,
            Some("scopes") => &mut errors.scopes,
            Some("audience") => &mut errors.audience,
            Some("expires_in") => &mut errors.expires_in,
            Some("allowed_networks") => &mut errors.allowed_networks,
            Some("max_tokens_per_minute") => &mut errors.max_tokens_per_minute,
            Some("public_key") => &mut errors.public_key,
            _ => &mut errors.form,
        };
        *slot = Some(sentence(&error.message));
        errors
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_land_next_to_their_field() {
        let e = AppError::from(KeyError::ExpiryTooLong {
            asked: "365d".parse().unwrap(),
            max: "180d".parse().unwrap(),
        });
        let errors = FieldErrors::from_error(&e);
        assert_eq!(
            errors.expires_in.as_deref(),
            Some("Expiry 365d is past the configured maximum of 180d (KEYGATE_KEY_MAX_LIFETIME).")
        );
        assert!(errors.form.is_none());
        let limit = AppError::from(KeyError::CreationDisabled("a@example.com".into()));
        assert!(FieldErrors::from_error(&limit).form.is_some());
    }
}
