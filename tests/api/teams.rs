//! Teams (INTERFACE.md "Teams, transfers and approvals"): made, listed and
//! changed on the command line and over the management API, refusals that
//! change nothing, a team's keys created by a member on both, and the wall
//! between teams: a member never sees another team's key.

use reqwest::Method;
use serde_json::{Value, json};

mod api;

use crate::both_engines;
use crate::helpers::{Engine, TestApp, assert_one_line_refusal, spawn_app};

const API: &str = "https://api.example.com";
const ROOT: &str = "root@example.com";
const ALICE: &str = "alice@example.com";
const BOB: &str = "bob@example.com";
const CAROL: &str = "carol@example.com";
const CC: (&str, &str) = ("grant_type", "client_credentials");

/// What a failed command must leave as it was: every table's row count,
/// the keys as listed and the teams as listed.
async fn snapshot(app: &TestApp) -> (Vec<(String, i64)>, Value, Value) {
    let teams = app.cli_ok(&["teams", "list", "--json"]).await.json();
    (app.table_counts(), app.listed_keys().await, teams)
}

fn team_names(list: &Value) -> Vec<&str> {
    list.as_array()
        .expect("a list")
        .iter()
        .map(|t| t["name"].as_str().expect("name"))
        .collect()
}

/// `teams add`, `teams list`, `teams members add/remove`, `teams
/// disable/enable` on the command line, audited as its own; every refusal
/// is one line and writes nothing.
async fn teams_are_made_listed_and_changed_on_the_cli(engine: Engine) {
    let app = spawn_app(engine).await;
    for who in [ALICE, BOB, CAROL] {
        app.add_user(who, "member").await;
    }
    app.cli_ok(&["users", "disable", CAROL]).await;
    let added = app
        .cli_ok(&[
            "teams",
            "add",
            "payments",
            "--role",
            "member",
            "--notify",
            "Pay-Alerts@Example.com",
            "--description",
            "Card payments",
        ])
        .await;
    assert_eq!(
        added.stdout.trim(),
        "added team payments with role member; emails about its keys go to \
         pay-alerts@example.com"
    );
    app.cli_ok(&["teams", "add", "data-eng-2"]).await;
    for who in [BOB, ALICE] {
        let out = app
            .cli_ok(&["teams", "members", "add", "payments", who])
            .await;
        assert!(
            out.stdout.contains("is a member of team payments"),
            "{}",
            out.stdout
        );
    }
    // Adding a member again changes nothing.
    app.cli_ok(&["teams", "members", "add", "payments", ALICE])
        .await;

    let list = app.cli_ok(&["teams", "list", "--json"]).await.json();
    assert_eq!(team_names(&list), ["data-eng-2", "payments"]);
    let payments = &list[1];
    for (field, value) in [
        ("name", json!("payments")),
        ("role", json!("member")),
        ("notify", json!("pay-alerts@example.com")),
        ("description", json!("Card payments")),
        ("disabled", json!(false)),
        ("members", json!([ALICE, BOB])),
    ] {
        assert_eq!(payments[field], value, "{field} in {payments}");
    }
    assert!(payments.get("id").is_none(), "{payments}");
    assert_eq!(list[0]["notify"], Value::Null);
    assert_eq!(list[0]["members"], json!([]));
    let text = app.cli_ok(&["teams", "list"]).await.stdout;
    assert!(
        text.contains(
            "payments\trole member\tenabled\tnotify pay-alerts@example.com\t\
             members alice@example.com, bob@example.com\tCard payments"
        ),
        "{text}"
    );
    assert!(
        text.contains("data-eng-2\trole member\tenabled\tnotify every enabled member\tmembers -"),
        "{text}"
    );

    let before = snapshot(&app).await;
    let refusals: [(&[&str], &[&str]); 11] = [
        (
            &["teams", "add", "Payments"],
            &["\"Payments\" is not a valid team name"],
        ),
        (&["teams", "add", "ops."], &["not a valid team name"]),
        (&["teams", "add", "a_b"], &["not a valid team name"]),
        (
            &["teams", "add", "payments"],
            &["a team named payments already exists"],
        ),
        (
            &["teams", "add", "ops", "--role", "nope"],
            &["no role named \"nope\""],
        ),
        (
            &["teams", "add", "ops", "--notify", "not an email"],
            &["not a valid email address"],
        ),
        (
            &["teams", "members", "add", "nope", ALICE],
            &["no team named \"nope\""],
        ),
        (
            &["teams", "members", "add", "payments", "dave@example.com"],
            &["no user with email dave@example.com"],
        ),
        (
            &["teams", "members", "add", "payments", CAROL],
            &["carol@example.com is disabled"],
        ),
        (
            &["teams", "members", "remove", "data-eng-2", ALICE],
            &["is not a member of team data-eng-2"],
        ),
        (&["teams", "disable", "nope"], &["no team named \"nope\""]),
    ];
    for (args, words) in refusals {
        let out = app.cli(args).await;
        assert_one_line_refusal(&out, words);
    }
    assert_eq!(snapshot(&app).await, before);

    let removed = app
        .cli_ok(&["teams", "members", "remove", "payments", BOB])
        .await;
    assert!(
        removed.stdout.contains("the team's keys keep working"),
        "{}",
        removed.stdout
    );
    let disabled = app.cli_ok(&["teams", "disable", "payments"]).await;
    assert_eq!(
        disabled.stdout.trim(),
        "disabled team payments; its keys no longer work"
    );
    assert_eq!(
        app.cli_ok(&["teams", "list", "--json"]).await.json()[1]["disabled"],
        true
    );
    app.cli_ok(&["teams", "enable", "payments"]).await;
    let list = app.cli_ok(&["teams", "list", "--json"]).await.json();
    assert_eq!(list[1]["disabled"], false);
    assert_eq!(list[1]["members"], json!([ALICE]));

    let events = keygate::audit::list_events(&mut app.db(), Some("team:payments"), 100, 0).unwrap();
    let seen: Vec<(&str, &str)> = events
        .iter()
        .rev()
        .map(|e| (e.actor.as_str(), e.action.as_str()))
        .collect();
    assert_eq!(
        seen,
        [
            ("command line", "team.created"),
            ("command line", "team.member_added"),
            ("command line", "team.member_added"),
            ("command line", "team.member_removed"),
            ("command line", "team.updated"),
            ("command line", "team.updated"),
        ]
    );
}

both_engines!(teams_are_made_listed_and_changed_on_the_cli);
