//! Emails to key owners, received by a real SMTP server (aiosmtpd) or read
//! from the `.eml` folder: one per event, well formed, never a secret; the
//! outbox survives an SMTP outage and a killed server, gives up on a
//! permanent rejection, and several servers never send one twice.

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

/// A worker that claimed an email and died (kill -9) leaves it leased; with
/// the production tuning the lease ends within seconds, and the next round
/// (a restarted server's) sends it.
async fn a_dead_workers_lease_ends_within_seconds(engine: Engine) {
    let smtp = SmtpSink::started().await;
    let app = smtp.app(engine).jobs_on_demand().start().await;
    app.add_owner_and_api("alice@example.com").await;
    let key = app
        .create_key(KeySpec::reader("alice@example.com", "ci"))
        .await;
    let lease = MailTuning::default().lease;
    assert!(lease <= Duration::from_secs(30), "{lease:?}");
    let now = app.clock.now();
    let until = now + chrono::Duration::from_std(lease).unwrap();
    let claimed = keygate::mail::outbox::claim_due(&mut app.db(), now, until, 20).unwrap();
    assert_eq!(claimed.len(), 1);

    // Still leased: nobody sends it meanwhile.
    assert_eq!(app.run_job(Job::MailDelivery).await, 0);
    assert!(outbox(&app)[0].leased);
    // One lease later, it goes out.
    app.advance_clock(chrono::Duration::from_std(lease).unwrap() + chrono::Duration::seconds(1));
    assert_eq!(app.run_job(Job::MailDelivery).await, 1);
    let messages = smtp.wait_for(1, Duration::from_secs(20)).await;
    one_with(&messages, "created").assert_well_formed("alice@example.com", &key);
    let rows = outbox(&app);
    assert_eq!(
        (rows[0].status.as_str(), rows[0].attempts, rows[0].leased),
        ("sent", 1, false)
    );
}

/// A send that outlasts the lease keeps it: the worker renews it while the
/// server takes its time, so a second server looking meanwhile finds nothing
/// to take over, and the owner gets one message.
async fn a_slow_send_keeps_its_lease(engine: Engine) {
    let smtp = SmtpSink::started().await;
    let app = smtp
        .app(engine)
        .config(|config| {
            fast_mail(config);
            config.mail_tuning.lease = Duration::from_millis(1500);
        })
        .jobs_on_demand()
        .start()
        .await;
    app.spawn_sibling().await;
    // The test server answers "slow..." recipients after three seconds.
    app.add_owner_and_api("slow@example.com").await;
    app.create_key(KeySpec::reader("slow@example.com", "ci"))
        .await;
    let first = app.jobs_of(0);
    let sending = tokio::spawn(async move { first.run_once(Job::MailDelivery).await });
    // Past the lease as claimed, mid-send: the lease was renewed (every third
    // of it, by the real time), and the clock is moved past its first end.
    let claimed = wait_for_lease(&app, None).await;
    wait_for_lease(&app, Some(claimed)).await;
    app.advance_clock(claimed.and_utc() - app.clock.now() + chrono::Duration::milliseconds(1));
    let second = app.jobs_of(1).run_once(Job::MailDelivery).await.unwrap();
    assert_eq!(second, 0, "the second server took over a renewed lease");
    assert_eq!(sending.await.unwrap().unwrap(), 1);
    smtp.wait_for(1, Duration::from_secs(20)).await;
    app.run_job_everywhere(Job::MailDelivery).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(smtp.messages().len(), 1);
    let rows = outbox(&app);
    assert_eq!((rows[0].status.as_str(), rows[0].attempts), ("sent", 1));
}

/// Real time: waits until the only email is leased (`after` is `None`), or
/// its lease renewed to end at least a third of a 1.5 s lease after `after`;
/// returns its end.
async fn wait_for_lease(
    app: &TestApp,
    after: Option<chrono::NaiveDateTime>,
) -> chrono::NaiveDateTime {
    use diesel::prelude::*;
    use keygate::db::schema::email_outbox;
    let mut lease = None;
    wait_until(
        "the lease is taken or renewed",
        Duration::from_secs(10),
        || {
            lease = email_outbox::table
                .select(email_outbox::locked_until)
                .first::<Option<chrono::NaiveDateTime>>(&mut app.db())
                .unwrap()
                .filter(|until| {
                    after.is_none_or(|after| *until > after + chrono::Duration::milliseconds(400))
                });
            lease.is_some()
        },
    )
    .await;
    lease.unwrap()
}

/// The SMTP server is down when the key is created; once it is back, the
/// email arrives, once.
async fn email_survives_an_smtp_outage(engine: Engine) {
    let mut smtp = SmtpSink::stopped();
    let app = smtp.app_on_demand(engine).start().await;
    app.add_owner_and_api("alice@example.com").await;
    let key = app
        .create_key(KeySpec::reader("alice@example.com", "ci"))
        .await;

    // Each retry waits out its backoff (at most a minute with this tuning).
    assert_eq!(app.run_job(Job::MailDelivery).await, 1);
    app.advance_clock(chrono::Duration::minutes(1));
    assert_eq!(app.run_job(Job::MailDelivery).await, 1);
    assert!(
        outbox(&app)
            .first()
            .is_some_and(|r| r.attempts >= 2 && r.status == "pending" && r.last_error.is_some()),
        "two attempts failed"
    );
    let text = metrics(&app).await;
    assert!(text.contains("keygate_email_outbox_pending 1"), "{text}");
    assert!(
        text.contains("keygate_email_send_failures_total{kind=\"transient\"}"),
        "{text}"
    );

    smtp.start().await;
    app.advance_clock(chrono::Duration::minutes(1));
    app.run_job(Job::MailDelivery).await;
    let messages = smtp.wait_for(1, Duration::from_secs(20)).await;
    one_with(&messages, "created").assert_well_formed("alice@example.com", &key);
    app.advance_clock(chrono::Duration::hours(1));
    assert_eq!(app.run_job(Job::MailDelivery).await, 0, "sent again");
    assert_eq!(smtp.messages().len(), 1);
    let rows = outbox(&app);
    assert_eq!(rows[0].status, "sent");
}

/// `keygate serve` is killed (SIGKILL) while emails wait for a mail server
/// that is down; restarted with the server up, each arrives exactly once.
async fn killed_server_loses_no_email(engine: Engine) {
    let mut smtp = SmtpSink::stopped();
    let app = smtp.app(engine).prepare();
    app.add_owner_and_api("alice@example.com").await;
    let mut server = serve_binary(&app).await;
    let mut keys = Vec::new();
    for name in ["one", "two", "three"] {
        keys.push(
            app.create_key(KeySpec::reader("alice@example.com", name))
                .await,
        );
    }
    // Killed between attempts, not in the middle of one: an email whose
    // lease the dead process held would only be taken over when it ends.
    // Real time: a real process retries on its own timers.
    wait_until("every email was tried", Duration::from_secs(20), || {
        let rows = outbox(&app);
        rows.len() == 3
            && rows
                .iter()
                .all(|r| r.attempts >= 1 && r.status == "pending" && !r.leased)
    })
    .await;
    server.kill().await;

    smtp.start().await;
    let _server = serve_binary(&app).await;
    let messages = smtp.wait_for(3, Duration::from_secs(60)).await;
    // A duplicate would come from the restarted process's own worker, on its
    // own timer, before it marked the email sent.
    wait_until_outbox_settled(&app, Duration::from_secs(20)).await;
    let messages = if smtp.messages().len() > messages.len() {
        smtp.messages()
    } else {
        messages
    };
    assert_eq!(messages.len(), 3, "duplicates after the restart");
    for key in &keys {
        let mine: Vec<_> = messages
            .iter()
            .filter(|m| m.text.contains(&key.client_id))
            .collect();
        assert_eq!(mine.len(), 1);
        mine[0].assert_well_formed("alice@example.com", key);
    }
}

/// A recipient the server refuses for good (550) is tried once, marked
/// failed with the server's answer, and counted; other mail still flows.
async fn permanent_rejection_is_not_retried(engine: Engine) {
    let smtp = SmtpSink::started().await;
    let app = smtp.app_on_demand(engine).start().await;
    app.add_owner_and_api("alice@example.com").await;
    app.add_person("reject@example.com", "member", "a long enough password")
        .await;
    app.create_key(KeySpec::reader("reject@example.com", "doomed"))
        .await;
    let fine = app
        .create_key(KeySpec::reader("alice@example.com", "fine"))
        .await;

    app.run_job(Job::MailDelivery).await;
    assert!(
        outbox(&app)
            .iter()
            .any(|r| r.recipient == "reject@example.com" && r.status == "failed"),
        "the rejected email failed"
    );
    let messages = smtp.wait_for(1, Duration::from_secs(20)).await;
    one_with(&messages, "created").assert_well_formed("alice@example.com", &fine);

    // Past any backoff: nothing is tried again.
    app.advance_clock(chrono::Duration::hours(1));
    assert_eq!(app.run_job(Job::MailDelivery).await, 0, "tried again");
    let rows = outbox(&app);
    let rejected = rows
        .iter()
        .find(|r| r.recipient == "reject@example.com")
        .unwrap();
    assert_eq!(rejected.status, "failed");
    assert_eq!(rejected.attempts, 1, "retried after a permanent rejection");
    let error = rejected.last_error.as_deref().unwrap();
    assert!(error.contains("550"), "{error}");
    assert_eq!(smtp.messages().len(), 1);
    let text = metrics(&app).await;
    assert!(
        text.contains("keygate_email_send_failures_total{kind=\"permanent\"} 1"),
        "{text}"
    );
    assert!(text.contains("keygate_email_outbox_pending 0"), "{text}");
}

/// A key gets "expires soon" when it enters the warning window and
/// "expired" at expiry, once each, with two servers sweeping and sending at
/// the same moments.
async fn expiry_emails_arrive_once_each(engine: Engine) {
    let smtp = SmtpSink::started().await;
    let app = smtp
        .app_on_demand(engine)
        .vars(&[("KEYGATE_EXPIRY_WARNING", "10m")])
        .start()
        .await;
    app.spawn_sibling().await;
    app.add_owner_and_api("alice@example.com").await;
    let key = app
        .create_key(KeySpec::reader("alice@example.com", "brief").expires_in("1h"))
        .await;

    sweep_and_deliver(&app).await;
    let messages = smtp.wait_for(1, Duration::from_secs(20)).await;
    one_with(&messages, "created");
    assert!(
        !messages.iter().any(|m| m.subject.contains("expires soon")),
        "warned before the window"
    );
    // Into the window, past the expiry, then long after: each step sweeps
    // and sends on both servers.
    for minutes in [55, 10, 60] {
        app.advance_clock(chrono::Duration::minutes(minutes));
        sweep_and_deliver(&app).await;
    }
    let messages = smtp.messages();
    assert_eq!(
        messages.len(),
        3,
        "{:?}",
        messages.iter().map(|m| &m.subject).collect::<Vec<_>>()
    );
    for word in ["created", "expires soon", "expired"] {
        one_with(&messages, word).assert_well_formed("alice@example.com", &key);
    }
}

/// Without an SMTP URL each email is an `.eml` file in KEYGATE_MAIL_DIR.
async fn without_smtp_emails_are_eml_files(engine: Engine) {
    let app = TestApp::builder(engine)
        .config(fast_mail)
        .jobs_on_demand()
        .start()
        .await;
    app.add_owner_and_api("alice@example.com").await;
    let key = app
        .create_key(KeySpec::reader("alice@example.com", "ci"))
        .await;
    let dir = app.dir.path().join("mail");
    let read = || -> Vec<Received> {
        std::fs::read_dir(&dir)
            .map(|entries| {
                entries
                    .map(|e| e.unwrap().path())
                    .filter(|p| p.extension().is_some_and(|x| x == "eml"))
                    .map(|p| Received::parse(&std::fs::read(p).unwrap()))
                    .collect()
            })
            .unwrap_or_default()
    };
    // A change that fails queues nothing: the email shares its transaction.
    let refused = app
        .cli(&[
            "keys",
            "create",
            "--owner",
            "alice@example.com",
            "--name",
            "bad",
            "--scope",
            "nope",
        ])
        .await;
    assert!(!refused.status.success());
    app.run_job(Job::MailDelivery).await;
    let messages = wait_for_messages(read, 1, Duration::from_secs(20)).await;
    assert_eq!(messages.len(), 1);
    assert_eq!(outbox(&app).len(), 1);
    one_with(&messages, "created").assert_well_formed("alice@example.com", &key);
}

/// `keygate mail test` sends at once, and reports the server's exact refusal.
async fn mail_test_reports_success_or_the_smtp_error(engine: Engine) {
    let mut smtp = SmtpSink::started().await;
    let app = smtp.app(engine).prepare();
    let out = app.cli_ok(&["mail", "test", "ops@example.com"]).await;
    assert!(
        out.stdout
            .contains("sent a test message to ops@example.com"),
        "{}",
        out.stdout
    );
    let messages = smtp.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(messages[0].to, "ops@example.com");
    assert_eq!(messages[0].parts, ["text/plain", "text/html"]);

    let out = app.cli(&["mail", "test", "reject@example.com"]).await;
    assert!(!out.status.success());
    assert_eq!(out.stderr.trim().lines().count(), 1, "{}", out.stderr);
    assert!(out.stderr.contains("550"), "{}", out.stderr);
    assert!(
        out.stderr.contains("recipient rejected by the test server"),
        "{}",
        out.stderr
    );

    // smtp:// without ?tls=none requires STARTTLS, which this server lacks.
    let mut strict = TestApp::builder(engine).prepare();
    let url = smtp.url().replace("?tls=none", "");
    strict.vars.insert("KEYGATE_SMTP_URL".into(), url);
    let out = strict.cli(&["mail", "test", "ops@example.com"]).await;
    assert!(
        !out.status.success(),
        "sent without STARTTLS: {}",
        out.stdout
    );
    assert_eq!(out.stderr.trim().lines().count(), 1, "{}", out.stderr);
    assert_eq!(smtp.messages().len(), 1);

    smtp.stop();
    let out = app.cli(&["mail", "test", "ops@example.com"]).await;
    assert!(!out.status.success());
    assert_eq!(out.stderr.trim().lines().count(), 1, "{}", out.stderr);
    assert!(
        out.stderr.to_lowercase().contains("connect"),
        "{}",
        out.stderr
    );
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
    a_dead_workers_lease_ends_within_seconds,
    a_slow_send_keeps_its_lease,
    email_survives_an_smtp_outage,
    killed_server_loses_no_email,
    permanent_rejection_is_not_retried,
    expiry_emails_arrive_once_each,
    without_smtp_emails_are_eml_files,
    mail_test_reports_success_or_the_smtp_error,
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
