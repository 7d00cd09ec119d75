//! "Forgot password" and the one-time links that set a password: a reset
//! requested, a link checked, a password set through it.

use std::net::IpAddr;

use chrono::{DateTime, Duration, Utc};
use serde_json::json;

use super::error::{ResetError, SetPasswordError};
use super::links::{self, LinkInfo, LinkPurpose, LinkToken, LinkUrl};
use super::password::{self, Password, check_password_policy};
use super::session::NewSession;
use super::settings::Registry;
use super::sign_in::{presented_email, start_session_with};
use super::store::{self, LinkRow};
use crate::audit::{self, Action};
use crate::db::write_transaction;
use crate::error::StoreError;
use crate::mail::{self, AccountContext, AccountEmail};
use crate::time::{from_db, rfc3339};
use crate::users::User;

/// Throttle subject of reset requests, per address asked for.
const RESET_SUBJECT: &str = "reset:";

/// At most one reset email per person in this time.
const RESET_EMAIL_INTERVAL: Duration = Duration::minutes(5);

/// "Forgot password": see the module documentation. `Ok(())` whether or
/// not the address belongs to anyone.
pub async fn request_password_reset(
    registry: &impl Registry,
    email: &str,
    peer: IpAddr,
    now: DateTime<Utc>,
) -> Result<(), ResetError> {
    let (email, shown) = presented_email(email);
    let addr = peer.to_string();
    let subject = format!("{RESET_SUBJECT}{shown}");
    let throttle = registry.throttle();
    let settings = registry.account_settings();
    let issuer = registry.issuer().to_owned();
    let token = LinkToken::generate();
    let hash = settings
        .token_hasher
        .hash(links::HASH_PURPOSE, token.expose());
    let expires_at = now + settings.invite_ttl.as_chrono();
    let passkey_only = !settings.password_sign_in;
    let retry = registry
        .pool()
        .run(move |conn| -> Result<Option<i64>, ResetError> {
            if let Some(retry) = throttle.retry_after(conn, &subject, &addr, now)? {
                return Ok(Some(retry));
            }
            // Every request counts, so nobody can mail-bomb an address or
            // probe the table from one place.
            throttle.record_failure(conn, &subject, &addr, now)?;
            write_transaction(conn, |conn| {
                let person = store::find_person(conn, &email)?;
                let outcome = match &person {
                    None => "unknown_account",
                    Some(user) if user.disabled => "disabled",
                    Some(user)
                        if store::recent_reset_exists(
                            conn,
                            &user.id,
                            RESET_EMAIL_INTERVAL,
                            now,
                        )? =>
                    {
                        "recently_sent"
                    }
                    Some(user) => {
                        let id = store::insert_link(
                            conn,
                            LinkPurpose::Reset,
                            &hash,
                            &user.id,
                            expires_at,
                            now,
                        )?;
                        let url = LinkUrl::new(&issuer, &token);
                        mail::enqueue_account_email(
                            conn,
                            AccountEmail::PasswordReset,
                            &id,
                            &AccountContext {
                                product: mail::render::PRODUCT,
                                issuer: &issuer,
                                recipient: &user.email,
                                link: url.expose(),
                                expires_at: &rfc3339(expires_at),
                                inviter: "",
                                occurred_at: &rfc3339(now),
                                passkey_only,
                            },
                            now,
                        )?;
                        "sent"
                    }
                };
                audit::record(
                    conn,
                    now,
                    audit::Entry {
                        actor: &shown,
                        action: Action::PasswordResetRequested,
                        target: &shown,
                        source_addr: Some(&addr),
                        details: json!({ "outcome": outcome }),
                    },
                )?;
                Ok(None)
            })
        })
        .await?;
    match retry {
        Some(retry_after) => Err(ResetError::Throttled { retry_after }),
        None => Ok(()),
    }
}

/// What a live link is for, or `None` for an unknown, used or expired link
/// (or a disabled person's).
pub async fn check_link(
    registry: &impl Registry,
    token: &str,
    now: DateTime<Utc>,
) -> Result<Option<LinkInfo>, StoreError> {
    Ok(live_link(registry, token, now)
        .await?
        .map(|(link, user)| LinkInfo {
            email: user.email,
            purpose: LinkPurpose::from_stored(&link.purpose),
            expires_at: from_db(link.expires_at),
        }))
}

/// The unused, unexpired link a token names and its person, unless they
/// are disabled.
async fn live_link(
    registry: &impl Registry,
    token: &str,
    now: DateTime<Utc>,
) -> Result<Option<(LinkRow, User)>, StoreError> {
    let hash = registry
        .account_settings()
        .token_hasher
        .hash(links::HASH_PURPOSE, token);
    let found = registry
        .pool()
        .run(move |conn| store::find_live_link(conn, &hash, now).map_err(StoreError::from))
        .await?;
    Ok(found.filter(|(_, user)| !user.disabled))
}

/// Sets the password of the link's person: the link is used up (with every
/// other unused link of theirs) and every session of theirs ends. The
/// person then signs in with [`sign_in`](super::sign_in).
pub async fn set_password_with_link(
    registry: &impl Registry,
    token: &str,
    new_password: &str,
    now: DateTime<Utc>,
) -> Result<User, SetPasswordError> {
    let Some((link, user)) = live_link(registry, token, now).await? else {
        return Err(SetPasswordError::InvalidLink);
    };
    check_password_policy(new_password, &user.email).map_err(SetPasswordError::Weak)?;
    let phc = password::hash_off_thread(registry.argon2(), Password::new(new_password)).await?;
    let via = LinkPurpose::from_stored(&link.purpose).as_str();
    registry
        .pool()
        .run(move |conn| {
            write_transaction(conn, |conn| {
                if !store::use_link(conn, &link.id, now)? {
                    return Err(SetPasswordError::InvalidLink);
                }
                Ok(store::set_new_password(conn, &user.id, &phc, via, now)?)
            })
        })
        .await
}

/// With passwords off (`KEYGATE_PASSWORD_SIGN_IN=off`), a live invitation
/// link signs its person in once, the link used in the session's own
/// transaction: a session that may only add a passkey until they have one,
/// so that a person invited to a keygate without passwords (or invited
/// again after an administrator removed their passkeys) can get in. A
/// reset link is refused, as the contract says. Audited as
/// `account.signed_in` with `"method": "link"`.
pub async fn sign_in_with_link(
    registry: &impl Registry,
    token: &str,
    addr: IpAddr,
    now: DateTime<Utc>,
) -> Result<NewSession, SetPasswordError> {
    let Some((link, user)) = live_link(registry, token, now)
        .await?
        .filter(|(link, _)| LinkPurpose::from_stored(&link.purpose) == LinkPurpose::Invite)
    else {
        return Err(SetPasswordError::InvalidLink);
    };
    let addr = addr.to_string();
    start_session_with(registry, user, &addr, "link", Some(link.id), now)
        .await?
        .ok_or(SetPasswordError::InvalidLink)
}
