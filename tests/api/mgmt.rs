//! The management API `/api/v1`: bearer authentication, who sees what, keys,
//! users, APIs, the audit log, pagination, and the OpenAPI document.

use std::collections::BTreeSet;

use reqwest::Method;
use serde_json::{Value, json};

mod admin;
mod openapi;
mod webhooks;

use crate::both_engines;
use crate::helpers::{Engine, Key, KeySpec, TestApp, at_jwt_header, sign_token, spawn_app};

const API: &str = "https://api.example.com";
const ROOT: &str = "root@example.com";
const BOB: &str = "bob@example.com";
const CC: (&str, &str) = ("grant_type", "client_credentials");

/// An admin with a `keygate:admin` key, an API, and a self-service user bob
/// whose key holds `keygate:keys`.
struct World {
    app: TestApp,
    admin_key: Key,
    admin: String,
    bob_key: Key,
    bob: String,
}

async fn world(engine: Engine) -> World {
    world_of(spawn_app(engine).await).await
}

/// The same world on an app whose background jobs run only when a test
/// runs them.
async fn world_with_jobs_on_demand(engine: Engine) -> World {
    world_of(TestApp::builder(engine).jobs_on_demand().start().await).await
}

async fn world_of(app: TestApp) -> World {
    app.add_user(ROOT, "admin").await;
    app.add_api(API, "A", "read write").await;
    app.set_role("self-service", "keygate:keys read").await;
    app.add_user(BOB, "self-service").await;
    let admin_key = app
        .create_key(KeySpec::new(ROOT, "admin").scopes("keygate:admin"))
        .await;
    let bob_key = app
        .create_key(KeySpec::new(BOB, "self").scopes("keygate:keys"))
        .await;
    let admin = app.token_string(&admin_key).await;
    let bob = app.token_string(&bob_key).await;
    World {
        app,
        admin_key,
        admin,
        bob_key,
        bob,
    }
}

impl World {
    async fn call(
        &self,
        method: Method,
        token: &str,
        path: &str,
        body: Option<Value>,
    ) -> reqwest::Response {
        let mut request = self
            .app
            .http
            .request(method, format!("{}{path}", self.app.address))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send().await.expect("API request")
    }

    /// A request that must answer `status`; returns the JSON body.
    async fn expect(
        &self,
        method: Method,
        token: &str,
        path: &str,
        body: Option<Value>,
        status: u16,
    ) -> Value {
        let response = self.call(method.clone(), token, path, body).await;
        let got = response.status().as_u16();
        let text = response.text().await.expect("body");
        assert_eq!(got, status, "{method} {path}: {text}");
        serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{method} {path}: not JSON ({e}): {text}"))
    }

    async fn get(&self, token: &str, path: &str) -> Value {
        self.expect(Method::GET, token, path, None, 200).await
    }

    /// Every item of a list, following `next_cursor` with pages of `limit`.
    async fn walk(&self, token: &str, path: &str, limit: usize) -> Vec<Value> {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        let separator = if path.contains('?') { '&' } else { '?' };
        loop {
            let mut url = format!("{path}{separator}limit={limit}");
            if let Some(c) = &cursor {
                url.push_str(&format!("&cursor={c}"));
            }
            let page = self.get(token, &url).await;
            let got = page["items"].as_array().expect("items").clone();
            assert!(got.len() <= limit);
            items.extend(got);
            match page["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => return items,
            }
        }
    }

    async fn token_status(&self, client_id: &str, secret: &str) -> u16 {
        self.app
            .token_basic(client_id, secret, &[CC])
            .await
            .status()
            .as_u16()
    }
}

fn client_ids(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .map(|k| k["client_id"].as_str().expect("client_id").to_owned())
        .collect()
}

async fn assert_challenge(response: reqwest::Response, expected: &str) {
    assert_eq!(response.status(), 401);
    assert_eq!(response.headers()["www-authenticate"], expected);
    let body: Value = response.json().await.expect("JSON body");
    assert_eq!(body["error"], "unauthorized");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
}

async fn missing_or_bad_tokens_are_401_with_a_challenge(engine: Engine) {
    let w = world(engine).await;
    let url = format!("{}/api/v1/keys", w.app.address);
    let none = w.app.http.get(&url).send().await.unwrap();
    assert_challenge(none, r#"Bearer realm="keygate""#).await;
    let invalid = r#"Bearer realm="keygate", error="invalid_token""#;
    assert_challenge(
        w.call(Method::GET, "garbage", "/api/v1/keys", None).await,
        invalid,
    )
    .await;
    // Another scheme is no bearer credential at all (RFC 6750 §3.1).
    let basic = w
        .app
        .http
        .get(&url)
        .basic_auth("a", Some("b"))
        .send()
        .await
        .unwrap();
    assert_challenge(basic, r#"Bearer realm="keygate""#).await;

    // Signed by the real key, but expired.
    let (kid, pair) = w.app.server_signing_key();
    let mut claims = w.app.claims_for(&w.admin_key, &w.app.issuer);
    claims["scope"] = "keygate:admin".into();
    claims["exp"] = (chrono::Utc::now().timestamp() - 1).into();
    let expired = sign_token(&pair, &at_jwt_header(&pair, &kid), &claims);
    assert_challenge(
        w.call(Method::GET, &expired, "/api/v1/keys", None).await,
        invalid,
    )
    .await;

    // Meant for another audience.
    let mut claims = w.app.claims_for(&w.admin_key, API);
    claims["scope"] = "keygate:admin".into();
    let elsewhere = sign_token(&pair, &at_jwt_header(&pair, &kid), &claims);
    assert_challenge(
        w.call(Method::GET, &elsewhere, "/api/v1/keys", None).await,
        invalid,
    )
    .await;

    // A token revoked at /oauth/revoke, then a token whose key is revoked.
    assert_eq!(w.app.revoke(&w.bob_key, &w.bob).await.status(), 200);
    assert_challenge(
        w.call(Method::GET, &w.bob, "/api/v1/keys", None).await,
        invalid,
    )
    .await;
    w.get(&w.admin, "/api/v1/keys").await;
    w.app
        .cli_ok(&["keys", "revoke", &w.admin_key.client_id])
        .await;
    assert_challenge(
        w.call(Method::GET, &w.admin, "/api/v1/keys", None).await,
        invalid,
    )
    .await;
}

/// A token for keygate's API without a management scope is 403; a key with
/// only an API's scopes gets tokens for that API, which keygate's API refuses.
async fn tokens_without_a_management_scope_are_403(engine: Engine) {
    let w = world(engine).await;
    let reader = w
        .app
        .create_key(KeySpec::new(BOB, "reader").scopes("read"))
        .await;
    let token = w.app.token_string(&reader).await;
    let response = w.call(Method::GET, &token, "/api/v1/keys", None).await;
    assert_eq!(response.status(), 401);
    let introspector = w
        .app
        .create_key(KeySpec::new(ROOT, "introspector").scopes("keygate:introspect"))
        .await;
    let token = w.app.token_string(&introspector).await;
    let response = w.call(Method::GET, &token, "/api/v1/keys", None).await;
    assert_eq!(response.status(), 403);
    assert_eq!(
        response.headers()["www-authenticate"],
        r#"Bearer realm="keygate", error="insufficient_scope", scope="keygate:keys""#
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "insufficient_scope");
}

async fn self_service_callers_see_only_their_own_keys(engine: Engine) {
    let w = world(engine).await;
    let created = w
        .expect(
            Method::POST,
            &w.bob,
            "/api/v1/keys",
            Some(json!({"name": "mine", "scopes": ["read"]})),
            201,
        )
        .await;
    assert_eq!(created["owner"], BOB);
    let listed = w.get(&w.bob, "/api/v1/keys").await;
    let mut ids = client_ids(listed["items"].as_array().unwrap());
    ids.sort();
    let mut expected = vec![
        w.bob_key.client_id.clone(),
        created["client_id"].as_str().unwrap().to_owned(),
    ];
    expected.sort();
    assert_eq!(ids, expected);
    assert!(
        listed["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|k| k["owner"] == BOB && k.get("client_secret").is_none())
    );

    // Another's key does not exist, as far as bob can tell.
    let other = &w.admin_key.client_id;
    for (method, path) in [
        (Method::GET, format!("/api/v1/keys/{other}")),
        (Method::POST, format!("/api/v1/keys/{other}/rotate")),
        (Method::POST, format!("/api/v1/keys/{other}/revoke")),
        (Method::DELETE, format!("/api/v1/keys/{other}")),
    ] {
        let body = w.expect(method, &w.bob, &path, None, 404).await;
        assert_eq!(body["error"], "key_not_found");
    }
    assert_eq!(w.token_status(other, &w.admin_key.client_secret).await, 200);

    for (method, path, body) in [
        (Method::GET, "/api/v1/users", None),
        (Method::GET, "/api/v1/keys?owner=root@example.com", None),
        (
            Method::POST,
            "/api/v1/keys",
            Some(json!({"name": "x", "owner": ROOT})),
        ),
        (Method::GET, "/api/v1/audit-events", None),
        (
            Method::POST,
            "/api/v1/apis",
            Some(json!({"identifier": "https://x.example", "name": "X"})),
        ),
    ] {
        let response = w.call(method.clone(), &w.bob, path, body).await;
        assert_eq!(response.status(), 403, "{method} {path}");
        assert_eq!(
            response.headers()["www-authenticate"],
            r#"Bearer realm="keygate", error="insufficient_scope", scope="keygate:admin""#
        );
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "insufficient_scope");
    }
    // A role rule still applies: bob's role may not grant write.
    let body = w
        .expect(
            Method::POST,
            &w.bob,
            "/api/v1/keys",
            Some(json!({"name": "w", "scopes": ["write"]})),
            403,
        )
        .await;
    assert_eq!(body["error"], "scope_not_grantable");
}

async fn admins_create_rotate_and_revoke_keys(engine: Engine) {
    let w = world(engine).await;
    let request = json!({
        "name": "deploy", "description": "CI", "scopes": ["read"],
        "audiences": [API], "expires_in": "30d", "owner": BOB,
    });
    let response = w
        .call(Method::POST, &w.admin, "/api/v1/keys", Some(request))
        .await;
    assert_eq!(response.status(), 201);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let created: Value = response.json().await.unwrap();
    let id = created["client_id"].as_str().unwrap().to_owned();
    let secret = created["client_secret"].as_str().unwrap().to_owned();
    assert_eq!(location, format!("/api/v1/keys/{id}"));
    assert_eq!(created["owner"], BOB);
    assert_eq!(created["scopes"], json!(["read"]));
    assert_eq!(created["audiences"], json!([API]));
    assert!(created["expires_at"].is_string());

    let read = w.get(&w.admin, &location).await;
    assert!(read.get("client_secret").is_none());
    assert_eq!(read["status"], "active");
    assert_eq!(read["created_by"], ROOT);
    // Bob owns it, so bob sees it too.
    w.get(&w.bob, &location).await;
    assert_eq!(w.token_status(&id, &secret).await, 200);

    // Rotation without grace: the old secret stops at once.
    let response = w
        .call(Method::POST, &w.admin, &format!("{location}/rotate"), None)
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let rotated: Value = response.json().await.unwrap();
    assert_eq!(rotated["client_id"], id.as_str());
    let second = rotated["client_secret"].as_str().unwrap().to_owned();
    assert_ne!(second, secret);
    assert_eq!(w.token_status(&id, &secret).await, 401);
    assert_eq!(w.token_status(&id, &second).await, 200);

    // With grace, the old one keeps working.
    let rotated = w
        .expect(
            Method::POST,
            &w.admin,
            &format!("{location}/rotate"),
            Some(json!({"grace": "1h"})),
            200,
        )
        .await;
    let third = rotated["client_secret"].as_str().unwrap().to_owned();
    assert!(rotated["previous_secret_expires_at"].is_string());
    assert_eq!(w.token_status(&id, &second).await, 200);
    assert_eq!(w.token_status(&id, &third).await, 200);

    let revoked = w
        .expect(
            Method::POST,
            &w.admin,
            &format!("{location}/revoke"),
            Some(json!({"reason": "leaked"})),
            200,
        )
        .await;
    assert_eq!(revoked["status"], "revoked");
    assert_eq!(revoked["revoked_by"], ROOT);
    assert_eq!(revoked["revoked_reason"], "leaked");
    assert_eq!(w.token_status(&id, &third).await, 401);
    assert_eq!(w.token_status(&id, &second).await, 401);
    let again = w
        .expect(Method::DELETE, &w.admin, &location, None, 409)
        .await;
    assert_eq!(again["error"], "key_revoked");

    // DELETE revokes too; the owner revokes their own.
    let own = &w.bob_key.client_id;
    let gone = w
        .expect(
            Method::DELETE,
            &w.bob,
            &format!("/api/v1/keys/{own}"),
            None,
            200,
        )
        .await;
    assert_eq!(gone["revoked_by"], BOB);

    let missing = w
        .expect(Method::GET, &w.admin, "/api/v1/keys/kgc_nope", None, 404)
        .await;
    assert_eq!(missing["error"], "key_not_found");
    let bad = w
        .expect(
            Method::POST,
            &w.admin,
            "/api/v1/keys",
            Some(json!({"name": "x", "expires_in": "soon"})),
            422,
        )
        .await;
    assert_eq!(bad["error"], "invalid_duration");
    let unknown = w
        .expect(
            Method::POST,
            &w.admin,
            "/api/v1/keys",
            Some(json!({"name": "x", "owner": "nobody@example.com"})),
            404,
        )
        .await;
    assert_eq!(unknown["error"], "user_not_found");
}

/// The API refuses a grace beyond 30 days or the key's expiry with a 422
/// that says so, like any other invalid value.
async fn rotation_grace_is_capped_over_the_api(engine: Engine) {
    let w = world(engine).await;
    let request = json!({"name": "deploy", "scopes": ["read"], "expires_in": "10d", "owner": BOB});
    let created = w
        .expect(Method::POST, &w.admin, "/api/v1/keys", Some(request), 201)
        .await;
    let rotate = format!(
        "/api/v1/keys/{}/rotate",
        created["client_id"].as_str().unwrap()
    );
    for (grace, says) in [
        ("31d", "longer than the maximum of 30 days"),
        ("11d", "would outlive the key"),
    ] {
        let refused = w
            .expect(
                Method::POST,
                &w.admin,
                &rotate,
                Some(json!({"grace": grace})),
                422,
            )
            .await;
        assert_eq!(refused["error"], "grace_too_long", "{refused}");
        assert!(
            refused["message"].as_str().unwrap().contains(says),
            "{refused}"
        );
    }
    w.expect(
        Method::POST,
        &w.admin,
        &rotate,
        Some(json!({"grace": "9d"})),
        200,
    )
    .await;
}

/// The only admin can neither disable nor demote themselves: 409
/// `last_admin`, and they stay an enabled admin.
async fn the_last_admin_stays_an_enabled_admin(engine: Engine) {
    let w = world(engine).await;
    let path = "/api/v1/users/root%40example.com";
    for change in [json!({"disabled": true}), json!({"role": "member"})] {
        let refused = w
            .expect(Method::PATCH, &w.admin, path, Some(change.clone()), 409)
            .await;
        assert_eq!(refused["error"], "last_admin", "{change}: {refused}");
        assert!(
            refused["message"]
                .as_str()
                .unwrap()
                .contains("root@example.com is the last enabled admin"),
            "{refused}"
        );
    }
    let root = w.get(&w.admin, path).await;
    assert_eq!(
        (root["role"].as_str(), root["disabled"].as_bool()),
        (Some("admin"), Some(false))
    );
    // With a second admin, the first may step down.
    w.app.add_user("ops@example.com", "admin").await;
    w.expect(
        Method::PATCH,
        &w.admin,
        path,
        Some(json!({"role": "member"})),
        200,
    )
    .await;
}

async fn pagination_walks_every_item_once(engine: Engine) {
    let w = world(engine).await;
    for n in 0..5 {
        w.expect(
            Method::POST,
            &w.admin,
            "/api/v1/keys",
            Some(json!({"name": format!("k{n}")})),
            201,
        )
        .await;
    }
    let all = client_ids(
        w.get(&w.admin, "/api/v1/keys").await["items"]
            .as_array()
            .unwrap(),
    );
    assert_eq!(all.len(), 7);
    let walked = client_ids(&w.walk(&w.admin, "/api/v1/keys", 2).await);
    assert_eq!(walked, all, "same items in the same order");
    assert_eq!(walked.iter().collect::<BTreeSet<_>>().len(), 7);

    let root_only = w
        .walk(&w.admin, "/api/v1/keys?owner=root%40example.com", 3)
        .await;
    assert_eq!(root_only.len(), 6);
    w.expect(
        Method::POST,
        &w.admin,
        &format!("/api/v1/keys/{}/revoke", all[0]),
        None,
        200,
    )
    .await;
    let revoked = w.get(&w.admin, "/api/v1/keys?status=revoked").await;
    assert_eq!(
        client_ids(revoked["items"].as_array().unwrap()),
        vec![all[0].clone()]
    );

    let events = w.walk(&w.admin, "/api/v1/audit-events", 4).await;
    let ids: BTreeSet<_> = events
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), events.len());
    let users = w.walk(&w.admin, "/api/v1/users", 1).await;
    assert_eq!(
        users.iter().map(|u| u["email"].clone()).collect::<Vec<_>>(),
        vec![json!(BOB), json!(ROOT)]
    );

    for bad in [
        "/api/v1/keys?cursor=bm9wZQ",
        "/api/v1/keys?cursor=%21%21",
        "/api/v1/keys?limit=0",
        "/api/v1/keys?limit=101",
        "/api/v1/keys?limit=ten",
        "/api/v1/keys?status=lost",
        "/api/v1/audit-events?cursor=x",
        "/api/v1/users?limit=-1",
    ] {
        let body = w.expect(Method::GET, &w.admin, bad, None, 400).await;
        assert_eq!(body["error"], "invalid_request", "{bad}");
    }
}

/// The generated document, as a reviewed snapshot: every change to a route,
/// a field or an error answer shows up in the diff.
#[test]
fn openapi_document_snapshot() {
    insta::assert_json_snapshot!("openapi", keygate::http::mgmt::openapi_document());
}

/// The API refuses control characters (NUL, ESC, BEL, any Unicode Cc) in
/// every name, description and reason, with a code naming the field.
async fn control_characters_are_refused_by_the_api(engine: Engine) {
    let bad = BadTexts {
        key_names: &["\u{1b}]0;PWNED\u{7}", "nul\u{0}"],
        description: "x\u{9b}y",
        reason: "gone\u{7}",
        person: "Eve\u{1b}[31m",
        api: "E\u{0}",
    };
    assert_texts_refused(engine, bad).await;
}

/// The API refuses Unicode bidirectional controls (U+202A–U+202E,
/// U+2066–U+2069), which make a name read otherwise than it is, in every
/// name, description and reason, with the code of a bad value of its field.
async fn bidirectional_controls_are_refused_by_the_api(engine: Engine) {
    let bad = BadTexts {
        key_names: &["invoice\u{202E}fdp.exe", "\u{2066}ok\u{2069}"],
        description: "a\u{202A}b",
        reason: "gone\u{2067}",
        person: "Eve\u{202D}",
        api: "E\u{2068}",
    };
    assert_texts_refused(engine, bad).await;
}

/// A text of each kind the API takes that must be refused.
struct BadTexts<'a> {
    key_names: &'a [&'a str],
    description: &'a str,
    reason: &'a str,
    person: &'a str,
    api: &'a str,
}

/// Each bad text, sent where it belongs, is 422 with the code of its field
/// and a message that says why without repeating the character; nothing is
/// written, and the key whose revocation was refused still works.
async fn assert_texts_refused(engine: Engine, bad: BadTexts<'_>) {
    let w = world(engine).await;
    let before = w.app.table_counts();
    let revoke = format!("/api/v1/keys/{}/revoke", w.bob_key.client_id);
    let mut cases: Vec<(&str, Value, &str)> = bad
        .key_names
        .iter()
        .map(|name| {
            let body = json!({"name": name, "scopes": ["read"], "owner": BOB});
            ("/api/v1/keys", body, "invalid_name")
        })
        .collect();
    cases.extend([
        (
            "/api/v1/keys",
            json!({"name": "ok", "description": bad.description, "scopes": ["read"], "owner": BOB}),
            "invalid_description",
        ),
        (
            revoke.as_str(),
            json!({"reason": bad.reason}),
            "invalid_reason",
        ),
        (
            "/api/v1/users",
            json!({"email": "eve@example.com", "name": bad.person}),
            "invalid_name",
        ),
        (
            "/api/v1/apis",
            json!({"identifier": "https://evil.example.com", "name": bad.api, "scopes": ["x"]}),
            "invalid_name",
        ),
    ]);
    for (path, body, code) in cases {
        let refused = w
            .expect(Method::POST, &w.admin, path, Some(body.clone()), 422)
            .await;
        assert_eq!(refused["error"], code, "{body}");
        let message = refused["message"].as_str().unwrap();
        assert!(message.contains("control characters"), "{message}");
        assert!(!message.chars().any(char::is_control), "{message:?}");
        assert!(!message.chars().any(is_bidi_control), "{message:?}");
    }
    assert_eq!(w.app.table_counts(), before, "something was written");
    let bob = &w.bob_key;
    assert_eq!(
        w.token_status(&bob.client_id, &bob.client_secret).await,
        200
    );
}

fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

both_engines!(
    control_characters_are_refused_by_the_api,
    bidirectional_controls_are_refused_by_the_api,
    missing_or_bad_tokens_are_401_with_a_challenge,
    tokens_without_a_management_scope_are_403,
    self_service_callers_see_only_their_own_keys,
    admins_create_rotate_and_revoke_keys,
    rotation_grace_is_capped_over_the_api,
    the_last_admin_stays_an_enabled_admin,
    pagination_walks_every_item_once,
);
