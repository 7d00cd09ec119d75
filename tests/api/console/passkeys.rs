//! Passkeys walked in a real headless Chromium with a WebDriver virtual
//! authenticator (W3C WebAuthn "Automation", which chromedriver serves): a
//! member adds a passkey on the Security page (a discoverable credential,
//! with ten recovery codes as their first factor), signs out, signs in with
//! the passkey alone, and then uses it as the second step after the
//! password. keygate runs on `http://localhost:PORT`, as browsers require
//! of a relying party over plain http. Pages at 1280 and 390 px, checked
//! by axe-core.

use super::PASSWORD;
use crate::browser::Browser;
use crate::helpers::{Engine, TestApp};

async fn sign_in_with_password(browser: &Browser, app: &TestApp, email: &str) {
    browser.goto(&format!("{}/sign-in", app.issuer)).await;
    browser.fill("#email", email).await;
    browser.fill("#password", PASSWORD).await;
    browser
        .follow("form[action='/sign-in'] button[type=submit]")
        .await;
}

async fn a_member_signs_in_with_a_passkey(engine: Engine) {
    let shots = |page: &str| format!("{page}-{}", format!("{engine:?}").to_lowercase());
    let app = TestApp::builder(engine).on_localhost().start().await;
    assert!(
        app.issuer.starts_with("http://localhost:"),
        "{}",
        app.issuer
    );
    let at = |path: &str| format!("{}{path}", app.issuer);
    app.add_person("alice@example.com", "member", PASSWORD)
        .await;
    let alice = Browser::start().await;
    let authenticator = alice.add_virtual_authenticator().await;

    sign_in_with_password(&alice, &app, "alice@example.com").await;
    assert_eq!(alice.path().await, "/keys");
    alice.goto(&at("/account/security")).await;
    alice.wait_for("#passkey-add:not([hidden])").await;
    alice.capture(&shots("security-passkeys-none")).await;
    alice.fill("#passkey-name", "Work laptop").await;
    alice.click("#passkey-add button[type=submit]").await;
    alice.wait_for("#passkey-codes:not([hidden])").await;
    let codes = alice.text("#recovery-codes").await;
    assert_eq!(
        codes.lines().filter(|l| !l.trim().is_empty()).count(),
        10,
        "{codes}"
    );
    alice.capture(&shots("passkey-added")).await;
    alice
        .follow("#passkey-codes a[href='/account/security']")
        .await;
    assert!(alice.text(".passkeys").await.contains("Work laptop"));
    alice.capture(&shots("security-passkeys")).await;

    // Renamed from the list; a name of spaces only is refused and changes
    // nothing (the browser's `required` is not all that stands in its way).
    alice.click(".passkeys details.rename summary").await;
    alice
        .fill(".passkeys details.rename input[name=name]", "   ")
        .await;
    alice
        .client
        .execute(
            "document.querySelector('.passkeys details.rename input[name=name]').required = false;",
            vec![],
        )
        .await
        .unwrap();
    alice
        .follow(".passkeys details.rename button[type=submit]")
        .await;
    assert!(
        alice
            .text("#refused")
            .await
            .contains("A passkey's name is 1 to 60 characters"),
        "{}",
        alice.text("body").await
    );
    assert!(alice.text(".passkeys").await.contains("Work laptop"));
    alice.goto(&at("/account/security")).await;
    alice.click(".passkeys details.rename summary").await;
    alice
        .fill(
            ".passkeys details.rename input[name=name]",
            "  Laptop at work ",
        )
        .await;
    alice.capture(&shots("passkey-rename")).await;
    alice
        .follow(".passkeys details.rename button[type=submit]")
        .await;
    assert_eq!(
        alice.path().await,
        "/account/security?notice=passkey-renamed"
    );
    let listed = alice.text(".passkeys").await;
    assert!(listed.contains("Laptop at work"), "{listed}");
    assert!(!listed.contains("Work laptop"), "{listed}");
    let renamed: Vec<(String, String)> = app
        .audited("account.passkey_renamed")
        .into_iter()
        .map(|(_, d)| {
            (
                d["from"].as_str().unwrap().to_owned(),
                d["to"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        renamed,
        [("Work laptop".to_owned(), "Laptop at work".to_owned())]
    );
    let credentials = alice.authenticator_credentials(&authenticator).await;
    assert_eq!(credentials.len(), 1, "{credentials:?}");
    assert_eq!(
        credentials[0]["isResidentCredential"], true,
        "a discoverable credential"
    );

    // Signed out: the passkey alone signs her in, no email typed.
    alice.follow("form[action='/sign-out'] button").await;
    alice.goto(&at("/sign-in")).await;
    alice.wait_for("#passkey-sign-in").await;
    alice.capture(&shots("sign-in-passkey")).await;
    alice.follow("#passkey-sign-in").await;
    assert_eq!(alice.path().await, "/keys");

    // After a password, the passkey is the second step.
    alice.follow("form[action='/sign-out'] button").await;
    sign_in_with_password(&alice, &app, "alice@example.com").await;
    assert!(alice.path().await.starts_with("/sign-in/code"));
    alice.wait_for("#passkey-second").await;
    alice.follow("#passkey-second").await;
    assert_eq!(alice.path().await, "/keys");

    // A quarter of an hour on, the Security page says a change asks for a
    // fresh sign-in, and adding a passkey leads to the sign-in page (the
    // script's request is refused before any ceremony); the passkey signs
    // her in again, back to the Security page.
    app.advance_clock(chrono::Duration::minutes(16));
    alice.goto(&at("/account/security")).await;
    assert!(
        alice
            .text("#sign-in-again")
            .await
            .contains("sign in again first"),
        "{}",
        alice.body_text().await
    );
    alice.capture(&shots("security-sign-in-again")).await;
    alice.wait_for("#passkey-add:not([hidden])").await;
    alice.fill("#passkey-name", "Planted").await;
    alice.follow("#passkey-add button[type=submit]").await;
    assert_eq!(
        alice.path().await,
        "/sign-in?again=1&next=/account/security"
    );
    assert!(alice.text("h1").await.contains("Sign in again"));
    alice.capture(&shots("sign-in-again")).await;
    assert_eq!(
        alice.authenticator_credentials(&authenticator).await.len(),
        1,
        "no passkey was made"
    );
    alice.wait_for("#passkey-sign-in").await;
    alice.follow("#passkey-sign-in").await;
    assert_eq!(alice.path().await, "/account/security");
    assert!(!alice.exists("#sign-in-again").await);

    // Removed, it signs no one in.
    alice.goto(&at("/account/security")).await;
    alice
        .follow_confirming(".passkeys form[action$='/remove'] button[type=submit]")
        .await;
    assert_eq!(
        alice.path().await,
        "/account/security?notice=passkey-removed"
    );
    assert!(!alice.exists(".passkeys").await);
    alice.follow("form[action='/sign-out'] button").await;
    alice.goto(&at("/sign-in")).await;
    alice.wait_for("#passkey-sign-in").await;
    alice.click("#passkey-sign-in").await;
    alice.wait_for("#passkey-error:not([hidden])").await;
    assert!(alice.path().await.starts_with("/sign-in"));
    alice.close().await;

    let methods: Vec<String> = app
        .audited("account.signed_in")
        .into_iter()
        .map(|(_, d)| d["method"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        methods,
        ["password", "passkey", "password+passkey", "passkey"]
    );
    let emails = app.count_rows(
        "SELECT COUNT(*) AS n FROM email_outbox WHERE event = 'two_factor' AND subject LIKE '%passkey added%'",
    );
    assert_eq!(emails, 1);
    let removed = app.count_rows(
        "SELECT COUNT(*) AS n FROM email_outbox WHERE event = 'two_factor' AND subject LIKE '%passkey removed%'",
    );
    assert_eq!(removed, 1);
    let refused: Vec<String> = app
        .audited("account.sign_in_failed")
        .into_iter()
        .map(|(_, d)| d["reason"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(refused, ["passkey_refused"]);
}

/// With passwords off (and no provider), an invitation's link signs the
/// person in once, to a session that sees only the Security page and may
/// add only a passkey; then the passkey alone signs them in, and the used
/// link no longer works.
async fn with_passwords_off_an_invitation_leads_to_a_passkey(engine: Engine) {
    let shots = |page: &str| format!("{page}-{}", format!("{engine:?}").to_lowercase());
    let app = TestApp::builder(engine)
        .on_localhost()
        .vars(&[("KEYGATE_PASSWORD_SIGN_IN", "off")])
        .start()
        .await;
    let at = |path: &str| format!("{}{path}", app.issuer);
    app.add_user("bob@example.com", "member").await;
    let invitation = app.newest_account_email("bob@example.com");
    assert!(
        invitation.contains("add your passkey") && !invitation.contains("your password"),
        "the invitation speaks of a passkey: {invitation}"
    );
    let token = app.newest_link_token("bob@example.com");
    let link = at(&format!("/set-password?token={token}"));

    let bob = Browser::start().await;
    bob.add_virtual_authenticator().await;
    bob.goto(&link).await;
    assert!(!bob.exists("#password").await);
    bob.capture(&shots("invited-passkey-only")).await;
    bob.follow("form[action='/set-password'] button[type=submit]")
        .await;
    assert!(
        bob.path()
            .await
            .starts_with("/account/security?notice=add-passkey"),
        "{}",
        bob.path().await
    );
    assert!(
        !bob.exists("form[action='/account/security/totp']").await,
        "no authenticator app without passwords"
    );
    bob.goto(&at("/keys")).await;
    assert!(bob.path().await.starts_with("/account/security"));
    bob.wait_for("#passkey-add:not([hidden])").await;
    bob.capture(&shots("security-add-passkey-first")).await;
    bob.fill("#passkey-name", "Phone").await;
    bob.click("#passkey-add button[type=submit]").await;
    // No recovery codes: with no password step, none would ever be asked.
    bob.wait_for(".passkeys").await;
    assert_eq!(bob.path().await, "/account/security?notice=passkey-added");
    assert!(bob.text("#recovery").await.contains("Not used here"));
    assert_eq!(
        app.count_rows("SELECT COUNT(*) AS n FROM recovery_codes"),
        0
    );
    bob.goto(&at("/keys")).await;
    assert_eq!(bob.path().await, "/keys");

    bob.follow("form[action='/sign-out'] button").await;
    bob.goto(&link).await;
    assert!(bob.text("h1").await.contains("no longer works"));
    bob.goto(&at("/sign-in")).await;
    bob.wait_for("#passkey-sign-in").await;
    bob.follow("#passkey-sign-in").await;
    assert_eq!(bob.path().await, "/keys");
    bob.close().await;

    let methods: Vec<String> = app
        .audited("account.signed_in")
        .into_iter()
        .map(|(_, d)| d["method"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(methods, ["link", "passkey"]);
}

crate::both_engines!(
    a_member_signs_in_with_a_passkey,
    with_passwords_off_an_invitation_leads_to_a_passkey,
);
