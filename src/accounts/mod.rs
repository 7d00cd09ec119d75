//! People's side of keygate: passwords, sign-in, console sessions,
//! invitations and password resets. The web console and the management
//! API's session authentication are built on this facade; nothing else of
//! this module is theirs to call. It knows nothing of HTTP nor of the
//! application state: each function takes what it needs through a
//! [`Registry`] (the state is one: pass `&state`), the client's address as
//! an [`IpAddr`](std::net::IpAddr) and `now`; the transport reads cookies
//! and builds responses (`crate::http::session`).
//!
//! # Signing in and out
//!
//! - [`sign_in`] checks an email and password (argon2id, in the same bounded
//!   pool as client secrets, so a login flood queues there rather than
//!   starving everything else) behind the database-shared failure throttle
//!   of client authentication (per account and address, per address). A
//!   wrong password, an unknown address, a disabled person and one who has
//!   no password yet all get the one [`SignInError::Refused`]; an unknown
//!   address costs the same argon2 work as a known one.
//! - Across addresses, 10 failures for one account within 15 minutes lock
//!   it for every browser that does not hold its device cookie until the
//!   window ends (`account.sign_in_locked`, audited once); a browser that
//!   does keeps its per-address limit only ([`DeviceCookie`], set at every
//!   successful sign-in, and `guessing`), so guessing cannot lock the owner
//!   out.
//! - It returns a [`NewSession`]: set [`session_cookie`] on the response (a
//!   [`SessionCookie`], rendered by the transport) and
//!   [`NewSession::device`] beside it, and put [`NewSession::csrf`] in the
//!   page's forms.
//! - [`sign_out`] ends one session; answer with [`removal_cookie`].
//!
//! # Single sign-on and second factors
//!
//! - [`sso`]: sign-in through the company's OpenID provider
//!   (`KEYGATE_OIDC_*`); `KEYGATE_PASSWORD_SIGN_IN=off` makes [`sign_in`]
//!   answer [`SignInError::PasswordSignInOff`].
//! - [`factors`]: an authenticator app and recovery codes, set up on the
//!   console's Security page. [`sign_in`] of a person with one answers
//!   [`SignInError::SecondFactorNeeded`] with a [`PendingSignIn`] (a sealed
//!   5-minute cookie) instead of a session; [`sign_in_second_factor`] then
//!   takes a code. `KEYGATE_REQUIRE_MFA` ([`RequireMfa`]) marks the
//!   sessions of the people it covers who have no factor
//!   ([`Session::must_enrol`]): they may only enrol one.
//!
//! # Reading the session of a request
//!
//! - [`lookup_session`] finds the live session a presented token names.
//!   The transport's extractors are built on it: [`CurrentSession`] holds
//!   `Option<Session>`, the live session of the request's cookie or `None`;
//!   [`Session`] as an extractor fails with 401 when there is none. Either
//!   moves the session's idle clock (written at most once a minute).
//! - A session is over when `KEYGATE_SESSION_IDLE` passed without a request,
//!   when `KEYGATE_SESSION_MAX` passed since sign-in, when its person is
//!   disabled (every session of theirs is deleted too, so enabling them
//!   again brings none back), or when their password changed (every
//!   session deleted).
//! - State-changing requests must carry the session's CSRF token (a form
//!   field or the `X-CSRF-Token` header): check it with
//!   [`Session::csrf_matches`], constant-time.
//!
//! # Cookies
//!
//! The cookie holds an opaque random token (256 bits) and nothing else; the
//! database holds its HMAC under a key derived from `KEYGATE_SECRET_KEY`. It
//! is `HttpOnly`, `SameSite=Lax`, `Path=/`; under an https issuer it is also
//! `Secure` and named `__Host-keygate-session` ([`SECURE_COOKIE_NAME`]),
//! otherwise `keygate-session` ([`PLAIN_COOKIE_NAME`]). Its `Max-Age` is what
//! is left of the absolute lifetime.
//!
//! # Invitations and resets
//!
//! - [`invite`] (the console's "invite") and [`invite_with`] (the CLI's
//!   `users add` without a password) create the person if needed and queue
//!   an invitation email through the outbox, in the transaction that writes
//!   the link; the returned [`InviteLink`] may be shown to the inviter when
//!   mail goes to files ([`AccountSettings::mail_to_files`]).
//! - [`request_password_reset`] ("forgot password") queues a reset email
//!   when the address belongs to an enabled person, and answers the same
//!   either way; it is throttled like sign-in, and sends at most one reset
//!   email per person every few minutes.
//! - A link is `{issuer}/set-password?token=TOKEN` and works once, until
//!   `KEYGATE_INVITE_TTL` passes. The console's `GET /set-password` renders
//!   with [`check_link`]; its `POST` calls [`set_password_with_link`], which
//!   marks the link (and every other unused link of the person) used and
//!   ends all their sessions.
//! - [`change_password`] is the signed-in person's own change (current
//!   password required); it ends every session and starts a new one for the
//!   browser that asked.
//!
//! # Password policy
//!
//! [`check_password_policy`]: at least 12 characters, at most 1024, not on
//! the common-password list shipped in the binary, not the email address.
//!
//! Every event is audited (`account.signed_in`, `account.sign_in_failed`,
//! `account.sign_in_locked`, `account.signed_out`, `account.invited`,
//! `account.password_reset_requested`, `account.password_set`); no
//! password, session token, CSRF token, device cookie or link token is ever
//! logged, audited or printed by `Debug`.

mod device;
mod error;
pub mod factors;
mod guessing;
mod invitation;
mod links;
mod password;
mod password_change;
mod pending;
mod relying_party;
mod reset;
mod second_factor;
mod session;
mod settings;
mod sign_in;
pub mod sso;
mod store;
mod token;

pub use device::{
    DEVICE_COOKIE_LIFETIME, DeviceCookie, PLAIN_DEVICE_COOKIE_NAME, SECURE_DEVICE_COOKIE_NAME,
    device_cookie_name,
};
pub use error::{
    AccountError, ChangePasswordError, REFUSED_MESSAGE, ResetError, SetPasswordError, SignInError,
};
pub use invitation::{Invitation, invite, invite_with};
pub use links::{InviteLink, LinkInfo, LinkPurpose, LinkToken, LinkUrl, SET_PASSWORD_PATH};
pub use password::{
    HashingFailure, MAX_PASSWORD_CHARS, MIN_PASSWORD_CHARS, Password, PasswordProblem,
    check_password_policy, warm_up,
};
pub use password_change::change_password;
pub use pending::{PENDING_LIFETIME, PendingSignIn, pending_cookie_name, pending_removal_cookie};
pub use relying_party::RelyingParty;
pub use reset::{check_link, request_password_reset, set_password_with_link, sign_in_with_link};
pub use second_factor::{
    begin_passkey_second_factor, begin_passkey_sign_in, sign_in_second_factor, sign_in_with_passkey,
};
pub use session::{
    CsrfToken, CurrentSession, NewSession, PLAIN_COOKIE_NAME, RECENT_SIGN_IN, SECURE_COOKIE_NAME,
    Session, SessionCookie, SessionToken, cookie_name, lookup_session, removal_cookie,
    session_cookie,
};
pub use settings::{AccountSealer, AccountSettings, Registry, RequireMfa};
pub use sign_in::{sign_in, sign_out};
pub use store::prune;
