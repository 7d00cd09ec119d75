//! Teams over the management API, and the team keys members make on the
//! command line and the API: what another team's member never sees.

use super::*;
use crate::helpers::{Key, KeySpec};

/// An admin with a `keygate:admin` token; alice and bob, who may manage
/// their own keys over the API (`keygate:keys`) and grant `read`; the API.
struct World {
    app: TestApp,
    admin: String,
    alice: String,
    bob: String,
}

async fn world(engine: Engine) -> World {
    let app = spawn_app(engine).await;
    app.add_user(ROOT, "admin").await;
    app.add_api(API, "A", "read write").await;
    app.set_role("self-service", "keygate:keys read").await;
    app.add_user(ALICE, "self-service").await;
    app.add_user(BOB, "self-service").await;
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
    let bob = tokens.pop().expect("bob");
    let alice = tokens.pop().expect("alice");
    let admin = tokens.pop().expect("admin");
    World {
        app,
        admin,
        alice,
        bob,
    }
}

/// `/api/v1/teams` for admins: create (201 with its location), list, read,
/// change, add and remove members; refusals with their codes, changing
/// nothing. A member reads only the teams they are in and changes none.
async fn admins_manage_teams_over_the_api(engine: Engine) {
    let w = world(engine).await;
    let app = &w.app;
    let response = app
        .http
        .post(format!("{}/api/v1/teams", app.address))
        .bearer_auth(&w.admin)
        .json(&json!({"name": "payments", "notify": "pay@example.com", "description": "Cards"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    assert_eq!(response.headers()["location"], "/api/v1/teams/payments");
    let created: Value = response.json().await.unwrap();
    assert_eq!(created["role"], "member");
    assert_eq!(created["members"], json!([]));
    app.api_expect(
        Method::POST,
        &w.admin,
        "/teams",
        Some(json!({"name": "data"})),
        201,
    )
    .await;

    let before = app.table_counts();
    let refusals = [
        (
            Method::POST,
            "/teams",
            Some(json!({"name": "payments"})),
            409,
            "team_exists",
        ),
        (
            Method::POST,
            "/teams",
            Some(json!({"name": "Bad Name"})),
            422,
            "invalid_team_name",
        ),
        (
            Method::POST,
            "/teams",
            Some(json!({"name": "x", "role": "nope"})),
            422,
            "role_not_found",
        ),
        (
            Method::POST,
            "/teams",
            Some(json!({"name": "x", "colour": "red"})),
            400,
            "invalid_request",
        ),
        (
            Method::PATCH,
            "/teams/payments",
            Some(json!({})),
            422,
            "nothing_to_change",
        ),
        (
            Method::PATCH,
            "/teams/nope",
            Some(json!({"disabled": true})),
            404,
            "team_not_found",
        ),
        (
            Method::PUT,
            "/teams/nope/members/alice%40example.com",
            None,
            404,
            "team_not_found",
        ),
        (
            Method::PUT,
            "/teams/payments/members/dave%40example.com",
            None,
            404,
            "user_not_found",
        ),
        (
            Method::DELETE,
            "/teams/payments/members/alice%40example.com",
            None,
            404,
            "not_a_member",
        ),
    ];
    for (method, path, body, status, code) in refusals {
        app.api_refused((method, path, body), &w.admin, (status, code))
            .await;
    }
    assert_eq!(app.table_counts(), before);

    let team = app
        .api_expect(
            Method::PUT,
            &w.admin,
            "/teams/payments/members/Alice%40Example.com",
            None,
            200,
        )
        .await;
    assert_eq!(team["members"], json!([ALICE]));
    app.api_expect(
        Method::PUT,
        &w.admin,
        "/teams/data/members/bob%40example.com",
        None,
        200,
    )
    .await;
    let changed = app
        .api_expect(
            Method::PATCH,
            &w.admin,
            "/teams/payments",
            Some(json!({"notify": null, "description": "Card payments", "disabled": true})),
            200,
        )
        .await;
    assert_eq!(changed["notify"], Value::Null);
    assert_eq!(changed["description"], "Card payments");
    assert_eq!(changed["disabled"], true);
    let list = app
        .api_expect(Method::GET, &w.admin, "/teams", None, 200)
        .await;
    assert_eq!(team_names(&list["items"]), ["data", "payments"]);
    assert_eq!(list["next_cursor"], Value::Null);

    // A member reads their own teams only; another team is not there.
    let mine = app
        .api_expect(Method::GET, &w.alice, "/teams", None, 200)
        .await;
    assert_eq!(team_names(&mine["items"]), ["payments"]);
    let read = app
        .api_expect(Method::GET, &w.alice, "/teams/payments", None, 200)
        .await;
    assert_eq!(read["members"], json!([ALICE]));
    app.api_refused(
        (Method::GET, "/teams/data", None),
        &w.alice,
        (404, "team_not_found"),
    )
    .await;
    let before = app.table_counts();
    let forbidden = [
        (Method::POST, "/teams", Some(json!({"name": "mine"}))),
        (
            Method::PATCH,
            "/teams/payments",
            Some(json!({"disabled": false})),
        ),
        (Method::PUT, "/teams/data/members/alice%40example.com", None),
        (
            Method::DELETE,
            "/teams/payments/members/alice%40example.com",
            None,
        ),
    ];
    for (method, path, body) in forbidden {
        app.api_refused((method, path, body), &w.alice, (403, "insufficient_scope"))
            .await;
    }
    assert_eq!(app.table_counts(), before);

    let team = app
        .api_expect(
            Method::DELETE,
            &w.admin,
            "/teams/data/members/bob%40example.com",
            None,
            200,
        )
        .await;
    assert_eq!(team["members"], json!([]));
    let events = keygate::audit::list_events(&mut app.db(), Some("team:data"), 10, 0).unwrap();
    assert!(events.iter().all(|e| e.actor == ROOT), "{events:?}");
    assert_eq!(events.len(), 3, "{events:?}");
}

/// A team's key made by the command line and by a member over the API:
/// owned by the team (`owner` null), naming who created it; it works, and
/// keeps working when its creator is disabled. Another team's member sees
/// none of it: 404 as for a key that does not exist, and can create nothing
/// for a team they are not in.
async fn a_member_makes_team_keys_that_other_teams_never_see(engine: Engine) {
    let w = world(engine).await;
    let app = &w.app;
    app.add_team("payments", "member", &[ALICE]).await;
    app.add_team("data", "member", &[BOB]).await;

    let by_cli = app
        .cli_create_key(&[
            "--team", "payments", "--name", "cli-key", "--scopes", "read",
        ])
        .await;
    for (field, value) in [
        ("owner", Value::Null),
        ("team", json!("payments")),
        ("created_by", json!("command line")),
        ("status", json!("active")),
        ("auth_method", json!("client_secret")),
    ] {
        assert_eq!(by_cli.json[field], value, "{field} in {}", by_cli.json);
    }
    app.access_token(&by_cli).await;

    let created = app
        .api_expect(
            Method::POST,
            &w.alice,
            "/keys",
            Some(json!({"name": "api-key", "team": "payments", "scopes": ["read"]})),
            201,
        )
        .await;
    assert_eq!(created["team"], "payments");
    assert_eq!(created["owner"], Value::Null);
    assert_eq!(created["created_by"], ALICE);
    let by_api = Key {
        client_id: created["client_id"].as_str().unwrap().to_owned(),
        client_secret: created["client_secret"].as_str().unwrap().to_owned(),
        json: created.clone(),
    };
    app.access_token(&by_api).await;

    // Alice sees her own key and her team's; the team filter too.
    let hers = app
        .api_expect(Method::GET, &w.alice, "/keys", None, 200)
        .await;
    let ids: Vec<&str> = hers["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["client_id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&by_api.client_id.as_str()) && ids.contains(&by_cli.client_id.as_str()));
    assert_eq!(ids.len(), 3, "{hers}");
    let team_keys = app
        .api_expect(Method::GET, &w.alice, "/keys?team=payments", None, 200)
        .await;
    assert_eq!(team_keys["items"].as_array().unwrap().len(), 2);

    // Bob, in another team: not found, as for no key at all.
    let before = (app.table_counts(), app.listed_keys().await);
    for key in [&by_cli, &by_api] {
        let id = &key.client_id;
        let calls = [
            (Method::GET, format!("/keys/{id}"), None),
            (
                Method::PATCH,
                format!("/keys/{id}"),
                Some(json!({"max_tokens_per_minute": 5})),
            ),
            (Method::POST, format!("/keys/{id}/rotate"), None),
            (Method::POST, format!("/keys/{id}/revoke"), None),
            (Method::DELETE, format!("/keys/{id}"), None),
            (
                Method::POST,
                format!("/keys/{id}/transfer"),
                Some(json!({"to": BOB})),
            ),
        ];
        for (method, path, body) in calls {
            app.api_refused((method, &path, body), &w.bob, (404, "key_not_found"))
                .await;
        }
    }
    let bobs = app
        .api_expect(Method::GET, &w.bob, "/keys", None, 200)
        .await;
    assert_eq!(bobs["items"].as_array().unwrap().len(), 1, "{bobs}");
    app.api_refused(
        (Method::GET, "/keys?team=payments", None),
        &w.bob,
        (403, "insufficient_scope"),
    )
    .await;
    // Not his team: refused as for another person's keys.
    for (team, status, code) in [
        ("payments", 403, "insufficient_scope"),
        ("nope", 404, "team_not_found"),
    ] {
        app.api_refused(
            (
                Method::POST,
                "/keys",
                Some(json!({"name": "x", "team": team, "scopes": ["read"]})),
            ),
            &w.bob,
            (status, code),
        )
        .await;
    }
    app.api_refused(
        (
            Method::POST,
            "/keys",
            Some(json!({"name": "x", "team": "data", "owner": BOB})),
        ),
        &w.bob,
        (400, "invalid_request"),
    )
    .await;
    assert_eq!((app.table_counts(), app.listed_keys().await), before);

    // The command line: the team's keys, each line naming the team and its creator.
    let listed = app
        .cli_ok(&["keys", "list", "--team", "payments"])
        .await
        .stdout;
    let lines: Vec<&str> = listed.lines().collect();
    assert_eq!(lines.len(), 2, "{listed}");
    assert!(
        lines[0].starts_with(&format!(
            "{}\tapi-key\tteam payments\tactive\tcreated by {ALICE}\t",
            by_api.client_id
        )),
        "{listed}"
    );
    assert!(
        lines[1].starts_with(&format!(
            "{}\tcli-key\tteam payments\tactive\tcreated by command line\t",
            by_cli.client_id
        )),
        "{listed}"
    );
    let json = app
        .cli_ok(&["keys", "list", "--team", "payments", "--json"])
        .await
        .json();
    assert_eq!(json.as_array().unwrap().len(), 2);
    let before = snapshot(app).await;
    let nope = app
        .cli(&["keys", "create", "--team", "nope", "--name", "x"])
        .await;
    assert_one_line_refusal(&nope, &["no team named \"nope\""]);
    let nope = app.cli(&["keys", "list", "--team", "nope"]).await;
    assert_one_line_refusal(&nope, &["no team named \"nope\""]);
    let bad = app.cli(&["keys", "list", "--status", "sleeping"]).await;
    assert_one_line_refusal(
        &bad,
        &[
            "--status \"sleeping\"",
            "pending, active, expired or revoked",
        ],
    );
    for args in [
        &[
            "keys", "create", "--owner", ALICE, "--team", "payments", "--name", "x",
        ][..],
        &["keys", "list", "--owner", ALICE, "--team", "payments"][..],
    ] {
        let out = app.cli(args).await;
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", out.stderr);
        assert!(out.stderr.contains("cannot be used with"), "{}", out.stderr);
    }
    assert_eq!(snapshot(app).await, before);

    // The creator leaves: the team's key keeps working.
    app.cli_ok(&["users", "disable", ALICE]).await;
    let response = app.token_for(&by_api, &[CC]).await;
    assert_eq!(response.status(), 200);
}

both_engines!(
    admins_manage_teams_over_the_api,
    a_member_makes_team_keys_that_other_teams_never_see,
);
