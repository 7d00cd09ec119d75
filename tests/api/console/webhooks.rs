//! The console's Webhooks pages (INTERFACE.md "Events out: webhooks and the
//! audit export"), walked in a real headless Chromium (see `browser`): an
//! admin adds an endpoint for two event types and sees its signing secret
//! once (a reload or the back button does not bring it back), sends a test
//! event to a real receiver on loopback that first fails and then answers,
//! watches the delivery's status and attempts on the endpoint's page,
//! resends it, changes its types, switches it off and removes it behind a
//! confirmation. Refusals come back beside their field with nothing
//! changed; a member is refused. Every page at 1280 and 390 px, checked by
//! axe-core.

use keygate::jobs::Job;
use keygate::webhooks;

use super::forms::{post_form, signed_in};
use super::{PASSWORD, sign_in};
use crate::browser::Browser;
use crate::helpers::{Engine, TestApp};
use crate::webhooks::Receiver;

const ADMIN: &str = "root@example.com";
const MEMBER: &str = "alice@example.com";
const COUNT: &str = "SELECT COUNT(*) AS n FROM webhook_endpoints";

fn endpoints(app: &TestApp) -> Vec<webhooks::Endpoint> {
    webhooks::endpoint::list(&mut app.db()).expect("endpoints")
}

fn deliveries(app: &TestApp, endpoint: &str) -> Vec<webhooks::DeliveryView> {
    webhooks::recent(&mut app.db(), endpoint, 100).expect("deliveries")
}

/// The text of the newest delivery's row on the endpoint page.
async fn newest_row(browser: &Browser) -> String {
    browser.text("table.deliveries tbody tr").await
}

async fn an_admin_adds_tests_and_removes_a_webhook_endpoint(engine: Engine) {
    let app = TestApp::builder(engine).jobs_on_demand().start().await;
    let shots = |page: &str| format!("{page}-{}", format!("{engine:?}").to_lowercase());
    let at = |path: &str| format!("{}{path}", app.address);
    app.add_person(ADMIN, "admin", PASSWORD).await;
    let receiver = Receiver::start().await;

    let admin = Browser::start().await;
    sign_in(&admin, &app, ADMIN).await;
    admin.follow("nav a[href='/admin/webhooks']").await;
    assert!(admin.body_text().await.contains("No endpoint yet"));
    admin.capture(&shots("webhooks-empty")).await;

    // Two event types ticked; the answer shows the secret, this once.
    admin.fill("#url", &receiver.url).await;
    admin.fill("#description", "audit sink").await;
    admin.click("input[value='key.created']").await;
    admin.click("input[value='key.revoked']").await;
    admin
        .follow("form[action='/admin/webhooks'] button[type=submit]")
        .await;
    let secret = admin.text("#webhook-secret").await;
    assert!(secret.starts_with("whsec_"), "{secret}");
    assert!(
        admin
            .body_text()
            .await
            .contains("you will not see it again")
    );
    assert!(!admin.path().await.contains(&secret));
    admin.capture(&shots("webhook-secret")).await;
    let added = endpoints(&app);
    assert_eq!(added.len(), 1);
    let id = added[0].id.clone();
    assert_eq!(added[0].events, ["key.created", "key.revoked"]);
    assert!(!added[0].all_events);
    let page = format!("/admin/webhooks/{id}");

    // A reload posts the form again: no second endpoint, no secret.
    admin.reload().await;
    assert_eq!(
        admin.path().await,
        format!("{page}?notice=webhook-secret-already-shown")
    );
    assert!(!admin.body_text().await.contains(&secret));
    assert_eq!(app.count_rows(COUNT), 1);
    // Nor does the back button bring it back.
    admin.goto(&at("/admin/webhooks")).await;
    admin.client.back().await.unwrap();
    assert!(!admin.body_text().await.contains(&secret));
    assert_eq!(app.count_rows(COUNT), 1);

    // Listed with its types and state.
    admin.goto(&at("/admin/webhooks")).await;
    let row = admin.text("table.webhooks tbody tr").await;
    for shown in [
        receiver.url.as_str(),
        "audit sink",
        "key.created",
        "key.revoked",
        "On",
    ] {
        assert!(row.contains(shown), "{shown}: {row}");
    }
    admin.capture(&shots("webhooks")).await;

    // A test event to a receiver that fails: pending, its answer shown,
    // no Resend while it is tried again on its own.
    admin.follow("a.endpoint-url").await;
    assert_eq!(admin.path().await, page);
    receiver.answer(500);
    admin.follow("form.send-test button").await;
    assert_eq!(
        admin.path().await,
        format!("{page}?notice=webhook-test-queued")
    );
    assert!(newest_row(&admin).await.contains("webhook.test"));
    assert_eq!(app.run_job(Job::WebhookDelivery).await, 1);
    assert_eq!(receiver.received().len(), 1);
    let webhook_id = receiver.received()[0].id.clone();
    admin.goto(&at(&page)).await;
    let row = newest_row(&admin).await;
    for shown in [
        "webhook.test",
        webhook_id.as_str(),
        "Pending",
        "1 attempt",
        "500",
    ] {
        assert!(row.contains(shown), "{shown}: {row}");
    }
    assert!(!admin.exists("form.resend").await);
    assert!(admin.text("dl.facts").await.contains("Failing"));
    admin.capture(&shots("webhook-failing")).await;

    // Tried again about 5 s later by the clock: delivered.
    app.advance_clock(chrono::Duration::seconds(6));
    receiver.answer(204);
    assert_eq!(app.run_job(Job::WebhookDelivery).await, 1);
    admin.goto(&at(&page)).await;
    let row = newest_row(&admin).await;
    for shown in ["Delivered", "2 attempts", "204"] {
        assert!(row.contains(shown), "{shown}: {row}");
    }
    assert!(admin.text("dl.facts").await.contains("On"));
    admin.capture(&shots("webhook")).await;

    // Resent: queued again with the same webhook-id, delivered again.
    admin.follow("form.resend button").await;
    assert_eq!(admin.path().await, format!("{page}?notice=webhook-resent"));
    let queued = &deliveries(&app, &id)[0];
    assert_eq!((queued.status.as_str(), queued.attempts), ("pending", 0));
    assert_eq!(app.run_job(Job::WebhookDelivery).await, 1);
    // The receiver got the failed try, the retry and the resend: one ID.
    let got = receiver.received();
    assert_eq!(got.len(), 3);
    assert!(got.iter().all(|r| r.id == webhook_id), "{got:?}");

    // Its types changed: key.revoked unticked.
    admin.goto(&at(&page)).await;
    admin.fill("#description", "audit sink (creations)").await;
    admin.click("#settings input[value='key.revoked']").await;
    admin.follow("#settings button[type=submit]").await;
    assert_eq!(admin.path().await, format!("{page}?notice=saved"));
    let changed = &endpoints(&app)[0];
    assert_eq!(changed.events, ["key.created"]);
    assert_eq!(changed.description, "audit sink (creations)");

    // Switched off (the script asks once more): no test event, no resend.
    admin
        .follow_confirming(&format!("form[action='{page}/state'] button.danger"))
        .await;
    assert_eq!(admin.path().await, format!("{page}?notice=webhook-off"));
    assert!(admin.text("dl.facts").await.contains("Switched off"));
    assert!(!admin.exists("form.send-test").await);
    assert!(!admin.exists("form.resend").await);
    assert!(!endpoints(&app)[0].enabled);
    admin.capture(&shots("webhook-off")).await;

    // Removed behind its confirmation page.
    admin.follow(&format!("a[href='{page}/remove']")).await;
    assert!(admin.body_text().await.contains("cannot be undone"));
    admin.capture(&shots("webhook-remove")).await;
    admin
        .follow_confirming("form button.danger[type=submit]")
        .await;
    assert_eq!(admin.path().await, "/admin/webhooks?notice=webhook-removed");
    assert_eq!(app.count_rows(COUNT), 0);
    assert!(admin.body_text().await.contains("No endpoint yet"));
    admin.close().await;
}

async fn a_refused_endpoint_changes_nothing_and_members_are_refused(engine: Engine) {
    let app = TestApp::builder(engine).jobs_on_demand().start().await;
    let shots = |page: &str| format!("{page}-{}", format!("{engine:?}").to_lowercase());
    let at = |path: &str| format!("{}{path}", app.address);
    app.add_person(ADMIN, "admin", PASSWORD).await;
    app.add_person(MEMBER, "member", PASSWORD).await;

    let admin = Browser::start().await;
    sign_in(&admin, &app, ADMIN).await;
    admin.goto(&at("/admin/webhooks")).await;
    let submit = "form[action='/admin/webhooks'] button[type=submit]";

    // Not http(s): refused beside the field, what was ticked kept.
    admin.fill("#url", "ftp://hooks.example.com/in").await;
    admin.click("input[value='user.disabled']").await;
    admin.follow(submit).await;
    assert!(
        admin
            .text("#url-error")
            .await
            .contains("must be http or https"),
        "{}",
        admin.body_text().await
    );
    assert!(admin.exists("input[value='user.disabled']:checked").await);
    assert_eq!(app.count_rows(COUNT), 0);
    admin.capture(&shots("webhooks-refused")).await;

    // Credentials in the URL: refused, and not shown again.
    admin
        .fill("#url", "https://hook:hunter2@hooks.example.com/in")
        .await;
    admin.follow(submit).await;
    assert!(
        admin
            .text("#url-error")
            .await
            .contains("may not hold credentials")
    );
    assert!(!admin.client.source().await.unwrap().contains("hunter2"));
    assert_eq!(app.count_rows(COUNT), 0);

    // The corrected form goes through: the refused tries claimed nothing.
    admin.fill("#url", "https://hooks.example.com/in").await;
    admin.follow(submit).await;
    assert!(admin.text("#webhook-secret").await.starts_with("whsec_"));
    assert_eq!(app.count_rows(COUNT), 1);
    let id = endpoints(&app)[0].id.clone();
    assert_eq!(endpoints(&app)[0].events, ["user.disabled"]);
    admin.close().await;

    // A member sees no Webhooks in the menu and is refused the pages.
    let member = Browser::start().await;
    sign_in(&member, &app, MEMBER).await;
    assert!(!member.exists("nav a[href='/admin/webhooks']").await);
    for path in [
        "/admin/webhooks".to_owned(),
        format!("/admin/webhooks/{id}"),
    ] {
        member.goto(&at(&path)).await;
        let page = member.body_text().await;
        assert!(page.contains("Only administrators"), "{path}: {page}");
        assert!(!page.contains("hooks.example.com"), "{path}: {page}");
    }
    member.capture(&shots("webhooks-member")).await;
    member.close().await;

    // Nor do her forms do anything, her own CSRF token notwithstanding.
    let (alice, csrf) = signed_in(&app, MEMBER).await;
    let form_id = "m".repeat(32);
    let added = [
        ("url", "https://evil.example.com/in"),
        ("form_id", form_id.as_str()),
    ];
    let page = format!("/admin/webhooks/{id}");
    let (state, test, remove) = (
        format!("{page}/state"),
        format!("{page}/test"),
        format!("{page}/remove"),
    );
    for (path, fields) in [
        ("/admin/webhooks", &added[..]),
        (page.as_str(), &[("description", "mine now")][..]),
        (state.as_str(), &[("enabled", "false")][..]),
        (test.as_str(), &[][..]),
        (remove.as_str(), &[][..]),
    ] {
        let response = post_form(&app, &alice, &csrf, path, fields).await;
        assert_eq!(response.status(), 403, "{path}");
    }
    assert_eq!(app.count_rows(COUNT), 1);
    let unchanged = &endpoints(&app)[0];
    assert!(unchanged.enabled && unchanged.description.is_empty());
    assert!(deliveries(&app, &id).is_empty());
}

crate::both_engines!(
    an_admin_adds_tests_and_removes_a_webhook_endpoint,
    a_refused_endpoint_changes_nothing_and_members_are_refused,
);
