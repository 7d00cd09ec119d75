//! Single sign-on walked in a real headless Chromium (see `browser`)
//! through a real OpenID provider (`helpers::oidc`): a newcomer of an
//! allowed domain presses "Sign in with ..." on the sign-in page, signs in
//! at the provider and lands on their keys, added with the default role;
//! with passwords off the sign-in page offers only the provider, and a
//! person of another domain comes back to one plain sentence. keygate's
//! pages at 1280 and 390 px, checked by axe-core.

use crate::browser::Browser;
use crate::helpers::oidc::OidcProvider;
use crate::helpers::{Engine, TestApp};

async fn app_with(engine: Engine, provider: &OidcProvider, extra: &[(&str, &str)]) -> TestApp {
    let vars = provider.vars();
    let mut all: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    all.extend_from_slice(extra);
    TestApp::builder(engine).vars(&all).start().await
}

/// At the provider's own sign-in page: signs in as `login` and waits for
/// the page the provider sends the browser back to.
async fn at_the_provider(browser: &Browser, login: &str) {
    browser.fill("input[name=login]", login).await;
    browser.follow("button[type=submit]").await;
}

async fn a_newcomer_signs_in_through_the_company_provider(engine: Engine) {
    let shots = |page: &str| format!("{page}-{}", format!("{engine:?}").to_lowercase());
    let provider = OidcProvider::start().await;
    let app = app_with(
        engine,
        &provider,
        &[
            ("KEYGATE_OIDC_ALLOWED_DOMAINS", "example.com"),
            ("KEYGATE_OIDC_DEFAULT_ROLE", "member"),
        ],
    )
    .await;
    let carol = Browser::start().await;
    carol.goto(&format!("{}/sign-in", app.address)).await;
    assert_eq!(carol.text("#sso").await, "Sign in with Example ID");
    assert!(carol.exists("#password").await);
    carol.capture(&shots("sign-in-sso")).await;
    carol.follow("#sso").await;
    assert!(
        carol
            .client
            .current_url()
            .await
            .unwrap()
            .as_str()
            .starts_with(&provider.issuer),
        "the button leads to the provider"
    );
    at_the_provider(&carol, "carol").await;
    assert_eq!(carol.path().await, "/keys");
    assert!(carol.body_text().await.contains("carol@example.com"));
    carol.close().await;

    // Passwords off: the provider is the only way in; a person of another
    // domain is sent back with one sentence.
    let app = app_with(
        engine,
        &provider,
        &[
            ("KEYGATE_OIDC_ALLOWED_DOMAINS", "example.com"),
            ("KEYGATE_PASSWORD_SIGN_IN", "off"),
        ],
    )
    .await;
    let outsider = Browser::start().await;
    outsider.goto(&format!("{}/sign-in", app.address)).await;
    assert!(!outsider.exists("#password").await);
    outsider.capture(&shots("sign-in-sso-only")).await;
    outsider.follow("#sso").await;
    at_the_provider(&outsider, "outsider").await;
    assert!(outsider.path().await.starts_with("/sign-in/oidc/callback"));
    assert_eq!(
        outsider.text("#sign-in-error").await,
        "Signing in through Example ID is not open to outsider@other.test."
    );
    outsider.capture(&shots("sign-in-sso-refused")).await;
    outsider.close().await;
}

crate::both_engines!(a_newcomer_signs_in_through_the_company_provider);
