//! Leaked secrets (INTERFACE.md "Leaked secrets"): `POST /oauth/exposed`
//! revokes the key of a live secret at once and emails its owner, once;
//! anything else changes nothing and gets the very same answer; reports
//! are throttled per address.

use std::time::Duration;

use serde_json::{Value, json};

use crate::both_engines;
use crate::helpers::mail::{SmtpSink, one_with, wait_until_outbox_settled};
use crate::helpers::serve::Serve;
use crate::helpers::{Engine, KeySpec, TestApp, client_from, spawn_app, wrong_checksum};

const OWNER: &str = "alice@example.com";

/// POSTs `body` (raw JSON) to `url`; returns status, headers and body text.
async fn post(
    client: &reqwest::Client,
    url: &str,
    body: &str,
) -> (u16, reqwest::header::HeaderMap, String) {
    let response = client
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.text().await.unwrap())
}

/// Reports `secrets` to the app at `base`; asserts the one answer every
/// report gets and returns nothing else, since there is nothing else.
async fn report(client: &reqwest::Client, base: &str, query: &str, secrets: &[&str]) {
    let body = serde_json::to_string(secrets).unwrap();
    let (status, headers, text) =
        post(client, &format!("{base}/oauth/exposed{query}"), &body).await;
    assert_eq!(status, 202, "{text}");
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(headers["content-type"], "application/json");
    let expected = json!({ "received": secrets.len() });
    assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), expected);
    assert_eq!(text, expected.to_string());
}

async fn status_of(app: &TestApp, client_id: &str) -> String {
    app.listed_key(client_id).await["status"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// The real binary, a real SMTP server: a live secret reported twice is one
/// revocation, one audit event and one "exposed" email, and the secret is
/// in no log line, email, audit event or row.
async fn a_reported_live_secret_revokes_its_key_and_emails_its_owner_once(engine: Engine) {
    let smtp = SmtpSink::started().await;
    let app = smtp.app(engine).prepare();
    let server = Serve::start(&app, &[("RUST_LOG", "debug")]).await;
    app.add_owner_and_api(OWNER).await;
    let ci = app.create_key(KeySpec::reader(OWNER, "ci")).await;
    let other = app.create_key(KeySpec::reader(OWNER, "other")).await;
    smtp.wait_for(2, Duration::from_secs(20)).await;

    let metadata: Value = app
        .http
        .get(server.url("/.well-known/oauth-authorization-server"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let endpoint = metadata["exposure_endpoint"].as_str().unwrap();
    assert!(endpoint.ends_with("/oauth/exposed"), "{endpoint}");

    for _ in 0..2 {
        report(
            &app.http,
            &server.base,
            "?source=public%20gist",
            &[&ci.client_secret],
        )
        .await;
    }

    let key = app.listed_key(&ci.client_id).await;
    assert_eq!(key["status"], "revoked");
    assert_eq!(key["revoked_reason"], "exposed: public gist");
    assert_eq!(key["revoked_by"], "keygate");
    assert_eq!(status_of(&app, &other.client_id).await, "active");
    let token = app
        .http
        .post(server.url("/oauth/token"))
        .basic_auth(&ci.client_id, Some(&ci.client_secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(token.status(), 401);

    let messages = smtp.wait_for(3, Duration::from_secs(20)).await;
    let exposed = one_with(&messages, "exposed");
    exposed.assert_well_formed(OWNER, &ci);
    assert!(exposed.subject.contains("revoked"), "{}", exposed.subject);
    assert!(exposed.text.contains("public gist"), "{}", exposed.text);
    assert!(
        exposed.text.contains("Create a new key"),
        "{}",
        exposed.text
    );
    // Nothing more arrives for the second report: once nothing is left to
    // send, whatever was queued has reached the SMTP server.
    wait_until_outbox_settled(&app, Duration::from_secs(20)).await;
    assert_eq!(smtp.messages().len(), 3);
    assert_eq!(
        app.count_rows(&format!(
            "SELECT COUNT(*) AS n FROM audit_events \
             WHERE action = 'key.revoked' AND target = '{}' AND actor = 'keygate' \
             AND source_addr = '127.0.0.1'",
            ci.client_id
        )),
        1
    );
    assert_eq!(
        app.count_rows("SELECT COUNT(*) AS n FROM email_outbox WHERE event = 'exposed'"),
        1
    );

    let logs = server.logs();
    assert!(logs.contains("reported exposed"), "{logs}");
    for secret in [&ci.client_secret, &ci.client_secret[4..]] {
        assert!(!logs.contains(secret), "the secret is in the logs");
        assert!(
            !app.dump_database().contains(secret),
            "the secret is stored"
        );
        for message in smtp.messages() {
            assert!(!message.raw.contains(secret), "the secret is in an email");
        }
    }
}

/// A secret rotated away (no grace, or past it), a wrong checksum, random
/// text and a well-formed secret of no key: nothing changes, and each gets
/// the same answer as a live one (`report` checks it byte for byte).
async fn strings_that_are_not_live_secrets_change_nothing(engine: Engine) {
    let app = spawn_app(engine).await;
    let ci = app.standard_key("read").await;
    let rotated = app
        .cli_ok(&["keys", "rotate", &ci.client_id, "--json"])
        .await
        .json();
    let current = rotated["client_secret"].as_str().unwrap().to_owned();
    let graced = app
        .create_key(KeySpec::new(OWNER, "graced").scopes("read"))
        .await;
    let regraced = app
        .cli_ok(&[
            "keys",
            "rotate",
            &graced.client_id,
            "--grace",
            "1m",
            "--json",
        ])
        .await
        .json();
    assert!(regraced["previous_secret_expires_at"].is_string());
    app.advance_clock(chrono::Duration::minutes(2));

    let before = app.table_counts();
    let outbox = crate::helpers::mail::outbox(&app).len();
    let unknown = crate::helpers::fixtures::unused_secret();
    let wrong = wrong_checksum(&current);
    let texts = [
        ci.client_secret.as_str(),
        graced.client_secret.as_str(),
        wrong.as_str(),
        "hello, world",
        "",
        unknown.as_str(),
    ];
    // One address each: five reports a minute per address.
    for (i, text) in texts.iter().enumerate() {
        let client = client_from(&format!("127.0.0.{}", i + 10));
        report(&client, &app.address, "", &[text]).await;
    }
    report(&app.http, &app.address, "?source=ci", &texts).await;

    let after = app.table_counts();
    let without_throttle = |counts: Vec<(String, i64)>| -> Vec<(String, i64)> {
        counts
            .into_iter()
            .filter(|(t, _)| t != "auth_throttle")
            .collect()
    };
    assert_eq!(without_throttle(after), without_throttle(before));
    assert_eq!(crate::helpers::mail::outbox(&app).len(), outbox);
    assert_eq!(status_of(&app, &ci.client_id).await, "active");
    assert_eq!(status_of(&app, &graced.client_id).await, "active");
    // The live secrets still work.
    let token = app
        .token_basic(
            &ci.client_id,
            &current,
            &[("grant_type", "client_credentials")],
        )
        .await;
    assert_eq!(token.status(), 200);
}

/// The previous secret, while its rotation grace runs, is live: reporting
/// it revokes the key (and the new secret with it).
async fn a_previous_secret_within_its_grace_revokes(engine: Engine) {
    let app = spawn_app(engine).await;
    let ci = app.standard_key("read").await;
    app.cli_ok(&["keys", "rotate", &ci.client_id, "--grace", "1h", "--json"])
        .await;
    report(
        &app.http,
        &app.address,
        "",
        &["not a secret", &ci.client_secret],
    )
    .await;
    let key = app.listed_key(&ci.client_id).await;
    assert_eq!(key["status"], "revoked");
    assert_eq!(key["revoked_reason"], "exposed: report");
    assert_eq!(key["previous_secret_expires_at"], Value::Null);
}

/// A string repeated within one report counts once (INTERFACE.md "Leak
/// reports"): a live secret sent 100 times is one argon2 verification, one
/// revocation, one audit event and one email, and the answer counts it once;
/// strings of no key cost no verification at all.
async fn a_string_repeated_in_one_report_counts_once(engine: Engine) {
    let app = TestApp::builder(engine).jobs_on_demand().start().await;
    app.add_owner_and_api(OWNER).await;
    let ci = app.create_key(KeySpec::reader(OWNER, "ci")).await;
    let url = format!("{}/oauth/exposed", app.address);
    let argon2 = || app.state().client_auth.argon2.runs();

    let before = argon2();
    let body = serde_json::to_string(&vec![ci.client_secret.as_str(); 100]).unwrap();
    let (status, _, text) = post(&app.http, &url, &body).await;
    assert_eq!(status, 202, "{text}");
    assert_eq!(text, json!({"received": 1}).to_string());
    assert_eq!(argon2() - before, 1, "verifications for one string");

    assert_eq!(status_of(&app, &ci.client_id).await, "revoked");
    assert_eq!(
        app.count_rows(&format!(
            "SELECT COUNT(*) AS n FROM audit_events \
             WHERE action = 'key.revoked' AND target = '{}'",
            ci.client_id
        )),
        1
    );
    assert_eq!(
        app.count_rows("SELECT COUNT(*) AS n FROM email_outbox WHERE event = 'exposed'"),
        1
    );

    let before = argon2();
    let unknown = crate::helpers::fixtures::unused_secret();
    let mut strings = vec![unknown.as_str(); 99];
    strings.push("not a secret");
    let (status, _, text) = post(
        &client_from("127.0.0.9"),
        &url,
        &serde_json::to_string(&strings).unwrap(),
    )
    .await;
    assert_eq!(status, 202, "{text}");
    assert_eq!(text, json!({"received": 2}).to_string());
    assert_eq!(
        argon2() - before,
        0,
        "no verification for strings of no key"
    );
}

/// A flood of strings of no key from many addresses (each inside its own
/// throttle) costs lookups only, no argon2: the token endpoint's argon2
/// threads stay free, a key's first token request meanwhile is served, and
/// a live secret reported in the middle of it still revokes its key.
async fn a_flood_of_strings_of_no_key_costs_no_argon2(engine: Engine) {
    let app = TestApp::builder(engine).jobs_on_demand().start().await;
    app.add_owner_and_api(OWNER).await;
    let leaked = app.create_key(KeySpec::reader(OWNER, "leaked")).await;
    let cold = app.create_key(KeySpec::reader(OWNER, "cold")).await;
    let url = format!("{}/oauth/exposed", app.address);
    let argon2 = || app.state().client_auth.argon2.runs();
    let before = argon2();

    // 20 addresses, 2 reports of 100 distinct well-formed strings each.
    let senders = (1..=20).map(|n| {
        let (client, url) = (client_from(&format!("127.0.1.{n}")), url.clone());
        tokio::spawn(async move {
            for _ in 0..2 {
                let strings: Vec<String> = (0..100)
                    .map(|_| crate::helpers::fixtures::unused_secret())
                    .collect();
                let (status, _, text) =
                    post(&client, &url, &serde_json::to_string(&strings).unwrap()).await;
                assert_eq!(status, 202, "{text}");
            }
        })
    });
    let senders: Vec<_> = senders.collect();
    let token = app.access_token(&cold).await;
    assert!(token["access_token"].is_string());
    report(
        &client_from("127.0.2.1"),
        &app.address,
        "",
        &[&leaked.client_secret],
    )
    .await;
    for sender in senders {
        sender.await.unwrap();
    }
    // One verification for the cold key's first token, one for the leak.
    assert_eq!(argon2() - before, 2);
    assert_eq!(status_of(&app, &leaked.client_id).await, "revoked");
    assert_eq!(status_of(&app, &cold.client_id).await, "active");
}

/// Five reports a minute per address, matched or not: the sixth is 429
/// with Retry-After; another address is not affected. Malformed reports
/// are 400 and count too.
async fn reports_are_throttled_per_address(engine: Engine) {
    let app = spawn_app(engine).await;
    let url = format!("{}/oauth/exposed", app.address);
    for bad in [
        "{}",
        "[1]",
        "\"kgs_\"",
        "not json",
        &serde_json::to_string(&vec!["x"; 101]).unwrap(),
    ] {
        let (status, headers, text) = post(&client_from("127.0.0.2"), &url, bad).await;
        assert_eq!(status, 400, "{bad}: {text}");
        assert_eq!(headers["cache-control"], "no-store");
        assert_eq!(
            serde_json::from_str::<Value>(&text).unwrap()["error"],
            "invalid_request"
        );
    }
    let (status, _, _) = post(&client_from("127.0.0.2"), &format!("{url}?source="), "[]").await;
    assert_eq!(status, 429, "the malformed reports counted");

    for _ in 0..5 {
        report(&app.http, &app.address, "", &["kgs_nothing"]).await;
    }
    let (status, headers, text) = post(&app.http, &url, "[]").await;
    assert_eq!(status, 429, "{text}");
    let retry: i64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(
        serde_json::from_str::<Value>(&text).unwrap()["error"],
        "too_many_requests"
    );
    report(
        &client_from("127.0.0.3"),
        &app.address,
        "",
        &["kgs_nothing"],
    )
    .await;

    app.advance_clock(chrono::Duration::seconds(61));
    report(&app.http, &app.address, "", &[]).await;
    let (status, _, _) = post(&app.http, &format!("{url}?source=a%0Ab"), "[]").await;
    assert_eq!(status, 400, "a source with a line break");
}

/// `keys scan` finds secrets in a fixture tree (masked, with file and
/// line; `.git` and binary files skipped), and `--revoke` revokes the live
/// keys found, once each, and nothing else.
async fn the_scanner_finds_secrets_and_revokes_only_live_keys(engine: Engine) {
    let app = spawn_app(engine).await;
    let found = app.standard_key("read").await;
    let hidden = app
        .create_key(KeySpec::new(OWNER, "hidden").scopes("read"))
        .await;
    let untouched = app
        .create_key(KeySpec::new(OWNER, "untouched").scopes("read"))
        .await;
    let old = app
        .create_key(KeySpec::new(OWNER, "old").scopes("read"))
        .await;
    app.cli_ok(&["keys", "rotate", &old.client_id, "--json"])
        .await;
    let fake = wrong_checksum(&found.client_secret);

    let tree = tempfile::tempdir().unwrap();
    let root = tree.path();
    std::fs::create_dir_all(root.join(".git")).unwrap();
    std::fs::create_dir_all(root.join("src")).unwrap();
    std::fs::create_dir_all(root.join("logs")).unwrap();
    std::fs::write(root.join(".git/config"), &hidden.client_secret).unwrap();
    let mut binary = b"\0\x01binary ".to_vec();
    binary.extend_from_slice(hidden.client_secret.as_bytes());
    std::fs::write(root.join("logs/blob.bin"), binary).unwrap();
    std::fs::write(
        root.join("logs/app.log"),
        format!(
            "started\nsecret={} old={}\n",
            found.client_secret, old.client_secret
        ),
    )
    .unwrap();
    std::fs::write(
        root.join("src/main.rs"),
        format!(
            "fn main() {{\n    // {fake}\n    let s = \"{}\";\n}}\n",
            found.client_secret
        ),
    )
    .unwrap();
    let dir = root.display().to_string();

    let scanned = app.cli_ok(&["keys", "scan", &dir, "--json"]).await;
    let shown: Vec<(String, u64, String, bool)> = scanned
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["path"]
                    .as_str()
                    .unwrap()
                    .trim_start_matches(&dir)
                    .to_owned(),
                f["line"].as_u64().unwrap(),
                f["masked"].as_str().unwrap().to_owned(),
                f["checksum_valid"].as_bool().unwrap(),
            )
        })
        .collect();
    let masked = |s: &str| format!("{}…{}", &s[..8], &s[s.len() - 2..]);
    assert_eq!(
        shown,
        [
            (
                "/logs/app.log".to_owned(),
                2,
                masked(&found.client_secret),
                true
            ),
            (
                "/logs/app.log".to_owned(),
                2,
                masked(&old.client_secret),
                true
            ),
            ("/src/main.rs".to_owned(), 2, masked(&fake), false),
            (
                "/src/main.rs".to_owned(),
                3,
                masked(&found.client_secret),
                true
            ),
        ]
    );
    let text = app.cli_ok(&["keys", "scan", &dir]).await;
    assert!(
        text.stdout.contains(&format!(
            "/src/main.rs:3: {} (valid checksum)",
            masked(&found.client_secret)
        )),
        "{}",
        text.stdout
    );
    assert!(text.stdout.ends_with("4 found\n"), "{}", text.stdout);
    for status in [&found, &hidden, &untouched, &old] {
        assert_eq!(status_of(&app, &status.client_id).await, "active");
    }

    let revoked = app.cli_ok(&["keys", "scan", &dir, "--revoke"]).await;
    assert!(
        revoked.stdout.ends_with("4 found, 1 key revoked\n"),
        "{}",
        revoked.stdout
    );
    assert!(
        revoked.stdout.contains(&found.client_id),
        "{}",
        revoked.stdout
    );
    let key = app.listed_key(&found.client_id).await;
    assert_eq!(key["status"], "revoked");
    assert_eq!(
        key["revoked_reason"],
        format!("exposed: {dir}/logs/app.log:2")
    );
    for live in [&hidden, &untouched, &old] {
        assert_eq!(status_of(&app, &live.client_id).await, "active");
    }
    assert_eq!(
        app.count_rows("SELECT COUNT(*) AS n FROM email_outbox WHERE event = 'exposed'"),
        1
    );
    // Without --revoke no database is opened (nor created); a missing path
    // is an error naming it.
    let nowhere = tree.path().join("nowhere.db");
    let scan_alone = |path: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_keygate"))
            .args(["keys", "scan", path])
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env(
                "KEYGATE_DATABASE_URL",
                format!("sqlite://{}", nowhere.display()),
            )
            .output()
            .unwrap()
    };
    let alone = scan_alone(&format!("{dir}/src"));
    assert!(alone.status.success());
    assert!(String::from_utf8_lossy(&alone.stdout).ends_with("2 found\n"));
    assert!(!nowhere.exists());
    let missing = scan_alone(&format!("{dir}/missing"));
    assert!(!missing.status.success());
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(stderr.contains(&format!("{dir}/missing")), "{stderr}");

    for out in [&scanned, &text, &revoked] {
        for secret in [
            &found.client_secret,
            &hidden.client_secret,
            &old.client_secret,
        ] {
            assert!(!out.stdout.contains(&secret[4..]), "{}", out.stdout);
            assert!(!out.stderr.contains(&secret[4..]), "{}", out.stderr);
        }
    }
}

both_engines!(
    the_scanner_finds_secrets_and_revokes_only_live_keys,
    a_reported_live_secret_revokes_its_key_and_emails_its_owner_once,
    strings_that_are_not_live_secrets_change_nothing,
    a_previous_secret_within_its_grace_revokes,
    reports_are_throttled_per_address,
    a_string_repeated_in_one_report_counts_once,
    a_flood_of_strings_of_no_key_costs_no_argon2,
);
