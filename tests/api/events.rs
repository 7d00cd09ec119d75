//! Every event type of the contract ("Events out"), each caused the way a
//! person or a job causes it (the real `keygate` binary, the HTTP
//! endpoints, the jobs on the test clock), lands in the outbox of an
//! endpoint that wants every type: once, with its payload, never a secret.

use std::collections::BTreeMap;

use diesel::prelude::*;
use keygate::db::schema::webhook_deliveries;
use keygate::events::EventType;
use keygate::jobs::Job;
use serde_json::Value;

use crate::both_engines;
use crate::helpers::{Engine, KeySpec, TestApp};

const API: &str = "https://api.example.com";
const ALICE: &str = "alice@example.com";
const BOB: &str = "bob@example.com";

/// The outbox's payloads by type, oldest first.
fn payloads(app: &TestApp) -> BTreeMap<String, Vec<Value>> {
    let rows: Vec<(String, String)> = webhook_deliveries::table
        .order((webhook_deliveries::created_at, webhook_deliveries::id))
        .select((webhook_deliveries::event_type, webhook_deliveries::body))
        .load(&mut app.db())
        .expect("the outbox");
    let mut by_type: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for (kind, body) in rows {
        let body: Value = serde_json::from_str(&body).expect("a JSON body");
        assert_eq!(body["type"], kind.as_str(), "{body}");
        by_type.entry(kind).or_default().push(body);
    }
    by_type
}

async fn every_event_type_comes_from_its_path(engine: Engine) {
    let app = TestApp::builder(engine).jobs_on_demand().start().await;
    let added = app
        .cli_ok(&["webhooks", "add", "http://127.0.0.1:9/all", "--json"])
        .await
        .json();
    let endpoint = added["id"].as_str().expect("an endpoint ID").to_owned();
    let mut secrets = vec![added["secret"].as_str().expect("its secret").to_owned()];

    // People, on the command line.
    for (email, role) in [
        ("root@example.com", "admin"),
        (ALICE, "member"),
        (BOB, "member"),
    ] {
        app.cli_ok(&["users", "add", email, "--role", role]).await;
    }
    app.cli_ok(&["users", "disable", BOB]).await;
    app.cli_ok(&["users", "enable", BOB]).await;
    app.cli_ok(&["apis", "add", API, "--name", "A", "--scopes", "read write"])
        .await;
    app.set_approval_scopes(API, "write").await;

    // Keys: made, rotated, revoked, moved on the command line.
    let key = |name: &str| {
        let name = name.to_owned();
        let app = &app;
        async move {
            app.cli_create_key(&[
                "--owner",
                ALICE,
                "--name",
                &name,
                "--scopes",
                "read",
                "--audience",
                API,
            ])
            .await
        }
    };
    let rotated = key("rotated").await;
    let again = app
        .cli_ok(&["keys", "rotate", &rotated.client_id, "--json"])
        .await
        .json();
    secrets.push(rotated.client_secret.clone());
    secrets.push(
        again["client_secret"]
            .as_str()
            .expect("new secret")
            .to_owned(),
    );
    let revoked = key("revoked").await;
    app.cli_ok(&["keys", "revoke", &revoked.client_id, "--reason", "done"])
        .await;
    let moved = key("moved").await;
    app.cli_ok(&[
        "keys",
        "transfer",
        &moved.client_id,
        "--to",
        BOB,
        "--reason",
        "handover",
    ])
    .await;
    secrets.extend([revoked.client_secret, moved.client_secret]);

    // A leak report over HTTP revokes a key.
    let leaked = key("leaked").await;
    let response = app
        .http
        .post(format!("{}/oauth/exposed", app.address))
        .json(&[leaked.client_secret.as_str()])
        .send()
        .await
        .expect("a report");
    assert_eq!(response.status(), 202);
    secrets.push(leaked.client_secret);

    // Approval: asked for by a person, decided on the command line.
    let approved = app
        .create_key(
            KeySpec::new(ALICE, "asks")
                .scopes("write")
                .requested_by(ALICE),
        )
        .await;
    app.cli_ok(&["keys", "approve", &approved.client_id]).await;
    let denied = app
        .create_key(
            KeySpec::new(ALICE, "asks too")
                .scopes("write")
                .requested_by(ALICE),
        )
        .await;
    app.cli_ok(&["keys", "deny", &denied.client_id, "--reason", "not now"])
        .await;
    secrets.extend([approved.client_secret, denied.client_secret]);

    app.cli_ok(&["signing-keys", "rotate"]).await;
    app.cli_ok(&["webhooks", "test", &endpoint]).await;

    // The jobs, on the test clock: a key's expiry warning, then its expiry.
    let expiring = app
        .create_key(KeySpec::new(ALICE, "short").scopes("read").expires_in("3d"))
        .await;
    secrets.push(expiring.client_secret.clone());
    app.run_job(Job::ExpirySweep).await;
    app.advance_clock(chrono::Duration::days(4));
    app.run_job(Job::ExpirySweep).await;

    let by_type = payloads(&app);
    let seen: Vec<&str> = by_type.keys().map(String::as_str).collect();
    let mut every: Vec<&str> = EventType::ALL.iter().map(|t| t.as_str()).collect();
    every.sort_unstable();
    assert_eq!(seen, every, "one endpoint wanting every type got each");

    let one = |kind: &str, client_id: &str| -> Value {
        let of_key: Vec<&Value> = by_type[kind]
            .iter()
            .filter(|b| b["data"]["client_id"] == client_id)
            .collect();
        assert_eq!(of_key.len(), 1, "{kind} of {client_id}: {of_key:?}");
        of_key[0].clone()
    };
    let created = one("key.created", &rotated.client_id);
    assert_eq!(created["data"]["actor"], "command line");
    assert_eq!(created["data"]["owner"], ALICE);
    assert_eq!(created["data"]["status"], "active");
    assert!(one("key.rotated", &rotated.client_id)["data"]["rotated_at"].is_string());
    assert_eq!(
        one("key.revoked", &revoked.client_id)["data"]["reason"],
        "done"
    );
    let transfer = one("key.transferred", &moved.client_id);
    assert_eq!(transfer["data"]["owner"], BOB);
    assert_eq!(transfer["data"]["reason"], "handover");
    let exposed = one("key.exposed", &leaked.client_id);
    assert_eq!(exposed["data"]["status"], "revoked");
    assert!(
        exposed["data"]["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("exposed")),
        "{exposed}"
    );
    let requested = one("key.approval_requested", &approved.client_id);
    assert_eq!(requested["data"]["actor"], ALICE);
    assert_eq!(requested["data"]["status"], "pending");
    assert_eq!(
        one("key.approved", &approved.client_id)["data"]["status"],
        "active"
    );
    assert_eq!(
        one("key.denied", &denied.client_id)["data"]["reason"],
        "denied: not now"
    );
    for kind in ["key.expiring", "key.expired"] {
        assert_eq!(
            one(kind, &expiring.client_id)["data"]["actor"],
            "keygate",
            "{kind}"
        );
    }
    let people = |kind: &str| -> Vec<String> {
        by_type[kind]
            .iter()
            .map(|b| b["data"]["email"].as_str().expect("an email").to_owned())
            .collect()
    };
    assert_eq!(people("user.created"), ["root@example.com", ALICE, BOB]);
    assert_eq!(people("user.disabled"), [BOB]);
    assert_eq!(people("user.enabled"), [BOB]);
    assert!(by_type["signing_key.rotated"][0]["data"]["kid"].is_string());
    assert_eq!(
        by_type["webhook.test"][0]["data"]["endpoint_id"],
        endpoint.as_str()
    );

    // Never a secret: not the keys', not the endpoint's.
    for body in by_type.values().flatten() {
        let text = body.to_string();
        assert!(body["data"].get("client_secret").is_none(), "{text}");
        for secret in &secrets {
            assert!(!text.contains(secret.as_str()), "a secret in {text}");
        }
    }
}

both_engines!(every_event_type_comes_from_its_path);
