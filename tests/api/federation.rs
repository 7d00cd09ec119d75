//! Workload identity federation (RFC 8693 token exchange) against a real
//! OpenID issuer process: a workload's token for a federated key's access
//! token, every refusal alike, the issuer's keys rotated, slow, huge or
//! gone, and a revoked key or a disabled owner stopping the exchange on
//! another process at once.

pub mod issuer;

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::both_engines;
use crate::helpers::mail::wait_until;
use crate::helpers::serve::Serve;
use crate::helpers::{Engine, TestApp, assert_one_line_refusal, spawn_app};
use issuer::Issuer;

const API: &str = "https://api.example.com";
const GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const JWT: &str = "urn:ietf:params:oauth:token-type:jwt";
const SUBJECT: &str = "repo:acme/app:ref:refs/heads/main";

fn not_accepted() -> Value {
    json!({"error": "invalid_grant", "error_description": "subject token not accepted"})
}

/// `federations add NAME` for alice, trusting `issuer`'s tokens of
/// `repo:acme/app:*` with aud `keygate` and `repository=acme/app`; its
/// `--json`.
async fn add_federation(app: &TestApp, name: &str, issuer: &Issuer, owner: &str) -> Value {
    app.cli_ok(&[
        "federations",
        "add",
        name,
        "--issuer",
        &issuer.url,
        "--subject",
        "repo:acme/app:*",
        "--audience",
        "keygate",
        "--claim",
        "repository=acme/app",
        "--owner",
        owner,
        "--scopes",
        "read write",
        "--resource",
        API,
        "--json",
    ])
    .await
    .json()
}

async fn exchange_at(
    http: &reqwest::Client,
    token_url: &str,
    client_id: &str,
    subject_token: &str,
) -> reqwest::Response {
    http.post(token_url)
        .form(&[
            ("grant_type", GRANT),
            ("client_id", client_id),
            ("subject_token", subject_token),
            ("subject_token_type", JWT),
        ])
        .send()
        .await
        .expect("token request")
}

async fn exchange(app: &TestApp, client_id: &str, subject_token: &str) -> reqwest::Response {
    exchange_at(&app.http, &app.token_url(), client_id, subject_token).await
}

/// The exchange must be refused as every refused subject token is.
async fn assert_not_accepted(response: reqwest::Response) {
    assert_eq!(response.status(), 400);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(body, not_accepted());
}

fn audited(app: &TestApp, action: &str) -> Vec<Value> {
    use diesel::prelude::*;
    use keygate::db::schema::audit_events;
    let mut conn = app.db();
    audit_events::table
        .filter(audit_events::action.eq(action))
        .order(audit_events::id.asc())
        .select(audit_events::details)
        .load::<String>(&mut conn)
        .unwrap()
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect()
}

fn last_refusal_reason(app: &TestApp) -> String {
    audited(app, "federation.exchange_refused")
        .last()
        .expect("an audited refusal")["reason"]
        .as_str()
        .expect("a reason")
        .to_owned()
}

async fn an_exchange_gives_the_federated_key_a_token(engine: Engine) {
    let app = spawn_app(engine).await;
    app.add_standard_api().await;
    app.set_role("deployers", "read write").await;
    app.add_person("bob@example.com", "deployers", "a long enough password")
        .await;
    let issuer = Issuer::start().await;
    let added = add_federation(&app, "deploy", &issuer, "bob@example.com").await;
    let names: Vec<&String> = added.as_object().unwrap().keys().collect();
    for field in [
        "name",
        "client_id",
        "issuer",
        "subject",
        "audience",
        "scopes",
    ] {
        assert!(names.iter().any(|n| *n == field), "{field} in {added}");
    }
    assert_eq!(added["name"], "deploy");
    assert_eq!(added["issuer"], issuer.url);
    assert_eq!(added["subject"], "repo:acme/app:*");
    assert_eq!(added["audience"], "keygate");
    assert_eq!(added["scopes"], json!(["read", "write"]));
    let client_id = added["client_id"].as_str().unwrap().to_owned();
    assert!(client_id.starts_with("kgc_"), "{client_id}");

    let response = exchange(&app, &client_id, &issuer.token().await).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["issued_token_type"],
        "urn:ietf:params:oauth:token-type:access_token"
    );
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["scope"], "read write");
    let token = app
        .validate(body["access_token"].as_str().unwrap(), API)
        .await;
    assert_eq!(token.claims["sub"], client_id);
    assert_eq!(token.claims["client_id"], client_id);
    assert_eq!(token.claims["scope"], "read write");

    // Bounded by the owner's role, as any key's.
    app.set_role("deployers", "read").await;
    let response = exchange(&app, &client_id, &issuer.token().await).await;
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["scope"], "read", "{body}");
    let asked = app
        .http
        .post(app.token_url())
        .form(&[
            ("grant_type", GRANT),
            ("client_id", &client_id),
            ("subject_token", &issuer.token().await),
            (
                "subject_token_type",
                "urn:ietf:params:oauth:token-type:id_token",
            ),
            ("scope", "read"),
            ("resource", API),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(asked.status(), 200);

    // Who used it: the external iss and sub, on the key.
    let by = format!("{} {SUBJECT}", issuer.url);
    wait_until("last_used_by is recorded", Duration::from_secs(10), || {
        let mut conn = app.db();
        use diesel::prelude::*;
        use keygate::db::schema::api_keys;
        api_keys::table
            .filter(api_keys::client_id.eq(&client_id))
            .select(api_keys::last_used_by)
            .first::<Option<String>>(&mut conn)
            .ok()
            .flatten()
            .is_some()
    })
    .await;
    let key = app.listed_key(&client_id).await;
    assert_eq!(key["last_used_by"], by);
    assert_eq!(key["auth_method"], "federation");
    assert_eq!(key["client_secret"], Value::Null);
    let listed = app.cli_ok(&["federations", "list", "--json"]).await.json();
    assert_eq!(listed[0]["name"], "deploy");
    assert_eq!(listed[0]["last_used_by"], by);
    assert_eq!(listed[0]["claims"], json!({"repository": "acme/app"}));
    let text = app.cli_ok(&["federations", "list"]).await.stdout;
    assert!(text.contains("deploy") && text.contains(&by), "{text}");

    // A federated key has no secret to authenticate with.
    let with_secret = app
        .token_basic(
            &client_id,
            "kgs_anything",
            &[
                ("grant_type", GRANT),
                ("subject_token", &issuer.token().await),
                ("subject_token_type", JWT),
            ],
        )
        .await;
    crate::helpers::assert_invalid_client(with_secret).await;
    let credentials = app
        .token_basic(
            &client_id,
            "kgs_anything",
            &[("grant_type", "client_credentials")],
        )
        .await;
    crate::helpers::assert_invalid_client(credentials).await;
    // Another subject token type is not a JWT to check.
    let saml = app
        .http
        .post(app.token_url())
        .form(&[
            ("grant_type", GRANT),
            ("client_id", &client_id),
            ("subject_token", "x"),
            (
                "subject_token_type",
                "urn:ietf:params:oauth:token-type:saml2",
            ),
        ])
        .send()
        .await
        .unwrap();
    crate::helpers::assert_oauth_error(saml, 400, "invalid_request").await;

    // Removed: its key is revoked, the exchange stops.
    let out = app.cli_ok(&["federations", "remove", "deploy"]).await;
    assert!(out.stdout.contains("revoked"), "{}", out.stdout);
    let refused = exchange(&app, &client_id, &issuer.token().await).await;
    crate::helpers::assert_invalid_client(refused).await;
    assert_eq!(
        app.cli_ok(&["federations", "list", "--json"]).await.json(),
        json!([])
    );
    assert_eq!(audited(&app, "federation.created").len(), 1);
    assert_eq!(audited(&app, "federation.removed").len(), 1);
}

async fn every_refused_subject_token_looks_the_same(engine: Engine) {
    let app = spawn_app(engine).await;
    app.add_owner_and_api("alice@example.com").await;
    let issuer = Issuer::start().await;
    let added = add_federation(&app, "deploy", &issuer, "alice@example.com").await;
    let client_id = added["client_id"].as_str().unwrap().to_owned();
    let good = issuer.token().await;
    let kid = jsonwebtoken::decode_header(&good).unwrap().kid.unwrap();
    let later = chrono::Utc::now().timestamp() + 7200;
    // Long-lived tokens: the clock moves past each throttle window.
    let mint = |request: Value| {
        let mut request = request;
        if request["claims"]["exp"].is_null() && request["remove"].is_null() {
            request["claims"]["exp"] = later.into();
        }
        let issuer = &issuer;
        async move { issuer.mint(request).await }
    };
    let now = chrono::Utc::now().timestamp();
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "another subject",
            mint(json!({"claims": {"sub": "repo:acme/app2:ref:refs/heads/main"}})).await,
            "subject does not match",
        ),
        (
            "another repository",
            mint(json!({"claims": {"sub": "repo:other/app:ref:refs/heads/main"}})).await,
            "subject does not match",
        ),
        (
            "another audience",
            mint(json!({"claims": {"aud": "https://elsewhere"}})).await,
            "audience does not match",
        ),
        (
            "a claim differs",
            mint(json!({"claims": {"repository": "acme/other"}})).await,
            "claim repository does not match",
        ),
        (
            "expired",
            mint(json!({"claims": {"exp": now - 120, "iat": now - 600, "nbf": now - 600}})).await,
            "expired",
        ),
        (
            "not yet valid",
            mint(json!({"claims": {"nbf": now + 3000}})).await,
            "not yet valid",
        ),
        ("no exp", mint(json!({"remove": ["exp"]})).await, "no exp"),
        (
            "alg none",
            mint(json!({"alg": "none"})).await,
            "algorithm not accepted: none",
        ),
        (
            "HS256",
            mint(json!({"alg": "HS256"})).await,
            "algorithm not accepted: HS256",
        ),
        (
            "jku",
            mint(json!({"header": {"jku": format!("{}/jwks", issuer.url)}})).await,
            "header jku not accepted",
        ),
        (
            "x5u",
            mint(json!({"header": {"x5u": "https://example.com/cert"}})).await,
            "header x5u not accepted",
        ),
        (
            "jwk",
            mint(json!({"header": {"jwk": {"kty": "EC"}}})).await,
            "header jwk not accepted",
        ),
        (
            "x5c",
            mint(json!({"header": {"x5c": ["MIIB"]}})).await,
            "header x5c not accepted",
        ),
        (
            "another issuer",
            mint(json!({"claims": {"iss": "https://token.actions.githubusercontent.com"}})).await,
            "issuer does not match",
        ),
        (
            "another key, its kid",
            mint(json!({"key": "foreign"})).await,
            "unknown signing key",
        ),
        (
            "another key, our kid",
            mint(json!({"key": "foreign", "header": {"kid": kid}})).await,
            "signature does not verify",
        ),
        ("not a JWT", "not.a.jwt".to_owned(), "malformed"),
    ];
    // The pattern's `*` matches any run: another branch is accepted.
    let branch = mint(json!({"claims": {"sub": "repo:acme/app:ref:refs/heads/release/1.2"}})).await;
    assert_eq!(exchange(&app, &client_id, &branch).await.status(), 200);

    for (what, token, reason) in &cases {
        // Past the failure throttle's window (5 a minute per client ID).
        app.advance_clock(chrono::Duration::seconds(61));
        let response = exchange(&app, &client_id, token).await;
        assert_eq!(response.status(), 400, "{what}");
        assert_not_accepted(response).await;
        let got = last_refusal_reason(&app);
        assert!(got.contains(reason), "{what}: {got:?} lacks {reason:?}");
    }
    let refusals = audited(&app, "federation.exchange_refused");
    assert_eq!(refusals.len(), cases.len());
    let wrong_sub = &refusals[0];
    assert_eq!(wrong_sub["sub"], "repo:acme/app2:ref:refs/heads/main");
    assert_eq!(wrong_sub["iss"], issuer.url);
    assert_eq!(wrong_sub["verified"], true);
    assert_eq!(wrong_sub["federation"], "deploy");
    let none = &refusals[7];
    assert_eq!(none["verified"], false);
    // Never the token itself.
    let everything = serde_json::to_string(&refusals).unwrap();
    assert!(!everything.contains(&cases[0].1));

    // A prober is throttled like client authentication.
    app.advance_clock(chrono::Duration::seconds(61));
    for _ in 0..5 {
        assert_not_accepted(exchange(&app, &client_id, &cases[0].1).await).await;
    }
    let throttled = exchange(&app, &client_id, &good).await;
    assert_eq!(throttled.status(), 429);
}

async fn the_issuer_rotating_its_key_or_going_down(engine: Engine) {
    let app = spawn_app(engine).await;
    app.add_owner_and_api("alice@example.com").await;
    let mut issuer = Issuer::start().await;
    let added = add_federation(&app, "deploy", &issuer, "alice@example.com").await;
    let client_id = added["client_id"].as_str().unwrap().to_owned();
    assert_eq!(
        exchange(&app, &client_id, &issuer.token().await)
            .await
            .status(),
        200
    );
    assert_eq!(
        exchange(&app, &client_id, &issuer.token().await)
            .await
            .status(),
        200
    );
    assert_eq!(issuer.jwks_fetches().await, 1, "cached");

    // A new key at the issuer: its kid is unknown until the next refresh,
    // which an unknown kid brings at most every 10 s.
    issuer.rotate().await;
    let rotated = issuer.token().await;
    assert_not_accepted(exchange(&app, &client_id, &rotated).await).await;
    assert!(last_refusal_reason(&app).contains("unknown signing key"));
    app.advance_clock(chrono::Duration::seconds(5));
    assert_not_accepted(exchange(&app, &client_id, &rotated).await).await;
    assert_eq!(issuer.jwks_fetches().await, 1, "at most once every 10 s");
    app.advance_clock(chrono::Duration::seconds(6));
    assert_eq!(exchange(&app, &client_id, &rotated).await.status(), 200);
    assert_eq!(issuer.jwks_fetches().await, 2);

    // Down: the keys already fetched keep working; an unknown kid fails
    // fast, not after a hang.
    let foreign = issuer.mint(json!({"key": "foreign"})).await;
    let still = issuer.token().await;
    issuer.stop().await;
    assert_eq!(exchange(&app, &client_id, &still).await.status(), 200);
    app.advance_clock(chrono::Duration::seconds(11));
    let started = Instant::now();
    assert_not_accepted(exchange(&app, &client_id, &foreign).await).await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(
        last_refusal_reason(&app).contains("unavailable"),
        "{}",
        last_refusal_reason(&app)
    );
    assert_eq!(
        exchange(&app, &client_id, &still).await.status(),
        200,
        "stale keys serve"
    );
    // Long past the cache's lifetime, with the issuer still down: nothing.
    app.advance_clock(chrono::Duration::minutes(75));
    let started = Instant::now();
    assert_not_accepted(exchange(&app, &client_id, &still).await).await;
    assert!(started.elapsed() < Duration::from_secs(3));
}

async fn a_huge_slow_or_redirecting_issuer_costs_bounded_time(engine: Engine) {
    let app = TestApp::builder(engine)
        .config(|config| config.federation_tuning.timeout = Duration::from_millis(1500))
        .start()
        .await;
    app.add_owner_and_api("alice@example.com").await;
    let bad = Issuer::start().await;
    let good = Issuer::start().await;
    let troubled = add_federation(&app, "troubled", &bad, "alice@example.com").await;
    let healthy = add_federation(&app, "healthy", &good, "alice@example.com").await;
    let (troubled, healthy) = (
        troubled["client_id"].as_str().unwrap().to_owned(),
        healthy["client_id"].as_str().unwrap().to_owned(),
    );
    let token = bad.token().await;

    bad.mode("huge", 0.0).await;
    assert_not_accepted(exchange(&app, &troubled, &token).await).await;
    let reason = last_refusal_reason(&app);
    assert!(reason.contains("larger than"), "{reason}");

    // Slow: the fetch gives up at the deadline, and another issuer's
    // workloads are served meanwhile.
    app.advance_clock(chrono::Duration::seconds(11));
    bad.mode("slow", 5.0).await;
    let started = Instant::now();
    let slow = exchange(&app, &troubled, &token);
    let other = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let at = Instant::now();
        let response = exchange(&app, &healthy, &good.token().await).await;
        (response.status(), at.elapsed())
    };
    let (slow, (status, took)) = tokio::join!(slow, other);
    assert_not_accepted(slow).await;
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(4), "{elapsed:?}");
    assert_eq!(status, 200);
    assert!(
        took < Duration::from_secs(1),
        "another issuer waited {took:?}"
    );
    let reasons: Vec<String> = audited(&app, "federation.exchange_refused")
        .iter()
        .map(|d| d["reason"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        reasons.last().unwrap().contains("unavailable"),
        "{reasons:?}"
    );

    // A redirect to another host is not followed.
    app.advance_clock(chrono::Duration::seconds(11));
    bad.mode("redirect", 0.0).await;
    assert_not_accepted(exchange(&app, &troubled, &token).await).await;
    let reason = last_refusal_reason(&app);
    assert!(reason.contains("302"), "{reason}");

    // Healthy again: served at the next refresh.
    app.advance_clock(chrono::Duration::seconds(11));
    bad.mode("normal", 0.0).await;
    assert_eq!(exchange(&app, &troubled, &token).await.status(), 200);
}

async fn federations_add_refuses_what_it_must(engine: Engine) {
    let app = spawn_app(engine).await;
    app.add_owner_and_api("alice@example.com").await;
    let issuer = "http://127.0.0.1:9";
    let base = |subject: &'static str, issuer: &'static str| {
        vec![
            "federations",
            "add",
            "ci",
            "--issuer",
            issuer,
            "--subject",
            subject,
            "--owner",
            "alice@example.com",
            "--scopes",
            "read",
        ]
    };
    let star = app.cli(&base("*", issuer)).await;
    assert_one_line_refusal(&star, &["only `*`"]);
    let stars = app.cli(&base("**", issuer)).await;
    assert_one_line_refusal(&stars, &["only `*`"]);
    let empty = app.cli(&base("", issuer)).await;
    assert_one_line_refusal(&empty, &["empty"]);
    let plain_http = app
        .cli(&base("repo:acme/app:*", "http://issuer.example.com"))
        .await;
    assert_one_line_refusal(&plain_http, &["https"]);
    let mut claim = base("repo:acme/app:*", issuer);
    claim.extend(["--claim", "repository"]);
    assert_one_line_refusal(&app.cli(&claim).await, &["NAME=VALUE"]);
    let mut reserved = base("repo:acme/app:*", issuer);
    reserved.extend(["--claim", "sub=x"]);
    assert_one_line_refusal(&app.cli(&reserved).await, &["sub"]);
    let mut scope = base("repo:acme/app:*", issuer);
    scope[10] = "admin:everything";
    assert_one_line_refusal(&app.cli(&scope).await, &["admin:everything"]);
    let nobody = app
        .cli(&[
            "federations",
            "add",
            "ci",
            "--issuer",
            issuer,
            "--subject",
            "repo:a/b:*",
            "--owner",
            "nobody@example.com",
            "--scopes",
            "read",
        ])
        .await;
    assert!(!nobody.status.success());
    assert_eq!(app.count_rows("SELECT COUNT(*) AS n FROM federations"), 0);
    assert_eq!(
        app.count_rows("SELECT COUNT(*) AS n FROM api_keys"),
        0,
        "nothing half-made"
    );

    app.cli_ok(&base("repo:acme/app:*", issuer)).await;
    let again = app.cli(&base("repo:acme/other:*", issuer)).await;
    assert_one_line_refusal(&again, &["exists"]);
    assert_eq!(app.count_rows("SELECT COUNT(*) AS n FROM api_keys"), 1);
    let unknown = app.cli(&["federations", "remove", "nope"]).await;
    assert_one_line_refusal(&unknown, &["nope"]);
}

async fn revocation_and_a_disabled_owner_stop_the_exchange_on_another_process(engine: Engine) {
    let app = TestApp::builder(engine).prepare();
    app.add_owner_and_api("alice@example.com").await;
    let issuer = Issuer::start().await;
    let added = add_federation(&app, "deploy", &issuer, "alice@example.com").await;
    let client_id = added["client_id"].as_str().unwrap().to_owned();
    let serve = Serve::start(&app, &[("RUST_LOG", "warn")]).await;
    let token_url = serve.url("/oauth/token");
    let http = reqwest::Client::new();
    let token = issuer.token().await;
    let ok = exchange_at(&http, &token_url, &client_id, &token).await;
    assert_eq!(ok.status(), 200);

    app.cli_ok(&["users", "disable", "alice@example.com"]).await;
    let refused = exchange_at(&http, &token_url, &client_id, &token).await;
    crate::helpers::assert_invalid_client(refused).await;
    app.cli_ok(&["users", "enable", "alice@example.com"]).await;
    let back = exchange_at(&http, &token_url, &client_id, &token).await;
    assert_eq!(back.status(), 200);

    app.cli_ok(&["keys", "revoke", &client_id]).await;
    let revoked = exchange_at(&http, &token_url, &client_id, &token).await;
    crate::helpers::assert_invalid_client(revoked).await;
    drop(serve);
}

async fn admins_manage_federations_through_the_api(engine: Engine) {
    use crate::helpers::KeySpec;
    use reqwest::Method;
    let app = spawn_app(engine).await;
    app.add_user("root@example.com", "admin").await;
    app.add_owner_and_api("alice@example.com").await;
    app.set_role("self-service", "keygate:keys read").await;
    app.add_user("bob@example.com", "self-service").await;
    let admin_key = app
        .create_key(KeySpec::new("root@example.com", "admin").scopes("keygate:admin"))
        .await;
    let bob_key = app
        .create_key(KeySpec::new("bob@example.com", "self").scopes("keygate:keys"))
        .await;
    let admin = app.token_string(&admin_key).await;
    let bob = app.token_string(&bob_key).await;
    let issuer = Issuer::start().await;
    let body = |subject: &str| {
        json!({
            "name": "deploy",
            "issuer": issuer.url,
            "subject": subject,
            "claims": {"repository": "acme/app"},
            "owner": "alice@example.com",
            "scopes": ["read"],
            "resources": [API],
        })
    };

    app.api_refused(
        (Method::POST, "/federations", Some(body("repo:acme/app:*"))),
        &bob,
        (403, "insufficient_scope"),
    )
    .await;
    let message = app
        .api_refused(
            (Method::POST, "/federations", Some(body("*"))),
            &admin,
            (422, "invalid_subject"),
        )
        .await;
    assert!(message.contains("only `*`"), "{message}");
    let mut plain = body("repo:acme/app:*");
    plain["issuer"] = "http://issuer.example.com".into();
    app.api_refused(
        (Method::POST, "/federations", Some(plain)),
        &admin,
        (422, "invalid_issuer"),
    )
    .await;

    let created = app
        .api_expect(
            Method::POST,
            &admin,
            "/federations",
            Some(body("repo:acme/app:*")),
            201,
        )
        .await;
    assert_eq!(created["name"], "deploy");
    assert_eq!(created["subject"], "repo:acme/app:*");
    // The default audience: keygate's issuer.
    assert_eq!(created["audience"], app.issuer);
    assert_eq!(created["owner"], "alice@example.com");
    assert_eq!(created["status"], "active");
    let client_id = created["client_id"].as_str().unwrap().to_owned();
    app.api_refused(
        (
            Method::POST,
            "/federations",
            Some(body("repo:acme/other:*")),
        ),
        &admin,
        (409, "federation_exists"),
    )
    .await;

    let token = issuer.mint(json!({"claims": {"aud": app.issuer}})).await;
    assert_eq!(exchange(&app, &client_id, &token).await.status(), 200);

    let list = app
        .api_expect(Method::GET, &admin, "/federations", None, 200)
        .await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    let one = app
        .api_expect(Method::GET, &admin, "/federations/deploy", None, 200)
        .await;
    assert_eq!(one["client_id"], client_id);
    let key = app
        .api_expect(
            Method::GET,
            &admin,
            &format!("/keys/{client_id}"),
            None,
            200,
        )
        .await;
    assert_eq!(key["auth_method"], "federation");
    app.api_refused(
        (Method::GET, "/federations", None),
        &bob,
        (403, "insufficient_scope"),
    )
    .await;

    app.api_expect(Method::DELETE, &admin, "/federations/deploy", None, 204)
        .await;
    app.api_refused(
        (Method::GET, "/federations/deploy", None),
        &admin,
        (404, "federation_not_found"),
    )
    .await;
    crate::helpers::assert_invalid_client(exchange(&app, &client_id, &token).await).await;
}

async fn a_teams_exact_federation_stops_with_its_team(engine: Engine) {
    let app = spawn_app(engine).await;
    app.add_owner_and_api("alice@example.com").await;
    app.add_team("platform", "member", &["alice@example.com"])
        .await;
    let issuer = Issuer::start().await;
    let added = app
        .cli_ok(&[
            "federations",
            "add",
            "main-only",
            "--issuer",
            &issuer.url,
            "--subject",
            SUBJECT,
            "--audience",
            "keygate",
            "--team",
            "platform",
            "--scopes",
            "read",
            "--json",
        ])
        .await
        .json();
    assert_eq!(added["team"], "platform");
    assert_eq!(added["owner"], Value::Null);
    let client_id = added["client_id"].as_str().unwrap().to_owned();
    assert_eq!(
        exchange(&app, &client_id, &issuer.token().await)
            .await
            .status(),
        200
    );
    // Exact: another branch of the same repository is not trusted.
    let branch = issuer
        .mint(json!({"claims": {"sub": "repo:acme/app:ref:refs/heads/dev"}}))
        .await;
    assert_not_accepted(exchange(&app, &client_id, &branch).await).await;

    app.cli_ok(&["teams", "disable", "platform"]).await;
    let refused = exchange(&app, &client_id, &issuer.token().await).await;
    crate::helpers::assert_invalid_client(refused).await;
    app.cli_ok(&["teams", "enable", "platform"]).await;
    assert_eq!(
        exchange(&app, &client_id, &issuer.token().await)
            .await
            .status(),
        200
    );
}

both_engines!(
    an_exchange_gives_the_federated_key_a_token,
    every_refused_subject_token_looks_the_same,
    the_issuer_rotating_its_key_or_going_down,
    a_huge_slow_or_redirecting_issuer_costs_bounded_time,
    federations_add_refuses_what_it_must,
    revocation_and_a_disabled_owner_stop_the_exchange_on_another_process,
    admins_manage_federations_through_the_api,
    a_teams_exact_federation_stops_with_its_team,
);
