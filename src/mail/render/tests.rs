//! Every email renders from its template with the sample key, escaped,
//! and a missing variable is an error.

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
            body.contains("Someone using the command line on web1 created this API key for you"),
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
    let env = build_environment(&[("email/created/subject.txt", "{{ key.nickname }}")]).unwrap();
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
                passkey_only: false,
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
fn with_passwords_off_the_invitation_is_to_add_a_passkey() {
    let context = |passkey_only| AccountContext {
        product: PRODUCT,
        issuer: "https://auth.example.com",
        recipient: "alice@example.com",
        link: "https://auth.example.com/set-password?token=abc",
        expires_at: "2026-12-05T10:00:00Z",
        inviter: "bob@example.com",
        occurred_at: "2026-12-02T10:00:00Z",
        passkey_only,
    };
    let mail = render_account(AccountEmail::Invitation, &context(true)).unwrap();
    for body in [&mail.text, &mail.html] {
        assert!(body.contains("add your passkey") || body.contains("Add your passkey"));
        assert!(body.contains("with your passkey"), "{body}");
        assert!(!body.contains("your password"), "{body}");
        assert!(!body.contains("password you chose"), "{body}");
    }
    let mail = render_account(AccountEmail::Invitation, &context(false)).unwrap();
    for body in [&mail.text, &mail.html] {
        assert!(body.contains("et your password"), "{body}");
        assert!(!body.contains("passkey"), "{body}");
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
