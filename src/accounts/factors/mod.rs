//! Second factors for console sign-in, on the "Security" page
//! (`/account/security`): an authenticator app ([`totp`]) and recovery
//! codes ([`recovery`]). Passkeys join them later.
//!
//! - [`begin_totp`] makes a new secret waiting to be confirmed (replacing
//!   one that waited); [`waiting_totp`] shows it as an `otpauth://` URI and
//!   its QR code; [`confirm_totp`] takes one code of it and makes it count,
//!   with 10 recovery codes when it is the person's first factor (shown
//!   once, returned here and stored only hashed).
//! - [`remove_totp`] removes it (refused while `KEYGATE_REQUIRE_MFA` covers
//!   the person and it is their only factor); with no factor left, the
//!   recovery codes go too. [`regenerate_recovery_codes`] replaces them.
//! - [`reset`] is `users reset-mfa`: every factor and code of a person gone.
//!
//! Every enrolment, removal and reset is audited and emails the person
//! ("two-factor" in the subject), in the transaction of the change.
//! Signing in with a factor is [`super::second_factor`]'s.

pub mod passkeys;
pub(crate) mod recovery;
pub(crate) mod store;
pub(crate) mod totp;

use chrono::{DateTime, Utc};
use serde_json::json;
use zeroize::Zeroizing;

use super::session::Session;
use super::settings::{AccountSettings, Registry};
use crate::audit::{self, Action};
use crate::db::{DbConnection, write_transaction};
use crate::error::{ErrorKind, FeatureError, StoreError, from_store_errors};
use crate::mail::{self, AdminNotice, TwoFactorNotice};
use crate::users::User;

pub use recovery::{RECOVERY_CODE_COUNT, RecoveryCodes};
pub use store::{SignInMethods, sign_in_methods};

/// Why a change of second factors was refused.
#[derive(Debug, thiserror::Error)]
pub enum FactorError {
    #[error("an authenticator app is set up already: remove it first")]
    AlreadyEnrolled,
    #[error("no authenticator app is waiting to be confirmed: start again")]
    NotStarted,
    #[error("that code is not the app's: type the code it shows now (and check the phone's clock)")]
    WrongCode,
    #[error(
        "a second factor is required of you here: this is your only one, so it cannot be removed"
    )]
    Required,
    #[error("set up an authenticator app or a passkey first")]
    NoFactor,
    #[error(
        "passwords are not used to sign in here, so neither an authenticator app nor a recovery \
         code would ever be asked for: add a passkey instead"
    )]
    PasswordsOff,
    #[error("no such passkey of yours")]
    NoSuchPasskey,
    #[error(
        "sign in again to change how you sign in: it has been more than 15 minutes since you did"
    )]
    SignInAgain,
    #[error("no person with email {0}")]
    NoSuchPerson(String),
    #[error(transparent)]
    Passkey(#[from] passkeys::CeremonyError),
    #[error("{0}")]
    Internal(&'static str),
    #[error(transparent)]
    Mail(#[from] mail::QueueError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

from_store_errors!(FactorError);

impl FeatureError for FactorError {
    fn code(&self) -> &'static str {
        match self {
            Self::AlreadyEnrolled => "second_factor_exists",
            Self::NotStarted => "second_factor_not_started",
            Self::WrongCode => "wrong_code",
            Self::Required => "second_factor_required",
            Self::NoFactor => "no_second_factor",
            Self::PasswordsOff => "password_sign_in_off",
            Self::NoSuchPasskey => "passkey_not_found",
            Self::SignInAgain => "reauthentication_required",
            Self::NoSuchPerson(_) => "user_not_found",
            Self::Passkey(passkeys::CeremonyError::Store(e)) => e.code(),
            Self::Passkey(passkeys::CeremonyError::InvalidName) => "invalid_name",
            Self::Passkey(_) => "passkey_refused",
            Self::Internal(_) => "internal_error",
            Self::Mail(e) => e.code(),
            Self::Store(e) => e.code(),
        }
    }

    fn kind(&self) -> ErrorKind {
        match self {
            Self::AlreadyEnrolled | Self::Required | Self::NoFactor => ErrorKind::Conflict,
            Self::PasswordsOff => ErrorKind::Conflict,
            Self::NotStarted => ErrorKind::Conflict,
            Self::WrongCode => ErrorKind::Invalid,
            Self::NoSuchPerson(_) | Self::NoSuchPasskey => ErrorKind::NotFound,
            Self::SignInAgain => ErrorKind::Forbidden,
            Self::Passkey(passkeys::CeremonyError::Store(e)) => e.kind(),
            Self::Passkey(passkeys::CeremonyError::Unavailable) => ErrorKind::Conflict,
            Self::Passkey(passkeys::CeremonyError::TooMany) => ErrorKind::Conflict,
            Self::Passkey(_) => ErrorKind::Invalid,
            Self::Internal(_) => ErrorKind::Internal,
            Self::Mail(e) => e.kind(),
            Self::Store(e) => e.kind(),
        }
    }

    fn field(&self) -> Option<&'static str> {
        match self {
            Self::WrongCode => Some("code"),
            Self::Passkey(passkeys::CeremonyError::InvalidName) => Some("name"),
            _ => None,
        }
    }
}

/// Refused with [`FactorError::SignInAgain`] unless the session's person
/// signed in within [`RECENT_SIGN_IN`](super::RECENT_SIGN_IN): what changes
/// how they sign in asks for a fresh sign-in.
fn signed_in_recently(session: &Session, now: DateTime<Utc>) -> Result<(), FactorError> {
    if session.signed_in_recently(now) {
        Ok(())
    } else {
        Err(FactorError::SignInAgain)
    }
}

/// What the Security page shows.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SecurityOverview {
    /// When the authenticator app was confirmed, RFC 3339.
    pub totp_since: Option<String>,
    /// A secret waits to be confirmed.
    pub totp_waiting: bool,
    pub recovery_codes_left: i64,
    /// `KEYGATE_REQUIRE_MFA` covers this person.
    pub required: bool,
    /// Their passkeys, oldest first.
    pub passkeys: Vec<passkeys::PasskeyView>,
    /// keygate's issuer allows passkeys (https, or localhost).
    pub passkeys_available: bool,
    /// They have a second factor of any kind.
    pub has_factor: bool,
}

pub async fn security_overview(
    registry: &impl Registry,
    user: &User,
) -> Result<SecurityOverview, StoreError> {
    let required = registry.account_settings().require_mfa.covers(&user.role);
    let passkeys_available = registry.account_settings().passkeys.is_some();
    let user_id = user.id.clone();
    registry
        .pool()
        .run(move |conn| {
            let totp = store::totp_of(conn, &user_id)?;
            let left = store::recovery_codes_left(conn, &user_id)?;
            let passkeys = passkeys::passkey_views(conn, &user_id)?;
            let has_factor = store::has_factor(conn, &user_id)?;
            Ok::<_, StoreError>(SecurityOverview {
                passkeys,
                passkeys_available,
                has_factor,
                totp_since: totp
                    .as_ref()
                    .and_then(|t| t.confirmed_at)
                    .map(|at| crate::time::rfc3339(crate::time::from_db(at))),
                totp_waiting: totp.is_some_and(|t| t.confirmed_at.is_none()),
                recovery_codes_left: left,
                required,
            })
        })
        .await
}

/// An authenticator app waiting to be confirmed, as the page shows it.
pub struct TotpEnrolment {
    /// The `otpauth://` URI (it holds the secret).
    pub uri: Zeroizing<String>,
    /// The secret in base32, to type by hand.
    pub secret: Zeroizing<String>,
    /// The URI as a QR code, an inline `<svg>`.
    pub qr_svg: String,
}

impl std::fmt::Debug for TotpEnrolment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TotpEnrolment(redacted)")
    }
}

/// A new secret for the person's authenticator app, waiting for its first
/// code; one that waited is replaced.
pub async fn begin_totp(
    registry: &impl Registry,
    session: &Session,
    now: DateTime<Utc>,
) -> Result<(), FactorError> {
    if !registry.account_settings().password_sign_in {
        return Err(FactorError::PasswordsOff);
    }
    signed_in_recently(session, now)?;
    let user = &session.user;
    let secret = totp::TotpSecret::generate();
    let sealed = secret
        .seal(&registry.account_settings().sealer, &user.id)
        .ok_or(FactorError::Internal("the TOTP secret could not be sealed"))?;
    let user_id = user.id.clone();
    registry
        .pool()
        .run(move |conn| {
            write_transaction(conn, |conn| {
                if store::has_factor(conn, &user_id)? {
                    return Err(FactorError::AlreadyEnrolled);
                }
                store::put_unconfirmed_totp(conn, &user_id, &sealed, now)?;
                Ok(())
            })
        })
        .await
}

/// The secret waiting to be confirmed, if any, ready to show.
pub async fn waiting_totp(
    registry: &impl Registry,
    user: &User,
) -> Result<Option<TotpEnrolment>, StoreError> {
    let user_id = user.id.clone();
    let row = registry
        .pool()
        .run(move |conn| store::totp_of(conn, &user_id).map_err(StoreError::from))
        .await?;
    let Some(row) = row.filter(|row| row.confirmed_at.is_none()) else {
        return Ok(None);
    };
    let sealer = &registry.account_settings().sealer;
    let shown = totp::TotpSecret::open(sealer, &user.id, &row.secret_sealed).and_then(|secret| {
        let uri = secret.uri(&user.email)?;
        Some(TotpEnrolment {
            qr_svg: totp::qr_svg(&uri)?,
            secret: secret.base32(&user.email)?,
            uri,
        })
    });
    // A secret that does not open (the master key changed) is as good as
    // none: the page offers to start again.
    Ok(shown)
}

/// Confirms the waiting secret with a code of it: the app counts from now.
/// Returns the new recovery codes when it is the person's first factor.
pub async fn confirm_totp(
    registry: &impl Registry,
    session: &Session,
    code: &str,
    now: DateTime<Utc>,
) -> Result<Option<RecoveryCodes>, FactorError> {
    signed_in_recently(session, now)?;
    let user = session.user.clone();
    let settings = registry.account_settings().clone();
    let issuer = registry.issuer().to_owned();
    let code = Zeroizing::new(code.to_owned());
    registry
        .pool()
        .run(move |conn| {
            write_transaction(conn, |conn| {
                let row = store::totp_of(conn, &user.id)?
                    .filter(|row| row.confirmed_at.is_none())
                    .ok_or(FactorError::NotStarted)?;
                let secret =
                    totp::TotpSecret::open(&settings.sealer, &user.id, &row.secret_sealed)
                        .ok_or(FactorError::NotStarted)?;
                let step = secret.step_of(&code, now).ok_or(FactorError::WrongCode)?;
                if !store::confirm_totp(conn, &user.id, step, now)? {
                    return Err(FactorError::NotStarted);
                }
                let change = Change {
                    action: Action::SecondFactorEnrolled,
                    headline: "authenticator app added",
                    what: "An authenticator app was added to your account: signing in with your password now also asks for its code.",
                    factor: "totp",
                };
                enrolled(conn, (&settings, &issuer, &user), change, now)
            })
        })
        .await
}

/// Removes the person's authenticator app (and, with no factor left, their
/// recovery codes).
pub async fn remove_totp(
    registry: &impl Registry,
    session: &Session,
    now: DateTime<Utc>,
) -> Result<(), FactorError> {
    signed_in_recently(session, now)?;
    let user = session.user.clone();
    let required = registry.account_settings().require_mfa.covers(&user.role);
    let issuer = registry.issuer().to_owned();
    registry
        .pool()
        .run(move |conn| {
            write_transaction(conn, |conn| {
                if !store::has_factor(conn, &user.id)? {
                    // Only a waiting secret, or nothing: drop it quietly.
                    store::delete_totp(conn, &user.id)?;
                    return Ok(());
                }
                let others = passkeys::count_passkeys(conn, &user.id)? > 0;
                if required && !others {
                    return Err(FactorError::Required);
                }
                store::delete_totp(conn, &user.id)?;
                if !others {
                    store::delete_recovery_codes(conn, &user.id)?;
                }
                let change = Change {
                    action: Action::SecondFactorRemoved,
                    headline: "authenticator app removed",
                    what: "The authenticator app of your account was removed.",
                    factor: "totp",
                };
                record(conn, (&issuer, &user), change, &user.email, now)?;
                Ok(())
            })
        })
        .await
}

/// A passkey registration begun: the options for `navigator.credentials
/// .create()` and the ceremony's cookie.
pub async fn begin_passkey_registration(
    registry: &impl Registry,
    session: &Session,
    now: DateTime<Utc>,
) -> Result<(serde_json::Value, super::session::SessionCookie), FactorError> {
    signed_in_recently(session, now)?;
    let user = session.user.clone();
    let settings = registry.account_settings().clone();
    let begun = registry
        .pool()
        .run(move |conn| {
            passkeys::begin_registration(&settings, conn, &user, now).map_err(FactorError::from)
        })
        .await?;
    Ok(begun)
}

/// The registration finished: the passkey stored as `name`, audited and
/// emailed. Returns the new recovery codes when it is the person's first
/// factor.
pub async fn finish_passkey_registration(
    registry: &impl Registry,
    session: &Session,
    (name, credential, ceremony): (&str, &str, Option<&str>),
    now: DateTime<Utc>,
) -> Result<Option<RecoveryCodes>, FactorError> {
    signed_in_recently(session, now)?;
    let user = session.user.clone();
    let settings = registry.account_settings().clone();
    let issuer = registry.issuer().to_owned();
    let name = name.to_owned();
    let credential = Zeroizing::new(credential.to_owned());
    let ceremony = ceremony.map(|c| Zeroizing::new(c.to_owned()));
    registry
        .pool()
        .run(move |conn| {
            write_transaction(conn, |conn| {
                let ceremony = ceremony.as_ref().map(|c| c.as_str());
                let shown = (name.as_str(), credential.as_str(), ceremony);
                passkeys::finish_registration(&settings, conn, &user, shown, now)?;
                let change = Change {
                    action: Action::SecondFactorEnrolled,
                    headline: "passkey added",
                    what: "A passkey was added to your account: it signs you in on its own, or after your password.",
                    factor: "passkey",
                };
                enrolled(conn, (&settings, &issuer, &user), change, now)
            })
        })
        .await
}

/// Removes one of the person's passkeys (and, with no factor left, their
/// recovery codes).
pub async fn remove_passkey(
    registry: &impl Registry,
    session: &Session,
    id: &str,
    now: DateTime<Utc>,
) -> Result<(), FactorError> {
    signed_in_recently(session, now)?;
    let user = session.user.clone();
    let required = registry.account_settings().require_mfa.covers(&user.role);
    let issuer = registry.issuer().to_owned();
    let id = id.to_owned();
    registry
        .pool()
        .run(move |conn| {
            write_transaction(conn, |conn| {
                let mine = passkeys::passkeys_of(conn, &user.id)?;
                if !mine.iter().any(|p| p.id == id) {
                    return Err(FactorError::NoSuchPasskey);
                }
                let others = mine.len() > 1 || store::has_totp(conn, &user.id)?;
                if required && !others {
                    return Err(FactorError::Required);
                }
                passkeys::delete_passkey(conn, &user.id, &id)?;
                if !others {
                    store::delete_recovery_codes(conn, &user.id)?;
                }
                let change = Change {
                    action: Action::SecondFactorRemoved,
                    headline: "passkey removed",
                    what: "A passkey of your account was removed: it no longer signs you in.",
                    factor: "passkey",
                };
                record(conn, (&issuer, &user), change, &user.email, now)?;
                Ok(())
            })
        })
        .await
}

/// Gives one of the person's passkeys another name, audited with the old
/// and the new. No email: the passkey signs in as before.
pub async fn rename_passkey(
    registry: &impl Registry,
    session: &Session,
    id: &str,
    name: &str,
    now: DateTime<Utc>,
) -> Result<(), FactorError> {
    let name = passkeys::parse_new_name(name)?;
    let user = session.user.clone();
    let id = id.to_owned();
    registry
        .pool()
        .run(move |conn| {
            write_transaction(conn, |conn| {
                let Some(old) = passkeys::passkeys_of(conn, &user.id)?
                    .into_iter()
                    .find(|p| p.id == id)
                else {
                    return Err(FactorError::NoSuchPasskey);
                };
                passkeys::rename_passkey(conn, &user.id, &id, &name)?;
                audit::record(
                    conn,
                    now,
                    audit::Entry {
                        actor: &user.email,
                        action: Action::PasskeyRenamed,
                        target: &user.email,
                        source_addr: None,
                        details: json!({ "factor": "passkey", "from": old.name, "to": name }),
                    },
                )?;
                Ok(())
            })
        })
        .await
}

/// Ten new recovery codes, replacing the old ones (used or not).
pub async fn regenerate_recovery_codes(
    registry: &impl Registry,
    session: &Session,
    now: DateTime<Utc>,
) -> Result<RecoveryCodes, FactorError> {
    if !registry.account_settings().password_sign_in {
        return Err(FactorError::PasswordsOff);
    }
    signed_in_recently(session, now)?;
    let user = session.user.clone();
    let hasher = registry.account_settings().token_hasher.clone();
    registry
        .pool()
        .run(move |conn| {
            write_transaction(conn, |conn| {
                if !store::has_factor(conn, &user.id)? {
                    return Err(FactorError::NoFactor);
                }
                let codes = RecoveryCodes::generate();
                store::replace_recovery_codes(conn, &user.id, &codes.hashes(&hasher), now)?;
                audit::record(
                    conn,
                    now,
                    audit::Entry {
                        actor: &user.email,
                        action: Action::RecoveryCodesGenerated,
                        target: &user.email,
                        source_addr: None,
                        details: json!({ "count": RECOVERY_CODE_COUNT }),
                    },
                )?;
                Ok(codes)
            })
        })
        .await
}

/// `users reset-mfa EMAIL`: every second factor and recovery code of the
/// person removed, audited and emailed. Returns whether they had any.
pub fn reset(
    conn: &mut DbConnection,
    issuer: &str,
    (email, actor): (&str, &str),
    now: DateTime<Utc>,
) -> Result<bool, FactorError> {
    write_transaction(conn, |conn| {
        let user = crate::users::find_user_by_email(conn, email)
            .map_err(|_| FactorError::NoSuchPerson(email.to_owned()))?;
        let had = store::delete_totp(conn, &user.id)?
            + passkeys::delete_passkeys(conn, &user.id)?
            + store::delete_recovery_codes(conn, &user.id)?;
        if had == 0 {
            return Ok(false);
        }
        let change = Change {
            action: Action::SecondFactorsReset,
            headline: "second factors reset",
            what: "Every second factor of your account (authenticator app, passkeys) and its recovery codes were removed by an administrator. Until you add one again, your password alone signs you in; where passwords are not used, ask them for a new invitation.",
            factor: "all",
        };
        record(conn, (issuer, &user), change, actor, now)?;
        Ok(true)
    })
}

/// What follows every enrolment, in its transaction: ten recovery codes
/// when the person has none (their first factor) and passwords sign people
/// in (a code stands in for the step after a password, so without
/// passwords it would never be asked), the sessions that had to enrol let
/// go, the change audited and emailed.
fn enrolled(
    conn: &mut DbConnection,
    (settings, issuer, user): (&AccountSettings, &str, &User),
    change: Change,
    now: DateTime<Utc>,
) -> Result<Option<RecoveryCodes>, FactorError> {
    let codes = if settings.password_sign_in && store::recovery_codes_left(conn, &user.id)? == 0 {
        let codes = RecoveryCodes::generate();
        let hashes = codes.hashes(&settings.token_hasher);
        store::replace_recovery_codes(conn, &user.id, &hashes, now)?;
        Some(codes)
    } else {
        None
    };
    store::clear_must_enrol(conn, &user.id)?;
    record(conn, (issuer, user), change, &user.email, now)?;
    Ok(codes)
}

/// One change of a person's factors, as audited and emailed.
struct Change {
    action: Action,
    headline: &'static str,
    what: &'static str,
    factor: &'static str,
}

/// Audits the change and emails the person, in the caller's transaction.
fn record(
    conn: &mut DbConnection,
    (issuer, user): (&str, &User),
    change: Change,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<(), FactorError> {
    audit::record(
        conn,
        now,
        audit::Entry {
            actor,
            action: change.action,
            target: &user.email,
            source_addr: None,
            details: json!({ "factor": change.factor }),
        },
    )?;
    let app = store::has_totp(conn, &user.id)?;
    let keys = passkeys::count_passkeys(conn, &user.id)?;
    let left = store::recovery_codes_left(conn, &user.id)?;
    let mut held = Vec::new();
    if app {
        held.push("an authenticator app".to_owned());
    }
    match keys {
        0 => {}
        1 => held.push("1 passkey".to_owned()),
        n => held.push(format!("{n} passkeys")),
    }
    let standing = if held.is_empty() {
        "no second factor: your password alone signs you in".to_owned()
    } else {
        format!("{} and {left} unused recovery codes", held.join(", "))
    };
    let occurred_at = crate::time::rfc3339(now);
    let shown_actor = if actor == user.email { "you" } else { actor };
    let notice = TwoFactorNotice {
        product: mail::PRODUCT,
        issuer,
        recipient: &user.email,
        headline: change.headline,
        what: change.what,
        actor: shown_actor,
        standing: &standing,
        occurred_at: &occurred_at,
    };
    let about = format!("{}:{}:{occurred_at}", user.id, change.action.as_str());
    mail::enqueue_notice(
        conn,
        AdminNotice::TwoFactor,
        &about,
        &user.email,
        &notice,
        now,
    )?;
    Ok(())
}
