//! Second factors for console sign-in, over plain HTTP as a browser without
//! JavaScript: an authenticator app set up on the Security page (its codes
//! computed here from the page's setup key by RFC 6238 written out below,
//! not by keygate's code), then asked after the password; each code taken
//! once; recovery codes each once; wrong codes counted by the sign-in
//! throttle; a pending sign-in that expires; `users reset-mfa`; and
//! `KEYGATE_REQUIRE_MFA` sending the people it covers to enrol first, the
//! API refusing their session meanwhile. Every change emails the person,
//! and asks for a sign-in within the last 15 minutes.

use chrono::{DateTime, Duration, Utc};
use serde_json::Value;

use crate::both_engines;
use crate::helpers::otp::{base32_decode, totp};
use crate::helpers::{Engine, TestApp, spawn_app};

const PASSWORD: &str = "correct horse battery";

#[test]
fn the_tests_totp_matches_rfc_6238() {
    let at = |t| DateTime::from_timestamp(t, 0).unwrap();
    assert_eq!(totp(b"12345678901234567890", at(59)), "287082");
    assert_eq!(totp(b"12345678901234567890", at(1_111_111_109)), "081804");
    assert_eq!(base32_decode("GEZDGNBV"), b"12345");
}

/// A browser without JavaScript: cookies kept, redirects not followed.
struct Visitor {
    http: reqwest::Client,
    at: String,
}

fn between<'a>(html: &'a str, start: &str, end: &str) -> &'a str {
    let from = html
        .find(start)
        .unwrap_or_else(|| panic!("no {start} in {html}"))
        + start.len();
    &html[from..from + html[from..].find(end).unwrap()]
}

/// A response as the tests read it: its status, and where it redirects or
/// else its page.
async fn answer(response: reqwest::Response) -> (u16, String) {
    let status = response.status().as_u16();
    let location = response
        .headers()
        .get("location")
        .map(|l| l.to_str().unwrap().to_owned());
    (status, location.unwrap_or(response.text().await.unwrap()))
}

impl Visitor {
    fn new(app: &TestApp) -> Self {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .cookie_store(true)
            .build()
            .unwrap();
        Self {
            http,
            at: app.address.clone(),
        }
    }

    async fn get(&self, path: &str) -> (u16, String) {
        let response = self
            .http
            .get(format!("{}{path}", self.at))
            .send()
            .await
            .unwrap();
        answer(response).await
    }

    /// A form of the page at `from` posted to `to` with its CSRF token.
    async fn post(&self, from: &str, to: &str, fields: &[(&str, &str)]) -> (u16, String) {
        let (_, page) = self.get(from).await;
        let csrf = between(&page, r#"name="csrf_token" value=""#, "\"").to_owned();
        let mut form = vec![("csrf_token", csrf.as_str())];
        form.extend_from_slice(fields);
        let response = self
            .http
            .post(format!("{}{to}", self.at))
            .form(&form)
            .send()
            .await
            .unwrap();
        answer(response).await
    }

    async fn sign_in(&self, email: &str) -> (u16, String) {
        self.post(
            "/sign-in",
            "/sign-in",
            &[("email", email), ("password", PASSWORD)],
        )
        .await
    }

    async fn code(&self, code: &str) -> (u16, String) {
        self.post(
            "/sign-in/code?next=%2Fkeys",
            "/sign-in/code",
            &[("code", code), ("next", "/keys")],
        )
        .await
    }

    async fn sign_out(&self) {
        let (status, _) = self.post("/keys", "/sign-out", &[]).await;
        assert_eq!(status, 303);
    }
}

/// Sets up an authenticator app on the Security page: its key (from the
/// page's setup key), the recovery codes shown once, and the instant whose
/// code confirmed it (a later check that must meet that same code uses it,
/// not the clock, which may have crossed into the next 30-second step).
async fn enrol(app: &TestApp, visitor: &Visitor) -> (Vec<u8>, Vec<String>, DateTime<Utc>) {
    let (status, _) = visitor
        .post("/account/security", "/account/security/totp", &[])
        .await;
    assert_eq!(status, 303);
    let (status, page) = visitor.get("/account/security").await;
    assert_eq!(status, 200);
    assert!(page.contains("<svg"), "the QR code is inline SVG");
    let key = base32_decode(between(&page, r#"id="setup-key">"#, "<"));
    assert_eq!(key.len(), 20, "160 bits");
    let now = app.state().clock.now();
    let (status, page) = visitor
        .post(
            "/account/security",
            "/account/security/totp/confirm",
            &[("code", "000000")],
        )
        .await;
    assert_eq!(status, 422, "{page}");
    assert!(
        page.contains("not the app&#x27;s") || page.contains("not the app's"),
        "{page}"
    );
    let (status, page) = visitor
        .post(
            "/account/security",
            "/account/security/totp/confirm",
            &[("code", &totp(&key, now))],
        )
        .await;
    assert_eq!(status, 200, "{page}");
    let list = between(&page, r#"id="recovery-codes">"#, "</ol>");
    let codes: Vec<String> = list
        .split("<code>")
        .skip(1)
        .map(|c| c[..c.find("</code>").unwrap()].to_owned())
        .collect();
    assert_eq!(codes.len(), 10, "{list}");
    (key, codes, now)
}

fn two_factor_emails(app: &TestApp) -> Vec<(String, String)> {
    use diesel::prelude::*;
    use keygate::db::schema::email_outbox;
    let mut conn = app.db();
    email_outbox::table
        .filter(email_outbox::event.eq("two_factor"))
        .order(email_outbox::created_at.asc())
        .select((email_outbox::recipient, email_outbox::subject))
        .load(&mut conn)
        .unwrap()
}

fn audit_details(app: &TestApp, action: &str) -> Vec<Value> {
    app.audited(action).into_iter().map(|(_, d)| d).collect()
}

async fn an_authenticator_app_is_asked_after_the_password(engine: Engine) {
    let app = spawn_app(engine).await;
    app.add_person("alice@example.com", "member", PASSWORD)
        .await;
    let alice = Visitor::new(&app);
    assert_eq!(
        alice.sign_in("alice@example.com").await,
        (303, "/keys".into())
    );
    let (_, page) = alice.get("/account/security").await;
    assert!(page.contains("Set up an authenticator app"), "{page}");
    let (key, codes, confirmed_at) = enrol(&app, &alice).await;
    let emails = two_factor_emails(&app);
    assert_eq!(emails.len(), 1);
    assert_eq!(emails[0].0, "alice@example.com");
    assert!(
        emails[0].1.contains("Two-factor") && emails[0].1.contains("added"),
        "{emails:?}"
    );
    let (_, page) = alice.get("/account/security").await;
    assert!(page.contains("10 of 10 unused"), "{page}");
    alice.sign_out().await;

    // The password alone no longer signs in: the code page follows.
    let (status, to) = alice.sign_in("alice@example.com").await;
    assert_eq!((status, to.as_str()), (303, "/sign-in/code?next=%2Fkeys"));
    assert_eq!(alice.get("/keys").await.0, 303, "no session yet");
    // The code that confirmed the app was taken: not again.
    let now = confirmed_at;
    let (status, page) = alice.code(&totp(&key, now)).await;
    assert_eq!(status, 401, "{page}");
    assert!(page.contains("That code is not right"));
    // The next step's code (one step ahead is accepted) signs in, once.
    let next = totp(&key, now + Duration::seconds(30));
    assert_eq!(alice.code(&next).await, (303, "/keys".into()));
    assert_eq!(alice.get("/keys").await.0, 200);
    alice.sign_out().await;
    alice.sign_in("alice@example.com").await;
    assert_eq!(alice.code(&next).await.0, 401, "a code is taken once");

    // A recovery code, typed loosely, works once.
    let loose = codes[3].to_uppercase().replace('-', " ");
    assert_eq!(alice.code(&loose).await, (303, "/keys".into()));
    alice.sign_out().await;
    alice.sign_in("alice@example.com").await;
    assert_eq!(
        alice.code(&codes[3]).await.0,
        401,
        "a recovery code works once"
    );
    let (_, page) = alice.code(&codes[4]).await;
    assert_eq!(page, "/keys");
    let (_, page) = alice.get("/account/security").await;
    assert!(page.contains("8 of 10 unused"), "{page}");

    let methods: Vec<String> = audit_details(&app, "account.signed_in")
        .iter()
        .map(|d| d["method"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        methods,
        [
            "password",
            "password+totp",
            "password+recovery_code",
            "password+recovery_code"
        ]
    );
    let failed: Vec<String> = audit_details(&app, "account.sign_in_failed")
        .iter()
        .map(|d| d["reason"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(failed, ["wrong_second_factor"; 3]);

    // A pending sign-in lasts 5 minutes.
    alice.sign_out().await;
    alice.sign_in("alice@example.com").await;
    app.advance_clock(Duration::minutes(6));
    let later = totp(&key, app.state().clock.now());
    assert_eq!(
        alice.code(&later).await,
        (303, "/sign-in?notice=sign-in-expired".into())
    );

    // Removing the app, with its recovery codes.
    alice.sign_in("alice@example.com").await;
    let later = totp(&key, app.state().clock.now() + Duration::seconds(30));
    assert_eq!(alice.code(&later).await.0, 303);
    let (status, to) = alice
        .post("/account/security", "/account/security/totp/remove", &[])
        .await;
    assert_eq!(
        (status, to.as_str()),
        (303, "/account/security?notice=totp-off")
    );
    assert_eq!(
        app.count_rows("SELECT COUNT(*) AS n FROM recovery_codes"),
        0
    );
    alice.sign_out().await;
    assert_eq!(
        alice.sign_in("alice@example.com").await,
        (303, "/keys".into())
    );
    let subjects: Vec<String> = two_factor_emails(&app)
        .into_iter()
        .map(|(_, s)| s)
        .collect();
    assert_eq!(subjects.len(), 2);
    assert!(subjects[1].contains("removed"), "{subjects:?}");
    // No secret, code or setup key in any email or audit entry.
    let dump = app.dump_database();
    for code in &codes {
        assert!(!dump.contains(code.as_str()), "{code} is stored");
    }
}

/// Wrong codes count as wrong passwords do: the throttle stops guessing.
async fn wrong_codes_are_throttled(engine: Engine) {
    let app = spawn_app(engine).await;
    app.add_person("bob@example.com", "member", PASSWORD).await;
    let bob = Visitor::new(&app);
    bob.sign_in("bob@example.com").await;
    enrol(&app, &bob).await;
    bob.sign_out().await;
    bob.sign_in("bob@example.com").await;
    let mut statuses = Vec::new();
    for _ in 0..12 {
        statuses.push(bob.code("123456").await.0);
    }
    assert!(statuses.contains(&429), "{statuses:?}");
    assert!(
        statuses.iter().all(|s| [401, 429].contains(s)),
        "{statuses:?}"
    );
}

async fn reset_mfa_from_the_command_line(engine: Engine) {
    let app = spawn_app(engine).await;
    app.add_person("carol@example.com", "member", PASSWORD)
        .await;
    let carol = Visitor::new(&app);
    carol.sign_in("carol@example.com").await;
    enrol(&app, &carol).await;
    carol.sign_out().await;

    let out = app
        .cli_ok(&["users", "reset-mfa", "Carol@example.com"])
        .await;
    assert!(
        out.stdout.contains("removed the second factors"),
        "{}",
        out.stdout
    );
    assert_eq!(
        carol.sign_in("carol@example.com").await,
        (303, "/keys".into())
    );
    let emails = two_factor_emails(&app);
    assert_eq!(emails.len(), 2);
    assert!(emails[1].1.contains("reset"), "{emails:?}");
    let reset = audit_details(&app, "account.second_factors_reset");
    assert_eq!(reset.len(), 1);
    let again = app
        .cli_ok(&["users", "reset-mfa", "carol@example.com"])
        .await;
    assert!(
        again.stdout.contains("nothing to remove"),
        "{}",
        again.stdout
    );
    let unknown = app.cli(&["users", "reset-mfa", "nobody@example.com"]).await;
    crate::helpers::assert_one_line_refusal(&unknown, &["nobody@example.com"]);
}

async fn require_mfa_sends_admins_to_enrol_first(engine: Engine) {
    let app = TestApp::builder(engine)
        .vars(&[("KEYGATE_REQUIRE_MFA", "admins")])
        .start()
        .await;
    app.add_person("root@example.com", "admin", PASSWORD).await;
    app.add_person("dave@example.com", "member", PASSWORD).await;
    let dave = Visitor::new(&app);
    dave.sign_in("dave@example.com").await;
    assert_eq!(dave.get("/keys").await.0, 200, "members are not covered");

    let root = Visitor::new(&app);
    assert_eq!(root.sign_in("root@example.com").await.0, 303);
    for path in ["/keys", "/admin/people", "/admin/audit"] {
        assert_eq!(
            root.get(path).await,
            (303, "/account/security?notice=enrol-first".into()),
            "{path}"
        );
    }
    let (status, page) = root.get("/account/security").await;
    assert_eq!(status, 200);
    assert!(
        page.contains("A second factor is required of you here"),
        "{page}"
    );
    let api = root
        .http
        .get(format!("{}/api/v1/keys", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), 403);
    let body: Value = api.json().await.unwrap();
    assert_eq!(body["error"], "second_factor_required");

    enrol(&app, &root).await;
    assert_eq!(root.get("/admin/people").await.0, 200);
    let (status, page) = root
        .post("/account/security", "/account/security/totp/remove", &[])
        .await;
    assert_eq!(status, 409, "{page}");
    assert!(page.contains("cannot be removed"), "{page}");
    // The people page says how each signs in.
    let (_, people) = root.get("/admin/people").await;
    assert!(people.contains("Password + app"), "{people}");
    assert!(people.contains("no second factor"), "{people}");
}

/// A quarter of an hour after signing in, nothing that changes how one signs
/// in is done: each such form leads to the sign-in page (which, for once,
/// shows itself to a signed-in browser, the person's email filled in) and
/// changes nothing; the passkey script's request is a 403 saying so.
/// Signing in again (password and code) leads back to the Security page,
/// where the change then goes through.
async fn changing_how_one_signs_in_asks_for_a_fresh_sign_in(engine: Engine) {
    let app = spawn_app(engine).await;
    app.add_person("alice@example.com", "member", PASSWORD)
        .await;
    let alice = Visitor::new(&app);
    alice.sign_in("alice@example.com").await;
    let (key, _, _) = enrol(&app, &alice).await;
    let (_, page) = alice.get("/account/security").await;
    assert!(!page.contains(r#"id="sign-in-again""#), "{page}");

    app.advance_clock(Duration::minutes(16));
    let (status, page) = alice.get("/account/security").await;
    assert_eq!(status, 200, "the session itself lives on");
    assert!(page.contains(r#"id="sign-in-again""#), "{page}");
    let again = "/sign-in?again=1&next=/account/security";
    for action in ["/totp/remove", "/recovery-codes", "/totp"] {
        let to = format!("/account/security{action}");
        assert_eq!(
            alice.post("/account/security", &to, &[]).await,
            (303, again.into()),
            "{action}"
        );
    }
    let (_, page) = alice.get("/account/security").await;
    let csrf = between(&page, r#"name="csrf_token" value=""#, "\"").to_owned();
    let options = alice
        .http
        .post(format!("{}/account/security/passkeys/options", app.address))
        .header("X-CSRF-Token", csrf)
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(options.status(), 403);
    let body: Value = options.json().await.unwrap();
    assert_eq!(body["error"], "reauthentication_required", "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("sign in again"),
        "{body}"
    );
    assert!(
        app.audited("account.recovery_codes_generated").is_empty(),
        "the codes were not replaced"
    );
    assert!(app.audited("account.second_factor_removed").is_empty());
    assert_eq!(two_factor_emails(&app).len(), 1, "only the app's addition");
    assert!(
        alice
            .get("/account/security")
            .await
            .1
            .contains("10 of 10 unused")
    );

    // The sign-in page, for once, to a signed-in browser.
    let (status, page) = alice.get(again).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Sign in again"), "{page}");
    assert!(
        page.contains(r#"value="alice@example.com""#),
        "the email filled in: {page}"
    );
    assert_eq!(app.count_rows("SELECT COUNT(*) AS n FROM sessions"), 1);
    let (status, to) = alice
        .post(
            again,
            "/sign-in",
            &[
                ("email", "alice@example.com"),
                ("password", PASSWORD),
                ("next", "/account/security"),
                ("again", "1"),
            ],
        )
        .await;
    assert_eq!(
        (status, to.as_str()),
        (303, "/sign-in/code?next=%2Faccount%2Fsecurity")
    );
    let code = totp(&key, app.state().clock.now() + Duration::seconds(30));
    let (status, to) = alice
        .post(
            "/sign-in/code?next=%2Faccount%2Fsecurity",
            "/sign-in/code",
            &[("code", &code), ("next", "/account/security")],
        )
        .await;
    assert_eq!((status, to.as_str()), (303, "/account/security"));
    // The session signed in again replaced is over, not left to time out.
    assert_eq!(app.count_rows("SELECT COUNT(*) AS n FROM sessions"), 1);
    assert_eq!(app.audited("account.signed_out").len(), 1);
    let (_, page) = alice.get("/account/security").await;
    assert!(!page.contains(r#"id="sign-in-again""#), "{page}");
    assert_eq!(
        alice
            .post("/account/security", "/account/security/totp/remove", &[])
            .await,
        (303, "/account/security?notice=totp-off".into())
    );
    // Signed in long ago or not, the page itself sends a signed-in browser
    // on unless asked to sign in again.
    assert_eq!(
        alice.get("/sign-in?next=/account/security").await,
        (303, "/account/security".into())
    );
}

/// Renaming goes through the person's own passkeys only: another's is "no
/// such passkey of yours" (404) and keeps its name; nothing is audited.
async fn only_its_person_renames_a_passkey(engine: Engine) {
    use diesel::prelude::*;
    use keygate::db::schema::{passkeys, users};
    let app = spawn_app(engine).await;
    app.add_person("alice@example.com", "member", PASSWORD)
        .await;
    app.add_person("bob@example.com", "member", PASSWORD).await;
    let mut conn = app.db();
    let bob: String = users::table
        .filter(users::email.eq("bob@example.com"))
        .select(users::id)
        .first(&mut conn)
        .unwrap();
    diesel::insert_into(passkeys::table)
        .values((
            passkeys::id.eq("bobs-passkey"),
            passkeys::user_id.eq(&bob),
            passkeys::credential_id.eq("AAAA"),
            passkeys::name.eq("Bob's phone"),
            passkeys::passkey.eq("{}"),
            passkeys::created_at.eq(app.state().clock.now().naive_utc()),
        ))
        .execute(&mut conn)
        .unwrap();
    let alice = Visitor::new(&app);
    assert_eq!(
        alice.sign_in("alice@example.com").await,
        (303, "/keys".into())
    );
    let (status, page) = alice
        .post(
            "/account/security",
            "/account/security/passkeys/bobs-passkey/rename",
            &[("name", "Alice's now")],
        )
        .await;
    assert_eq!(status, 404, "{page}");
    assert!(page.contains("No such passkey of yours"), "{page}");
    let name: String = passkeys::table
        .filter(passkeys::id.eq("bobs-passkey"))
        .select(passkeys::name)
        .first(&mut conn)
        .unwrap();
    assert_eq!(name, "Bob's phone");
    assert!(app.audited("account.passkey_renamed").is_empty());
}

both_engines!(
    changing_how_one_signs_in_asks_for_a_fresh_sign_in,
    only_its_person_renames_a_passkey,
    an_authenticator_app_is_asked_after_the_password,
    wrong_codes_are_throttled,
    reset_mfa_from_the_command_line,
    require_mfa_sends_admins_to_enrol_first,
);
