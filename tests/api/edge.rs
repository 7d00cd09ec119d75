//! The edge of the server: stalled bodies are cut off while others are
//! served, unreadable bodies are answered in each surface's JSON, and the
//! headers every OAuth and management answer carries.

use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::both_engines;
use crate::helpers::{Engine, KeySpec, TestApp};

const DEADLINE: Duration = Duration::from_secs(2);
const STALLED: usize = 1000;
const OAUTH_PATHS: [&str; 3] = ["/oauth/token", "/oauth/introspect", "/oauth/revoke"];

/// The body deadline while a thousand stalled connections are held: long
/// enough that a commit waiting on a busy disk, with three other tests
/// running, does not pass for those connections delaying others.
const HELD_DEADLINE: Duration = Duration::from_secs(5);

/// A server whose bodies must arrive within [`DEADLINE`].
async fn app_with_deadline(engine: Engine) -> TestApp {
    app_with_body_deadline(engine, DEADLINE).await
}

async fn app_with_body_deadline(engine: Engine, deadline: Duration) -> TestApp {
    TestApp::builder(engine)
        .config(move |config| config.http_tuning.body_read_timeout = deadline)
        .jobs_on_demand()
        .start()
        .await
}

fn host(app: &TestApp) -> String {
    app.address.trim_start_matches("http://").to_owned()
}

/// A connection that sent `head` and the start of its body, then stalls.
async fn stall(host: &str, head: &str) -> TcpStream {
    let mut stream = TcpStream::connect(host).await.expect("connect");
    stream
        .write_all(format!("{head}\r\n\r\ngrant_type=").as_bytes())
        .await
        .expect("send the head");
    stream
}

/// Everything the server sends until it closes the connection.
async fn until_closed(stream: &mut TcpStream, within: Duration) -> Vec<u8> {
    let mut received = Vec::new();
    tokio::time::timeout(within, stream.read_to_end(&mut received))
        .await
        .expect("the server closes the connection in time")
        .expect("read");
    received
}

/// The first response of raw bytes: status, lowercased headers, body.
struct Raw {
    status: u16,
    headers: Vec<(String, String)>,
    body: Value,
}

impl Raw {
    fn parse(bytes: &[u8]) -> Self {
        let text = String::from_utf8_lossy(bytes);
        let (head, rest) = text.split_once("\r\n\r\n").expect("a response head");
        let mut lines = head.lines();
        let status = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|s| s.parse().ok())
            .expect("a status line");
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        let length: usize = headers
            .iter()
            .find(|(k, _)| k == "content-length")
            .and_then(|(_, v)| v.parse().ok())
            .expect("content-length");
        let body = serde_json::from_str(&rest[..length]).expect("a JSON body");
        Self {
            status,
            headers,
            body,
        }
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// An RFC 6749 error with the OAuth endpoints' headers.
    fn assert_oauth(&self, status: u16, what: &str) {
        assert_eq!(self.status, status, "{what}: {:?}", self.body);
        assert_eq!(self.body["error"], "invalid_request", "{what}");
        assert!(self.body["error_description"].is_string(), "{what}");
        assert_eq!(self.header("content-type"), Some("application/json"));
        assert_eq!(self.header("cache-control"), Some("no-store"), "{what}");
        assert_eq!(self.header("x-content-type-options"), Some("nosniff"));
    }
}

fn stalled_head(path: &str, host: &str) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000"
    )
}

async fn stalled_bodies_are_cut_off_while_others_are_served(engine: Engine) {
    let app = app_with_body_deadline(engine, HELD_DEADLINE).await;
    let key = app.standard_key("read").await;
    let host = host(&app);
    // The key's secret is verified (argon2, a CPU-bound tenth of a second or
    // more on a busy machine) before the clock starts: what is measured
    // below is whether the held connections delay others, not argon2.
    assert!(app.access_token(&key).await["access_token"].is_string());

    let started = Instant::now();
    let mut stalled = Vec::with_capacity(STALLED);
    for i in 0..STALLED {
        let path = OAUTH_PATHS[i % OAUTH_PATHS.len()];
        stalled.push(stall(&host, &stalled_head(path, &host)).await);
    }
    // A body its handler never reads (no credentials, no route) is cut too.
    let unread = [
        stall(&host, &format!("POST /api/v1/keys HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: 1000")).await,
        stall(&host, &format!("GET /healthz HTTP/1.1\r\nHost: {host}\r\nContent-Length: 1000")).await,
    ];

    // With every stalled connection held, others are served at once.
    let token = app.access_token(&key).await;
    assert!(token["access_token"].is_string());
    let health = app
        .http
        .get(format!("{}/healthz", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    assert!(
        started.elapsed() < HELD_DEADLINE,
        "served only after the stalled ones were cut: {:?}",
        started.elapsed()
    );

    // Every stalled one is answered 408 and closed by its deadline.
    let within = HELD_DEADLINE + Duration::from_secs(3);
    let mut waits = tokio::task::JoinSet::new();
    for mut stream in stalled {
        waits.spawn(async move { until_closed(&mut stream, within).await });
    }
    while let Some(received) = waits.join_next().await {
        Raw::parse(&received.unwrap()).assert_oauth(408, "a stalled body");
    }
    for mut stream in unread {
        let received = until_closed(&mut stream, within).await;
        assert!(received.starts_with(b"HTTP/1.1 "), "{received:?}");
    }
    assert!(started.elapsed() < within + HELD_DEADLINE);
}

/// One raw request on its own connection, answered and closed.
async fn raw_request(app: &TestApp, request: String) -> Raw {
    let mut stream = TcpStream::connect(host(app)).await.expect("connect");
    stream.write_all(request.as_bytes()).await.expect("send");
    Raw::parse(&until_closed(&mut stream, DEADLINE * 3).await)
}

async fn unreadable_oauth_bodies_are_rfc6749_json(engine: Engine) {
    let app = app_with_deadline(engine).await;
    let host = host(&app);
    let oversized = "a".repeat(65 * 1024);
    // The stalled bodies first, each waiting out its deadline meanwhile.
    let mut stalled = Vec::new();
    for path in OAUTH_PATHS {
        let started = Instant::now();
        stalled.push((started, stall(&host, &stalled_head(path, &host)).await));
    }
    for path in OAUTH_PATHS {
        let too_large = raw_request(
            &app,
            format!(
                "POST {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\
                 Content-Type: application/x-www-form-urlencoded\r\n\
                 Content-Length: {}\r\n\r\n{oversized}",
                oversized.len()
            ),
        )
        .await;
        too_large.assert_oauth(413, "an oversized body");

        let bad_chunk = raw_request(
            &app,
            format!(
                "POST {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\
                 Content-Type: application/x-www-form-urlencoded\r\n\
                 Transfer-Encoding: chunked\r\n\r\nzz\r\nnot a chunk\r\n"
            ),
        )
        .await;
        bad_chunk.assert_oauth(400, "a bad chunked body");
    }
    for (started, mut slow) in stalled {
        let timed_out = Raw::parse(&until_closed(&mut slow, DEADLINE * 3).await);
        timed_out.assert_oauth(408, "a body read timeout");
        assert!(started.elapsed() >= DEADLINE);
    }
}

async fn management_answers_are_never_cached_or_sniffed(engine: Engine) {
    let app = app_with_deadline(engine).await;
    let host = host(&app);
    let admin = admin_token(&app).await;
    let mut slow = stall(
        &host,
        &format!(
            "POST /api/v1/keys HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n\
             Authorization: Bearer {admin}\r\nContent-Length: 1000"
        ),
    )
    .await;
    let check = |response: &reqwest::Response, what: &str| {
        assert_eq!(response.headers()["cache-control"], "no-store", "{what}");
        assert_eq!(
            response.headers()["x-content-type-options"],
            "nosniff",
            "{what}"
        );
    };
    let url = |path: &str| format!("{}/api/v1{path}", app.address);
    let document = app.http.get(url("/openapi.json")).send().await.unwrap();
    assert_eq!(document.status(), 200);
    check(&document, "the OpenAPI document");
    let unauthenticated = app.http.get(url("/keys")).send().await.unwrap();
    assert_eq!(unauthenticated.status(), 401);
    check(&unauthenticated, "a 401");
    let unknown = app.http.get(url("/nothing")).send().await.unwrap();
    assert_eq!(unknown.status(), 404);
    check(&unknown, "a 404");
    let wrong_method = app.http.patch(url("/keys")).send().await.unwrap();
    assert_eq!(wrong_method.status(), 405);
    check(&wrong_method, "a 405");

    // OAuth endpoints are not sniffed either, whatever they answer.
    let refused = app
        .http
        .post(app.token_url())
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    check(&refused, "a refused token request");

    // A management body that stalls (since the start) is a JSON 408 of this
    // API's shape.
    let timed_out = Raw::parse(&until_closed(&mut slow, DEADLINE * 3).await);
    assert_eq!(timed_out.status, 408, "{:?}", timed_out.body);
    assert_eq!(timed_out.body["error"], "request_timeout");
    assert_eq!(timed_out.header("cache-control"), Some("no-store"));
    assert_eq!(timed_out.header("x-content-type-options"), Some("nosniff"));

    // And one too large for a JSON body is a 413, not a 400.
    let huge = format!(r#"{{"name": "{}"}}"#, "x".repeat(70 * 1024));
    let too_large = app
        .http
        .post(url("/apis"))
        .bearer_auth(&admin)
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(too_large.status(), 413);
    check(&too_large, "a 413");
    let body: Value = too_large.json().await.unwrap();
    assert_eq!(body["error"], "payload_too_large");
}

/// A `keygate:admin` access token.
async fn admin_token(app: &TestApp) -> String {
    let email = "root@example.com";
    app.add_user(email, "admin").await;
    let key = app
        .create_key(KeySpec::new(email, "admin").scopes("keygate:admin"))
        .await;
    app.token_string(&key).await
}

/// Malformed requests are the client's error: the real binary logs them at
/// WARN, never at ERROR.
#[tokio::test]
async fn malformed_requests_are_not_logged_as_errors() {
    let app = TestApp::builder(Engine::Sqlite).prepare();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let host = format!("127.0.0.1:{port}");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_keygate"))
        .arg("serve")
        .env_clear()
        .envs(&app.vars)
        .env("KEYGATE_LISTEN", &host)
        .env("RUST_LOG", "info")
        .current_dir(app.dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let started = Instant::now();
    while TcpStream::connect(&host).await.is_err() {
        assert!(started.elapsed() < Duration::from_secs(20), "not listening");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let big_head = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX: {}\r\n\r\n",
        "a".repeat(300_000)
    );
    let requests = [
        "GARBAGE\r\n\r\n".to_owned(),
        big_head,
        "POST /oauth/token HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n".to_owned(),
        "POST /oauth/token HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\
         Content-Type: application/x-www-form-urlencoded\r\n\r\nzz\r\n"
            .to_owned(),
        "POST /api/v1/keys HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: 5\r\n\r\n{bad}"
            .to_owned(),
    ];
    for request in requests {
        let mut stream = TcpStream::connect(&host).await.unwrap();
        let _ = stream.write_all(request.as_bytes()).await;
        let mut answer = Vec::new();
        let read = tokio::time::timeout(DEADLINE, stream.read_to_end(&mut answer)).await;
        assert!(read.is_ok(), "no answer to {:?}", &request[..20]);
        assert!(answer.starts_with(b"HTTP/1.1 4"), "{request:.40}");
    }
    let pid = child.id().unwrap().to_string();
    let signalled = tokio::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .unwrap();
    assert!(signalled.success());
    let mut logs = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut logs)
        .await
        .unwrap();
    child.wait().await.unwrap();
    assert!(!logs.contains(" ERROR "), "{logs}");
    assert!(
        logs.lines()
            .any(|l| l.contains(" WARN ") && l.contains("request parse error")),
        "{logs}"
    );
}

both_engines!(
    stalled_bodies_are_cut_off_while_others_are_served,
    unreadable_oauth_bodies_are_rfc6749_json,
    management_answers_are_never_cached_or_sniffed,
);
