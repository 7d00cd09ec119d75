//! The web console: security headers and CSRF on every page, and a person's
//! whole path through it in a real headless Chromium (see `browser`), with
//! the emails received by a real SMTP server.

use std::time::Duration;

use keygate::jobs::Job;
use serde_json::Value;

mod approvals;
mod federations;
mod forms;
mod leaving;
mod passkeys;
mod public_keys;
mod refusals;
mod second_factors;
mod sessions;
mod single_sign_on;
mod spreadsheet;
mod webhooks;

use crate::browser::Browser;
use crate::helpers::mail::{Received, SmtpSink};
use crate::helpers::{Engine, KeySpec, TestApp, spawn_app};
use forms::hidden_value;

const PASSWORD: &str = "a long and quiet password 42";

async fn every_page_carries_the_security_headers(engine: Engine) {
    let app = spawn_app(engine).await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for path in [
        "/sign-in",
        "/forgot-password",
        "/set-password?token=nope",
        "/keys",
        "/admin/people",
        "/admin/teams",
        "/admin/requests",
        "/",
    ] {
        let response = client
            .get(format!("{}{path}", app.address))
            .send()
            .await
            .unwrap();
        assert!(
            [200, 303, 404].contains(&response.status().as_u16()),
            "{path}: {}",
            response.status()
        );
        let headers = response.headers();
        let csp = headers["content-security-policy"].to_str().unwrap();
        assert!(!csp.contains("unsafe-inline"), "{csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        assert!(csp.contains("default-src 'none'"), "{csp}");
        assert_eq!(headers["referrer-policy"], "no-referrer", "{path}");
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(headers["cache-control"], "no-store", "{path}");
    }
    // Signed-out visitors of a private page are sent to sign in, and back.
    let response = client
        .get(format!("{}/keys/new", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    assert_eq!(
        response.headers()["location"],
        "/sign-in?next=%2Fkeys%2Fnew"
    );
}

/// A form posted without its CSRF token, or with another's, changes nothing.
async fn forms_without_their_csrf_token_change_nothing(engine: Engine) {
    let app = spawn_app(engine).await;
    app.add_person("alice@example.com", "member", PASSWORD)
        .await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .build()
        .unwrap();
    // Sign-in without the double-submit cookie's token.
    let response = client
        .post(format!("{}/sign-in", app.address))
        .form(&[
            ("email", "alice@example.com"),
            ("password", PASSWORD),
            ("csrf_token", "x"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    assert!(response.headers().get("set-cookie").is_none());

    // Properly signed in, a state-changing form without the session's token.
    let page = client
        .get(format!("{}/sign-in", app.address))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let token = hidden_value(&page, "csrf_token");
    let response = client
        .post(format!("{}/sign-in", app.address))
        .form(&[
            ("email", "alice@example.com"),
            ("password", PASSWORD),
            ("csrf_token", &token),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303, "{}", response.text().await.unwrap());
    app.add_api("https://api.example.com", "API", "read").await;
    let before = app.count_rows("SELECT COUNT(*) AS n FROM api_keys");
    for csrf in ["", "forged", token.as_str()] {
        let response = client
            .post(format!("{}/keys", app.address))
            .form(&[
                ("csrf_token", csrf),
                ("form_id", &"a".repeat(32)),
                ("name", "x"),
                ("scope", "read"),
            ])
            .send()
            .await
            .unwrap();
        // The pre-session token is not the session's: refused too.
        assert_eq!(response.status(), 403, "csrf {csrf:?}");
    }
    assert_eq!(app.count_rows("SELECT COUNT(*) AS n FROM api_keys"), before);
}

fn link_in(message: &Received) -> String {
    let path = message
        .text
        .find("/set-password?token=")
        .unwrap_or_else(|| panic!("no link in {}", message.text));
    let start = message.text[..path].rfind("http").unwrap();
    message.text[start..]
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

async fn mail(app: &TestApp, smtp: &SmtpSink, count: usize) -> Vec<Received> {
    app.run_job(Job::MailDelivery).await;
    smtp.wait_for(count, Duration::from_secs(20)).await
}

fn with_subject<'a>(messages: &'a [Received], to: &str, word: &str) -> &'a Received {
    messages
        .iter()
        .find(|m| m.to == to && m.subject.contains(word))
        .unwrap_or_else(|| {
            panic!(
                "no email to {to} with {word:?}: {:?}",
                messages
                    .iter()
                    .map(|m| (&m.to, &m.subject))
                    .collect::<Vec<_>>()
            )
        })
}

/// A newcomer's whole path, from the invitation email to a revoked key,
/// every page saved as a screenshot (desktop and phone) and checked by axe.
async fn a_newcomer_from_invitation_to_revocation(engine: Engine) {
    let smtp = SmtpSink::started().await;
    let app = smtp.app_on_demand(engine).start().await;
    let shots = |page: &str| format!("{page}-{}", format!("{engine:?}").to_lowercase());
    app.add_api(
        "https://billing.example.com",
        "Billing",
        "invoices:read invoices:write refunds:write",
    )
    .await;
    app.add_named_user("alice@example.com", "member", "Alice")
        .await;
    let messages = mail(&app, &smtp, 1).await;
    let invitation = with_subject(&messages, "alice@example.com", "");
    let link = link_in(invitation);
    assert!(
        link.starts_with(&format!("{}/set-password?token=", app.issuer)),
        "{link}"
    );

    let browser = Browser::start().await;
    browser.goto(&link).await;
    assert!(browser.body_text().await.contains("alice@example.com"));
    browser.capture(&shots("set-password")).await;
    // A weak password is refused next to the field.
    browser.fill("#password", "password1234").await;
    browser.fill("#confirm", "password1234").await;
    browser.follow("button[type=submit]").await;
    assert!(
        browser.text("#password-error").await.contains("common"),
        "{}",
        browser.body_text().await
    );
    browser.capture(&shots("set-password-error")).await;
    browser.fill("#password", PASSWORD).await;
    browser.fill("#confirm", PASSWORD).await;
    browser.follow("button[type=submit]").await;
    assert_eq!(browser.path().await, "/keys?notice=password-set");
    assert!(
        browser
            .body_text()
            .await
            .contains("You have no API keys yet")
    );
    browser.capture(&shots("keys-empty")).await;
    // The link worked once.
    browser.goto(&link).await;
    assert!(browser.body_text().await.contains("no longer works"));

    // Sign out, then in again; a wrong password first.
    browser.goto(&format!("{}/keys", app.address)).await;
    browser.follow("form[action='/sign-out'] button").await;
    assert_eq!(browser.path().await, "/sign-in?notice=signed-out");
    browser.fill("#email", "alice@example.com").await;
    browser.fill("#password", "not the password at all").await;
    browser.follow("button[type=submit]").await;
    assert!(
        browser
            .body_text()
            .await
            .contains("Wrong email address or password")
    );
    browser.capture(&shots("sign-in-refused")).await;
    browser.fill("#password", PASSWORD).await;
    browser.follow("button[type=submit]").await;
    assert_eq!(browser.path().await, "/keys");

    // Create a key with two scopes; a missing name first keeps the input.
    browser.follow("a[href='/keys/new']").await;
    browser.capture(&shots("key-new")).await;
    browser.click("input[value='invoices:read']").await;
    browser.click("input[value='invoices:write']").await;
    browser
        .follow("form[action='/keys'] button[type=submit]")
        .await;
    assert!(browser.text("#name-error").await.contains("name"));
    assert!(
        browser.exists("input[value='invoices:read']:checked").await,
        "input kept"
    );
    browser.capture(&shots("key-new-errors")).await;
    browser.fill("#name", "billing-sync").await;
    browser
        .follow("form[action='/keys'] button[type=submit]")
        .await;
    let client_id = browser.text("#client-id").await;
    let secret = browser.text("#client-secret").await;
    assert!(
        client_id.starts_with("kgc_") && secret.starts_with("kgs_"),
        "{client_id} {secret}"
    );
    assert!(
        browser
            .body_text()
            .await
            .contains("will not be shown again")
    );
    browser.capture(&shots("key-secret")).await;

    // The CSV, downloaded by the browser.
    browser.click("a[download]").await;
    let csv = browser.downloaded(&format!("{client_id}.csv")).await;
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("client_id,client_secret,name,scopes,audiences,expires_at")
    );
    let fields: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(
        &fields[..5],
        [
            client_id.as_str(),
            secret.as_str(),
            "billing-sync",
            "invoices:read invoices:write",
            "https://billing.example.com"
        ]
    );
    assert!(fields[5].ends_with('Z'), "{csv}");

    // The secret works at the token endpoint.
    let response = app
        .http
        .post(app.token_url())
        .basic_auth(&client_id, Some(&secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let token: Value = response.json().await.unwrap();
    assert_eq!(token["scope"], "invoices:read invoices:write");

    // A reload posts the form again: no second key, no secret.
    browser.reload().await;
    let after_reload = browser.body_text().await;
    assert!(
        !after_reload.contains(&secret),
        "the secret came back on reload"
    );
    assert_eq!(app.count_rows("SELECT COUNT(*) AS n FROM api_keys"), 1);
    // Nor does the back button bring it back.
    browser.goto(&format!("{}/keys", app.address)).await;
    browser.client.back().await.unwrap();
    assert!(
        !browser.body_text().await.contains(&secret),
        "the secret came back on back"
    );

    // The list, then the key's detail; rotate with a grace period.
    browser.goto(&format!("{}/keys", app.address)).await;
    assert!(browser.body_text().await.contains("billing-sync"));
    browser.capture(&shots("keys")).await;
    browser
        .follow(&format!("a[href='/keys/{client_id}']"))
        .await;
    browser.capture(&shots("key-detail")).await;

    // Usage limits: a bad network comes back next to its field, a good one
    // is saved and shown (the browser's own address stays inside it).
    let limits = format!("form[action='/keys/{client_id}/envelope'] button");
    browser
        .fill("#allowed_networks", "127.0.0.0/8\nnot-a-network")
        .await;
    browser.fill("#max_tokens_per_minute", "100").await;
    browser.follow(&limits).await;
    assert!(
        browser
            .text("#networks-error")
            .await
            .contains("not-a-network"),
        "the error names the entry"
    );
    browser.capture(&shots("key-limits-error")).await;
    browser.fill("#allowed_networks", "127.0.0.0/8").await;
    browser.follow(&limits).await;
    let page = browser.body_text().await;
    assert!(page.contains("usage limits are changed"), "{page}");
    assert!(
        page.contains("127.0.0.0/8") && page.contains("100 per minute"),
        "{page}"
    );
    browser.capture(&shots("key-limits")).await;

    browser
        .follow(&format!("form[action='/keys/{client_id}/rotate'] button"))
        .await;
    let rotated = browser.text("#client-secret").await;
    assert_ne!(rotated, secret);
    assert_eq!(browser.text("#client-id").await, client_id);
    browser.capture(&shots("key-rotated")).await;

    // Revoke behind the confirmation that says it cannot be undone.
    browser
        .goto(&format!("{}/keys/{client_id}", app.address))
        .await;
    browser
        .follow(&format!("a[href='/keys/{client_id}/revoke']"))
        .await;
    assert!(browser.body_text().await.contains("cannot be undone"));
    browser.capture(&shots("key-revoke")).await;
    browser
        .fill("#reason", "moved to the new billing cluster")
        .await;
    // The script asks once more (a window.confirm): accept it.
    browser
        .follow_confirming("button.danger[type=submit]")
        .await;
    assert_eq!(
        browser.path().await,
        format!("/keys/{client_id}?notice=revoked")
    );
    assert!(browser.text(".status").await.contains("Revoked"));
    browser.capture(&shots("key-revoked")).await;
    let refused = app
        .http
        .post(app.token_url())
        .basic_auth(&client_id, Some(&rotated))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);

    // The owner was emailed at each step, naming who acted.
    let messages = mail(&app, &smtp, 4).await;
    for word in ["created", "rotated", "revoked"] {
        let email = with_subject(&messages, "alice@example.com", word);
        assert!(email.text.contains(&client_id), "{word}: {}", email.text);
        assert!(!email.text.contains(&secret) && !email.text.contains(&rotated));
    }

    // Forgot password: the same answer for a known and an unknown address;
    // only the known one gets an email.
    browser.follow("form[action='/sign-out'] button").await;
    browser.follow("a[href='/forgot-password']").await;
    browser.capture(&shots("forgot-password")).await;
    let mut answers = Vec::new();
    for email in ["alice@example.com", "nobody@example.com"] {
        browser
            .goto(&format!("{}/forgot-password", app.address))
            .await;
        browser.fill("#email", email).await;
        browser.follow("button[type=submit]").await;
        answers.push(browser.text("main").await.replace(email, "EMAIL"));
    }
    assert_eq!(answers[0], answers[1]);
    assert!(answers[0].contains("Check your email"));
    browser.capture(&shots("forgot-password-sent")).await;
    let messages = mail(&app, &smtp, 5).await;
    assert_eq!(
        messages
            .iter()
            .filter(|m| m.to == "nobody@example.com")
            .count(),
        0
    );
    let reset = with_subject(&messages, "alice@example.com", "password");
    assert!(link_in(reset).contains("/set-password?token="));
    browser.close().await;
}

/// An admin switches off one person's key creation and disables another,
/// whose open session ends at their next request.
async fn an_admin_switches_off_key_creation_and_disables_a_person(engine: Engine) {
    let app = TestApp::builder(engine).jobs_on_demand().start().await;
    let shots = |page: &str| format!("{page}-{}", format!("{engine:?}").to_lowercase());
    app.add_api("https://billing.example.com", "Billing", "invoices:read")
        .await;
    for (email, role) in [
        ("root@example.com", "admin"),
        ("bob@example.com", "member"),
        ("carol@example.com", "member"),
    ] {
        app.add_person(email, role, PASSWORD).await;
    }
    app.create_key(KeySpec::new("bob@example.com", "bob-ci").scopes("invoices:read"))
        .await;

    let carol = Browser::start().await;
    sign_in(&carol, &app, "carol@example.com").await;
    assert_eq!(carol.path().await, "/keys");

    let admin = Browser::start().await;
    sign_in(&admin, &app, "root@example.com").await;
    admin.goto(&format!("{}/admin/people", app.address)).await;
    admin.capture(&shots("admin-people")).await;
    // Bob: key creation off.
    let bob_row = "//tr[.//strong[text()='bob@example.com']]";
    let button = admin
        .client
        .find(fantoccini::Locator::XPath(&format!(
            "{bob_row}//button[contains(., 'Switch off key creation')]"
        )))
        .await
        .unwrap();
    admin.follow_element(button, false).await;
    assert_eq!(admin.path().await, "/admin/people?notice=saved");
    // Carol: disabled, on the page that confirms it (she holds no key, so
    // none stops; the script asks once more).
    let carol_row = "//tr[.//strong[text()='carol@example.com']]";
    let link = admin
        .client
        .find(fantoccini::Locator::XPath(&format!(
            "{carol_row}//a[contains(., 'Disable')]"
        )))
        .await
        .unwrap();
    admin.follow_element(link, false).await;
    assert!(admin.body_text().await.contains("no live key"));
    admin
        .follow_confirming("form[action='/admin/people/disable'] button.danger")
        .await;
    assert_eq!(admin.path().await, "/admin/people?notice=disabled");
    admin.capture(&shots("admin-people-changed")).await;

    // Carol's next request finds her signed out.
    carol.goto(&format!("{}/keys", app.address)).await;
    assert!(
        carol.path().await.starts_with("/sign-in"),
        "{}",
        carol.path().await
    );
    carol.close().await;

    // Bob keeps his key but cannot create another.
    let bob = Browser::start().await;
    sign_in(&bob, &app, "bob@example.com").await;
    let text = bob.body_text().await;
    assert!(
        text.contains("bob-ci") && text.contains("cannot create keys"),
        "{text}"
    );
    assert!(!bob.exists("a[href='/keys/new']").await);
    bob.capture(&shots("keys-creation-off")).await;
    bob.goto(&format!("{}/admin/people", app.address)).await;
    assert!(bob.body_text().await.contains("Only administrators"));
    bob.capture(&shots("not-allowed")).await;
    bob.close().await;

    // The other admin pages.
    for (path, name) in [
        ("/admin/keys", "admin-keys"),
        ("/admin/keys?status=active&owner=bob", "admin-keys-filtered"),
        ("/admin/apis", "admin-apis"),
        ("/admin/roles", "admin-roles"),
        ("/admin/audit", "admin-audit"),
        ("/admin/audit?action=user.disabled", "admin-audit-filtered"),
    ] {
        admin.goto(&format!("{}{path}", app.address)).await;
        admin.capture(&shots(name)).await;
    }
    admin
        .goto(&format!("{}/admin/audit?action=user.disabled", app.address))
        .await;
    assert!(admin.body_text().await.contains("carol@example.com"));

    // An API's scopes, edited: a new scope appears on the create form.
    admin.goto(&format!("{}/admin/apis", app.address)).await;
    admin.click("details summary").await;
    admin
        .fill("#scopes-1", "invoices:read invoices:export")
        .await;
    admin
        .follow("form[action='/admin/apis/update'] button")
        .await;
    assert_eq!(admin.path().await, "/admin/apis?notice=saved");
    assert!(admin.body_text().await.contains("invoices:export"));
    admin.goto(&format!("{}/keys/new", app.address)).await;
    assert!(admin.exists("input[value='invoices:export']").await);
    admin.close().await;
}

async fn sign_in(browser: &Browser, app: &TestApp, email: &str) {
    browser.goto(&format!("{}/sign-in", app.address)).await;
    browser.fill("#email", email).await;
    browser.fill("#password", PASSWORD).await;
    browser.follow("button[type=submit]").await;
}

crate::both_engines!(
    every_page_carries_the_security_headers,
    forms_without_their_csrf_token_change_nothing,
    a_newcomer_from_invitation_to_revocation,
    an_admin_switches_off_key_creation_and_disables_a_person,
);
