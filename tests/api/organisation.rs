//! The organisation's keys at the token endpoint: a team's key outlives
//! whoever made it and stops with its team on every process; a key waiting
//! for approval is refused like a dead key until an admin approves it; a
//! request nobody decides is denied after 7 days; a team's emails go to its
//! members or its notify address.

use keygate::db::DbConnection;
use keygate::jobs::Job;
use keygate::keys::{self, Caller, Envelope, KeyLimits, KeyOwner, NewKeyRequest, Person, Reach};
use keygate::scope::{Audience, ScopeSet};
use keygate::teams::{self, NewTeam, TeamChange};
use serde_json::Value;

use crate::both_engines;
use crate::helpers::mail::outbox;
use crate::helpers::serve::Serve;
use crate::helpers::{Engine, Key, TestApp, assert_invalid_client, spawn_app};

const CC: (&str, &str) = ("grant_type", "client_credentials");
const API: &str = "https://api.example.com";

fn service(app: &TestApp) -> keys::Service {
    let limits = KeyLimits {
        max_lifetime: None,
        expiry_warning: "7d".parse().expect("a duration"),
        max_keys_per_user: None,
    };
    keys::Service::new(&app.issuer, limits)
}

/// A person in the console (or with their session at the API), no admin.
fn member(email: &str) -> Caller {
    Caller::Person(Person {
        email: email.to_owned(),
        reach: Reach::OwnKeys,
    })
}

/// The team `name` with these members, as `teams add` and `teams members
/// add` make it.
fn team(
    conn: &mut DbConnection,
    app: &TestApp,
    name: &str,
    notify: Option<&str>,
    members: &[&str],
) {
    let now = app.clock.now();
    let new = NewTeam {
        name,
        notify,
        ..NewTeam::default()
    };
    teams::create_team(conn, new, "command line", now).expect("a team");
    for email in members {
        teams::add_member(conn, name, email, "command line", now).expect("a member");
    }
}

/// What tags a new key's secret: the app's master key's hasher.
fn tagger(app: &TestApp) -> keygate::signing::TokenHasher {
    keygate::app::master_key(&keygate::Config::from_vars(&app.vars).expect("config"))
        .expect("master key")
        .token_hasher()
}

/// The standard API's `write` needs an admin's approval (`apis set
/// --approval-scopes write`).
fn write_needs_approval(conn: &mut DbConnection, app: &TestApp) {
    let write = ScopeSet::parse("write").expect("scopes");
    keygate::resource_servers::set_approval_scopes(
        conn,
        API,
        &write,
        "command line",
        app.clock.now(),
    )
    .expect("write needs approval");
}

/// A key of `owner` holding `scopes` of the standard API, created by `by`.
fn key_of(
    conn: &mut DbConnection,
    app: &TestApp,
    by: &Caller,
    owner: KeyOwner,
    scopes: &str,
) -> Key {
    let request = NewKeyRequest {
        owner,
        name: "export",
        description: "nightly export",
        scopes: ScopeSet::parse(scopes).expect("scopes"),
        audiences: vec![Audience::parse(API).expect("an audience")],
        expires_in: None,
        envelope: Envelope::default(),
        credential: keygate::keys::NewCredential::Secret,
    };
    let tagger = tagger(app);
    let issued = service(app)
        .create(conn, by, request, &tagger, app.clock.now())
        .unwrap_or_else(|e| panic!("create the key: {e}"));
    Key {
        client_id: issued.client_id.to_string(),
        client_secret: issued
            .client_secret
            .as_ref()
            .map(|s| s.expose().to_owned())
            .unwrap_or_default(),
        json: serde_json::to_value(&issued).expect("JSON"),
    }
}

async fn token_status(app: &TestApp, base: &str, key: &Key) -> u16 {
    app.http
        .post(format!("{base}/oauth/token"))
        .basic_auth(&key.client_id, Some(&key.client_secret))
        .form(&[CC])
        .send()
        .await
        .expect("a token request")
        .status()
        .as_u16()
}

fn audited_refusals(app: &TestApp, key: &Key, reason: &str) -> i64 {
    app.count_rows(&format!(
        "SELECT COUNT(*) AS n FROM audit_events WHERE action = 'client_auth.failed' \
         AND target = '{}' AND details LIKE '%{reason}%'",
        key.client_id
    ))
}

async fn a_teams_key_outlives_its_creator_and_stops_with_its_team_everywhere(engine: Engine) {
    let app = spawn_app(engine).await;
    app.add_owner_and_api("alice@example.com").await;
    app.add_person("bob@example.com", "member", "a long enough password")
        .await;
    let other = Serve::start(&app, &[]).await;
    let mut conn = app.db();
    team(
        &mut conn,
        &app,
        "payments",
        None,
        &["alice@example.com", "bob@example.com"],
    );
    let key = key_of(
        &mut conn,
        &app,
        &member("alice@example.com"),
        KeyOwner::team("payments"),
        "read",
    );
    assert_eq!(key.json["team"], "payments");
    assert_eq!(key.json["owner"], Value::Null);
    assert_eq!(key.json["created_by"], "alice@example.com");
    let base = other.url("");
    let base = base.trim_end_matches('/');
    assert_eq!(token_status(&app, base, &key).await, 200);

    // Its creator leaves: the other process keeps serving the team's key,
    // and it is still the team's.
    app.cli_ok(&["users", "disable", "alice@example.com"]).await;
    assert_eq!(token_status(&app, base, &key).await, 200);
    assert_eq!(token_status(&app, &app.address, &key).await, 200);
    teams::remove_member(
        &mut conn,
        "payments",
        "bob@example.com",
        "command line",
        app.clock.now(),
    )
    .expect("bob leaves the team");
    assert_eq!(token_status(&app, base, &key).await, 200);
    assert_eq!(app.listed_key(&key.client_id).await["team"], "payments");

    // Disabling the team stops it at the very next request on both
    // processes; enabling brings it back.
    let disable = |disabled| TeamChange {
        disabled: Some(disabled),
        ..TeamChange::default()
    };
    teams::update_team(
        &mut conn,
        "payments",
        &disable(true),
        "command line",
        app.clock.now(),
    )
    .expect("the team disabled");
    for server in [base, app.address.as_str()] {
        assert_invalid_client(
            app.http
                .post(format!("{server}/oauth/token"))
                .basic_auth(&key.client_id, Some(&key.client_secret))
                .form(&[CC])
                .send()
                .await
                .expect("a token request"),
        )
        .await;
    }
    assert_eq!(audited_refusals(&app, &key, "team_disabled"), 2);
    teams::update_team(
        &mut conn,
        "payments",
        &disable(false),
        "command line",
        app.clock.now(),
    )
    .expect("the team enabled");
    assert_eq!(token_status(&app, base, &key).await, 200);
    assert_eq!(token_status(&app, &app.address, &key).await, 200);
}

async fn a_key_holding_an_approval_scope_waits_for_an_admin(engine: Engine) {
    let app = spawn_app(engine).await;
    app.add_owner_and_api("alice@example.com").await;
    app.add_person("root@example.com", "admin", "a long enough password")
        .await;
    let mut conn = app.db();
    write_needs_approval(&mut conn, &app);

    // A scope that needs no approval: active at once.
    let reader = key_of(
        &mut conn,
        &app,
        &member("alice@example.com"),
        KeyOwner::person("alice@example.com"),
        "read",
    );
    assert_eq!(reader.json["status"], "active");
    // One that does, asked by a member: pending, refused like a dead key,
    // and the audit log says why; the admins are asked.
    let writer = key_of(
        &mut conn,
        &app,
        &member("alice@example.com"),
        KeyOwner::person("alice@example.com"),
        "read write",
    );
    assert_eq!(writer.json["status"], "pending");
    assert_invalid_client(app.token_for(&writer, &[CC]).await).await;
    assert_eq!(audited_refusals(&app, &writer, "pending_approval"), 1);
    let asked: Vec<_> = outbox(&app)
        .into_iter()
        .filter(|m| m.event == "approval")
        .collect();
    assert_eq!(asked.len(), 1, "one admin, one email");
    assert_eq!(asked[0].recipient, "root@example.com");
    assert!(asked[0].body.contains(&writer.client_id));
    // The same key made by an admin needs nobody's approval.
    let root = Caller::Person(Person {
        email: "root@example.com".into(),
        reach: Reach::EveryKey,
    });
    let admins = key_of(
        &mut conn,
        &app,
        &root,
        KeyOwner::person("alice@example.com"),
        "read write",
    );
    assert_eq!(admins.json["status"], "active");
    assert_eq!(token_status(&app, &app.address, &admins).await, 200);

    // A member may not approve; an admin may, and it works at once.
    let refused = service(&app).approve(
        &mut conn,
        &member("alice@example.com"),
        &writer.client_id,
        app.clock.now(),
    );
    assert!(
        matches!(refused, Err(keys::KeyError::AdminOnly)),
        "{refused:?}"
    );
    assert_invalid_client(app.token_for(&writer, &[CC]).await).await;
    let approved = service(&app)
        .approve(&mut conn, &root, &writer.client_id, app.clock.now())
        .expect("approved");
    assert_eq!(approved.approved_by.as_deref(), Some("root@example.com"));
    assert_eq!(token_status(&app, &app.address, &writer).await, 200);
    let told: Vec<_> = outbox(&app)
        .into_iter()
        .filter(|m| m.event == "approved")
        .collect();
    assert_eq!(told.len(), 1);
    assert_eq!(told[0].recipient, "alice@example.com");
    // Approving twice is refused, and changes nothing.
    let again = service(&app).approve(&mut conn, &root, &writer.client_id, app.clock.now());
    assert!(
        matches!(again, Err(keys::KeyError::NotPending(_))),
        "{again:?}"
    );
}

async fn a_request_nobody_decides_is_denied_after_seven_days(engine: Engine) {
    let app = TestApp::builder(engine).jobs_on_demand().start().await;
    app.add_owner_and_api("alice@example.com").await;
    app.add_person("root@example.com", "admin", "a long enough password")
        .await;
    let mut conn = app.db();
    write_needs_approval(&mut conn, &app);
    let writer = key_of(
        &mut conn,
        &app,
        &member("alice@example.com"),
        KeyOwner::person("alice@example.com"),
        "write",
    );

    app.advance_clock(chrono::Duration::days(7) - chrono::Duration::minutes(1));
    assert_eq!(app.run_job(Job::UndecidedRequests).await, 0, "not yet");
    assert_eq!(app.listed_key(&writer.client_id).await["status"], "pending");
    app.advance_clock(chrono::Duration::minutes(2));
    assert_eq!(app.run_job(Job::UndecidedRequests).await, 1);
    assert_eq!(app.run_job(Job::UndecidedRequests).await, 0, "once");
    let listed = app.listed_key(&writer.client_id).await;
    assert_eq!(listed["status"], "revoked");
    assert_eq!(
        listed["revoked_reason"],
        "denied: not approved within 7 days"
    );
    assert_invalid_client(app.token_for(&writer, &[CC]).await).await;
    let denied: Vec<_> = outbox(&app)
        .into_iter()
        .filter(|m| m.event == "denied")
        .collect();
    assert_eq!(denied.len(), 1);
    assert_eq!(denied[0].recipient, "alice@example.com");
    assert_eq!(
        app.count_rows(&format!(
            "SELECT COUNT(*) AS n FROM audit_events WHERE action = 'key.denied' AND target = '{}' \
             AND actor = 'keygate'",
            writer.client_id
        )),
        1
    );
}

async fn a_teams_emails_go_to_its_enabled_members_or_its_notify_address(engine: Engine) {
    let app = spawn_app(engine).await;
    app.add_owner_and_api("alice@example.com").await;
    app.add_person("bob@example.com", "member", "a long enough password")
        .await;
    app.add_person("carol@example.com", "member", "a long enough password")
        .await;
    let mut conn = app.db();
    team(
        &mut conn,
        &app,
        "payments",
        None,
        &["alice@example.com", "bob@example.com", "carol@example.com"],
    );
    team(
        &mut conn,
        &app,
        "data",
        Some("data-team@example.com"),
        &["alice@example.com"],
    );
    keygate::users::set_user_disabled(
        &mut conn,
        "carol@example.com",
        true,
        "command line",
        app.clock.now(),
    )
    .expect("carol disabled");

    let payments = key_of(
        &mut conn,
        &app,
        &Caller::CommandLine,
        KeyOwner::team("payments"),
        "read",
    );
    let data = key_of(
        &mut conn,
        &app,
        &Caller::CommandLine,
        KeyOwner::team("data"),
        "read",
    );
    let created = |key: &Key| {
        let mut to: Vec<String> = outbox(&app)
            .into_iter()
            .filter(|m| m.event == "created" && m.body.contains(&key.client_id))
            .map(|m| m.recipient)
            .collect();
        to.sort();
        to
    };
    assert_eq!(created(&payments), ["alice@example.com", "bob@example.com"]);
    assert_eq!(created(&data), ["data-team@example.com"]);
    let to_bob = outbox(&app)
        .into_iter()
        .find(|m| m.recipient == "bob@example.com")
        .expect("bob's email");
    assert!(
        to_bob.body.contains("a member of team payments"),
        "{}",
        to_bob.body
    );
    assert!(to_bob.body.contains("team payments"));
}

async fn only_members_allowed_to_make_keys_make_a_teams_keys(engine: Engine) {
    let app = spawn_app(engine).await;
    app.add_owner_and_api("alice@example.com").await;
    app.add_person("bob@example.com", "member", "a long enough password")
        .await;
    app.add_person("carol@example.com", "member", "a long enough password")
        .await;
    let mut conn = app.db();
    team(
        &mut conn,
        &app,
        "payments",
        None,
        &["alice@example.com", "carol@example.com"],
    );
    team(&mut conn, &app, "data", None, &["bob@example.com"]);
    let no_keys = keygate::users::UserChanges {
        can_create_keys: Some(false),
        ..Default::default()
    };
    keygate::users::update_user(
        &mut conn,
        "carol@example.com",
        &no_keys,
        "command line",
        app.clock.now(),
    )
    .expect("carol may not create keys");
    let before = app.table_counts();
    let tagger = tagger(&app);
    let attempt = |conn: &mut DbConnection, by: &str, team: &str| {
        let request = NewKeyRequest {
            owner: KeyOwner::team(team),
            name: "export",
            description: "",
            scopes: ScopeSet::parse("read").expect("scopes"),
            audiences: Vec::new(),
            expires_in: None,
            envelope: Envelope::default(),
            credential: keygate::keys::NewCredential::Secret,
        };
        service(&app).create(conn, &member(by), request, &tagger, app.clock.now())
    };
    // Bob is not in payments: refused as for another person's keys.
    let foreign = attempt(&mut conn, "bob@example.com", "payments");
    assert!(
        matches!(foreign, Err(keys::KeyError::ForeignOwner)),
        "{foreign:?}"
    );
    // Carol is, but may not create keys at all.
    let switched_off = attempt(&mut conn, "carol@example.com", "payments");
    assert!(
        matches!(switched_off, Err(keys::KeyError::CreationDisabled(ref who)) if who == "carol@example.com"),
        "{switched_off:?}"
    );
    // No such team.
    let unknown = attempt(&mut conn, "alice@example.com", "nope");
    assert!(
        matches!(unknown, Err(keys::KeyError::TeamNotFound(_))),
        "{unknown:?}"
    );
    assert_eq!(app.table_counts(), before, "nothing written");
    // Alice is, and may.
    let made = attempt(&mut conn, "alice@example.com", "payments").expect("alice's team key");
    // Bob does not see it: "not found", as for a key that does not exist.
    let hidden = service(&app).get(
        &mut conn,
        &member("bob@example.com"),
        made.client_id.as_str(),
        app.clock.now(),
    );
    assert!(
        matches!(hidden, Err(keys::KeyError::NotFound(_))),
        "{hidden:?}"
    );
    let listed = service(&app)
        .list(
            &mut conn,
            &member("bob@example.com"),
            &keys::KeyFilter::default(),
            app.clock.now(),
        )
        .expect("bob's list");
    assert!(listed.is_empty());
    // Carol, a member, sees and revokes it as her own.
    let carols = service(&app)
        .list(
            &mut conn,
            &member("carol@example.com"),
            &keys::KeyFilter::default(),
            app.clock.now(),
        )
        .expect("carol's list");
    assert_eq!(carols.len(), 1);
    service(&app)
        .revoke(
            &mut conn,
            &member("carol@example.com"),
            made.client_id.as_str(),
            None,
            app.clock.now(),
        )
        .expect("a member revokes the team's key");
}

both_engines!(
    only_members_allowed_to_make_keys_make_a_teams_keys,
    a_teams_key_outlives_its_creator_and_stops_with_its_team_everywhere,
    a_key_holding_an_approval_scope_waits_for_an_admin,
    a_request_nobody_decides_is_denied_after_seven_days,
    a_teams_emails_go_to_its_enabled_members_or_its_notify_address,
);
