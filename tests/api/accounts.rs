//! People's accounts: sign-in and its throttle, console sessions over the
//! management API (CSRF, idle and absolute expiry, ended by a password
//! change or a disable), invitations and resets (one-time, expiring, the
//! same answer for an unknown address), the per-person key limit, and the
//! permission boundaries of a session.

mod keys;

use chrono::Duration;
use keygate::accounts::{self, LinkPurpose, SetPasswordError, SignInError};
use keygate::http::session;
use reqwest::Method;
use serde_json::{Value, json};

use crate::both_engines;
use crate::helpers::{Engine, KeySpec, TestApp, spawn_app};

const PASSWORD: &str = "correct horse battery";
const OTHER_PASSWORD: &str = "staple in the drawer";

fn audit_reasons(app: &TestApp, action: &str) -> Vec<Value> {
    use diesel::prelude::*;
    use keygate::db::schema::audit_events;
    let mut conn = app.db();
    audit_events::table
        .filter(audit_events::action.eq(action))
        .order(audit_events::id.asc())
        .select(audit_events::details)
        .load::<String>(&mut conn)
        .unwrap()
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect()
}

async fn create_key_as(
    app: &TestApp,
    browser: &crate::helpers::Browser,
    body: Value,
) -> (u16, Value) {
    TestApp::send_json(app.api_as(browser, Method::POST, "/keys", true).json(&body)).await
}

async fn a_session_drives_the_api_and_needs_its_csrf_token_to_change_anything(engine: Engine) {
    let app = spawn_app(engine).await;
    app.add_person("alice@example.com", "member", PASSWORD)
        .await;
    let alice = app.sign_in("Alice@Example.com ", PASSWORD).await;
    assert!(
        alice.cookie.starts_with("keygate-session="),
        "{}",
        alice.cookie
    );

    let (status, body) = TestApp::send_json(app.api_as(&alice, Method::GET, "/keys", false)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["items"], json!([]));

    let create = json!({ "name": "ci" });
    for request in [
        app.api_as(&alice, Method::POST, "/keys", false),
        app.api_as(&alice, Method::POST, "/keys", false)
            .header("x-csrf-token", "wrong"),
        app.api_as(&alice, Method::POST, "/keys", false)
            .header("x-csrf-token", ""),
    ] {
        let (status, body) = TestApp::send_json(request.json(&create)).await;
        assert_eq!(status, 403, "{body}");
        assert_eq!(body["error"], "invalid_csrf_token", "{body}");
        assert!(body["message"].as_str().unwrap().contains("X-CSRF-Token"));
    }
    assert_eq!(app.count_rows("SELECT COUNT(*) AS n FROM api_keys"), 0);

    let (status, body) = create_key_as(&app, &alice, create).await;
    assert_eq!(status, 201, "{body}");
    let client_id = body["client_id"].as_str().unwrap().to_owned();
    let (status, _) = TestApp::send_json(app.api_as(
        &alice,
        Method::DELETE,
        &format!("/keys/{client_id}"),
        false,
    ))
    .await;
    assert_eq!(status, 403, "DELETE without the token");
    let (status, body) = TestApp::send_json(app.api_as(
        &alice,
        Method::POST,
        &format!("/keys/{client_id}/revoke"),
        true,
    ))
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "revoked");

    // A made-up cookie is no session.
    let forged = crate::helpers::Browser {
        cookie: "keygate-session=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".into(),
        csrf: alice.csrf.clone(),
    };
    let (status, body) = TestApp::send_json(app.api_as(&forged, Method::GET, "/keys", false)).await;
    assert_eq!(status, 401, "{body}");
    // Another process on the database honours the session, and its end.
    let sibling = app.spawn_sibling().await;
    let on_sibling = || {
        app.http
            .get(format!("{sibling}/api/v1/keys"))
            .header("cookie", &alice.cookie)
            .send()
    };
    assert_eq!(on_sibling().await.unwrap().status(), 200);
    // Signed out, the cookie no longer works.
    let state = app.state();
    let token = alice.cookie.split_once('=').unwrap().1;
    let session = accounts::lookup_session(
        &state,
        &accounts::SessionToken::from_presented(token),
        state.clock.now(),
    )
    .await
    .unwrap()
    .expect("a live session");
    assert!(session.csrf_matches(&alice.csrf));
    assert!(!session.csrf_matches(""));
    assert!(!format!("{session:?}").contains(&alice.csrf));
    assert!(!format!("{session:?}").contains("argon2"));
    accounts::sign_out(&state, &session, state.clock.now())
        .await
        .unwrap();
    let (status, _) = TestApp::send_json(app.api_as(&alice, Method::GET, "/keys", false)).await;
    assert_eq!(status, 401);
    assert_eq!(on_sibling().await.unwrap().status(), 401);
    assert_eq!(audit_reasons(&app, "account.signed_in").len(), 1);
    assert_eq!(audit_reasons(&app, "account.signed_out").len(), 1);
    // Nothing stored holds the cookie's token.
    assert!(!app.dump_database().contains(token));
}

async fn wrong_passwords_unknown_and_disabled_people_get_one_answer(engine: Engine) {
    let app = spawn_app(engine).await;
    app.add_person("alice@example.com", "member", PASSWORD)
        .await;
    app.add_user("invited@example.com", "member").await;
    app.add_person("gone@example.com", "member", PASSWORD).await;
    app.cli_ok(&["users", "disable", "gone@example.com"]).await;
    for (email, password) in [
        ("alice@example.com", "not the password"),
        ("nobody@example.com", PASSWORD),
        ("invited@example.com", PASSWORD),
        ("gone@example.com", PASSWORD),
        (PASSWORD, PASSWORD),
    ] {
        let err = app.try_sign_in(email, password).await.unwrap_err();
        assert!(matches!(err, SignInError::Refused), "{email}: {err:?}");
        assert_eq!(err.to_string(), accounts::REFUSED_MESSAGE);
    }
    let reasons: Vec<Value> = audit_reasons(&app, "account.sign_in_failed")
        .into_iter()
        .map(|d| d["reason"].clone())
        .collect();
    assert_eq!(
        reasons,
        [
            "wrong_password",
            "unknown_account",
            "no_password",
            "disabled",
            "unknown_account"
        ]
    );
    // A password typed into the email field is not recorded anywhere.
    assert!(!app.dump_database().contains(PASSWORD));
    assert_eq!(app.count_rows("SELECT COUNT(*) AS n FROM sessions"), 0);
}

async fn sign_in_failures_are_throttled_per_account_and_address(engine: Engine) {
    let app = spawn_app(engine).await;
    app.add_person("alice@example.com", "member", PASSWORD)
        .await;
    app.add_person("bob@example.com", "member", PASSWORD).await;
    for _ in 0..5 {
        let err = app
            .try_sign_in_from("alice@example.com", "wrong password!", "198.51.100.7")
            .await
            .unwrap_err();
        assert!(matches!(err, SignInError::Refused), "{err:?}");
    }
    // Now even the right password is throttled from there: no oracle.
    let err = app
        .try_sign_in_from("alice@example.com", PASSWORD, "198.51.100.7")
        .await
        .unwrap_err();
    let SignInError::Throttled { retry_after } = err else {
        panic!("{err:?}")
    };
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    // Unknown addresses count alike.
    for _ in 0..5 {
        let _ = app
            .try_sign_in_from("nobody@example.com", PASSWORD, "198.51.100.7")
            .await;
    }
    assert!(matches!(
        app.try_sign_in_from("nobody@example.com", PASSWORD, "198.51.100.7")
            .await
            .unwrap_err(),
        SignInError::Throttled { .. }
    ));
    // Another account from that address, and that account from elsewhere, still work.
    app.try_sign_in_from("bob@example.com", PASSWORD, "198.51.100.7")
        .await
        .unwrap();
    app.try_sign_in_from("alice@example.com", PASSWORD, "203.0.113.9")
        .await
        .unwrap();
    // The window ends.
    app.advance_clock(Duration::seconds(61));
    app.try_sign_in_from("alice@example.com", PASSWORD, "198.51.100.7")
        .await
        .unwrap();
}

async fn sessions_end_when_idle_and_at_their_absolute_limit(engine: Engine) {
    let app = TestApp::builder(engine)
        .vars(&[
            ("KEYGATE_SESSION_IDLE", "10m"),
            ("KEYGATE_SESSION_MAX", "1h"),
        ])
        .start()
        .await;
    app.add_person("alice@example.com", "member", PASSWORD)
        .await;
    let get = |browser| {
        let request = app.api_as(browser, Method::GET, "/keys", false);
        async move { request.send().await.unwrap().status().as_u16() }
    };

    let idle = app.sign_in("alice@example.com", PASSWORD).await;
    app.advance_clock(Duration::minutes(9));
    assert_eq!(get(&idle).await, 200, "9 minutes idle");
    app.advance_clock(Duration::minutes(9));
    assert_eq!(
        get(&idle).await,
        200,
        "the last request moved the idle clock"
    );
    app.advance_clock(Duration::minutes(10) + Duration::seconds(1));
    assert_eq!(get(&idle).await, 401, "idle past 10 minutes");

    let busy = app.sign_in("alice@example.com", PASSWORD).await;
    for _ in 0..6 {
        app.advance_clock(Duration::minutes(9));
        assert_eq!(get(&busy).await, 200);
    }
    app.advance_clock(Duration::minutes(6) + Duration::seconds(1));
    assert_eq!(
        get(&busy).await,
        401,
        "past the absolute hour, however busy"
    );
    // Ended sessions are gone from the table.
    assert_eq!(app.count_rows("SELECT COUNT(*) AS n FROM sessions"), 0);

    // One nobody comes back to is dropped by the prune job, a live one kept.
    app.sign_in("alice@example.com", PASSWORD).await;
    app.advance_clock(Duration::minutes(5));
    let live = app.sign_in("alice@example.com", PASSWORD).await;
    app.advance_clock(Duration::minutes(6));
    assert_eq!(app.count_rows("SELECT COUNT(*) AS n FROM sessions"), 2);
    assert_eq!(app.run_job(keygate::jobs::Job::SessionsPrune).await, 1);
    assert_eq!(app.count_rows("SELECT COUNT(*) AS n FROM sessions"), 1);
    assert_eq!(get(&live).await, 200);
}

async fn a_password_change_or_a_disable_ends_every_session(engine: Engine) {
    let app = spawn_app(engine).await;
    app.add_person("root@example.com", "admin", PASSWORD).await;
    app.add_person("alice@example.com", "member", PASSWORD)
        .await;
    let get = |browser| {
        let request = app.api_as(browser, Method::GET, "/keys", false);
        async move { request.send().await.unwrap().status().as_u16() }
    };
    let laptop = app.sign_in("alice@example.com", PASSWORD).await;
    let phone = app.sign_in("alice@example.com", PASSWORD).await;
    let root = app.sign_in("root@example.com", PASSWORD).await;
    assert_eq!((get(&laptop).await, get(&phone).await), (200, 200));

    // A reset link used: every session of alice ends, root's does not.
    let state = app.state();
    accounts::request_password_reset(
        &state,
        "alice@example.com",
        "127.0.0.1".parse().unwrap(),
        state.clock.now(),
    )
    .await
    .unwrap();
    let token = app.newest_link_token("alice@example.com");
    accounts::set_password_with_link(&state, &token, OTHER_PASSWORD, state.clock.now())
        .await
        .unwrap();
    assert_eq!((get(&laptop).await, get(&phone).await), (401, 401));
    assert_eq!(get(&root).await, 200);
    assert!(matches!(
        app.try_sign_in("alice@example.com", PASSWORD).await,
        Err(SignInError::Refused)
    ));

    // Changing one's own password ends the others and starts a new session.
    let laptop = app.sign_in("alice@example.com", OTHER_PASSWORD).await;
    let phone = app.sign_in("alice@example.com", OTHER_PASSWORD).await;
    let session = current(&app, &laptop).await;
    let wrong = accounts::change_password(
        &state,
        &session,
        "not my password",
        PASSWORD,
        "127.0.0.1".parse().unwrap(),
        state.clock.now(),
    )
    .await;
    assert!(matches!(
        wrong,
        Err(accounts::ChangePasswordError::WrongPassword)
    ));
    let failed = audit_reasons(&app, "account.sign_in_failed");
    assert_eq!(failed.last().unwrap()["reason"], "wrong_current_password");
    let weak = accounts::change_password(
        &state,
        &session,
        OTHER_PASSWORD,
        "short",
        "127.0.0.1".parse().unwrap(),
        state.clock.now(),
    )
    .await;
    assert!(matches!(weak, Err(accounts::ChangePasswordError::Weak(_))));
    assert_eq!(get(&phone).await, 200, "refused changes end nothing");
    let renewed = accounts::change_password(
        &state,
        &session,
        OTHER_PASSWORD,
        PASSWORD,
        "127.0.0.1".parse().unwrap(),
        state.clock.now(),
    )
    .await
    .unwrap();
    assert_eq!((get(&laptop).await, get(&phone).await), (401, 401));
    let cookie = accounts::session_cookie(
        &state,
        &renewed.token,
        renewed.expires_at,
        state.clock.now(),
    );
    let renewed = crate::helpers::Browser {
        cookie: format!("{}={}", cookie.name(), cookie.value()),
        csrf: renewed.csrf.as_str().to_owned(),
    };
    assert_eq!(get(&renewed).await, 200);

    // Disabled through the API by an admin's session: the next request is
    // signed out, and enabling again brings no session back.
    let (status, body) = TestApp::send_json(
        app.api_as(&root, Method::PATCH, "/users/alice@example.com", true)
            .json(&json!({ "disabled": true })),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(get(&renewed).await, 401);
    app.cli_ok(&["users", "enable", "alice@example.com"]).await;
    assert_eq!(get(&renewed).await, 401);
    // Disabled through the CLI: the same.
    let again = app.sign_in("alice@example.com", PASSWORD).await;
    assert_eq!(get(&again).await, 200);
    app.cli_ok(&["users", "disable", "alice@example.com"]).await;
    assert_eq!(get(&again).await, 401);
    assert!(matches!(
        app.try_sign_in("alice@example.com", PASSWORD).await,
        Err(SignInError::Refused)
    ));
}

async fn current(app: &TestApp, browser: &crate::helpers::Browser) -> accounts::Session {
    let state = app.state();
    let token = browser.cookie.split_once('=').unwrap().1;
    accounts::lookup_session(
        &state,
        &accounts::SessionToken::from_presented(token),
        state.clock.now(),
    )
    .await
    .unwrap()
    .expect("a live session")
}

async fn invitation_links_work_once_and_expire(engine: Engine) {
    let app = spawn_app(engine).await;
    let out = app
        .cli_ok(&["users", "add", "new@example.com", "--role", "admin"])
        .await;
    let token = crate::helpers::link_token(&out.stdout).expect("the link is printed");
    assert!(
        out.stdout
            .contains(&format!("{}/set-password?token={token}", app.issuer)),
        "{}",
        out.stdout
    );
    let state = app.state();
    let now = state.clock.now();
    let info = accounts::check_link(&state, &token, now)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(info.email, "new@example.com");
    assert_eq!(info.purpose, LinkPurpose::Invite);
    assert!(
        (info.expires_at - now - Duration::hours(72))
            .num_seconds()
            .abs()
            < 120
    );

    // A weak password is refused and leaves the link usable.
    for weak in ["short", "password1234", "new@example.com"] {
        let err = accounts::set_password_with_link(&state, &token, weak, now)
            .await
            .unwrap_err();
        assert!(matches!(err, SetPasswordError::Weak(_)), "{weak}: {err:?}");
    }
    let user = accounts::set_password_with_link(&state, &token, PASSWORD, now)
        .await
        .unwrap();
    assert_eq!(user.email, "new@example.com");
    assert_eq!(user.role, "admin");
    // Once only.
    assert!(matches!(
        accounts::set_password_with_link(&state, &token, OTHER_PASSWORD, now).await,
        Err(SetPasswordError::InvalidLink)
    ));
    assert_eq!(
        accounts::check_link(&state, &token, now).await.unwrap(),
        None
    );
    let admin = app.sign_in("new@example.com", PASSWORD).await;
    let (status, body) = TestApp::send_json(app.api_as(&admin, Method::GET, "/users", false)).await;
    assert_eq!(status, 200, "{body}");
    // Only the hash of the token is kept: the email's body is blanked once sent.
    for _ in 0..100 {
        app.run_job(keygate::jobs::Job::MailDelivery).await;
        if app.count_rows("SELECT COUNT(*) AS n FROM email_outbox WHERE status = 'pending'") == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let holding = format!(
        "SELECT COUNT(*) AS n FROM email_outbox WHERE body_text LIKE '%{token}%' OR body_html LIKE '%{token}%'"
    );
    assert_eq!(app.count_rows(&holding), 0);
    let hashes = "SELECT COUNT(*) AS n FROM account_links WHERE length(token_hash) = 64";
    assert_eq!(app.count_rows(hashes), 1);

    // An invitation expires.
    let out = app.cli_ok(&["users", "add", "late@example.com"]).await;
    let late = crate::helpers::link_token(&out.stdout).unwrap();
    app.advance_clock(Duration::hours(72) + Duration::seconds(1));
    let now = state.clock.now();
    assert_eq!(
        accounts::check_link(&state, &late, now).await.unwrap(),
        None
    );
    assert!(matches!(
        accounts::set_password_with_link(&state, &late, PASSWORD, now).await,
        Err(SetPasswordError::InvalidLink)
    ));
    // Inviting again gives a new link; the old one stays dead.
    let again = accounts::invite(
        &state,
        "late@example.com",
        "member",
        "",
        "new@example.com",
        now,
    )
    .await
    .unwrap();
    assert!(!again.created_user);
    let fresh = crate::helpers::link_token(again.url.expose()).unwrap();
    assert!(!format!("{again:?}").contains(&fresh));
    assert!(
        accounts::check_link(&state, &fresh, now)
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(
        accounts::check_link(&state, &late, now).await.unwrap(),
        None
    );
    assert_eq!(audit_reasons(&app, "account.invited").len(), 3);
    // Someone with a password is not invited again.
    let err = accounts::invite(&state, "new@example.com", "admin", "", "x@example.com", now)
        .await
        .map_err(keygate::http::error::AppError::from)
        .unwrap_err();
    assert_eq!(err.code, "user_exists");
}

async fn a_reset_answers_the_same_for_an_unknown_address(engine: Engine) {
    let app = spawn_app(engine).await;
    app.add_person("alice@example.com", "member", PASSWORD)
        .await;
    let state = app.state();
    let now = state.clock.now();
    let before = app.count_rows("SELECT COUNT(*) AS n FROM email_outbox");
    for email in ["alice@example.com", "nobody@example.com", "not an address"] {
        accounts::request_password_reset(&state, email, "127.0.0.1".parse().unwrap(), now)
            .await
            .unwrap_or_else(|e| panic!("{email}: {e}"));
    }
    assert_eq!(
        app.count_rows("SELECT COUNT(*) AS n FROM email_outbox") - before,
        1,
        "one email, to the known address"
    );
    let outcomes: Vec<Value> = audit_reasons(&app, "account.password_reset_requested")
        .into_iter()
        .map(|d| d["outcome"].clone())
        .collect();
    assert_eq!(outcomes, ["sent", "unknown_account", "unknown_account"]);
    // Asking again soon sends nothing more; the first link stays good.
    accounts::request_password_reset(
        &state,
        "alice@example.com",
        "127.0.0.1".parse().unwrap(),
        now,
    )
    .await
    .unwrap();
    assert_eq!(
        app.count_rows("SELECT COUNT(*) AS n FROM email_outbox") - before,
        1
    );
    let token = app.newest_link_token("alice@example.com");
    let info = accounts::check_link(&state, &token, now)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(info.purpose, LinkPurpose::Reset);
    // The old password works until the link is used, not after.
    app.sign_in("alice@example.com", PASSWORD).await;
    accounts::set_password_with_link(&state, &token, OTHER_PASSWORD, now)
        .await
        .unwrap();
    assert!(
        app.try_sign_in("alice@example.com", PASSWORD)
            .await
            .is_err()
    );
    app.sign_in("alice@example.com", OTHER_PASSWORD).await;
    assert!(matches!(
        accounts::set_password_with_link(&state, &token, PASSWORD, now).await,
        Err(SetPasswordError::InvalidLink)
    ));
    // A reset link expires after KEYGATE_INVITE_TTL.
    app.advance_clock(Duration::minutes(6));
    let now = state.clock.now();
    accounts::request_password_reset(
        &state,
        "alice@example.com",
        "127.0.0.1".parse().unwrap(),
        now,
    )
    .await
    .unwrap();
    let token = app.newest_link_token("alice@example.com");
    app.advance_clock(Duration::hours(72) + Duration::seconds(1));
    assert_eq!(
        accounts::check_link(&state, &token, state.clock.now())
            .await
            .unwrap(),
        None
    );
    // Requests are throttled per address asked for and per requester.
    let mut throttled = false;
    for _ in 0..6 {
        throttled |= matches!(
            accounts::request_password_reset(
                &state,
                "alice@example.com",
                "198.51.100.7".parse().unwrap(),
                state.clock.now()
            )
            .await,
            Err(accounts::ResetError::Throttled { .. })
        );
    }
    assert!(throttled);
}

both_engines!(
    a_session_drives_the_api_and_needs_its_csrf_token_to_change_anything,
    wrong_passwords_unknown_and_disabled_people_get_one_answer,
    sign_in_failures_are_throttled_per_account_and_address,
    sessions_end_when_idle_and_at_their_absolute_limit,
    a_password_change_or_a_disable_ends_every_session,
    invitation_links_work_once_and_expire,
    a_reset_answers_the_same_for_an_unknown_address,
);
