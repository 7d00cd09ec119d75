//! Signing in and out: the password checked behind the failure throttle
//! and the account's lockout across addresses ([`super::guessing`]), a
//! session started and audited (with a new device cookie), a session ended.

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use serde_json::json;
use zeroize::Zeroizing;

use super::device::{self, DeviceCookie};
use super::error::SignInError;
use super::factors::store as factors;
use super::guessing::{self, Attempt, Failure, SIGN_IN_SUBJECT};
use super::password::{self, Password};
use super::pending;
use super::session::{self, CsrfToken, NewSession, Session, SessionToken};
use super::settings::Registry;
use super::store;
use crate::audit::{self, Action};
use crate::db::write_transaction;
use crate::error::StoreError;
use crate::users::User;

/// An email as typed (trimmed, lower-cased, bounded), and how the throttle
/// counts it and the audit log names it: text that is no email address (a
/// password typed in the wrong field) is never stored.
pub(super) fn presented_email(text: &str) -> (String, String) {
    let email: String = text.trim().to_lowercase().chars().take(320).collect();
    let shown = if email.parse::<lettre::Address>().is_ok() {
        email.clone()
    } else {
        "(not an email address)".to_owned()
    };
    (email, shown)
}

/// Signs a person in: see the module documentation. `peer` is the client
/// address the throttle counts against (behind `KEYGATE_TRUSTED_PROXIES`,
/// the forwarded one); `device` the value of the browser's device cookie,
/// if it sent one ([`device_cookie_name`](super::device_cookie_name)).
pub async fn sign_in(
    registry: &impl Registry,
    email: &str,
    password: &str,
    peer: IpAddr,
    device: Option<&str>,
    now: DateTime<Utc>,
) -> Result<NewSession, SignInError> {
    if !registry.account_settings().password_sign_in {
        return Err(SignInError::PasswordSignInOff);
    }
    let (email, shown) = presented_email(email);
    let addr = peer.to_string();
    let subject = format!("{SIGN_IN_SUBJECT}{shown}");
    let throttle = registry.throttle();
    let hasher = registry.account_settings().token_hasher.clone();
    let device = device.map(|value| Zeroizing::new(value.to_owned()));
    let (attempt, user) = {
        let (subject, addr) = (subject.clone(), addr.clone());
        registry
            .pool()
            .run(move |conn| -> Result<_, StoreError> {
                let user = store::find_person(conn, &email)?;
                let device = user.as_ref().and_then(|u| {
                    device::recognise(&hasher, device.as_deref().map(|d| d.as_str()), &u.id)
                });
                let attempt =
                    guessing::take_attempt(conn, &throttle, (&subject, &addr), device, now)?;
                Ok((attempt, user))
            })
            .await?
    };
    let guessing = match attempt {
        Attempt::Allowed(guessing) => guessing,
        Attempt::Throttled { retry_after } => return Err(SignInError::Throttled { retry_after }),
    };
    let phc = user.as_ref().and_then(|u| u.password_hash.clone());
    let verified =
        password::verify_off_thread(registry.argon2(), Password::new(password), phc).await?;
    let refusal = match &user {
        None => Some("unknown_account"),
        Some(u) if u.password_hash.is_none() => Some("no_password"),
        Some(_) if !verified => Some("wrong_password"),
        Some(u) if u.disabled => Some("disabled"),
        Some(_) => None,
    };
    match (refusal, user) {
        (None, Some(user)) => {
            guessing::give_back(registry, subject, guessing, now).await?;
            let user_id = user.id.clone();
            let has_factor = registry
                .pool()
                .run(move |conn| factors::has_factor(conn, &user_id).map_err(StoreError::from))
                .await?;
            if has_factor {
                let pending = pending::pending(registry, &user, now)?;
                return Err(SignInError::SecondFactorNeeded(pending));
            }
            Ok(start_session(registry, user, &addr, "password", now).await?)
        }
        (reason, _) => {
            let reason = reason.unwrap_or("unknown_account");
            tracing::info!(account = %shown, addr, reason, "sign-in refused");
            let failure = Failure {
                subject,
                addr,
                who: shown,
                reason,
                guessing,
            };
            guessing::record_failed_password(registry, failure, now).await?;
            Err(SignInError::Refused)
        }
    }
}

/// A new session for `user`, audited with how they signed in (`method`:
/// `password`, `password+totp`, `password+recovery_code`, `sso`), and a new
/// device cookie for the browser. A password alone, for someone
/// `KEYGATE_REQUIRE_MFA` covers who has no second factor, starts a session
/// that may only enrol one.
pub(super) async fn start_session(
    registry: &impl Registry,
    user: User,
    addr: &str,
    method: &'static str,
    now: DateTime<Utc>,
) -> Result<NewSession, StoreError> {
    // Without a link to use, a session always starts.
    start_session_with(registry, user, addr, method, None, now)
        .await?
        .ok_or(StoreError::Query(diesel::result::Error::NotFound))
}

/// [`start_session`], and when `link` names a one-time link, that link
/// used in the same transaction: `None` if it was used or expired
/// meanwhile. A session a link starts (`method` `link`, with passwords
/// off) may only add a passkey until the person has one.
pub(super) async fn start_session_with(
    registry: &impl Registry,
    user: User,
    addr: &str,
    method: &'static str,
    link: Option<String>,
    now: DateTime<Utc>,
) -> Result<Option<NewSession>, StoreError> {
    let settings = registry.account_settings();
    let token = SessionToken::generate();
    let hash = settings
        .token_hasher
        .hash(session::HASH_PURPOSE, token.expose());
    let expires_at = now + settings.session_max.as_chrono();
    let idle = settings.session_idle.as_chrono();
    let (user_id, email, addr) = (user.id.clone(), user.email.clone(), addr.to_owned());
    let covered = method == "password" && settings.require_mfa.covers(&user.role);
    let started = registry
        .pool()
        .run(move |conn| {
            write_transaction(conn, |conn| {
                if let Some(link) = &link
                    && !store::use_link(conn, link, now)?
                {
                    return Ok::<_, StoreError>(false);
                }
                let must_enrol = match &link {
                    Some(_) => !factors::has_passkey(conn, &user_id)?,
                    None => covered && !factors::has_factor(conn, &user_id)?,
                };
                let id = store::insert_session(
                    conn,
                    &hash,
                    &user_id,
                    (expires_at, idle),
                    (&addr, must_enrol),
                    now,
                )?;
                audit::record(
                    conn,
                    now,
                    audit::Entry {
                        actor: &email,
                        action: Action::AccountSignedIn,
                        target: &email,
                        source_addr: Some(&addr),
                        details: json!({
                            "session": id,
                            "method": method,
                            "must_enrol": must_enrol,
                        }),
                    },
                )?;
                Ok(true)
            })
        })
        .await?;
    if !started {
        return Ok(None);
    }
    let csrf = CsrfToken::derive(settings, &token);
    let device = DeviceCookie::issue(settings, &user.id);
    Ok(Some(NewSession {
        token,
        csrf,
        expires_at,
        user,
        device,
    }))
}

/// Ends this session (the browser's cookie goes with
/// [`removal_cookie`](super::removal_cookie)).
pub async fn sign_out(
    registry: &impl Registry,
    session: &Session,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let (id, email) = (session.id.clone(), session.user.email.clone());
    registry
        .pool()
        .run(move |conn| {
            write_transaction(conn, |conn| {
                store::delete_session(conn, &id)?;
                audit::record(
                    conn,
                    now,
                    audit::Entry {
                        actor: &email,
                        action: Action::AccountSignedOut,
                        target: &email,
                        source_addr: None,
                        details: json!({ "session": id }),
                    },
                )?;
                Ok::<_, StoreError>(())
            })
        })
        .await
}
