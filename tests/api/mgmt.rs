//! The management API `/api/v1`: bearer authentication, who sees what, keys,
//! users, APIs, the audit log, pagination, and the OpenAPI document.

use std::collections::BTreeSet;

use reqwest::Method;
use serde_json::{Value, json};

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
    let app = spawn_app(engine).await;
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

async fn admins_manage_users(engine: Engine) {
    let w = world(engine).await;
    let response = w
        .call(
            Method::POST,
            &w.admin,
            "/api/v1/users",
            Some(json!({"email": "Carol@Example.com", "name": "Carol"})),
        )
        .await;
    assert_eq!(response.status(), 201);
    assert_eq!(
        response.headers()["location"],
        "/api/v1/users/carol%40example.com"
    );
    let carol: Value = response.json().await.unwrap();
    assert_eq!(carol["email"], "carol@example.com");
    assert_eq!(carol["role"], "member");
    assert_eq!(carol["disabled"], false);
    assert!(carol.get("password_hash").is_none());
    let dup = w
        .expect(
            Method::POST,
            &w.admin,
            "/api/v1/users",
            Some(json!({"email": "carol@example.com"})),
            409,
        )
        .await;
    assert_eq!(dup["error"], "user_exists");
    let bad = w
        .expect(
            Method::POST,
            &w.admin,
            "/api/v1/users",
            Some(json!({"email": "not an email"})),
            422,
        )
        .await;
    assert_eq!(bad["error"], "invalid_email");
    assert_eq!(
        w.get(&w.admin, "/api/v1/users/carol%40example.com").await["name"],
        "Carol"
    );
    let missing = w
        .expect(
            Method::GET,
            &w.admin,
            "/api/v1/users/nobody@example.com",
            None,
            404,
        )
        .await;
    assert_eq!(missing["error"], "user_not_found");

    let key = w
        .expect(
            Method::POST,
            &w.admin,
            "/api/v1/keys",
            Some(json!({"name": "c", "owner": "carol@example.com", "scopes": ["read"]})),
            201,
        )
        .await;
    let (id, secret) = (
        key["client_id"].as_str().unwrap(),
        key["client_secret"].as_str().unwrap(),
    );
    assert_eq!(w.token_status(id, secret).await, 200);

    let path = "/api/v1/users/carol@example.com";
    let disabled = w
        .expect(
            Method::PATCH,
            &w.admin,
            path,
            Some(json!({"disabled": true})),
            200,
        )
        .await;
    assert_eq!(disabled["disabled"], true);
    assert_eq!(w.token_status(id, secret).await, 401);
    let enabled = w
        .expect(
            Method::PATCH,
            &w.admin,
            path,
            Some(json!({"disabled": false, "can_create_keys": false, "role": "self-service"})),
            200,
        )
        .await;
    assert_eq!(enabled["disabled"], false);
    assert_eq!(enabled["can_create_keys"], false);
    assert_eq!(enabled["role"], "self-service");
    assert_eq!(w.token_status(id, secret).await, 200);
    let refused = w
        .expect(
            Method::POST,
            &w.admin,
            "/api/v1/keys",
            Some(json!({"name": "c2", "owner": "carol@example.com"})),
            403,
        )
        .await;
    assert_eq!(refused["error"], "key_creation_disabled");
    let no_role = w
        .expect(
            Method::PATCH,
            &w.admin,
            path,
            Some(json!({"role": "ghost"})),
            404,
        )
        .await;
    assert_eq!(no_role["error"], "role_not_found");
    let typo = w
        .expect(
            Method::PATCH,
            &w.admin,
            path,
            Some(json!({"disable": true})),
            400,
        )
        .await;
    assert_eq!(typo["error"], "invalid_request");

    let events = w
        .get(&w.admin, "/api/v1/audit-events?target=carol@example.com")
        .await;
    let actions: Vec<_> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(actions, ["user.updated", "user.disabled", "user.created"]);
}

async fn admins_register_apis(engine: Engine) {
    let w = world(engine).await;
    let body = json!({"identifier": "https://billing.example.com/v1", "name": "Billing", "scopes": ["invoices:read", "invoices:write"]});
    let response = w
        .call(Method::POST, &w.admin, "/api/v1/apis", Some(body.clone()))
        .await;
    assert_eq!(response.status(), 201);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let api: Value = response.json().await.unwrap();
    assert_eq!(api["identifier"], "https://billing.example.com/v1");
    assert_eq!(api["scopes"], json!(["invoices:read", "invoices:write"]));
    let dup = w
        .expect(Method::POST, &w.admin, "/api/v1/apis", Some(body), 409)
        .await;
    assert_eq!(dup["error"], "api_exists");
    assert_eq!(w.get(&w.admin, &location).await["name"], "Billing");
    let encoded = "/api/v1/apis/https%3A%2F%2Fbilling.example.com%2Fv1";
    assert_eq!(w.get(&w.admin, encoded).await["name"], "Billing");
    let missing = w
        .expect(
            Method::GET,
            &w.admin,
            "/api/v1/apis/https%3A%2F%2Fnope.example",
            None,
            404,
        )
        .await;
    assert_eq!(missing["error"], "api_not_found");
    let listed = w.get(&w.admin, "/api/v1/apis").await;
    assert_eq!(listed["items"].as_array().unwrap().len(), 2);
    let reserved = w
        .expect(Method::POST, &w.admin, "/api/v1/apis", Some(json!({"identifier": "https://x.example", "name": "X", "scopes": ["keygate:admin"]})), 422)
        .await;
    assert_eq!(reserved["error"], "reserved_scope");
    let not_uri = w
        .expect(
            Method::POST,
            &w.admin,
            "/api/v1/apis",
            Some(json!({"identifier": "billing", "name": "X"})),
            422,
        )
        .await;
    assert_eq!(not_uri["error"], "invalid_identifier");
}

/// An API renamed and its scopes changed: a scope taken away is no longer
/// in its tokens, whatever keys hold it; only admins may change an API.
async fn admins_change_an_apis_name_and_scopes(engine: Engine) {
    let w = world(engine).await;
    let body = json!({"identifier": "https://billing.example.com", "name": "Billing", "scopes": ["invoices:read", "invoices:write"]});
    w.expect(Method::POST, &w.admin, "/api/v1/apis", Some(body), 201)
        .await;
    let key = w
        .app
        .create_key(KeySpec::new(ROOT, "billing").scopes("invoices:read invoices:write"))
        .await;
    assert_eq!(
        w.app.access_token(&key).await["scope"],
        "invoices:read invoices:write"
    );
    let path = "/api/v1/apis/https%3A%2F%2Fbilling.example.com";
    let changed = w
        .expect(
            Method::PATCH,
            &w.admin,
            path,
            Some(json!({"scopes": ["invoices:read"]})),
            200,
        )
        .await;
    assert_eq!(changed["scopes"], json!(["invoices:read"]));
    assert_eq!(changed["name"], "Billing", "a field left out stays");
    assert_eq!(w.app.access_token(&key).await["scope"], "invoices:read");
    let renamed = w
        .expect(
            Method::PATCH,
            &w.admin,
            path,
            Some(json!({"name": "Invoicing"})),
            200,
        )
        .await;
    assert_eq!(renamed["name"], "Invoicing");
    assert_eq!(renamed["scopes"], json!(["invoices:read"]));
    w.expect(
        Method::PATCH,
        &w.bob,
        path,
        Some(json!({"name": "Mine"})),
        403,
    )
    .await;
    let reserved = w
        .expect(
            Method::PATCH,
            &w.admin,
            path,
            Some(json!({"scopes": ["keygate:admin"]})),
            422,
        )
        .await;
    assert_eq!(reserved["error"], "reserved_scope");
    let missing = w
        .expect(
            Method::PATCH,
            &w.admin,
            "/api/v1/apis/https%3A%2F%2Fnope.example",
            Some(json!({"name": "X"})),
            404,
        )
        .await;
    assert_eq!(missing["error"], "api_not_found");
    let events = w.get(&w.admin, "/api/v1/audit-events?limit=100").await;
    let updates = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "api.updated")
        .count();
    assert_eq!(updates, 2);
}

async fn audit_events_name_the_caller(engine: Engine) {
    let w = world(engine).await;
    let key = w
        .expect(
            Method::POST,
            &w.admin,
            "/api/v1/keys",
            Some(json!({"name": "audited", "owner": BOB})),
            201,
        )
        .await;
    let id = key["client_id"].as_str().unwrap();
    w.expect(
        Method::POST,
        &w.admin,
        &format!("/api/v1/keys/{id}/rotate"),
        None,
        200,
    )
    .await;
    w.expect(
        Method::POST,
        &w.bob,
        &format!("/api/v1/keys/{id}/revoke"),
        None,
        200,
    )
    .await;
    let events = w
        .get(&w.admin, &format!("/api/v1/audit-events?target={id}"))
        .await;
    let seen: Vec<(String, String)> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap().to_owned(),
                e["actor"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expected = [
        ("key.revoked", BOB),
        ("key.rotated", ROOT),
        ("key.created", ROOT),
    ];
    assert_eq!(seen, expected.map(|(a, b)| (a.to_owned(), b.to_owned())));
    let cli_key = &w.bob_key.client_id;
    let events = w
        .get(&w.admin, &format!("/api/v1/audit-events?target={cli_key}"))
        .await;
    assert_eq!(events["items"][0]["actor"], "command line");
}

/// `details` is the JSON object itself, not JSON text inside a string.
async fn audit_details_are_json_objects(engine: Engine) {
    let w = world(engine).await;
    let id = &w.bob_key.client_id;
    w.expect(
        Method::POST,
        &w.admin,
        &format!("/api/v1/keys/{id}/revoke"),
        Some(json!({"reason": "leaked in CI logs"})),
        200,
    )
    .await;
    let events = w
        .get(&w.admin, &format!("/api/v1/audit-events?target={id}"))
        .await;
    let newest = &events["items"][0];
    assert_eq!(newest["action"], "key.revoked");
    assert_eq!(newest["details"], json!({"reason": "leaked in CI logs"}));
    for event in events["items"].as_array().unwrap() {
        assert!(event["details"].is_object(), "{event}");
    }
}

async fn malformed_requests_get_json_errors(engine: Engine) {
    let w = world(engine).await;
    let url = format!("{}/api/v1/keys", w.app.address);
    for (content_type, body) in [
        ("application/json", "{not json"),
        ("application/json", r#"{"name": 5}"#),
        ("application/json", r#"{"name": "x", "colour": "red"}"#),
        ("text/plain", r#"{"name": "x"}"#),
    ] {
        let response = w
            .app
            .http
            .post(&url)
            .bearer_auth(&w.admin)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{body}");
        let json: Value = response.json().await.unwrap();
        assert_eq!(json["error"], "invalid_request", "{body}");
        assert!(json["message"].as_str().unwrap().contains("JSON"), "{json}");
    }
    let rotate = format!("{url}/{}/rotate", w.bob_key.client_id);
    let response = w
        .app
        .http
        .post(&rotate)
        .bearer_auth(&w.admin)
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let unknown = w
        .expect(Method::GET, &w.admin, "/api/v1/nothing", None, 404)
        .await;
    assert_eq!(unknown["error"], "not_found");
}

/// The generated document, as a reviewed snapshot: every change to a route,
/// a field or an error answer shows up in the diff.
#[test]
fn openapi_document_snapshot() {
    insta::assert_json_snapshot!("openapi", keygate::http::mgmt::openapi_document());
}

const METHODS: [&str; 5] = ["get", "put", "post", "delete", "patch"];

/// The served document is the generated one, and its routes are exactly what
/// the server answers: each documented operation reaches its handler (no
/// router 404, no 405); every other method on a documented path is a 405
/// naming the documented ones; any other path is a 404.
async fn openapi_describes_every_route(engine: Engine) {
    let w = world(engine).await;
    let response = w
        .app
        .http
        .get(format!("{}/api/v1/openapi.json", w.app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    let doc: Value = response.json().await.unwrap();
    assert_eq!(
        doc,
        serde_json::to_value(keygate::http::mgmt::openapi_document()).unwrap()
    );
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );

    let id = w.bob_key.client_id.as_str();
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() >= 8, "{paths:?}");
    for (path, item) in paths {
        let concrete = path
            .replace("{client_id}", id)
            .replace("{email}", BOB)
            .replace("{identifier}", "https%3A%2F%2Fapi.example.com");
        assert!(
            !concrete.contains('{'),
            "a parameter this test cannot fill: {path}"
        );
        let documented: Vec<&str> = METHODS
            .into_iter()
            .filter(|m| item.get(*m).is_some())
            .collect();
        for method in METHODS {
            let method_name = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let body = (method_name != Method::GET).then(|| json!({}));
            let response = w.call(method_name.clone(), &w.admin, &concrete, body).await;
            let status = response.status().as_u16();
            let allow = response
                .headers()
                .get("allow")
                .map(|v| v.to_str().unwrap().to_owned());
            let json: Value = response.json().await.unwrap_or(Value::Null);
            if documented.contains(&method) {
                assert!(
                    status != 405 && json["error"] != "not_found",
                    "{method} {concrete}: {status} {json}"
                );
            } else {
                assert_eq!(status, 405, "{method} {concrete}: {json}");
                assert_eq!(json["error"], "method_not_allowed");
                let expected = documented
                    .iter()
                    .map(|m| m.to_uppercase())
                    .collect::<Vec<_>>()
                    .join(", ");
                assert_eq!(allow.as_deref(), Some(expected.as_str()), "{method} {path}");
            }
        }
    }
    for unknown in ["/api/v1/nothing", "/api/v1/keys/a/b/c", "/api/v1/"] {
        let body = w.expect(Method::GET, &w.admin, unknown, None, 404).await;
        assert_eq!(body["error"], "not_found", "{unknown}");
    }
}

/// The served document's statuses for one operation.
async fn documented_statuses(w: &World, method: &str, path: &str) -> Vec<String> {
    let doc: Value = w
        .app
        .http
        .get(format!("{}/api/v1/openapi.json", w.app.address))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    doc["paths"][path][method]["responses"]
        .as_object()
        .unwrap_or_else(|| panic!("{method} {path} is not documented"))
        .keys()
        .cloned()
        .collect()
}

/// Found by schemathesis: an admin listing the keys of an owner nobody is
/// gets 404 `user_not_found`, which the document did not list.
async fn unknown_owner_filter_is_a_documented_404(engine: Engine) {
    let w = world(engine).await;
    for owner in ["", "nobody%40example.com"] {
        let path = format!("/api/v1/keys?owner={owner}");
        let body = w.expect(Method::GET, &w.admin, &path, None, 404).await;
        assert_eq!(body["error"], "user_not_found", "{path}");
    }
    let statuses = documented_statuses(&w, "get", "/api/v1/keys").await;
    assert!(statuses.contains(&"404".to_owned()), "{statuses:?}");
}

/// A rotate or revoke body past the limit is a documented JSON 413, like
/// every other error of this API (it was actix's plain-text 413).
async fn oversized_optional_bodies_are_a_documented_json_413(engine: Engine) {
    let w = world(engine).await;
    let id = &w.bob_key.client_id;
    let huge = format!(r#"{{"reason": "{}"}}"#, "x".repeat(300 * 1024));
    for (method, path, template) in [
        (
            Method::POST,
            format!("/api/v1/keys/{id}/rotate"),
            "/api/v1/keys/{client_id}/rotate",
        ),
        (
            Method::POST,
            format!("/api/v1/keys/{id}/revoke"),
            "/api/v1/keys/{client_id}/revoke",
        ),
        (
            Method::DELETE,
            format!("/api/v1/keys/{id}"),
            "/api/v1/keys/{client_id}",
        ),
    ] {
        let response = w
            .app
            .http
            .request(method.clone(), format!("{}{path}", w.app.address))
            .bearer_auth(&w.admin)
            .header("content-type", "application/json")
            .body(huge.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 413, "{method} {path}");
        assert_eq!(response.headers()["content-type"], "application/json");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "payload_too_large", "{method} {path}");
        let name = method.as_str().to_lowercase();
        let statuses = documented_statuses(&w, &name, template).await;
        assert!(
            statuses.contains(&"413".to_owned()),
            "{method} {template}: {statuses:?}"
        );
    }
    // The key was neither rotated nor revoked.
    assert_eq!(w.token_status(id, &w.bob_key.client_secret).await, 200);
}

/// The API refuses control characters (NUL, ESC, BEL, any Unicode Cc) in
/// every name, description and reason, with a code naming the field.
async fn control_characters_are_refused_by_the_api(engine: Engine) {
    let w = world(engine).await;
    let before = w.app.table_counts();
    let cases = [
        (
            "/api/v1/keys".to_owned(),
            json!({"name": "\u{1b}]0;PWNED\u{7}", "scopes": ["read"], "owner": BOB}),
            "invalid_name",
        ),
        (
            "/api/v1/keys".to_owned(),
            json!({"name": "nul\u{0}", "scopes": ["read"], "owner": BOB}),
            "invalid_name",
        ),
        (
            "/api/v1/keys".to_owned(),
            json!({"name": "ok", "description": "x\u{9b}y", "scopes": ["read"], "owner": BOB}),
            "invalid_description",
        ),
        (
            format!("/api/v1/keys/{}/revoke", w.bob_key.client_id),
            json!({"reason": "gone\u{7}"}),
            "invalid_reason",
        ),
        (
            "/api/v1/users".to_owned(),
            json!({"email": "eve@example.com", "name": "Eve\u{1b}[31m"}),
            "invalid_name",
        ),
        (
            "/api/v1/apis".to_owned(),
            json!({"identifier": "https://evil.example.com", "name": "E\u{0}", "scopes": ["x"]}),
            "invalid_name",
        ),
    ];
    for (path, body, code) in cases {
        let refused = w
            .expect(Method::POST, &w.admin, &path, Some(body.clone()), 422)
            .await;
        assert_eq!(refused["error"], code, "{body}");
        let message = refused["message"].as_str().unwrap();
        assert!(message.contains("control characters"), "{message}");
        assert!(!message.chars().any(char::is_control), "{message:?}");
    }
    assert_eq!(w.app.table_counts(), before, "something was written");
}

both_engines!(
    control_characters_are_refused_by_the_api,
    missing_or_bad_tokens_are_401_with_a_challenge,
    tokens_without_a_management_scope_are_403,
    self_service_callers_see_only_their_own_keys,
    admins_create_rotate_and_revoke_keys,
    rotation_grace_is_capped_over_the_api,
    the_last_admin_stays_an_enabled_admin,
    pagination_walks_every_item_once,
    admins_manage_users,
    admins_register_apis,
    admins_change_an_apis_name_and_scopes,
    audit_events_name_the_caller,
    audit_details_are_json_objects,
    malformed_requests_get_json_errors,
    openapi_describes_every_route,
    unknown_owner_filter_is_a_documented_404,
    oversized_optional_bodies_are_a_documented_json_413,
);
