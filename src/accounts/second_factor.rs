//! The second step of a password sign-in for a person with a second
//! factor. [`super::sign_in`] checks the password and, instead of a
//! session, answers [`SignInError::SecondFactorNeeded`] with a pending
//! sign-in ([`super::pending`]). [`sign_in_second_factor`]
//! then takes a code of the person's authenticator app (one step either
//! side, each step once across every process) or one of their recovery
//! codes (each once), behind the same failure throttle as passwords: a
//! wrong code counts as a wrong password does.

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use zeroize::Zeroizing;

use super::device::{self};
use super::error::SignInError;
use super::factors::{passkeys, recovery, store as factors, totp};
use super::guessing::{self, Attempt, Failure, SIGN_IN_SUBJECT};
use super::pending::opened;
use super::session::{NewSession, SessionCookie};
use super::settings::Registry;
use super::sign_in::start_session;
use crate::error::StoreError;
use crate::users::{self, User};

/// How the second factor was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Given {
    Totp,
    RecoveryCode,
}

/// The second step: see the module documentation. `pending` is the value
/// of the browser's [`pending_cookie_name`] cookie; a missing, foreign or
/// stale one is [`SignInError::Refused`] with nothing counted (the password
/// step counts). `device` as for [`super::sign_in`].
pub async fn sign_in_second_factor(
    registry: &impl Registry,
    pending: Option<&str>,
    code: &str,
    peer: IpAddr,
    device: Option<&str>,
    now: DateTime<Utc>,
) -> Result<NewSession, SignInError> {
    let Some(user_id) = pending.and_then(|value| opened(registry, value, now)) else {
        return Err(SignInError::PendingExpired);
    };
    let addr = peer.to_string();
    let throttle = registry.throttle();
    let settings = registry.account_settings().clone();
    let device = device.map(|value| Zeroizing::new(value.to_owned()));
    let code = Zeroizing::new(code.trim().to_owned());
    let found = {
        let addr = addr.clone();
        registry
            .pool()
            .run(move |conn| -> Result<_, StoreError> {
                let user = users::find_user(conn, &user_id).ok();
                let Some(user) = user.filter(|u| !u.disabled) else {
                    return Ok(None);
                };
                let subject = format!("{SIGN_IN_SUBJECT}{}", user.email);
                let recognised = device::recognise(
                    &settings.token_hasher,
                    device.as_deref().map(|d| d.as_str()),
                    &user.id,
                );
                let attempt =
                    guessing::take_attempt(conn, &throttle, (&subject, &addr), recognised, now)?;
                let Attempt::Allowed(guessing) = attempt else {
                    return Ok(Some((user, subject, attempt, None)));
                };
                let given = check(conn, &settings, &user, &code, now)?;
                Ok(Some((user, subject, Attempt::Allowed(guessing), given)))
            })
            .await?
    };
    let Some((user, subject, attempt, given)) = found else {
        return Err(SignInError::PendingExpired);
    };
    let guessing = match attempt {
        Attempt::Allowed(guessing) => guessing,
        Attempt::Throttled { retry_after } => return Err(SignInError::Throttled { retry_after }),
    };
    match given {
        Some(given) => {
            guessing::give_back(registry, subject, guessing, now).await?;
            let method = match given {
                Given::Totp => "password+totp",
                Given::RecoveryCode => "password+recovery_code",
            };
            Ok(start_session(registry, user, &addr, method, now).await?)
        }
        None => {
            tracing::info!(account = %user.email, addr, "second factor refused");
            let failure = Failure {
                subject,
                addr,
                who: user.email.clone(),
                reason: "wrong_second_factor",
                guessing,
            };
            guessing::record_failed_password(registry, failure, now).await?;
            Err(SignInError::WrongCode)
        }
    }
}

/// Which factor `code` is of `user`'s, taking it (a TOTP step, a recovery
/// code) if it is one.
fn check(
    conn: &mut crate::db::DbConnection,
    settings: &super::settings::AccountSettings,
    user: &User,
    code: &str,
    now: DateTime<Utc>,
) -> Result<Option<Given>, StoreError> {
    if let Some(row) = factors::totp_of(conn, &user.id)?.filter(|r| r.confirmed_at.is_some())
        && let Some(secret) = totp::TotpSecret::open(&settings.sealer, &user.id, &row.secret_sealed)
        && let Some(step) = secret.step_of(code, now)
    {
        // The step is taken once, by whichever process sees it first.
        return Ok(factors::take_step(conn, &user.id, step)?.then_some(Given::Totp));
    }
    if let Some(hash) = recovery::hash_of(&settings.token_hasher, code)
        && factors::use_recovery_code(conn, &user.id, &hash, now)?
    {
        return Ok(Some(Given::RecoveryCode));
    }
    Ok(None)
}

/// "Sign in with a passkey" begun: the options for
/// `navigator.credentials.get()` (any discoverable credential of this
/// site) and the ceremony's cookie.
pub async fn begin_passkey_sign_in(
    registry: &impl Registry,
    now: DateTime<Utc>,
) -> Result<(serde_json::Value, SessionCookie), SignInError> {
    Ok(passkeys::begin_discoverable(
        registry.account_settings(),
        now,
    )?)
}

/// The second step with a passkey begun, for the pending sign-in's person.
pub async fn begin_passkey_second_factor(
    registry: &impl Registry,
    pending: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(serde_json::Value, SessionCookie), SignInError> {
    let Some(user_id) = pending.and_then(|value| opened(registry, value, now)) else {
        return Err(SignInError::PendingExpired);
    };
    let settings = registry.account_settings().clone();
    registry
        .pool()
        .run(move |conn| {
            passkeys::begin_second_factor(&settings, conn, &user_id, now).map_err(SignInError::from)
        })
        .await
}

/// A passkey's answer to either ceremony: "Sign in with a passkey" signs
/// its person in alone; the second step (with the browser's `pending`
/// sign-in) finishes a password sign-in. `ceremony` is the value of the
/// browser's ceremony cookie. A refusal is audited.
pub async fn sign_in_with_passkey(
    registry: &impl Registry,
    credential: &str,
    (ceremony, pending): (Option<&str>, Option<&str>),
    peer: IpAddr,
    now: DateTime<Utc>,
) -> Result<NewSession, SignInError> {
    let settings = registry.account_settings().clone();
    let pending_user = pending.and_then(|value| opened(registry, value, now));
    let credential = Zeroizing::new(credential.to_owned());
    let ceremony = ceremony.map(|c| Zeroizing::new(c.to_owned()));
    let addr = peer.to_string();
    let checked = registry
        .pool()
        .run(move |conn| -> Result<_, SignInError> {
            let ceremony = ceremony.as_ref().map(|c| c.as_str());
            let (user_id, proved) = match passkeys::finish_assertion(
                &settings,
                conn,
                (&credential, ceremony),
                pending_user.as_deref(),
                now,
            ) {
                Ok(done) => done,
                Err(passkeys::CeremonyError::Store(e)) => return Err(e.into()),
                Err(refused) => return Ok(Err(refused)),
            };
            let user = users::find_user(conn, &user_id).ok();
            Ok(Ok((user, proved)))
        })
        .await?;
    match checked {
        Ok((Some(user), proved)) if !user.disabled => {
            let method = match proved {
                passkeys::Proved::Alone => "passkey",
                passkeys::Proved::AfterPassword => "password+passkey",
            };
            Ok(start_session(registry, user, &addr, method, now).await?)
        }
        Ok((user, _)) => {
            let who = user.map_or_else(|| "(passkey)".to_owned(), |u| u.email);
            audit_refusal(registry, &who, &addr, "disabled", now).await?;
            Err(SignInError::Refused)
        }
        Err(refused) => {
            tracing::info!(addr, reason = %refused, "passkey sign-in refused");
            audit_refusal(registry, "(passkey)", &addr, "passkey_refused", now).await?;
            Err(refused.into())
        }
    }
}

async fn audit_refusal(
    registry: &impl Registry,
    who: &str,
    addr: &str,
    reason: &'static str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let (who, addr) = (who.to_owned(), addr.to_owned());
    registry
        .pool()
        .run(move |conn| {
            crate::audit::record(
                conn,
                now,
                crate::audit::Entry {
                    actor: &who,
                    action: crate::audit::Action::AccountSignInFailed,
                    target: &who,
                    source_addr: Some(&addr),
                    details: serde_json::json!({ "method": "passkey", "reason": reason }),
                },
            )
            .map_err(StoreError::from)
        })
        .await
}
