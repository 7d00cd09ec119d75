//! Second factors walked in a real headless Chromium (see `browser`): a
//! member sets up an authenticator app on the Security page from its QR
//! code's setup key (codes computed by `helpers::otp`, from RFC 6238), is
//! shown ten recovery codes once, and is then asked for a code after the
//! password. Every page at 1280 and 390 px, checked by axe-core.

use chrono::Duration;

use super::{PASSWORD, sign_in};
use crate::browser::Browser;
use crate::helpers::otp::{base32_decode, totp};
use crate::helpers::{Engine, TestApp};

async fn a_member_sets_up_an_authenticator_app(engine: Engine) {
    let shots = |page: &str| format!("{page}-{}", format!("{engine:?}").to_lowercase());
    let app = TestApp::builder(engine).start().await;
    let at = |path: &str| format!("{}{path}", app.address);
    app.add_person("alice@example.com", "member", PASSWORD)
        .await;
    let alice = Browser::start().await;
    sign_in(&alice, &app, "alice@example.com").await;
    alice.goto(&at("/account/security")).await;
    assert!(
        alice
            .body_text()
            .await
            .contains("Your password alone signs you in")
    );
    alice.capture(&shots("security-off")).await;

    alice
        .follow("form[action='/account/security/totp'] button")
        .await;
    assert!(alice.exists(".qr svg").await);
    alice.capture(&shots("security-setup")).await;
    let key = base32_decode(&alice.text("#setup-key").await);
    // A wrong code first: refused beside the field.
    alice.fill("#code", "000000").await;
    alice
        .follow("form[action='/account/security/totp/confirm'] button")
        .await;
    assert!(alice.text("#code-error").await.contains("not the app"));
    let now = app.state().clock.now();
    alice.fill("#code", &totp(&key, now)).await;
    alice
        .follow("form[action='/account/security/totp/confirm'] button")
        .await;
    let codes = alice.text("#recovery-codes").await;
    assert_eq!(
        codes.lines().filter(|l| !l.trim().is_empty()).count(),
        10,
        "{codes}"
    );
    alice.capture(&shots("recovery-codes")).await;
    alice.follow("a[href='/account/security']").await;
    assert!(alice.body_text().await.contains("10 of 10 unused"));
    alice.capture(&shots("security-on")).await;

    // Signed out, the password leads to the code page.
    alice.follow("form[action='/sign-out'] button").await;
    sign_in(&alice, &app, "alice@example.com").await;
    assert!(alice.path().await.starts_with("/sign-in/code"));
    alice.capture(&shots("sign-in-code")).await;
    alice.fill("#code", "111111").await;
    alice.follow("form[action='/sign-in/code'] button").await;
    assert!(alice.text("#code-error").await.contains("not right"));
    alice.capture(&shots("sign-in-code-wrong")).await;
    app.advance_clock(Duration::seconds(30));
    alice
        .fill("#code", &totp(&key, app.state().clock.now()))
        .await;
    alice.follow("form[action='/sign-in/code'] button").await;
    assert_eq!(alice.path().await, "/keys");
    alice.close().await;
}

crate::both_engines!(a_member_sets_up_an_authenticator_app);
