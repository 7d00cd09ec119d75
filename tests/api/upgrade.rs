//! Upgrades lose nothing: a database filled at the schema of an earlier
//! release (keys in every status, people, a console session, an email
//! waiting, an issuance window), then migrated by `keygate serve`, works
//! exactly as before, and the new features work on the old rows.
//!
//! The old schema is made by this release's own migrations up to the last
//! one of that release; the rows are written with only the columns that
//! release had, so the test fails if a migration drops or rewrites any.

use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};
use keygate::db::DbConnection;
use keygate::db::schema::{api_keys, apis, email_outbox, key_issuance, sessions, users};
use keygate::jobs::Job;
use keygate::keys::{ClientId, PlainSecret};
use keygate::signing::TokenHasher;
use serde_json::Value;

use crate::both_engines;
use crate::helpers::database::empty_database;
use crate::helpers::mail::{SmtpSink, wait_for_messages};
use crate::helpers::{Engine, Key, TestApp, assert_invalid_client};

const SQLITE: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const POSTGRES: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// The last migration of the release before teams (main at a9bb9f6).
const BEFORE_TEAMS: &str = "2026-12-02-000005_change_epochs";

/// Applies this release's migrations up to and including `last`, as the
/// release that ended with it left the database.
fn migrate_until(conn: &mut DbConnection, last: &str) {
    macro_rules! run_until {
        ($conn:expr, $source:expr) => {{
            let pending = $conn.pending_migrations($source).expect("list migrations");
            for migration in pending {
                if migration.name().to_string().as_str() > last {
                    break;
                }
                $conn
                    .run_migration(&*migration)
                    .unwrap_or_else(|e| panic!("{}: {e}", migration.name()));
            }
        }};
    }
    match conn {
        DbConnection::Sqlite(c) => run_until!(c, SQLITE),
        DbConnection::Pg(c) => run_until!(c, POSTGRES),
    }
}

/// A key as the old release stored it.
struct OldKey<'a> {
    owner_id: &'a str,
    name: &'a str,
    expires_at: Option<DateTime<Utc>>,
    revoked: bool,
    /// A rotation's previous secret, working until then.
    previous_until: Option<DateTime<Utc>>,
}

/// Writes `key` with the old release's columns only; returns its client ID
/// and its current and previous secrets.
fn old_key(
    conn: &mut DbConnection,
    tagger: &TokenHasher,
    key: OldKey<'_>,
    now: DateTime<Utc>,
) -> (String, String, Option<String>) {
    let client_id = ClientId::generate().to_string();
    let secret = PlainSecret::generate();
    let previous = key.previous_until.map(|_| PlainSecret::generate());
    let hash = |s: &PlainSecret| s.hash().expect("hash").as_str().to_owned();
    diesel::insert_into(api_keys::table)
        .values((
            api_keys::id.eq(uuid::Uuid::now_v7().to_string()),
            api_keys::client_id.eq(&client_id),
            api_keys::owner_id.eq(key.owner_id),
            api_keys::name.eq(key.name),
            api_keys::description.eq("made before teams"),
            api_keys::scopes.eq("read"),
            api_keys::audiences.eq("https://api.example.com"),
            api_keys::secret_hash.eq(hash(&secret)),
            api_keys::secret_lookup.eq(secret.lookup_tag(tagger)),
            api_keys::previous_secret_hash.eq(previous.as_ref().map(hash)),
            api_keys::previous_secret_lookup.eq(previous.as_ref().map(|p| p.lookup_tag(tagger))),
            api_keys::previous_secret_expires_at.eq(key.previous_until.map(|t| t.naive_utc())),
            api_keys::created_by.eq("command line"),
            api_keys::created_at.eq((now - chrono::Duration::days(40)).naive_utc()),
            api_keys::updated_at.eq((now - chrono::Duration::days(40)).naive_utc()),
            api_keys::expires_at.eq(key.expires_at.map(|t| t.naive_utc())),
            api_keys::revoked_at.eq(key.revoked.then(|| now.naive_utc())),
            api_keys::revoked_by.eq(key.revoked.then_some("command line")),
        ))
        .execute(conn)
        .expect("an old key");
    (
        client_id,
        secret.expose().to_owned(),
        previous.map(|p| p.expose().to_owned()),
    )
}

fn key(client_id: &str, secret: &str) -> Key {
    Key {
        client_id: client_id.to_owned(),
        client_secret: secret.to_owned(),
        json: Value::Null,
    }
}

async fn a_database_of_the_release_before_teams_keeps_working(engine: Engine) {
    let mut sink = SmtpSink::started().await;
    let mut app = sink.app_on_demand(engine).prepare();
    empty_database(&app.database_url);
    let now = app.clock.now();
    let config = keygate::Config::from_vars(&app.vars).expect("configuration");
    let tagger = keygate::app::master_key(&config)
        .expect("master key")
        .token_hasher();

    // The old release's database, filled through what it had.
    let mut conn = app.db();
    migrate_until(&mut conn, BEFORE_TEAMS);
    // Rows, not today's functions: those write what the old release had
    // no tables for (the webhook outbox).
    let person = |conn: &mut DbConnection, email: &str, role: &str, disabled: bool| {
        let id = uuid::Uuid::now_v7().to_string();
        diesel::insert_into(users::table)
            .values((
                users::id.eq(&id),
                users::email.eq(email),
                users::name.eq(""),
                users::role.eq(role),
                users::disabled.eq(disabled),
                users::can_create_keys.eq(true),
                users::created_at.eq(now.naive_utc()),
                users::updated_at.eq(now.naive_utc()),
            ))
            .execute(conn)
            .expect("a person");
        id
    };
    let admin = person(&mut conn, "root@example.com", "admin", false);
    let alice = person(&mut conn, "alice@example.com", "member", false);
    let bob = person(&mut conn, "bob@example.com", "member", true);
    diesel::insert_into(apis::table)
        .values((
            apis::id.eq(uuid::Uuid::now_v7().to_string()),
            apis::identifier.eq("https://api.example.com"),
            apis::name.eq("Example"),
            apis::scopes.eq("read write"),
            apis::created_at.eq(now.naive_utc()),
            apis::updated_at.eq(now.naive_utc()),
        ))
        .execute(&mut conn)
        .expect("an API");
    let in_days = |days: i64| Some(now + chrono::Duration::days(days));
    let old = |name, expires_at, revoked, previous_until| OldKey {
        owner_id: &alice,
        name,
        expires_at,
        revoked,
        previous_until,
    };
    let (active, active_secret, _) = old_key(
        &mut conn,
        &tagger,
        old("active", in_days(30), false, None),
        now,
    );
    let (rotated, rotated_secret, previous_secret) = old_key(
        &mut conn,
        &tagger,
        old(
            "rotated",
            None,
            false,
            Some(now + chrono::Duration::hours(1)),
        ),
        now,
    );
    let (expired, expired_secret, _) = old_key(
        &mut conn,
        &tagger,
        old("expired", in_days(-1), false, None),
        now,
    );
    let (revoked, revoked_secret, _) =
        old_key(&mut conn, &tagger, old("revoked", None, true, None), now);
    let bobs = OldKey {
        owner_id: &bob,
        ..old("bobs", None, false, None)
    };
    let (bobs, bobs_secret, _) = old_key(&mut conn, &tagger, bobs, now);
    let active_id: String = api_keys::table
        .filter(api_keys::client_id.eq(&active))
        .select(api_keys::id)
        .first(&mut conn)
        .expect("the active key's row");
    diesel::insert_into(key_issuance::table)
        .values((
            key_issuance::key_id.eq(&active_id),
            key_issuance::window_start.eq(now.timestamp() / 60),
            key_issuance::claimed.eq(7_i64),
        ))
        .execute(&mut conn)
        .expect("an issuance window");
    let session_token = "an-old-session-token-of-alice-0123456789abcdef";
    diesel::insert_into(sessions::table)
        .values((
            sessions::id.eq(uuid::Uuid::now_v7().to_string()),
            sessions::token_hash.eq(tagger.hash("session", session_token)),
            sessions::user_id.eq(&alice),
            sessions::created_at.eq(now.naive_utc()),
            sessions::last_seen_at.eq(now.naive_utc()),
            sessions::expires_at.eq((now + chrono::Duration::days(1)).naive_utc()),
            sessions::source_addr.eq("127.0.0.1"),
        ))
        .execute(&mut conn)
        .expect("a console session");
    diesel::insert_into(email_outbox::table)
        .values((
            email_outbox::id.eq(uuid::Uuid::now_v7().to_string()),
            email_outbox::dedupe_key.eq("old-release-email"),
            email_outbox::key_id.eq(Some(&active_id)),
            email_outbox::event.eq("created"),
            email_outbox::recipient.eq("alice@example.com"),
            email_outbox::subject.eq("[keygate] API key \"active\" created before the upgrade"),
            email_outbox::body_text.eq("queued before the upgrade"),
            email_outbox::body_html.eq("<p>queued before the upgrade</p>"),
            email_outbox::status.eq("pending"),
            email_outbox::attempts.eq(0),
            email_outbox::created_at.eq(now.naive_utc()),
            email_outbox::next_attempt_at.eq(now.naive_utc()),
        ))
        .execute(&mut conn)
        .expect("an email waiting");
    drop(conn);
    let _ = admin;

    // This release starts on it: `serve` migrates first.
    app.serve().await;

    // Every key answers as it did.
    for (client_id, secret) in [
        (&active, &active_secret),
        (&rotated, &rotated_secret),
        (
            &rotated,
            previous_secret.as_ref().expect("a previous secret"),
        ),
    ] {
        let response = app
            .token_for(
                &key(client_id, secret),
                &[("grant_type", "client_credentials")],
            )
            .await;
        assert_eq!(response.status(), 200, "{client_id}");
    }
    for (client_id, secret) in [
        (&expired, &expired_secret),
        (&revoked, &revoked_secret),
        (&bobs, &bobs_secret),
    ] {
        assert_invalid_client(
            app.token_for(
                &key(client_id, secret),
                &[("grant_type", "client_credentials")],
            )
            .await,
        )
        .await;
    }
    let listed = app.listed_keys().await;
    let status_of = |client_id: &str| {
        let found = listed
            .as_array()
            .expect("a list")
            .iter()
            .find(|k| k["client_id"] == client_id)
            .unwrap_or_else(|| panic!("{client_id} is listed"))
            .clone();
        assert_eq!(found["team"], Value::Null);
        assert_eq!(found["created_by"], "command line");
        (
            found["owner"].as_str().unwrap_or_default().to_owned(),
            found["status"].as_str().unwrap_or_default().to_owned(),
        )
    };
    assert_eq!(
        status_of(&active),
        ("alice@example.com".into(), "active".into())
    );
    assert_eq!(
        status_of(&expired),
        ("alice@example.com".into(), "expired".into())
    );
    assert_eq!(
        status_of(&revoked),
        ("alice@example.com".into(), "revoked".into())
    );
    assert_eq!(
        status_of(&bobs),
        ("bob@example.com".into(), "active".into())
    );
    assert_eq!(
        app.count_rows("SELECT COUNT(*) AS n FROM key_issuance WHERE claimed = 7"),
        1,
        "the issuance window survives the upgrade"
    );

    // Alice's console session still opens her keys.
    let page = app
        .http
        .get(format!("{}/keys", app.address))
        .header("Cookie", format!("keygate-session={session_token}"))
        .send()
        .await
        .expect("the keys page");
    assert_eq!(page.status(), 200);
    assert!(page.text().await.expect("a page").contains(&active));

    // The email queued before the upgrade goes out.
    app.run_job(Job::MailDelivery).await;
    let received = wait_for_messages(|| sink.messages(), 1, Duration::from_secs(10)).await;
    assert!(received[0].subject.contains("created before the upgrade"));
    sink.stop();

    // The new features work on the old rows: the old key moves to a team
    // and keeps working with its old secret.
    let mut conn = app.db();
    keygate::teams::create_team(
        &mut conn,
        keygate::teams::NewTeam {
            name: "payments",
            ..Default::default()
        },
        "command line",
        app.clock.now(),
    )
    .expect("a team");
    let limits = keygate::keys::KeyLimits {
        max_lifetime: None,
        expiry_warning: "7d".parse().expect("a duration"),
        max_keys_per_user: None,
    };
    keygate::keys::Service::new(&app.issuer, limits)
        .transfer(
            &mut conn,
            &keygate::keys::Caller::CommandLine,
            &active,
            &keygate::keys::KeyOwner::team("payments"),
            None,
            app.clock.now(),
        )
        .expect("the old key moves to a team");
    let response = app
        .token_for(
            &key(&active, &active_secret),
            &[("grant_type", "client_credentials")],
        )
        .await;
    assert_eq!(response.status(), 200);
}

/// The newest migration reverts (its `down.sql` matches its `up.sql`) and
/// applies again, on a database holding rows.
async fn the_newest_migration_reverts_and_applies_again(engine: Engine) {
    let app = TestApp::builder(engine).prepare();
    let mut conn = app.db();
    let now = app.clock.now();
    let input = keygate::users::NewUserInput {
        email: "alice@example.com",
        name: "",
        role: "member",
        password_hash: None,
    };
    keygate::users::create_user(&mut conn, input, "command line", now).expect("a person");
    macro_rules! round_trip {
        ($conn:expr, $source:expr, $backend:ty) => {{
            let newest = diesel::migration::MigrationSource::<$backend>::migrations(&$source)
                .expect("the migrations")
                .iter()
                .map(|m| m.name().version().to_string())
                .max()
                .expect("a migration");
            let reverted = $conn.revert_last_migration($source).expect("revert");
            assert_eq!(reverted.to_string(), newest);
            assert_eq!(
                $conn
                    .run_pending_migrations($source)
                    .expect("apply again")
                    .len(),
                1
            );
        }};
    }
    match &mut conn {
        DbConnection::Sqlite(c) => round_trip!(c, SQLITE, diesel::sqlite::Sqlite),
        DbConnection::Pg(c) => round_trip!(c, POSTGRES, diesel::pg::Pg),
    }
    assert_eq!(app.count_rows("SELECT COUNT(*) AS n FROM users"), 1);
}

both_engines!(
    a_database_of_the_release_before_teams_keeps_working,
    the_newest_migration_reverts_and_applies_again,
);
