//! People's side of keygate: passwords, sign-in, console sessions,
//! invitations and password resets. The web console and the management
//! API's session authentication are built on this facade; nothing else of
//! this module is theirs to call.
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
//! - It returns a [`NewSession`]: set [`session_cookie`] on the response and
//!   put [`NewSession::csrf`] in the page's forms.
//! - [`sign_out`] ends one session; answer with [`removal_cookie`].
//!
//! # Reading the session of a request
//!
//! - [`CurrentSession`] (an actix extractor) holds `Option<Session>`: the
//!   live session of the request's cookie, or `None`. [`Session`] as an
//!   extractor fails with 401 when there is none. Either moves the session's
//!   idle clock (written at most once a minute).
//! - A session is over when `KEYGATE_SESSION_IDLE` passed without a request,
//!   when `KEYGATE_SESSION_MAX` passed since sign-in, when its person is
//!   disabled (every session of theirs is deleted too, so enabling them
//!   again brings none back), or when their password changed (every
//!   session deleted).
//! - State-changing requests must carry the session's CSRF token (a form
//!   field or the [`CSRF_HEADER`] header): check it with
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
//!   mail goes to files ([`crate::state::AccountSettings::mail_to_files`]).
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
//! `account.signed_out`, `account.invited`,
//! `account.password_reset_requested`, `account.password_set`); no
//! password, session token, CSRF token or link token is ever logged,
//! audited or printed by `Debug`.

mod links;
mod password;
mod session;
mod store;

use std::net::IpAddr;

use actix_web::HttpRequest;
use chrono::{DateTime, Duration, Utc};
use serde_json::json;
use zeroize::Zeroizing;

pub use links::{InviteLink, LinkInfo, LinkPurpose, LinkToken, LinkUrl, SET_PASSWORD_PATH};
pub use password::{
    MAX_PASSWORD_CHARS, MIN_PASSWORD_CHARS, Password, PasswordProblem, check_password_policy,
};
pub use session::{
    CSRF_HEADER, CsrfToken, CurrentSession, NewSession, PLAIN_COOKIE_NAME, SECURE_COOKIE_NAME,
    Session, SessionToken, cookie_name, removal_cookie, session_cookie, session_token,
};

use crate::audit::{self, Action};
use crate::db::{DbConnection, write_transaction};
use crate::error::{AppError, StoreError, from_store_errors};
use crate::mail::{self, AccountContext, AccountEmail};
use crate::state::{AccountSettings, AppState};
use crate::time::{from_db, rfc3339};
use crate::users::{self, NewUserInput, User};

/// The one message of every refused sign-in.
pub const REFUSED_MESSAGE: &str = "wrong email address or password";

/// Throttle subjects: sign-in failures per account, reset requests per
/// address asked for (client IDs never start like this).
const SIGN_IN_SUBJECT: &str = "account:";
const RESET_SUBJECT: &str = "reset:";

/// At most one reset email per person in this time.
const RESET_EMAIL_INTERVAL: Duration = Duration::minutes(5);

/// Why a sign-in failed.
#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    /// Wrong password, unknown address, disabled person, no password yet:
    /// one answer for all (the audit log says which).
    #[error("{REFUSED_MESSAGE}")]
    Refused,
    /// Too many failures for this account from this address, or from this
    /// address altogether: try again after `retry_after` seconds, whatever
    /// the password.
    #[error("too many failed sign-ins; try again in {retry_after} seconds")]
    Throttled { retry_after: i64 },
    /// The database (503 when unreachable) or another internal failure:
    /// answer with it as it is.
    #[error(transparent)]
    Store(AppError),
}

/// Why a password could not be set through a link.
#[derive(Debug, thiserror::Error)]
pub enum SetPasswordError {
    /// Unknown, used or expired link, or the person is disabled.
    #[error("this link is invalid, used or expired: ask for a new one")]
    InvalidLink,
    /// The new password breaks the policy: show the message.
    #[error(transparent)]
    Weak(PasswordProblem),
    #[error(transparent)]
    Store(AppError),
}

/// Why a signed-in person's password change failed.
#[derive(Debug, thiserror::Error)]
pub enum ChangePasswordError {
    #[error("the current password is wrong")]
    WrongPassword,
    #[error("too many failed attempts; try again in {retry_after} seconds")]
    Throttled { retry_after: i64 },
    #[error(transparent)]
    Weak(PasswordProblem),
    #[error(transparent)]
    Store(AppError),
}

/// Why a reset request was not taken.
#[derive(Debug, thiserror::Error)]
pub enum ResetError {
    #[error("too many requests; try again in {retry_after} seconds")]
    Throttled { retry_after: i64 },
    #[error(transparent)]
    Store(AppError),
}

macro_rules! store_variant {
    ($($ty:ty),*) => {$(
        impl From<StoreError> for $ty {
            fn from(e: StoreError) -> Self {
                Self::Store(e.into())
            }
        }
        impl From<AppError> for $ty {
            fn from(e: AppError) -> Self {
                Self::Store(e)
            }
        }
        from_store_errors!($ty);
    )*};
}

store_variant!(
    SignInError,
    SetPasswordError,
    ChangePasswordError,
    ResetError
);

/// Drops ended sessions and expired links (the `sessions_prune` job).
pub fn prune(
    conn: &mut DbConnection,
    idle: Duration,
    now: DateTime<Utc>,
) -> diesel::QueryResult<usize> {
    store::prune(conn, idle, now)
}

/// Loads the common-password list and the decoy hash (start-up).
pub fn warm_up() {
    password::warm_up();
}

/// The client address of a request, as the throttle counts it (behind
/// `KEYGATE_TRUSTED_PROXIES`, the forwarded one); unspecified when unknown.
pub fn client_ip(state: &AppState, req: &HttpRequest) -> IpAddr {
    crate::peer::client_ip(req, &state.client_auth.trusted_proxies)
        .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED))
}

/// 256 random bits, base64url without padding (43 characters).
fn random_token() -> Zeroizing<String> {
    use base64::Engine as _;
    let mut bytes = Zeroizing::new([0u8; 32]);
    crate::random::fill(bytes.as_mut());
    Zeroizing::new(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes.as_ref()))
}

/// An email as typed (trimmed, lower-cased, bounded), and how the throttle
/// counts it and the audit log names it: text that is no email address (a
/// password typed in the wrong field) is never stored.
fn presented_email(text: &str) -> (String, String) {
    let email: String = text.trim().to_lowercase().chars().take(320).collect();
    let shown = if email.parse::<lettre::Address>().is_ok() {
        email.clone()
    } else {
        "(not an email address)".to_owned()
    };
    (email, shown)
}

/// One argon2 hash or verification off the async workers, on the argon2
/// threads client authentication uses (one per core).
async fn argon2<T: Send + 'static>(
    state: &AppState,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, AppError> {
    state
        .client_auth
        .argon2
        .run(work)
        .await
        .map_err(AppError::internal)
}

/// Hashes a new password in the argon2 pool.
async fn hash_new_password(state: &AppState, password: Password) -> Result<String, AppError> {
    argon2(state, move || password.hash())
        .await?
        .map_err(|e| AppError::internal(HashError(e.to_string())))
}

#[derive(Debug, thiserror::Error)]
#[error("hashing the password failed: {0}")]
struct HashError(String);

/// Signs a person in: see the module documentation.
pub async fn sign_in(
    state: &AppState,
    email: &str,
    password: &str,
    peer: IpAddr,
    now: DateTime<Utc>,
) -> Result<NewSession, SignInError> {
    let (email, shown) = presented_email(email);
    let addr = peer.to_string();
    let subject = format!("{SIGN_IN_SUBJECT}{shown}");
    let throttle = state.client_auth.throttle;
    let (retry, user) = {
        let (subject, addr, email) = (subject.clone(), addr.clone(), email.clone());
        state
            .db(move |conn| -> Result<_, StoreError> {
                let retry = throttle.retry_after(conn, &subject, &addr, now)?;
                let user = match retry {
                    Some(_) => None,
                    None => store::find_person(conn, &email)?,
                };
                Ok((retry, user))
            })
            .await?
    };
    if let Some(retry_after) = retry {
        return Err(SignInError::Throttled { retry_after });
    }
    let password = Password::new(password);
    let phc = user.as_ref().and_then(|u| u.password_hash.clone());
    let verified = argon2(state, move || {
        password.verify(phc.as_deref().unwrap_or(password::decoy_hash()))
    })
    .await?;
    let refusal = match &user {
        None => Some("unknown_account"),
        Some(u) if u.password_hash.is_none() => Some("no_password"),
        Some(_) if !verified => Some("wrong_password"),
        Some(u) if u.disabled => Some("disabled"),
        Some(_) => None,
    };
    match (refusal, user) {
        (None, Some(user)) => Ok(start_session(state, user, &addr, now).await?),
        (reason, _) => {
            let reason = reason.unwrap_or("unknown_account");
            tracing::info!(account = %shown, addr, reason, "sign-in refused");
            let written = state
                .db(move |conn| -> Result<(), StoreError> {
                    write_transaction(conn, |conn| {
                        throttle.record_failure(conn, &subject, &addr, now)?;
                        audit::record(
                            conn,
                            now,
                            audit::Entry {
                                actor: &shown,
                                action: Action::AccountSignInFailed,
                                target: &shown,
                                source_addr: Some(&addr),
                                details: json!({ "reason": reason }),
                            },
                        )?;
                        Ok(())
                    })
                })
                .await;
            written?;
            Err(SignInError::Refused)
        }
    }
}

/// A new session for `user`, audited.
async fn start_session(
    state: &AppState,
    user: User,
    addr: &str,
    now: DateTime<Utc>,
) -> Result<NewSession, StoreError> {
    let token = SessionToken::generate();
    let hash = state
        .accounts
        .token_hasher
        .hash(session::HASH_PURPOSE, token.expose());
    let expires_at = now + state.accounts.session_max.as_chrono();
    let idle = state.accounts.session_idle.as_chrono();
    let (user_id, email, addr) = (user.id.clone(), user.email.clone(), addr.to_owned());
    state
        .db(move |conn| {
            write_transaction(conn, |conn| {
                let id =
                    store::insert_session(conn, &hash, &user_id, (expires_at, idle), &addr, now)?;
                audit::record(
                    conn,
                    now,
                    audit::Entry {
                        actor: &email,
                        action: Action::AccountSignedIn,
                        target: &email,
                        source_addr: Some(&addr),
                        details: json!({ "session": id }),
                    },
                )?;
                Ok::<_, StoreError>(())
            })
        })
        .await?;
    let csrf = CsrfToken::derive(&state.accounts, &token);
    Ok(NewSession {
        token,
        csrf,
        expires_at,
        user,
    })
}

/// The live session a token names, if any: see [`CurrentSession`].
pub async fn lookup_session(
    state: &AppState,
    token: &SessionToken,
    now: DateTime<Utc>,
) -> Result<Option<Session>, StoreError> {
    let hash = state
        .accounts
        .token_hasher
        .hash(session::HASH_PURPOSE, token.expose());
    let idle = state.accounts.session_idle.as_chrono();
    let found = state
        .db(move |conn| store::find_live_session(conn, &hash, idle, now).map_err(StoreError::from))
        .await?;
    Ok(found.map(|(row, user)| Session {
        id: row.id,
        user,
        csrf: CsrfToken::derive(&state.accounts, token),
        created_at: from_db(row.created_at),
        expires_at: from_db(row.expires_at),
        last_seen_at: from_db(row.last_seen_at),
    }))
}

/// Ends this session (the browser's cookie goes with [`removal_cookie`]).
pub async fn sign_out(
    state: &AppState,
    session: &Session,
    now: DateTime<Utc>,
) -> Result<(), AppError> {
    let (id, email) = (session.id.clone(), session.user.email.clone());
    state
        .db(move |conn| {
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
                Ok::<_, AppError>(())
            })
        })
        .await
}

/// Who is invited, and by whom.
#[derive(Debug, Clone, Copy)]
pub struct Invitation<'a> {
    pub email: &'a str,
    /// The role of a person created by the invitation (an existing person
    /// must already have it).
    pub role: &'a str,
    pub name: &'a str,
    /// Recorded as the actor and named in the email: a person's email, or
    /// [`audit::COMMAND_LINE`].
    pub actor: &'a str,
    /// Whether a person who exists without a password yet is invited again
    /// (the console's "invite"); otherwise any existing person is refused
    /// (`users add`).
    pub again: bool,
}

/// Invites a person (the console's "invite"): see [`invite_with`].
pub async fn invite(
    state: &AppState,
    email: &str,
    role: &str,
    name: &str,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<InviteLink, AppError> {
    let settings = state.accounts.clone();
    let issuer = state.issuer.clone();
    let (email, role, name, actor) = (
        email.to_owned(),
        role.to_owned(),
        name.to_owned(),
        actor.to_owned(),
    );
    state
        .db(move |conn| {
            let invitation = Invitation {
                email: &email,
                role: &role,
                name: &name,
                actor: &actor,
                again: true,
            };
            invite_with(conn, &settings, &issuer, invitation, now)
        })
        .await
}

/// Creates the person if they do not exist, writes a one-time invitation
/// link and queues its email, all in one transaction. With
/// [`Invitation::again`], a person who exists without a password yet, in
/// the role given, is invited again (their older invitation stops working);
/// anyone else who exists is refused (`user_exists`), as is a disabled
/// person (`user_disabled`).
pub fn invite_with(
    conn: &mut DbConnection,
    settings: &AccountSettings,
    issuer: &str,
    invitation: Invitation<'_>,
    now: DateTime<Utc>,
) -> Result<InviteLink, AppError> {
    let email = users::normalize_email(invitation.email)?;
    let token = LinkToken::generate();
    let hash = settings
        .token_hasher
        .hash(links::HASH_PURPOSE, token.expose());
    let expires_at = now + settings.invite_ttl.as_chrono();
    let actor = invitation.actor;
    write_transaction(conn, |conn| {
        let (user, created_user) = match store::find_person(conn, &email)? {
            None => {
                let input = NewUserInput {
                    email: &email,
                    name: invitation.name,
                    role: invitation.role,
                    password_hash: None,
                };
                (users::create_user(conn, input, actor, now)?, true)
            }
            Some(user)
                if !invitation.again
                    || user.password_hash.is_some()
                    || user.role != invitation.role =>
            {
                return Err(AppError::conflict(
                    "user_exists",
                    format!(
                        "a user with email {email} already exists{}",
                        if user.password_hash.is_some() {
                            " and has a password (they can ask for a reset with \"forgot password\")"
                        } else if invitation.again {
                            " with another role (change it with `keygate users set`)"
                        } else {
                            ""
                        }
                    ),
                ));
            }
            Some(user) if user.disabled => {
                return Err(AppError::conflict(
                    "user_disabled",
                    format!("{email} is disabled: enable them before inviting them again"),
                ));
            }
            Some(user) => (user, false),
        };
        let id = store::insert_link(conn, LinkPurpose::Invite, &hash, &user.id, expires_at, now)?;
        let url = LinkUrl::new(issuer, &token);
        let inviter = match actor {
            audit::COMMAND_LINE => "An administrator".to_owned(),
            audit::SYSTEM => mail::render::PRODUCT.to_owned(),
            person => person.to_owned(),
        };
        mail::enqueue_account_email(
            conn,
            AccountEmail::Invitation,
            &id,
            &AccountContext {
                product: mail::render::PRODUCT,
                issuer,
                recipient: &user.email,
                link: url.expose(),
                expires_at: &rfc3339(expires_at),
                inviter: &inviter,
                occurred_at: &rfc3339(now),
            },
            now,
        )?;
        audit::record(
            conn,
            now,
            audit::Entry {
                actor,
                action: Action::AccountInvited,
                target: &user.email,
                source_addr: None,
                details: json!({ "link": id, "expires_at": rfc3339(expires_at) }),
            },
        )?;
        Ok(InviteLink {
            url,
            expires_at,
            user,
            created_user,
        })
    })
}

/// "Forgot password": see the module documentation. `Ok(())` whether or
/// not the address belongs to anyone.
pub async fn request_password_reset(
    state: &AppState,
    email: &str,
    peer: IpAddr,
    now: DateTime<Utc>,
) -> Result<(), ResetError> {
    let (email, shown) = presented_email(email);
    let addr = peer.to_string();
    let subject = format!("{RESET_SUBJECT}{shown}");
    let throttle = state.client_auth.throttle;
    let settings = state.accounts.clone();
    let issuer = state.issuer.clone();
    let token = LinkToken::generate();
    let hash = settings
        .token_hasher
        .hash(links::HASH_PURPOSE, token.expose());
    let expires_at = now + settings.invite_ttl.as_chrono();
    let retry = state
        .db(move |conn| -> Result<Option<i64>, AppError> {
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
    state: &AppState,
    token: &str,
    now: DateTime<Utc>,
) -> Result<Option<LinkInfo>, AppError> {
    let hash = state.accounts.token_hasher.hash(links::HASH_PURPOSE, token);
    let found = state
        .db(move |conn| store::find_live_link(conn, &hash, now).map_err(AppError::from))
        .await?;
    Ok(found
        .filter(|(_, user)| !user.disabled)
        .map(|(link, user)| LinkInfo {
            email: user.email,
            purpose: LinkPurpose::from_stored(&link.purpose),
            expires_at: from_db(link.expires_at),
        }))
}

/// Sets the password of the link's person: the link is used up (with every
/// other unused link of theirs) and every session of theirs ends. The
/// person then signs in with [`sign_in`].
pub async fn set_password_with_link(
    state: &AppState,
    token: &str,
    new_password: &str,
    now: DateTime<Utc>,
) -> Result<User, SetPasswordError> {
    let hash = state.accounts.token_hasher.hash(links::HASH_PURPOSE, token);
    let found = state
        .db(move |conn| store::find_live_link(conn, &hash, now).map_err(StoreError::from))
        .await?;
    let Some((link, user)) = found.filter(|(_, user)| !user.disabled) else {
        return Err(SetPasswordError::InvalidLink);
    };
    check_password_policy(new_password, &user.email).map_err(SetPasswordError::Weak)?;
    let phc = hash_new_password(state, Password::new(new_password)).await?;
    let via = LinkPurpose::from_stored(&link.purpose).as_str();
    state
        .db(move |conn| {
            write_transaction(conn, |conn| {
                if !store::use_link(conn, &link.id, now)? {
                    return Err(SetPasswordError::InvalidLink);
                }
                let ended = replace_password(conn, &user, &phc, now)?;
                audit::record(
                    conn,
                    now,
                    audit::Entry {
                        actor: &user.email,
                        action: Action::PasswordSet,
                        target: &user.email,
                        source_addr: None,
                        details: json!({ "via": via, "sessions_ended": ended }),
                    },
                )?;
                Ok(users::find_user(conn, &user.id).map_err(AppError::from)?)
            })
        })
        .await
}

/// Stores a new password hash, retires the person's unused links and ends
/// every session of theirs; returns how many sessions ended.
fn replace_password(
    conn: &mut DbConnection,
    user: &User,
    phc: &str,
    now: DateTime<Utc>,
) -> Result<usize, StoreError> {
    store::set_password_hash(conn, &user.id, phc, now)?;
    store::retire_links_of(conn, &user.id, now)?;
    Ok(store::delete_sessions_of(conn, &user.id)?)
}

/// A signed-in person changes their own password: the current one is
/// checked (failures throttled like sign-in), every session of theirs
/// ends, and a new one starts for this browser (set its cookie).
pub async fn change_password(
    state: &AppState,
    session: &Session,
    current: &str,
    new_password: &str,
    peer: IpAddr,
    now: DateTime<Utc>,
) -> Result<NewSession, ChangePasswordError> {
    let user = session.user.clone();
    let addr = peer.to_string();
    let subject = format!("{SIGN_IN_SUBJECT}{}", user.email);
    let throttle = state.client_auth.throttle;
    let retry = {
        let (subject, addr) = (subject.clone(), addr.clone());
        state
            .db(move |conn| {
                throttle
                    .retry_after(conn, &subject, &addr, now)
                    .map_err(StoreError::from)
            })
            .await?
    };
    if let Some(retry_after) = retry {
        return Err(ChangePasswordError::Throttled { retry_after });
    }
    let password = Password::new(current);
    let phc = user.password_hash.clone();
    let verified = argon2(state, move || {
        password.verify(phc.as_deref().unwrap_or(password::decoy_hash()))
    })
    .await?;
    if !verified {
        let (subject, addr, email) = (subject.clone(), addr.clone(), user.email.clone());
        state
            .db(move |conn| {
                write_transaction(conn, |conn| {
                    throttle.record_failure(conn, &subject, &addr, now)?;
                    audit::record(
                        conn,
                        now,
                        audit::Entry {
                            actor: &email,
                            action: Action::AccountSignInFailed,
                            target: &email,
                            source_addr: Some(&addr),
                            details: json!({ "reason": "wrong_current_password" }),
                        },
                    )
                })
                .map_err(StoreError::from)
            })
            .await?;
        return Err(ChangePasswordError::WrongPassword);
    }
    check_password_policy(new_password, &user.email).map_err(ChangePasswordError::Weak)?;
    let phc = hash_new_password(state, Password::new(new_password)).await?;
    let changed = user.clone();
    state
        .db(move |conn| {
            write_transaction(conn, |conn| {
                let ended = replace_password(conn, &changed, &phc, now)?;
                audit::record(
                    conn,
                    now,
                    audit::Entry {
                        actor: &changed.email,
                        action: Action::PasswordSet,
                        target: &changed.email,
                        source_addr: None,
                        details: json!({ "via": "change", "sessions_ended": ended }),
                    },
                )?;
                Ok::<_, StoreError>(())
            })
        })
        .await?;
    let user = state
        .db(move |conn| users::find_user(conn, &user.id).map_err(AppError::from))
        .await?;
    Ok(start_session(state, user, &addr, now).await?)
}
