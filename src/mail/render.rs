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

/// An email to the admins about keygate itself, not about a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminNotice {
    /// A webhook endpoint failed for 5 days and was switched off.
    WebhookDisabled,
}

impl AdminNotice {
    /// The template folder and the outbox's `event` column.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::WebhookDisabled => "webhook_disabled",
        }
    }
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

const TEMPLATES: [(&str, &str); 45] = embedded!(
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
mod tests {
    use super::*;
    use crate::keys::{AllowedNetworks, ClientId, Key, KeyStatus};
    use crate::scope::{Audiences, ScopeSet};
    use crate::time::parse_rfc3339;

    fn at(text: &str) -> Option<chrono::DateTime<chrono::Utc>> {
        parse_rfc3339(text)
    }

    pub(crate) fn sample_key(name: &str) -> Key {
        Key {
            id: "key".into(),
            client_id: ClientId::from_stored("kg_sample123".into()),
            name: name.into(),
            description: String::new(),
            owner: Some("alice@example.com".into()),
            team: None,
            auth_method: crate::keys::AuthMethod::ClientSecret,
            public_key_thumbprints: Vec::new(),
            last_used_by: None,
            pending_since: None,
            approved_by: None,
            approved_at: None,
            scopes: ScopeSet::from_stored("read write"),
            audiences: Audiences::from_stored("https://api.example.com"),
            created_at: at("2026-11-22T10:00:00Z").unwrap(),
            created_by: "command line".into(),
            expires_at: at("2027-05-21T10:00:00Z"),
            status: KeyStatus::Active,
            last_used_at: None,
            last_used_from: None,
            last_used_user_agent: None,
            allowed_networks: AllowedNetworks::default(),
            max_tokens_per_minute: None,
            rotated_at: None,
            previous_secret_expires_at: at("2026-11-23T10:00:00Z"),
            revoked_at: at("2026-11-22T12:00:00Z"),
            revoked_by: Some("bob@example.com".into()),
            revoked_reason: Some("leaked in a CI log".into()),
        }
    }

    fn context<K>(key: &K) -> EmailContext<'_, K> {
        acted_by(key, "bob@example.com")
    }

    /// The key as every template may show it: with what a transfer's
    /// email adds (`keys::transfer`) beside it.
    fn sample_view(key: &Key) -> serde_json::Value {
        let mut view = serde_json::to_value(key).unwrap();
        view["transferred_from"] = "alice@example.com".into();
        view["transferred_to"] = "team payments".into();
        view["transfer_reason"] = "Alice moved to another team".into();
        view
    }

    fn acted_by<'a, K>(key: &'a K, actor: &str) -> EmailContext<'a, K> {
        EmailContext {
            product: PRODUCT,
            issuer: "https://auth.example.com",
            key,
            actor: Actor::describe(actor, "alice@example.com", "web1"),
            created_by: Actor::creator("command line", "alice@example.com"),
            occurred_at: "2026-11-22T12:00:00Z",
            recipient: "alice@example.com",
            relation: "the owner of this API key",
        }
    }

    #[test]
    fn every_event_renders_with_its_subject_word_and_the_key_facts() {
        let key = sample_key("ci");
        for (event, word) in [
            (Event::Created, "created"),
            (Event::Rotated, "rotated"),
            (Event::Revoked, "revoked"),
            (Event::Exposed, "exposed"),
            (Event::Expiring, "expires soon"),
            (Event::Expired, "expired"),
        ] {
            let mail = render(event, &context(&key)).unwrap();
            assert!(
                mail.subject.starts_with("[keygate] API key \"ci\" "),
                "{mail:?}"
            );
            assert!(mail.subject.contains(word), "{}", mail.subject);
            assert!(!mail.subject.contains('\n'));
            for body in [&mail.text, &mail.html] {
                for fact in [
                    "kg_sample123",
                    "read",
                    // The HTML escapes `/`, which browsers show as is.
                    "api.example.com",
                    "2027-05-21T10:00:00Z",
                    "contact an administrator",
                ] {
                    assert!(body.contains(fact), "{event:?} lacks {fact}: {body}");
                }
            }
            assert!(mail.text.contains("https://api.example.com"));
            assert!(mail.html.starts_with("<!DOCTYPE html>"));
            assert!(!mail.text.starts_with('\n') && !mail.text.contains("\n\n\n"));
            assert!(mail.text.contains(".\n\nKey details\n"), "{}", mail.text);
            assert!(mail.text.contains("\n-- \n"), "signature separator");
        }
    }

    #[test]
    fn a_key_without_a_secret_is_not_told_to_store_one() {
        let mut key = sample_key("signer");
        let mail = render(Event::Created, &context(&key)).unwrap();
        assert!(mail.text.contains("client secret you were shown"));
        key.auth_method = crate::keys::AuthMethod::PrivateKeyJwt;
        let mail = render(Event::Created, &context(&key)).unwrap();
        for body in [&mail.text, &mail.html] {
            assert!(!body.contains("client secret you were shown"), "{body}");
            assert!(body.contains("no secret"), "{body}");
            assert!(body.contains("private_key_jwt"), "{body}");
        }
    }

    #[test]
    fn the_envelope_and_the_last_use_are_shown_when_there_are_some() {
        let mut key = sample_key("ci");
        let plain = render(Event::Exposed, &context(&key)).unwrap();
        for body in [&plain.text, &plain.html] {
            assert!(
                !body.contains("Networks")
                    && !body.contains("Allowed from")
                    && !body.contains("Last used")
            );
        }
        key.allowed_networks = AllowedNetworks::parse("10.0.0.0/8 192.0.2.0/24").unwrap();
        key.max_tokens_per_minute = Some(120);
        key.last_used_at = at("2026-11-22T11:59:00Z");
        key.last_used_from = Some("192.0.2.7".into());
        let mail = render(Event::Exposed, &context(&key)).unwrap();
        assert!(
            mail.text
                .contains("  Networks:   10.0.0.0/8 192.0.2.0/24\n"),
            "{}",
            mail.text
        );
        assert!(mail.text.contains("  Limit:      120 tokens per minute\n"));
        assert!(
            mail.text
                .contains("  Last used:  2026-11-22T11:59:00Z from 192.0.2.7\n"),
            "{}",
            mail.text
        );
        assert!(mail.html.contains("192.0.2.7"), "{}", mail.html);
        assert!(mail.html.contains("120 per minute"));
    }

    #[test]
    fn rotation_and_revocation_say_what_matters() {
        let key = sample_key("ci");
        let rotated = render(Event::Rotated, &context(&key)).unwrap();
        assert!(rotated.text.contains("works until 2026-11-23T10:00:00Z"));
        let revoked = render(Event::Revoked, &context(&key)).unwrap();
        for body in [&revoked.text, &revoked.html] {
            assert!(body.contains("leaked in a CI log"));
            assert!(body.contains("bob@example.com"));
            assert!(body.contains("2026-11-22T12:00:00Z"));
            assert!(body.contains("cannot be undone"));
        }
    }

    #[test]
    fn every_email_names_its_keygate_and_who_acted_in_words() {
        let key = sample_key("ci");
        let view = sample_view(&key);
        for event in Event::ALL {
            let mail = render(event, &context(&view)).unwrap();
            for body in [&mail.text, &mail.html] {
                assert!(body.contains("auth.example.com"), "{event:?}: {body}");
                assert!(!body.contains("by command line"), "{body}");
                assert!(!body.contains("If you did not do this"), "{body}");
            }
            assert!(
                mail.text
                    .contains("Sent by keygate at https://auth.example.com to alice@example.com")
            );
            assert!(mail.text.contains("by the command line\n"), "{}", mail.text);
        }
        // An admin acted: the owner reads who, and that it was not them.
        let revoked = render(Event::Revoked, &context(&key)).unwrap();
        for body in [&revoked.text, &revoked.html] {
            assert!(
                body.contains("bob@example.com revoked your API key on 2026-11-22T12:00:00Z"),
                "{body}"
            );
            assert!(
                body.contains("bob@example.com did this, not you."),
                "{body}"
            );
        }
        // The owner acted.
        let rotated = render(Event::Rotated, &acted_by(&key, "alice@example.com")).unwrap();
        for body in [&rotated.text, &rotated.html] {
            assert!(
                body.contains("You rotated the secret of your API key"),
                "{body}"
            );
            assert!(
                body.contains("If this was not you, contact an administrator"),
                "{body}"
            );
        }
        // The command line, named with its host.
        let created = render(Event::Created, &acted_by(&key, "command line")).unwrap();
        for body in [&created.text, &created.html] {
            assert!(
                body.contains(
                    "Someone using the command line on web1 created this API key for you"
                ),
                "{body}"
            );
            assert!(
                body.contains("Someone with access to the command line on web1 did this."),
                "{body}"
            );
        }
        // keygate itself.
        let expiring = render(Event::Expiring, &acted_by(&key, "keygate")).unwrap();
        for body in [&expiring.text, &expiring.html] {
            assert!(body.contains("keygate sends this on its own"), "{body}");
        }
    }

    #[test]
    fn actors_are_described_for_the_owner() {
        let d = |a| Actor::describe(a, "alice@example.com", "web1");
        assert_eq!(
            (
                d("Alice@example.com").kind,
                d("alice@example.com").name.as_str()
            ),
            ("owner", "you")
        );
        assert_eq!(d("bob@example.com").subject, "bob@example.com");
        assert_eq!(d("command line").name, "the command line on web1");
        assert_eq!(d("keygate").name, "keygate itself");
        assert_eq!(
            Actor::creator("command line", "alice@example.com"),
            "the command line"
        );
        assert!(!this_host().is_empty());
    }

    #[test]
    fn html_is_escaped_and_text_is_not() {
        let key = sample_key("<script>alert(1)</script>");
        let mail = render(Event::Created, &context(&key)).unwrap();
        assert!(!mail.html.contains("<script>"), "{}", mail.html);
        assert!(
            mail.html
                .contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;")
        );
        assert!(mail.text.contains("<script>alert(1)</script>"));
        assert!(mail.subject.contains("<script>alert(1)</script>"));
    }

    #[test]
    fn a_missing_variable_fails_the_rendering() {
        let env =
            build_environment(&[("email/created/subject.txt", "{{ key.nickname }}")]).unwrap();
        let key = sample_key("ci");
        let err = render_with(&env, Event::Created, &context(&key)).unwrap_err();
        assert!(
            err.to_string().contains("email/created/subject.txt"),
            "{err}"
        );
        let env = build_environment(&[("t.txt", "{{ nothing }}")]).unwrap();
        assert!(render_one(&env, "t.txt", context(&key)).is_err());
    }

    #[test]
    fn account_emails_carry_the_link_and_its_expiry() {
        let link = "https://auth.example.com/set-password?token=abc<&>";
        for (email, word) in [
            (AccountEmail::Invitation, "invited"),
            (AccountEmail::PasswordReset, "Reset"),
        ] {
            let mail = render_account(
                email,
                &AccountContext {
                    product: PRODUCT,
                    issuer: "https://auth.example.com",
                    recipient: "alice@example.com",
                    link,
                    expires_at: "2026-12-05T10:00:00Z",
                    inviter: "bob@example.com",
                    occurred_at: "2026-12-02T10:00:00Z",
                },
            )
            .unwrap();
            assert!(mail.subject.contains(word), "{}", mail.subject);
            assert!(mail.text.contains(link), "{}", mail.text);
            assert!(mail.text.contains("2026-12-05T10:00:00Z"));
            assert!(mail.text.contains("works once"));
            assert!(
                mail.html.contains("token=abc&lt;&amp;&gt;"),
                "{}",
                mail.html
            );
            assert!(mail.html.contains("2026-12-05T10:00:00Z"));
        }
    }

    #[test]
    fn the_webhook_email_says_which_endpoint_and_what_to_do() {
        let notice = WebhookNotice {
            product: PRODUCT,
            issuer: "https://auth.example.com",
            recipient: "root@example.com",
            endpoint_id: "01a24c55-3339-750a-8063-4d02e5540a35",
            url: "https://hooks.example.com/keygate?x=<1>",
            description: "security channel",
            failing_since: "2026-12-01T10:00:00Z",
            failing_days: 5,
            last_error: Some("HTTP 503"),
            occurred_at: "2026-12-06T10:00:00Z",
        };
        let mail = render_notice(AdminNotice::WebhookDisabled, &notice).unwrap();
        assert!(mail.subject.contains("webhook"), "{}", mail.subject);
        assert!(mail.subject.contains("5 days"), "{}", mail.subject);
        for body in [&mail.text, &mail.html] {
            for word in [
                notice.endpoint_id,
                "security channel",
                "2026-12-01T10:00:00Z",
                "HTTP 503",
                "switch the endpoint back on",
            ] {
                assert!(body.contains(word), "lacks {word}: {body}");
            }
        }
        assert!(mail.text.contains(notice.url));
        assert!(mail.html.contains("x=&lt;1&gt;"), "{}", mail.html);
    }

    #[test]
    fn every_embedded_template_parses() {
        assert!(ENVIRONMENT.is_ok(), "{:?}", ENVIRONMENT.as_ref().err());
        let view = sample_view(&sample_key("k"));
        for event in Event::ALL {
            assert!(render(event, &context(&view)).is_ok(), "{event:?}");
        }
    }

    #[test]
    fn the_organisation_emails_say_what_happened_and_what_to_do() {
        let mut key = sample_key("ci");
        key.pending_since = at("2026-11-22T10:00:00Z");
        key.description = "nightly export to the warehouse".into();
        let view = sample_view(&key);
        for (event, words) in [
            (
                Event::Transferred,
                &[
                    "transferred",
                    "team payments",
                    "Alice moved to another team",
                    "did not change",
                ][..],
            ),
            (
                Event::ApprovalRequested,
                &[
                    "approval",
                    "nightly export to the warehouse",
                    "/admin/requests",
                    "7 days",
                ][..],
            ),
            (Event::Approved, &["approved", "works from now on"][..]),
            (
                Event::Denied,
                &["denied", "leaked in a CI log", "will never work"][..],
            ),
        ] {
            let mail = render(event, &context(&view)).unwrap();
            assert!(mail.subject.contains(words[0]), "{}", mail.subject);
            for body in [&mail.text, &mail.html] {
                for word in &words[1..] {
                    assert!(body.contains(word), "{event:?} lacks {word}: {body}");
                }
            }
        }
        // A team's key names the team as its owner.
        key.owner = None;
        key.team = Some("payments".into());
        let created = render(Event::Created, &context(&key)).unwrap();
        for body in [&created.text, &created.html] {
            assert!(body.contains("team payments"), "{body}");
        }
    }
}
