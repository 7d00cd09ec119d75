//! The audit export (INTERFACE.md "Events out"): `GET /api/v1/audit-events`
//! with `Accept: application/x-ndjson` streams every matching event oldest
//! first, and `keygate audit export` prints them as NDJSON or CSV; both
//! read in batches, so more events than a batch come out each exactly once.

use diesel::prelude::*;
use keygate::db::DbConnection;
use keygate::db::schema::audit_events;
use reqwest::Method;
use serde_json::Value;

use crate::both_engines;
use crate::helpers::{Engine, KeySpec, TestApp, spawn_app};

const PASSWORD: &str = "a long enough password";
const NDJSON: &str = "application/x-ndjson";
/// More than two of the export's batches (500), all at one instant: the
/// order and the batches' edges then rest on the IDs alone.
const BULK: usize = 1_234;

/// `BULK` events at one instant, each with its own ID, as a busy log holds.
fn fill(app: &TestApp) {
    let at = (app.clock.now() - chrono::Duration::days(1)).naive_utc();
    let rows: Vec<_> = (0..BULK)
        .map(|n| {
            (
                audit_events::id.eq(format!("00000000-0000-7000-8000-{n:012}")),
                audit_events::occurred_at.eq(at),
                audit_events::actor.eq("command line"),
                audit_events::action.eq("user.updated"),
                audit_events::target.eq(format!("user{n}@example.com")),
                audit_events::details.eq("{}"),
            )
        })
        .collect();
    let mut conn = app.db();
    for chunk in rows.chunks(200) {
        let insert = diesel::insert_into(audit_events::table).values(chunk);
        match &mut conn {
            DbConnection::Sqlite(c) => insert.execute(c),
            DbConnection::Pg(c) => insert.execute(c),
        }
        .expect("events");
    }
}

fn total(app: &TestApp) -> usize {
    usize::try_from(app.count_rows("SELECT COUNT(*) AS n FROM audit_events")).unwrap()
}

/// The lines of an NDJSON body, each parsed.
fn objects(body: &str) -> Vec<Value> {
    assert!(
        body.is_empty() || body.ends_with('\n'),
        "ends with a newline"
    );
    body.lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect()
}

/// Oldest first, ties by ID, no event twice.
fn assert_in_order(events: &[Value]) {
    let keys: Vec<(String, String)> = events
        .iter()
        .map(|e| {
            (
                e["occurred_at"].as_str().unwrap().to_owned(),
                e["id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(
        keys.windows(2).all(|w| w[0] < w[1]),
        "oldest first, each once"
    );
}

async fn the_audit_log_streams_oldest_first_as_ndjson(engine: Engine) {
    let app = spawn_app(engine).await;
    app.add_person("root@example.com", "admin", PASSWORD).await;
    app.add_owner_and_api("alice@example.com").await;
    app.create_key(KeySpec::reader("alice@example.com", "ci"))
        .await;
    fill(&app);
    let root = app.sign_in("root@example.com", PASSWORD).await;

    let response = app
        .api_as(&root, Method::GET, "/audit-events?limit=1", false)
        .header("accept", NDJSON)
        .send()
        .await
        .expect("the stream");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], NDJSON);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let events = objects(&response.text().await.expect("a body"));
    // Every event, `limit` notwithstanding (the sign-in made one more).
    assert_eq!(events.len(), total(&app));
    assert!(events.len() > BULK);
    assert_in_order(&events);
    // The fields of the paged list's items.
    let (status, page) =
        TestApp::send_json(app.api_as(&root, Method::GET, "/audit-events?limit=1", false)).await;
    assert_eq!(status, 200);
    let listed = page["items"][0].as_object().expect("an event");
    let mut fields: Vec<_> = listed.keys().collect();
    let streamed = events.last().unwrap().as_object().unwrap();
    let mut streamed_fields: Vec<_> = streamed.keys().collect();
    fields.sort();
    streamed_fields.sort();
    assert_eq!(fields, streamed_fields);
    assert_eq!(
        streamed, listed,
        "the newest event, listed first, streamed last"
    );

    // `since` and `until` narrow it: today's events only, then none.
    let today = app.clock.now().format("%Y-%m-%d").to_string();
    let body = app
        .api_as(
            &root,
            Method::GET,
            &format!("/audit-events?since={today}&action=key.created"),
            false,
        )
        .header("accept", NDJSON)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let created = objects(&body);
    assert_eq!(created.len(), 1);
    assert_eq!(created[0]["action"], "key.created");
    let body = app
        .api_as(&root, Method::GET, "/audit-events?until=2020-01-01", false)
        .header("accept", NDJSON)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(body, "");

    // A date that is not one is refused; a member may not read the log.
    let (status, body) = TestApp::send_json(
        app.api_as(&root, Method::GET, "/audit-events?since=yesterday", false)
            .header("accept", NDJSON),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let alice = app.sign_in("alice@example.com", PASSWORD).await;
    let (status, _) = TestApp::send_json(
        app.api_as(&alice, Method::GET, "/audit-events", false)
            .header("accept", NDJSON),
    )
    .await;
    assert_eq!(status, 403);
}

async fn the_command_line_exports_ndjson_and_csv(engine: Engine) {
    let app = spawn_app(engine).await;
    app.add_owner_and_api("alice@example.com").await;
    app.create_key(KeySpec::reader("alice@example.com", "ci"))
        .await;
    fill(&app);
    let all = total(&app);

    let ndjson = app.cli_ok(&["audit", "export"]).await;
    let events = objects(&ndjson.stdout);
    assert_eq!(events.len(), all);
    assert_in_order(&events);

    let csv = app.cli_ok(&["audit", "export", "--format", "csv"]).await;
    let lines: Vec<&str> = csv.stdout.split("\r\n").collect();
    assert_eq!(
        lines[0],
        "id,occurred_at,actor,action,target,source_addr,details"
    );
    assert_eq!(
        lines.len(),
        all + 2,
        "a header, every event, and the last line's end"
    );
    assert_eq!(lines[all + 1], "");
    let created = lines
        .iter()
        .find(|l| l.contains(",key.created,"))
        .expect("the key's creation");
    assert!(created.contains(r#"""name"":""ci"""#), "{created}");

    let recent = app
        .cli_ok(&[
            "audit",
            "export",
            "--since",
            &app.clock.now().format("%Y-%m-%d").to_string(),
        ])
        .await;
    assert_eq!(objects(&recent.stdout).len(), all - BULK);

    for (bad, says) in [("--format", "xml"), ("--since", "soon")] {
        let out = app.cli(&["audit", "export", bad, says]).await;
        assert!(!out.status.success());
        assert_eq!(out.stdout, "");
        let first = out.stderr.lines().next().unwrap_or_default();
        assert!(first.contains(says), "{}", out.stderr);
    }
}

both_engines!(
    the_audit_log_streams_oldest_first_as_ndjson,
    the_command_line_exports_ndjson_and_csv,
);
