//! A signed-in person changes their own password.

use std::net::IpAddr;

use chrono::{DateTime, Utc};

use super::error::ChangePasswordError;
use super::guessing::{self, Failure, Guessing, SIGN_IN_SUBJECT};
use super::password::{self, Password, check_password_policy};
use super::session::{NewSession, Session};
use super::settings::Registry;
use super::sign_in::start_session;
use super::store;
use crate::db::write_transaction;
use crate::error::StoreError;

/// The current password is checked (failures throttled like sign-in),
/// every session of the person ends, and a new one starts for this browser
/// (set its cookie).
pub async fn change_password(
    registry: &impl Registry,
    session: &Session,
    current: &str,
    new_password: &str,
    peer: IpAddr,
    now: DateTime<Utc>,
) -> Result<NewSession, ChangePasswordError> {
    let user = session.user.clone();
    let addr = peer.to_string();
    let subject = format!("{SIGN_IN_SUBJECT}{}", user.email);
    let throttle = registry.throttle();
    let retry = {
        let (subject, addr) = (subject.clone(), addr.clone());
        registry
            .pool()
            .run(move |conn| {
                throttle
                    .retry_after(conn, &subject, &addr, now)
                    .map_err(StoreError::from)
            })
            .await?
    };
    if let Some(retry_after) = retry {
        return Err(ChangePasswordError::Throttled { retry_after });
    }
    let phc = user.password_hash.clone();
    let verified =
        password::verify_off_thread(registry.argon2(), Password::new(current), phc).await?;
    if !verified {
        // Only a signed-in browser gets here: it counts per address, never
        // toward the account's lockout across addresses.
        let failure = Failure {
            subject,
            addr,
            who: user.email.clone(),
            reason: "wrong_current_password",
            guessing: Guessing::AddressOnly,
        };
        guessing::record_failed_password(registry, failure, now).await?;
        return Err(ChangePasswordError::WrongPassword);
    }
    check_password_policy(new_password, &user.email).map_err(ChangePasswordError::Weak)?;
    let phc = password::hash_off_thread(registry.argon2(), Password::new(new_password)).await?;
    let user = registry
        .pool()
        .run(move |conn| {
            write_transaction(conn, |conn| {
                store::set_new_password(conn, &user.id, &phc, "change", now)
                    .map_err(StoreError::from)
            })
        })
        .await?;
    Ok(start_session(registry, user, &addr, "password", now).await?)
}
