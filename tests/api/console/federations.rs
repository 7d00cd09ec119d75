//! The console's "Trusted workloads" page (INTERFACE.md "Workload identity
//! federation"), walked in a real headless Chromium: an admin adds a
//! federation (a refusal comes back beside its field, nothing made), a
//! workload of the test issuer exchanges its token, the page and the key's
//! page show who last used it, and the admin removes it behind a
//! confirmation. A member is refused. Every page at 1280 and 390 px,
//! checked by axe-core.

use std::time::Duration;

use super::{PASSWORD, sign_in};
use crate::browser::Browser;
use crate::federation::issuer::Issuer;
use crate::helpers::mail::wait_until;
use crate::helpers::{Engine, TestApp};

const ADMIN: &str = "root@example.com";
const MEMBER: &str = "alice@example.com";
const COUNT: &str = "SELECT COUNT(*) AS n FROM federations";

async fn an_admin_adds_and_removes_a_trusted_workload(engine: Engine) {
    let app = TestApp::builder(engine).jobs_on_demand().start().await;
    let shots = |page: &str| format!("{page}-{}", format!("{engine:?}").to_lowercase());
    let at = |path: &str| format!("{}{path}", app.address);
    app.add_person(ADMIN, "admin", PASSWORD).await;
    app.add_person(MEMBER, "member", PASSWORD).await;
    app.add_standard_api().await;
    let issuer = Issuer::start().await;

    let admin = Browser::start().await;
    sign_in(&admin, &app, ADMIN).await;
    admin.follow("nav a[href='/admin/federations']").await;
    assert!(admin.body_text().await.contains("No trusted workload yet"));
    admin.capture(&shots("federations-empty")).await;

    // Only `*`: refused beside the subject, nothing made.
    let submit = "form[action='/admin/federations'] button[type=submit]";
    admin.fill("#name", "acme-app-deploy").await;
    admin.fill("#issuer", &issuer.url).await;
    admin.fill("#subject", "*").await;
    admin.fill("#audience", "keygate").await;
    admin.fill("#claims", "repository=acme/app").await;
    admin.fill("#owner", MEMBER).await;
    admin.fill("#scopes", "read").await;
    admin.fill("#resources", "https://api.example.com").await;
    admin.follow(submit).await;
    let error = admin.text("#subject-error").await;
    assert!(error.contains("only `*`"), "{error}");
    assert_eq!(app.count_rows(COUNT), 0);
    admin.capture(&shots("federations-refused")).await;

    admin.fill("#subject", "repo:acme/app:*").await;
    admin.follow(submit).await;
    assert_eq!(
        admin.path().await,
        "/admin/federations?notice=federation-added"
    );
    assert_eq!(app.count_rows(COUNT), 1);
    let listed = app.cli_ok(&["federations", "list", "--json"]).await.json();
    let client_id = listed[0]["client_id"].as_str().unwrap().to_owned();

    // A workload exchanges its token; the page says who used it.
    let token = issuer.token().await;
    let response = app
        .http
        .post(app.token_url())
        .form(&[
            (
                "grant_type",
                "urn:ietf:params:oauth:grant-type:token-exchange",
            ),
            ("client_id", client_id.as_str()),
            ("subject_token", token.as_str()),
            ("subject_token_type", "urn:ietf:params:oauth:token-type:jwt"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    wait_until("its use is recorded", Duration::from_secs(10), || {
        app.count_rows("SELECT COUNT(*) AS n FROM api_keys WHERE last_used_by IS NOT NULL") == 1
    })
    .await;
    admin.goto(&at("/admin/federations")).await;
    let row = admin.text("table.federations tbody tr").await;
    for shown in [
        "acme-app-deploy",
        client_id.as_str(),
        "repo:acme/app:*",
        "repository",
        "keygate",
        MEMBER,
        "read",
        "repo:acme/app:ref:refs/heads/main",
    ] {
        assert!(row.contains(shown), "{shown}: {row}");
    }
    admin.capture(&shots("federations")).await;
    admin.goto(&at(&format!("/keys/{client_id}"))).await;
    let facts = admin.body_text().await;
    assert!(facts.contains("Last used by"), "{facts}");
    assert!(
        facts.contains("repo:acme/app:ref:refs/heads/main"),
        "{facts}"
    );
    admin.capture(&shots("federated-key")).await;

    // Removed behind its confirmation: the key revoked.
    admin.goto(&at("/admin/federations")).await;
    admin
        .follow("a[href='/admin/federations/acme-app-deploy/remove']")
        .await;
    assert!(admin.body_text().await.contains("cannot be undone"));
    admin.capture(&shots("federation-remove")).await;
    admin
        .follow_confirming("form button.danger[type=submit]")
        .await;
    assert_eq!(
        admin.path().await,
        "/admin/federations?notice=federation-removed"
    );
    assert_eq!(app.count_rows(COUNT), 0);
    assert_eq!(app.listed_key(&client_id).await["status"], "revoked");
    admin.close().await;

    // A member sees no such menu entry and is refused the page.
    let member = Browser::start().await;
    sign_in(&member, &app, MEMBER).await;
    assert!(!member.exists("nav a[href='/admin/federations']").await);
    member.goto(&at("/admin/federations")).await;
    assert!(member.body_text().await.contains("Only administrators"));
    member.close().await;
}

crate::both_engines!(an_admin_adds_and_removes_a_trusted_workload);
