//! Transfers (INTERFACE.md "Teams, transfers and approvals"): a key given
//! to a team and back on the command line and over the API keeps its
//! client ID and secret, is audited and emailed to both sides; every
//! refusal changes nothing; `users disable --transfer-keys-to(-team)` moves
//! every live key or none; and a transfer racing a revocation ends one way
//! or the other, never half-way.

use std::time::Duration;

use keygate::jobs::Job;
use reqwest::Method;
use serde_json::{Value, json};

mod leaving;

use crate::both_engines;
use crate::helpers::mail::{SmtpSink, outbox};
use crate::helpers::{Engine, Key, KeySpec, TestApp, assert_one_line_refusal, spawn_app};

const API: &str = "https://api.example.com";
const ROOT: &str = "root@example.com";
const ALICE: &str = "alice@example.com";
const BOB: &str = "bob@example.com";
const CAROL: &str = "carol@example.com";
const OPS_LIST: &str = "ops-alerts@example.com";
const CC: (&str, &str) = ("grant_type", "client_credentials");

async fn token_status(app: &TestApp, key: &Key) -> u16 {
    app.token_for(key, &[CC]).await.status().as_u16()
}

/// The `key.transferred` events of a key, oldest first: (actor, details).
fn transfers_of(app: &TestApp, client_id: &str) -> Vec<(String, Value)> {
    let events = keygate::audit::list_events(&mut app.db(), Some(client_id), 100, 0).unwrap();
    events
        .iter()
        .rev()
        .filter(|e| e.action == "key.transferred")
        .map(|e| (e.actor.clone(), serde_json::from_str(&e.details).unwrap()))
        .collect()
}

fn owners(from: (Option<&str>, Option<&str>), to: (Option<&str>, Option<&str>)) -> Value {
    json!({
        "from": { "owner": from.0, "team": from.1 },
        "to": { "owner": to.0, "team": to.1 },
    })
}

/// What a refused command or request must leave as it was.
async fn state(app: &TestApp) -> (Vec<(String, i64)>, Value) {
    (app.table_counts(), app.listed_keys().await)
}

/// A key given to a team, then to a person, on the command line: the same
/// client ID and secret keep getting tokens; each transfer is audited with
/// from and to, and both sides get a "transferred" email (a team's at its
/// notify address) through the real SMTP server.
async fn a_key_moves_to_a_team_and_on_to_a_person_keeping_its_secret(engine: Engine) {
    let smtp = SmtpSink::started().await;
    let app = smtp.app_on_demand(engine).start().await;
    app.add_owner_and_api(ALICE).await;
    app.add_user(BOB, "member").await;
    app.add_team_notifying("ops", "member", Some(OPS_LIST), &[ALICE])
        .await;
    let key = app.create_key(KeySpec::reader(ALICE, "ci")).await;
    app.run_job(Job::MailDelivery).await;
    smtp.wait_for(1, Duration::from_secs(20)).await;

    let moved = app
        .cli_ok(&[
            "keys",
            "transfer",
            &key.client_id,
            "--to-team",
            "ops",
            "--reason",
            "alice moves to ops",
            "--json",
        ])
        .await
        .json();
    for (field, value) in [
        ("client_id", json!(key.client_id)),
        ("owner", Value::Null),
        ("team", json!("ops")),
        ("created_by", json!("command line")),
        ("status", json!("active")),
    ] {
        assert_eq!(moved[field], value, "{field} in {moved}");
    }
    assert!(moved.get("client_secret").is_none(), "{moved}");
    assert_eq!(token_status(&app, &key).await, 200);

    let out = app
        .cli_ok(&[
            "keys",
            "transfer",
            &key.client_id,
            "--to",
            "Bob@Example.com",
        ])
        .await;
    assert_eq!(
        out.stdout.trim(),
        format!(
            "transferred key {} (ci, created by command line) to {BOB}; its client ID and \
             secret are unchanged",
            key.client_id
        )
    );
    assert_eq!(token_status(&app, &key).await, 200);
    let listed = app.listed_key(&key.client_id).await;
    assert_eq!(
        (&listed["owner"], &listed["team"]),
        (&json!(BOB), &Value::Null)
    );

    let mut expected_first = owners((Some(ALICE), None), (None, Some("ops")));
    expected_first["reason"] = json!("alice moves to ops");
    let mut expected_second = owners((None, Some("ops")), (Some(BOB), None));
    expected_second["reason"] = Value::Null;
    assert_eq!(
        transfers_of(&app, &key.client_id),
        [
            ("command line".to_owned(), expected_first),
            ("command line".to_owned(), expected_second),
        ]
    );

    app.run_job(Job::MailDelivery).await;
    let messages = smtp.wait_for(5, Duration::from_secs(20)).await;
    let mut transferred: Vec<(String, String)> = messages
        .iter()
        .filter(|m| m.subject.contains("transferred"))
        .map(|m| {
            m.assert_well_formed(&m.to, &key);
            (m.to.clone(), m.subject.clone())
        })
        .collect();
    transferred.sort();
    let subject = |to: &str| format!("[keygate] API key \"ci\" transferred to {to}");
    assert_eq!(
        transferred,
        [
            (ALICE.to_owned(), subject("team ops")),
            (BOB.to_owned(), subject(BOB)),
            (OPS_LIST.to_owned(), subject(BOB)),
            (OPS_LIST.to_owned(), subject("team ops")),
        ]
    );
}

/// An admin with a `keygate:admin` token, alice and bob managing their own
/// keys over the API, the API, and the team ops (alice).
struct World {
    app: TestApp,
    admin: String,
    alice: String,
    bob: String,
    /// Alice's key `ci` holding `read`.
    ci: Key,
}

async fn world(engine: Engine) -> World {
    let app = spawn_app(engine).await;
    app.add_user(ROOT, "admin").await;
    app.add_api(API, "A", "read write").await;
    app.set_role("self-service", "keygate:keys read write")
        .await;
    app.add_user(ALICE, "self-service").await;
    app.add_user(BOB, "self-service").await;
    app.add_team("ops", "member", &[ALICE]).await;
    let mut tokens = Vec::new();
    for (owner, scope) in [
        (ROOT, "keygate:admin"),
        (ALICE, "keygate:keys"),
        (BOB, "keygate:keys"),
    ] {
        let key = app
            .create_key(KeySpec::new(owner, "api").scopes(scope))
            .await;
        tokens.push(app.token_string(&key).await);
    }
    let ci = app.create_key(KeySpec::reader(ALICE, "ci")).await;
    let bob = tokens.pop().expect("bob");
    let alice = tokens.pop().expect("alice");
    let admin = tokens.pop().expect("admin");
    World {
        app,
        admin,
        alice,
        bob,
        ci,
    }
}

/// Over the API: alice gives her key to her team, an admin gives it on to
/// bob; the secret keeps working. Someone who cannot see the key gets 404;
/// a body naming no new owner, or two, is a 400.
async fn a_member_and_an_admin_transfer_over_the_api(engine: Engine) {
    let w = world(engine).await;
    let (app, id) = (&w.app, w.ci.client_id.as_str());
    let path = format!("/keys/{id}/transfer");
    let before = state(app).await;
    for body in [
        json!({}),
        json!({"to": BOB, "to_team": "ops"}),
        json!({"to": BOB, "because": "x"}),
    ] {
        app.api_refused(
            (Method::POST, &path, Some(body)),
            &w.alice,
            (400, "invalid_request"),
        )
        .await;
    }
    app.api_refused(
        (Method::POST, &path, Some(json!({"to": BOB}))),
        &w.bob,
        (404, "key_not_found"),
    )
    .await;
    assert_eq!(state(app).await, before);

    let moved = app
        .api_expect(
            Method::POST,
            &w.alice,
            &path,
            Some(json!({"to_team": "ops", "reason": "shared"})),
            200,
        )
        .await;
    assert_eq!(
        (&moved["owner"], &moved["team"]),
        (&Value::Null, &json!("ops"))
    );
    assert_eq!(moved["client_id"], id);
    assert_eq!(token_status(app, &w.ci).await, 200);
    // Still hers to see: she is in the team.
    app.api_expect(Method::GET, &w.alice, &format!("/keys/{id}"), None, 200)
        .await;

    let moved = app
        .api_expect(Method::POST, &w.admin, &path, Some(json!({"to": BOB})), 200)
        .await;
    assert_eq!(
        (&moved["owner"], &moved["team"]),
        (&json!(BOB), &Value::Null)
    );
    assert_eq!(token_status(app, &w.ci).await, 200);
    app.api_refused(
        (Method::GET, &format!("/keys/{id}"), None),
        &w.alice,
        (404, "key_not_found"),
    )
    .await;
    app.api_expect(Method::GET, &w.bob, &format!("/keys/{id}"), None, 200)
        .await;
    let actors: Vec<String> = transfers_of(app, id).into_iter().map(|(a, _)| a).collect();
    assert_eq!(actors, [ALICE, ROOT]);
}

/// Every refusal the contract lists, on the command line and over the API:
/// one line (or a 4xx with its code) naming the cause, and nothing changed.
async fn refused_transfers_change_nothing(engine: Engine) {
    let w = world(engine).await;
    let app = &w.app;
    app.set_role("readers", "read").await;
    app.add_team("readers", "readers", &[]).await;
    app.add_team("frozen", "member", &[]).await;
    app.cli_ok(&["teams", "disable", "frozen"]).await;
    app.add_user(CAROL, "member").await;
    app.cli_ok(&["users", "disable", CAROL]).await;
    let rw = app
        .create_key(KeySpec::reader(ALICE, "rw").scopes("read write"))
        .await;
    let revoked = app.create_key(KeySpec::reader(ALICE, "gone")).await;
    app.cli_ok(&["keys", "revoke", &revoked.client_id]).await;
    // Made two hours ago for one hour: expired by every clock.
    app.advance_clock(chrono::Duration::hours(-2));
    let expired = app
        .create_key(KeySpec::reader(ALICE, "old").expires_in("1h"))
        .await;
    app.advance_clock(chrono::Duration::hours(2));
    let ci = w.ci.client_id.as_str();

    let before = state(app).await;
    let cli_refusals: [(&[&str], &[&str]); 10] = [
        (&[&revoked.client_id, "--to", BOB], &["is revoked"]),
        (&[&expired.client_id, "--to", BOB], &["has expired"]),
        (
            &[ci, "--to", CAROL],
            &["user carol@example.com is disabled"],
        ),
        (&[ci, "--to-team", "frozen"], &["team frozen is disabled"]),
        (
            &[ci, "--to", "dave@example.com"],
            &["no user with email dave@example.com"],
        ),
        (&[ci, "--to-team", "nope"], &["no team named \"nope\""]),
        (
            &[ci, "--to", ALICE],
            &["already belongs to alice@example.com"],
        ),
        (
            &[&rw.client_id, "--to-team", "readers"],
            &[
                "team readers may not hold key",
                "role \"readers\" may not grant write",
            ],
        ),
        (
            &["kgc_nope", "--to", BOB],
            &["no key with client ID kgc_nope"],
        ),
        (
            &[ci, "--to", BOB, "--reason", "a\u{1b}b"],
            &["reason may not contain control characters"],
        ),
    ];
    for (args, words) in cli_refusals {
        let mut all = vec!["keys", "transfer"];
        all.extend_from_slice(args);
        let out = app.cli(&all).await;
        assert_one_line_refusal(&out, words);
    }
    for args in [
        &["keys", "transfer", ci][..],
        &["keys", "transfer", ci, "--to", BOB, "--to-team", "ops"],
    ] {
        let out = app.cli(args).await;
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", out.stderr);
    }

    let api_refusals = [
        (
            revoked.client_id.as_str(),
            json!({"to": BOB}),
            409,
            "key_revoked",
        ),
        (
            expired.client_id.as_str(),
            json!({"to": BOB}),
            409,
            "key_expired",
        ),
        (ci, json!({"to": CAROL}), 422, "owner_disabled"),
        (ci, json!({"to_team": "frozen"}), 422, "team_disabled"),
        (ci, json!({"to": "dave@example.com"}), 404, "user_not_found"),
        (ci, json!({"to_team": "nope"}), 404, "team_not_found"),
        (ci, json!({"to": ALICE}), 409, "same_owner"),
        (
            rw.client_id.as_str(),
            json!({"to_team": "readers"}),
            403,
            "scope_not_grantable",
        ),
    ];
    for (id, body, status, code) in api_refusals {
        let path = format!("/keys/{id}/transfer");
        let message = app
            .api_refused((Method::POST, &path, Some(body)), &w.admin, (status, code))
            .await;
        if code == "scope_not_grantable" {
            assert!(message.contains("may not grant write"), "{message}");
        }
    }
    assert_eq!(state(app).await, before);
    assert_eq!(token_status(app, &rw).await, 200);
}

/// A transfer and a revocation of the same key, by two `keygate` processes
/// started at once, round after round: the revocation always succeeds; the
/// transfer either came first (the key is the team's, and the revocation's
/// email went to the team) or is refused because the key is revoked (the
/// key is still alice's, and so was the email). Never anything between.
async fn a_transfer_racing_a_revocation_ends_one_way_or_the_other(engine: Engine) {
    let app = spawn_app(engine).await;
    app.add_owner_and_api(ALICE).await;
    app.add_team_notifying("ops", "member", Some(OPS_LIST), &[])
        .await;
    let (mut transfer_first, mut revoke_first) = (0, 0);
    for round in 0..8 {
        let key = app
            .create_key(KeySpec::reader(ALICE, &format!("race-{round}")))
            .await;
        let id = key.client_id.as_str();
        let transfer_args = ["keys", "transfer", id, "--to-team", "ops"];
        let revoke_args = ["keys", "revoke", id];
        let (transfer, revoke) = tokio::join!(app.cli(&transfer_args), app.cli(&revoke_args));
        assert!(revoke.status.success(), "round {round}: {}", revoke.stderr);
        let listed = app.listed_key(id).await;
        assert_eq!(listed["status"], "revoked", "round {round}");
        let transfers = transfers_of(&app, id).len();
        let revocations = app.count_rows(&format!(
            "SELECT COUNT(*) AS n FROM audit_events WHERE action = 'key.revoked' AND target = '{id}'"
        ));
        assert_eq!(revocations, 1, "round {round}");
        let told: Vec<String> = outbox(&app)
            .into_iter()
            .filter(|row| row.event == "revoked" && row.body.contains(id))
            .map(|row| row.recipient)
            .collect();
        if transfer.status.success() {
            transfer_first += 1;
            assert_eq!(
                (&listed["owner"], &listed["team"]),
                (&Value::Null, &json!("ops")),
                "round {round}"
            );
            assert_eq!(transfers, 1, "round {round}");
            assert_eq!(told, [OPS_LIST], "round {round}");
        } else {
            revoke_first += 1;
            assert_one_line_refusal(&transfer, &[&format!("key {id} is revoked")]);
            assert_eq!(
                (&listed["owner"], &listed["team"]),
                (&json!(ALICE), &Value::Null),
                "round {round}"
            );
            assert_eq!(transfers, 0, "round {round}");
            assert_eq!(told, [ALICE], "round {round}");
        }
    }
    println!("transfer first {transfer_first} times, revocation first {revoke_first} times");
}

both_engines!(
    a_key_moves_to_a_team_and_on_to_a_person_keeping_its_secret,
    a_member_and_an_admin_transfer_over_the_api,
    refused_transfers_change_nothing,
    a_transfer_racing_a_revocation_ends_one_way_or_the_other,
);
