//! Email content from the templates under `templates/email/`, embedded in the
//! binary so it runs from any directory. HTML is escaped by default (the
//! `.html` templates) and a missing variable fails the rendering instead of
//! printing nothing.

use std::sync::LazyLock;

use minijinja::{Environment, UndefinedBehavior};
use serde::Serialize;

use super::event::Event;
use crate::audit::{COMMAND_LINE, SYSTEM};

/// The product name emails are signed with.
pub const PRODUCT: &str = "keygate";

/// An email to a person about their account (not about a key): each holds a
/// one-time link to set a password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountEmail {
    Invitation,
    PasswordReset,
}

impl AccountEmail {
    /// The template folder and the outbox's `event` column.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Invitation => "invitation",
            Self::PasswordReset => "password_reset",
        }
    }
}

/// An email about keygate itself or a person's account, not about a key
/// and holding no link: to the admins, or to the person concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminNotice {
    /// A webhook endpoint failed for 5 days and was switched off.
    WebhookDisabled,
    /// A person's second factor was enrolled, removed or reset (to them).
    TwoFactor,
}

impl AdminNotice {
    /// The template folder and the outbox's `event` column.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::WebhookDisabled => "webhook_disabled",
            Self::TwoFactor => "two_factor",
        }
    }
}

/// What a "two-factor" email shows (its words are made by the account
/// rules, `crate::accounts`).
#[derive(Debug, Serialize)]
pub struct TwoFactorNotice<'a> {
    pub product: &'static str,
    pub issuer: &'a str,
    pub recipient: &'a str,
    /// "authenticator app added", "second factors reset".
    pub headline: &'a str,
    /// One sentence of what happened.
    pub what: &'a str,
    /// Who did it: "you", an admin's email, "command line".
    pub actor: &'a str,
    /// What the person has now: "an authenticator app and 10 recovery codes".
    pub standing: &'a str,
    pub occurred_at: &'a str,
}

/// What the "webhook switched off" email shows.
#[derive(Debug, Serialize)]
pub struct WebhookNotice<'a> {
    pub product: &'static str,
    pub issuer: &'a str,
    pub recipient: &'a str,
    pub endpoint_id: &'a str,
    pub url: &'a str,
    pub description: &'a str,
    /// ISO 8601 in UTC.
    pub failing_since: &'a str,
    pub failing_days: i64,
    pub last_error: Option<&'a str>,
    pub occurred_at: &'a str,
}

/// Everything an account email's templates may use.
#[derive(Debug, Serialize)]
pub struct AccountContext<'a> {
    pub product: &'static str,
    pub issuer: &'a str,
    /// The person's email address.
    pub recipient: &'a str,
    /// The one-time link; the only secret any template is given.
    pub link: &'a str,
    /// When the link stops working, ISO 8601 in UTC.
    pub expires_at: &'a str,
    /// Who invited the person, in words ("bob@example.com", "an administrator").
    pub inviter: &'a str,
    pub occurred_at: &'a str,
    /// Passwords are off (`KEYGATE_PASSWORD_SIGN_IN=off`): the link leads
    /// to adding a passkey, not to setting a password.
    pub passkey_only: bool,
}

/// A rendered email, ready for the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
}

#[derive(Debug, thiserror::Error)]
#[error("rendering the {template} email template failed: {message}")]
pub struct RenderError {
    template: String,
    message: String,
}

/// Everything a template may use. The key's public view (`keys::Key`)
/// holds no secret, so no template can show one.
#[derive(Debug, Serialize)]
pub struct EmailContext<'a, K> {
    pub product: &'static str,
    /// The keygate that sends the email, so a person with several knows which.
    pub issuer: &'a str,
    pub key: &'a K,
    /// Who acted, in words for the owner.
    pub actor: Actor,
    /// Who created the key, in words for the owner.
    pub created_by: String,
    /// When the event happened, ISO 8601 in UTC.
    pub occurred_at: &'a str,
    /// The address the email goes to.
    pub recipient: &'a str,
    /// Why it goes there, after the address: "the owner of this API key",
    /// "a member of team payments, which owns this API key".
    pub relation: &'a str,
}

/// Who acted, as the owner reads it: not the raw actor of the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Actor {
    /// `owner`, `person` (someone else, by email), `command_line` or `keygate`.
    pub kind: &'static str,
    /// Inside a sentence: "you", "bob@example.com", "the command line on
    /// web1", "keygate itself".
    pub name: String,
    /// Opening a sentence: "You", "bob@example.com", "Someone using the
    /// command line on web1", "keygate".
    pub subject: String,
}

impl Actor {
    /// `actor` as the audit log records it; `host` names the machine a
    /// command-line change ran on (the one rendering the email: the CLI
    /// writes its emails itself).
    pub fn describe(actor: &str, owner: &str, host: &str) -> Self {
        let (kind, name, subject) = match actor {
            a if a.eq_ignore_ascii_case(owner) => ("owner", "you".to_owned(), "You".to_owned()),
            COMMAND_LINE => (
                "command_line",
                format!("the command line on {host}"),
                format!("Someone using the command line on {host}"),
            ),
            SYSTEM => ("keygate", format!("{PRODUCT} itself"), PRODUCT.to_owned()),
            person => ("person", person.to_owned(), person.to_owned()),
        };
        Self {
            kind,
            name,
            subject,
        }
    }

    /// The creator stored on a key, which may have been another machine's
    /// command line: named without a host.
    pub fn creator(created_by: &str, owner: &str) -> String {
        match created_by {
            c if c.eq_ignore_ascii_case(owner) => "you".to_owned(),
            COMMAND_LINE => "the command line".to_owned(),
            SYSTEM => format!("{PRODUCT} itself"),
            person => person.to_owned(),
        }
    }
}

/// This machine's name, for "the command line on HOST".
pub fn this_host() -> String {
    hostname::get()
        .ok()
        .and_then(|h| h.into_string().ok())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "an unnamed machine".to_owned())
}

macro_rules! embedded {
    ($($path:literal),* $(,)?) => {
        [$(($path, include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/templates/", $path)))),*]
    };
}

const TEMPLATES: [(&str, &str); 48] = embedded!(
    "email/base.txt",
    "email/base.html",
    // One text for both parts, each escaped as its part needs.
    "email/warning.txt",
    "email/warning.html",
    "email/created/subject.txt",
    "email/created/body.txt",
    "email/created/body.html",
    "email/rotated/subject.txt",
    "email/rotated/body.txt",
    "email/rotated/body.html",
    "email/revoked/subject.txt",
    "email/revoked/body.txt",
    "email/revoked/body.html",
    "email/exposed/subject.txt",
    "email/exposed/body.txt",
    "email/exposed/body.html",
    "email/expiring/subject.txt",
    "email/expiring/body.txt",
    "email/expiring/body.html",
    "email/expired/subject.txt",
    "email/expired/body.txt",
    "email/expired/body.html",
    "email/transferred/subject.txt",
    "email/transferred/body.txt",
    "email/transferred/body.html",
    "email/approval/subject.txt",
    "email/approval/body.txt",
    "email/approval/body.html",
    "email/approved/subject.txt",
    "email/approved/body.txt",
    "email/approved/body.html",
    "email/denied/subject.txt",
    "email/denied/body.txt",
    "email/denied/body.html",
    "email/account.txt",
    "email/account.html",
    "email/invitation/subject.txt",
    "email/invitation/body.txt",
    "email/invitation/body.html",
    "email/password_reset/subject.txt",
    "email/password_reset/body.txt",
    "email/password_reset/body.html",
    "email/webhook_disabled/subject.txt",
    "email/webhook_disabled/body.txt",
    "email/webhook_disabled/body.html",
    "email/two_factor/subject.txt",
    "email/two_factor/body.txt",
    "email/two_factor/body.html",
);

fn build_environment(
    templates: &[(&'static str, &'static str)],
) -> Result<Environment<'static>, RenderError> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    // The default escapes `.html` templates and leaves `.txt` alone.
    for (name, source) in templates {
        env.add_template(name, source).map_err(|e| RenderError {
            template: (*name).to_owned(),
            message: e.to_string(),
        })?;
    }
    Ok(env)
}

static ENVIRONMENT: LazyLock<Result<Environment<'static>, RenderError>> =
    LazyLock::new(|| build_environment(&TEMPLATES));

fn render_one(
    env: &Environment<'_>,
    name: &str,
    context: impl Serialize,
) -> Result<String, RenderError> {
    let fail = |e: minijinja::Error| RenderError {
        template: name.to_owned(),
        message: format!("{e:#}"),
    };
    env.get_template(name)
        .map_err(fail)?
        .render(context)
        .map_err(fail)
}

/// Renders the subject, text and HTML of `event`.
pub fn render<K: Serialize>(
    event: Event,
    context: &EmailContext<'_, K>,
) -> Result<Rendered, RenderError> {
    let env = ENVIRONMENT.as_ref().map_err(|e| RenderError {
        template: e.template.clone(),
        message: e.message.clone(),
    })?;
    render_with(env, event, context)
}

/// Renders the subject, text and HTML of an account email.
pub fn render_account(
    email: AccountEmail,
    context: &AccountContext<'_>,
) -> Result<Rendered, RenderError> {
    let env = ENVIRONMENT.as_ref().map_err(|e| RenderError {
        template: e.template.clone(),
        message: e.message.clone(),
    })?;
    render_dir(env, email.as_str(), context)
}

/// Renders the subject, text and HTML of an email to the admins.
pub fn render_notice(
    notice: AdminNotice,
    context: &impl Serialize,
) -> Result<Rendered, RenderError> {
    let env = ENVIRONMENT.as_ref().map_err(|e| RenderError {
        template: e.template.clone(),
        message: e.message.clone(),
    })?;
    render_dir(env, notice.as_str(), context)
}

fn render_with<K: Serialize>(
    env: &Environment<'_>,
    event: Event,
    context: &EmailContext<'_, K>,
) -> Result<Rendered, RenderError> {
    render_dir(env, event.as_str(), context)
}

fn render_dir(
    env: &Environment<'_>,
    folder: &str,
    context: &impl Serialize,
) -> Result<Rendered, RenderError> {
    let dir = format!("email/{folder}");
    // A subject is one line, whatever the template's whitespace.
    let subject = render_one(env, &format!("{dir}/subject.txt"), context)?
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let text = render_one(env, &format!("{dir}/body.txt"), context)?;
    let html = render_one(
        env,
        &format!("{dir}/body.html"),
        minijinja::context! { subject => &subject, ..minijinja::Value::from_serialize(context) },
    )?;
    Ok(Rendered {
        subject,
        text: tidy_text(&text),
        html,
    })
}

/// At most one blank line in a row, none at the start or end.
fn tidy_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut blank = 0;
    // "-- " is the signature separator mail clients recognise: keep its space.
    for line in text
        .lines()
        .map(|l| if l == "-- " { l } else { l.trim_end() })
    {
        if line.is_empty() {
            blank += 1;
            continue;
        }
        if !out.is_empty() && blank > 0 {
            out.push('\n');
        }
        blank = 0;
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests;
