//! API keys through the CLI: creation output, listing, rotation with and
//! without grace, and bad input that must change nothing.

use std::time::Duration;

use serde_json::Value;

use crate::both_engines;
use crate::helpers::{Engine, Key, KeySpec, TestApp, assert_invalid_client, spawn_app};

const CC: (&str, &str) = ("grant_type", "client_credentials");

/// `standard_key`'s user and API, and its key made by `keys create --json`.
async fn cli_standard_key(app: &TestApp, scope: &str) -> Key {
    app.add_user("alice@example.com", "member").await;
    app.add_standard_api().await;
    app.cli_create_key(&[
        "--owner",
        "alice@example.com",
        "--name",
        "ci",
        "--scope",
        scope,
        "--audience",
        "https://api.example.com",
    ])
    .await
}

async fn create_prints_the_contract_shape(engine: Engine) {
    let app = spawn_app(engine).await;
    let key = cli_standard_key(&app, "read").await;
    let json = &key.json;
    for field in [
        "client_id",
        "client_secret",
        "name",
        "scopes",
        "audiences",
        "created_at",
        "expires_at",
    ] {
        assert!(json.get(field).is_some(), "{field} missing from {json}");
    }
    assert!(key.client_id.starts_with("kgc_"));
    assert!(key.client_secret.starts_with("kgs_"));
    assert_eq!(json["scopes"], serde_json::json!(["read"]));
    assert_eq!(
        json["audiences"],
        serde_json::json!(["https://api.example.com"])
    );
    // Default expiry: KEYGATE_KEY_MAX_LIFETIME (180d) after creation.
    let created =
        chrono::DateTime::parse_from_rfc3339(json["created_at"].as_str().unwrap()).unwrap();
    let expires =
        chrono::DateTime::parse_from_rfc3339(json["expires_at"].as_str().unwrap()).unwrap();
    assert_eq!((expires - created).num_days(), 180);
}

async fn list_shows_status_without_secrets(engine: Engine) {
    let app = spawn_app(engine).await;
    let key = app.standard_key("read").await;
    let revoked = app
        .create_key(KeySpec::new("alice@example.com", "old"))
        .await;
    app.cli_ok(&["keys", "revoke", &revoked.client_id]).await;
    app.access_token(&key).await;
    // The last use is written in the background, after the response: real
    // time, the wait for that write, not for the clock.
    let mut out = app.cli_ok(&["keys", "list", "--json"]).await;
    for _ in 0..20 {
        if out.stdout.contains("\"last_used_at\": \"") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        out = app.cli_ok(&["keys", "list", "--json"]).await;
    }
    assert!(!out.stdout.contains(&key.client_secret));
    assert!(!out.stdout.contains("argon2"));
    let list = out.json();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2);
    let find = |id: &str| list.iter().find(|k| k["client_id"] == id).unwrap().clone();
    let active = find(&key.client_id);
    assert_eq!(active["status"], "active");
    assert!(
        active["last_used_at"].is_string(),
        "last use recorded: {active}"
    );
    assert!(active["revoked_at"].is_null());
    assert!(active.get("client_secret").is_none());
    let gone = find(&revoked.client_id);
    assert_eq!(gone["status"], "revoked");
    assert!(gone["revoked_at"].is_string());

    let mine = app
        .cli_ok(&["keys", "list", "--owner", "alice@example.com", "--json"])
        .await
        .json();
    assert_eq!(mine.as_array().unwrap().len(), 2);
    let bad = app
        .cli(&["keys", "list", "--owner", "nobody@example.com"])
        .await;
    assert!(!bad.status.success());
}

async fn list_marks_expired_keys(engine: Engine) {
    let app = spawn_app(engine).await;
    app.standard_key("read").await;
    // Made a minute ago by the test's clock: expired by the CLI's, the real one.
    app.advance_clock(chrono::Duration::minutes(-1));
    let key = app
        .create_key(KeySpec::new("alice@example.com", "brief").expires_in("1s"))
        .await;
    let list = app.cli_ok(&["keys", "list", "--json"]).await.json();
    let entry = list
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["client_id"] == key.client_id.as_str())
        .unwrap();
    assert_eq!(entry["status"], "expired");
}

fn rotated(json: Value, old: &Key) -> Key {
    let secret = json["client_secret"].as_str().unwrap().to_owned();
    assert_eq!(
        json["client_id"],
        old.client_id.as_str(),
        "rotation keeps the client ID"
    );
    assert_ne!(secret, old.client_secret);
    Key {
        client_id: old.client_id.clone(),
        client_secret: secret,
        json,
    }
}

async fn rotation_without_grace_stops_the_old_secret_at_once(engine: Engine) {
    let app = spawn_app(engine).await;
    let old = app.standard_key("read").await;
    assert_eq!(app.token_for(&old, &[CC]).await.status(), 200);
    let new = rotated(
        app.cli_ok(&["keys", "rotate", &old.client_id, "--json"])
            .await
            .json(),
        &old,
    );
    // The old secret was verified moments ago and cached: the cache must not
    // outlive the rotation.
    assert_invalid_client(app.token_for(&old, &[CC]).await).await;
    assert_eq!(app.token_for(&new, &[CC]).await.status(), 200);
}

async fn rotation_with_grace_keeps_the_old_secret_until_it_ends(engine: Engine) {
    let app = spawn_app(engine).await;
    let old = app.standard_key("read").await;
    let out = app
        .cli_ok(&["keys", "rotate", &old.client_id, "--grace", "2s", "--json"])
        .await;
    let new = rotated(out.json(), &old);
    assert!(new.json["previous_secret_expires_at"].is_string());
    assert_eq!(app.token_for(&old, &[CC]).await.status(), 200);
    assert_eq!(app.token_for(&new, &[CC]).await.status(), 200);
    app.advance_clock(chrono::Duration::minutes(1));
    assert_invalid_client(app.token_for(&old, &[CC]).await).await;
    assert_eq!(app.token_for(&new, &[CC]).await.status(), 200);
}

/// Grace is at most 30 days and never past the key's expiry; the error says
/// which limit it hit, and nothing changes.
async fn rotation_grace_is_capped(engine: Engine) {
    let app = spawn_app(engine).await;
    // The standard key expires in 180 days, a 10-day one sooner than 30.
    let key = app.standard_key("read").await;
    let short = app
        .create_key(KeySpec::new("alice@example.com", "short").expires_in("10d"))
        .await;
    let before = app.table_counts();
    for (client_id, grace, says) in [
        (&key.client_id, "31d", "longer than the maximum of 30 days"),
        (
            &short.client_id,
            "11d",
            "would outlive the key, which expires at",
        ),
    ] {
        let out = app
            .cli(&["keys", "rotate", client_id, "--grace", grace])
            .await;
        assert!(!out.status.success(), "{grace}");
        assert!(out.stderr.contains(says), "{grace}: {}", out.stderr);
        assert_eq!(out.stderr.trim().lines().count(), 1, "{}", out.stderr);
    }
    assert_eq!(app.table_counts(), before);
    let out = app
        .cli_ok(&["keys", "rotate", &key.client_id, "--grace", "30d", "--json"])
        .await;
    assert!(out.json()["previous_secret_expires_at"].is_string());
}

/// `users disable` refuses the last enabled admin, whoever asks, and changes
/// nothing; with a second admin it works.
async fn the_last_admin_cannot_be_disabled(engine: Engine) {
    let app = spawn_app(engine).await;
    app.add_user("root@example.com", "admin").await;
    let before = app.table_counts();
    let out = app.cli(&["users", "disable", "root@example.com"]).await;
    assert!(!out.status.success());
    assert!(
        out.stderr
            .contains("root@example.com is the last enabled admin"),
        "{}",
        out.stderr
    );
    assert_eq!(out.stderr.trim().lines().count(), 1, "{}", out.stderr);
    assert_eq!(app.table_counts(), before);
    app.add_user("ops@example.com", "admin").await;
    app.cli_ok(&["users", "disable", "root@example.com"]).await;
    let out = app.cli(&["users", "disable", "ops@example.com"]).await;
    assert!(out.stderr.contains("last enabled admin"), "{}", out.stderr);
    app.cli_ok(&["users", "enable", "root@example.com"]).await;
}

async fn revoked_key_cannot_be_rotated_or_revoked_again(engine: Engine) {
    let app = spawn_app(engine).await;
    let key = app.standard_key("read").await;
    app.cli_ok(&["keys", "revoke", &key.client_id]).await;
    let before = app.table_counts();
    for args in [
        vec!["keys", "rotate", key.client_id.as_str()],
        vec!["keys", "revoke", key.client_id.as_str()],
    ] {
        let out = app.cli(&args).await;
        assert!(!out.status.success(), "{args:?}");
        assert_eq!(out.stderr.trim().lines().count(), 1, "{}", out.stderr);
    }
    assert_eq!(app.table_counts(), before);
}

/// Bad input exits non-zero with one line on stderr and writes nothing.
async fn bad_cli_input_changes_nothing(engine: Engine) {
    let app = TestApp::builder(engine)
        .vars(&[("KEYGATE_KEY_MAX_LIFETIME", "30d")])
        .start()
        .await;
    app.standard_key("read").await;
    let before = app.table_counts();
    let cases: &[&[&str]] = &[
        &[
            "keys",
            "create",
            "--owner",
            "nobody@example.com",
            "--name",
            "x",
        ],
        &[
            "keys",
            "create",
            "--owner",
            "alice@example.com",
            "--name",
            "x",
            "--scope",
            "unregistered",
        ],
        &[
            "keys",
            "create",
            "--owner",
            "alice@example.com",
            "--name",
            "x",
            "--scope",
            "keygate:admin",
        ],
        &[
            "keys",
            "create",
            "--owner",
            "alice@example.com",
            "--name",
            "x",
            "--expires-in",
            "31d",
        ],
        &[
            "keys",
            "create",
            "--owner",
            "alice@example.com",
            "--name",
            "x",
            "--expires-in",
            "soon",
        ],
        &[
            "keys",
            "create",
            "--owner",
            "alice@example.com",
            "--name",
            "x",
            "--audience",
            "https://unknown.example",
        ],
        &[
            "keys",
            "create",
            "--owner",
            "alice@example.com",
            "--name",
            "x",
            "--audience",
            "not a uri",
        ],
        &[
            "keys",
            "create",
            "--owner",
            "alice@example.com",
            "--name",
            " ",
        ],
        &["keys", "rotate", "kgc_doesnotexist"],
        &["keys", "rotate", "kgc_doesnotexist", "--grace", "1 hour"],
        &["keys", "revoke", "kgc_doesnotexist"],
        &["users", "add", "not-an-email"],
        &["users", "add", "alice@example.com"],
        &["users", "add", "carol@example.com", "--role", "nonexistent"],
        &["users", "disable", "nobody@example.com"],
        &["roles", "set", "admin", "--scopes", "read"],
        &["roles", "set", "custom", "--scopes", "unregistered"],
        &[
            "apis",
            "add",
            "https://api.example.com",
            "--name",
            "dup",
            "--scopes",
            "x",
        ],
        &[
            "apis",
            "add",
            "relative/path",
            "--name",
            "bad",
            "--scopes",
            "x",
        ],
        &[
            "apis",
            "add",
            "https://new.example.com",
            "--name",
            "bad",
            "--scopes",
            "keygate:admin",
        ],
    ];
    // What clap refuses gets clap's whole message and usage, exit 2.
    for args in [
        &["keys", "create", "--owner", "alice@example.com"][..],
        &["no-such-command"],
    ] {
        let out = app.cli(args).await;
        assert_eq!(out.status.code(), Some(2), "keygate {args:?}");
        assert!(out.stderr.starts_with("error: "), "{}", out.stderr);
        assert!(out.stderr.contains("Usage: keygate"), "{}", out.stderr);
        assert!(out.stdout.is_empty(), "{}", out.stdout);
        assert_eq!(app.table_counts(), before, "keygate {args:?} wrote");
    }
    for args in cases {
        let out = app.cli(args).await;
        assert!(!out.status.success(), "keygate {args:?} should fail");
        let lines: Vec<_> = out.stderr.trim().lines().collect();
        assert_eq!(lines.len(), 1, "keygate {args:?} printed {:?}", out.stderr);
        assert!(
            out.stdout.is_empty(),
            "keygate {args:?} printed to stdout: {}",
            out.stdout
        );
        assert_eq!(
            app.table_counts(),
            before,
            "keygate {args:?} wrote to the database"
        );
    }
}

/// With `--audience`, every API scope must belong to a given audience
/// (keygate's own belong to the issuer and are always allowed); the refusal
/// says which scope and what to do, and writes nothing.
async fn scopes_outside_the_given_audiences_are_refused(engine: Engine) {
    let app = spawn_app(engine).await;
    app.standard_key("read").await;
    app.add_user("root@example.com", "admin").await;
    app.add_api("https://billing.example.com", "B", "bill")
        .await;
    let before = app.table_counts();
    let out = app
        .cli(&[
            "keys",
            "create",
            "--owner",
            "alice@example.com",
            "--name",
            "x",
            "--scope",
            "read bill",
            "--audience",
            "https://api.example.com",
        ])
        .await;
    assert!(!out.status.success());
    assert_eq!(out.stderr.trim().lines().count(), 1, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("\"bill\" belongs to none of the audiences given (https://api.example.com)"),
        "{}",
        out.stderr
    );
    assert_eq!(app.table_counts(), before);

    let key = app
        .cli_create_key(&[
            "--owner",
            "root@example.com",
            "--name",
            "y",
            "--scope",
            "read keygate:introspect",
            "--audience",
            "https://api.example.com",
        ])
        .await;
    assert_eq!(
        key.json["audiences"],
        serde_json::json!(["https://api.example.com"])
    );
}

async fn users_and_roles_lists(engine: Engine) {
    let app = spawn_app(engine).await;
    app.cli_ok(&[
        "apis",
        "add",
        "https://api.example.com",
        "--name",
        "A",
        "--scopes",
        "read write",
    ])
    .await;
    app.cli_ok(&["roles", "set", "reader", "--scopes", "read"])
        .await;
    let out = app
        .cli_with_stdin(
            &[
                "users",
                "add",
                "Dana@Example.com",
                "--role",
                "reader",
                "--name",
                "Dana",
                "--password-stdin",
            ],
            Some("correct horse battery staple\n"),
        )
        .await;
    assert!(out.status.success(), "{}", out.stderr);
    let users = app.cli_ok(&["users", "list", "--json"]).await;
    assert!(!users.stdout.contains("correct horse"));
    assert!(!users.stdout.contains("argon2"));
    let users = users.json();
    assert_eq!(users[0]["email"], "dana@example.com");
    assert_eq!(users[0]["role"], "reader");
    let roles = app.cli_ok(&["roles", "list", "--json"]).await.json();
    let names: Vec<_> = roles
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["admin", "member", "reader"]);
    let apis = app.cli_ok(&["apis", "list", "--json"]).await.json();
    assert_eq!(apis[0]["scopes"], serde_json::json!(["read", "write"]));

    // A member may grant API scopes but not keygate's own; a reader only read.
    app.cli_ok(&["users", "add", "m@example.com"]).await;
    let out = app
        .cli(&[
            "keys",
            "create",
            "--owner",
            "m@example.com",
            "--name",
            "x",
            "--scope",
            "keygate:keys",
        ])
        .await;
    assert!(!out.status.success());
    let out = app
        .cli(&[
            "keys",
            "create",
            "--owner",
            "dana@example.com",
            "--name",
            "x",
            "--scope",
            "write",
        ])
        .await;
    assert!(!out.status.success());
    app.cli_ok(&[
        "keys",
        "create",
        "--owner",
        "dana@example.com",
        "--name",
        "x",
        "--scope",
        "read",
    ])
    .await;
}

async fn keys_that_never_expire_need_a_zero_maximum(engine: Engine) {
    let app = TestApp::builder(engine)
        .vars(&[("KEYGATE_KEY_MAX_LIFETIME", "0")])
        .start()
        .await;
    let key = cli_standard_key(&app, "read").await;
    assert!(key.json["expires_at"].is_null());
    let later = app
        .cli_create_key(&[
            "--owner",
            "alice@example.com",
            "--name",
            "x",
            "--expires-in",
            "3650d",
        ])
        .await;
    assert!(later.json["expires_at"].is_string());
}

/// A name, description or reason holding a control character (ESC, BEL:
/// what would drive the terminal of whoever lists it) is refused by every
/// command with one line that says why, and nothing is written.
async fn control_characters_are_refused_by_the_cli(engine: Engine) {
    let app = spawn_app(engine).await;
    let key = app.standard_key("read").await;
    let before = app.table_counts();
    let title = "\u{1b}]0;PWNED\u{7}";
    let cases: Vec<Vec<&str>> = vec![
        vec![
            "keys",
            "create",
            "--owner",
            "alice@example.com",
            "--name",
            title,
        ],
        vec![
            "keys",
            "create",
            "--owner",
            "alice@example.com",
            "--name",
            "ok",
            "--description",
            "a\u{1b}[2Jb",
        ],
        vec!["keys", "revoke", &key.client_id, "--reason", "bell\u{7}"],
        vec!["users", "add", "eve@example.com", "--name", title],
        vec![
            "apis",
            "add",
            "https://evil.example.com",
            "--name",
            title,
            "--scopes",
            "x",
        ],
        vec!["roles", "set", "r\u{1b}", "--scopes", "read"],
    ];
    for args in cases {
        let out = app.cli(&args).await;
        assert!(!out.status.success(), "{args:?} succeeded");
        assert_eq!(
            out.stderr.trim().lines().count(),
            1,
            "{args:?}: {}",
            out.stderr
        );
        assert!(
            !out.stderr.contains('\u{1b}') && !out.stderr.contains('\u{7}'),
            "{args:?} echoed the control character: {:?}",
            out.stderr
        );
        assert!(
            out.stderr.contains("control characters") || out.stderr.contains("role name"),
            "{args:?}: {}",
            out.stderr
        );
    }
    assert_eq!(app.table_counts(), before, "something was written");
    let listed = app.cli_ok(&["keys", "list", "--json"]).await.json();
    assert_eq!(listed[0]["status"], "active");
}

both_engines!(
    control_characters_are_refused_by_the_cli,
    scopes_outside_the_given_audiences_are_refused,
    create_prints_the_contract_shape,
    list_shows_status_without_secrets,
    list_marks_expired_keys,
    rotation_without_grace_stops_the_old_secret_at_once,
    rotation_with_grace_keeps_the_old_secret_until_it_ends,
    rotation_grace_is_capped,
    the_last_admin_cannot_be_disabled,
    revoked_key_cannot_be_rotated_or_revoked_again,
    bad_cli_input_changes_nothing,
    users_and_roles_lists,
    keys_that_never_expire_need_a_zero_maximum,
);
