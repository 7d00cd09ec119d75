//! The resource-server verifier against a running keygate: what it accepts,
//! what it refuses and why, key rotation, refetch limits, online mode and
//! the actix-web extractor.

use std::net::TcpListener;
use std::time::Duration;

use actix_web::{App, HttpResponse, HttpServer, web};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use keygate::jobs::Job;
use keygate::signing::SigningAlg;
use keygate_verifier::{Algorithm, Authenticated, BearerError, ManualClock, Verifier, VerifyError};
use serde_json::{Value, json};

use crate::both_engines;
use crate::helpers::{
    Engine, Key, TestApp, at_jwt_header, foreign_key_pair, payload_of, sign_token, spawn_app,
    with_payload,
};

const API: &str = "https://api.example.com";

async fn verifier(app: &TestApp) -> Verifier {
    Verifier::builder(&app.issuer, API)
        .build()
        .await
        .expect("the verifier discovers keygate")
}

async fn a_valid_token_is_accepted(engine: Engine) {
    let app = spawn_app(engine).await;
    let key = app.standard_key("read write").await;
    let token = app.token_string(&key).await;
    let verifier = verifier(&app).await;
    let claims = verifier.verify(&token).await.expect("valid");
    let raw = payload_of(&token);
    assert_eq!(claims.iss, app.issuer);
    assert_eq!(claims.sub, key.client_id);
    assert_eq!(claims.client_id, key.client_id);
    assert_eq!(claims.aud, [API]);
    assert_eq!(claims.scope, "read write");
    assert_eq!(claims.iat, raw["iat"].as_i64().unwrap());
    assert_eq!(claims.exp, raw["exp"].as_i64().unwrap());
    assert_eq!(claims.jti, raw["jti"].as_str().unwrap());
    assert!(claims.has_scope("read") && claims.has_scope("write"));
    assert!(!claims.has_scope("admin"));
    assert_eq!(verifier.verify_offline(&token), Ok(claims));
    assert_eq!(verifier.jwks_fetches(), 1);
}

async fn every_keygate_algorithm_is_accepted(engine: Engine) {
    for alg in ["EdDSA", "RS256"] {
        let app = TestApp::builder(engine)
            .vars(&[("KEYGATE_SIGNING_ALG", alg)])
            .start()
            .await;
        let key = app.standard_key("read").await;
        let token = app.token_string(&key).await;
        let claims = verifier(&app).await.verify(&token).await;
        assert!(claims.is_ok(), "{alg}: {claims:?}");
    }
}

/// An HS256 token whose HMAC key is the server's public key, as text.
fn hmac_with_public_key(kid: &str, public_jwk: &str, claims: &Value) -> String {
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.typ = Some("at+jwt".into());
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(
        &header,
        claims,
        &jsonwebtoken::EncodingKey::from_secret(public_jwk.as_bytes()),
    )
    .unwrap()
}

fn flip_signature_bit(token: &str) -> String {
    let (input, signature) = token.rsplit_once('.').unwrap();
    let mut bytes = URL_SAFE_NO_PAD.decode(signature).unwrap();
    bytes[7] ^= 0x01;
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(bytes))
}

fn unsigned(header: &Value, claims: &Value) -> String {
    format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    )
}

async fn forged_and_invalid_tokens_are_refused_for_the_right_reason(engine: Engine) {
    let app = spawn_app(engine).await;
    let key = app.standard_key("read").await;
    let verifier = verifier(&app).await;
    let real = app.token_string(&key).await;
    let (kid, pair) = app.server_signing_key();
    let header = at_jwt_header(&pair, &kid);
    let good = app.claims_for(&key, API);
    let now = chrono::Utc::now().timestamp();
    let with = |name: &str, value: Value| {
        let mut claims = good.clone();
        claims[name] = value;
        claims
    };
    let public_jwk = app
        .http
        .get(format!("{}/.well-known/jwks.json", app.address))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap()["keys"][0]
        .to_string();
    let foreign = foreign_key_pair(SigningAlg::Es256);
    let foreign_ed = foreign_key_pair(SigningAlg::EdDsa);
    let mut typ_jwt = header.clone();
    typ_jwt["typ"] = "JWT".into();
    let mut no_typ = header.clone();
    no_typ.as_object_mut().unwrap().remove("typ");
    let mut none = header.clone();
    none["alg"] = "none".into();
    let mut with_jku = at_jwt_header(&foreign, "attacker-key");
    with_jku["jku"] = "https://evil.example.com/jwks.json".into();
    let mut no_client_id = good.clone();
    no_client_id.as_object_mut().unwrap().remove("client_id");
    let mut tampered = payload_of(&real);
    tampered["scope"] = "read write".into();

    let cases: Vec<(&str, String, VerifyError)> = vec![
        (
            "alg none",
            unsigned(&none, &good),
            VerifyError::AlgorithmNotAllowed,
        ),
        (
            "HS256 keyed with the public key",
            hmac_with_public_key(&kid, &public_jwk, &good),
            VerifyError::AlgorithmNotAllowed,
        ),
        (
            "typ JWT",
            sign_token(&pair, &typ_jwt, &good),
            VerifyError::WrongType,
        ),
        (
            "no typ",
            sign_token(&pair, &no_typ, &good),
            VerifyError::WrongType,
        ),
        (
            "wrong aud",
            sign_token(
                &pair,
                &header,
                &with("aud", "https://other.example.com".into()),
            ),
            VerifyError::WrongAudience,
        ),
        (
            "wrong iss",
            sign_token(
                &pair,
                &header,
                &with("iss", "https://evil.example.com".into()),
            ),
            VerifyError::WrongIssuer,
        ),
        (
            "expired beyond the leeway",
            sign_token(&pair, &header, &with("exp", (now - 60).into())),
            VerifyError::Expired,
        ),
        (
            "not yet valid",
            sign_token(&pair, &header, &with("nbf", (now + 300).into())),
            VerifyError::NotYetValid,
        ),
        (
            "unknown kid",
            sign_token(&foreign, &at_jwt_header(&foreign, "no-such-key"), &good),
            VerifyError::UnknownKey,
        ),
        (
            "kid with a path",
            sign_token(
                &foreign,
                &at_jwt_header(&foreign, "../../etc/passwd"),
                &good,
            ),
            VerifyError::UnknownKey,
        ),
        (
            "kid with a URL",
            sign_token(
                &foreign,
                &at_jwt_header(&foreign, "https://evil/jwks"),
                &good,
            ),
            VerifyError::UnknownKey,
        ),
        (
            "jku pointing elsewhere",
            sign_token(&foreign, &with_jku, &good),
            VerifyError::UnknownKey,
        ),
        (
            "flipped signature bit",
            flip_signature_bit(&real),
            VerifyError::BadSignature,
        ),
        (
            "payload changed after signing",
            with_payload(&real, &tampered),
            VerifyError::BadSignature,
        ),
        (
            "foreign key with a known kid",
            sign_token(&foreign, &at_jwt_header(&foreign, &kid), &good),
            VerifyError::BadSignature,
        ),
        (
            "EdDSA under the kid of an ES256 key",
            sign_token(&foreign_ed, &at_jwt_header(&foreign_ed, &kid), &good),
            VerifyError::KeyMismatch,
        ),
        (
            "no client_id",
            sign_token(&pair, &header, &no_client_id),
            VerifyError::MissingClaim("client_id"),
        ),
        ("garbage", "not-a-token".into(), VerifyError::Malformed),
    ];
    for (case, token, expected) in &cases {
        assert_eq!(
            verifier.verify(token).await.as_ref().err(),
            Some(expected),
            "{case}"
        );
    }
    // The HMAC confusion stays refused even if someone lists HS256.
    let careless = Verifier::builder(&app.issuer, API)
        .algorithms(&[Algorithm::ES256, Algorithm::HS256])
        .build()
        .await
        .unwrap();
    assert_eq!(
        careless
            .verify(&hmac_with_public_key(&kid, &public_jwk, &good))
            .await,
        Err(VerifyError::AlgorithmNotAllowed)
    );

    // The same claims, correctly signed, pass: each case failed for its one flaw.
    assert!(
        verifier
            .verify(&sign_token(&pair, &header, &good))
            .await
            .is_ok()
    );
    let mut many = good.clone();
    many["aud"] = json!(["https://other.example.com", API]);
    assert!(
        verifier
            .verify(&sign_token(&pair, &header, &many))
            .await
            .is_ok()
    );
    let mut media_type = header.clone();
    media_type["typ"] = "application/AT+JWT".into();
    assert!(
        verifier
            .verify(&sign_token(&pair, &media_type, &good))
            .await
            .is_ok()
    );
}

async fn leeway_is_small_and_configurable(engine: Engine) {
    let app = spawn_app(engine).await;
    let key = app.standard_key("read").await;
    let (kid, pair) = app.server_signing_key();
    let header = at_jwt_header(&pair, &kid);
    let now = chrono::Utc::now().timestamp();
    let mut just_expired = app.claims_for(&key, API);
    just_expired["exp"] = (now - 5).into();
    let token = sign_token(&pair, &header, &just_expired);
    assert!(verifier(&app).await.verify(&token).await.is_ok());
    let strict = Verifier::builder(&app.issuer, API)
        .leeway(Duration::ZERO)
        .build()
        .await
        .unwrap();
    assert_eq!(strict.verify(&token).await, Err(VerifyError::Expired));
}

/// A real token that expired is refused once past the leeway.
async fn an_expired_token_is_refused(engine: Engine) {
    let app = TestApp::builder(engine)
        .vars(&[("KEYGATE_TOKEN_TTL", "1s")])
        .start()
        .await;
    let key = app.standard_key("read").await;
    // The verifier reads the real clock: the server issues the token as of a
    // minute ago, so it expired long before the verifier sees it.
    app.advance_clock(chrono::Duration::minutes(-1));
    let token = app.token_string(&key).await;
    app.advance_clock(chrono::Duration::minutes(1));
    let strict = Verifier::builder(&app.issuer, API)
        .leeway(Duration::ZERO)
        .build()
        .await
        .unwrap();
    assert_eq!(strict.verify(&token).await, Err(VerifyError::Expired));
}

fn random_kid_token(app: &TestApp, key: &Key) -> String {
    let foreign = foreign_key_pair(SigningAlg::EdDsa);
    let kid = uuid::Uuid::new_v4().to_string();
    sign_token(
        &foreign,
        &at_jwt_header(&foreign, &kid),
        &app.claims_for(key, API),
    )
}

async fn unknown_kids_refetch_at_most_once_per_interval(engine: Engine) {
    let app = spawn_app(engine).await;
    let key = app.standard_key("read").await;
    let tokens: Vec<String> = (0..50).map(|_| random_kid_token(&app, &key)).collect();

    // Default interval: the fetch at start-up covers the whole flood.
    let default = verifier(&app).await;
    for token in &tokens {
        assert_eq!(default.verify(token).await, Err(VerifyError::UnknownKey));
    }
    assert_eq!(default.jwks_fetches(), 1);

    // Once the interval has passed, a concurrent flood causes one refetch.
    let clock = ManualClock::new();
    let quick = Verifier::builder(&app.issuer, API)
        .unknown_kid_refetch_interval(Duration::from_millis(500))
        .clock(&clock)
        .build()
        .await
        .unwrap();
    clock.advance(Duration::from_millis(600));
    let results = futures_join_all(&quick, &tokens).await;
    assert!(results.iter().all(|r| *r == Err(VerifyError::UnknownKey)));
    assert_eq!(quick.jwks_fetches(), 2);
    for token in &tokens {
        assert_eq!(quick.verify(token).await, Err(VerifyError::UnknownKey));
    }
    assert_eq!(quick.jwks_fetches(), 2);
}

async fn futures_join_all(
    verifier: &Verifier,
    tokens: &[String],
) -> Vec<Result<keygate_verifier::Claims, VerifyError>> {
    let handles: Vec<_> = tokens
        .iter()
        .map(|token| {
            let (verifier, token) = (verifier.clone(), token.clone());
            tokio::spawn(async move { verifier.verify(&token).await })
        })
        .collect();
    let mut results = Vec::new();
    for handle in handles {
        results.push(handle.await.unwrap());
    }
    results
}

async fn signing_key_rotation_needs_no_restart(engine: Engine) {
    let app = spawn_app(engine).await;
    let key = app.standard_key("read").await;
    let before = app.token_string(&key).await;
    let old_kid = jsonwebtoken::decode_header(&before).unwrap().kid.unwrap();
    let clock = ManualClock::new();
    let verifier = Verifier::builder(&app.issuer, API)
        .unknown_kid_refetch_interval(Duration::from_millis(500))
        .clock(&clock)
        .build()
        .await
        .unwrap();
    assert!(verifier.verify(&before).await.is_ok());

    app.cli_ok(&["signing-keys", "rotate"]).await;
    app.run_job(Job::KeyringRefresh).await;
    let after = app.token_string(&key).await;
    let new_kid = jsonwebtoken::decode_header(&after).unwrap().kid.unwrap();
    assert_ne!(new_kid, old_kid, "rotation did not take effect");
    clock.advance(Duration::from_millis(600));
    let claims = verifier.verify(&after).await.expect("new key accepted");
    assert_eq!(claims.client_id, key.client_id);
    assert_eq!(verifier.jwks_fetches(), 2);
    // The old key is still published and its tokens still valid.
    assert!(verifier.verify(&before).await.is_ok());
    assert_eq!(verifier.key_ids().len(), 2);
}

async fn discovery_checks_the_issuer(engine: Engine) {
    let app = spawn_app(engine).await;
    let other = format!("{}/", app.issuer);
    let wrong = Verifier::builder(&other, API).build().await;
    assert!(matches!(wrong, Err(VerifyError::Discovery(_))), "{wrong:?}");
    let nowhere = Verifier::builder("http://127.0.0.1:9", API).build().await;
    assert!(matches!(nowhere, Err(VerifyError::Discovery(_))));
}

async fn online_mode_sees_revocation_before_expiry(engine: Engine) {
    let app = spawn_app(engine).await;
    let key = app.standard_key("read").await;
    let introspector = app.introspector_key().await;
    let clock = ManualClock::new();
    let verifier = Verifier::builder(&app.issuer, API)
        .online(&introspector.client_id, &introspector.client_secret)
        .online_cache_ttl(Duration::from_millis(300))
        .clock(&clock)
        .build()
        .await
        .unwrap();
    let revoked = app.token_string(&key).await;
    let other = app.token_string(&key).await;
    assert!(verifier.verify(&revoked).await.is_ok());
    assert_eq!(app.revoke(&key, &revoked).await.status(), 200);
    // Cached until the TTL, then the revocation bites.
    clock.advance(Duration::from_millis(299));
    assert!(verifier.verify(&revoked).await.is_ok());
    clock.advance(Duration::from_millis(1));
    assert_eq!(verifier.verify(&revoked).await, Err(VerifyError::Inactive));
    assert!(verifier.verify_offline(&revoked).is_ok());
    assert!(verifier.verify(&other).await.is_ok());

    app.cli_ok(&["keys", "revoke", &key.client_id]).await;
    assert!(verifier.verify(&other).await.is_ok(), "cached as active");
    clock.advance(Duration::from_millis(300));
    assert_eq!(verifier.verify(&other).await, Err(VerifyError::Inactive));
}

async fn read_route(auth: Authenticated) -> Result<HttpResponse, BearerError> {
    auth.require_scope("read")?;
    Ok(HttpResponse::Ok().json(json!({ "client_id": auth.client_id })))
}

async fn write_route(auth: Authenticated) -> Result<HttpResponse, BearerError> {
    auth.require_scope("write")?;
    Ok(HttpResponse::Ok().finish())
}

/// A resource server on a random port; returns its address.
fn resource_server(verifier: Verifier) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let verifier = web::Data::new(verifier);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(verifier.clone())
            .route("/read", web::get().to(read_route))
            .route("/write", web::get().to(write_route))
    })
    .workers(1)
    .listen(listener)
    .unwrap()
    .run();
    tokio::spawn(server);
    address
}

async fn the_extractor_answers_per_rfc_6750(engine: Engine) {
    let app = spawn_app(engine).await;
    let key = app.standard_key("read").await;
    let token = app.token_string(&key).await;
    let api = resource_server(verifier(&app).await);
    let get = |path: &str, auth: Option<String>| {
        let mut request = app.http.get(format!("{api}{path}"));
        if let Some(auth) = auth {
            request = request.header("authorization", auth);
        }
        request.send()
    };
    let realm = format!(r#"Bearer realm="{API}""#);

    let ok = get("/read", Some(format!("Bearer {token}"))).await.unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(
        ok.json::<Value>().await.unwrap()["client_id"],
        key.client_id.as_str()
    );

    for auth in [None, Some("Basic dXNlcjpwYXNz".to_owned())] {
        let none = get("/read", auth).await.unwrap();
        assert_eq!(none.status(), 401);
        assert_eq!(none.headers()["www-authenticate"], realm.as_str());
    }

    let bad = get(
        "/read",
        Some(format!("Bearer {}", flip_signature_bit(&token))),
    )
    .await
    .unwrap();
    assert_eq!(bad.status(), 401);
    assert_eq!(
        bad.headers()["www-authenticate"],
        format!(
            r#"{realm}, error="invalid_token", error_description="the token's signature is invalid""#
        )
        .as_str()
    );
    let body: Value = bad.json().await.unwrap();
    assert_eq!(body["error"], "invalid_token");

    let malformed = get("/read", Some("Bearer a b".into())).await.unwrap();
    assert_eq!(malformed.status(), 400);
    assert!(
        malformed.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains(r#"error="invalid_request""#)
    );

    let forbidden = get("/write", Some(format!("Bearer {token}")))
        .await
        .unwrap();
    assert_eq!(forbidden.status(), 403);
    assert_eq!(
        forbidden.headers()["www-authenticate"],
        format!(r#"{realm}, error="insufficient_scope", scope="write""#).as_str()
    );
}

both_engines!(
    a_valid_token_is_accepted,
    every_keygate_algorithm_is_accepted,
    forged_and_invalid_tokens_are_refused_for_the_right_reason,
    leeway_is_small_and_configurable,
    an_expired_token_is_refused,
    unknown_kids_refetch_at_most_once_per_interval,
    signing_key_rotation_needs_no_restart,
    discovery_checks_the_issuer,
    online_mode_sees_revocation_before_expiry,
    the_extractor_answers_per_rfc_6750,
);
