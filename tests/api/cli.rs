//! The command line as a newcomer meets it: clap's whole error and usage,
//! one spelling for a scope list, `users enable`, `serve --help`, and a
//! mistyped SQLite path that is refused instead of becoming a new database.

use std::path::Path;

use crate::both_engines;
use crate::helpers::{CliOutput, Engine, spawn_app};

/// The variables of INTERFACE.md's configuration table that keygate reads
/// today (the session, invitation, key-limit and GitHub ones come with
/// their features).
const CONTRACT_VARIABLES: [&str; 14] = [
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
    "KEYGATE_TRUSTED_PROXIES",
    "KEYGATE_METRICS_ALLOW_FROM",
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

/// `--scopes` on every command that takes a scope list, `--scope` as its
/// alias, and a list with a comma refused with one line, writing nothing.
async fn scope_lists_take_one_spelling_and_no_comma(engine: Engine) {
    let app = spawn_app(engine).await;
    app.cli_ok(&["users", "add", "alice@example.com"]).await;
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
            .create_key(&[
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

both_engines!(
    scope_lists_take_one_spelling_and_no_comma,
    users_enable_undoes_disable
);
