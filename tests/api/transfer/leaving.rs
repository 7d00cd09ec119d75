//! Leaving, done right: disabling a person hands every live key of theirs
//! to a person or a team in the same transaction, or nothing happens; on
//! the command line and over the API.

use super::*;

/// `users disable --transfer-keys-to-team`: one key the team may not hold
/// and nothing happens (the line names it); then every live key moves and
/// keeps working while its owner is disabled. Without a transfer, the
/// command says which live keys stop.
async fn users_disable_hands_over_every_live_key_or_none(engine: Engine) {
    let app = spawn_app(engine).await;
    app.add_owner_and_api(ALICE).await;
    app.add_user(BOB, "member").await;
    app.add_user(CAROL, "member").await;
    app.set_role("readers", "read").await;
    app.add_team("readers", "readers", &[]).await;
    app.add_team("ops", "member", &[BOB]).await;
    let k1 = app.create_key(KeySpec::reader(ALICE, "k1")).await;
    let k2 = app
        .create_key(KeySpec::reader(ALICE, "k2").scopes("read write"))
        .await;
    let k3 = app.create_key(KeySpec::reader(ALICE, "k3")).await;
    app.cli_ok(&["keys", "revoke", &k3.client_id]).await;
    let kb = app.create_key(KeySpec::reader(BOB, "kb")).await;

    let before = state(&app).await;
    let out = app
        .cli(&[
            "users",
            "disable",
            ALICE,
            "--transfer-keys-to-team",
            "readers",
        ])
        .await;
    assert_one_line_refusal(
        &out,
        &[
            &format!("key {} (k2)", k2.client_id),
            "role \"readers\" may not grant write",
        ],
    );
    assert_eq!(state(&app).await, before);
    for key in [&k1, &k2] {
        assert_eq!(token_status(&app, key).await, 200);
    }
    let out = app
        .cli(&[
            "users",
            "disable",
            ALICE,
            "--transfer-keys-to",
            BOB,
            "--transfer-keys-to-team",
            "ops",
        ])
        .await;
    assert_eq!(out.status.code(), Some(2), "{}", out.stderr);

    let out = app
        .cli_ok(&["users", "disable", ALICE, "--transfer-keys-to-team", "ops"])
        .await;
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(
        lines[0],
        "disabled user alice@example.com; their console sessions no longer work; 2 live keys \
         transferred to team ops (client IDs and secrets unchanged)"
    );
    assert_eq!(lines.len(), 3, "{}", out.stdout);
    for (line, key, name) in [(lines[1], &k2, "k2"), (lines[2], &k1, "k1")] {
        assert!(
            line.starts_with(&format!(
                "  {}\t{name}\tteam ops\tactive\tcreated by command line\t",
                key.client_id
            )),
            "{line}"
        );
    }
    for key in [&k1, &k2] {
        assert_eq!(token_status(&app, key).await, 200);
        let (_, details) = transfers_of(&app, &key.client_id).pop().expect("audited");
        assert_eq!(details["reason"], "owner disabled");
    }
    let k3_listed = app.listed_key(&k3.client_id).await;
    assert_eq!(k3_listed["owner"], ALICE);
    let users = app.cli_ok(&["users", "list", "--json"]).await.json();
    let alice = users
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["email"] == ALICE)
        .unwrap();
    assert_eq!(alice["disabled"], true);

    let out = app.cli_ok(&["users", "disable", BOB]).await;
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(
        lines[0],
        "disabled user bob@example.com; their console sessions no longer work; 1 live key \
         stops with the account"
    );
    assert!(
        lines[1].starts_with(&format!(
            "  {}\tkb\tbob@example.com\tactive\t",
            kb.client_id
        )),
        "{}",
        out.stdout
    );
    assert_eq!(lines.len(), 2);
    assert_eq!(token_status(&app, &kb).await, 401);
    // The team's keys do not stop with a member.
    assert_eq!(token_status(&app, &k1).await, 200);
    let out = app.cli_ok(&["users", "disable", CAROL]).await;
    assert!(
        out.stdout.ends_with("no live keys stop with the account\n"),
        "{}",
        out.stdout
    );
}

/// `PATCH /api/v1/users/{email}` with `"disabled": true` and a transfer:
/// all or nothing as on the command line; the answer says which keys moved
/// or stopped.
async fn disabling_over_the_api_hands_over_the_keys_in_one_step(engine: Engine) {
    let w = world(engine).await;
    let app = &w.app;
    app.set_role("readers", "read").await;
    app.add_team("readers", "readers", &[]).await;
    let rw = app
        .create_key(KeySpec::reader(ALICE, "rw").scopes("read write"))
        .await;
    let path = "/users/alice%40example.com";

    let before = state(app).await;
    for body in [
        json!({"transfer_keys_to_team": "ops"}),
        json!({"disabled": false, "transfer_keys_to": BOB}),
        json!({"disabled": true, "transfer_keys_to": BOB, "transfer_keys_to_team": "ops"}),
    ] {
        app.api_refused(
            (Method::PATCH, path, Some(body)),
            &w.admin,
            (400, "invalid_request"),
        )
        .await;
    }
    let message = app
        .api_refused(
            (
                Method::PATCH,
                path,
                Some(json!({"disabled": true, "transfer_keys_to_team": "readers"})),
            ),
            &w.admin,
            (403, "scope_not_grantable"),
        )
        .await;
    assert!(
        message.contains(&rw.client_id) && message.contains("write"),
        "{message}"
    );
    app.api_refused(
        (
            Method::PATCH,
            path,
            Some(json!({"disabled": true, "transfer_keys_to": "nobody@example.com"})),
        ),
        &w.admin,
        (404, "user_not_found"),
    )
    .await;
    app.api_refused(
        (
            Method::PATCH,
            path,
            Some(json!({"disabled": true, "transfer_keys_to": BOB})),
        ),
        &w.alice,
        (403, "insufficient_scope"),
    )
    .await;
    assert_eq!(state(app).await, before);

    let changed = app
        .api_expect(
            Method::PATCH,
            &w.admin,
            path,
            Some(json!({"disabled": true, "transfer_keys_to": BOB})),
            200,
        )
        .await;
    assert_eq!(changed["email"], ALICE);
    assert_eq!(changed["disabled"], true);
    let mut moved: Vec<&str> = changed["keys_transferred"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    moved.sort_unstable();
    assert_eq!(moved.len(), 3, "{changed}");
    assert!(moved.contains(&rw.client_id.as_str()) && moved.contains(&w.ci.client_id.as_str()));
    assert_eq!(changed["keys_stopped"], json!([]));
    for key in [&rw, &w.ci] {
        assert_eq!(token_status(app, key).await, 200);
        assert_eq!(app.listed_key(&key.client_id).await["owner"], BOB);
    }

    let changed = app
        .api_expect(
            Method::PATCH,
            &w.admin,
            "/users/bob%40example.com",
            Some(json!({"disabled": true})),
            200,
        )
        .await;
    assert_eq!(
        changed["keys_stopped"].as_array().unwrap().len(),
        4,
        "{changed}"
    );
    assert_eq!(changed["keys_transferred"], json!([]));
    assert_eq!(token_status(app, &rw).await, 401);
}

both_engines!(
    users_disable_hands_over_every_live_key_or_none,
    disabling_over_the_api_hands_over_the_keys_in_one_step,
);
