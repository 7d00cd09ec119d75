//! The worker across real processes: `keygate serve` killed with -9 in the
//! middle of an attempt loses nothing (its lease ends, a successor delivers
//! every event, in order), and two `keygate serve` on one database deliver
//! every event exactly once, never two at once to one endpoint.

use std::collections::BTreeSet;
use std::time::Duration;

use keygate::jobs::Job;

use super::receiver::{Behaviour, Receiver};
use super::{add_endpoint, deliveries};
use crate::both_engines;
use crate::helpers::mail::wait_until;
use crate::helpers::serve::Serve;
use crate::helpers::{Engine, KeySpec, TestApp};

async fn kill_9_in_the_middle_of_an_attempt_loses_nothing(engine: Engine) {
    let mut app = TestApp::builder(engine)
        .config(|config| config.webhook_tuning.poll_interval = Duration::from_millis(50))
        .prepare();
    app.add_owner_and_api("alice@example.com").await;
    let receiver = Receiver::start().await;
    receiver.behave(Behaviour::Stall);
    let (endpoint, _) = add_endpoint(&app, &receiver.url, None).await;
    let mut serve = Serve::start(&app, &[("RUST_LOG", "warn")]).await;
    let key = app.create_key(KeySpec::standard("read")).await;
    app.cli_ok(&["keys", "rotate", &key.client_id]).await;
    app.cli_ok(&["keys", "revoke", &key.client_id]).await;
    // Real time: the real process claiming and posting the first.
    wait_until("keygate serve is posting", Duration::from_secs(15), || {
        receiver.open() == 1
    })
    .await;
    serve.kill().await;
    let views = deliveries(&app, &endpoint);
    assert_eq!(views.len(), 3);
    assert!(
        views
            .iter()
            .all(|d| d.status == "pending" && d.attempts == 0)
    );

    // The successor (the real worker, in process, on the test's clock)
    // with the receiver healthy: nothing until the killed one's lease
    // ends, then everything, in order.
    receiver.answer(204);
    app.serve().await;
    assert_eq!(app.run_job(Job::WebhookDelivery).await, 0, "a live lease");
    app.advance_clock(chrono::Duration::seconds(31));
    wait_until("every event is delivered", Duration::from_secs(15), || {
        deliveries(&app, &endpoint)
            .iter()
            .all(|d| d.status == "delivered")
    })
    .await;
    let mut sent: Vec<String> = deliveries(&app, &endpoint)
        .into_iter()
        .map(|d| d.id)
        .collect();
    sent.reverse();
    let got = receiver.received();
    assert_eq!(got[0].id, sent[0], "the attempt the kill cut short");
    let after: Vec<&str> = got[1..].iter().map(|r| r.id.as_str()).collect();
    assert_eq!(after, sent, "each once, in order, after the lease");
    let types: Vec<String> = got[1..].iter().map(|r| r.event_type()).collect();
    assert_eq!(types, ["key.created", "key.rotated", "key.revoked"]);
}

/// Events per endpoint; two endpoints.
const EVENTS: usize = 20;

async fn two_processes_deliver_each_event_exactly_once(engine: Engine) {
    let app = TestApp::builder(engine).prepare();
    app.add_owner_and_api("alice@example.com").await;
    let receivers = [Receiver::start().await, Receiver::start().await];
    let mut endpoints = Vec::new();
    for receiver in &receivers {
        // A little time per answer, so that two attempts at one endpoint
        // would overlap.
        receiver.behave(Behaviour::Answer(200, Duration::from_millis(10)));
        endpoints.push(add_endpoint(&app, &receiver.url, None).await.0);
    }
    let (one, two) = tokio::join!(
        Serve::start(&app, &[("RUST_LOG", "warn")]),
        Serve::start(&app, &[("RUST_LOG", "warn")])
    );
    for _ in 0..EVENTS {
        app.create_key(KeySpec::standard("read")).await;
    }
    // Real time: two real processes delivering.
    wait_until("every event is delivered", Duration::from_secs(40), || {
        endpoints
            .iter()
            .all(|e| deliveries(&app, e).iter().all(|d| d.status == "delivered"))
    })
    .await;
    let mut total = 0;
    for (receiver, endpoint) in receivers.iter().zip(&endpoints) {
        let sent: BTreeSet<String> = deliveries(&app, endpoint)
            .into_iter()
            .map(|d| d.id)
            .collect();
        assert_eq!(sent.len(), EVENTS);
        let got: Vec<String> = receiver.received().into_iter().map(|r| r.id).collect();
        let distinct: BTreeSet<String> = got.iter().cloned().collect();
        assert_eq!(got.len(), EVENTS, "each exactly once: {got:?}");
        assert_eq!(distinct, sent);
        assert_eq!(receiver.most_open(), 1, "one in flight per endpoint");
        total += got.len();
    }
    assert_eq!(total, 2 * EVENTS);
    drop((one, two));
}

both_engines!(
    kill_9_in_the_middle_of_an_attempt_loses_nothing,
    two_processes_deliver_each_event_exactly_once,
);
