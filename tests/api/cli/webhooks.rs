//! `keygate webhooks` (INTERFACE.md "Command line", "Events out"): an
//! endpoint added with its secret shown once, every event type by default,
//! refusals that write nothing, a list without secrets, a test event
//! queued for the server to send, and removal.

use crate::both_engines;
use crate::helpers::{Engine, TestApp, assert_one_line_refusal};

const URL: &str = "https://hooks.example.com/keygate";

fn endpoints(app: &TestApp) -> i64 {
    app.count_rows("SELECT COUNT(*) AS n FROM webhook_endpoints")
}

fn deliveries(app: &TestApp, id: &str) -> i64 {
    app.count_rows(&format!(
        "SELECT COUNT(*) AS n FROM webhook_deliveries WHERE endpoint_id = '{id}' \
         AND event_type = 'webhook.test'"
    ))
}

/// Add with every type and with a narrowed list, list without secrets,
/// test queues a delivery, remove removes it.
async fn webhooks_add_list_test_remove(engine: Engine) {
    let app = TestApp::builder(engine).prepare();

    let all = app.cli_ok(&["webhooks", "add", URL, "--json"]).await.json();
    let id = all["id"].as_str().expect("id").to_owned();
    let secret = all["secret"].as_str().expect("secret").to_owned();
    assert!(secret.starts_with("whsec_"), "{all}");
    assert_eq!(all["url"], URL);
    let events: Vec<&str> = all["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    assert_eq!(events.len(), 15, "{all}");
    assert_eq!(events, keygate::events::EventType::ALL.map(|t| t.as_str()));

    let narrow = app
        .cli_ok(&[
            "webhooks",
            "add",
            "https://other.example.com/in",
            "--events",
            "key.revoked key.created",
            "--description",
            "SIEM",
            "--json",
        ])
        .await
        .json();
    assert_eq!(
        narrow["events"],
        serde_json::json!(["key.created", "key.revoked"])
    );
    let narrow_id = narrow["id"].as_str().unwrap().to_owned();

    let human = app
        .cli_ok(&["webhooks", "add", "http://plain.example.com/"])
        .await;
    assert!(human.stdout.contains("whsec_"), "{}", human.stdout);
    assert!(human.stdout.contains("shown only once"), "{}", human.stdout);
    assert_eq!(endpoints(&app), 3);

    let listed = app.cli_ok(&["webhooks", "list", "--json"]).await;
    assert!(!listed.stdout.contains("whsec_"), "{}", listed.stdout);
    assert!(!listed.stdout.contains(&secret), "{}", listed.stdout);
    let list = listed.json();
    let list = list.as_array().expect("array");
    assert_eq!(list.len(), 3, "{listed:?}", listed = listed.stdout);
    let first = list
        .iter()
        .find(|e| e["id"] == id.as_str())
        .expect("listed");
    assert_eq!(first["url"], URL);
    assert_eq!(first["all_events"], true);
    assert_eq!(first["enabled"], true);
    assert!(first.get("secret").is_none(), "{first}");

    let table = app.cli_ok(&["webhooks", "list"]).await.stdout;
    assert!(table.starts_with("ID"), "{table}");
    let row = table.lines().find(|l| l.starts_with(&id)).expect("row");
    assert!(row.contains(URL) && row.contains(" all "), "{row}");
    assert!(row.trim_end().ends_with("enabled"), "{row}");
    assert!(!table.contains("whsec_"), "{table}");

    assert_eq!(deliveries(&app, &id), 0);
    let tested = app.cli_ok(&["webhooks", "test", &id]).await;
    assert!(tested.stdout.contains("server"), "{}", tested.stdout);
    assert_eq!(deliveries(&app, &id), 1);

    let removed = app.cli_ok(&["webhooks", "remove", &id]).await;
    assert!(removed.stdout.contains(&id), "{}", removed.stdout);
    assert_eq!(endpoints(&app), 2);
    assert_eq!(deliveries(&app, &id), 0);
    let list = app.cli_ok(&["webhooks", "list", "--json"]).await.json();
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .all(|e| e["id"] != id.as_str()),
        "{list}"
    );
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .any(|e| e["id"] == narrow_id.as_str())
    );
}

/// Bad input: one line on stderr, non-zero, and no row written.
async fn webhooks_refusals_write_nothing(engine: Engine) {
    let app = TestApp::builder(engine).prepare();
    let before = app.table_counts();

    let unknown = app
        .cli(&[
            "webhooks",
            "add",
            URL,
            "--events",
            "key.created key.exploded",
        ])
        .await;
    assert_one_line_refusal(
        &unknown,
        &[
            "key.exploded",
            "key.created",
            "signing_key.rotated",
            "webhook.test",
        ],
    );

    let credentials = app
        .cli(&["webhooks", "add", "https://u:hunter2secret@x.example.com/"])
        .await;
    assert_one_line_refusal(&credentials, &["credentials"]);
    assert!(
        !credentials.stderr.contains("hunter2secret"),
        "{}",
        credentials.stderr
    );

    let ftp = app.cli(&["webhooks", "add", "ftp://x.example.com/"]).await;
    assert_one_line_refusal(&ftp, &["http", "ftp"]);

    let missing = app
        .cli(&["webhooks", "remove", "0190aaaa-0000-7000-8000-000000000000"])
        .await;
    assert_one_line_refusal(&missing, &["0190aaaa-0000-7000-8000-000000000000"]);
    let missing = app.cli(&["webhooks", "test", "nope"]).await;
    assert_one_line_refusal(&missing, &["nope"]);

    assert_eq!(endpoints(&app), 0);
    assert_eq!(
        app.count_rows("SELECT COUNT(*) AS n FROM webhook_deliveries"),
        0
    );
    assert_eq!(app.table_counts(), before);
}

both_engines!(
    webhooks_add_list_test_remove,
    webhooks_refusals_write_nothing,
);
