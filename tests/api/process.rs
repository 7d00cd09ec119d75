//! The real binary as an operator runs it: start-up errors, the embedded
//! default, and a secret that never reaches a log line, an audit event or a
//! database column in clear.

use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;

use crate::both_engines;
use crate::helpers::serve::{Serve, wait_ready};
use crate::helpers::{Engine, KeySpec, TestApp, spawn_app};

const CC: (&str, &str) = ("grant_type", "client_credentials");

async fn free_port() -> u16 {
    crate::helpers::serve::free_port()
}

#[tokio::test]
async fn bad_configuration_stops_startup_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    for (variable, value) in [
        ("KEYGATE_TOKEN_TTL", "fifteen"),
        ("KEYGATE_SIGNING_ALG", "HS256"),
        ("KEYGATE_LISTEN", "nowhere"),
        ("KEYGATE_DATABASE_URL", "mysql://db"),
        ("KEYGATE_SECRET_KEY", "short"),
    ] {
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_keygate"))
            .arg("serve")
            .env_clear()
            .env(variable, value)
            .current_dir(dir.path())
            .output()
            .await
            .unwrap();
        assert!(!out.status.success(), "{variable}={value} started");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
        assert!(stderr.contains(variable), "{stderr}");
    }
    assert!(
        std::fs::read_dir(dir.path()).unwrap().next().is_none(),
        "nothing written"
    );
}

#[tokio::test]
async fn unreachable_database_fails_fast_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let key = "ab".repeat(32);
    for (url, command) in [
        ("postgres://u:hunter2@127.0.0.1:1/x", "serve"),
        ("postgres://u:hunter2@127.0.0.1:1/x", "migrate"),
        ("sqlite:///nonexistent/dir/x.db", "serve"),
    ] {
        let started = Instant::now();
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_keygate"))
            .arg(command)
            .env_clear()
            .env("KEYGATE_DATABASE_URL", url)
            .env("KEYGATE_SECRET_KEY", &key)
            .current_dir(dir.path())
            .output()
            .await
            .unwrap();
        assert!(!out.status.success());
        assert!(started.elapsed() < Duration::from_secs(4), "fails fast");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
        assert!(
            stderr.contains("cannot connect to the database"),
            "{stderr}"
        );
        assert!(!stderr.contains("hunter2"), "the password is not shown");
    }
}

/// On every address (0.0.0.0, [::]) the server cannot know its public URL:
/// without `KEYGATE_ISSUER` it does not start, says so in one line, and
/// writes nothing; with no subcommand too.
#[tokio::test]
async fn listening_everywhere_without_issuer_stops_startup() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port().await;
    for (listen, args) in [
        (format!("0.0.0.0:{port}"), vec!["serve"]),
        (format!("[::]:{port}"), vec!["serve"]),
        (format!("0.0.0.0:{port}"), vec![]),
    ] {
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_keygate"))
            .args(&args)
            .env_clear()
            .env("KEYGATE_LISTEN", &listen)
            .current_dir(dir.path())
            .output()
            .await
            .unwrap();
        assert!(!out.status.success(), "{listen} started");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
        assert!(stderr.contains("KEYGATE_ISSUER"), "{stderr}");
        assert!(stderr.contains(&listen), "{stderr}");
        assert!(stderr.contains("public URL"), "{stderr}");
    }
    assert!(
        std::fs::read_dir(dir.path()).unwrap().next().is_none(),
        "nothing written"
    );
}

/// Runs `keygate serve` on `host` and a free port until ready, stops it,
/// and returns what it logged at info level. The port is found free a
/// moment before the server binds it, so another test may take it first:
/// a server that exits on "Address already in use" is started again on
/// another port.
async fn serve_logs(app: &crate::helpers::TestApp, host: &str, extra: &[(&str, &str)]) -> String {
    for _ in 0..5 {
        let port = free_port().await;
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_keygate"))
            .arg("serve")
            .env_clear()
            .envs(&app.vars)
            .env("KEYGATE_LISTEN", format!("{host}:{port}"))
            .envs(extra.iter().copied())
            .env("RUST_LOG", "info")
            .current_dir(app.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let ready = app.http.get(format!("{base}/readyz")).send().await;
            if ready.is_ok_and(|r| r.status() == 200) {
                return stop_and_read(child).await;
            }
            if child.try_wait().unwrap().is_some() {
                let logs = stop_and_read(child).await;
                assert!(
                    logs.contains("Address already in use"),
                    "serve exited:\n{logs}"
                );
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{base} did not become ready"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
    panic!("no free port for keygate serve in five tries");
}

/// Stops a running `serve` with SIGTERM (if it still runs) and returns its
/// log.
async fn stop_and_read(mut child: tokio::process::Child) -> String {
    if let Some(pid) = child.id() {
        let signalled = tokio::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .await
            .unwrap();
        assert!(signalled.success());
    }
    let mut logs = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut logs)
        .await
        .unwrap();
    child.wait().await.unwrap();
    logs
}

/// `serve` logs which database it opened, never its password; a plain-http
/// issuer on an address other machines reach is warned about, on loopback
/// it is not.
async fn serve_logs_its_database_and_warns_of_plain_http(engine: Engine) {
    let app = TestApp::builder(engine).prepare();
    let logs = serve_logs(
        &app,
        "0.0.0.0",
        &[("KEYGATE_ISSUER", "http://auth.example.test")],
    )
    .await;
    let shown = match engine {
        Engine::Sqlite => app.database_url.clone(),
        Engine::Postgres => {
            let mut url = url::Url::parse(&app.database_url).unwrap();
            let password = url.password().unwrap().to_owned();
            assert!(!logs.contains(&format!(":{password}@")), "password logged");
            url.set_password(Some("redacted")).unwrap();
            url.to_string()
        }
    };
    let opened = logs
        .lines()
        .find(|l| l.contains("opened the database"))
        .unwrap_or_else(|| panic!("no database line in {logs}"));
    assert!(opened.contains(&shown), "{opened} lacks {shown}");
    let warning = logs
        .lines()
        .find(|l| l.contains("WARN") && l.contains("is not https"))
        .unwrap_or_else(|| panic!("no warning in {logs}"));
    assert!(warning.contains("KEYGATE_ISSUER"), "{warning}");

    let quiet = serve_logs(&app, "127.0.0.1", &[]).await;
    assert!(quiet.contains("opened the database"), "{quiet}");
    assert!(!quiet.contains("is not https"), "{quiet}");
}

/// `keygate` with no subcommand serves on `sqlite://keygate.db`, generating
/// its secret key file (mode 0600) beside the database, without
/// transparent huge pages (src/main.rs).
#[tokio::test]
async fn default_start_uses_embedded_sqlite() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port().await;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_keygate"))
        .env_clear()
        .env("KEYGATE_LISTEN", format!("127.0.0.1:{port}"))
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let client = reqwest::Client::new();
    wait_ready(&client, &format!("http://127.0.0.1:{port}")).await;
    let metadata: serde_json::Value = client
        .get(format!(
            "http://127.0.0.1:{port}/.well-known/oauth-authorization-server"
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(metadata["issuer"], format!("http://127.0.0.1:{port}"));
    assert!(dir.path().join("keygate.db").exists());
    let secret = dir.path().join("keygate.db.secret");
    let mode = std::fs::metadata(&secret).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    // The database holds hashes and audit rows: its owner's alone, too.
    let database = dir.path().join("keygate.db");
    let mode = std::fs::metadata(&database).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    // Without transparent huge pages, which made each thread's first
    // allocations cost 2 MiB resident (src/main.rs).
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id().unwrap())).unwrap();
    let thp = status.lines().find(|l| l.starts_with("THP_enabled:"));
    assert_eq!(
        thp.map(|l| l.split_whitespace().nth(1)),
        Some(Some("0")),
        "{status}"
    );
    child.kill().await.unwrap();
}

/// The secret is in no log line (at trace level), no audit event, and no
/// database column.
async fn secret_is_never_logged_or_stored(engine: Engine) {
    let app = spawn_app(engine).await;
    // The in-process server above shares the database; the binary below is
    // the one whose logs are read, at the most verbose level.
    let port = free_port().await;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_keygate"))
        .arg("serve")
        .env_clear()
        .envs(&app.vars)
        .env("KEYGATE_LISTEN", format!("127.0.0.1:{port}"))
        .env("RUST_LOG", "trace")
        .current_dir(app.dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    // Read while it runs: at trace level (TLS records to PostgreSQL among
    // them) the logs outgrow a pipe, and a server blocked on a full pipe
    // answers nothing.
    let mut stderr = child.stderr.take().unwrap();
    let reader = tokio::spawn(async move {
        let mut logs = String::new();
        stderr.read_to_string(&mut logs).await.unwrap();
        logs
    });
    let base = format!("http://127.0.0.1:{port}");
    wait_ready(&app.http, &base).await;

    let key = app.standard_key("read").await;
    let rotated = app
        .cli_ok(&["keys", "rotate", &key.client_id, "--grace", "1h", "--json"])
        .await
        .json();
    let new_secret = rotated["client_secret"].as_str().unwrap().to_owned();
    for (id, secret) in [
        (key.client_id.as_str(), key.client_secret.as_str()),
        (key.client_id.as_str(), new_secret.as_str()),
        (key.client_id.as_str(), "kgs_wrong"),
        // Swapped: the secret in the client-ID position (Basic and body).
        (key.client_secret.as_str(), key.client_id.as_str()),
        (new_secret.as_str(), key.client_id.as_str()),
    ] {
        let basic = app
            .http
            .post(format!("{base}/oauth/token"))
            .basic_auth(id, Some(secret))
            .form(&[CC])
            .send()
            .await
            .unwrap();
        assert!(basic.status() == 200 || basic.status() == 401);
        let post = app
            .http
            .post(format!("{base}/oauth/token"))
            .form(&[CC, ("client_id", id), ("client_secret", secret)])
            .send()
            .await
            .unwrap();
        assert!(post.status() == 200 || post.status() == 401);
    }
    // A confused client putting its credentials in the URL.
    let query = app
        .http
        .post(format!(
            "{base}/oauth/token?client_id={}&client_secret={new_secret}",
            key.client_id
        ))
        .form(&[CC])
        .send()
        .await
        .unwrap();
    assert_eq!(query.status(), 401);
    app.cli_ok(&["keys", "revoke", &key.client_id, "--reason", "test"])
        .await;

    app.add_user("root@example.com", "admin").await;
    let admin = app
        .create_key(KeySpec::new("root@example.com", "admin").scopes("keygate:admin"))
        .await;
    let admin: serde_json::Value = app
        .http
        .post(format!("{base}/oauth/token"))
        .basic_auth(&admin.client_id, Some(&admin.client_secret))
        .form(&[CC])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let admin = admin["access_token"].as_str().unwrap_or_default();
    let audit = app
        .http
        .get(format!("{}/api/v1/audit-events?limit=100", base))
        .bearer_auth(admin)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(audit.contains(keygate::text::REDACTED_SECRET), "{audit}");
    child.start_kill().unwrap();
    let logs = reader.await.unwrap();
    child.wait().await.unwrap();
    assert!(
        logs.contains("client authentication failed"),
        "the logs were captured"
    );
    assert!(
        logs.contains("\"POST /oauth/token\" 401"),
        "access log lines are there"
    );

    let dump = app.dump_database();
    assert!(dump.contains(&key.client_id), "the dump holds the data");
    // The swapped requests were audited and throttled under the marker.
    assert!(dump.contains(keygate::text::REDACTED_SECRET), "{dump}");
    for secret in [key.client_secret.as_str(), new_secret.as_str()] {
        assert!(!logs.contains(secret), "a secret reached the logs");
        assert!(!dump.contains(secret), "a secret is stored in clear");
        // Nor the random part alone, in case of re-encoding.
        assert!(!dump.contains(&secret[4..]));
        assert!(!logs.contains(&secret[4..]));
        assert!(!audit.contains(&secret[4..]), "the API shows a secret");
    }
    assert!(
        !logs.contains(&app.secret_key),
        "the master key reached the logs"
    );
}

/// Deleting the SQLite file under a running server is noticed: readiness
/// fails, requests answer 503 at once, and no new file appears in its place
/// (before, new keys went on into the unlinked file, lost at the restart).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_sqlite_file_is_noticed() {
    let app = spawn_app(Engine::Sqlite).await;
    let key = app.standard_key("read").await;
    assert_eq!(app.token_for(&key, &[CC]).await.status(), 200);
    let ready = |app: &crate::helpers::TestApp| {
        let (http, url) = (app.http.clone(), format!("{}/readyz", app.address));
        async move { http.get(url).send().await.unwrap().status() }
    };
    assert_eq!(ready(&app).await, 200);

    let path = std::path::PathBuf::from(app.database_url.trim_start_matches("sqlite://"));
    for suffix in ["", "-wal", "-shm"] {
        let mut file = path.clone().into_os_string();
        file.push(suffix);
        let _ = std::fs::remove_file(file);
    }
    assert_eq!(ready(&app).await, 503);
    let started = Instant::now();
    let refused = app.token_for(&key, &[CC]).await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "answered at once"
    );
    crate::helpers::assert_oauth_error(refused, 503, "temporarily_unavailable").await;
    assert!(
        !path.exists(),
        "no new, empty database took the old one's place"
    );
}

/// The test PostgreSQL asks for a password over TCP, as a packaged one does:
/// libpq's SCRAM-SHA-256 login is the path the tests below go through.
fn assert_postgres_asks_for_a_password(url: &str) {
    let mut without = url::Url::parse(url).unwrap();
    assert!(
        without.password().is_some(),
        "the test URL carries a password"
    );
    without.set_password(None).unwrap();
    let refused = keygate::db::connect_postgres(without.as_str())
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        refused.contains("password"),
        "PostgreSQL accepted a TCP login without a password: run the tests with \
         scripts/test, whose cluster uses scram-sha-256 ({refused})"
    );
}

/// A one-shot command against a PostgreSQL that asks for a password exits
/// cleanly every time: no pool thread is still logging in while it exits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_on_password_postgres_never_crashes() {
    use std::os::unix::process::ExitStatusExt;
    let app = TestApp::builder(Engine::Postgres).prepare();
    assert_postgres_asks_for_a_password(&app.database_url);
    app.add_api("https://api.example.com", "A", "read").await;
    let mut failures = Vec::new();
    for run in 0..40 {
        let out = app.cli(&["apis", "list"]).await;
        if !out.status.success() || !out.stdout.contains("https://api.example.com") {
            failures.push((run, out.status.code(), out.status.signal(), out.stderr));
        }
    }
    assert!(failures.is_empty(), "failed runs of 40: {failures:?}");
}

/// SIGTERM stops `keygate serve` with exit status 0, its pool shut first.
async fn serve_exits_cleanly_on_sigterm(engine: Engine) {
    let app = TestApp::builder(engine).prepare();
    if engine == Engine::Postgres {
        assert_postgres_asks_for_a_password(&app.database_url);
    }
    for _ in 0..3 {
        let serve = Serve::start(&app, &[("RUST_LOG", "warn")]).await;
        serve.stop(Duration::from_secs(30)).await;
    }
}

both_engines!(
    secret_is_never_logged_or_stored,
    serve_exits_cleanly_on_sigterm,
    serve_logs_its_database_and_warns_of_plain_http
);
