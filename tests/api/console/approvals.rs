//! Approval for sensitive scopes (INTERFACE.md "Approval"), walked in a
//! real headless Chromium (see `browser`): an admin marks a scope as
//! needing approval on the APIs page; a member asks for a key of their
//! team holding it, which is pending (refused at the token endpoint) until
//! the admin approves it on the Requests page, and then works; a second
//! request is denied with a reason, and its key is revoked. Every page at
//! 1280 and 390 px, checked by axe-core.

use serde_json::Value;

use super::{PASSWORD, sign_in};
use crate::browser::Browser;
use crate::helpers::{Engine, TestApp};

const ADMIN: &str = "root@example.com";
const ALICE: &str = "alice@example.com";
const PAYMENTS: &str = "https://payments.example.com";

const CC: [(&str, &str); 1] = [("grant_type", "client_credentials")];

/// The token endpoint's status for a client ID and secret.
async fn token_status(app: &TestApp, client_id: &str, secret: &str) -> u16 {
    app.token_basic(client_id, secret, &CC)
        .await
        .status()
        .as_u16()
}

/// Alice asks for a key of team payments holding `payments:refund`; the
/// client ID and secret from the page that shows them once.
async fn ask_for_refunds(alice: &Browser, app: &TestApp, name: &str) -> (String, String) {
    alice.goto(&format!("{}/keys/new", app.address)).await;
    alice.click("#owner option[value='team:payments']").await;
    alice.fill("#name", name).await;
    alice
        .fill("#description", "Refunds for support tickets over 100 EUR")
        .await;
    alice.click("input[value='payments:refund']").await;
    alice
        .follow("form[action='/keys'] button[type=submit]")
        .await;
    (
        alice.text("#client-id").await,
        alice.text("#client-secret").await,
    )
}

async fn a_member_asks_for_a_key_that_an_admin_approves(engine: Engine) {
    let app = TestApp::builder(engine).jobs_on_demand().start().await;
    let shots = |page: &str| format!("{page}-{}", format!("{engine:?}").to_lowercase());
    let at = |path: &str| format!("{}{path}", app.address);
    app.add_api(PAYMENTS, "Payments", "payments:read payments:refund")
        .await;
    app.add_person(ADMIN, "admin", PASSWORD).await;
    app.add_person(ALICE, "member", PASSWORD).await;

    // The admin marks payments:refund as needing approval, and makes team
    // payments with alice in it.
    let admin = Browser::start().await;
    sign_in(&admin, &app, ADMIN).await;
    admin.goto(&at("/admin/apis")).await;
    admin.click("details summary").await;
    admin
        .click("input[name='approval'][value='payments:refund']")
        .await;
    admin
        .follow("form[action='/admin/apis/approval'] button")
        .await;
    assert_eq!(admin.path().await, "/admin/apis?notice=saved");
    admin.click("details summary").await;
    assert!(
        admin
            .exists("input[name='approval'][value='payments:refund']:checked")
            .await
    );
    assert!(admin.exists("li.tag.approval").await);
    admin.capture(&shots("admin-apis-approval")).await;
    admin.goto(&at("/admin/teams")).await;
    admin.fill("#team-name", "payments").await;
    admin.follow("form[action='/admin/teams'] button").await;
    admin.fill("#member-email", ALICE).await;
    admin.follow("form.add-member button").await;
    assert!(admin.text("ul.members").await.contains(ALICE));
    assert!(!admin.exists(".nav .count").await, "no request waits yet");

    // Alice's form offers her team as the owner and says which scope
    // needs approval; the key she gets is pending.
    let alice = Browser::start().await;
    sign_in(&alice, &app, ALICE).await;
    alice.goto(&at("/keys/new")).await;
    assert!(alice.exists("#owner option[value='team:payments']").await);
    let refund = alice
        .text("label.check:has(input[value='payments:refund'])")
        .await;
    assert!(refund.contains("needs approval"), "{refund}");
    alice.capture(&shots("key-new-owner")).await;
    let (client_id, secret) = ask_for_refunds(&alice, &app, "refund-bot").await;
    assert!(
        alice
            .text("#pending-notice")
            .await
            .contains("pending until an administrator approves it")
    );
    alice.capture(&shots("key-secret-pending")).await;
    assert_eq!(token_status(&app, &client_id, &secret).await, 401);
    let listed = app.listed_key(&client_id).await;
    assert_eq!(
        (&listed["status"], &listed["team"], &listed["created_by"]),
        (&"pending".into(), &"payments".into(), &ALICE.into())
    );
    alice.goto(&at("/keys")).await;
    let row = alice.text("table.keys tbody tr").await;
    assert!(
        row.contains("Pending") && row.contains("Team payments"),
        "{row}"
    );
    alice.capture(&shots("keys-pending")).await;
    alice.goto(&at(&format!("/keys/{client_id}"))).await;
    assert!(alice.text("#pending-notice").await.contains("Pending"));
    alice.capture(&shots("key-detail-pending")).await;

    // The admin's menu counts the request; the Requests page shows who
    // asked, for whom, what and why. Approved, the key works.
    admin.goto(&at("/keys")).await;
    assert!(admin.text(".nav .count").await.starts_with('1'));
    admin.follow("a[href='/admin/requests']").await;
    let request = admin.text(&format!("#request-{client_id}")).await;
    for shown in [
        "refund-bot",
        ALICE,
        "Team payments",
        "payments:refund",
        "Refunds for support tickets",
    ] {
        assert!(request.contains(shown), "{shown}: {request}");
    }
    admin.capture(&shots("requests")).await;
    admin
        .follow(&format!(
            "#request-{client_id} form[action='/admin/requests/approve'] button"
        ))
        .await;
    assert_eq!(admin.path().await, "/admin/requests?notice=approved");
    assert!(
        admin
            .body_text()
            .await
            .contains("No key waits for approval")
    );
    assert!(!admin.exists(".nav .count").await);
    admin.capture(&shots("requests-approved")).await;
    let response = app.token_basic(&client_id, &secret, &CC).await;
    assert_eq!(response.status(), 200);
    let token: Value = response.json().await.unwrap();
    assert_eq!(token["scope"], "payments:refund");
    let listed = app.listed_key(&client_id).await;
    assert_eq!(
        (&listed["status"], &listed["approved_by"]),
        (&"active".into(), &ADMIN.into())
    );
    alice.goto(&at(&format!("/keys/{client_id}"))).await;
    let facts = alice.text("dl.facts").await;
    assert!(
        facts.contains("Approved") && facts.contains(ADMIN),
        "{facts}"
    );
    alice.capture(&shots("key-detail-approved")).await;

    // A second request, denied with a reason: its key is revoked for good.
    let (denied_id, denied_secret) = ask_for_refunds(&alice, &app, "refund-bot-2").await;
    admin.goto(&at("/admin/requests")).await;
    let deny = format!("#request-{denied_id} form.deny");
    admin
        .fill(&format!("{deny} input[name='reason']"), "use refund-bot")
        .await;
    admin
        .follow_confirming(&format!("{deny} button.danger"))
        .await;
    assert_eq!(admin.path().await, "/admin/requests?notice=denied");
    let listed = app.listed_key(&denied_id).await;
    assert_eq!(
        (&listed["status"], &listed["revoked_reason"]),
        (&"revoked".into(), &"denied: use refund-bot".into())
    );
    assert_eq!(token_status(&app, &denied_id, &denied_secret).await, 401);
    admin.close().await;
    alice.close().await;
}

crate::both_engines!(a_member_asks_for_a_key_that_an_admin_approves);
