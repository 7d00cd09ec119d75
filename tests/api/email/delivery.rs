//! How emails travel: leases held and given up, an SMTP outage, a killed
//! server, a permanent rejection, expiry emails once each, `.eml` files
//! without SMTP, and `keygate mail test`.

use super::*;

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

both_engines!(
    a_dead_workers_lease_ends_within_seconds,
    a_slow_send_keeps_its_lease,
    email_survives_an_smtp_outage,
    killed_server_loses_no_email,
    permanent_rejection_is_not_retried,
    expiry_emails_arrive_once_each,
    without_smtp_emails_are_eml_files,
    mail_test_reports_success_or_the_smtp_error,
);
