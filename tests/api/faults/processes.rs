//! Processes that stop or share a database: SIGTERM under load, kill -9
//! and a restart, two servers on one database.

use super::*;

/// What one request of a load became.
#[derive(Debug, Clone)]
struct Outcome {
    started: Instant,
    ended: Instant,
    /// The status, or the transport error.
    result: Result<u16, String>,
}

/// `tasks` clients asking for tokens as fast as they can until `stop`, or
/// until their own request fails; every outcome is recorded.
fn token_load(
    app: &TestApp,
    url: String,
    key: &Key,
    tasks: usize,
    stop: &Arc<AtomicBool>,
) -> (Arc<Mutex<Vec<Outcome>>>, Vec<tokio::task::JoinHandle<()>>) {
    let outcomes = Arc::new(Mutex::new(Vec::new()));
    let handles = (0..tasks)
        .map(|_| {
            let (http, url, key) = (app.http.clone(), url.clone(), key.clone());
            let (stop, outcomes) = (Arc::clone(stop), Arc::clone(&outcomes));
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let started = Instant::now();
                    // A bound: once the server is gone its port may be
                    // another test's listener that never answers HTTP.
                    let sent = http
                        .post(&url)
                        .basic_auth(&key.client_id, Some(&key.client_secret))
                        .form(&[CC])
                        .timeout(Duration::from_secs(10))
                        .send()
                        .await;
                    let result = match sent {
                        Ok(response) => {
                            let status = response.status().as_u16();
                            // The whole body: a response cut short is a failure.
                            match response.bytes().await {
                                Ok(_) => Ok(status),
                                Err(e) => Err(format!("body: {e}")),
                            }
                        }
                        Err(e) => Err(format!("{e:?}")),
                    };
                    let failed = result.is_err();
                    outcomes.lock().unwrap().push(Outcome {
                        started,
                        ended: Instant::now(),
                        result,
                    });
                    if failed {
                        return;
                    }
                }
            })
        })
        .collect();
    (outcomes, handles)
}

#[derive(QueryableByName, Debug)]
struct Lease {
    #[diesel(sql_type = diesel::sql_types::Text)]
    recipient: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    status: String,
    #[diesel(sql_type = diesel::sql_types::Integer)]
    attempts: i32,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    leased: bool,
}

fn leases(app: &TestApp) -> Vec<Lease> {
    diesel::sql_query(
        "SELECT recipient, status, attempts, locked_until IS NOT NULL AS leased \
         FROM email_outbox ORDER BY next_attempt_at, id",
    )
    .load(&mut app.db())
    .unwrap()
}

/// SIGTERM in the middle of a load of token requests, while the email
/// worker is sending one email (to a recipient the test SMTP server makes
/// wait three seconds) and holds four more under its lease: every request
/// the server had received is answered 200, none gets a 5xx, the email
/// under way is sent, the other four are handed back (their lease cleared,
/// untried), and the process exits 0 well within its shutdown timeout
/// (25 s). A successor then sends the four at once, not a lease later.
async fn sigterm_under_load_finishes_requests_and_hands_back_emails(engine: Engine) {
    let smtp = SmtpSink::started().await;
    let app = smtp.app(engine).prepare();
    app.add_owner_and_api("alice@example.com").await;
    app.add_person("slow@example.com", "member", "a long enough password")
        .await;
    // Queued first, so sent first: the worker holds the rest meanwhile.
    app.create_key(KeySpec::reader("slow@example.com", "slow"))
        .await;
    for name in ["one", "two", "three"] {
        app.create_key(KeySpec::reader("alice@example.com", name))
            .await;
    }
    let load_key = app
        .create_key(KeySpec::reader("alice@example.com", "load"))
        .await;
    let mut serve = Serve::start(&app, &[]).await;
    // Real time: the real worker claims the batch on its own timer.
    wait_until(
        "the worker claimed every email",
        Duration::from_secs(10),
        || {
            let rows = leases(&app);
            rows.len() == 5 && rows.iter().all(|r| r.leased)
        },
    )
    .await;

    let stop = Arc::new(AtomicBool::new(false));
    let (outcomes, tasks) = token_load(&app, serve.url("/oauth/token"), &load_key, 16, &stop);
    wait_until("the load is under way", Duration::from_secs(10), || {
        outcomes.lock().unwrap().len() >= 100
    })
    .await;
    let signalled = Instant::now();
    serve.sigterm();
    let status = serve.exited(Duration::from_secs(25)).await;
    let took = signalled.elapsed();
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await.unwrap();
    }
    let logs = serve.logs();
    assert!(status.success(), "exit {status:?}: {logs}");
    assert!(took < Duration::from_secs(15), "took {took:?} to stop");

    // Every request the server processed was answered, and the answer
    // arrived: as many 200s received as it logged. So a request that
    // failed was never processed (refused, or sent on a keep-alive
    // connection, or into the listener's backlog, just as the server
    // closed it): safe to retry elsewhere.
    let outcomes = outcomes.lock().unwrap().clone();
    let answered = outcomes.iter().filter(|o| o.result == Ok(200)).count();
    let served = logs.matches("\"POST /oauth/token\" 200").count();
    assert_eq!(answered, served, "responses lost: {logs}");
    assert!(
        outcomes
            .iter()
            .any(|o| o.started < signalled && o.ended > signalled && o.result == Ok(200)),
        "no request in flight at SIGTERM was answered"
    );
    for outcome in &outcomes {
        match &outcome.result {
            Ok(200) => {}
            Ok(status) => panic!("a request got {status} while the server stopped"),
            // Refused, reset or closed before any answer: never processed,
            // as the count above shows. An answer cut short would not be.
            Err(error) => assert!(!error.starts_with("body:"), "{error}"),
        }
    }

    let rows = leases(&app);
    assert_eq!(
        (rows[0].recipient.as_str(), rows[0].status.as_str()),
        ("slow@example.com", "sent"),
        "{rows:?}"
    );
    for row in &rows[1..] {
        assert!(
            row.status == "pending" && row.attempts == 0 && !row.leased,
            "not handed back: {rows:?}"
        );
    }
    assert_eq!(smtp.messages().len(), 1);

    let successor = Serve::start(&app, &[]).await;
    smtp.wait_for(5, Duration::from_secs(5)).await;
    drop(successor);
    assert_eq!(smtp.messages().len(), 5);
}

/// Keys created over the API by several clients at once, the server killed
/// (kill -9) in the middle, then restarted: every key whose creation was
/// answered 201 is there and works, no key is half-created (each has its
/// audit event and its email, written in its transaction), and every
/// queued email (the SMTP server down until the restart) is sent once
/// after it.
async fn kill_9_and_restart_loses_nothing(engine: Engine) {
    let mut smtp = SmtpSink::stopped();
    let app = smtp.app(engine).prepare();
    app.add_owner_and_api("alice@example.com").await;
    let admin = admin_key(&app).await;
    let mut serve = Serve::start(&app, &[("RUST_LOG", "warn")]).await;
    let bearer = access_token_at(&app, &serve, &admin).await;

    let created: Arc<Mutex<Vec<Value>>> = Arc::default();
    let tasks: Vec<_> = (0..6)
        .map(|task| {
            let (http, url, bearer) = (app.http.clone(), serve.url("/api/v1/keys"), bearer.clone());
            let created = Arc::clone(&created);
            tokio::spawn(async move {
                for i in 0.. {
                    let body = json!({
                        "name": format!("key-{task}-{i}"),
                        "owner": "alice@example.com",
                        "scopes": ["read"],
                        "audiences": [API],
                    });
                    let Ok(response) = http
                        .post(&url)
                        .bearer_auth(&bearer)
                        .json(&body)
                        .send()
                        .await
                    else {
                        return;
                    };
                    let status = response.status();
                    let Ok(body) = response.json::<Value>().await else {
                        return;
                    };
                    assert_eq!(status, 201, "{body}");
                    created.lock().unwrap().push(body);
                }
            })
        })
        .collect();
    wait_until("keys are being created", Duration::from_secs(20), || {
        created.lock().unwrap().len() >= 8
    })
    .await;
    serve.kill().await;
    for task in tasks {
        task.await.unwrap();
    }
    let created = created.lock().unwrap().clone();

    #[derive(QueryableByName, Debug)]
    struct KeyRow {
        #[diesel(sql_type = diesel::sql_types::Text)]
        client_id: String,
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        audits: i64,
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        emails: i64,
    }
    let rows: Vec<KeyRow> = diesel::sql_query(
        "SELECT k.client_id, \
           (SELECT COUNT(*) FROM audit_events a \
             WHERE a.action = 'key.created' AND a.target = k.client_id) AS audits, \
           (SELECT COUNT(*) FROM email_outbox e \
             WHERE e.key_id = k.id AND e.event = 'created') AS emails \
         FROM api_keys k",
    )
    .load(&mut app.db())
    .unwrap();
    for row in &rows {
        assert_eq!((row.audits, row.emails), (1, 1), "half-created: {row:?}");
    }
    for key in &created {
        let id = key["client_id"].as_str().unwrap();
        assert!(
            rows.iter().any(|r| r.client_id == id),
            "{id} was answered 201 and is gone"
        );
    }

    smtp.start().await;
    let restarted = Serve::start(&app, &[("RUST_LOG", "warn")]).await;
    let last = created.last().unwrap();
    let last = Key {
        client_id: last["client_id"].as_str().unwrap().to_owned(),
        client_secret: last["client_secret"].as_str().unwrap().to_owned(),
        json: last.clone(),
    };
    access_token_at(&app, &restarted, &last).await;
    // Every key's email, the admin's included. An email whose attempt the
    // kill interrupted waits for its lease (15 s) first.
    let messages = smtp.wait_for(rows.len(), Duration::from_secs(40)).await;
    wait_until(
        "every email is marked sent",
        Duration::from_secs(10),
        || outbox(&app).iter().all(|r| r.status == "sent"),
    )
    .await;
    let messages = if smtp.messages().len() > messages.len() {
        smtp.messages()
    } else {
        messages
    };
    for row in &rows {
        let mine = messages
            .iter()
            .filter(|m| m.text.contains(&row.client_id))
            .count();
        assert_eq!(mine, 1, "emails about {}", row.client_id);
    }
    assert_eq!(messages.len(), rows.len());
}

/// Two `keygate serve` processes on one database, started at the same
/// moment (on SQLite, on a file neither has created yet: one migrates, the
/// other waits and finds nothing to do). Both issue tokens signed by the
/// same key, a token revoked through one is inactive at the other, a key
/// revoked through one is refused by the other at its next request, and
/// concurrent writes through both succeed. On PostgreSQL this is the
/// design; on SQLite WAL and the busy timeout make it work on one machine.
async fn two_processes_share_one_database(engine: Engine) {
    let mut app = TestApp::builder(engine).prepare();
    if engine == Engine::Sqlite {
        let fresh = app.dir.path().join("shared.db");
        assert!(!fresh.exists());
        app.vars.insert(
            "KEYGATE_DATABASE_URL".into(),
            format!("sqlite://{}", fresh.display()),
        );
        app.database_url = format!("sqlite://{}", fresh.display());
    }
    // Behind one load balancer, with one public URL.
    app.vars
        .insert("KEYGATE_ISSUER".into(), "http://keygate.test".into());
    let (one, two) = tokio::join!(Serve::start(&app, &[]), Serve::start(&app, &[]));
    let key = app.standard_key("read").await;
    let admin = admin_key(&app).await;

    let from_one = access_token_at(&app, &one, &key).await;
    let from_two = access_token_at(&app, &two, &key).await;
    let kid = |token: &str| jsonwebtoken::decode_header(token).unwrap().kid.unwrap();
    assert_eq!(kid(&from_one), kid(&from_two), "one signing key");

    // Writes through both at once: keys created over each one's API.
    let bearer = access_token_at(&app, &one, &admin).await;
    let creations = (0..12).map(|i| {
        let serve = if i % 2 == 0 { &one } else { &two };
        let (http, url, bearer) = (app.http.clone(), serve.url("/api/v1/keys"), bearer.clone());
        tokio::spawn(async move {
            let body = json!({
                "name": format!("key-{i}"), "owner": "alice@example.com",
                "scopes": ["read"], "audiences": [API],
            });
            http.post(url)
                .bearer_auth(bearer)
                .json(&body)
                .send()
                .await
                .unwrap()
                .status()
        })
    });
    for creation in creations.collect::<Vec<_>>() {
        assert_eq!(creation.await.unwrap(), 201);
    }

    // A token revoked through one is inactive at the other.
    assert_eq!(
        token_post(&app, &one, "revoke", &key, &from_two)
            .await
            .status(),
        200
    );
    let seen: Value = token_post(&app, &two, "introspect", &admin, &from_two)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(seen, json!({"active": false}));
    // A key revoked through one is refused by the other at once.
    let revoked = app
        .http
        .delete(one.url(&format!("/api/v1/keys/{}", key.client_id)))
        .bearer_auth(&bearer)
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);
    crate::helpers::assert_invalid_client(token_at(&app, &two, &key).await).await;

    for serve in [one, two] {
        let logs = serve.stop(Duration::from_secs(30)).await;
        assert!(loud_lines(&logs).is_empty(), "{logs}");
    }
}

both_engines!(
    sigterm_under_load_finishes_requests_and_hands_back_emails,
    kill_9_and_restart_loses_nothing,
    two_processes_share_one_database,
);
