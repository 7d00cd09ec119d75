//! Receivers that misbehave, against the real worker (`Dispatcher::run`, in
//! process, its attempt timeout shortened to 5 s): one that never answers
//! holds its own endpoint's slot only, while the others keep receiving; its
//! attempt ends at the timeout, recorded and retried by the clock. One that
//! answers with an endless body costs a few KiB read; one that redirects is
//! a failure, and its target gets nothing.

use std::time::{Duration, Instant};

use keygate::keys::Caller;

use super::receiver::{Behaviour, Receiver};
use super::{add_endpoint, deliveries, service};
use crate::both_engines;
use crate::helpers::mail::wait_until;
use crate::helpers::{Engine, KeySpec, TestApp};

const TIMEOUT: Duration = Duration::from_secs(5);

async fn a_stalling_receiver_delays_no_other_endpoint(engine: Engine) {
    let app = TestApp::builder(engine)
        .config(|config| {
            config.webhook_tuning.timeout = TIMEOUT;
            config.webhook_tuning.poll_interval = Duration::from_millis(50);
        })
        .start()
        .await;
    app.add_owner_and_api("alice@example.com").await;
    let stalling = Receiver::start().await;
    stalling.behave(Behaviour::Stall);
    let healthy = Receiver::start().await;
    let endless = Receiver::start().await;
    endless.behave(Behaviour::EndlessBody);
    let target = Receiver::start().await;
    let redirecting = Receiver::start().await;
    redirecting.behave(Behaviour::Redirect(target.url.clone()));
    let (stalled, _) = add_endpoint(&app, &stalling.url, Some(vec!["key.revoked".into()])).await;
    let (_, _) = add_endpoint(&app, &healthy.url, None).await;
    let (bounded, _) = add_endpoint(&app, &endless.url, None).await;
    let (redirected, _) = add_endpoint(&app, &redirecting.url, None).await;

    let first = app.create_key(KeySpec::standard("read")).await;
    // No attempt at the stalling endpoint can begin before its one event.
    let before_its_event = Instant::now();
    let now = app.clock.now();
    service(&app)
        .revoke(
            &mut app.db(),
            &Caller::CommandLine,
            &first.client_id,
            None,
            now,
        )
        .expect("revoked");
    for _ in 0..3 {
        app.create_key(KeySpec::standard("read")).await;
    }
    // Real time: the worker delivering while a receiver holds a request.
    wait_until("the stalling receiver holds a request", TIMEOUT, || {
        stalling.open() == 1
    })
    .await;
    let stall_began = Instant::now();
    wait_until("the healthy receiver has every event", TIMEOUT, || {
        healthy.received().len() == 5
    })
    .await;
    wait_until("the others are attempted", TIMEOUT, || {
        deliveries(&app, &bounded)
            .iter()
            .chain(&deliveries(&app, &redirected))
            .all(|d| d.attempts == 1)
    })
    .await;
    assert!(
        stall_began.elapsed() < TIMEOUT && stalling.open() == 1,
        "all of it while the stalled attempt is still open"
    );
    assert_eq!(deliveries(&app, &stalled)[0].attempts, 0);

    // An endless body: delivered on its status, a few KiB read, the rest
    // dropped unread.
    let views = deliveries(&app, &bounded);
    assert!(
        views
            .iter()
            .all(|d| d.status == "delivered" && d.last_status_code == Some(200)),
        "{views:?}"
    );
    assert!(
        endless.streamed() < 32 << 20,
        "{} bytes of the endless body produced",
        endless.streamed()
    );
    // A redirect: a failure, not followed.
    let views = deliveries(&app, &redirected);
    assert!(
        views.iter().all(|d| d.status == "pending"
            && d.last_status_code == Some(307)
            && d.last_error
                .as_deref()
                .is_some_and(|e| e.contains("redirects are not followed"))),
        "{views:?}"
    );
    assert!(target.received().is_empty(), "the redirect was followed");

    // The stalled attempt ends at the timeout: a failure, retried on the
    // schedule (the clock moved past it, not waited for).
    wait_until("the stalled attempt is recorded", TIMEOUT * 3, || {
        deliveries(&app, &stalled)[0].attempts == 1
    })
    .await;
    // Not given up early: the attempt began after its event, so at least
    // the timeout has passed since then (the stall was only seen later,
    // by a busy test, so that instant would be no lower bound).
    assert!(before_its_event.elapsed() >= TIMEOUT);
    let view = &deliveries(&app, &stalled)[0];
    assert_eq!(
        (view.status.as_str(), view.last_status_code),
        ("pending", None)
    );
    assert_eq!(view.last_error.as_deref(), Some("no answer within 5 s"));
    assert!(view.next_attempt_at.is_some());
    app.advance_clock(chrono::Duration::seconds(6));
    wait_until("the stalled delivery is tried again", TIMEOUT, || {
        stalling.received().len() == 2
    })
    .await;
    let got = stalling.received();
    assert_eq!(got[1].id, got[0].id);
    assert_eq!(got[0].event_type(), "key.revoked");
}

both_engines!(a_stalling_receiver_delays_no_other_endpoint);
