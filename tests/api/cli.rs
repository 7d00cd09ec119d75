//! The command line as a newcomer meets it: clap's whole error and usage,
//! one spelling for a scope list, `users enable`, `serve --help`, and a
//! mistyped SQLite path that is refused instead of becoming a new database.

use std::path::Path;

mod webhooks;

use crate::both_engines;
use crate::helpers::{CliOutput, Engine, TestApp, link_token, spawn_app};

/// The variables of INTERFACE.md's configuration table that keygate reads.
const CONTRACT_VARIABLES: [&str; 19] = [
    "KEYGATE_DATABASE_URL",
    "KEYGATE_LISTEN",
    "KEYGATE_ISSUER",
    "KEYGATE_SECRET_KEY",
    "KEYGATE_TOKEN_TTL",
    "KEYGATE_SIGNING_ALG",
    "KEYGATE_KEY_MAX_LIFETIME",
    "KEYGATE_SMTP_URL",
    "KEYGATE_MAIL_DIR",
    "KEYGATE_MAIL_FROM",
    "KEYGATE_EXPIRY_WARNING",
    "KEYGATE_MAX_KEYS_PER_USER",
    "KEYGATE_SESSION_IDLE",
    "KEYGATE_SESSION_MAX",
    "KEYGATE_INVITE_TTL",
    "KEYGATE_TRUSTED_PROXIES",
    "KEYGATE_METRICS_ALLOW_FROM",
    "KEYGATE_GITHUB_SCANNING_KEYS",
    "RUST_LOG",
];

/// The binary in `dir` with only the given variables: no database set up.
async fn run_in(dir: &Path, vars: &[(&str, &str)], args: &[&str]) -> CliOutput {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_keygate"))
        .args(args)
        .env_clear()
        .envs(vars.iter().copied())
        .current_dir(dir)
        .output()
        .await
        .unwrap();
    CliOutput {
        status: output.status,
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn assert_empty(dir: &Path) {
    let left: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "written: {left:?}");
}

#[tokio::test]
async fn usage_errors_show_clap_whole_message_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let missing = run_in(dir.path(), &[], &["keys", "create", "--name", "x"]).await;
    assert_eq!(missing.status.code(), Some(2), "{}", missing.stderr);
    assert!(
        missing.stderr.contains("--owner <OWNER>"),
        "{}",
        missing.stderr
    );
    assert!(
        missing.stderr.contains("Usage: keygate keys create"),
        "{}",
        missing.stderr
    );

    let misspelt = run_in(
        dir.path(),
        &[],
        &[
            "keys",
            "create",
            "--owner",
            "a",
            "--name",
            "x",
            "--scopess",
            "r",
        ],
    )
    .await;
    assert_eq!(misspelt.status.code(), Some(2));
    assert!(
        misspelt
            .stderr
            .contains("a similar argument exists: '--scopes'"),
        "{}",
        misspelt.stderr
    );

    // A group without its subcommand: clap's help on stderr, exit 2.
    for group in ["keys", "users", "apis", "roles", "signing-keys"] {
        let out = run_in(dir.path(), &[], &[group]).await;
        assert_eq!(out.status.code(), Some(2), "{group}");
        assert!(out.stdout.is_empty(), "{group}: {}", out.stdout);
        assert!(out.stderr.contains("Commands:"), "{group}: {}", out.stderr);
        assert!(
            out.stderr
                .contains(&format!("Usage: keygate {group} <COMMAND>")),
            "{group}: {}",
            out.stderr
        );
    }
    let keys = run_in(dir.path(), &[], &["keys"]).await;
    for verb in ["create", "list", "revoke", "rotate"] {
        assert!(keys.stderr.contains(verb), "{}", keys.stderr);
    }
    assert_empty(dir.path());
}

#[tokio::test]
async fn serve_help_lists_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_in(dir.path(), &[], &["serve", "--help"]).await;
    assert!(out.status.success(), "{}", out.stderr);
    for name in CONTRACT_VARIABLES {
        let lines = out
            .stdout
            .lines()
            .filter(|line| line.split_whitespace().next() == Some(name))
            .count();
        assert_eq!(lines, 1, "{name} in {}", out.stdout);
    }
    assert_empty(dir.path());
}

/// Every command but `serve` and `migrate` refuses a SQLite file that is
/// not there, and creates nothing; `migrate` creates it.
#[tokio::test]
async fn a_mistyped_sqlite_path_is_not_a_new_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("typo.db");
    let url = format!("sqlite://{}", path.display());
    let vars = [("KEYGATE_DATABASE_URL", url.as_str())];
    let commands: [&[&str]; 9] = [
        &["users", "list"],
        &["users", "add", "alice@example.com"],
        &["users", "disable", "alice@example.com"],
        &["roles", "list"],
        &["apis", "list"],
        &["keys", "list"],
        &[
            "keys",
            "create",
            "--owner",
            "alice@example.com",
            "--name",
            "k",
        ],
        &["keys", "revoke", "kgc_x"],
        &["signing-keys", "rotate"],
    ];
    for args in commands {
        let out = run_in(dir.path(), &vars, args).await;
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", out.stderr);
        assert_eq!(out.stderr.trim().lines().count(), 1, "{}", out.stderr);
        assert!(
            out.stderr
                .contains(&format!("no database at {}", path.display())),
            "{}",
            out.stderr
        );
        assert!(out.stderr.contains("keygate migrate"), "{}", out.stderr);
        assert_empty(dir.path());
    }

    let created = run_in(dir.path(), &vars, &["migrate"]).await;
    assert!(created.status.success(), "{}", created.stderr);
    assert!(path.exists());
    let listed = run_in(dir.path(), &vars, &["users", "list"]).await;
    assert!(listed.status.success(), "{}", listed.stderr);
}

/// `keygate migrate` on a new database says how many migrations it
/// applied (every one of the engine's), and then that there is nothing to do.
async fn migrate_says_how_many_migrations_it_applied(engine: Engine) {
    let app = TestApp::builder(engine).prepare();
    crate::helpers::database::empty_database(&app.database_url);
    let folder = match engine {
        Engine::Sqlite => "sqlite",
        Engine::Postgres => "postgres",
    };
    let migrations = std::fs::read_dir(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("migrations")
            .join(folder),
    )
    .unwrap()
    .filter(|entry| entry.as_ref().unwrap().path().is_dir())
    .count();
    assert!(migrations > 1, "{migrations}");

    let first = app.cli_ok(&["migrate"]).await;
    assert_eq!(first.stdout, format!("applied {migrations} migrations\n"));
    let again = app.cli_ok(&["migrate"]).await;
    assert_eq!(again.stdout, "database is up to date\n");
    app.cli_ok(&["users", "list"]).await;
}

/// `--scopes` on every command that takes a scope list, `--scope` as its
/// alias, and a list with a comma refused with one line, writing nothing.
async fn scope_lists_take_one_spelling_and_no_comma(engine: Engine) {
    let app = spawn_app(engine).await;
    app.add_user("alice@example.com", "member").await;
    let before = app.table_counts();
    let refused: [&[&str]; 5] = [
        &["roles", "set", "readers", "--scopes", "read,write"],
        &["roles", "set", "readers", "--scope", "read, write"],
        &[
            "apis",
            "add",
            "https://api.example.com",
            "--name",
            "A",
            "--scopes",
            "read,write",
        ],
        &[
            "keys",
            "create",
            "--owner",
            "alice@example.com",
            "--name",
            "k",
            "--scopes",
            "read,write",
        ],
        &[
            "keys",
            "create",
            "--owner",
            "alice@example.com",
            "--name",
            "k",
            "--scope",
            "read,write",
        ],
    ];
    for args in refused {
        let out = app.cli(args).await;
        assert!(!out.status.success(), "{args:?} succeeded");
        assert_eq!(out.stderr.trim().lines().count(), 1, "{}", out.stderr);
        assert!(
            out.stderr.contains("contains a comma") && out.stderr.contains("separated by spaces"),
            "{}",
            out.stderr
        );
    }
    assert_eq!(app.table_counts(), before, "a refused command wrote");

    app.cli_ok(&[
        "apis",
        "add",
        "https://api.example.com",
        "--name",
        "A",
        "--scope",
        "read write",
    ])
    .await;
    app.cli_ok(&["roles", "set", "readers", "--scope", "read"])
        .await;
    let roles = app.cli_ok(&["roles", "list", "--json"]).await.json();
    let readers = roles
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "readers")
        .unwrap()
        .clone();
    assert_eq!(readers["scopes"], serde_json::json!(["read"]));
    for flag in ["--scopes", "--scope"] {
        let key = app
            .cli_create_key(&[
                "--owner",
                "alice@example.com",
                "--name",
                flag.trim_start_matches('-'),
                flag,
                "read write",
                "--audience",
                "https://api.example.com",
            ])
            .await;
        assert_eq!(key.json["scopes"], serde_json::json!(["read", "write"]));
    }
}

/// `users enable` undoes `users disable`: the owner's keys work again, and
/// both changes are audited as the command line's.
async fn users_enable_undoes_disable(engine: Engine) {
    let app = spawn_app(engine).await;
    let key = app.standard_key("read").await;
    app.access_token(&key).await;
    app.cli_ok(&["users", "disable", "alice@example.com"]).await;
    let refused = app
        .token_for(&key, &[("grant_type", "client_credentials")])
        .await;
    assert_eq!(refused.status(), 401);
    let out = app.cli_ok(&["users", "enable", "alice@example.com"]).await;
    assert!(
        out.stdout.contains("enabled user alice@example.com"),
        "{}",
        out.stdout
    );
    app.access_token(&key).await;
    let users = app.cli_ok(&["users", "list", "--json"]).await.json();
    assert_eq!(users[0]["disabled"], false, "{users}");

    let unknown = app.cli(&["users", "enable", "nobody@example.com"]).await;
    assert!(!unknown.status.success());
    assert_eq!(
        unknown.stderr.trim().lines().count(),
        1,
        "{}",
        unknown.stderr
    );

    let events = keygate::audit::list_events(&mut app.db(), None, 100, 0).unwrap();
    let seen: Vec<(&str, &str, &str)> = events
        .iter()
        .map(|e| (e.actor.as_str(), e.action.as_str(), e.target.as_str()))
        .filter(|(_, action, _)| action.starts_with("user.") && *action != "user.created")
        .collect();
    assert_eq!(
        seen,
        [
            ("command line", "user.enabled", "alice@example.com"),
            ("command line", "user.disabled", "alice@example.com"),
        ]
    );
}

/// The quick start: `users add EMAIL --role admin` with mail going to files
/// prints a link that sets the first admin's password; a weak password on
/// stdin is refused and writes nothing.
async fn users_add_prints_the_invitation_link_when_mail_goes_to_files(engine: Engine) {
    let app = spawn_app(engine).await;
    let out = app
        .cli_ok(&["users", "add", "you@example.com", "--role", "admin"])
        .await;
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", out.stdout);
    assert!(
        lines[0].starts_with("added user you@example.com with role admin"),
        "{}",
        out.stdout
    );
    let link = lines[2];
    assert!(
        link.starts_with(&format!("{}/set-password?token=", app.issuer)),
        "{link}"
    );
    let token = link_token(link).unwrap();
    assert_eq!(token.len(), 43, "256 bits, base64url");
    assert!(!out.stderr.contains(&token));
    let queued = "SELECT COUNT(*) AS n FROM email_outbox WHERE event = 'invitation' \
                  AND recipient = 'you@example.com'";
    assert_eq!(app.count_rows(queued), 1);
    let state = app.state();
    keygate::accounts::set_password_with_link(
        &state,
        &token,
        "correct horse battery",
        state.clock.now(),
    )
    .await
    .unwrap();
    app.sign_in("you@example.com", "correct horse battery")
        .await;

    let before = app.table_counts();
    for (password, message) in [
        ("short\n", "at least 12 characters"),
        ("password1234\n", "commonly used"),
        ("weak@example.com\n", "email address"),
    ] {
        let out = app
            .cli_with_stdin(
                &["users", "add", "weak@example.com", "--password-stdin"],
                Some(password),
            )
            .await;
        assert!(!out.status.success());
        assert_eq!(out.stderr.trim().lines().count(), 1, "{}", out.stderr);
        assert!(out.stderr.contains(message), "{}", out.stderr);
    }
    assert_eq!(app.table_counts(), before);
}

/// `users set` changes a role and switches key creation off and on;
/// existing keys keep working; each change is audited.
async fn users_set_changes_role_and_key_creation(engine: Engine) {
    let app = spawn_app(engine).await;
    let key = app.standard_key("read").await;
    let out = app
        .cli_ok(&[
            "users",
            "set",
            "alice@example.com",
            "--can-create-keys",
            "false",
        ])
        .await;
    assert_eq!(
        out.stdout.trim(),
        "updated user alice@example.com: role member, key creation off"
    );
    let before = app.table_counts();
    let refused = app
        .cli(&[
            "keys",
            "create",
            "--owner",
            "alice@example.com",
            "--name",
            "more",
        ])
        .await;
    assert!(!refused.status.success());
    assert!(
        refused.stderr.contains("switched key creation off"),
        "{}",
        refused.stderr
    );
    assert_eq!(app.table_counts(), before);
    app.access_token(&key).await;

    let out = app
        .cli_ok(&[
            "users",
            "set",
            "alice@example.com",
            "--role",
            "admin",
            "--can-create-keys",
            "true",
        ])
        .await;
    assert!(
        out.stdout.contains("role admin, key creation on"),
        "{}",
        out.stdout
    );
    app.cli_ok(&[
        "keys",
        "create",
        "--owner",
        "alice@example.com",
        "--name",
        "more",
    ])
    .await;

    for args in [
        &["users", "set", "alice@example.com"][..],
        &["users", "set", "alice@example.com", "--role", "nonexistent"],
        &["users", "set", "nobody@example.com", "--role", "admin"],
    ] {
        let before = app.table_counts();
        let out = app.cli(args).await;
        assert!(!out.status.success(), "{args:?}");
        assert_eq!(out.stderr.trim().lines().count(), 1, "{}", out.stderr);
        assert_eq!(app.table_counts(), before, "{args:?}");
    }
    let bad = app
        .cli(&[
            "users",
            "set",
            "alice@example.com",
            "--can-create-keys",
            "maybe",
        ])
        .await;
    assert_eq!(bad.status.code(), Some(2), "{}", bad.stderr);

    let events = keygate::audit::list_events(&mut app.db(), None, 100, 0).unwrap();
    let updates: Vec<&str> = events
        .iter()
        .filter(|e| e.action == "user.updated")
        .map(|e| e.details.as_str())
        .collect();
    assert_eq!(updates.len(), 2, "{updates:?}");
    assert!(updates[0].contains(r#""role":"admin""#), "{updates:?}");
    assert!(
        updates[1].contains(r#""can_create_keys":false"#),
        "{updates:?}"
    );
}

/// `KEYGATE_MAX_KEYS_PER_USER=1` on the command line: a second active key
/// is refused with the way out, and nothing is written; after a revocation
/// there is room again.
async fn the_key_limit_holds_on_the_cli(engine: Engine) {
    let app = TestApp::builder(engine)
        .vars(&[("KEYGATE_MAX_KEYS_PER_USER", "1")])
        .start()
        .await;
    let key = app.standard_key("read").await;
    let before = app.table_counts();
    let args = [
        "keys",
        "create",
        "--owner",
        "alice@example.com",
        "--name",
        "second",
        "--scopes",
        "read",
    ];
    let refused = app.cli(&args).await;
    assert!(!refused.status.success());
    assert_eq!(
        refused.stderr.trim().lines().count(),
        1,
        "{}",
        refused.stderr
    );
    assert!(
        refused.stderr.contains("revoke one first"),
        "{}",
        refused.stderr
    );
    assert!(
        refused.stderr.contains("KEYGATE_MAX_KEYS_PER_USER=1"),
        "{}",
        refused.stderr
    );
    assert_eq!(app.table_counts(), before);
    app.cli_ok(&["keys", "revoke", &key.client_id]).await;
    app.cli_ok(&args).await;
}

/// A bad account setting stops start-up with one line naming it.
#[tokio::test]
async fn bad_account_settings_stop_start_up() {
    let dir = tempfile::tempdir().unwrap();
    for (variable, value) in [
        ("KEYGATE_SESSION_IDLE", "forever"),
        ("KEYGATE_SESSION_MAX", "90d"),
        ("KEYGATE_INVITE_TTL", "0"),
        ("KEYGATE_MAX_KEYS_PER_USER", "none"),
    ] {
        let out = run_in(dir.path(), &[(variable, value)], &["serve"]).await;
        assert_eq!(out.status.code(), Some(2), "{variable}: {}", out.stderr);
        let lines: Vec<&str> = out.stderr.trim().lines().collect();
        assert_eq!(lines.len(), 1, "{}", out.stderr);
        assert!(
            lines[0].starts_with(&format!("error: {variable}: ")),
            "{}",
            lines[0]
        );
    }
    assert_empty(dir.path());
}

both_engines!(
    migrate_says_how_many_migrations_it_applied,
    scope_lists_take_one_spelling_and_no_comma,
    users_enable_undoes_disable,
    users_add_prints_the_invitation_link_when_mail_goes_to_files,
    users_set_changes_role_and_key_creation,
    the_key_limit_holds_on_the_cli,
);
