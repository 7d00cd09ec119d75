//! Teams, transfers and approvals in the console, refused (INTERFACE.md
//! "Teams, transfers and approvals"), over plain HTTP as a browser without
//! JavaScript sends the forms: each refusal is shown beside its field, with
//! nothing changed, and a member reaches neither another team's key nor
//! the admins' pages.

use super::forms::{add_person, get_page, post_form, signed_in, text_of};
use crate::helpers::{Engine, KeySpec, TestApp, spawn_app};

const ADMIN: &str = "root@example.com";
const API: &str = "https://payments.example.com";

/// Payments' API, an admin, alice and mallory (members), and as the admin
/// made them in the console: team `ops` with alice, team `data` with
/// mallory.
async fn two_teams(app: &TestApp) {
    app.add_api(API, "Payments", "payments:read payments:refund")
        .await;
    add_person(app, ADMIN, "admin").await;
    add_person(app, "alice@example.com", "member").await;
    add_person(app, "mallory@example.com", "member").await;
    let (admin, csrf) = signed_in(app, ADMIN).await;
    for (team, member) in [
        ("ops", "alice@example.com"),
        ("data", "mallory@example.com"),
    ] {
        let created = post_form(
            app,
            &admin,
            &csrf,
            "/admin/teams",
            &[
                ("name", team),
                ("role", "member"),
                ("notify", ""),
                ("description", ""),
            ],
        )
        .await;
        assert_eq!(created.status(), 303, "{}", created.text().await.unwrap());
        let path = format!("/admin/teams/{team}/members");
        let added = post_form(app, &admin, &csrf, &path, &[("email", member)]).await;
        assert_eq!(added.status(), 303, "{}", added.text().await.unwrap());
    }
}

/// A key posted through the new-key form with `owner` (`me` or
/// `team:NAME`); its client ID, read from the secret page.
async fn key_in_console(
    app: &TestApp,
    (client, csrf): (&reqwest::Client, &str),
    owner: &str,
    name: &str,
) -> String {
    let response = super::forms::post_new_key(
        app,
        client,
        csrf,
        &[
            ("owner", owner),
            ("name", name),
            ("scope", "payments:read"),
            ("expires_in", "30d"),
        ],
    )
    .await;
    assert_eq!(response.status(), 200);
    text_of(&response.text().await.unwrap(), "client-id")
}

/// A transfer to nobody, to the owner it has, or with no new owner named
/// is refused beside the field that named the new owner; the key stays
/// where it was and nothing is audited.
async fn a_refused_transfer_changes_nothing(engine: Engine) {
    let app = spawn_app(engine).await;
    two_teams(&app).await;
    let key = app
        .create_key(KeySpec::new("alice@example.com", "alices").scopes("payments:read"))
        .await;
    let path = format!("/keys/{}/transfer", key.client_id);
    let (alice, csrf) = signed_in(&app, "alice@example.com").await;
    let (status, page) = get_page(&app, &alice, &path).await;
    assert_eq!(status, 200);
    assert!(page.contains("name=\"to_email\"") && page.contains("value=\"data\""));

    for (fields, code, id, says) in [
        (
            [("to_kind", "person"), ("to_email", "nobody@example.com")],
            404,
            "to-email-error",
            "No user with email nobody@example.com.",
        ),
        (
            [("to_kind", "person"), ("to_email", "Alice@Example.com")],
            409,
            "to-email-error",
            "already belongs to alice@example.com",
        ),
        (
            [("to_kind", "person"), ("to_email", "")],
            422,
            "to-email-error",
            "Give the email of the person",
        ),
        (
            [("to_kind", "team"), ("to_team", "nosuchteam")],
            404,
            "to-team-error",
            "No team named &quot;nosuchteam&quot;",
        ),
    ] {
        let mut form = fields.to_vec();
        form.push(("reason", "handing over"));
        let response = post_form(&app, &alice, &csrf, &path, &form).await;
        assert_eq!(response.status(), code, "{fields:?}");
        let page = response.text().await.unwrap();
        let refusal = text_of(&page, id);
        assert!(refusal.contains(says), "{fields:?}: {refusal}");
        assert!(
            page.contains("value=\"handing over\""),
            "the reason is kept"
        );
    }
    let listed = app.listed_key(&key.client_id).await;
    assert_eq!(listed["owner"], "alice@example.com");
    assert!(listed["team"].is_null());
    let transferred = "SELECT COUNT(*) AS n FROM audit_events WHERE action = 'key.transferred'";
    assert_eq!(app.count_rows(transferred), 0);

    // Done right, it goes, and alice sees it no more.
    let response = post_form(
        &app,
        &alice,
        &csrf,
        &path,
        &[
            ("to_kind", "person"),
            ("to_email", "mallory@example.com"),
            ("reason", ""),
        ],
    )
    .await;
    assert_eq!(response.status(), 303);
    assert_eq!(
        response.headers()["location"],
        "/keys?notice=transferred-away"
    );
    assert_eq!(
        app.listed_key(&key.client_id).await["owner"],
        "mallory@example.com"
    );
    assert_eq!(app.count_rows(transferred), 1);
    let (status, _) = get_page(&app, &alice, &format!("/keys/{}", key.client_id)).await;
    assert_eq!(status, 404);
}

/// Team `ops`'s key is its members': mallory (of `data`) finds it "not
/// found" on every page and form, does not see it listed, and cannot give
/// `ops` a key of her own making.
async fn a_member_cannot_reach_another_teams_key(engine: Engine) {
    let app = spawn_app(engine).await;
    two_teams(&app).await;
    let (alice, alice_csrf) = signed_in(&app, "alice@example.com").await;
    let client_id = key_in_console(&app, (&alice, &alice_csrf), "team:ops", "ops-sync").await;
    let listed = app.listed_key(&client_id).await;
    assert_eq!(listed["team"], "ops");
    assert_eq!(listed["created_by"], "alice@example.com");
    let (_, list) = get_page(&app, &alice, "/keys").await;
    assert!(list.contains(&client_id) && list.contains("Team ops"));

    let (mallory, csrf) = signed_in(&app, "mallory@example.com").await;
    for path in [
        format!("/keys/{client_id}"),
        format!("/keys/{client_id}/transfer"),
        format!("/keys/{client_id}/revoke"),
    ] {
        let (status, page) = get_page(&app, &mallory, &path).await;
        assert_eq!(status, 404, "{path}");
        assert!(!page.contains("ops-sync"), "{path} shows ops's key");
    }
    let (_, list) = get_page(&app, &mallory, "/keys").await;
    assert!(!list.contains(&client_id));
    let path = format!("/keys/{client_id}/transfer");
    let taken = post_form(
        &app,
        &mallory,
        &csrf,
        &path,
        &[("to_kind", "team"), ("to_team", "data"), ("reason", "")],
    )
    .await;
    assert_eq!(taken.status(), 404);
    let revoke = format!("/keys/{client_id}/revoke");
    let revoked = post_form(&app, &mallory, &csrf, &revoke, &[("reason", "")]).await;
    assert_eq!(revoked.status(), 404);
    let listed = app.listed_key(&client_id).await;
    assert_eq!(
        (&listed["team"], &listed["status"]),
        (&"ops".into(), &"active".into())
    );

    // Her owner choice lists her team only; choosing ops anyway is
    // refused beside the owner field, and no key is made.
    let (_, form) = get_page(&app, &mallory, "/keys/new").await;
    assert!(form.contains("value=\"team:data\"") && !form.contains("value=\"team:ops\""));
    let before = app.count_rows("SELECT COUNT(*) AS n FROM api_keys");
    let response = super::forms::post_new_key(
        &app,
        &mallory,
        &csrf,
        &[
            ("owner", "team:ops"),
            ("name", "sneaky"),
            ("scope", "payments:read"),
            ("expires_in", "30d"),
        ],
    )
    .await;
    assert_eq!(response.status(), 403);
    let page = response.text().await.unwrap();
    assert!(text_of(&page, "owner-error").contains("of a team one does not belong to"));
    assert!(page.contains("value=\"sneaky\""), "the input is kept");
    assert_eq!(app.count_rows("SELECT COUNT(*) AS n FROM api_keys"), before);
}

/// A member gets the admins' "not allowed" from the Requests and Teams
/// pages and their forms, and a pending key stays pending.
async fn a_member_cannot_open_requests_or_teams(engine: Engine) {
    let app = spawn_app(engine).await;
    two_teams(&app).await;
    let (admin, admin_csrf) = signed_in(&app, ADMIN).await;
    let marked = post_form(
        &app,
        &admin,
        &admin_csrf,
        "/admin/apis/approval",
        &[("identifier", API), ("approval", "payments:refund")],
    )
    .await;
    assert_eq!(marked.status(), 303);
    let (alice, csrf) = signed_in(&app, "alice@example.com").await;
    let response = super::forms::post_new_key(
        &app,
        &alice,
        &csrf,
        &[
            ("name", "refunds"),
            ("scope", "payments:refund"),
            ("expires_in", "30d"),
        ],
    )
    .await;
    assert_eq!(response.status(), 200);
    let page = response.text().await.unwrap();
    assert!(page.contains("pending until an administrator approves it"));
    let client_id = text_of(&page, "client-id");
    assert_eq!(app.listed_key(&client_id).await["status"], "pending");

    for path in ["/admin/requests", "/admin/teams", "/admin/teams/ops"] {
        let (status, page) = get_page(&app, &alice, path).await;
        assert_eq!(status, 403, "{path}");
        assert!(page.contains("Only administrators"), "{path}");
        assert!(!page.contains("refunds") || path != "/admin/requests");
    }
    for (path, fields) in [
        (
            "/admin/requests/approve",
            vec![("client_id", client_id.as_str())],
        ),
        (
            "/admin/requests/deny",
            vec![("client_id", client_id.as_str()), ("reason", "")],
        ),
        (
            "/admin/teams/ops/members",
            vec![("email", "alice@example.com")],
        ),
        ("/admin/teams/data/state", vec![("disabled", "true")]),
    ] {
        let response = post_form(&app, &alice, &csrf, path, &fields).await;
        assert_eq!(response.status(), 403, "{path}");
    }
    assert_eq!(app.listed_key(&client_id).await["status"], "pending");
    // Nor does her menu offer them.
    let (_, keys) = get_page(&app, &alice, "/keys").await;
    assert!(!keys.contains("/admin/requests") && !keys.contains("/admin/teams"));
    // The admin's does, with the count of what waits.
    let (_, keys) = get_page(&app, &admin, "/keys").await;
    assert!(keys.contains("Requests <span class=\"count\">1<"), "{keys}");
}

/// A team disabled on its page: its key's page says so and the key gets
/// no tokens; enabled again, it works.
async fn a_disabled_teams_key_says_so_and_stops(engine: Engine) {
    let app = spawn_app(engine).await;
    two_teams(&app).await;
    let (alice, csrf) = signed_in(&app, "alice@example.com").await;
    let response = super::forms::post_new_key(
        &app,
        &alice,
        &csrf,
        &[
            ("owner", "team:ops"),
            ("name", "ops-sync"),
            ("scope", "payments:read"),
            ("expires_in", "30d"),
        ],
    )
    .await;
    let page = response.text().await.unwrap();
    let (client_id, secret) = (text_of(&page, "client-id"), text_of(&page, "client-secret"));
    let cc = [("grant_type", "client_credentials")];
    let key_page = format!("/keys/{client_id}");
    let (admin, admin_csrf) = signed_in(&app, ADMIN).await;
    for (disabled, tokens) in [("true", 401), ("false", 200)] {
        let changed = post_form(
            &app,
            &admin,
            &admin_csrf,
            "/admin/teams/ops/state",
            &[("disabled", disabled)],
        )
        .await;
        assert_eq!(changed.status(), 303);
        let (_, page) = get_page(&app, &alice, &key_page).await;
        assert_eq!(
            page.contains("Team ops is disabled: this key gets no tokens."),
            disabled == "true"
        );
        let status = app.token_basic(&client_id, &secret, &cc).await.status();
        assert_eq!(status, tokens, "disabled {disabled}");
    }
}

/// The new forms, sent without the session's CSRF token (or with a wrong
/// one), are refused (403) and change nothing.
async fn the_new_forms_need_their_csrf_token(engine: Engine) {
    let app = spawn_app(engine).await;
    two_teams(&app).await;
    let key = app
        .create_key(KeySpec::new("alice@example.com", "alices").scopes("payments:read"))
        .await;
    let (admin, _) = signed_in(&app, ADMIN).await;
    let before = app.table_counts();
    let transfer = format!("/keys/{}/transfer", key.client_id);
    for (path, fields) in [
        ("/admin/teams", vec![("name", "forged"), ("role", "member")]),
        (
            "/admin/teams/ops",
            vec![("role", "admin"), ("notify", ""), ("description", "")],
        ),
        ("/admin/teams/ops/state", vec![("disabled", "true")]),
        (
            "/admin/teams/ops/members",
            vec![("email", "mallory@example.com")],
        ),
        (
            "/admin/teams/ops/members/remove",
            vec![("email", "alice@example.com")],
        ),
        (
            "/admin/people/disable",
            vec![("email", "alice@example.com"), ("keys", "stop")],
        ),
        (
            "/admin/apis/approval",
            vec![("identifier", API), ("approval", "payments:read")],
        ),
        (
            "/admin/requests/approve",
            vec![("client_id", key.client_id.as_str())],
        ),
        (
            transfer.as_str(),
            vec![("to_kind", "person"), ("to_email", ADMIN)],
        ),
    ] {
        for csrf in ["", "forged"] {
            let response = post_form(&app, &admin, csrf, path, &fields).await;
            assert_eq!(response.status(), 403, "{path} with csrf {csrf:?}");
        }
    }
    assert_eq!(app.table_counts(), before);
    // An unknown team's page is "not found".
    let (status, _) = get_page(&app, &admin, "/admin/teams/nosuchteam").await;
    assert_eq!(status, 404);
}

crate::both_engines!(
    a_disabled_teams_key_says_so_and_stops,
    the_new_forms_need_their_csrf_token,
    a_refused_transfer_changes_nothing,
    a_member_cannot_reach_another_teams_key,
    a_member_cannot_open_requests_or_teams,
);
