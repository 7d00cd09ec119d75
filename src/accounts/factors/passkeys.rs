//! Passkeys (WebAuthn Level 2, through `webauthn-rs`): several per person,
//! named, removable; each a discoverable credential, so "Sign in with a
//! passkey" needs no email, and a passkey also serves as the second factor
//! after a password.
//!
//! The relying party is keygate's issuer: its host is the RP ID and its
//! origin the only origin accepted. Browsers allow WebAuthn only in a
//! secure context on a domain, so passkeys exist when the issuer is https,
//! or plain http on `localhost` ([`RelyingParty::for_issuer`]).
//!
//! A ceremony (registration, sign-in) spans two requests: its state rides
//! in a cookie sealed under the accounts' key ([`Ceremony`]), good for 5
//! minutes, so any keygate process can finish what another began.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, NaiveDateTime, Utc};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use webauthn_rs::prelude::{
    DiscoverableAuthentication, Passkey, PasskeyAuthentication, PasskeyRegistration,
    PublicKeyCredential, RegisterPublicKeyCredential, Uuid,
};
use zeroize::Zeroizing;

use crate::accounts::relying_party::RelyingParty;
use crate::accounts::session::SessionCookie;
use crate::accounts::settings::AccountSettings;
use crate::db::DbConnection;
use crate::db::schema::passkeys;

/// Most passkeys one person may have.
pub const MAX_PASSKEYS: usize = 10;
/// Longest passkey name.
pub const MAX_NAME_CHARS: usize = 60;
/// How long a ceremony may take.
pub const CEREMONY_LIFETIME: Duration = Duration::minutes(5);
pub const SECURE_CEREMONY_COOKIE_NAME: &str = "__Host-keygate-webauthn";
pub const PLAIN_CEREMONY_COOKIE_NAME: &str = "keygate-webauthn";
const SEALED_FOR: &str = "webauthn ceremony";
const MAX_SEALED: usize = 3800;

/// A ceremony between its two requests.
#[derive(Serialize, Deserialize)]
enum Ceremony {
    Register {
        user_id: String,
        state: PasskeyRegistration,
    },
    /// "Sign in with a passkey": whoever the authenticator names.
    Discover { state: DiscoverableAuthentication },
    /// The second step of a password sign-in, for this person's passkeys.
    SecondFactor {
        user_id: String,
        state: PasskeyAuthentication,
    },
}

#[derive(Serialize, Deserialize)]
struct SealedCeremony {
    ceremony: Ceremony,
    started: i64,
}

pub fn ceremony_cookie_name(settings: &AccountSettings) -> &'static str {
    settings.cookie_name(SECURE_CEREMONY_COOKIE_NAME, PLAIN_CEREMONY_COOKIE_NAME)
}

/// The cookie that removes a ceremony's (its second request sets it).
pub fn ceremony_removal_cookie(settings: &AccountSettings) -> SessionCookie {
    let https = settings.https;
    SessionCookie::new(ceremony_cookie_name(settings), None, 0, https)
}

fn seal(
    settings: &AccountSettings,
    ceremony: Ceremony,
    now: DateTime<Utc>,
) -> Option<SessionCookie> {
    let sealed = SealedCeremony {
        ceremony,
        started: now.timestamp(),
    };
    let plain = Zeroizing::new(serde_json::to_vec(&sealed).ok()?);
    let bytes = settings.sealer.seal(SEALED_FOR, &plain)?;
    let value = URL_SAFE_NO_PAD.encode(bytes);
    (value.len() <= MAX_SEALED).then(|| {
        SessionCookie::new(
            ceremony_cookie_name(settings),
            Some(Zeroizing::new(value)),
            CEREMONY_LIFETIME.num_seconds(),
            settings.https,
        )
    })
}

fn open(settings: &AccountSettings, value: &str, now: DateTime<Utc>) -> Option<Ceremony> {
    if value.len() > MAX_SEALED {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD.decode(value).ok()?;
    let plain = settings.sealer.open(SEALED_FOR, &bytes)?;
    let sealed: SealedCeremony = serde_json::from_slice(&plain).ok()?;
    let started = DateTime::from_timestamp(sealed.started, 0)?;
    (now - started <= CEREMONY_LIFETIME).then_some(sealed.ceremony)
}

/// A passkey as the Security page lists it.
#[derive(Debug, Clone, Serialize)]
pub struct PasskeyView {
    pub id: String,
    pub name: String,
    /// RFC 3339.
    pub created_at: String,
    pub last_used_at: Option<String>,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = passkeys)]
pub(crate) struct PasskeyRow {
    pub id: String,
    pub user_id: String,
    pub name: String,
    pub passkey: String,
    pub created_at: NaiveDateTime,
    pub last_used_at: Option<NaiveDateTime>,
}

impl PasskeyRow {
    fn view(&self) -> PasskeyView {
        let shown = |at: NaiveDateTime| crate::time::rfc3339(crate::time::from_db(at));
        PasskeyView {
            id: self.id.clone(),
            name: self.name.clone(),
            created_at: shown(self.created_at),
            last_used_at: self.last_used_at.map(shown),
        }
    }

    fn credential(&self) -> Option<Passkey> {
        serde_json::from_str(&self.passkey).ok()
    }
}

pub(crate) fn passkeys_of(conn: &mut DbConnection, user_id: &str) -> QueryResult<Vec<PasskeyRow>> {
    passkeys::table
        .filter(passkeys::user_id.eq(user_id))
        .order(passkeys::created_at.asc())
        .select(PasskeyRow::as_select())
        .load(conn)
}

pub(crate) fn passkey_views(
    conn: &mut DbConnection,
    user_id: &str,
) -> QueryResult<Vec<PasskeyView>> {
    Ok(passkeys_of(conn, user_id)?
        .iter()
        .map(PasskeyRow::view)
        .collect())
}

pub(crate) fn count_passkeys(conn: &mut DbConnection, user_id: &str) -> QueryResult<i64> {
    passkeys::table
        .filter(passkeys::user_id.eq(user_id))
        .count()
        .get_result(conn)
}

fn by_credential(conn: &mut DbConnection, credential_id: &[u8]) -> QueryResult<Option<PasskeyRow>> {
    passkeys::table
        .filter(passkeys::credential_id.eq(URL_SAFE_NO_PAD.encode(credential_id)))
        .select(PasskeyRow::as_select())
        .first(conn)
        .optional()
}

pub(crate) fn delete_passkey(
    conn: &mut DbConnection,
    user_id: &str,
    id: &str,
) -> QueryResult<usize> {
    diesel::delete(
        passkeys::table
            .filter(passkeys::user_id.eq(user_id))
            .filter(passkeys::id.eq(id)),
    )
    .execute(conn)
}

pub(crate) fn rename_passkey(
    conn: &mut DbConnection,
    user_id: &str,
    id: &str,
    name: &str,
) -> QueryResult<usize> {
    diesel::update(
        passkeys::table
            .filter(passkeys::user_id.eq(user_id))
            .filter(passkeys::id.eq(id)),
    )
    .set(passkeys::name.eq(name))
    .execute(conn)
}

pub(crate) fn delete_passkeys(conn: &mut DbConnection, user_id: &str) -> QueryResult<usize> {
    diesel::delete(passkeys::table.filter(passkeys::user_id.eq(user_id))).execute(conn)
}

/// Why a ceremony failed.
#[derive(Debug, thiserror::Error)]
pub enum CeremonyError {
    #[error("passkeys need keygate at an https address (or http on localhost)")]
    Unavailable,
    #[error("that passkey request expired or came from another browser: try again")]
    Expired,
    #[error("the passkey was not accepted: {0}")]
    Refused(String),
    #[error("a person may have at most {MAX_PASSKEYS} passkeys")]
    TooMany,
    #[error("a passkey's name is 1 to {MAX_NAME_CHARS} characters without control characters")]
    InvalidName,
    #[error(transparent)]
    Store(#[from] crate::error::StoreError),
}

crate::error::from_store_errors!(CeremonyError);

fn relying_party(settings: &AccountSettings) -> Result<RelyingParty, CeremonyError> {
    settings.passkeys.clone().ok_or(CeremonyError::Unavailable)
}

/// The `publicKey` options JSON for `navigator.credentials`, with what
/// keygate asks beyond the crate's defaults.
fn options_json(options: &impl Serialize, discoverable: bool) -> Value {
    let mut value = serde_json::to_value(options).unwrap_or(Value::Null);
    if discoverable {
        // A discoverable credential: "Sign in with a passkey" finds it
        // without an email.
        if let Some(selection) = value
            .pointer_mut("/publicKey/authenticatorSelection")
            .and_then(Value::as_object_mut)
        {
            selection.insert("residentKey".into(), "required".into());
            selection.insert("requireResidentKey".into(), true.into());
        }
    }
    // A button's modal request, not the crate's conditional (autofill) one.
    if let Some(object) = value.as_object_mut() {
        object.remove("mediation");
    }
    value
}

/// A registration begun for `user`: the options for the browser and the
/// ceremony's cookie.
pub(crate) fn begin_registration(
    settings: &AccountSettings,
    conn: &mut DbConnection,
    user: &crate::users::User,
    now: DateTime<Utc>,
) -> Result<(Value, SessionCookie), CeremonyError> {
    let rp = relying_party(settings)?;
    let known = passkeys_of(conn, &user.id)?;
    if known.len() >= MAX_PASSKEYS {
        return Err(CeremonyError::TooMany);
    }
    let exclude: Vec<_> = known
        .iter()
        .filter_map(PasskeyRow::credential)
        .map(|p| p.cred_id().clone())
        .collect();
    let handle = Uuid::parse_str(&user.id).map_err(|e| CeremonyError::Refused(e.to_string()))?;
    let shown = if user.name.is_empty() {
        &user.email
    } else {
        &user.name
    };
    let (options, state) = rp
        .webauthn()
        .start_passkey_registration(handle, &user.email, shown, Some(exclude))
        .map_err(|e| CeremonyError::Refused(e.to_string()))?;
    let ceremony = Ceremony::Register {
        user_id: user.id.clone(),
        state,
    };
    let cookie = seal(settings, ceremony, now).ok_or(CeremonyError::Expired)?;
    Ok((options_json(&options, true), cookie))
}

/// A passkey's name as typed: trimmed, bounded; empty gives "Passkey N".
pub(crate) fn parse_name(text: &str, count: usize) -> Result<String, CeremonyError> {
    let name = text.trim();
    if name.is_empty() {
        return Ok(format!("Passkey {}", count + 1));
    }
    if name.chars().count() > MAX_NAME_CHARS || name.chars().any(char::is_control) {
        return Err(CeremonyError::InvalidName);
    }
    Ok(name.to_owned())
}

/// A passkey's new name: as [`parse_name`], but an empty one is refused
/// (the passkey keeps its name) rather than numbered.
pub(crate) fn parse_new_name(text: &str) -> Result<String, CeremonyError> {
    if text.trim().is_empty() {
        return Err(CeremonyError::InvalidName);
    }
    parse_name(text, 0)
}

/// The registration finished for `user`: the new passkey stored.
pub(crate) fn finish_registration(
    settings: &AccountSettings,
    conn: &mut DbConnection,
    user: &crate::users::User,
    (name, credential, ceremony): (&str, &str, Option<&str>),
    now: DateTime<Utc>,
) -> Result<String, CeremonyError> {
    let rp = relying_party(settings)?;
    let Some(Ceremony::Register { user_id, state }) =
        ceremony.and_then(|value| open(settings, value, now))
    else {
        return Err(CeremonyError::Expired);
    };
    if user_id != user.id {
        return Err(CeremonyError::Expired);
    }
    let credential: RegisterPublicKeyCredential =
        serde_json::from_str(credential).map_err(|e| CeremonyError::Refused(e.to_string()))?;
    let passkey = rp
        .webauthn()
        .finish_passkey_registration(&credential, &state)
        .map_err(|e| CeremonyError::Refused(e.to_string()))?;
    let count = passkeys_of(conn, &user.id)?.len();
    if count >= MAX_PASSKEYS {
        return Err(CeremonyError::TooMany);
    }
    let name = parse_name(name, count)?;
    let stored =
        serde_json::to_string(&passkey).map_err(|e| CeremonyError::Refused(e.to_string()))?;
    diesel::insert_into(passkeys::table)
        .values((
            passkeys::id.eq(uuid::Uuid::now_v7().to_string()),
            passkeys::user_id.eq(&user.id),
            passkeys::credential_id.eq(URL_SAFE_NO_PAD.encode(passkey.cred_id())),
            passkeys::name.eq(&name),
            passkeys::passkey.eq(&stored),
            passkeys::created_at.eq(now.naive_utc()),
        ))
        .execute(conn)
        .map_err(|e| {
            if crate::db::is_unique_violation(&e) {
                CeremonyError::Refused("this passkey is registered already".into())
            } else {
                e.into()
            }
        })?;
    Ok(name)
}

/// "Sign in with a passkey" begun: options for any discoverable credential.
pub(crate) fn begin_discoverable(
    settings: &AccountSettings,
    now: DateTime<Utc>,
) -> Result<(Value, SessionCookie), CeremonyError> {
    let rp = relying_party(settings)?;
    let (options, state) = rp
        .webauthn()
        .start_discoverable_authentication()
        .map_err(|e| CeremonyError::Refused(e.to_string()))?;
    let cookie = seal(settings, Ceremony::Discover { state }, now).ok_or(CeremonyError::Expired)?;
    Ok((options_json(&options, false), cookie))
}

/// The second step with a passkey begun, for `user_id`'s passkeys.
pub(crate) fn begin_second_factor(
    settings: &AccountSettings,
    conn: &mut DbConnection,
    user_id: &str,
    now: DateTime<Utc>,
) -> Result<(Value, SessionCookie), CeremonyError> {
    let rp = relying_party(settings)?;
    let keys: Vec<Passkey> = passkeys_of(conn, user_id)?
        .iter()
        .filter_map(PasskeyRow::credential)
        .collect();
    if keys.is_empty() {
        return Err(CeremonyError::Refused("no passkey is registered".into()));
    }
    let (options, state) = rp
        .webauthn()
        .start_passkey_authentication(&keys)
        .map_err(|e| CeremonyError::Refused(e.to_string()))?;
    let ceremony = Ceremony::SecondFactor {
        user_id: user_id.to_owned(),
        state,
    };
    let cookie = seal(settings, ceremony, now).ok_or(CeremonyError::Expired)?;
    Ok((options_json(&options, false), cookie))
}

/// Whose passkey signed, by which ceremony.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Proved {
    /// A discoverable sign-in: the passkey alone.
    Alone,
    /// The second step after a password.
    AfterPassword,
}

/// An assertion checked against its ceremony and the stored passkey (its
/// counter moved, its last use recorded): the person's id, and which
/// ceremony it was. `pending_user` is the person of the pending sign-in,
/// required for a second step.
pub(crate) fn finish_assertion(
    settings: &AccountSettings,
    conn: &mut DbConnection,
    (credential, ceremony): (&str, Option<&str>),
    pending_user: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(String, Proved), CeremonyError> {
    let rp = relying_party(settings)?;
    let ceremony = ceremony
        .and_then(|value| open(settings, value, now))
        .ok_or(CeremonyError::Expired)?;
    let credential: PublicKeyCredential =
        serde_json::from_str(credential).map_err(|e| CeremonyError::Refused(e.to_string()))?;
    let refused = |e: webauthn_rs::prelude::WebauthnError| CeremonyError::Refused(e.to_string());
    let (row, result, proved) = match ceremony {
        Ceremony::Discover { state } => {
            let (handle, credential_id) = rp
                .webauthn()
                .identify_discoverable_authentication(&credential)
                .map_err(refused)?;
            let row = by_credential(conn, credential_id)?
                .filter(|row| Uuid::parse_str(&row.user_id).ok() == Some(handle))
                .ok_or_else(|| CeremonyError::Refused("no such passkey".into()))?;
            let key = row
                .credential()
                .ok_or_else(|| CeremonyError::Refused("a stored passkey is unreadable".into()))?;
            let result = rp
                .webauthn()
                .finish_discoverable_authentication_v2(&credential, state, &key)
                .map_err(refused)?;
            (row, result, Proved::Alone)
        }
        Ceremony::SecondFactor { user_id, state } => {
            if pending_user != Some(user_id.as_str()) {
                return Err(CeremonyError::Expired);
            }
            let result = rp
                .webauthn()
                .finish_passkey_authentication(&credential, &state)
                .map_err(refused)?;
            let row = by_credential(conn, result.cred_id())?
                .filter(|row| row.user_id == user_id)
                .ok_or_else(|| CeremonyError::Refused("no such passkey".into()))?;
            (row, result, Proved::AfterPassword)
        }
        Ceremony::Register { .. } => return Err(CeremonyError::Expired),
    };
    let mut key = row
        .credential()
        .ok_or_else(|| CeremonyError::Refused("a stored passkey is unreadable".into()))?;
    key.update_credential(&result);
    let stored = serde_json::to_string(&key).unwrap_or_else(|_| row.passkey.clone());
    diesel::update(passkeys::table.find(&row.id))
        .set((
            passkeys::passkey.eq(stored),
            passkeys::last_used_at.eq(now.naive_utc()),
        ))
        .execute(conn)?;
    Ok((row.user_id, proved))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_name_is_never_empty() {
        assert!(matches!(
            parse_new_name(" \t "),
            Err(CeremonyError::InvalidName)
        ));
        assert_eq!(parse_new_name("  Phone ").unwrap(), "Phone");
        assert!(matches!(
            parse_new_name(&"x".repeat(MAX_NAME_CHARS + 1)),
            Err(CeremonyError::InvalidName)
        ));
    }

    #[test]
    fn names_are_bounded_and_default_to_a_number() {
        assert_eq!(parse_name("  ", 2).unwrap(), "Passkey 3");
        assert_eq!(parse_name(" Laptop ", 0).unwrap(), "Laptop");
        assert!(parse_name(&"x".repeat(61), 0).is_err());
        assert!(parse_name("a\nb", 0).is_err());
    }
}
