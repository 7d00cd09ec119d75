//! Emails to key owners, received by a real SMTP server (aiosmtpd) or read
//! from the `.eml` folder: one per event, well formed, never a secret; the
//! outbox survives an SMTP outage and a killed server, gives up on a
//! permanent rejection, and several servers never send one twice.

mod delivery;

use std::collections::HashMap;
use std::time::Duration;

use keygate::jobs::Job;
use keygate::mail::MailTuning;

use crate::both_engines;
use crate::helpers::mail::{
    Received, SmtpSink, fast_mail, one_with, outbox, wait_for_messages, wait_until,
    wait_until_outbox_settled,
};
use crate::helpers::serve::Serve;
use crate::helpers::{Engine, Key, KeySpec, TestApp};

/// The machine's name as the CLI writes it into its emails.
fn this_host() -> String {
    hostname::get()
        .expect("hostname")
        .into_string()
        .expect("UTF-8 hostname")
}

impl Received {
    /// Names the keygate at `issuer` in both parts (the HTML escapes `/`).
    fn assert_sent_by(&self, issuer: &str, owner: &str) {
        let footer = format!("Sent by keygate at {issuer} to {owner}");
        assert!(self.text.contains(&footer), "{}", self.text);
        assert!(
            self.html.contains(&footer.replace('/', "&#x2f;")),
            "{}",
            self.html
        );
    }
}

async fn metrics(app: &TestApp) -> String {
    app.http
        .get(format!("{}/metrics", app.address))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// The real `keygate serve` on this app's variables, ready; killed on drop.
async fn serve_binary(app: &TestApp) -> Serve {
    Serve::start(app, &[("RUST_LOG", "warn")]).await
}

// ------------------------------------------------------------------ tests

/// One round of the expiry sweep, then one of delivery, on every server.
async fn sweep_and_deliver(app: &TestApp) {
    app.run_job_everywhere(Job::ExpirySweep).await;
    app.run_job_everywhere(Job::MailDelivery).await;
}

/// Created, rotated, revoked, expires soon (a key created inside the warning
/// window: right after its "created") and expired: one message each, to the
/// owner, well formed, without the secret.
async fn each_event_sends_one_email_to_the_owner(engine: Engine) {
    let smtp = SmtpSink::started().await;
    let app = smtp
        .app_on_demand(engine)
        .vars(&[("KEYGATE_EXPIRY_WARNING", "1h")])
        .start()
        .await;
    app.add_owner_and_api("alice@example.com").await;

    let ci = app
        .create_key(KeySpec::reader("alice@example.com", "ci").expires_in("30d"))
        .await;
    app.run_job(Job::MailDelivery).await;
    let messages = smtp.wait_for(1, Duration::from_secs(20)).await;
    one_with(&messages, "created").assert_well_formed("alice@example.com", &ci);

    let rotated = app
        .cli_ok(&["keys", "rotate", &ci.client_id, "--grace", "1h", "--json"])
        .await
        .json();
    let after_rotation = Key {
        client_secret: rotated["client_secret"].as_str().unwrap().to_owned(),
        ..ci.clone()
    };
    app.run_job(Job::MailDelivery).await;
    let messages = smtp.wait_for(2, Duration::from_secs(20)).await;
    let message = one_with(&messages, "rotated");
    message.assert_well_formed("alice@example.com", &after_rotation);
    message.assert_well_formed("alice@example.com", &ci);
    let grace_until = rotated["previous_secret_expires_at"].as_str().unwrap();
    assert!(message.text.contains(grace_until), "{}", message.text);

    app.cli_ok(&[
        "keys",
        "revoke",
        &ci.client_id,
        "--reason",
        "leaked in a log",
    ])
    .await;
    app.run_job(Job::MailDelivery).await;
    let messages = smtp.wait_for(3, Duration::from_secs(20)).await;
    let message = one_with(&messages, "revoked");
    message.assert_well_formed("alice@example.com", &after_rotation);
    let host = this_host();
    for body in [&message.text, &message.html] {
        assert!(body.contains("leaked in a log"));
        assert!(
            body.contains(&format!(
                "Someone using the command line on {host} revoked your API key on"
            )),
            "{body}"
        );
        assert!(body.contains("cannot be undone"));
    }

    // Inside the one-hour warning window from the start, gone once the
    // clock passes its ten minutes.
    let short = app
        .create_key(KeySpec::reader("alice@example.com", "short").expires_in("10m"))
        .await;
    sweep_and_deliver(&app).await;
    app.advance_clock(chrono::Duration::minutes(11));
    sweep_and_deliver(&app).await;
    let messages = smtp.wait_for(6, Duration::from_secs(30)).await;
    let short_messages: Vec<Received> = messages
        .iter()
        .filter(|m| m.subject.contains("\"short\""))
        .cloned()
        .collect();
    for word in ["created", "expires soon", "expired"] {
        one_with(&short_messages, word).assert_well_formed("alice@example.com", &short);
    }
    let expires_at = short.json["expires_at"].as_str().unwrap();
    assert!(
        one_with(&short_messages, "expires soon")
            .text
            .contains(expires_at)
    );

    // Nothing more arrives, and the outbox says when each went out.
    app.advance_clock(chrono::Duration::hours(1));
    sweep_and_deliver(&app).await;
    assert_eq!(smtp.messages().len(), 6);
    // Each says which keygate sent it: the CLI's and the server's alike.
    for message in smtp.messages() {
        message.assert_sent_by(&app.issuer, "alice@example.com");
    }
    let expired = one_with(&short_messages, "expired");
    assert!(
        expired.text.contains("keygate sends this on its own"),
        "{}",
        expired.text
    );
    let rows = outbox(&app);
    assert!(
        rows.iter().all(|r| r.status == "sent" && r.attempts == 1),
        "{rows:?}"
    );
    assert!(rows.iter().all(|r| r.recipient == "alice@example.com"));
    let order: Vec<&str> = rows
        .iter()
        .filter(|r| r.body.contains(&short.client_id))
        .map(|r| r.event.as_str())
        .collect();
    assert_eq!(order, ["created", "expiring", "expired"], "sending order");
    for row in &rows {
        for secret in [
            &ci.client_secret,
            &after_rotation.client_secret,
            &short.client_secret,
        ] {
            assert!(
                !row.body.contains(secret.as_str()),
                "a secret is in the outbox"
            );
        }
    }
    let text = metrics(&app).await;
    assert!(text.contains("keygate_email_outbox_pending 0"), "{text}");
    assert!(text.contains("keygate_emails_sent_total"), "{text}");
}

/// A key named like a script arrives inert in the HTML part.
async fn html_part_escapes_the_key_name(engine: Engine) {
    let smtp = SmtpSink::started().await;
    let app = smtp.app_on_demand(engine).start().await;
    app.add_owner_and_api("alice@example.com").await;
    let name = "<script>alert(1)</script>";
    let key = app
        .create_key(KeySpec::reader("alice@example.com", name))
        .await;
    app.run_job(Job::MailDelivery).await;
    let messages = smtp.wait_for(1, Duration::from_secs(20)).await;
    let message = one_with(&messages, "created");
    message.assert_well_formed("alice@example.com", &key);
    assert!(!message.html.contains("<script"), "{}", message.html);
    assert!(
        message.html.contains("&lt;script&gt;alert(1)"),
        "{}",
        message.html
    );
    assert!(message.text.contains(name));
}

/// An admin revokes alice's key over the API: the email tells alice who did
/// it and that it was not her, in both parts.
async fn an_admins_change_is_told_to_the_owner_in_words(engine: Engine) {
    let smtp = SmtpSink::started().await;
    let app = smtp.app_on_demand(engine).start().await;
    app.add_owner_and_api("alice@example.com").await;
    app.add_person("root@example.com", "admin", "a long enough password")
        .await;
    let admin = app
        .create_key(KeySpec::new("root@example.com", "admin").scopes("keygate:admin"))
        .await;
    let key = app
        .create_key(KeySpec::reader("alice@example.com", "ci"))
        .await;
    let bearer = app.token_string(&admin).await;
    let response = app
        .http
        .delete(format!("{}/api/v1/keys/{}", app.address, key.client_id))
        .bearer_auth(bearer)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    app.run_job(Job::MailDelivery).await;
    let messages = smtp.wait_for(3, Duration::from_secs(20)).await;
    let revoked = one_with(&messages, "revoked");
    revoked.assert_well_formed("alice@example.com", &key);
    revoked.assert_sent_by(&app.issuer, "alice@example.com");
    for body in [&revoked.text, &revoked.html] {
        assert!(
            body.contains("root@example.com revoked your API key on"),
            "{body}"
        );
        assert!(
            body.contains("root@example.com did this, not you."),
            "{body}"
        );
        assert!(!body.contains("If this was not you"), "{body}");
    }
}

/// The invitation of `users add` (no link printed: mail goes to a server)
/// and a password reset arrive through the real SMTP server, each with a
/// one-time link that sets the password; a reset for an unknown address
/// sends nothing; once sent, the outbox no longer holds the link.
async fn invitation_and_reset_emails_carry_a_working_link(engine: Engine) {
    let smtp = SmtpSink::started().await;
    let app = smtp.app_on_demand(engine).start().await;
    let out = app
        .cli_ok(&["users", "add", "new@example.com", "--role", "admin"])
        .await;
    assert!(
        out.stdout.contains("invitation email is queued"),
        "{}",
        out.stdout
    );
    assert!(
        crate::helpers::link_token(&out.stdout).is_none(),
        "with a mail server the link goes only by email: {}",
        out.stdout
    );
    app.run_job(Job::MailDelivery).await;
    let messages = smtp.wait_for(1, Duration::from_secs(20)).await;
    let invitation = one_with(&messages, "invited");
    assert_eq!(invitation.to, "new@example.com");
    assert_eq!(invitation.content_type, "multipart/alternative");
    assert_eq!(invitation.parts, ["text/plain", "text/html"]);
    assert!(
        invitation.text.contains("An administrator invited you"),
        "{}",
        invitation.text
    );
    assert!(invitation.text.contains(&app.issuer), "{}", invitation.text);
    let token = crate::helpers::link_token(&invitation.text).expect("a link in the text");
    // The HTML escapes `/` (browsers read `&#x2f;` in an href as `/`).
    assert!(
        invitation
            .html
            .contains(&format!("&#x2f;set-password?token={token}\"")),
        "{}",
        invitation.html
    );
    let state = app.state();
    let now = state.clock.now();
    keygate::accounts::set_password_with_link(&state, &token, "correct horse battery", now)
        .await
        .unwrap();
    app.sign_in("new@example.com", "correct horse battery")
        .await;

    for email in ["new@example.com", "nobody@example.com"] {
        keygate::accounts::request_password_reset(&state, email, "127.0.0.1".parse().unwrap(), now)
            .await
            .unwrap();
    }
    app.run_job(Job::MailDelivery).await;
    let messages = smtp.wait_for(2, Duration::from_secs(20)).await;
    let reset = one_with(&messages, "Reset your password");
    assert_eq!(reset.to, "new@example.com");
    let token = crate::helpers::link_token(&reset.text).expect("a link in the text");
    keygate::accounts::set_password_with_link(&state, &token, "staple in the drawer", now)
        .await
        .unwrap();
    app.sign_in("new@example.com", "staple in the drawer").await;
    assert!(
        keygate::accounts::set_password_with_link(&state, &token, "another long one!", now)
            .await
            .is_err(),
        "a link works once"
    );
    let rows = outbox(&app);
    assert_eq!(rows.len(), 2, "nothing for the unknown address");
    for row in rows {
        assert_eq!(row.status, "sent");
        assert!(!row.body.contains("token="), "{}", row.body);
    }
    assert_eq!(smtp.messages().len(), 2);
}

both_engines!(
    invitation_and_reset_emails_carry_a_working_link,
    each_event_sends_one_email_to_the_owner,
    html_part_escapes_the_key_name,
    an_admins_change_is_told_to_the_owner_in_words,
);

/// Two `keygate serve` processes on one PostgreSQL database, started together
/// on a full outbox: every email is sent exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_on_postgres_send_no_duplicates() {
    let smtp = SmtpSink::started().await;
    let app = smtp.app(Engine::Postgres).prepare();
    app.add_owner_and_api("alice@example.com").await;
    const KEYS: usize = 20;
    let mut keys = Vec::new();
    for i in 0..KEYS {
        keys.push(
            app.create_key(KeySpec::reader("alice@example.com", &format!("key-{i}")))
                .await,
        );
    }
    let (_a, _b) = tokio::join!(serve_binary(&app), serve_binary(&app));
    let messages = smtp.wait_for(KEYS, Duration::from_secs(60)).await;
    // Duplicates would come from two real processes' workers on their own
    // timers, each before it marked its email sent (or gave its lease up).
    wait_until_outbox_settled(&app, Duration::from_secs(20)).await;
    let messages = if smtp.messages().len() > messages.len() {
        smtp.messages()
    } else {
        messages
    };
    let mut per_id: HashMap<&str, usize> = HashMap::new();
    for m in &messages {
        *per_id.entry(m.message_id.as_str()).or_default() += 1;
    }
    assert!(per_id.values().all(|&n| n == 1), "duplicates: {per_id:?}");
    assert_eq!(messages.len(), KEYS);
    for key in &keys {
        assert_eq!(
            messages
                .iter()
                .filter(|m| m.text.contains(&key.client_id))
                .count(),
            1
        );
    }
    assert!(
        outbox(&app)
            .iter()
            .all(|r| r.status == "sent" && r.attempts == 1)
    );
}
