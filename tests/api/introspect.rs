//! `POST /oauth/introspect` (RFC 7662) and `POST /oauth/revoke` (RFC 7009):
//! every case on SQLite and PostgreSQL.

use std::time::Duration;

use keygate::jobs::Job;
use serde_json::{Value, json};

use crate::both_engines;
use crate::helpers::serve::Serve;
use crate::helpers::{
    Engine, Key, KeySpec, TestApp, assert_invalid_client, assert_oauth_error, at_jwt_header,
    foreign_key_pair, payload_of, sign_token, spawn_app, with_payload,
};

const API: &str = "https://api.example.com";
const INACTIVE: fn() -> Value = || json!({"active": false});

async fn active_token_introspects_with_every_claim(engine: Engine) {
    let app = spawn_app(engine).await;
    let key = app.standard_key("read write").await;
    let token = app.token_string(&key).await;
    let claims = payload_of(&token);
    let body = app.introspect_ok(&key, &token).await;
    assert_eq!(
        body,
        json!({
            "active": true,
            "scope": "read write",
            "client_id": key.client_id,
            "sub": key.client_id,
            "aud": API,
            "iss": app.issuer,
            "exp": claims["exp"],
            "iat": claims["iat"],
            "jti": claims["jti"],
            "token_type": "Bearer",
        })
    );
}

/// Introspection answers the token's scope, narrowed to its audience, not
/// everything the key holds.
async fn introspection_shows_the_narrowed_scope(engine: Engine) {
    let app = spawn_app(engine).await;
    app.add_user("root@example.com", "admin").await;
    app.add_api(API, "A", "read write").await;
    app.add_api("https://billing.example.com", "B", "bill")
        .await;
    let key = app
        .create_key(
            KeySpec::new("root@example.com", "wide").scopes("write bill keygate:introspect"),
        )
        .await;
    let body: Value = app
        .token_for(
            &key,
            &[("grant_type", "client_credentials"), ("resource", API)],
        )
        .await
        .json()
        .await
        .unwrap();
    let token = body["access_token"].as_str().unwrap();
    let answer = app.introspect_ok(&key, token).await;
    assert_eq!(answer["scope"], "write");
    assert_eq!(answer["aud"], API);
}

async fn client_secret_post_and_hint_are_accepted(engine: Engine) {
    let app = spawn_app(engine).await;
    let key = app.standard_key("read").await;
    let token = app.token_string(&key).await;
    let response = app
        .http
        .post(format!("{}/oauth/introspect", app.address))
        .form(&[
            ("token", token.as_str()),
            ("token_type_hint", "access_token"),
            ("client_id", key.client_id.as_str()),
            ("client_secret", key.client_secret.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["active"], true);
}

async fn expired_token_is_inactive(engine: Engine) {
    let app = TestApp::builder(engine)
        .vars(&[("KEYGATE_TOKEN_TTL", "1s")])
        .start()
        .await;
    let key = app.standard_key("read").await;
    let token = app.token_string(&key).await;
    app.advance_clock(chrono::Duration::minutes(1));
    assert_eq!(app.introspect_ok(&key, &token).await, INACTIVE());
}

async fn malformed_tokens_are_inactive(engine: Engine) {
    let app = spawn_app(engine).await;
    let key = app.standard_key("read").await;
    for token in [
        "garbage",
        "a.b.c",
        "....",
        "eyJhbGciOiJub25lIn0.e30.",
        "kg_x",
    ] {
        assert_eq!(app.introspect_ok(&key, token).await, INACTIVE(), "{token}");
    }
}

async fn tampered_payload_is_inactive(engine: Engine) {
    let app = spawn_app(engine).await;
    let key = app.standard_key("read").await;
    let token = app.token_string(&key).await;
    let mut claims = payload_of(&token);
    claims["scope"] = "read write".into();
    let tampered = with_payload(&token, &claims);
    assert_eq!(app.introspect_ok(&key, &tampered).await, INACTIVE());
    // The untouched token is still fine.
    assert_eq!(app.introspect_ok(&key, &token).await["active"], true);
}

async fn foreign_signed_tokens_are_inactive(engine: Engine) {
    let app = spawn_app(engine).await;
    let key = app.standard_key("read").await;
    let token = app.token_string(&key).await;
    let claims = payload_of(&token);
    let (kid, _) = app.server_signing_key();
    let foreign = foreign_key_pair(keygate::signing::SigningAlg::Es256);
    // A known kid with a signature by another key.
    let known_kid = sign_token(&foreign, &at_jwt_header(&foreign, &kid), &claims);
    assert_eq!(app.introspect_ok(&key, &known_kid).await, INACTIVE());
    // An unknown kid.
    let unknown_kid = sign_token(&foreign, &at_jwt_header(&foreign, "someone-else"), &claims);
    assert_eq!(app.introspect_ok(&key, &unknown_kid).await, INACTIVE());
}

/// Signed by the real key, but wrong in one claim or header field each.
async fn validly_signed_but_invalid_tokens_are_inactive(engine: Engine) {
    let app = spawn_app(engine).await;
    let key = app.standard_key("read").await;
    let (kid, pair) = app.server_signing_key();
    let header = at_jwt_header(&pair, &kid);
    let good = app.claims_for(&key, API);
    let signed = sign_token(&pair, &header, &good);
    assert_eq!(app.introspect_ok(&key, &signed).await["active"], true);

    let now = chrono::Utc::now().timestamp();
    let mut cases: Vec<(&str, Value, Value)> = Vec::new();
    let mut wrong_iss = good.clone();
    wrong_iss["iss"] = "https://evil.example.com".into();
    cases.push(("wrong iss", header.clone(), wrong_iss));
    let mut future = good.clone();
    future["nbf"] = (now + 300).into();
    cases.push(("nbf in the future", header.clone(), future));
    let mut expired = good.clone();
    expired["exp"] = (now - 1).into();
    cases.push(("expired", header.clone(), expired));
    let mut no_jti = good.clone();
    no_jti.as_object_mut().unwrap().remove("jti");
    cases.push(("no jti", header.clone(), no_jti));
    let mut jwt_typ = header.clone();
    jwt_typ["typ"] = "JWT".into();
    cases.push(("typ JWT", jwt_typ, good.clone()));
    for (case, header, claims) in cases {
        let token = sign_token(&pair, &header, &claims);
        assert_eq!(app.introspect_ok(&key, &token).await, INACTIVE(), "{case}");
    }
}

async fn tokens_of_a_revoked_key_are_inactive(engine: Engine) {
    let app = spawn_app(engine).await;
    let key = app.standard_key("read").await;
    let introspector = app.introspector_key().await;
    let token = app.token_string(&key).await;
    assert_eq!(
        app.introspect_ok(&introspector, &token).await["active"],
        true
    );
    app.cli_ok(&["keys", "revoke", &key.client_id]).await;
    assert_eq!(app.introspect_ok(&introspector, &token).await, INACTIVE());
}

async fn tokens_of_an_expired_key_are_inactive(engine: Engine) {
    let app = spawn_app(engine).await;
    app.standard_key("read").await;
    let key = app
        .create_key(
            KeySpec::new("alice@example.com", "short")
                .scopes("read")
                .expires_in("3s")
                .audience(API),
        )
        .await;
    let introspector = app.introspector_key().await;
    let token = app.token_string(&key).await;
    assert_eq!(
        app.introspect_ok(&introspector, &token).await["active"],
        true
    );
    app.advance_clock(chrono::Duration::minutes(1));
    assert_eq!(app.introspect_ok(&introspector, &token).await, INACTIVE());
}

async fn tokens_of_a_disabled_owner_are_inactive(engine: Engine) {
    let app = spawn_app(engine).await;
    let key = app.standard_key("read").await;
    let introspector = app.introspector_key().await;
    let token = app.token_string(&key).await;
    assert_eq!(
        app.introspect_ok(&introspector, &token).await["active"],
        true
    );
    app.cli_ok(&["users", "disable", "alice@example.com"]).await;
    assert_eq!(app.introspect_ok(&introspector, &token).await, INACTIVE());
}

async fn another_client_without_the_scope_sees_inactive(engine: Engine) {
    let app = spawn_app(engine).await;
    let key = app.standard_key("read").await;
    let other = app
        .create_key(
            KeySpec::new("alice@example.com", "other")
                .scopes("read write")
                .audience(API),
        )
        .await;
    let token = app.token_string(&key).await;
    assert_eq!(app.introspect_ok(&other, &token).await, INACTIVE());
    // The same caller sees its own tokens.
    let own = app.token_string(&other).await;
    assert_eq!(app.introspect_ok(&other, &own).await["active"], true);
}

async fn the_introspect_scope_sees_every_token(engine: Engine) {
    let app = spawn_app(engine).await;
    let key = app.standard_key("read").await;
    let introspector = app.introspector_key().await;
    let token = app.token_string(&key).await;
    let body = app.introspect_ok(&introspector, &token).await;
    assert_eq!(body["active"], true);
    assert_eq!(body["client_id"], key.client_id.as_str());
    assert_eq!(body["scope"], "read");
}

async fn introspection_requires_a_token(engine: Engine) {
    let app = spawn_app(engine).await;
    let key = app.standard_key("read").await;
    let response = app
        .http
        .post(format!("{}/oauth/introspect", app.address))
        .basic_auth(&key.client_id, Some(&key.client_secret))
        .form(&[("token_type_hint", "access_token")])
        .send()
        .await
        .unwrap();
    assert_oauth_error(response, 400, "invalid_request").await;
    let repeated = app
        .http
        .post(format!("{}/oauth/introspect", app.address))
        .basic_auth(&key.client_id, Some(&key.client_secret))
        .form(&[("token", "a"), ("token", "b")])
        .send()
        .await
        .unwrap();
    assert_oauth_error(repeated, 400, "invalid_request").await;
}

async fn introspection_requires_client_authentication(engine: Engine) {
    let app = spawn_app(engine).await;
    let mut key = app.standard_key("read").await;
    let token = app.token_string(&key).await;
    let anonymous = app
        .http
        .post(format!("{}/oauth/introspect", app.address))
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_invalid_client(anonymous).await;
    key.client_secret.push('x');
    assert_invalid_client(app.introspect(&key, &token).await).await;
    assert_invalid_client(app.revoke(&key, &token).await).await;
}

/// The throttle of the token endpoint covers introspection and revocation.
async fn failed_authentications_are_throttled(engine: Engine) {
    let app = spawn_app(engine).await;
    let mut key = app.standard_key("read").await;
    let token = app.token_string(&key).await;
    let secret = std::mem::replace(&mut key.client_secret, "kgs_wrong".into());
    // Five failures, as at the token endpoint, counted across both endpoints.
    for _ in 0..2 {
        assert_invalid_client(app.introspect(&key, &token).await).await;
        assert_invalid_client(app.revoke(&key, &token).await).await;
    }
    assert_invalid_client(app.introspect(&key, &token).await).await;
    key.client_secret = secret;
    let introspect = app.introspect(&key, &token).await;
    assert_eq!(introspect.status(), 429);
    assert!(introspect.headers().contains_key("retry-after"));
    assert_eq!(app.revoke(&key, &token).await.status(), 429);
}

async fn other_methods_are_not_allowed(engine: Engine) {
    let app = spawn_app(engine).await;
    for path in ["/oauth/introspect", "/oauth/revoke"] {
        let response = app
            .http
            .get(format!("{}{path}", app.address))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 405, "{path}");
        assert_eq!(response.headers()["allow"], "POST");
    }
}

async fn a_revoked_token_is_inactive(engine: Engine) {
    let app = spawn_app(engine).await;
    let key = app.standard_key("read").await;
    let token = app.token_string(&key).await;
    let sibling = app.token_string(&key).await;
    let response = app.revoke(&key, &token).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    assert!(response.bytes().await.unwrap().is_empty());
    assert_eq!(app.introspect_ok(&key, &token).await, INACTIVE());
    // Only that token: another of the same key stays active.
    assert_eq!(app.introspect_ok(&key, &sibling).await["active"], true);

    // Idempotent, and audited once.
    assert_eq!(app.revoke(&key, &token).await.status(), 200);
    assert_eq!(
        app.count_rows("SELECT COUNT(*) AS n FROM revoked_tokens"),
        1
    );
    let jti = payload_of(&token)["jti"].as_str().unwrap().to_owned();
    assert_eq!(
        app.count_rows(&format!(
            "SELECT COUNT(*) AS n FROM audit_events WHERE action = 'token.revoked' \
             AND target = '{jti}' AND actor = '{}'",
            key.client_id
        )),
        1
    );
}

async fn revoking_another_clients_token_is_refused(engine: Engine) {
    let app = spawn_app(engine).await;
    let key = app.standard_key("read").await;
    let other = app
        .create_key(
            KeySpec::new("alice@example.com", "other")
                .scopes("read")
                .audience(API),
        )
        .await;
    let token = app.token_string(&key).await;
    let body =
        assert_oauth_error(app.revoke(&other, &token).await, 400, "unauthorized_client").await;
    assert!(body["error_description"].is_string());
    assert_eq!(app.introspect_ok(&key, &token).await["active"], true);
    assert_eq!(
        app.count_rows("SELECT COUNT(*) AS n FROM revoked_tokens"),
        0
    );
}

async fn revoking_unknown_garbage_or_expired_tokens_succeeds(engine: Engine) {
    // A minute's lifetime, the clock moved two: the first token is expired,
    // the one issued after lives long enough for a loaded machine (with 1 s,
    // and `exp` counted from the second `iat` was truncated to, the live
    // token sometimes expired before its revocation reached the server).
    let app = TestApp::builder(engine)
        .vars(&[("KEYGATE_TOKEN_TTL", "60s")])
        .start()
        .await;
    let key = app.standard_key("read").await;
    let expired = app.token_string(&key).await;
    app.advance_clock(chrono::Duration::minutes(2));
    let foreign = foreign_key_pair(keygate::signing::SigningAlg::Es256);
    let forged = sign_token(
        &foreign,
        &at_jwt_header(&foreign, "unknown"),
        &app.claims_for(&key, API),
    );
    for token in ["garbage", "a.b.c", expired.as_str(), forged.as_str()] {
        let response = app.revoke(&key, token).await;
        assert_eq!(response.status(), 200, "{token}");
    }
    // A refresh_token hint is ignored: there are none, and the search goes on.
    let live = app.token_string(&key).await;
    let response = app
        .http
        .post(format!("{}/oauth/revoke", app.address))
        .basic_auth(&key.client_id, Some(&key.client_secret))
        .form(&[
            ("token", live.as_str()),
            ("token_type_hint", "refresh_token"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        app.count_rows("SELECT COUNT(*) AS n FROM revoked_tokens"),
        1
    );
    let missing = app
        .http
        .post(format!("{}/oauth/revoke", app.address))
        .basic_auth(&key.client_id, Some(&key.client_secret))
        .form(&[("token_type_hint", "access_token")])
        .send()
        .await
        .unwrap();
    assert_oauth_error(missing, 400, "invalid_request").await;
}

/// Rows outlive their token only until its expiry.
async fn revoked_rows_are_pruned_after_expiry(engine: Engine) {
    let app = TestApp::builder(engine)
        .vars(&[("KEYGATE_TOKEN_TTL", "1m")])
        .start()
        .await;
    let key = app.standard_key("read").await;
    let token = app.token_string(&key).await;
    assert_eq!(app.revoke(&key, &token).await.status(), 200);
    let exp = payload_of(&token)["exp"].as_i64().unwrap();
    let at = |t: i64| chrono::DateTime::from_timestamp(t, 0).unwrap();
    let mut conn = app.db();
    assert_eq!(
        keygate::http::oauth::revoke::prune_revoked_tokens(&mut conn, at(exp - 1)).unwrap(),
        0
    );
    assert!(
        keygate::http::oauth::revoke::is_revoked(
            &mut conn,
            payload_of(&token)["jti"].as_str().unwrap()
        )
        .unwrap()
    );
    assert_eq!(
        keygate::http::oauth::revoke::prune_revoked_tokens(&mut conn, at(exp)).unwrap(),
        1
    );
    assert_eq!(
        keygate::http::oauth::revoke::count_revoked_tokens(&mut conn).unwrap(),
        0
    );
}

/// The prune job drops a revocation once its token has expired by the
/// server's clock, and not before.
async fn the_prune_job_drops_revocations_of_expired_tokens(engine: Engine) {
    let app = TestApp::builder(engine)
        .vars(&[("KEYGATE_TOKEN_TTL", "1m")])
        .start()
        .await;
    let key = app.standard_key("read").await;
    let token = app.token_string(&key).await;
    assert_eq!(app.revoke(&key, &token).await.status(), 200);
    let revoked = "SELECT COUNT(*) AS n FROM revoked_tokens";
    app.run_job(Job::RevokedTokensPrune).await;
    assert_eq!(app.count_rows(revoked), 1);
    app.advance_clock(chrono::Duration::minutes(2));
    app.run_job(Job::RevokedTokensPrune).await;
    assert_eq!(app.count_rows(revoked), 0);
}

/// The background task prunes on its own, first right at start-up.
async fn a_restart_prunes_expired_revocations(engine: Engine) {
    // A lifetime no busy machine outlasts between issue and revocation (an
    // expired token is not recorded); the clock then moves past it.
    let app = TestApp::builder(engine)
        .vars(&[("KEYGATE_TOKEN_TTL", "1m")])
        .start()
        .await;
    let key = app.standard_key("read").await;
    let token = app.token_string(&key).await;
    assert_eq!(app.revoke(&key, &token).await.status(), 200);
    assert_eq!(
        app.count_rows("SELECT COUNT(*) AS n FROM revoked_tokens"),
        1
    );
    app.advance_clock(chrono::Duration::minutes(2));
    app.spawn_sibling().await;
    wait_until_pruned(&app).await;
}

/// Real time, not the clock: the sibling's prune runs on its own task as it
/// starts, and this waits for that task, however busy the machine.
async fn wait_until_pruned(app: &TestApp) {
    for _ in 0..50 {
        if app.count_rows("SELECT COUNT(*) AS n FROM revoked_tokens") == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("expired revocations were not pruned");
}

/// Each process keeps the key a token was issued from between
/// introspections; a change committed elsewhere (the CLI, the other
/// process) still bites on the very next introspection on every process.
async fn changes_elsewhere_bite_on_the_next_introspection_everywhere(engine: Engine) {
    let app = TestApp::builder(engine).prepare();
    // Behind one load balancer: one issuer.
    let issuer = [("KEYGATE_ISSUER", "https://keygate.example.com")];
    let (one, two) = tokio::join!(Serve::start(&app, &issuer), Serve::start(&app, &issuer));
    let introspector = app.introspector_key().await;
    let key = app.standard_key("read").await;
    let post = |url: String, caller: &Key, form: Vec<(&'static str, String)>| {
        app.http
            .post(url)
            .basic_auth(&caller.client_id, Some(&caller.client_secret))
            .form(&form)
            .send()
    };
    let issue = || {
        let request = post(
            one.url("/oauth/token"),
            &key,
            vec![("grant_type", "client_credentials".to_owned())],
        );
        async move {
            let body = request.await.unwrap().json::<Value>().await.unwrap();
            body["access_token"].as_str().unwrap().to_owned()
        }
    };
    let token = issue().await;
    let active = |token: String| {
        let requests = [&one, &two].map(|serve| {
            post(
                serve.url("/oauth/introspect"),
                &introspector,
                vec![("token", token.clone())],
            )
        });
        async move {
            let mut seen = Vec::new();
            for request in requests {
                let response = request.await.unwrap();
                assert_eq!(response.status(), 200);
                seen.push(response.json::<Value>().await.unwrap()["active"] == true);
            }
            seen
        }
    };
    for _ in 0..3 {
        assert_eq!(active(token.clone()).await, [true, true]);
    }

    app.cli_ok(&["users", "disable", "alice@example.com"]).await;
    assert_eq!(
        active(token.clone()).await,
        [false, false],
        "owner disabled"
    );
    app.cli_ok(&["users", "enable", "alice@example.com"]).await;
    assert_eq!(active(token.clone()).await, [true, true], "owner enabled");

    let response = post(
        two.url("/oauth/revoke"),
        &key,
        vec![("token", token.clone())],
    )
    .await
    .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(active(token).await, [false, false], "token revoked on two");

    let another = issue().await;
    assert_eq!(active(another.clone()).await, [true, true]);
    app.cli_ok(&["keys", "revoke", &key.client_id]).await;
    assert_eq!(active(another).await, [false, false], "key revoked");
}

both_engines!(
    changes_elsewhere_bite_on_the_next_introspection_everywhere,
    introspection_shows_the_narrowed_scope,
    active_token_introspects_with_every_claim,
    client_secret_post_and_hint_are_accepted,
    expired_token_is_inactive,
    malformed_tokens_are_inactive,
    tampered_payload_is_inactive,
    foreign_signed_tokens_are_inactive,
    validly_signed_but_invalid_tokens_are_inactive,
    tokens_of_a_revoked_key_are_inactive,
    tokens_of_an_expired_key_are_inactive,
    tokens_of_a_disabled_owner_are_inactive,
    another_client_without_the_scope_sees_inactive,
    the_introspect_scope_sees_every_token,
    introspection_requires_a_token,
    introspection_requires_client_authentication,
    failed_authentications_are_throttled,
    other_methods_are_not_allowed,
    a_revoked_token_is_inactive,
    revoking_another_clients_token_is_refused,
    revoking_unknown_garbage_or_expired_tokens_succeeds,
    revoked_rows_are_pruned_after_expiry,
    a_restart_prunes_expired_revocations,
    the_prune_job_drops_revocations_of_expired_tokens,
);
