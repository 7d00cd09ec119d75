//! Single sign-on: console sign-in through the company's identity provider
//! (`KEYGATE_OIDC_*`), keygate as an OpenID Connect relying party.
//!
//! - [`start`] begins a sign-in: the provider's authorization URL to send
//!   the browser to (code flow, PKCE S256, `state`, `nonce`, scope
//!   `openid email profile`, redirect URI `{issuer}`[`CALLBACK_PATH`]) and
//!   the cookie that carries the flow until the browser comes back
//!   ([`flow`]: sealed, 10 minutes, `SameSite=Lax`).
//! - [`finish`] takes the callback: the flow's cookie and the `state` that
//!   came back must match; the code is exchanged for an ID token, whose
//!   signature (the provider's keys, cached and fetched again on an unknown
//!   `kid`), `iss`, `aud`, `exp` and `nonce` are checked ([`provider`]).
//!   The person is the keygate account with the token's email, taken only
//!   when `email_verified` is true and the domain is allowed; a disabled
//!   person is refused; an unknown one is refused, or added with
//!   `KEYGATE_OIDC_DEFAULT_ROLE`. A session starts as a password sign-in's
//!   does, audited `account.signed_in` with `"method": "sso"`.
//! - Every refusal is one [`SsoRefusal`]: a plain sentence for the person
//!   ([`SsoRefusal::message`]) and an `account.sign_in_failed` audit entry
//!   with its [`code`](SsoRefusal::code) as the reason. No code, token or
//!   flow secret is ever logged or audited.
//!
//! keygate asks no second factor after single sign-on: the provider
//! enforces its own.

mod flow;
mod provider;
mod settings;
mod sign_in;

use std::fmt;
use std::sync::Arc;

use super::settings::Registry;
use crate::signing::{AtRest, MasterKey};

pub use flow::{FLOW_LIFETIME, PLAIN_FLOW_COOKIE_NAME, SECURE_FLOW_COOKIE_NAME};
pub use provider::{Identity, ProviderProblem};
pub use settings::{ProviderSecret, SsoSettings, SsoSettingsError, SsoVariables};
pub use sign_in::{Callback, SsoSignIn, finish, flow_cookie_name, flow_removal_cookie, start};

use provider::Provider;

/// Where the sign-in page's button leads: it starts a sign-in.
pub const START_PATH: &str = "/sign-in/oidc";
/// Where the provider sends the browser back (the redirect URI registered
/// at the provider is the issuer followed by this).
pub const CALLBACK_PATH: &str = "/sign-in/oidc/callback";

/// What single sign-on needs from the application beyond the accounts'
/// [`Registry`]: the provider, if one is configured. The application state
/// implements it (`crate::state`).
pub trait SsoRegistry: Registry {
    fn sso(&self) -> Option<&Arc<Sso>>;
}

/// A handle to a registry (`web::Data<AppState>`, `Arc<...>`) is one too.
impl<T> SsoRegistry for T
where
    T: std::ops::Deref<Target: SsoRegistry>,
{
    fn sso(&self) -> Option<&Arc<Sso>> {
        (**self).sso()
    }
}

/// The identity provider keygate signs people in through: its settings,
/// keygate's client at it, and the key that seals flows.
pub struct Sso {
    settings: SsoSettings,
    provider: Provider,
    sealer: AtRest,
}

impl Sso {
    /// For the keygate at `issuer`, whose master key seals the flows.
    pub fn new(settings: SsoSettings, issuer: &str, master: &MasterKey) -> Result<Self, String> {
        let redirect = format!("{issuer}{CALLBACK_PATH}");
        Ok(Self {
            provider: Provider::new(&settings, &redirect)?,
            settings,
            sealer: AtRest::for_purpose(master, b"sso flow cookie v1"),
        })
    }

    pub fn settings(&self) -> &SsoSettings {
        &self.settings
    }

    /// The button's words after "Sign in with".
    pub fn name(&self) -> &str {
        &self.settings.name
    }
}

impl fmt::Debug for Sso {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sso")
            .field("settings", &self.settings)
            .field("provider", &self.provider)
            .finish_non_exhaustive()
    }
}

/// Why a sign-in through the provider did not happen.
#[derive(Debug, thiserror::Error)]
pub enum SsoRefusal {
    #[error("no identity provider is configured")]
    NotConfigured,
    #[error("no sign-in through the provider was started in this browser, or it expired")]
    NoFlow,
    #[error("the state that came back is not the one this browser's sign-in sent")]
    StateMismatch,
    #[error("the provider answered with the error {0:?}")]
    ProviderDenied(String),
    #[error(transparent)]
    Provider(ProviderProblem),
    #[error(
        "signing in again, the provider's auth_time was older than the fresh sign-in asked for"
    )]
    NotAuthenticatedAgain,
    #[error("the provider shared no email address")]
    NoEmail,
    #[error("the provider does not say the email address is verified")]
    EmailUnverified,
    #[error("the email address's domain is not allowed")]
    DomainNotAllowed,
    #[error("no account has this email address")]
    UnknownAccount,
    #[error("the account is disabled")]
    Disabled,
    #[error("the person could not be added: {0}")]
    CannotAdd(String),
    #[error(transparent)]
    Store(#[from] crate::error::StoreError),
}

crate::error::from_store_errors!(SsoRefusal);

impl SsoRefusal {
    /// The audit entry's reason.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotConfigured => "sso_not_configured",
            Self::NoFlow => "sso_no_flow",
            Self::StateMismatch => "sso_state_mismatch",
            Self::ProviderDenied(_) => "sso_provider_error",
            Self::Provider(ProviderProblem::Unreachable(_)) => "sso_provider_unreachable",
            Self::Provider(ProviderProblem::CodeRefused(_)) => "sso_code_refused",
            Self::Provider(ProviderProblem::IdToken(_)) => "sso_id_token_invalid",
            Self::NotAuthenticatedAgain => "sso_not_authenticated_again",
            Self::NoEmail => "sso_no_email",
            Self::EmailUnverified => "sso_email_unverified",
            Self::DomainNotAllowed => "sso_domain_not_allowed",
            Self::UnknownAccount => "unknown_account",
            Self::Disabled => "disabled",
            Self::CannotAdd(_) => "sso_cannot_add",
            Self::Store(_) => "store",
        }
    }

    /// The one plain sentence the person is shown; `provider` is the
    /// provider's name, `email` the address it vouched for, if any.
    pub fn message(&self, provider: &str, email: Option<&str>) -> String {
        let email = email.unwrap_or("your email address");
        match self {
            Self::NotConfigured => "Single sign-on is not set up here.".into(),
            Self::NoFlow | Self::StateMismatch => {
                "That sign-in expired or was already used. Start again.".into()
            }
            Self::ProviderDenied(_) => format!("Signing in with {provider} was cancelled."),
            Self::Provider(ProviderProblem::Unreachable(_)) => {
                format!("{provider} could not be reached. Try again in a moment.")
            }
            Self::Provider(_) => {
                format!("{provider} did not confirm who you are. Start again.")
            }
            Self::NotAuthenticatedAgain => format!(
                "{provider} did not ask you to sign in afresh, so nothing can be changed yet. \
                 Try again, or sign in again another way."
            ),
            Self::NoEmail => format!("{provider} did not share your email address."),
            Self::EmailUnverified => {
                format!("{provider} has not verified {email}, so keygate cannot take it.")
            }
            Self::DomainNotAllowed => {
                format!("Signing in through {provider} is not open to {email}.")
            }
            Self::UnknownAccount => {
                format!("There is no keygate account for {email}. Ask an admin to invite you.")
            }
            Self::Disabled => "Your account is disabled.".into(),
            Self::CannotAdd(_) => {
                "Your account could not be added. Ask an admin to invite you.".into()
            }
            Self::Store(_) => "Signing in failed. Try again in a moment.".into(),
        }
    }
}
