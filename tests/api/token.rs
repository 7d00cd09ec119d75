//! `POST /oauth/token`: every success path and every error case.

mod refusals;

use keygate::jobs::Job;
use serde_json::Value;

use crate::both_engines;
use crate::helpers::serve::Serve;
use crate::helpers::{
    Engine, Key, KeySpec, TestApp, assert_invalid_client, assert_oauth_error, client_from,
    spawn_app,
};

const API: &str = "https://api.example.com";
const CC: (&str, &str) = ("grant_type", "client_credentials");

async fn basic_auth_issues_a_token(engine: Engine) {
    let app = spawn_app(engine).await;
    let key = app.standard_key("read write").await;
    let response = app.token_for(&key, &[CC]).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    assert_eq!(response.headers()["content-type"], "application/json");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    assert_eq!(body["scope"], "read write");
    assert!(body["access_token"].as_str().unwrap().split('.').count() == 3);
}

async fn post_auth_issues_a_token(engine: Engine) {
    let app = spawn_app(engine).await;
    let key = app.standard_key("read").await;
    let response = app
        .http
        .post(app.token_url())
        .form(&[
            CC,
            ("client_id", key.client_id.as_str()),
            ("client_secret", key.client_secret.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["scope"], "read");
}

/// Node's openid-client percent-encodes `_` in Basic credentials.
async fn basic_credentials_are_form_decoded(engine: Engine) {
    let app = spawn_app(engine).await;
    let key = app.standard_key("read").await;
    let id = key.client_id.replace('_', "%5F");
    let secret = key.client_secret.replace('_', "%5F");
    let response = app.token_basic(&id, &secret, &[CC]).await;
    assert_eq!(response.status(), 200);
}

async fn token_header_and_claims_follow_rfc_9068(engine: Engine) {
    let app = spawn_app(engine).await;
    let key = app.standard_key("read write").await;
    let first = app.access_token(&key).await;
    let second = app.access_token(&key).await;
    let token = first["access_token"].as_str().unwrap();

    let header = jsonwebtoken::decode_header(token).unwrap();
    assert_eq!(header.alg, jsonwebtoken::Algorithm::ES256);
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    let kid = header.kid.clone().unwrap();
    let jwks = app.jwks().await;
    let jwk = jwks.find(&kid).expect("kid published");
    assert_eq!(jwk.common.key_id.as_deref(), Some(kid.as_str()));

    let data = app.validate(token, API).await;
    let claims = data.claims;
    assert_eq!(claims["iss"], app.issuer.as_str());
    assert_eq!(claims["sub"], key.client_id.as_str());
    assert_eq!(claims["client_id"], key.client_id.as_str());
    assert_eq!(claims["aud"], API);
    assert_eq!(claims["scope"], "read write");
    let (iat, exp) = (
        claims["iat"].as_i64().unwrap(),
        claims["exp"].as_i64().unwrap(),
    );
    assert_eq!(exp - iat, first["expires_in"].as_i64().unwrap());
    let now = chrono::Utc::now().timestamp();
    assert!((now - iat).abs() <= 5, "iat {iat} is now");
    let jti = claims["jti"].as_str().unwrap();
    assert!(!jti.is_empty());
    let other = app
        .validate(second["access_token"].as_str().unwrap(), API)
        .await;
    assert_ne!(other.claims["jti"], claims["jti"]);
}

async fn token_ttl_follows_configuration(engine: Engine) {
    let app = TestApp::builder(engine)
        .vars(&[("KEYGATE_TOKEN_TTL", "2m")])
        .start()
        .await;
    let key = app.standard_key("read").await;
    let body = app.access_token(&key).await;
    assert_eq!(body["expires_in"], 120);
    let claims = app
        .validate(body["access_token"].as_str().unwrap(), API)
        .await
        .claims;
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        120
    );
}

async fn every_signing_algorithm_validates(engine: Engine) {
    for alg in ["EdDSA", "RS256"] {
        let app = TestApp::builder(engine)
            .vars(&[("KEYGATE_SIGNING_ALG", alg)])
            .start()
            .await;
        let key = app.standard_key("read").await;
        let body = app.access_token(&key).await;
        let token = body["access_token"].as_str().unwrap();
        assert_eq!(
            format!("{:?}", jsonwebtoken::decode_header(token).unwrap().alg),
            alg
        );
        app.validate(token, API).await;
    }
}

async fn scope_parameter_down_scopes(engine: Engine) {
    let app = spawn_app(engine).await;
    let key = app.standard_key("read write").await;
    let response = app.token_for(&key, &[CC, ("scope", "read")]).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["scope"], "read");
    let claims = app
        .validate(body["access_token"].as_str().unwrap(), API)
        .await
        .claims;
    assert_eq!(claims["scope"], "read");
}

async fn scope_the_key_lacks_is_invalid_scope(engine: Engine) {
    let app = spawn_app(engine).await;
    let key = app.standard_key("read").await;
    let response = app.token_for(&key, &[CC, ("scope", "read write")]).await;
    assert_oauth_error(response, 400, "invalid_scope").await;
    let response = app.token_for(&key, &[CC, ("scope", "bad\"scope")]).await;
    assert_oauth_error(response, 400, "invalid_scope").await;
}

/// The API, a role `writer` granting its `read write`, and Bob holding it.
async fn add_writer_bob(app: &TestApp) {
    app.add_api(API, "Example", "read write").await;
    app.set_role("writer", "read write").await;
    app.add_user("bob@example.com", "writer").await;
}

/// The token carries only scopes the owner's role still grants.
async fn role_changes_narrow_the_token_scope(engine: Engine) {
    let app = spawn_app(engine).await;
    add_writer_bob(&app).await;
    let key = app
        .create_key(
            KeySpec::new("bob@example.com", "k")
                .scopes("read write")
                .audience(API),
        )
        .await;
    assert_eq!(app.access_token(&key).await["scope"], "read write");
    app.set_role("writer", "read").await;
    assert_eq!(app.access_token(&key).await["scope"], "read");
    let response = app.token_for(&key, &[CC, ("scope", "write")]).await;
    assert_oauth_error(response, 400, "invalid_scope").await;
}

async fn resource_selects_the_audience(engine: Engine) {
    let app = spawn_app(engine).await;
    app.add_user("alice@example.com", "member").await;
    app.add_api(API, "A", "read").await;
    app.add_api("https://billing.example.com", "B", "bill")
        .await;
    let key = app
        .create_key(
            KeySpec::new("alice@example.com", "two")
                .scopes("read bill")
                .audience(API)
                .audience("https://billing.example.com"),
        )
        .await;

    // Several audiences and none named: the client must choose.
    let response = app.token_for(&key, &[CC]).await;
    assert_oauth_error(response, 400, "invalid_target").await;

    for param in ["resource", "audience"] {
        let response = app
            .token_for(&key, &[CC, (param, "https://billing.example.com")])
            .await;
        assert_eq!(response.status(), 200, "{param}");
        let body: Value = response.json().await.unwrap();
        let claims = app
            .validate(
                body["access_token"].as_str().unwrap(),
                "https://billing.example.com",
            )
            .await
            .claims;
        assert_eq!(claims["aud"], "https://billing.example.com");
    }

    let response = app
        .token_for(&key, &[CC, ("resource", "https://other.example.com")])
        .await;
    assert_oauth_error(response, 400, "invalid_target").await;
    let response = app
        .token_for(
            &key,
            &[
                CC,
                ("resource", API),
                ("resource", "https://billing.example.com"),
            ],
        )
        .await;
    assert_oauth_error(response, 400, "invalid_target").await;
}

async fn key_without_audience_gets_the_issuer(engine: Engine) {
    let app = spawn_app(engine).await;
    app.add_user("root@example.com", "admin").await;
    let key = app
        .create_key(KeySpec::new("root@example.com", "admin").scopes("keygate:keys"))
        .await;
    let body = app.access_token(&key).await;
    let claims = app
        .validate(body["access_token"].as_str().unwrap(), &app.issuer)
        .await
        .claims;
    assert_eq!(claims["aud"], app.issuer.as_str());
    assert_eq!(claims["scope"], "keygate:keys");
}

const BILLING: &str = "https://billing.example.com";

/// APIs A (`read write`) and B (`bill`), an admin, and a key of theirs
/// created without `--audience` holding `read`, `bill` and
/// `keygate:introspect`.
async fn key_of_two_apis_and_keygate(app: &crate::helpers::TestApp) -> crate::helpers::Key {
    app.add_user("root@example.com", "admin").await;
    app.add_api(API, "A", "read write").await;
    app.add_api(BILLING, "B", "bill").await;
    app.create_key(KeySpec::new("root@example.com", "wide").scopes("read bill keygate:introspect"))
        .await
}

/// The token for one audience carries that audience's scopes and no other:
/// API A learns nothing of the key's rights on B or on keygate.
async fn tokens_carry_only_their_audiences_scopes(engine: Engine) {
    let app = spawn_app(engine).await;
    let key = key_of_two_apis_and_keygate(&app).await;
    assert_eq!(key.json["audiences"], serde_json::json!([API, BILLING]));
    for (audience, scope) in [
        (API, "read"),
        (BILLING, "bill"),
        (app.issuer.as_str(), "keygate:introspect"),
    ] {
        let response = app.token_for(&key, &[CC, ("resource", audience)]).await;
        assert_eq!(response.status(), 200, "{audience}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["scope"], scope, "{audience}");
        let claims = app
            .validate(body["access_token"].as_str().unwrap(), audience)
            .await
            .claims;
        assert_eq!(claims["aud"], audience);
        assert_eq!(claims["scope"], scope, "{audience}");
    }
    // Asking for a scope the key holds but the audience does not define.
    for (audience, asked) in [
        (API, "bill"),
        (API, "read bill"),
        (API, "keygate:introspect"),
        (app.issuer.as_str(), "read"),
    ] {
        let response = app
            .token_for(&key, &[CC, ("resource", audience), ("scope", asked)])
            .await;
        let body = assert_oauth_error(response, 400, "invalid_scope").await;
        assert!(
            body["error_description"]
                .as_str()
                .unwrap()
                .contains("does not belong"),
            "{body}"
        );
    }
    let response = app
        .token_for(&key, &[CC, ("resource", BILLING), ("scope", "bill")])
        .await;
    assert_eq!(response.status(), 200);
}

/// A key created without `--audience` is a key for the API its scopes
/// belong to: its tokens name that API, which accepts them.
async fn key_without_audience_is_for_its_scopes_api(engine: Engine) {
    let app = spawn_app(engine).await;
    app.add_user("alice@example.com", "member").await;
    app.add_api(API, "A", "read write").await;
    let key = app
        .create_key(KeySpec::new("alice@example.com", "k").scopes("read"))
        .await;
    assert_eq!(key.json["audiences"], serde_json::json!([API]));
    let body = app.access_token(&key).await;
    assert_eq!(body["scope"], "read");
    let claims = app
        .validate(body["access_token"].as_str().unwrap(), API)
        .await
        .claims;
    assert_eq!(claims["aud"], API);
    // Not a key for keygate's own API.
    let response = app.token_for(&key, &[CC, ("resource", &app.issuer)]).await;
    assert_oauth_error(response, 400, "invalid_target").await;
}

/// A key stored without audiences though it holds API scopes (created
/// before audiences followed from scopes) is treated as the keys created
/// now are: its audiences are the APIs of its scopes.
async fn stored_keys_without_audiences_follow_their_scopes(engine: Engine) {
    use diesel::prelude::*;
    use keygate::db::schema::api_keys;
    let app = spawn_app(engine).await;
    let key = key_of_two_apis_and_keygate(&app).await;
    diesel::update(api_keys::table.filter(api_keys::client_id.eq(&key.client_id)))
        .set(api_keys::audiences.eq(""))
        .execute(&mut app.db())
        .unwrap();
    let response = app.token_for(&key, &[CC]).await;
    assert_oauth_error(response, 400, "invalid_target").await;
    let body: Value = app
        .token_for(&key, &[CC, ("resource", BILLING)])
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["scope"], "bill");
    let body: Value = app
        .token_for(&key, &[CC, ("resource", &app.issuer)])
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["scope"], "keygate:introspect");
}

both_engines!(
    basic_auth_issues_a_token,
    post_auth_issues_a_token,
    basic_credentials_are_form_decoded,
    token_header_and_claims_follow_rfc_9068,
    token_ttl_follows_configuration,
    every_signing_algorithm_validates,
    scope_parameter_down_scopes,
    scope_the_key_lacks_is_invalid_scope,
    role_changes_narrow_the_token_scope,
    resource_selects_the_audience,
    key_without_audience_gets_the_issuer,
    tokens_carry_only_their_audiences_scopes,
    key_without_audience_is_for_its_scopes_api,
    stored_keys_without_audiences_follow_their_scopes,
);
