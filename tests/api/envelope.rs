//! A key's usage envelope (INTERFACE.md "Usage envelope of a key"): allowed
//! networks refuse requests from elsewhere as `invalid_client`, audited and
//! counted; the issuance limit answers 429 past N tokens a minute across
//! every server process; the last use's address and user agent are kept.

use std::time::Duration;

use chrono::Timelike;
use serde_json::{Value, json};

use crate::both_engines;
use crate::helpers::serve::Serve;
use crate::helpers::{
    Browser, Engine, Key, KeySpec, TestApp, assert_invalid_client, assert_oauth_error, client_from,
    spawn_app,
};

const CC: (&str, &str) = ("grant_type", "client_credentials");
const OWNER: &str = "alice@example.com";

async fn token_from(
    http: &reqwest::Client,
    url: &str,
    key: &Key,
    headers: &[(&str, &str)],
) -> reqwest::Response {
    let mut request = http
        .post(url)
        .basic_auth(&key.client_id, Some(&key.client_secret))
        .form(&[CC]);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap()
}

/// `keygate_token_failures_total{reason="..."}` as `/metrics` says.
async fn failures(app: &TestApp, reason: &str) -> u64 {
    let text = app
        .http
        .get(format!("{}/metrics", app.address))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let prefix = format!("keygate_token_failures_total{{reason=\"{reason}\"}} ");
    text.lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .map_or(0, |n| n.trim().parse().unwrap())
}

/// Polls `keys list --json` until the key's `field` is `expected` (the last
/// use is written in the background, after the answer).
async fn wait_for_field(app: &TestApp, client_id: &str, field: &str, expected: &Value) -> Value {
    let mut key = Value::Null;
    for _ in 0..50 {
        key = app.listed_key(client_id).await;
        if &key[field] == expected {
            return key;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{field} stayed {} instead of {expected}", key[field]);
}

/// From inside the allowed networks: a token. From outside, even with the
/// right secret: `invalid_client` exactly like a wrong secret, audited with
/// the address and counted. Lifted with `keys set --allow-from any`.
async fn requests_from_outside_the_allowed_networks_are_refused(engine: Engine) {
    let app = spawn_app(engine).await;
    let key = app
        .standard_key_with(KeySpec::standard("read").allow_from("127.0.0.1, 10.0.0.0/8"))
        .await;
    assert_eq!(
        key.json["allowed_networks"],
        json!(["127.0.0.1/32", "10.0.0.0/8"])
    );
    assert_eq!(key.json["max_tokens_per_minute"], Value::Null);
    let url = app.token_url();

    let inside = token_from(&app.http, &url, &key, &[("user-agent", "ci-runner/1.2")]).await;
    assert_eq!(inside.status(), 200);
    let listed_key =
        wait_for_field(&app, &key.client_id, "last_used_from", &json!("127.0.0.1")).await;
    assert_eq!(listed_key["last_used_user_agent"], "ci-runner/1.2");
    assert_eq!(
        listed_key["allowed_networks"],
        json!(["127.0.0.1/32", "10.0.0.0/8"])
    );

    let before = failures(&app, "network_not_allowed").await;
    let outside = client_from("127.0.0.2");
    assert_invalid_client(token_from(&outside, &url, &key, &[]).await).await;
    assert_eq!(failures(&app, "network_not_allowed").await, before + 1);
    // The audit log says why, and from where.
    let audited = app.count_rows(&format!(
        "SELECT COUNT(*) AS n FROM audit_events WHERE action = 'client_auth.failed' \
         AND target = '{}' AND source_addr = '127.0.0.2' \
         AND details LIKE '%network_not_allowed%'",
        key.client_id
    ));
    assert_eq!(audited, 1);
    // Its failed request did not move the last use.
    assert_eq!(
        app.listed_key(&key.client_id).await["last_used_from"],
        "127.0.0.1"
    );
    // Introspection and revocation authenticate the same way.
    let introspected = outside
        .post(format!("{}/oauth/introspect", app.address))
        .basic_auth(&key.client_id, Some(&key.client_secret))
        .form(&[("token", "x")])
        .send()
        .await
        .unwrap();
    assert_invalid_client(introspected).await;

    let lifted = app
        .cli_ok(&[
            "keys",
            "set",
            &key.client_id,
            "--allow-from",
            "any",
            "--json",
        ])
        .await
        .json();
    assert_eq!(lifted["allowed_networks"], json!([]));
    // A use from another address is recorded once the last record is a
    // second old (at most a write a second, whatever the addresses do).
    app.advance_clock(chrono::Duration::seconds(2));
    assert_eq!(token_from(&outside, &url, &key, &[]).await.status(), 200);
    wait_for_field(&app, &key.client_id, "last_used_from", &json!("127.0.0.2")).await;
    let changes = app.count_rows(&format!(
        "SELECT COUNT(*) AS n FROM audit_events WHERE action = 'key.updated' AND target = '{}'",
        key.client_id
    ));
    assert_eq!(changes, 1);
}

/// Behind a trusted proxy the forwarded address is the one that counts,
/// whichever loopback address the proxy itself uses.
async fn behind_a_trusted_proxy_the_forwarded_address_counts(engine: Engine) {
    let app = TestApp::builder(engine)
        .vars(&[("KEYGATE_TRUSTED_PROXIES", "127.0.0.1/32")])
        .start()
        .await;
    let key = app
        .standard_key_with(KeySpec::standard("read").allow_from("203.0.113.0/24"))
        .await;
    let url = app.token_url();

    let direct = token_from(&app.http, &url, &key, &[]).await;
    assert_invalid_client(direct).await;
    let forwarded_inside = [("x-forwarded-for", "203.0.113.9")];
    assert_eq!(
        token_from(&app.http, &url, &key, &forwarded_inside)
            .await
            .status(),
        200
    );
    wait_for_field(
        &app,
        &key.client_id,
        "last_used_from",
        &json!("203.0.113.9"),
    )
    .await;
    let forwarded_outside = [("x-forwarded-for", "198.51.100.4")];
    assert_invalid_client(token_from(&app.http, &url, &key, &forwarded_outside).await).await;
    // An untrusted peer cannot pick its address by sending the header.
    let untrusted = client_from("127.0.0.2");
    assert_invalid_client(token_from(&untrusted, &url, &key, &forwarded_inside).await).await;
}

/// Moves the app's clock to the start of the next minute, so a test's
/// requests fall in one issuance window.
fn to_next_minute(app: &TestApp) {
    let now = app.clock.now();
    let into = i64::from(now.second()) * 1000 + i64::from(now.timestamp_subsec_millis());
    app.advance_clock(chrono::Duration::milliseconds(60_000 - into + 50));
}

async fn statuses(app: &TestApp, url: &str, key: &Key, n: usize) -> Vec<u16> {
    let mut seen = Vec::with_capacity(n);
    for _ in 0..n {
        let response = token_from(&app.http, url, key, &[]).await;
        let status = response.status().as_u16();
        if status == 429 {
            let retry: u64 = response.headers()["retry-after"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!((1..=60).contains(&retry), "Retry-After {retry}");
            assert_oauth_error(response, 429, "too_many_requests").await;
        }
        seen.push(status);
    }
    seen
}

/// The limit holds for one process, is audited once and counted on each
/// refusal, follows a change at once, and opens again the next minute.
async fn the_issuance_limit_refuses_past_n_a_minute(engine: Engine) {
    let app = spawn_app(engine).await;
    let key = app
        .standard_key_with(KeySpec::standard("read").max_tokens_per_minute("3"))
        .await;
    assert_eq!(key.json["max_tokens_per_minute"], 3);
    let url = app.token_url();
    to_next_minute(&app);

    let before = failures(&app, "issuance_limited").await;
    assert_eq!(
        statuses(&app, &url, &key, 5).await,
        [200, 200, 200, 429, 429]
    );
    assert_eq!(failures(&app, "issuance_limited").await, before + 2);
    let limited = format!(
        "SELECT COUNT(*) AS n FROM audit_events WHERE action = 'key.issuance_limited' AND target = '{}'",
        key.client_id
    );
    assert_eq!(app.count_rows(&limited), 1, "one audit event a minute");

    // Raised: the new limit counts what this minute already issued.
    app.cli_ok(&[
        "keys",
        "set",
        &key.client_id,
        "--max-tokens-per-minute",
        "5",
    ])
    .await;
    assert_eq!(statuses(&app, &url, &key, 3).await, [200, 200, 429]);
    assert_eq!(app.count_rows(&limited), 2, "and once under the new limit");

    app.advance_clock(chrono::Duration::seconds(60));
    assert_eq!(
        statuses(&app, &url, &key, 6).await,
        [200, 200, 200, 200, 200, 429]
    );
    app.cli_ok(&[
        "keys",
        "set",
        &key.client_id,
        "--max-tokens-per-minute",
        "none",
    ])
    .await;
    assert_eq!(statuses(&app, &url, &key, 3).await, [200, 200, 200]);
    assert_eq!(app.count_rows(&limited), 3);
}

/// Two `keygate serve` processes on one database: together they issue at
/// most the key's limit in a minute, whichever process a request reaches.
async fn the_issuance_limit_holds_across_two_processes(engine: Engine) {
    let app = TestApp::builder(engine).prepare();
    let (one, two) = tokio::join!(Serve::start(&app, &[]), Serve::start(&app, &[]));
    app.add_user("alice@example.com", "member").await;
    app.add_standard_api().await;
    // Both processes' windows are the real clock's minutes: a run that
    // straddles two is run again, with a fresh key, in the next one.
    let mut keys = Vec::new();
    let (granted, refused) = loop {
        let key = app
            .create_key(KeySpec::standard("read").max_tokens_per_minute("4"))
            .await;
        let minute = chrono::Utc::now().timestamp().div_euclid(60);
        let mut granted = 0;
        let mut refused = 0;
        for i in 0..12 {
            let serve = if i % 2 == 0 { &one } else { &two };
            let response = token_from(&app.http, &serve.url("/oauth/token"), &key, &[]).await;
            match response.status().as_u16() {
                200 => granted += 1,
                429 => {
                    assert!(response.headers().contains_key("retry-after"));
                    refused += 1;
                }
                other => panic!("status {other}: {}", response.text().await.unwrap()),
            }
        }
        keys.push(key);
        if chrono::Utc::now().timestamp().div_euclid(60) == minute {
            break (granted, refused);
        }
    };
    assert_eq!((granted, refused), (4, 8));
    let logs = format!("{}{}", one.logs(), two.logs());
    for key in keys {
        assert!(!logs.contains(&key.client_secret));
    }
}

/// The management API sets the envelope at creation and changes it with
/// PATCH; a bad value is a 422 that changes nothing; another's key is 404.
async fn the_api_sets_and_changes_the_envelope(engine: Engine) {
    let app = spawn_app(engine).await;
    app.add_standard_api().await;
    app.add_person(OWNER, "member", "a long enough password")
        .await;
    let alice: Browser = app.sign_in(OWNER, "a long enough password").await;
    let created = TestApp::send_json(
        app.api_as(&alice, reqwest::Method::POST, "/keys", true)
            .json(&json!({
                "name": "deploy", "scopes": ["read"],
                "allowed_networks": ["192.0.2.0/24", "2001:db8::1"],
                "max_tokens_per_minute": 120,
            })),
    )
    .await;
    assert_eq!(created.0, 201, "{}", created.1);
    assert_eq!(
        created.1["allowed_networks"],
        json!(["192.0.2.0/24", "2001:db8::1/128"])
    );
    assert_eq!(created.1["max_tokens_per_minute"], 120);
    let client_id = created.1["client_id"].as_str().unwrap().to_owned();
    let path = format!("/keys/{client_id}");

    let (status, body) = TestApp::send_json(
        app.api_as(&alice, reqwest::Method::PATCH, &path, true)
            .json(&json!({ "max_tokens_per_minute": null })),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["max_tokens_per_minute"], Value::Null);
    assert_eq!(
        body["allowed_networks"],
        json!(["192.0.2.0/24", "2001:db8::1/128"])
    );

    for bad in [
        json!({ "allowed_networks": ["not a network"] }),
        json!({ "max_tokens_per_minute": 0 }),
        json!({}),
    ] {
        let (status, body) = TestApp::send_json(
            app.api_as(&alice, reqwest::Method::PATCH, &path, true)
                .json(&bad),
        )
        .await;
        assert_eq!(status, 422, "{bad}: {body}");
    }
    let (status, _) = TestApp::send_json(
        app.api_as(&alice, reqwest::Method::PATCH, &path, false)
            .json(&json!({ "allowed_networks": [] })),
    )
    .await;
    assert_eq!(status, 403, "a session needs its CSRF token");
    let unchanged = app.listed_key(&client_id).await;
    assert_eq!(
        unchanged["allowed_networks"],
        json!(["192.0.2.0/24", "2001:db8::1/128"])
    );

    app.add_person("bob@example.com", "member", "another long password")
        .await;
    let bob = app
        .sign_in("bob@example.com", "another long password")
        .await;
    let (status, _) = TestApp::send_json(
        app.api_as(&bob, reqwest::Method::PATCH, &path, true)
            .json(&json!({ "allowed_networks": [] })),
    )
    .await;
    assert_eq!(status, 404, "another's key is not found");
}

both_engines!(
    requests_from_outside_the_allowed_networks_are_refused,
    behind_a_trusted_proxy_the_forwarded_address_counts,
    the_issuance_limit_refuses_past_n_a_minute,
    the_issuance_limit_holds_across_two_processes,
    the_api_sets_and_changes_the_envelope,
);
