//! A sign-in through the provider, from the button to the session: the
//! flow started ([`start`]), the callback checked and the person found or
//! added ([`finish`]), each refusal audited with its reason.

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use serde_json::json;
use zeroize::Zeroizing;

use super::flow::{self, FLOW_LIFETIME, PLAIN_FLOW_COOKIE_NAME, SECURE_FLOW_COOKIE_NAME};
use super::provider::Identity;
use super::{Sso, SsoRefusal, SsoRegistry};
use crate::accounts::session::{NewSession, RECENT_SIGN_IN, SessionCookie};
use crate::accounts::settings::Registry;
use crate::accounts::sign_in::start_session;
use crate::accounts::store;
use crate::audit::{self, Action};
use crate::error::StoreError;
use crate::users::{self, NewUserInput, User, UserError};

/// How the audit log names the actor of a refusal that came before the
/// provider named anyone.
const NOBODY_YET: &str = "(single sign-on)";
/// The longest error code from the provider kept for the audit log.
const MAX_ERROR_CODE: usize = 64;

/// The name of the flow's cookie, by whether the issuer is https.
pub fn flow_cookie_name(registry: &impl Registry) -> &'static str {
    registry
        .account_settings()
        .cookie_name(SECURE_FLOW_COOKIE_NAME, PLAIN_FLOW_COOKIE_NAME)
}

/// The cookie that removes the flow's cookie (the callback sets it,
/// whatever its outcome).
pub fn flow_removal_cookie(registry: &impl Registry) -> SessionCookie {
    let https = registry.account_settings().https;
    SessionCookie::new(flow_cookie_name(registry), None, 0, https)
}

/// A sign-in begun: send the browser to the provider's authorization URL
/// with the flow's cookie set. `next` is the local path to go to once
/// signed in.
pub async fn start(
    registry: &impl SsoRegistry,
    (next, again): (&str, bool),
    now: DateTime<Utc>,
) -> Result<(String, SessionCookie), SsoRefusal> {
    let sso = registry.sso().cloned().ok_or(SsoRefusal::NotConfigured)?;
    let (url, flow) = sso
        .provider
        .authorization(again)
        .await
        .map_err(SsoRefusal::Provider)?;
    let value = flow::seal(&sso.sealer, &flow, (next, again), now)
        .ok_or_else(|| SsoRefusal::CannotAdd("the flow could not be sealed".into()))?;
    let cookie = SessionCookie::new(
        flow_cookie_name(registry),
        Some(Zeroizing::new(value)),
        FLOW_LIFETIME.num_seconds(),
        registry.account_settings().https,
    );
    Ok((url, cookie))
}

/// What the provider sent the browser back with.
#[derive(Debug, Default, Clone, Copy)]
pub struct Callback<'a> {
    pub code: Option<&'a str>,
    pub state: Option<&'a str>,
    /// The provider's error code, when it signed nobody in.
    pub error: Option<&'a str>,
}

/// A person signed in through the provider.
#[derive(Debug)]
pub struct SsoSignIn {
    pub session: NewSession,
    /// The local path the sign-in was started for.
    pub next: String,
}

/// A refusal and the email the provider vouched for, if it got that far.
#[derive(Debug)]
pub struct Refused {
    pub reason: SsoRefusal,
    pub email: Option<String>,
}

impl Refused {
    /// The sentence the person is shown.
    pub fn message(&self, provider: &str) -> String {
        self.reason.message(provider, self.email.as_deref())
    }
}

/// The callback: see the module documentation of [`super`]. `flow_cookie`
/// is the value of the browser's [`flow_cookie_name`] cookie; `peer` the
/// client's address. Every refusal is audited (a database failure is only
/// logged).
pub async fn finish(
    registry: &impl SsoRegistry,
    flow_cookie: Option<&str>,
    callback: Callback<'_>,
    peer: IpAddr,
    now: DateTime<Utc>,
) -> Result<SsoSignIn, Refused> {
    let Some(sso) = registry.sso().cloned() else {
        return Err(Refused {
            reason: SsoRefusal::NotConfigured,
            email: None,
        });
    };
    let addr = peer.to_string();
    let mut email = None;
    let outcome = attempt(
        registry,
        &sso,
        flow_cookie,
        callback,
        &addr,
        &mut email,
        now,
    )
    .await;
    let reason = match outcome {
        Ok(signed_in) => return Ok(signed_in),
        Err(reason) => reason,
    };
    let who = email.as_deref().unwrap_or(NOBODY_YET);
    match &reason {
        SsoRefusal::Store(e) => {
            tracing::error!(error = %e, "single sign-on: the database failed");
        }
        reason => {
            tracing::info!(account = who, addr, reason = reason.code(), detail = %reason, "single sign-on refused");
            if let Err(e) = record_refusal(registry, &sso, reason.code(), who, &addr, now).await {
                tracing::error!(error = %e, "single sign-on: the refusal could not be audited");
            }
        }
    }
    Err(Refused { reason, email })
}

async fn attempt(
    registry: &impl Registry,
    sso: &Sso,
    flow_cookie: Option<&str>,
    callback: Callback<'_>,
    addr: &str,
    email: &mut Option<String>,
    now: DateTime<Utc>,
) -> Result<SsoSignIn, SsoRefusal> {
    let opened = flow_cookie
        .and_then(|value| flow::open(&sso.sealer, value, now))
        .ok_or(SsoRefusal::NoFlow)?;
    if !opened
        .flow
        .state_matches(callback.state.unwrap_or_default())
    {
        return Err(SsoRefusal::StateMismatch);
    }
    if let Some(error) = callback.error {
        return Err(SsoRefusal::ProviderDenied(error_code(error)));
    }
    let code = callback
        .code
        .filter(|code| !code.is_empty())
        .ok_or_else(|| SsoRefusal::ProviderDenied("(no code)".into()))?;
    let identity = sso
        .provider
        .identity(code, &opened.flow, now)
        .await
        .map_err(SsoRefusal::Provider)?;
    if opened.again && !identity.authenticated_within(RECENT_SIGN_IN) {
        return Err(SsoRefusal::NotAuthenticatedAgain);
    }
    let address = identity.email.clone().ok_or(SsoRefusal::NoEmail)?;
    *email = Some(address.clone());
    if !identity.email_verified {
        return Err(SsoRefusal::EmailUnverified);
    }
    if !sso.settings.allows(&address) {
        return Err(SsoRefusal::DomainNotAllowed);
    }
    let user = find_or_add(registry, sso, &identity, address, now).await?;
    if user.disabled {
        return Err(SsoRefusal::Disabled);
    }
    link(registry, sso, &user, &identity, now).await?;
    let session = start_session(registry, user, addr, "sso", now).await?;
    Ok(SsoSignIn {
        session,
        next: opened.next,
    })
}

/// The keygate account with the provider's email, or a new one with the
/// default role when that is set.
async fn find_or_add(
    registry: &impl Registry,
    sso: &Sso,
    identity: &Identity,
    email: String,
    now: DateTime<Utc>,
) -> Result<User, SsoRefusal> {
    let role = sso.settings.default_role.clone();
    let name = identity.name.clone().unwrap_or_default();
    let found = registry
        .pool()
        .run(move |conn| -> Result<_, SsoRefusal> {
            if let Some(user) = store::find_person(conn, &email)? {
                return Ok((user, false));
            }
            let Some(role) = role else {
                return Err(SsoRefusal::UnknownAccount);
            };
            let input = NewUserInput {
                email: &email,
                name: &name,
                role: &role,
                password_hash: None,
            };
            // The person's own sign-in adds them.
            match users::create_user(conn, input, &email, now) {
                Ok(user) => Ok((user, true)),
                // Added by a sign-in of theirs in another tab just now.
                Err(UserError::UserExists { .. }) => store::find_person(conn, &email)?
                    .map(|user| (user, false))
                    .ok_or(SsoRefusal::UnknownAccount),
                Err(UserError::Store(e)) => Err(SsoRefusal::Store(e)),
                Err(e) => Err(SsoRefusal::CannotAdd(e.to_string())),
            }
        })
        .await?;
    let (user, added) = found;
    if added {
        tracing::info!(account = %user.email, role = %user.role, "added at their first single sign-on");
    }
    Ok(user)
}

/// The person's link to their account at the provider, made or refreshed.
async fn link(
    registry: &impl Registry,
    sso: &Sso,
    user: &User,
    identity: &Identity,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let (user_id, email) = (user.id.clone(), user.email.clone());
    let issuer = sso.settings.issuer.clone();
    let subject = identity.subject.clone();
    let before = registry
        .pool()
        .run(move |conn| {
            store::link_sso_identity(conn, &user_id, (&issuer, &subject), now)
                .map_err(StoreError::from)
        })
        .await?;
    if let Some(before) = before {
        tracing::warn!(
            account = %email,
            before,
            now = %identity.subject,
            "the identity provider vouched for this address as another of its accounts"
        );
    }
    Ok(())
}

/// An error code as RFC 6749 §4.1.2.1 shapes them (printable ASCII), kept
/// short for the audit log.
fn error_code(text: &str) -> String {
    text.chars()
        .filter(|c| c.is_ascii_graphic())
        .take(MAX_ERROR_CODE)
        .collect()
}

async fn record_refusal(
    registry: &impl Registry,
    sso: &Sso,
    reason: &'static str,
    who: &str,
    addr: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let (who, addr) = (who.to_owned(), addr.to_owned());
    let issuer = sso.settings.issuer.clone();
    registry
        .pool()
        .run(move |conn| {
            audit::record(
                conn,
                now,
                audit::Entry {
                    actor: &who,
                    action: Action::AccountSignInFailed,
                    target: &who,
                    source_addr: Some(&addr),
                    details: json!({ "method": "sso", "reason": reason, "provider": issuer }),
                },
            )
            .map_err(StoreError::from)
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_error_codes_are_kept_short_and_printable() {
        assert_eq!(error_code("access_denied"), "access_denied");
        assert_eq!(error_code("a\nb c"), "abc");
        assert_eq!(error_code(&"x".repeat(500)).len(), MAX_ERROR_CODE);
    }
}
