//! The create-key form: what the person typed, kept when the form comes
//! back with errors, and the request the keys service checks.

use serde::Serialize;

use crate::duration::HumanDuration;
use crate::http::console::field;
use crate::http::error::AppError;
use crate::http::form::Form;
use crate::keys::{KeyError, KeyOwner, NewCredential, NewKeyRequest};
use crate::scope::{Audience, ScopeSet};

use super::shared::envelope_of;

/// What the person typed, kept when the form comes back with errors.
#[derive(Debug, Default, Serialize)]
pub(super) struct KeyForm {
    /// `me`, or `team:NAME`; empty: `me`.
    owner: String,
    name: String,
    description: String,
    scopes: Vec<String>,
    audience: String,
    expires_in: String,
    /// Allowed networks as typed (commas, spaces or lines between them).
    allowed_networks: String,
    max_tokens_per_minute: String,
    /// How the client authenticates: `secret` (or empty) or `public_key`.
    auth_method: String,
    /// The client's public key(s) as pasted, for `public_key`.
    public_key: String,
}

impl KeyForm {
    /// The form as shown again: a private key pasted by mistake is not
    /// written back into the page.
    pub(super) fn without_private_key(mut self) -> Self {
        if crate::keys::public_keys::holds_private_key(&self.public_key) {
            self.public_key.clear();
        }
        self
    }

    /// The form with an expiry chosen when none is: 90 days, or the
    /// configured maximum when that is shorter.
    pub(super) fn with_default_expiry(self, max: Option<HumanDuration>) -> Self {
        if !self.expires_in.is_empty() {
            return self;
        }
        let expires_in = max.map_or("90d".to_owned(), |m| {
            m.min("90d".parse().unwrap_or(m)).to_string()
        });
        Self { expires_in, ..self }
    }
}

pub(super) fn parse_key_form(form: &Form) -> Result<KeyForm, AppError> {
    Ok(KeyForm {
        owner: optional_field(form, "owner")?.trim().to_owned(),
        name: field(form, "name")?.to_owned(),
        description: field(form, "description")?.to_owned(),
        scopes: form.all("scope").to_vec(),
        audience: field(form, "audience")?.trim().to_owned(),
        expires_in: field(form, "expires_in")?.trim().to_owned(),
        allowed_networks: optional_field(form, "allowed_networks")?.trim().to_owned(),
        max_tokens_per_minute: optional_field(form, "max_tokens_per_minute")?
            .trim()
            .to_owned(),
        auth_method: optional_field(form, "auth_method")?.trim().to_owned(),
        public_key: optional_field(form, "public_key")?.trim().to_owned(),
    })
}

/// A field a form may leave out: empty when it does.
fn optional_field<'f>(form: &'f Form, name: &str) -> Result<&'f str, AppError> {
    match form.all(name) {
        [] => Ok(""),
        _ => field(form, name),
    }
}

/// The owner an owner choice names: `me` (or nothing) is the person
/// filling the form, `team:NAME` a team; whether they may give it a key is
/// the keys service's to decide.
pub(super) fn chosen_owner(me: &str, choice: &str) -> Result<KeyOwner, KeyError> {
    match choice {
        "" | "me" => Ok(KeyOwner::person(me)),
        other => match other.strip_prefix("team:") {
            Some(team) if !team.trim().is_empty() => Ok(KeyOwner::team(team)),
            _ => Err(KeyError::TeamNotFound(other.to_owned())),
        },
    }
}

/// The request the keys service checks, from the form, for a key of
/// `me` or of the team the form chose.
pub(super) fn key_request<'f>(me: &str, form: &'f KeyForm) -> Result<NewKeyRequest<'f>, KeyError> {
    let owner = chosen_owner(me, &form.owner)?;
    let mut scopes = Vec::with_capacity(form.scopes.len());
    for scope in &form.scopes {
        let one = ScopeSet::parse(scope).map_err(|e| KeyError::InvalidScope(e.to_string()))?;
        scopes.extend(one.to_vec());
    }
    if scopes.is_empty() {
        return Err(KeyError::NoScopes);
    }
    let audiences = match form.audience.as_str() {
        "" => Vec::new(),
        a => vec![Audience::parse(a).map_err(KeyError::InvalidAudience)?],
    };
    let expires_in = match form.expires_in.as_str() {
        "" | "never" => None,
        d => Some(
            d.parse::<HumanDuration>()
                .map_err(|e| KeyError::InvalidExpiry(format!("expiry {d:?}: {e}")))?,
        ),
    };
    Ok(NewKeyRequest {
        owner,
        name: &form.name,
        description: &form.description,
        scopes: scopes.into_iter().collect(),
        audiences,
        expires_in,
        envelope: envelope_of(&form.allowed_networks, &form.max_tokens_per_minute)?,
        credential: credential_of(&form.auth_method, &form.public_key)?,
    })
}

/// The new key's credential: a secret, or the public keys pasted.
fn credential_of(auth_method: &str, public_key: &str) -> Result<NewCredential, KeyError> {
    match auth_method {
        "" | "secret" => Ok(NewCredential::Secret),
        _ => Ok(NewCredential::PublicKeys(
            crate::keys::public_keys::parse(public_key)?.jwks,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_owner_choice_is_me_or_a_team() {
        let me = "Alice@Example.com";
        assert_eq!(
            chosen_owner(me, "").unwrap(),
            KeyOwner::person("alice@example.com")
        );
        assert_eq!(
            chosen_owner(me, "me").unwrap(),
            KeyOwner::person("alice@example.com")
        );
        assert_eq!(chosen_owner(me, "team:ops").unwrap(), KeyOwner::team("ops"));
        for odd in ["team:", "someone@example.com", "ops"] {
            assert!(matches!(
                chosen_owner(me, odd),
                Err(KeyError::TeamNotFound(_))
            ));
        }
    }
}
