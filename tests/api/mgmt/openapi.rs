//! The OpenAPI document against the routes the server answers, and the
//! error answers schemathesis found undocumented.

use super::*;

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
            .replace("{name}", "payments")
            .replace("{identifier}", "https%3A%2F%2Fapi.example.com")
            .replace("{delivery_id}", "msg_none")
            .replace("{id}", "none");
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

both_engines!(
    openapi_describes_every_route,
    unknown_owner_filter_is_a_documented_404,
    oversized_optional_bodies_are_a_documented_json_413,
);
