//! Webhooks end to end: a real HTTP receiver on loopback gets each event
//! signed per Standard Webhooks (the signature computed here from the
//! contract's recipe, not by keygate's code), retries follow the schedule
//! on the test's clock, and an endpoint failing for 5 days is switched off
//! with an email to the admins. In the folder: the reference verifier as the
//! receiver, receivers that stall or misbehave, and the worker across
//! processes (kill -9, two at once).

mod processes;
pub(crate) mod receiver;
mod reference;
mod stalls;

use aws_lc_rs::hmac;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use keygate::jobs::Job;
use keygate::keys::{self, Caller, KeyLimits};
use keygate::webhooks::{self, NewEndpoint, WebhookSealer};
use serde_json::Value;

use crate::both_engines;
use crate::helpers::mail::outbox;
use crate::helpers::{Engine, KeySpec, TestApp};
use receiver::Received;
pub(crate) use receiver::Receiver;

/// The contract's recipe: `v1,` + base64(HMAC-SHA256 over
/// `{id}.{timestamp}.{body}`, keyed by the secret's decoded bytes).
fn expected_signature(secret: &str, r: &Received) -> String {
    let key = STANDARD
        .decode(secret.strip_prefix("whsec_").expect("whsec_ prefix"))
        .expect("base64 secret");
    let key = hmac::Key::new(hmac::HMAC_SHA256, &key);
    let signed = format!("{}.{}.{}", r.id, r.timestamp, r.body);
    format!(
        "v1,{}",
        STANDARD.encode(hmac::sign(&key, signed.as_bytes()))
    )
}

/// Registers `url` for `events` (None: all); returns its ID and secret.
/// Needs no server running: the secret is sealed with the app's key.
pub(crate) async fn add_endpoint(
    app: &TestApp,
    url: &str,
    events: Option<Vec<String>>,
) -> (String, String) {
    let config = keygate::Config::from_vars(&app.vars).expect("valid test configuration");
    let sealer = WebhookSealer::new(&keygate::app::master_key(&config).expect("the master key"));
    let url = url.to_owned();
    let now = app.clock.now();
    let mut conn = app.db();
    tokio::task::spawn_blocking(move || {
        let created = webhooks::endpoint::create(
            &mut conn,
            &sealer,
            NewEndpoint {
                url: &url,
                events: events.as_deref(),
                description: "test receiver",
            },
            "admin@example.com",
            now,
        )
        .expect("endpoint created");
        (created.endpoint.id, created.secret.reveal().to_string())
    })
    .await
    .expect("blocking task")
}

/// The endpoint's deliveries, newest first.
fn deliveries(app: &TestApp, endpoint: &str) -> Vec<webhooks::DeliveryView> {
    webhooks::recent(&mut app.db(), endpoint, 100).expect("deliveries")
}

fn service(app: &TestApp) -> keys::Service {
    let limits = KeyLimits {
        max_lifetime: None,
        expiry_warning: "7d".parse().expect("a duration"),
        max_keys_per_user: None,
    };
    keys::Service::new(&app.issuer, limits)
}

async fn a_key_event_arrives_signed_and_is_retried_on_the_clock(engine: Engine) {
    let app = TestApp::builder(engine).jobs_on_demand().start().await;
    app.add_owner_and_api("alice@example.com").await;
    let receiver = Receiver::start().await;
    let (endpoint, secret) = add_endpoint(&app, &receiver.url, None).await;
    receiver.answer(500);
    let key = app.create_key(KeySpec::standard("read")).await;

    assert_eq!(app.run_job(Job::WebhookDelivery).await, 1);
    let first = receiver.received();
    assert_eq!(first.len(), 1);
    let got = &first[0];
    assert!(got.id.starts_with("msg_"), "{got:?}");
    assert_eq!(got.signature, expected_signature(&secret, got));
    let sent_at: i64 = got.timestamp.parse().expect("Unix seconds");
    assert!((chrono::Utc::now().timestamp() - sent_at).abs() < 60);
    let body: Value = serde_json::from_str(&got.body).expect("JSON body");
    assert_eq!(body["type"], "key.created");
    assert_eq!(body["data"]["client_id"], key.client_id.as_str());
    assert_eq!(body["data"]["status"], "active");
    assert_eq!(body["data"]["actor"], "command line");
    assert!(body["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')));
    assert!(
        !got.body.contains(&key.client_secret),
        "no secret in a payload"
    );

    // Failed: tried again after about 5 s by the clock, not before.
    let view = &deliveries(&app, &endpoint)[0];
    assert_eq!(
        (view.status.as_str(), view.attempts, view.last_status_code),
        ("pending", 1, Some(500))
    );
    assert!(
        view.last_error
            .as_deref()
            .is_some_and(|e| e.contains("500"))
    );
    assert_eq!(app.run_job(Job::WebhookDelivery).await, 0);
    app.advance_clock(chrono::Duration::seconds(6));
    receiver.answer(204);
    assert_eq!(app.run_job(Job::WebhookDelivery).await, 1);
    let all = receiver.received();
    assert_eq!(all.len(), 2);
    assert_eq!(all[1].id, all[0].id, "the same webhook-id on every retry");
    assert_eq!(all[1].body, all[0].body);
    assert_eq!(all[1].signature, expected_signature(&secret, &all[1]));
    let view = &deliveries(&app, &endpoint)[0];
    assert_eq!(
        (view.status.as_str(), view.attempts, view.next_attempt_at),
        ("delivered", 2, None)
    );
    assert_eq!(app.run_job(Job::WebhookDelivery).await, 0);
}

async fn an_endpoint_gets_only_the_types_it_asked_for(engine: Engine) {
    let app = TestApp::builder(engine).jobs_on_demand().start().await;
    let receiver = Receiver::start().await;
    let (revocations, _) =
        add_endpoint(&app, &receiver.url, Some(vec!["key.revoked".into()])).await;
    let key = app.standard_key("read").await;
    let (client_id, now) = (key.client_id.clone(), app.clock.now());
    service(&app)
        .revoke(
            &mut app.db(),
            &Caller::CommandLine,
            &client_id,
            Some("rotated out"),
            now,
        )
        .expect("revoked");
    assert_eq!(app.run_job(Job::WebhookDelivery).await, 1);
    let got = receiver.received();
    let types: Vec<Value> = got
        .iter()
        .map(|r| serde_json::from_str::<Value>(&r.body).expect("JSON")["type"].clone())
        .collect();
    assert_eq!(types, ["key.revoked"]);
    let body: Value = serde_json::from_str(&got[0].body).expect("JSON");
    assert_eq!(body["data"]["reason"], "rotated out");
    assert_eq!(body["data"]["status"], "revoked");
    assert_eq!(deliveries(&app, &revocations).len(), 1);
}

async fn an_endpoint_failing_for_five_days_is_switched_off_and_the_admins_told(engine: Engine) {
    let app = TestApp::builder(engine).jobs_on_demand().start().await;
    app.add_user("admin@example.com", "admin").await;
    let receiver = Receiver::start().await;
    receiver.answer(503);
    app.add_owner_and_api("alice@example.com").await;
    let (endpoint, _) = add_endpoint(&app, &receiver.url, None).await;
    app.create_key(KeySpec::standard("read")).await;
    assert_eq!(app.run_job(Job::WebhookDelivery).await, 1);
    // Four days of failures: still on.
    app.advance_clock(chrono::Duration::days(4));
    app.create_key(KeySpec::standard("read")).await;
    assert_eq!(app.run_job(Job::WebhookDelivery).await, 1);
    let state = webhooks::endpoint::find(&mut app.db(), &endpoint).expect("endpoint");
    assert!(state.enabled && state.failing_since.is_some());
    // Past five days since the first failure: the next failure ends it.
    app.advance_clock(chrono::Duration::days(1) + chrono::Duration::hours(1));
    assert_eq!(app.run_job(Job::WebhookDelivery).await, 1);
    let state = webhooks::endpoint::find(&mut app.db(), &endpoint).expect("endpoint");
    assert!(!state.enabled);
    assert!(
        state
            .disabled_reason
            .as_deref()
            .is_some_and(|r| r.contains("5 days")),
        "{state:?}"
    );
    let views = deliveries(&app, &endpoint);
    assert!(views.iter().all(|d| d.status == "failed"), "{views:?}");
    let told: Vec<_> = outbox(&app)
        .into_iter()
        .filter(|e| e.event == "webhook_disabled")
        .collect();
    assert_eq!(told.len(), 1);
    assert_eq!(told[0].recipient, "admin@example.com");
    assert!(told[0].body.contains(&receiver.url) && told[0].body.contains("webhook"));
    // Nothing more goes to it.
    let before = receiver.received().len();
    app.create_key(KeySpec::standard("read")).await;
    assert_eq!(app.run_job(Job::WebhookDelivery).await, 0);
    assert_eq!(receiver.received().len(), before);
}

both_engines!(
    a_key_event_arrives_signed_and_is_retried_on_the_clock,
    an_endpoint_gets_only_the_types_it_asked_for,
    an_endpoint_failing_for_five_days_is_switched_off_and_the_admins_told,
);
