//! Approval for sensitive scopes (INTERFACE.md "Approval"), as a client
//! program and an operator meet it: `apis set --approval-scopes` (all or
//! nothing), a member's request over the API with their bearer token
//! waiting until an admin approves or denies it over the API or on the
//! command line, the emails through the real SMTP server, and `keys list
//! --status pending`.

use std::time::Duration;

use keygate::jobs::Job;
use reqwest::Method;
use serde_json::{Value, json};

use crate::both_engines;
use crate::helpers::mail::{SmtpSink, one_with};
use crate::helpers::{
    Engine, Key, KeySpec, TestApp, assert_invalid_client, assert_one_line_refusal, spawn_app,
};

const API: &str = "https://api.example.com";
const API_PATH: &str = "/apis/https%3A%2F%2Fapi.example.com";
const ROOT: &str = "root@example.com";
const ALICE: &str = "alice@example.com";
const PASSWORD: &str = "a long enough password";
const CC: (&str, &str) = ("grant_type", "client_credentials");

/// An admin with a `keygate:admin` token, alice who manages her own keys
/// over the API (`keygate:keys`) and may grant `read` and `write`, and the
/// API defining both.
struct World {
    app: TestApp,
    admin: String,
    alice: String,
}

async fn world(app: TestApp) -> World {
    app.add_person(ROOT, "admin", PASSWORD).await;
    app.add_api(API, "A", "read write").await;
    app.set_role("self-service", "keygate:keys read write")
        .await;
    app.add_person(ALICE, "self-service", PASSWORD).await;
    let admin = app
        .create_key(KeySpec::new(ROOT, "admin").scopes("keygate:admin"))
        .await;
    let alice = app
        .create_key(KeySpec::new(ALICE, "self").scopes("keygate:keys"))
        .await;
    World {
        admin: app.token_string(&admin).await,
        alice: app.token_string(&alice).await,
        app,
    }
}

impl World {
    /// Alice asks for a key over the API: `POST /api/v1/keys` with her token.
    async fn request(&self, name: &str, scope: &str) -> Key {
        let body = json!({"name": name, "scopes": [scope], "description": "nightly export"});
        let json = self
            .app
            .api_expect(Method::POST, &self.alice, "/keys", Some(body), 201)
            .await;
        Key {
            client_id: json["client_id"].as_str().expect("client_id").to_owned(),
            client_secret: json["client_secret"]
                .as_str()
                .expect("the secret, shown once as usual")
                .to_owned(),
            json,
        }
    }

    async fn token_status(&self, key: &Key) -> u16 {
        self.app.token_for(key, &[CC]).await.status().as_u16()
    }
}

/// Refused token requests of a key audited with this reason.
fn audited_refusals(app: &TestApp, key: &Key, reason: &str) -> usize {
    keygate::audit::list_events(&mut app.db(), Some(&key.client_id), 100, 0)
        .unwrap()
        .iter()
        .filter(|e| e.action == "client_auth.failed" && e.details.contains(reason))
        .count()
}

fn ids(list: &Value) -> Vec<&str> {
    list.as_array()
        .expect("a list")
        .iter()
        .map(|k| k["client_id"].as_str().expect("client_id"))
        .collect()
}

/// A member's request for a `write` key, with her bearer token, is created
/// `pending`: the secret is shown, the token endpoint refuses it
/// (`invalid_client`, audited `pending_approval`), the admins are emailed.
/// She cannot approve it; an admin approves it over the API and it works.
/// Another is denied: revoked, and she is emailed "denied".
async fn a_members_request_waits_for_an_admin_over_the_api(engine: Engine) {
    let smtp = SmtpSink::started().await;
    let w = world(smtp.app_on_demand(engine).start().await).await;
    let app = &w.app;
    let out = app
        .cli_ok(&["apis", "set", API, "--approval-scopes", "write"])
        .await;
    assert_eq!(
        out.stdout.trim(),
        "changed API https://api.example.com (A): scopes read write; needing approval: write"
    );

    let reader = w.request("reader", "read").await;
    assert_eq!(reader.json["status"], "active");
    assert_eq!(w.token_status(&reader).await, 200);
    let writer = w.request("writer", "write").await;
    for (field, value) in [
        ("status", json!("pending")),
        ("owner", json!(ALICE)),
        ("created_by", json!(ALICE)),
    ] {
        assert_eq!(writer.json[field], value, "{field} in {}", writer.json);
    }
    assert_invalid_client(app.token_for(&writer, &[CC]).await).await;
    assert_eq!(audited_refusals(app, &writer, "pending_approval"), 1);

    // She may not decide on her own request.
    let before = app.table_counts();
    for verb in ["approve", "deny"] {
        let path = format!("/keys/{}/{verb}", writer.client_id);
        app.api_refused(
            (Method::POST, &path, None),
            &w.alice,
            (403, "insufficient_scope"),
        )
        .await;
    }
    assert_eq!(app.table_counts(), before);

    // The admin sees what waits, on the API and on the command line.
    let pending = app
        .api_expect(Method::GET, &w.admin, "/keys?status=pending", None, 200)
        .await;
    assert_eq!(ids(&pending["items"]), [writer.client_id.as_str()]);
    let listed = app
        .cli_ok(&["keys", "list", "--status", "pending", "--json"])
        .await
        .json();
    assert_eq!(ids(&listed), [writer.client_id.as_str()]);
    assert_eq!(listed[0]["description"], "nightly export");
    let text = app
        .cli_ok(&["keys", "list", "--status", "pending"])
        .await
        .stdout;
    assert!(
        text.starts_with(&format!(
            "{}\twriter\t{ALICE}\tpending\tcreated by {ALICE}\t",
            writer.client_id
        )),
        "{text}"
    );
    assert_eq!(text.lines().count(), 1, "{text}");

    let approve = format!("/keys/{}/approve", writer.client_id);
    let approved = app
        .api_expect(Method::POST, &w.admin, &approve, None, 200)
        .await;
    assert_eq!(approved["status"], "active");
    assert_eq!(approved["approved_by"], ROOT);
    assert!(approved["approved_at"].is_string(), "{approved}");
    assert_eq!(approved["pending_since"], Value::Null);
    assert_eq!(w.token_status(&writer).await, 200);
    app.api_refused(
        (Method::POST, &approve, None),
        &w.admin,
        (409, "key_not_pending"),
    )
    .await;

    let denied = w.request("writer-2", "write").await;
    let deny = format!("/keys/{}/deny", denied.client_id);
    let body = json!({"reason": "use the reader"});
    let revoked = app
        .api_expect(Method::POST, &w.admin, &deny, Some(body), 200)
        .await;
    assert_eq!(revoked["status"], "revoked");
    assert_eq!(revoked["revoked_reason"], "denied: use the reader");
    assert_invalid_client(app.token_for(&denied, &[CC]).await).await;
    app.api_refused((Method::POST, &deny, None), &w.admin, (409, "key_revoked"))
        .await;
    let pending = app
        .api_expect(Method::GET, &w.admin, "/keys?status=pending", None, 200)
        .await;
    assert_eq!(pending["items"], json!([]));

    let actions: Vec<(String, String, String)> =
        keygate::audit::list_events(&mut app.db(), None, 200, 0)
            .unwrap()
            .into_iter()
            .filter(|e| e.action == "key.approved" || e.action == "key.denied")
            .map(|e| (e.actor, e.action, e.target))
            .collect();
    assert_eq!(
        actions,
        [
            (
                ROOT.to_owned(),
                "key.denied".to_owned(),
                denied.client_id.clone()
            ),
            (
                ROOT.to_owned(),
                "key.approved".to_owned(),
                writer.client_id.clone()
            ),
        ]
    );

    // Created x5 (the two fixtures' keys, reader, writer, writer-2), two
    // requests to the one admin, approved, denied.
    app.run_job(Job::MailDelivery).await;
    let messages = smtp.wait_for(9, Duration::from_secs(20)).await;
    let asked: Vec<_> = messages
        .iter()
        .filter(|m| m.subject.contains("approval"))
        .collect();
    assert_eq!(
        asked.len(),
        2,
        "{:?}",
        messages.iter().map(|m| &m.subject).collect::<Vec<_>>()
    );
    assert!(asked.iter().all(|m| m.to == ROOT));
    one_with(&messages, "approved").assert_well_formed(ALICE, &writer);
    let no = one_with(&messages, "denied");
    no.assert_well_formed(ALICE, &denied);
    assert!(no.text.contains("use the reader"), "{}", no.text);
}

/// `keys approve` and `keys deny` on the command line, with their
/// refusals (one line, nothing changed); a key an admin makes needs
/// nobody's approval.
async fn an_operator_decides_on_the_command_line(engine: Engine) {
    let w = world(spawn_app(engine).await).await;
    let app = &w.app;
    app.set_approval_scopes(API, "write").await;
    let yes = w.request("yes", "write").await;
    let no = w.request("no", "write").await;
    assert_eq!(w.token_status(&yes).await, 401);

    let out = app.cli_ok(&["keys", "approve", &yes.client_id]).await;
    assert_eq!(
        out.stdout.trim(),
        format!(
            "approved key {} (yes) of {ALICE}, requested by {ALICE}; it works from now on",
            yes.client_id
        )
    );
    assert_eq!(w.token_status(&yes).await, 200);
    assert_eq!(
        app.listed_key(&yes.client_id).await["approved_by"],
        "command line"
    );
    let out = app
        .cli_ok(&["keys", "deny", &no.client_id, "--reason", "not now"])
        .await;
    assert_eq!(
        out.stdout.trim(),
        format!(
            "denied key {} (no) of {ALICE}, requested by {ALICE}; it is revoked",
            no.client_id
        )
    );
    assert_eq!(w.token_status(&no).await, 401);
    assert_eq!(
        app.listed_key(&no.client_id).await["revoked_reason"],
        "denied: not now"
    );

    let before = (app.table_counts(), app.listed_keys().await);
    let refusals: [(&[&str], &str); 4] = [
        (
            &["keys", "approve", &yes.client_id],
            "is not waiting for approval",
        ),
        (&["keys", "approve", &no.client_id], "is revoked"),
        (
            &["keys", "deny", &yes.client_id],
            "is not waiting for approval",
        ),
        (
            &["keys", "deny", "kgc_nope"],
            "no key with client ID kgc_nope",
        ),
    ];
    for (args, words) in refusals {
        assert_one_line_refusal(&app.cli(args).await, &[words]);
    }
    assert_eq!((app.table_counts(), app.listed_keys().await), before);

    let by_cli = app
        .cli_create_key(&["--owner", ALICE, "--name", "ops", "--scopes", "write"])
        .await;
    assert_eq!(by_cli.json["status"], "active");
    assert_eq!(w.token_status(&by_cli).await, 200);
    let by_admin = app
        .api_expect(
            Method::POST,
            &w.admin,
            "/keys",
            Some(json!({"name": "ops-2", "owner": ALICE, "scopes": ["write"]})),
            201,
        )
        .await;
    assert_eq!(by_admin["status"], "active");
}

/// `apis set` changes what it is given, all or nothing: scopes that would
/// leave an approval scope undefined are refused with the name, scopes and
/// approval scopes as they were. The API's `PATCH` likewise.
async fn apis_set_changes_everything_given_or_nothing(engine: Engine) {
    let w = world(spawn_app(engine).await).await;
    let app = &w.app;
    app.cli_ok(&[
        "apis",
        "set",
        API,
        "--scopes",
        "read write admin",
        "--approval-scopes",
        "admin",
    ])
    .await;
    let apis = || async { app.cli_ok(&["apis", "list", "--json"]).await.json() };
    let listed = apis().await;
    assert_eq!(listed[0]["scopes"], json!(["admin", "read", "write"]));
    assert_eq!(listed[0]["approval_scopes"], json!(["admin"]));

    let before = (app.table_counts(), apis().await);
    let refusals: [(&[&str], &[&str]); 6] = [
        (
            &[
                "apis",
                "set",
                API,
                "--name",
                "B",
                "--scopes",
                "read",
                "--approval-scopes",
                "admin",
            ],
            &["scope \"admin\" is not one of this API's scopes"],
        ),
        (
            &["apis", "set", API, "--approval-scopes", "billing"],
            &["\"billing\""],
        ),
        (&["apis", "set", API], &["nothing to change"]),
        (
            &["apis", "set", "https://nope.example.com", "--name", "X"],
            &["no API with identifier https://nope.example.com"],
        ),
        (
            &["apis", "set", API, "--approval-scopes", "read,write"],
            &["--approval-scopes"],
        ),
        (
            &["apis", "set", API, "--name", " "],
            &["an API needs a name"],
        ),
    ];
    for (args, words) in refusals {
        assert_one_line_refusal(&app.cli(args).await, words);
    }
    let api_refusals = [
        (json!({"approval_scopes": ["nope"]}), 422, "unknown_scope"),
        (
            json!({"scopes": ["read"], "approval_scopes": ["admin"]}),
            422,
            "unknown_scope",
        ),
        (
            json!({"approval_scopes": ["read write"]}),
            422,
            "invalid_scope",
        ),
        (json!({"approval": ["read"]}), 400, "invalid_request"),
    ];
    for (body, status, code) in api_refusals {
        app.api_refused(
            (Method::PATCH, API_PATH, Some(body)),
            &w.admin,
            (status, code),
        )
        .await;
    }
    app.api_refused(
        (
            Method::PATCH,
            API_PATH,
            Some(json!({"approval_scopes": []})),
        ),
        &w.alice,
        (403, "insufficient_scope"),
    )
    .await;
    assert_eq!((app.table_counts(), apis().await), before);

    let out = app
        .cli_ok(&[
            "apis",
            "set",
            API,
            "--name",
            "Renamed",
            "--approval-scopes",
            "",
        ])
        .await;
    assert!(
        out.stdout.ends_with("needing approval: -\n"),
        "{}",
        out.stdout
    );
    let changed = app
        .api_expect(
            Method::PATCH,
            &w.admin,
            API_PATH,
            Some(json!({"scopes": ["read", "write"], "approval_scopes": ["write"]})),
            200,
        )
        .await;
    assert_eq!(changed["name"], "Renamed");
    assert_eq!(changed["scopes"], json!(["read", "write"]));
    assert_eq!(changed["approval_scopes"], json!(["write"]));
    let text = app.cli_ok(&["apis", "list"]).await.stdout;
    assert_eq!(
        text,
        format!("{API}\tRenamed\tread write\tneeding approval: write\n")
    );
}

both_engines!(
    a_members_request_waits_for_an_admin_over_the_api,
    an_operator_decides_on_the_command_line,
    apis_set_changes_everything_given_or_nothing,
);
