//! Console sessions: the opaque token a browser holds, its CSRF token, the
//! cookie that carries it (as plain data; the transport renders it), and
//! reading the live session a token names.
//!
//! The cookie holds 256 random bits (base64url) and nothing else; the
//! database holds only its keyed hash, so every keygate process honours it
//! and a stolen database opens nothing. The CSRF token is derived from the
//! session token under the same key (it is stable for the session, stored
//! nowhere, and unknown to anyone who has not the cookie and the key).

use std::fmt;

use chrono::{DateTime, Utc};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::device::DeviceCookie;
use super::settings::{AccountSettings, Registry};
use super::store;
use super::token::random_token;
use crate::error::StoreError;
use crate::time::from_db;
use crate::users::User;

/// The purpose labels of session token and CSRF token hashes.
pub(super) const HASH_PURPOSE: &str = "session";
const CSRF_PURPOSE: &str = "csrf";

/// The cookie's name under an https issuer: `__Host-` makes browsers insist
/// on `Secure`, `Path=/` and no `Domain`, so no other host can set it.
pub const SECURE_COOKIE_NAME: &str = "__Host-keygate-session";
/// The cookie's name under a plain-http issuer (local use), where `__Host-`
/// cannot be had (it requires `Secure`).
pub const PLAIN_COOKIE_NAME: &str = "keygate-session";

/// The session cookie's value in clear. Wiped on drop, never printed.
pub struct SessionToken(Zeroizing<String>);

impl SessionToken {
    pub(super) fn generate() -> Self {
        Self(random_token())
    }

    /// A token as a request presented it.
    pub fn from_presented(text: &str) -> Self {
        Self(Zeroizing::new(text.to_owned()))
    }

    /// The token itself, for the cookie.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionToken(redacted)")
    }
}

/// The session's CSRF token: put it in every form (and the `X-CSRF-Token`
/// header of API calls); compare what comes back with
/// [`Session::csrf_matches`].
#[derive(Clone)]
pub struct CsrfToken(String);

impl CsrfToken {
    pub(super) fn derive(settings: &AccountSettings, token: &SessionToken) -> Self {
        Self(settings.token_hasher.hash(CSRF_PURPOSE, token.expose()))
    }

    /// The token, for a hidden form field or a header.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Constant-time comparison with a presented token.
    pub fn matches(&self, presented: &str) -> bool {
        !presented.is_empty() && bool::from(self.0.as_bytes().ct_eq(presented.as_bytes()))
    }
}

impl fmt::Debug for CsrfToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CsrfToken(redacted)")
    }
}

/// A session just started by signing in: set its cookie with
/// [`session_cookie`].
#[derive(Debug)]
pub struct NewSession {
    pub token: SessionToken,
    pub csrf: CsrfToken,
    /// The absolute end (`KEYGATE_SESSION_MAX` from sign-in).
    pub expires_at: DateTime<Utc>,
    /// The signed-in person.
    pub user: User,
    /// The browser's new device cookie: set it beside the session's.
    pub device: DeviceCookie,
}

/// A live session and its person, as read at this request.
#[derive(Debug, Clone)]
pub struct Session {
    /// The session's public handle (the audit log names it; not a secret).
    pub id: String,
    /// The person, as the database has them now (role, state, ...).
    pub user: User,
    pub csrf: CsrfToken,
    pub created_at: DateTime<Utc>,
    /// The absolute end; the idle end moves with every request.
    pub expires_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    /// Started by a password alone for someone `KEYGATE_REQUIRE_MFA` covers
    /// who had no second factor: it may only enrol one (the console's
    /// Security page) or sign out, until they have.
    pub must_enrol: bool,
}

/// How long after signing in a session may still change how its person signs
/// in (add or remove a second factor, make new recovery codes): later, they
/// sign in again first, so a session cookie stolen or a console left open
/// cannot plant the thief's own passkey (Keycloak's "maximum authentication
/// age" for the same actions; GitHub's sudo mode).
pub const RECENT_SIGN_IN: chrono::Duration = chrono::Duration::minutes(15);

impl Session {
    /// Whether a presented CSRF token (form field or header) is this
    /// session's; constant-time.
    pub fn csrf_matches(&self, presented: &str) -> bool {
        self.csrf.matches(presented)
    }

    /// Whether its person signed in (started this session) within
    /// [`RECENT_SIGN_IN`] of `now`.
    pub fn signed_in_recently(&self, now: DateTime<Utc>) -> bool {
        recent(self.created_at, now)
    }
}

/// Whether `since` is within [`RECENT_SIGN_IN`] before `now` (or after it:
/// another process's clock may run ahead).
fn recent(since: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    now - since <= RECENT_SIGN_IN
}

/// The cookie's name for this keygate's issuer.
pub fn cookie_name(settings: &AccountSettings) -> &'static str {
    settings.cookie_name(SECURE_COOKIE_NAME, PLAIN_COOKIE_NAME)
}

/// The session cookie as keygate sets it, independent of any HTTP
/// library: the transport renders it `HttpOnly`, `SameSite=Lax`, `Path=/`,
/// `Secure` when [`SessionCookie::secure`], with this name, value and
/// `Max-Age`, and removes it when [`SessionCookie::is_removal`]. Its value
/// is the session token: no `Display`, a redacted `Debug`. The single
/// sign-on flow's cookie (`super::sso`) is set the same way.
pub struct SessionCookie {
    name: &'static str,
    value: Option<Zeroizing<String>>,
    max_age_secs: i64,
    secure: bool,
}

impl SessionCookie {
    /// A cookie set as the session's is: `value` `None` removes it.
    pub(super) fn new(
        name: &'static str,
        value: Option<Zeroizing<String>>,
        max_age_secs: i64,
        secure: bool,
    ) -> Self {
        Self {
            name,
            value,
            max_age_secs,
            secure,
        }
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The session token; empty for a removal.
    pub fn value(&self) -> &str {
        self.value.as_deref().map_or("", String::as_str)
    }

    /// Seconds the browser keeps it: what is left of the session's
    /// absolute lifetime.
    pub fn max_age_secs(&self) -> i64 {
        self.max_age_secs
    }

    pub fn secure(&self) -> bool {
        self.secure
    }

    /// This cookie removes the session cookie from the browser (sign-out).
    pub fn is_removal(&self) -> bool {
        self.value.is_none()
    }
}

impl fmt::Debug for SessionCookie {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionCookie")
            .field("name", &self.name)
            .field("removal", &self.is_removal())
            .field("max_age_secs", &self.max_age_secs)
            .field("secure", &self.secure)
            .finish_non_exhaustive()
    }
}

/// The cookie that carries a new session: under https `Secure` with the
/// `__Host-` name; its `Max-Age` is what is left of the session's absolute
/// lifetime.
pub fn session_cookie(
    registry: &impl Registry,
    token: &SessionToken,
    expires_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> SessionCookie {
    let settings = registry.account_settings();
    SessionCookie {
        name: cookie_name(settings),
        value: Some(Zeroizing::new(token.expose().to_owned())),
        max_age_secs: (expires_at - now).num_seconds().max(0),
        secure: settings.https,
    }
}

/// The cookie that removes the session cookie from the browser (sign-out).
pub fn removal_cookie(registry: &impl Registry) -> SessionCookie {
    let settings = registry.account_settings();
    SessionCookie {
        name: cookie_name(settings),
        value: None,
        max_age_secs: 0,
        secure: settings.https,
    }
}

/// The session of a request, if it presented a live one: the extractor for
/// pages that work signed in or not (the transport implements it). `None`
/// for no cookie, an unknown token, an idle or absolute timeout passed, a
/// disabled person, or every session of theirs ended by a password change.
#[derive(Debug, Clone)]
pub struct CurrentSession(pub Option<Session>);

/// The live session a token names, if any; reading it moves the session's
/// idle clock (a write at most once a minute).
pub async fn lookup_session(
    registry: &impl Registry,
    token: &SessionToken,
    now: DateTime<Utc>,
) -> Result<Option<Session>, StoreError> {
    let settings = registry.account_settings();
    let hash = settings.token_hasher.hash(HASH_PURPOSE, token.expose());
    let idle = settings.session_idle.as_chrono();
    let found = registry
        .pool()
        .run(move |conn| store::find_live_session(conn, &hash, idle, now).map_err(StoreError::from))
        .await?;
    Ok(found.map(|(row, user)| Session {
        id: row.id,
        user,
        csrf: CsrfToken::derive(settings, token),
        created_at: from_db(row.created_at),
        expires_at: from_db(row.expires_at),
        last_seen_at: from_db(row.last_seen_at),
        must_enrol: row.must_enrol,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sign_in_is_recent_for_fifteen_minutes() {
        let t = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        assert!(recent(t, t));
        assert!(recent(t, t + RECENT_SIGN_IN));
        assert!(!recent(
            t,
            t + RECENT_SIGN_IN + chrono::Duration::seconds(1)
        ));
        assert!(recent(t + chrono::Duration::seconds(30), t));
        assert_eq!(
            RECENT_SIGN_IN.num_minutes(),
            15,
            "FactorError::SignInAgain's message says 15 minutes"
        );
    }
}
