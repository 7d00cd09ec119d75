//! Faults, on the real `keygate serve` binary and each engine: the database
//! goes away while it serves and comes back; SIGTERM in the middle of a
//! load; kill -9 and a restart; two processes on one database.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use diesel::prelude::*;
use serde_json::{Value, json};

use crate::both_engines;
use crate::helpers::mail::{SmtpSink, outbox, wait_until};
use crate::helpers::proxy::TcpProxy;
use crate::helpers::serve::Serve;
use crate::helpers::{Engine, Key, KeySpec, TestApp, postgres_admin_url};

const CC: (&str, &str) = ("grant_type", "client_credentials");
const API: &str = "https://api.example.com";

/// How long an answer may take while the database is unreachable: the
/// checkout timeout (1 s) and a margin for a loaded test machine.
const PROMPTLY: Duration = Duration::from_secs(2);

// ------------------------------------------------------------------ helpers

/// An admin `root@example.com` and a key of theirs for keygate's own API.
async fn admin_key(app: &TestApp) -> Key {
    app.add_person("root@example.com", "admin", "a long enough password")
        .await;
    app.create_key(
        KeySpec::new("root@example.com", "admin").scopes("keygate:admin keygate:introspect"),
    )
    .await
}

async fn token_at(app: &TestApp, serve: &Serve, key: &Key) -> reqwest::Response {
    app.http
        .post(serve.url("/oauth/token"))
        .basic_auth(&key.client_id, Some(&key.client_secret))
        .form(&[CC])
        .send()
        .await
        .unwrap()
}

async fn access_token_at(app: &TestApp, serve: &Serve, key: &Key) -> String {
    let response = token_at(app, serve, key).await;
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    body["access_token"].as_str().unwrap().to_owned()
}

/// `POST /oauth/{endpoint}` with `token=...` as `caller`.
async fn token_post(
    app: &TestApp,
    serve: &Serve,
    endpoint: &str,
    caller: &Key,
    token: &str,
) -> reqwest::Response {
    app.http
        .post(serve.url(&format!("/oauth/{endpoint}")))
        .basic_auth(&caller.client_id, Some(&caller.client_secret))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap()
}

async fn get(app: &TestApp, serve: &Serve, path: &str, bearer: Option<&str>) -> reqwest::Response {
    let mut request = app.http.get(serve.url(path));
    if let Some(bearer) = bearer {
        request = request.bearer_auth(bearer);
    }
    request.send().await.unwrap()
}

/// Runs `request`, insisting it answers within [`PROMPTLY`].
async fn promptly<F: Future<Output = reqwest::Response>>(
    what: &str,
    request: F,
) -> reqwest::Response {
    let started = Instant::now();
    let response = request.await;
    let took = started.elapsed();
    assert!(
        took < PROMPTLY,
        "{what} took {took:?} with the database down"
    );
    response
}

/// An RFC 6749 `temporarily_unavailable`: 503, `no-store`, `Retry-After`, and
/// nothing of the cause in the body.
async fn assert_temporarily_unavailable(response: reqwest::Response) {
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let retry: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body, json!({"error": "temporarily_unavailable"}));
}

/// Log lines at WARN or ERROR.
fn loud_lines(logs: &str) -> Vec<&str> {
    logs.lines()
        .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
        .collect()
}

/// What "the database stops" is on each engine, and its return.
enum Outage {
    /// PostgreSQL behind a proxy that is cut: connections closed, the port
    /// refusing new ones, as a stopped server does.
    Proxy(TcpProxy),
    /// The directory holding the SQLite file moved away from its path and
    /// back.
    MovedAway { dir: PathBuf, away: PathBuf },
}

impl Outage {
    /// Points `app` (its servers and its CLI) at a database that can be
    /// made to go away.
    async fn prepare(app: &mut TestApp) -> Self {
        match app.engine {
            Engine::Postgres => {
                let admin = url::Url::parse(&postgres_admin_url()).unwrap();
                let target = (admin.host_str().unwrap(), admin.port().unwrap_or(5432));
                let target = tokio::net::lookup_host(target)
                    .await
                    .unwrap()
                    .next()
                    .unwrap();
                let proxy = TcpProxy::start(target).await;
                let through = proxy.url_to(&app.database_url);
                app.vars.insert("KEYGATE_DATABASE_URL".into(), through);
                Self::Proxy(proxy)
            }
            Engine::Sqlite => {
                let dir = app.dir.path().to_owned();
                let mut away = dir.clone().into_os_string();
                away.push("-away");
                Self::MovedAway {
                    dir,
                    away: away.into(),
                }
            }
        }
    }

    async fn begin(&self) {
        match self {
            Self::Proxy(proxy) => proxy.cut().await,
            Self::MovedAway { dir, away } => std::fs::rename(dir, away).unwrap(),
        }
    }

    async fn end(&self) {
        match self {
            Self::Proxy(proxy) => proxy.restore().await,
            Self::MovedAway { dir, away } => std::fs::rename(away, dir).unwrap(),
        }
    }
}

// ------------------------------------------------------------------ tests

/// The database stops while keygate serves, then comes back. Meanwhile
/// every request that needs it answers 503 within two seconds, never hangs
/// and never says why: the OAuth endpoints RFC 6749's
/// `temporarily_unavailable` with `Retry-After` and `no-store`, the
/// management API its JSON error, `/readyz` not ready, while `/healthz`
/// says the process lives. The logs say so once, at ERROR, however many
/// requests are refused, and name no password or secret. When the
/// database returns the next requests succeed, with no restart.
///
/// PostgreSQL "stops" behind a TCP proxy that is cut: its connections are
/// closed and its port refuses new ones, which is what keygate sees of a
/// PostgreSQL that is shut down or crashes, without stopping the cluster
/// the other tests share; the login through it still asks for a password.
///
/// SQLite has no server to stop; its equivalent is the storage under the
/// file going away: the directory holding it is moved off its path and
/// back, as a volume lazily unmounted (or detached from a container) and
/// mounted again looks to a process holding the file open. Nothing can be
/// read or written at the path meanwhile, and the same file returns. (A
/// permission change would not do: the tests run as root. Another process
/// holding the write lock leaves reads working, so it is no outage; that a
/// lock past the busy timeout is a 503 and not a 500 is a unit test of
/// `StoreError`.)
async fn an_unreachable_database_is_a_prompt_503_until_it_returns(engine: Engine) {
    let mut app = TestApp::builder(engine).prepare();
    let outage = Outage::prepare(&mut app).await;
    let key = app.standard_key("read").await;
    let admin = admin_key(&app).await;
    let serve = Serve::start(&app, &[]).await;
    let bearer = access_token_at(&app, &serve, &admin).await;
    let token = access_token_at(&app, &serve, &key).await;

    outage.begin().await;
    assert_temporarily_unavailable(promptly("a token", token_at(&app, &serve, &key)).await).await;
    for endpoint in ["introspect", "revoke"] {
        let response = promptly(endpoint, token_post(&app, &serve, endpoint, &admin, &token)).await;
        assert_temporarily_unavailable(response).await;
    }
    let api = promptly("the API", get(&app, &serve, "/api/v1/keys", Some(&bearer))).await;
    assert_eq!(api.status(), 503);
    assert_eq!(api.headers()["cache-control"], "no-store");
    assert!(api.headers().contains_key("retry-after"));
    let body: Value = api.json().await.unwrap();
    assert_eq!(body["error"], "database_unavailable", "{body}");
    assert!(body["message"].is_string(), "{body}");
    // The console says so in a page, with its security headers.
    let console = promptly(
        "the console",
        get(&app, &serve, "/set-password?token=x", None),
    )
    .await;
    assert_eq!(console.status(), 503);
    assert!(console.headers().contains_key("content-security-policy"));
    let page = console.text().await.unwrap();
    assert!(page.contains("briefly unavailable"), "{page}");
    let ready = promptly("/readyz", get(&app, &serve, "/readyz", None)).await;
    assert_eq!(ready.status(), 503);
    assert_eq!(get(&app, &serve, "/healthz", None).await.status(), 200);

    // A client retrying hard: each refused as promptly, and the log does
    // not grow with them.
    let started = Instant::now();
    let requests = (0..40).map(|_| {
        let (http, url, key) = (app.http.clone(), serve.url("/oauth/token"), key.clone());
        tokio::spawn(async move {
            http.post(url)
                .basic_auth(&key.client_id, Some(&key.client_secret))
                .form(&[CC])
                .send()
                .await
                .unwrap()
                .status()
        })
    });
    for request in requests.collect::<Vec<_>>() {
        assert_eq!(request.await.unwrap(), 503);
    }
    assert!(
        started.elapsed() < PROMPTLY,
        "40 requests took {:?}",
        started.elapsed()
    );

    outage.end().await;
    let back = Instant::now();
    loop {
        let status = token_at(&app, &serve, &key).await.status();
        if status == 200 {
            break;
        }
        assert_eq!(status, 503);
        assert!(
            back.elapsed() < Duration::from_secs(5),
            "still refused {:?} after the database returned",
            back.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for _ in 0..5 {
        assert_eq!(token_at(&app, &serve, &key).await.status(), 200);
    }
    assert_eq!(get(&app, &serve, "/readyz", None).await.status(), 200);
    let api = get(&app, &serve, "/api/v1/keys", Some(&bearer)).await;
    assert_eq!(api.status(), 200);
    let revoked = token_post(&app, &serve, "revoke", &key, &token).await;
    assert_eq!(revoked.status(), 200);

    let logs = serve.stop(Duration::from_secs(30)).await;
    let loud = loud_lines(&logs);
    let unreachable: Vec<_> = loud
        .iter()
        .filter(|l| l.contains(" ERROR ") && l.contains("database unreachable"))
        .collect();
    assert_eq!(unreachable.len(), 1, "{logs}");
    assert!(loud.len() <= 2, "the outage flooded the log: {loud:#?}");
    assert!(
        logs.lines().any(|l| l.contains("database reachable again")),
        "{logs}"
    );
    let mut secrets = vec![app.secret_key.clone(), key.client_secret.clone()];
    if let Some(password) = url::Url::parse(&app.database_url)
        .unwrap()
        .password()
        .filter(|_| engine == Engine::Postgres)
    {
        secrets.push(password.to_owned());
    }
    for secret in secrets {
        assert!(
            !logs.contains(&secret),
            "a secret or password is in the log"
        );
    }
}

/// PostgreSQL goes away and is back between two requests (a restart, a
/// failover, a proxy that dropped its connections): keygate's pooled
/// connections are dead, and it does not ping one used moments ago before
/// handing it out. The next token request on the warm path still gets its
/// token: the read meets the dead connection, which is dropped, and runs
/// again on a new one; the requests after it find no dead connection left,
/// and nothing is logged as an outage.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_restart_between_two_requests_costs_no_client_an_error() {
    let mut app = TestApp::builder(Engine::Postgres).prepare();
    let outage = Outage::prepare(&mut app).await;
    let key = app.standard_key("read").await;
    let admin = admin_key(&app).await;
    let serve = Serve::start(&app, &[("RUST_LOG", "info,keygate::db=debug")]).await;
    let token = access_token_at(&app, &serve, &key).await;
    access_token_at(&app, &serve, &admin).await;
    for _ in 0..3 {
        assert_eq!(token_at(&app, &serve, &key).await.status(), 200);
    }

    outage.begin().await;
    outage.end().await;
    let response = promptly("a token", token_at(&app, &serve, &key)).await;
    assert_eq!(response.status(), 200, "{:?}", response.text().await);
    let introspected = token_post(&app, &serve, "introspect", &admin, &token).await;
    assert_eq!(introspected.status(), 200);
    for _ in 0..5 {
        assert_eq!(token_at(&app, &serve, &key).await.status(), 200);
    }

    let logs = serve.stop(Duration::from_secs(30)).await;
    // The dead connection was met, not skipped by luck.
    assert!(logs.contains("found closed; reading again"), "{logs}");
    assert!(loud_lines(&logs).is_empty(), "{logs}");
}

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
    an_unreachable_database_is_a_prompt_503_until_it_returns,
    sigterm_under_load_finishes_requests_and_hands_back_emails,
    kill_9_and_restart_loses_nothing,
    two_processes_share_one_database,
);
