//! A sign-in whose password was right, waiting for the second factor
//! ([`super::second_factor`]): a cookie sealed under the accounts' key
//! holding who passed the password and when, good for 5 minutes. It is
//! `HttpOnly`, `SameSite=Lax` and `Secure` under https, like the session's;
//! the code step removes it.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::session::SessionCookie;
use super::settings::Registry;
use crate::error::StoreError;
use crate::users::User;

/// How long the second step may take.
pub const PENDING_LIFETIME: Duration = Duration::minutes(5);
/// The cookie's name under an https issuer.
pub const SECURE_PENDING_COOKIE_NAME: &str = "__Host-keygate-pending";
/// The cookie's name under a plain-http issuer.
pub const PLAIN_PENDING_COOKIE_NAME: &str = "keygate-pending";
const SEALED_FOR: &str = "sign-in waiting for a second factor";
const MAX_SEALED: usize = 1024;

/// A sign-in whose password was right, waiting for the second factor: set
/// [`PendingSignIn::cookie`] and show the code page.
#[derive(Debug)]
pub struct PendingSignIn {
    pub cookie: SessionCookie,
}

#[derive(Serialize, Deserialize)]
struct Sealed {
    user: String,
    started: i64,
}

pub fn pending_cookie_name(registry: &impl Registry) -> &'static str {
    registry
        .account_settings()
        .cookie_name(SECURE_PENDING_COOKIE_NAME, PLAIN_PENDING_COOKIE_NAME)
}

/// The cookie that removes the pending sign-in's.
pub fn pending_removal_cookie(registry: &impl Registry) -> SessionCookie {
    let https = registry.account_settings().https;
    SessionCookie::new(pending_cookie_name(registry), None, 0, https)
}

/// The pending sign-in of `user`, sealed into its cookie.
pub(super) fn pending(
    registry: &impl Registry,
    user: &User,
    now: DateTime<Utc>,
) -> Result<PendingSignIn, StoreError> {
    let sealed = Sealed {
        user: user.id.clone(),
        started: now.timestamp(),
    };
    let plain = serde_json::to_vec(&sealed).unwrap_or_default();
    let settings = registry.account_settings();
    let bytes = settings
        .sealer
        .seal(SEALED_FOR, &plain)
        .ok_or_else(|| StoreError::Unavailable("the sign-in could not be sealed".into()))?;
    let cookie = SessionCookie::new(
        pending_cookie_name(registry),
        Some(Zeroizing::new(URL_SAFE_NO_PAD.encode(bytes))),
        PENDING_LIFETIME.num_seconds(),
        settings.https,
    );
    Ok(PendingSignIn { cookie })
}

/// The person a pending cookie names, if it is keygate's and fresh.
pub(super) fn opened(registry: &impl Registry, value: &str, now: DateTime<Utc>) -> Option<String> {
    if value.len() > MAX_SEALED {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD.decode(value).ok()?;
    let plain = registry
        .account_settings()
        .sealer
        .open(SEALED_FOR, &bytes)?;
    let sealed: Sealed = serde_json::from_slice(&plain).ok()?;
    let started = DateTime::from_timestamp(sealed.started, 0)?;
    (now - started <= PENDING_LIFETIME).then_some(sealed.user)
}
