//! A key without a secret made in the console: the "Public key
//! (private_key_jwt)" choice of the create form, the key's page with its
//! thumbprints (no secret, no CSV), and replacing its public keys there;
//! every page checked by axe at desktop and phone width.

use super::{PASSWORD, sign_in};
use crate::browser::Browser;
use crate::helpers::{Engine, TestApp};

fn pem(label: &str, der: &[u8]) -> String {
    use base64::Engine as _;
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).expect("base64"))
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

/// A new EC P-256 key pair: (private PKCS#8 PEM, public SPKI PEM).
fn ec_pair() -> (String, String) {
    use aws_lc_rs::encoding::AsDer;
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).expect("key");
    let pair =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).expect("key");
    let spki = pair.public_key().as_der().expect("SPKI");
    (
        pem("PRIVATE KEY", pkcs8.as_ref()),
        pem("PUBLIC KEY", spki.as_ref()),
    )
}

async fn a_public_key_is_given_in_the_console_and_replaced(engine: Engine) {
    let app = TestApp::builder(engine).jobs_on_demand().start().await;
    let shots = |page: &str| format!("{page}-{}", format!("{engine:?}").to_lowercase());
    app.add_api("https://billing.example.com", "Billing", "invoices:read")
        .await;
    app.add_person("alice@example.com", "member", PASSWORD)
        .await;
    let (private_pem, public_pem) = ec_pair();
    let (_, next_pem) = ec_pair();

    let browser = Browser::start().await;
    sign_in(&browser, &app, "alice@example.com").await;
    browser.goto(&format!("{}/keys/new", app.address)).await;
    browser.fill("#name", "signer").await;
    browser.click("input[value='invoices:read']").await;
    browser
        .click("input[name='auth_method'][value='public_key']")
        .await;
    // The private key is refused beside the field, the choice kept.
    browser.fill("#public_key", &private_pem).await;
    browser
        .follow("form[action='/keys'] button[type=submit]")
        .await;
    assert!(
        browser
            .text("#public-key-error")
            .await
            .contains("public half"),
        "{}",
        browser.body_text().await
    );
    assert!(
        browser
            .exists("input[name='auth_method'][value='public_key']:checked")
            .await
    );
    assert!(
        !browser.body_text().await.contains("BEGIN PRIVATE KEY")
            && browser.text("#public_key").await.is_empty(),
        "the private key is not written back into the page"
    );
    browser.capture(&shots("key-new-public-key-error")).await;
    browser.fill("#public_key", &public_pem).await;
    browser
        .follow("form[action='/keys'] button[type=submit]")
        .await;
    let path = browser.path().await;
    assert!(path.ends_with("?notice=created-public-key"), "{path}");
    let text = browser.body_text().await;
    assert!(text.contains("private_key_jwt"), "{text}");
    assert!(!browser.exists("#client-secret").await, "no secret shown");
    assert!(!browser.exists("a[download]").await, "no CSV");
    assert!(
        !browser.exists("form[action$='/rotate']").await,
        "nothing to rotate"
    );
    let thumbprints = app.listed_keys().await[0]["public_key_thumbprints"].clone();
    let first = thumbprints[0].as_str().expect("a thumbprint").to_owned();
    assert!(
        browser
            .text("code.thumbprint")
            .await
            .replace(['\u{200b}', '\u{ad}'], "")
            .contains(&first),
        "{text}"
    );
    browser.capture(&shots("key-public-key")).await;

    // Replacing: garbage refused beside the field, then two keys listed.
    browser.fill("#public_key", "not a key").await;
    browser
        .follow("form[action$='/public-keys'] button[type=submit]")
        .await;
    assert!(
        browser
            .text("#public-key-error")
            .await
            .contains("not a public key")
    );
    browser.capture(&shots("key-public-key-error")).await;
    browser
        .fill("#public_key", &format!("{public_pem}{next_pem}"))
        .await;
    browser
        .follow("form[action$='/public-keys'] button[type=submit]")
        .await;
    let path = browser.path().await;
    assert!(path.ends_with("?notice=public-keys-changed"), "{path}");
    let listed = app.listed_keys().await[0]["public_key_thumbprints"].clone();
    assert_eq!(listed.as_array().map(Vec::len), Some(2));
    browser.capture(&shots("key-public-keys-replaced")).await;
    browser.close().await;
}

crate::both_engines!(a_public_key_is_given_in_the_console_and_replaced);
