//! The console as a browser-like HTTP client sees it: a member's session
//! reaches only their own keys, and the key limit holds for sessions.

use super::forms::{add_person, create_in_console, signed_in};
use crate::helpers::{Engine, KeySpec, TestApp, spawn_app};

/// A member sees, rotates and revokes only their own keys; another's key is
/// "not found" on every page and form, and nothing about it changes.
async fn a_member_cannot_touch_anothers_key(engine: Engine) {
    let app = spawn_app(engine).await;
    app.add_api("https://api.example.com", "API", "read").await;
    add_person(&app, "alice@example.com", "member").await;
    add_person(&app, "mallory@example.com", "member").await;
    let alices = app
        .create_key(KeySpec::new("alice@example.com", "alices").scopes("read"))
        .await;
    let client_id = alices.client_id.as_str();
    let (mallory, csrf) = signed_in(&app, "mallory@example.com").await;
    for path in [
        format!("/keys/{client_id}"),
        format!("/keys/{client_id}/revoke"),
        "/admin/people".to_owned(),
        "/admin/audit".to_owned(),
    ] {
        let response = mallory
            .get(format!("{}{path}", app.address))
            .send()
            .await
            .unwrap();
        assert!(
            [403, 404].contains(&response.status().as_u16()),
            "{path}: {}",
            response.status()
        );
        let body = response.text().await.unwrap();
        assert!(!body.contains("alices"), "{path} shows alice's key");
    }
    let list = mallory
        .get(format!("{}/keys", app.address))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!list.contains(client_id));
    let form_id: String = keygate::random::alphanumeric(32);
    let rotate = mallory
        .post(format!("{}/keys/{client_id}/rotate", app.address))
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("form_id", &form_id),
            ("grace", "0"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(rotate.status(), 404);
    let revoke = mallory
        .post(format!("{}/keys/{client_id}/revoke", app.address))
        .form(&[("csrf_token", csrf.as_str()), ("reason", "mine now")])
        .send()
        .await
        .unwrap();
    assert_eq!(revoke.status(), 404);
    let after = app.listed_keys().await;
    assert_eq!(after[0]["status"], "active");
    assert!(after[0]["rotated_at"].is_null());
    // Nor can a member give a key a scope their role does not grant.
    let response = mallory
        .post(format!("{}/keys", app.address))
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("form_id", &keygate::random::alphanumeric(32)),
            ("name", "escalate"),
            ("scope", "keygate:admin"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    assert!(response.text().await.unwrap().contains("may not grant"));
    assert_eq!(app.count_rows("SELECT COUNT(*) AS n FROM api_keys"), 1);
}

/// `KEYGATE_MAX_KEYS_PER_USER` holds in the console as on the other paths,
/// with a message that says to revoke a key first.
async fn the_key_limit_holds_in_the_console(engine: Engine) {
    let app = TestApp::builder(engine)
        .vars(&[("KEYGATE_MAX_KEYS_PER_USER", "1")])
        .start()
        .await;
    app.add_api("https://api.example.com", "API", "read").await;
    add_person(&app, "alice@example.com", "member").await;
    let (alice, csrf) = signed_in(&app, "alice@example.com").await;
    let first = create_in_console(&app, &alice, &csrf, "first").await;
    assert_eq!(first.status(), 200);
    assert!(first.text().await.unwrap().contains("kgs_"));
    let second = create_in_console(&app, &alice, &csrf, "second").await;
    assert_eq!(second.status(), 409);
    let page = second.text().await.unwrap();
    assert!(page.contains("revoke"), "{page}");
    assert!(page.contains("value=\"second\""), "the input is kept");
    assert_eq!(app.count_rows("SELECT COUNT(*) AS n FROM api_keys"), 1);
}

crate::both_engines!(
    a_member_cannot_touch_anothers_key,
    the_key_limit_holds_in_the_console,
);
