//! Console single sign-on through a real OpenID provider (panva's
//! `oidc-provider`, `helpers::oidc`): a known person signs in once per
//! flow; each rule's refusal is one sentence and an audit entry with its
//! reason; a replayed callback and a forged `state` are refused; people of
//! an allowed domain are added with the default role; passwords refused
//! everywhere with `KEYGATE_PASSWORD_SIGN_IN=off`; signing in again makes
//! the provider authenticate afresh; a provider that is down is a plain 502
//! and keygate still starts.

use serde_json::Value;

use crate::both_engines;
use crate::helpers::oidc::{OidcProvider, SsoBrowser, location, sets_cookie};
use crate::helpers::{Engine, TestApp};

const PASSWORD: &str = "correct horse battery";

async fn app_with(engine: Engine, provider: &OidcProvider, extra: &[(&str, &str)]) -> TestApp {
    let vars = provider.vars();
    let mut all: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    all.extend_from_slice(extra);
    TestApp::builder(engine).vars(&all).start().await
}

fn audited(app: &TestApp, action: &str) -> Vec<(String, Value)> {
    app.audited(action)
}

/// The reasons of the single sign-on refusals audited so far.
fn refusal_reasons(app: &TestApp) -> Vec<String> {
    audited(app, "account.sign_in_failed")
        .into_iter()
        .filter(|(_, details)| details["method"] == "sso")
        .map(|(_, details)| details["reason"].as_str().unwrap().to_owned())
        .collect()
}

async fn a_known_person_signs_in_through_the_provider_once_per_flow(engine: Engine) {
    let provider = OidcProvider::start().await;
    let app = app_with(engine, &provider, &[]).await;
    app.add_person("alice@example.com", "member", PASSWORD)
        .await;
    let browser = SsoBrowser::new(&app.address);

    let page = browser.get(&format!("{}/sign-in", app.address)).await;
    let html = page.text().await.unwrap();
    assert!(html.contains("Sign in with Example ID"), "{html}");
    assert!(
        html.contains(r#"id="sso" href="&#x2f;sign-in&#x2f;oidc""#),
        "{html}"
    );
    assert!(
        html.contains(r#"name="password""#),
        "passwords stay on by default"
    );

    let callback = browser.through_provider(Some("alice")).await;
    assert!(callback.contains("code=") && callback.contains("state="));
    let done = browser.get(&callback).await;
    assert_eq!(done.status(), 303);
    assert_eq!(location(&done), "/keys");
    assert!(sets_cookie(&done, "keygate-session"));
    assert!(
        done.headers()
            .get_all("set-cookie")
            .iter()
            .any(|c| c.to_str().unwrap().starts_with("keygate-sso=;")),
        "the flow's cookie goes: {done:?}"
    );
    let keys = browser.get(&format!("{}/keys", app.address)).await;
    assert_eq!(keys.status(), 200);
    assert!(keys.text().await.unwrap().contains("alice@example.com"));
    let signed_in = audited(&app, "account.signed_in");
    assert_eq!(signed_in.len(), 1);
    assert_eq!(signed_in[0].0, "alice@example.com");
    assert_eq!(signed_in[0].1["method"], "sso");

    // The same callback again: its flow is gone.
    let replayed = browser.get(&callback).await;
    assert_eq!(replayed.status(), 400);
    let html = replayed.text().await.unwrap();
    assert!(html.contains("expired or was already used"), "{html}");
    // Replayed into another browser's flow: its state is not that flow's.
    let other = SsoBrowser::new(&app.address);
    let _started = other.through_provider(Some("alice")).await;
    assert_eq!(other.get(&callback).await.status(), 400);
    // A forged state on a live flow.
    let fresh = other.through_provider(Some("alice")).await;
    let forged = regex::Regex::new("state=[^&]+")
        .unwrap()
        .replace(&fresh, "state=forged")
        .into_owned();
    assert_eq!(other.get(&forged).await.status(), 400);
    assert_eq!(
        refusal_reasons(&app),
        ["sso_no_flow", "sso_state_mismatch", "sso_state_mismatch"]
    );
    // Nothing of the flow reaches the audit log.
    let all = app.dump_database();
    for secret in [
        &callback[callback.find("code=").unwrap() + 5..],
        crate::helpers::oidc::CLIENT_SECRET,
    ] {
        let secret = secret.split('&').next().unwrap();
        assert!(!all.contains(secret), "{secret} is stored");
    }
}

/// Signing in again through the provider asks it to authenticate the person
/// afresh (`prompt=login`, `max_age=0`): its login form shows although its
/// own session of her stands, which a plain sign-in rides without a form.
/// The new session may then change how she signs in.
async fn signing_in_again_asks_the_provider_to_authenticate_afresh(engine: Engine) {
    let provider = OidcProvider::start().await;
    let app = app_with(engine, &provider, &[]).await;
    app.add_person("alice@example.com", "member", PASSWORD)
        .await;
    let browser = SsoBrowser::new(&app.address);
    let (callback, asked) = browser
        .through_provider_from("/sign-in/oidc", Some("alice"))
        .await;
    assert!(asked, "a first sign-in at the provider");
    assert_eq!(location(&browser.get(&callback).await), "/keys");
    // Signed out of keygate, not of the provider.
    let keys = browser.get(&format!("{}/keys", app.address)).await;
    let html = keys.text().await.unwrap();
    let csrf = regex::Regex::new(r#"name="csrf_token" value="([^"]+)""#)
        .unwrap()
        .captures(&html)
        .unwrap()[1]
        .to_owned();
    let out = browser
        .http
        .post(format!("{}/sign-out", app.address))
        .form(&[("csrf_token", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 303);
    let (callback, asked) = browser
        .through_provider_from("/sign-in/oidc", Some("alice"))
        .await;
    assert!(!asked, "a plain sign-in rides the provider's session");
    assert_eq!(location(&browser.get(&callback).await), "/keys");

    app.advance_clock(chrono::Duration::minutes(16));
    let security = format!("{}/account/security", app.address);
    let html = browser.get(&security).await.text().await.unwrap();
    assert!(html.contains(r#"id="sign-in-again""#), "{html}");
    let page = browser
        .get(&format!(
            "{}/sign-in?again=1&next=/account/security",
            app.address
        ))
        .await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(
        html.contains(
            r#"id="sso" href="&#x2f;sign-in&#x2f;oidc?next=%2Faccount%2Fsecurity&amp;again=1""#
        ),
        "{html}"
    );
    let (callback, asked) = browser
        .through_provider_from(
            "/sign-in/oidc?next=%2Faccount%2Fsecurity&again=1",
            Some("alice"),
        )
        .await;
    assert!(asked, "the provider asked her to sign in afresh");
    let done = browser.get(&callback).await;
    assert_eq!(done.status(), 303);
    assert_eq!(location(&done), "/account/security");
    let html = browser.get(&security).await.text().await.unwrap();
    assert!(!html.contains(r#"id="sign-in-again""#), "{html}");
    let methods: Vec<Value> = audited(&app, "account.signed_in")
        .into_iter()
        .map(|(_, details)| details["method"].clone())
        .collect();
    assert_eq!(methods, ["sso", "sso", "sso"]);
    assert!(refusal_reasons(&app).is_empty());
}

async fn each_refusal_is_one_sentence_and_an_audit_entry(engine: Engine) {
    let provider = OidcProvider::start().await;
    let app = app_with(
        engine,
        &provider,
        &[("KEYGATE_OIDC_ALLOWED_DOMAINS", "example.com")],
    )
    .await;
    app.add_person("bob@example.com", "member", PASSWORD).await;
    {
        let mut conn = app.db();
        keygate::users::set_user_disabled(
            &mut conn,
            "bob@example.com",
            true,
            "test",
            app.state().clock.now(),
        )
        .unwrap();
    }
    let cases = [
        (
            Some("unverified"),
            403,
            "has not verified unverified@example.com",
        ),
        (Some("outsider"), 403, "is not open to outsider@other.test"),
        (
            Some("carol"),
            403,
            "no keygate account for carol@example.com",
        ),
        // The provider says Bob@Example.com: the same person.
        (Some("bob"), 403, "Your account is disabled."),
        (Some("noemail"), 403, "did not share your email address"),
        (None, 400, "Signing in with Example ID was cancelled."),
    ];
    for (login, status, sentence) in cases {
        let browser = SsoBrowser::new(&app.address);
        let callback = browser.through_provider(login).await;
        let response = browser.get(&callback).await;
        assert_eq!(response.status(), status, "{login:?}");
        assert!(!sets_cookie(&response, "keygate-session"));
        let html = response.text().await.unwrap();
        assert!(html.contains(sentence), "{login:?}: {html}");
        assert!(html.contains(r#"role="alert""#));
    }
    assert_eq!(
        refusal_reasons(&app),
        [
            "sso_email_unverified",
            "sso_domain_not_allowed",
            "unknown_account",
            "disabled",
            "sso_no_email",
            "sso_provider_error",
        ]
    );
    let actors: Vec<String> = audited(&app, "account.sign_in_failed")
        .into_iter()
        .map(|(actor, _)| actor)
        .collect();
    assert_eq!(
        actors,
        [
            "unverified@example.com",
            "outsider@other.test",
            "carol@example.com",
            "bob@example.com",
            "(single sign-on)",
            "(single sign-on)",
        ]
    );
    assert_eq!(app.count_rows("SELECT COUNT(*) AS n FROM sessions"), 0);
    assert_eq!(app.count_rows("SELECT COUNT(*) AS n FROM users"), 1);
}

async fn people_of_an_allowed_domain_are_added_with_the_default_role(engine: Engine) {
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
    for login in ["carol", "carol", "erin"] {
        let browser = SsoBrowser::new(&app.address);
        let done = browser.sign_in(login).await;
        assert_eq!(done.status(), 303, "{login}");
        assert!(sets_cookie(&done, "keygate-session"));
    }
    let carol = {
        let mut conn = app.db();
        keygate::users::find_user_by_email(&mut conn, "carol@example.com").unwrap()
    };
    assert_eq!(carol.role, "member");
    assert_eq!(carol.name, "Carol");
    assert!(carol.password_hash.is_none());
    let created: Vec<String> = audited(&app, "user.created")
        .into_iter()
        .map(|(actor, _)| actor)
        .collect();
    assert_eq!(created, ["carol@example.com", "erin@example.com"]);
    // Another domain is still refused, not added.
    let browser = SsoBrowser::new(&app.address);
    assert_eq!(browser.sign_in("outsider").await.status(), 403);
    assert_eq!(refusal_reasons(&app), ["sso_domain_not_allowed"]);
}

/// The pre-session CSRF token: the double-submit cookie's value.
async fn pre_session_csrf(browser: &SsoBrowser, app: &TestApp) -> String {
    let page = browser.get(&format!("{}/sign-in", app.address)).await;
    page.headers()
        .get_all("set-cookie")
        .iter()
        .find_map(|c| {
            let c = c.to_str().unwrap();
            c.strip_prefix("keygate-csrf=")
                .map(|rest| rest.split(';').next().unwrap().to_owned())
        })
        .expect("a CSRF cookie")
}

async fn password_sign_in_off_refuses_passwords_everywhere(engine: Engine) {
    let provider = OidcProvider::start().await;
    let app = app_with(engine, &provider, &[("KEYGATE_PASSWORD_SIGN_IN", "off")]).await;
    app.add_person("alice@example.com", "member", PASSWORD)
        .await;
    let browser = SsoBrowser::new(&app.address);
    let csrf = pre_session_csrf(&browser, &app).await;

    let html = browser
        .get(&format!("{}/sign-in", app.address))
        .await
        .text()
        .await
        .unwrap();
    assert!(!html.contains(r#"name="password""#), "{html}");
    assert!(html.contains("Sign in with Example ID"));

    let refused = "Passwords are not used to sign in here. Sign in with Example ID.";
    let posts = [
        (
            "/sign-in",
            vec![
                ("csrf_token", csrf.as_str()),
                ("email", "alice@example.com"),
                ("password", PASSWORD),
            ],
        ),
        (
            "/forgot-password",
            vec![
                ("csrf_token", csrf.as_str()),
                ("email", "alice@example.com"),
            ],
        ),
        (
            "/set-password",
            vec![
                ("csrf_token", csrf.as_str()),
                ("token", "x"),
                ("password", "a new long password"),
                ("confirm", "a new long password"),
            ],
        ),
    ];
    for (path, form) in posts {
        let response = browser
            .http
            .post(format!("{}{path}", app.address))
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 403, "{path}");
        assert!(!sets_cookie(&response, "keygate-session"));
        assert!(response.text().await.unwrap().contains(refused), "{path}");
    }
    for path in ["/forgot-password", "/set-password?token=x"] {
        let response = browser.get(&format!("{}{path}", app.address)).await;
        assert_eq!(response.status(), 403, "{path}");
    }
    // The rule is the accounts facade's, not only the pages'.
    let direct = app.try_sign_in("alice@example.com", PASSWORD).await;
    assert!(
        matches!(
            direct,
            Err(keygate::accounts::SignInError::PasswordSignInOff)
        ),
        "{direct:?}"
    );
    assert_eq!(app.count_rows("SELECT COUNT(*) AS n FROM sessions"), 0);

    // Through the provider, she signs in; the command line still works.
    assert_eq!(browser.sign_in("alice").await.status(), 303);
    let listed = app.cli_ok(&["users", "list"]).await;
    assert!(
        listed.stdout.contains("alice@example.com"),
        "{}",
        listed.stdout
    );
}

/// keygate keeps the provider's keys an hour; an ID token signed by a key it
/// has not seen (the provider rotated its keys) makes it fetch them again.
async fn a_rotated_provider_key_is_fetched_at_once(engine: Engine) {
    let mut provider = OidcProvider::start().await;
    let app = app_with(engine, &provider, &[]).await;
    app.add_person("alice@example.com", "member", PASSWORD)
        .await;
    assert_eq!(
        SsoBrowser::new(&app.address)
            .sign_in("alice")
            .await
            .status(),
        303
    );
    provider.rotate_keys().await;
    let done = SsoBrowser::new(&app.address).sign_in("alice").await;
    assert_eq!(done.status(), 303, "{:?}", refusal_reasons(&app));
    assert_eq!(app.audited("account.signed_in").len(), 2);
    assert!(refusal_reasons(&app).is_empty());
}

both_engines!(
    signing_in_again_asks_the_provider_to_authenticate_afresh,
    a_rotated_provider_key_is_fetched_at_once,
    a_known_person_signs_in_through_the_provider_once_per_flow,
    each_refusal_is_one_sentence_and_an_audit_entry,
    people_of_an_allowed_domain_are_added_with_the_default_role,
    password_sign_in_off_refuses_passwords_everywhere,
);

/// keygate starts while its provider is down (tokens do not need it); the
/// button then answers a plain 502 until the provider is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_that_is_down_is_a_plain_502() {
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let app = TestApp::builder(Engine::Sqlite)
        .vars(&[
            ("KEYGATE_OIDC_ISSUER", &closed),
            ("KEYGATE_OIDC_CLIENT_ID", "keygate"),
            ("KEYGATE_OIDC_CLIENT_SECRET", "x"),
        ])
        .start()
        .await;
    let browser = SsoBrowser::new(&app.address);
    let response = browser.get(&format!("{}/sign-in/oidc", app.address)).await;
    assert_eq!(response.status(), 502);
    assert!(!sets_cookie(&response, "keygate-sso"));
    let html = response.text().await.unwrap();
    assert!(
        html.contains("Single sign-on could not be reached. Try again in a moment."),
        "{html}"
    );
}

/// Without `KEYGATE_OIDC_*` there is no button and no flow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_provider_there_is_no_button() {
    let app = TestApp::builder(Engine::Sqlite).start().await;
    let browser = SsoBrowser::new(&app.address);
    let html = browser
        .get(&format!("{}/sign-in", app.address))
        .await
        .text()
        .await
        .unwrap();
    assert!(!html.contains(r#"id="sso""#), "{html}");
    for path in ["/sign-in/oidc", "/sign-in/oidc/callback?code=x&state=y"] {
        let response = browser.get(&format!("{}{path}", app.address)).await;
        assert_eq!(response.status(), 404, "{path}");
    }
}
