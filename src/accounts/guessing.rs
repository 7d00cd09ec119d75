//! Whether a password may be tried, and where a wrong one counts: the
//! shared failure throttle per account and address and per address, and,
//! across every address, the account's own count (for browsers it does not
//! recognise) or the device's (for a browser holding the account's device
//! cookie, [`super::device`]). All of it lives in the database, so every
//! keygate process enforces the same limits.
//!
//! An attempt across addresses is taken before the password is checked and
//! given back when it was right, so a burst of guesses sent at once, to any
//! number of processes, gets no more checks than the limit. OWASP's device
//! cookie scheme, with one choice of ours: a device whose own count is full
//! is not refused outright but counted as any other browser until its
//! window ends (a stolen cookie buys at most one more window's worth of
//! guesses, and the owner's mistyping costs no more than a stranger's).

use chrono::{DateTime, Utc};
use serde_json::json;

use super::device::DeviceId;
use super::settings::Registry;
use crate::audit::{self, Action};
use crate::client_auth::throttle::{Taken, ThrottlePolicy};
use crate::db::{DbConnection, write_transaction};
use crate::error::StoreError;

/// Throttle subject of sign-in failures per account (client IDs never start
/// like this); a password change's wrong current password counts there too.
pub(super) const SIGN_IN_SUBJECT: &str = "account:";
/// Throttle subject of a recognised device's attempts, across addresses.
const DEVICE_SUBJECT: &str = "device:";

/// Where an attempt counts beyond its account and address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Guessing {
    /// From a browser not recognised for the account: the attempt is the
    /// `taken`th of the account's window across addresses.
    Account { taken: i32 },
    /// From a recognised device: against that device alone (its throttle
    /// subject).
    Device(String),
    /// Nowhere else (a signed-in person's wrong current password).
    AddressOnly,
}

/// Whether a password may be tried now.
#[derive(Debug)]
pub(super) enum Attempt {
    /// Yes; its attempt across addresses is taken as [`Guessing`] says.
    Allowed(Guessing),
    /// No, whatever the password: not for this many seconds.
    Throttled { retry_after: i64 },
}

/// Whether `subject` may be tried from `addr` by a browser that presented
/// `device` (if recognised); if so, takes its attempt across addresses.
pub(super) fn take_attempt(
    conn: &mut DbConnection,
    throttle: &ThrottlePolicy,
    (subject, addr): (&str, &str),
    device: Option<DeviceId>,
    now: DateTime<Utc>,
) -> Result<Attempt, StoreError> {
    write_transaction(conn, |conn| {
        if let Some(retry_after) = throttle.retry_after(conn, subject, addr, now)? {
            return Ok(Attempt::Throttled { retry_after });
        }
        let per_account = throttle.per_account;
        if let Some(device) = device {
            let device = format!("{DEVICE_SUBJECT}{}", device.as_str());
            if let Taken::Counted(_) = per_account.take_attempt(conn, &device, now)? {
                return Ok(Attempt::Allowed(Guessing::Device(device)));
            }
        }
        Ok(match per_account.take_attempt(conn, subject, now)? {
            Taken::Counted(taken) => Attempt::Allowed(Guessing::Account { taken }),
            Taken::Throttled { retry_after } => Attempt::Throttled { retry_after },
        })
    })
}

/// Gives back the attempt of a right password (to the account's `subject`
/// or the device, as `guessing` says).
pub(super) async fn give_back(
    registry: &impl Registry,
    subject: String,
    guessing: Guessing,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let per_account = registry.throttle().per_account;
    let subject = match guessing {
        Guessing::Account { .. } => subject,
        Guessing::Device(device) => device,
        Guessing::AddressOnly => return Ok(()),
    };
    registry
        .pool()
        .run(move |conn| {
            per_account
                .give_back(conn, &subject, now)
                .map_err(StoreError::from)
        })
        .await
}

/// A wrong password (or an unknown, disabled or password-less account), to
/// count and audit.
pub(super) struct Failure {
    /// The throttle subject (`account:` and the email as presented).
    pub subject: String,
    pub addr: String,
    /// Who it was for, as the audit log names them.
    pub who: String,
    pub reason: &'static str,
    pub guessing: Guessing,
}

/// Counts a failure against its subject from its address (across
/// addresses it was counted when taken); audits it as a failed sign-in, and
/// the account's lockout once, when this failure is the one that fills the
/// account's window.
pub(super) async fn record_failed_password(
    registry: &impl Registry,
    failure: Failure,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let throttle = registry.throttle();
    registry
        .pool()
        .run(move |conn| {
            write_transaction(conn, |conn| {
                let Failure {
                    subject,
                    addr,
                    who,
                    reason,
                    guessing,
                } = &failure;
                throttle.record_failure(conn, subject, addr, now)?;
                let mut entry = audit::Entry {
                    actor: who,
                    action: Action::AccountSignInFailed,
                    target: who,
                    source_addr: Some(addr),
                    details: json!({ "reason": reason }),
                };
                audit::record(conn, now, entry.clone())?;
                let per_account = throttle.per_account;
                if *guessing == (Guessing::Account { taken: per_account.limit }) {
                    tracing::warn!(account = %who, addr, "sign-in locked for unrecognised browsers");
                    entry.actor = audit::SYSTEM;
                    entry.action = Action::AccountSignInLocked;
                    entry.details = json!({
                        "reason": "too_many_failed_sign_ins",
                        "failures": per_account.limit,
                        "window_minutes": per_account.window.num_minutes(),
                    });
                    audit::record(conn, now, entry)?;
                }
                Ok::<_, StoreError>(())
            })
        })
        .await
}
