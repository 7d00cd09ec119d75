//! `/api/v1/webhooks`: endpoints made, read, changed and removed by admins,
//! their signing secret shown once, refusals that change nothing, and the
//! delivery log with "send a test event" and "resend".

use std::sync::{Arc, OnceLock};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use keygate::jobs::Job;

use super::*;

const ENDPOINTS: &str = "SELECT COUNT(*) AS n FROM webhook_endpoints";

/// A receiver on loopback that checks each delivery with the reference
/// verifier (the `standardwebhooks` crate) under the secret set in `key`
/// once known: 204 when it verifies, 400 otherwise.
async fn verifying_receiver(key: Arc<OnceLock<String>>) -> String {
    let server = HttpServer::new(move || {
        let key = Arc::clone(&key);
        App::new().default_service(web::to(move |request: HttpRequest, body: web::Bytes| {
            let key = Arc::clone(&key);
            async move {
                let mut headers = http::HeaderMap::new();
                for (name, value) in request.headers() {
                    headers.append(
                        http::HeaderName::from_bytes(name.as_str().as_bytes()).unwrap(),
                        http::HeaderValue::from_bytes(value.as_bytes()).unwrap(),
                    );
                }
                let verified = key.get().is_some_and(|secret| {
                    standardwebhooks::Webhook::new(secret)
                        .expect("a whsec_ secret")
                        .verify(&body, &headers)
                        .is_ok()
                });
                if verified {
                    HttpResponse::NoContent().finish()
                } else {
                    HttpResponse::BadRequest().finish()
                }
            }
        }))
    })
    .workers(1)
    .disable_signals()
    .bind(("127.0.0.1", 0))
    .expect("bind the receiver");
    let address = server.addrs()[0];
    tokio::spawn(server.run());
    format!("http://{address}/hooks")
}

/// A loopback URL that nothing listens on: each attempt fails at once.
fn refusing_url() -> String {
    let socket = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    let port = socket.local_addr().expect("its port").port();
    drop(socket);
    format!("http://127.0.0.1:{port}/hooks")
}

fn actions_on(events: &Value) -> Vec<String> {
    events["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|e| e["action"].as_str().expect("action").to_owned())
        .collect()
}

async fn admins_manage_webhook_endpoints(engine: Engine) {
    let w = world(engine).await;
    let response = w
        .call(
            Method::POST,
            &w.admin,
            "/api/v1/webhooks",
            Some(json!({
                "url": "https://hooks.example.com/keygate",
                "events": ["key.revoked", "key.created"],
                "description": "chat channel",
            })),
        )
        .await;
    assert_eq!(response.status(), 201);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let location = response.headers()["location"]
        .to_str()
        .expect("a Location")
        .to_owned();
    let created: Value = response.json().await.expect("JSON");
    let id = created["id"].as_str().expect("an ID").to_owned();
    assert!(
        location.ends_with(&format!("/api/v1/webhooks/{id}")),
        "{location}"
    );
    let secret = created["secret"].as_str().expect("the secret");
    let decoded = secret
        .strip_prefix("whsec_")
        .map(|b| base64::Engine::decode(&base64::engine::general_purpose::STANDARD, b));
    assert_eq!(
        decoded.map(|d| d.map(|d| d.len())),
        Some(Ok(32)),
        "{secret}"
    );
    assert_eq!(created["events"], json!(["key.created", "key.revoked"]));
    assert_eq!(created["all_events"], false);
    assert_eq!(created["enabled"], true);
    assert_eq!(created["created_by"], ROOT);

    // Shown once: never in a read, a list, or the stored row.
    let path = format!("/api/v1/webhooks/{id}");
    let read = w.get(&w.admin, &path).await;
    let list = w.get(&w.admin, "/api/v1/webhooks").await;
    for shown in [&read, &list] {
        assert!(!shown.to_string().contains(secret), "{shown}");
    }
    assert_eq!(list["items"].as_array().map(Vec::len), Some(1));
    assert_eq!(list["items"][0]["url"], "https://hooks.example.com/keygate");
    let stored = w.app.count_rows(&format!(
        "SELECT COUNT(*) AS n FROM webhook_endpoints WHERE id = '{id}' AND secret_sealed <> ''"
    ));
    assert_eq!(stored, 1);

    let changed = w
        .expect(
            Method::PATCH,
            &w.admin,
            &path,
            Some(json!({"events": ["key.expiring"], "description": "tickets"})),
            200,
        )
        .await;
    assert_eq!(changed["events"], json!(["key.expiring"]));
    assert_eq!(changed["description"], "tickets");
    let all = w
        .expect(
            Method::PATCH,
            &w.admin,
            &path,
            Some(json!({"events": null})),
            200,
        )
        .await;
    assert_eq!(all["all_events"], true);
    assert_eq!(all["description"], "tickets", "left out: unchanged");
    let off = w
        .expect(
            Method::PATCH,
            &w.admin,
            &path,
            Some(json!({"enabled": false})),
            200,
        )
        .await;
    assert_eq!(off["enabled"], false);
    let refused = w
        .expect(Method::POST, &w.admin, &format!("{path}/test"), None, 409)
        .await;
    assert_eq!(refused["error"], "webhook_disabled");

    let response = w.call(Method::DELETE, &w.admin, &path, None).await;
    assert_eq!(response.status(), 204);
    let gone = w.expect(Method::GET, &w.admin, &path, None, 404).await;
    assert_eq!(gone["error"], "webhook_not_found");
    let audit = w
        .get(
            &w.admin,
            &format!("/api/v1/audit-events?target=webhook:{id}"),
        )
        .await;
    assert_eq!(
        actions_on(&audit),
        [
            "webhook.removed",
            "webhook.updated",
            "webhook.updated",
            "webhook.updated",
            "webhook.created"
        ]
    );
    assert!(!audit.to_string().contains(secret));
}

/// Each refusal names its field or the known types and changes nothing.
async fn bad_endpoints_are_refused_and_change_nothing(engine: Engine) {
    let w = world(engine).await;
    let good = "https://hooks.example.com/keygate";
    let created = w
        .expect(
            Method::POST,
            &w.admin,
            "/api/v1/webhooks",
            Some(json!({"url": good})),
            201,
        )
        .await;
    let path = format!("/api/v1/webhooks/{}", created["id"].as_str().unwrap());
    let before = w.app.count_rows(ENDPOINTS);
    let audited = w.app.count_rows("SELECT COUNT(*) AS n FROM audit_events");
    let long = format!("https://hooks.example.com/{}", "a".repeat(2048));
    for (body, status, code) in [
        (
            json!({"url": "ftp://hooks.example.com/"}),
            422,
            "invalid_url",
        ),
        (json!({"url": "file:///etc/passwd"}), 422, "invalid_url"),
        (
            json!({"url": "https://user:pw@hooks.example.com/"}),
            422,
            "invalid_url",
        ),
        (json!({"url": "not a url"}), 422, "invalid_url"),
        (json!({"url": long}), 422, "invalid_url"),
        (
            json!({"url": good, "events": ["key.created", "key.stolen"]}),
            422,
            "invalid_event_type",
        ),
        (
            json!({"url": good, "secret": "mine"}),
            400,
            "invalid_request",
        ),
        (json!({}), 400, "invalid_request"),
    ] {
        let refused = w
            .expect(
                Method::POST,
                &w.admin,
                "/api/v1/webhooks",
                Some(body.clone()),
                status,
            )
            .await;
        assert_eq!(refused["error"], code, "{body}: {refused}");
        assert!(
            !refused.to_string().contains("pw@"),
            "credentials never echoed: {refused}"
        );
    }
    let unknown = w
        .expect(
            Method::POST,
            &w.admin,
            "/api/v1/webhooks",
            Some(json!({"url": good, "events": ["key.stolen"]})),
            422,
        )
        .await;
    let message = unknown["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("key.created") && message.contains("webhook.test"),
        "the known types are listed: {unknown}"
    );
    for (body, code) in [
        (json!({"events": ["nope"]}), "invalid_event_type"),
        (json!({}), "nothing_to_change"),
        (json!({"description": "a\u{202e}b"}), "invalid_description"),
    ] {
        let refused = w
            .expect(Method::PATCH, &w.admin, &path, Some(body.clone()), 422)
            .await;
        assert_eq!(refused["error"], code, "{body}: {refused}");
    }
    let members = w
        .expect(
            Method::POST,
            &w.bob,
            "/api/v1/webhooks",
            Some(json!({"url": good})),
            403,
        )
        .await;
    assert_eq!(members["error"], "insufficient_scope");
    w.expect(Method::GET, &w.bob, "/api/v1/webhooks", None, 403)
        .await;
    w.expect(Method::DELETE, &w.bob, &path, None, 403).await;
    assert_eq!(w.app.count_rows(ENDPOINTS), before);
    assert_eq!(
        w.app.count_rows("SELECT COUNT(*) AS n FROM audit_events"),
        audited
    );
    assert_eq!(w.get(&w.admin, &path).await["all_events"], true);
}

/// A test event is queued and attempted (the healthy receiver checks it
/// with the reference verifier); the delivery log shows each attempt; a delivered or given-up delivery is sent again with the same ID.
async fn the_delivery_log_shows_tests_and_resends(engine: Engine) {
    let w = world_with_jobs_on_demand(engine).await;
    let create = |url: String| {
        let w = &w;
        async move {
            let created = w
                .expect(
                    Method::POST,
                    &w.admin,
                    "/api/v1/webhooks",
                    Some(json!({"url": url, "events": ["webhook.test"]})),
                    201,
                )
                .await;
            let id = created["id"].as_str().expect("an ID").to_owned();
            (id, created["secret"].as_str().expect("a secret").to_owned())
        }
    };
    let key = Arc::new(OnceLock::new());
    let (healthy, secret) = create(verifying_receiver(Arc::clone(&key)).await).await;
    key.set(secret).expect("the secret, once");
    let (down, _) = create(refusing_url()).await;

    for endpoint in [&healthy, &down] {
        let queued = w
            .expect(
                Method::POST,
                &w.admin,
                &format!("/api/v1/webhooks/{endpoint}/test"),
                None,
                202,
            )
            .await;
        assert_eq!(queued["event_type"], "webhook.test");
        assert_eq!(queued["status"], "pending");
        assert_eq!(queued["attempts"], 0);
    }
    assert_eq!(w.app.run_job(Job::WebhookDelivery).await, 2);

    let w = &w;
    let log = |endpoint: &str| {
        let path = format!("/api/v1/webhooks/{endpoint}/deliveries");
        async move { w.get(&w.admin, &path).await }
    };
    let delivered = log(&healthy).await;
    assert_eq!(delivered.as_array().map(Vec::len), Some(1), "{delivered}");
    assert_eq!(delivered[0]["status"], "delivered");
    assert_eq!(delivered[0]["attempts"], 1);
    assert_eq!(delivered[0]["last_status_code"], 204);
    assert!(delivered[0]["delivered_at"].is_string());
    let failing = log(&down).await;
    assert_eq!(failing[0]["status"], "pending");
    assert_eq!(failing[0]["attempts"], 1);
    assert_eq!(failing[0]["last_status_code"], Value::Null);
    assert!(
        failing[0]["last_error"]
            .as_str()
            .is_some_and(|e| !e.is_empty()),
        "{failing}"
    );
    assert!(failing[0]["next_attempt_at"].is_string());

    // Pending: it is retried on its own; resending it is a conflict.
    let pending_id = failing[0]["id"].as_str().unwrap();
    let refused = w
        .expect(
            Method::POST,
            &w.admin,
            &format!("/api/v1/webhooks/{down}/deliveries/{pending_id}/resend"),
            None,
            409,
        )
        .await;
    assert_eq!(refused["error"], "delivery_pending");
    // Another endpoint's delivery is not found under this one.
    let id = delivered[0]["id"].as_str().unwrap();
    let elsewhere = w
        .expect(
            Method::POST,
            &w.admin,
            &format!("/api/v1/webhooks/{down}/deliveries/{id}/resend"),
            None,
            404,
        )
        .await;
    assert_eq!(elsewhere["error"], "delivery_not_found");

    let again = w
        .expect(
            Method::POST,
            &w.admin,
            &format!("/api/v1/webhooks/{healthy}/deliveries/{id}/resend"),
            None,
            202,
        )
        .await;
    assert_eq!(
        (&again["id"], &again["status"]),
        (&json!(id), &json!("pending"))
    );
    assert_eq!(w.app.run_job(Job::WebhookDelivery).await, 1);
    let resent = log(&healthy).await;
    assert_eq!(resent.as_array().map(Vec::len), Some(1));
    assert_eq!(resent[0]["status"], "delivered");
    let audit = w
        .get(
            &w.admin,
            &format!("/api/v1/audit-events?target=webhook:{healthy}"),
        )
        .await;
    assert_eq!(
        actions_on(&audit),
        ["webhook.resent", "webhook.tested", "webhook.created"]
    );
}

both_engines!(
    admins_manage_webhook_endpoints,
    bad_endpoints_are_refused_and_change_nothing,
    the_delivery_log_shows_tests_and_resends,
);
