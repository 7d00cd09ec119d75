//! The management API for admins: people, registered APIs, the audit log
//! and malformed requests.

use super::*;

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
    assert_eq!(actions, ["user.enabled", "user.disabled", "user.created"]);
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
    // Each string one scope, as PATCH wants them: two in one is refused.
    let joined = w
        .expect(
            Method::POST,
            &w.admin,
            "/api/v1/apis",
            Some(json!({"identifier": "https://y.example", "name": "Y", "scopes": ["read write"]})),
            422,
        )
        .await;
    assert_eq!(joined["error"], "invalid_scope");
    assert!(
        joined["message"]
            .as_str()
            .unwrap()
            .contains("its own string")
    );
}

/// No API may be the issuer (its tokens would be keygate's own) nor define
/// a scope in keygate's `keygate:` namespace, over the API and the CLI
/// alike: 422, and nothing is written.
async fn apis_stay_clear_of_keygates_own_names(engine: Engine) {
    let w = world(engine).await;
    let issuer = w.app.issuer.clone();
    let before = w.app.table_counts();
    for identifier in [issuer.clone(), format!("{issuer}/")] {
        let body = json!({"identifier": identifier, "name": "Me", "scopes": ["read"]});
        let refused = w
            .expect(Method::POST, &w.admin, "/api/v1/apis", Some(body), 422)
            .await;
        assert_eq!(refused["error"], "invalid_identifier", "{refused}");
        assert!(
            refused["message"].as_str().unwrap().contains("issuer"),
            "{refused}"
        );
    }
    for scopes in [json!(["keygate:foo"]), json!(["read", "keygate:"])] {
        let body = json!({"identifier": "https://x.example", "name": "X", "scopes": scopes});
        let refused = w
            .expect(Method::POST, &w.admin, "/api/v1/apis", Some(body), 422)
            .await;
        assert_eq!(refused["error"], "reserved_scope", "{refused}");
    }
    let path = format!(
        "/api/v1/apis/{}",
        API.replace(':', "%3A").replace('/', "%2F")
    );
    let refused = w
        .expect(
            Method::PATCH,
            &w.admin,
            &path,
            Some(json!({"scopes": ["read", "keygate:keys:all"]})),
            422,
        )
        .await;
    assert_eq!(refused["error"], "reserved_scope", "{refused}");
    let cli = w
        .app
        .cli(&["apis", "add", &issuer, "--name", "Me", "--scopes", "read"])
        .await;
    assert_eq!(cli.status.code(), Some(1), "{}", cli.stdout);
    assert!(cli.stderr.contains("issuer"), "{}", cli.stderr);
    let cli = w
        .app
        .cli(&[
            "apis",
            "add",
            "https://y.example",
            "--name",
            "Y",
            "--scopes",
            "keygate:y",
        ])
        .await;
    assert_eq!(cli.status.code(), Some(1), "{}", cli.stdout);
    assert!(cli.stderr.contains("keygate:y"), "{}", cli.stderr);
    assert_eq!(w.app.table_counts(), before, "something was written");
    assert_eq!(
        w.get(&w.admin, &path).await["scopes"],
        json!(["read", "write"])
    );
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

both_engines!(
    admins_manage_users,
    admins_register_apis,
    apis_stay_clear_of_keygates_own_names,
    admins_change_an_apis_name_and_scopes,
    audit_events_name_the_caller,
    audit_details_are_json_objects,
    malformed_requests_get_json_errors,
);
