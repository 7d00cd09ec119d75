//! Faults, on the real `keygate serve` binary and each engine: the database
//! goes away while it serves and comes back; SIGTERM in the middle of a
//! load; kill -9 and a restart; two processes on one database.

mod processes;

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
    /// back; the emails go to a directory of their own, which stays.
    MovedAway {
        dir: PathBuf,
        away: PathBuf,
        _mail: tempfile::TempDir,
    },
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
                // Not in the directory that goes away: writing an email
                // needs no database, and the mail worker, finishing a send
                // begun before the outage, would make the directory's path
                // again (`<dir>/mail`), so that it could not come back.
                let mail = tempfile::tempdir().unwrap();
                app.vars.insert(
                    "KEYGATE_MAIL_DIR".into(),
                    mail.path().join("mail").display().to_string(),
                );
                Self::MovedAway {
                    dir,
                    away: away.into(),
                    _mail: mail,
                }
            }
        }
    }

    async fn begin(&self) {
        match self {
            Self::Proxy(proxy) => proxy.cut().await,
            Self::MovedAway { dir, away, .. } => std::fs::rename(dir, away).unwrap(),
        }
    }

    async fn end(&self) {
        match self {
            Self::Proxy(proxy) => proxy.restore().await,
            Self::MovedAway { dir, away, .. } => std::fs::rename(away, dir).unwrap(),
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
    let last_use = std::time::Instant::now();

    outage.begin().await;
    outage.end().await;
    // A connection used less than `PING_AFTER_IDLE` (500 ms) ago is handed
    // out unpinged, so the read meets it dead; on a machine so loaded that
    // the outage took longer, the checkout pings it instead (the other way
    // a dead connection is dropped), and only "no client error" is checked.
    let unpinged = last_use.elapsed() < Duration::from_millis(250);
    let response = promptly("a token", token_at(&app, &serve, &key)).await;
    assert_eq!(response.status(), 200, "{:?}", response.text().await);
    let introspected = token_post(&app, &serve, "introspect", &admin, &token).await;
    assert_eq!(introspected.status(), 200);
    for _ in 0..5 {
        assert_eq!(token_at(&app, &serve, &key).await.status(), 200);
    }

    let logs = serve.stop(Duration::from_secs(30)).await;
    // The dead connection was met, not skipped by luck.
    if unpinged {
        assert!(logs.contains("found closed; reading again"), "{logs}");
    }
    assert!(loud_lines(&logs).is_empty(), "{logs}");
}

both_engines!(an_unreachable_database_is_a_prompt_503_until_it_returns,);
