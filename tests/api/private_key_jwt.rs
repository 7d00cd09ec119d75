//! Keys without a secret whose clients sign client assertions
//! (`private_key_jwt`, RFC 7523 §2.2): Authlib's real client, every refusal
//! of the contract (each the same `invalid_client`, the audit log saying
//! why), replays and revocations across processes, the introspection and
//! revocation endpoints, the command line's and the API's public keys, and
//! the pruning of remembered `jti`s.

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, Ed25519KeyPair, KeyPair as _};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use crate::both_engines;
use crate::helpers::fixtures::{STANDARD_API, unused_secret};
use crate::helpers::{
    Engine, Key, KeySpec, TestApp, assert_invalid_client, assert_one_line_refusal, client_from,
    spawn_app,
};

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
const OWNER: &str = "alice@example.com";

both_engines!(
    authlibs_private_key_jwt_client_gets_tokens,
    the_rust_example_client_gets_a_token,
    every_refusal_is_the_same_invalid_client,
    a_jti_is_accepted_once_across_processes,
    revocation_and_a_disabled_owner_stop_it_on_another_process,
    introspection_and_revocation_accept_assertions,
    the_command_line_takes_pem_jwk_and_jwks_and_refuses_the_rest,
    a_roll_over_keeps_both_keys_until_the_old_is_removed,
    the_api_creates_and_updates_public_keys,
    the_prune_job_drops_only_expired_jtis,
);

/// A client's key pair, made for the test.
struct ClientKey {
    alg: Algorithm,
    private_pem: String,
    public_pem: String,
}

fn pem(label: &str, der: &[u8]) -> String {
    let body = STANDARD.encode(der);
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

impl ClientKey {
    fn ec() -> Self {
        let rng = SystemRandom::new();
        let alg = &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING;
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &rng).expect("EC key");
        let pair = EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref()).expect("EC key");
        let spki = pair.public_key().as_der().expect("SPKI");
        Self {
            alg: Algorithm::ES256,
            private_pem: pem("PRIVATE KEY", pkcs8.as_ref()),
            public_pem: pem("PUBLIC KEY", spki.as_ref()),
        }
    }

    fn ed25519() -> Self {
        let rng = SystemRandom::new();
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).expect("Ed25519 key");
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("Ed25519 key");
        let spki = pair.public_key().as_der().expect("SPKI");
        Self {
            alg: Algorithm::EdDSA,
            private_pem: pem("PRIVATE KEY", pkcs8.as_ref()),
            public_pem: pem("PUBLIC KEY", spki.as_ref()),
        }
    }

    fn rsa() -> Self {
        let pair =
            aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).expect("RSA key");
        let pkcs8: aws_lc_rs::encoding::Pkcs8V1Der = pair.as_der().expect("PKCS#8");
        let spki = pair.public_key().as_der().expect("SPKI");
        Self {
            alg: Algorithm::RS256,
            private_pem: pem("PRIVATE KEY", pkcs8.as_ref()),
            public_pem: pem("PUBLIC KEY", spki.as_ref()),
        }
    }

    fn encoding_key(&self) -> EncodingKey {
        let bytes = self.private_pem.as_bytes();
        match self.alg {
            Algorithm::ES256 => EncodingKey::from_ec_pem(bytes),
            Algorithm::EdDSA => EncodingKey::from_ed_pem(bytes),
            _ => EncodingKey::from_rsa_pem(bytes),
        }
        .expect("encoding key")
    }

    /// The public key as a JWK (no `kid`), as keygate reads the PEM.
    fn public_jwk(&self) -> Value {
        let keys = keygate::keys::public_keys::parse(&self.public_pem).expect("public key");
        let mut set: Value = serde_json::from_str(&keys.jwks).expect("JWKS");
        let mut jwk = set["keys"][0].take();
        if let Some(map) = jwk.as_object_mut() {
            map.remove("kid");
        }
        jwk
    }

    /// `claims` signed with `header` (its `alg` this key's).
    fn sign_with(&self, header: Header, claims: &Value) -> String {
        jsonwebtoken::encode(&header, claims, &self.encoding_key()).expect("sign")
    }

    fn sign(&self, claims: &Value) -> String {
        self.sign_with(Header::new(self.alg), claims)
    }
}

/// Claims a well-behaved client sends: for `client_id`, at the token
/// endpoint, five minutes long, a fresh `jti`.
fn claims(app: &TestApp, client_id: &str) -> Value {
    claims_at(&app.address, client_id)
}

/// [`claims`] for the server at `base` (each test server is its own issuer).
fn claims_at(base: &str, client_id: &str) -> Value {
    let now = chrono::Utc::now().timestamp();
    json!({
        "iss": client_id,
        "sub": client_id,
        "aud": format!("{base}/oauth/token"),
        "iat": now,
        "exp": now + 300,
        "jti": uuid::Uuid::new_v4().to_string(),
    })
}

fn with(claims: &Value, name: &str, value: Value) -> Value {
    let mut claims = claims.clone();
    claims[name] = value;
    claims
}

fn without(claims: &Value, name: &str) -> Value {
    let mut claims = claims.clone();
    claims.as_object_mut().expect("claims").remove(name);
    claims
}

/// A token request at `base` authenticated by `assertion`, plus `extra`.
async fn token_at(
    http: &reqwest::Client,
    base: &str,
    assertion: &str,
    extra: &[(&str, &str)],
) -> reqwest::Response {
    let mut form = vec![
        ("grant_type", "client_credentials"),
        ("client_assertion_type", JWT_BEARER),
        ("client_assertion", assertion),
    ];
    form.extend_from_slice(extra);
    http.post(format!("{base}/oauth/token"))
        .form(&form)
        .send()
        .await
        .expect("token request")
}

async fn token(app: &TestApp, assertion: &str) -> reqwest::Response {
    token_at(&app.http, &app.address, assertion, &[]).await
}

async fn token_ok(app: &TestApp, base: &str, assertion: &str) -> Value {
    let response = token_at(&app.http, base, assertion, &[]).await;
    let status = response.status();
    let body: Value = response.json().await.expect("JSON");
    if status != 200 {
        panic!("{status} {body}; last failure: {}", last_failure(app));
    }
    body
}

/// The reason of the last `client_auth.failed` event.
fn last_failure(app: &TestApp) -> Value {
    use diesel::prelude::*;
    use keygate::db::schema::audit_events;
    let mut conn = app.db();
    let details: String = audit_events::table
        .filter(audit_events::action.eq("client_auth.failed"))
        .order(audit_events::id.desc())
        .select(audit_events::details)
        .first(&mut conn)
        .expect("a client_auth.failed event");
    serde_json::from_str::<Value>(&details).expect("details")["reason"].clone()
}

/// An app with alice, the standard API, and a key of hers signing with `key`.
async fn app_with_key(engine: Engine, key: &ClientKey) -> (TestApp, Key) {
    let app = spawn_app(engine).await;
    let spec = KeySpec::standard("read").public_key(&key.public_pem);
    let created = app.standard_key_with(spec).await;
    assert_eq!(created.json["client_secret"], Value::Null);
    assert_eq!(created.json["auth_method"], "private_key_jwt");
    (app, created)
}

fn python() -> String {
    std::env::var("KEYGATE_TEST_OAUTH_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// tests/support/pkj_client.py: Authlib's client fetching `rounds` tokens.
async fn authlib_tokens(
    app: &TestApp,
    client_id: &str,
    key: &ClientKey,
    rounds: u32,
) -> Vec<Value> {
    let file = app.dir.path().join(format!("{client_id}.pem"));
    std::fs::write(&file, &key.private_pem).expect("write the private key");
    let alg = format!("{:?}", key.alg);
    let out = tokio::process::Command::new(python())
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/support/pkj_client.py"
        ))
        .arg(app.token_url())
        .arg(client_id)
        .arg(&file)
        .arg(&alg)
        .arg(rounds.to_string())
        .output()
        .await
        .expect("run the Authlib client");
    assert!(
        out.status.success(),
        "Authlib's client failed (set KEYGATE_TEST_OAUTH_PYTHON to a python with authlib): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).expect("a token response"))
        .collect()
}

async fn authlibs_private_key_jwt_client_gets_tokens(engine: Engine) {
    let ec = ClientKey::ec();
    let (app, key) = app_with_key(engine, &ec).await;
    let tokens = authlib_tokens(&app, &key.client_id, &ec, 2).await;
    assert_eq!(tokens.len(), 2);
    for response in &tokens {
        let token = response["access_token"].as_str().expect("access_token");
        let data = app.validate(token, STANDARD_API).await;
        assert_eq!(data.claims["sub"], key.client_id.as_str());
        assert_eq!(data.claims["client_id"], key.client_id.as_str());
        assert_eq!(response["scope"], "read");
    }
    // Authlib's default: RS256, with an RSA key given as a PEM public key.
    let rsa = ClientKey::rsa();
    let spec = KeySpec::new(OWNER, "rsa")
        .scopes("read")
        .audience(STANDARD_API)
        .public_key(&rsa.public_pem);
    let rsa_key = app.create_key(spec).await;
    let tokens = authlib_tokens(&app, &rsa_key.client_id, &rsa, 1).await;
    let token = tokens[0]["access_token"].as_str().expect("access_token");
    assert_eq!(
        app.validate(token, STANDARD_API).await.claims["sub"],
        rsa_key.client_id.as_str()
    );
}

/// examples/private_key_jwt_client, as docs/SECRETLESS.md runs it, built
/// beside the test binaries (`target/<profile>/examples`) by `cargo build
/// --examples`, which `scripts/test` runs before the tests.
fn rust_example() -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("the test binary");
    let profile = exe
        .parent()
        .and_then(std::path::Path::parent)
        .expect("target/<profile>/deps");
    let example = profile.join("examples").join("private_key_jwt_client");
    assert!(
        example.is_file(),
        "{} is missing: build the examples first (`cargo build --examples`, as scripts/test does)",
        example.display()
    );
    example
}

async fn the_rust_example_client_gets_a_token(engine: Engine) {
    let ec = ClientKey::ec();
    let (app, key) = app_with_key(engine, &ec).await;
    let file = app.dir.path().join("example-client.pem");
    std::fs::write(&file, &ec.private_pem).expect("write the private key");
    let out = tokio::process::Command::new(rust_example())
        .env("KEYGATE_ISSUER", &app.address)
        .env("CLIENT_ID", &key.client_id)
        .env("PRIVATE_KEY", &file)
        .env_remove("SCOPE")
        .env_remove("RESOURCE")
        .output()
        .await
        .expect("run the example client");
    assert!(
        out.status.success(),
        "the example client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let response: Value = serde_json::from_slice(&out.stdout).expect("a token response");
    let token = response["access_token"].as_str().expect("access_token");
    let data = app.validate(token, STANDARD_API).await;
    assert_eq!(data.claims["sub"], key.client_id.as_str());
    assert_eq!(response["scope"], "read");
}

/// What a refusal test sends: what it is, the assertion, further form
/// parameters, and the reason the audit log must give.
type Case<'a> = (&'a str, String, Vec<(&'a str, &'a str)>, &'a str);

async fn every_refusal_is_the_same_invalid_client(engine: Engine) {
    let ec = ClientKey::ec();
    let (app, key) = app_with_key(engine, &ec).await;
    let id = key.client_id.as_str();
    let good = claims(&app, id);
    let other = ClientKey::ec();
    let secret_key = app.create_key(KeySpec::reader(OWNER, "secret")).await;
    let none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(good.to_string())
    );
    let hs256 = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &good,
        &EncodingKey::from_secret(ec.public_pem.as_bytes()),
    )
    .expect("HS256");
    let header = |change: fn(&mut Header)| {
        let mut header = Header::new(Algorithm::ES256);
        change(&mut header);
        header
    };
    let now = chrono::Utc::now().timestamp();
    let cases: Vec<Case> = vec![
        (
            "another key",
            other.sign(&good),
            vec![],
            "assertion_bad_signature",
        ),
        (
            "an unknown kid",
            ec.sign_with(header(|h| h.kid = Some("nope".into())), &good),
            vec![],
            "assertion_bad_signature",
        ),
        ("alg none", none, vec![], "assertion_algorithm_refused"),
        ("HS256", hs256, vec![], "assertion_algorithm_refused"),
        (
            "jku",
            ec.sign_with(
                header(|h| h.jku = Some("https://evil.example/jwks".into())),
                &good,
            ),
            vec![],
            "assertion_header_refused",
        ),
        (
            "x5u",
            ec.sign_with(
                header(|h| h.x5u = Some("https://evil.example/cert".into())),
                &good,
            ),
            vec![],
            "assertion_header_refused",
        ),
        (
            "an embedded jwk",
            {
                let jwk: jsonwebtoken::jwk::Jwk =
                    serde_json::from_value(other.public_jwk()).expect("JWK");
                let mut h = Header::new(Algorithm::ES256);
                h.jwk = Some(jwk);
                other.sign_with(h, &good)
            },
            vec![],
            "assertion_header_refused",
        ),
        (
            "iss differs from sub",
            ec.sign(&with(&good, "iss", secret_key.client_id.as_str().into())),
            vec![],
            "assertion_issuer_mismatch",
        ),
        (
            "a client_id parameter naming another client",
            ec.sign(&claims(&app, id)),
            vec![("client_id", secret_key.client_id.as_str())],
            "assertion_issuer_mismatch",
        ),
        (
            "another audience",
            ec.sign(&with(
                &good,
                "aud",
                "https://elsewhere.example/token".into(),
            )),
            vec![],
            "assertion_wrong_audience",
        ),
        (
            "no exp",
            ec.sign(&without(&good, "exp")),
            vec![],
            "assertion_missing_claim",
        ),
        (
            "exp past",
            ec.sign(&with(
                &with(&good, "exp", (now - 120).into()),
                "iat",
                (now - 400).into(),
            )),
            vec![],
            "assertion_expired",
        ),
        (
            "exp more than 60 minutes after iat",
            ec.sign(&with(&good, "exp", (now + 3601).into())),
            vec![],
            "assertion_lifetime_too_long",
        ),
        (
            "no jti",
            ec.sign(&without(&good, "jti")),
            vec![],
            "assertion_missing_claim",
        ),
        (
            "no iat",
            ec.sign(&without(&good, "iat")),
            vec![],
            "assertion_missing_claim",
        ),
        (
            "an assertion for a key with a secret",
            ec.sign(&claims(&app, &secret_key.client_id)),
            vec![],
            "wrong_auth_method",
        ),
    ];
    for (n, (what, assertion, extra, reason)) in cases.into_iter().enumerate() {
        // Each from its own address: the failures would throttle one.
        let http = client_from(&format!("127.0.0.{}", n + 10));
        let response = token_at(&http, &app.address, &assertion, &extra).await;
        assert_eq!(response.status(), 401, "{what}");
        assert_invalid_client(response).await;
        assert_eq!(last_failure(&app), reason, "{what}");
    }

    // A secret for the key that has none.
    let http = client_from("127.0.0.60");
    let response = http
        .post(app.token_url())
        .basic_auth(id, Some(unused_secret()))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .expect("token request");
    assert_invalid_client(response).await;
    assert_eq!(last_failure(&app), "wrong_auth_method");

    // A secret and an assertion at once: which one is meant?
    let response = app
        .http
        .post(app.token_url())
        .basic_auth(&secret_key.client_id, Some(&secret_key.client_secret))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", &ec.sign(&claims(&app, id))),
        ])
        .send()
        .await
        .expect("token request");
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(body["error"], "invalid_request");

    // What passes: the token endpoint's URL or the issuer as aud, with or
    // without a kid, with the client_id parameter; then the same again is
    // a replay.
    let assertion = ec.sign(&claims(&app, id));
    token_ok(&app, &app.address, &assertion).await;
    let response = token(&app, &assertion).await;
    assert_invalid_client(response).await;
    assert_eq!(last_failure(&app), "assertion_replayed");
    let to_issuer = with(&claims(&app, id), "aud", json!([app.issuer]));
    token_ok(&app, &app.address, &ec.sign(&to_issuer)).await;
    let thumbprint = key.json["public_key_thumbprints"][0]
        .as_str()
        .expect("a thumbprint")
        .to_owned();
    let mut h = Header::new(Algorithm::ES256);
    h.kid = Some(thumbprint);
    let response = token_at(
        &app.http,
        &app.address,
        &ec.sign_with(h, &claims(&app, id)),
        &[("client_id", id)],
    )
    .await;
    assert_eq!(response.status(), 200);
}

async fn a_jti_is_accepted_once_across_processes(engine: Engine) {
    let ed = ClientKey::ed25519();
    let (app, key) = app_with_key(engine, &ed).await;
    let sibling = app.spawn_sibling().await;
    // Both processes know the key (and keep it warm).
    token_ok(&app, &app.address, &ed.sign(&claims(&app, &key.client_id))).await;
    token_ok(
        &app,
        &sibling,
        &ed.sign(&claims_at(&sibling, &key.client_id)),
    )
    .await;
    // One assertion both accept (each test server is its own issuer).
    let mut both = claims(&app, &key.client_id);
    both["aud"] = json!([app.token_url(), format!("{sibling}/oauth/token")]);
    let assertion = ed.sign(&both);
    token_ok(&app, &sibling, &assertion).await;
    let response = token(&app, &assertion).await;
    assert_invalid_client(response).await;
    assert_eq!(last_failure(&app), "assertion_replayed");
}

async fn revocation_and_a_disabled_owner_stop_it_on_another_process(engine: Engine) {
    let ec = ClientKey::ec();
    let (app, key) = app_with_key(engine, &ec).await;
    let sibling = app.spawn_sibling().await;
    token_ok(
        &app,
        &sibling,
        &ec.sign(&claims_at(&sibling, &key.client_id)),
    )
    .await;
    app.cli_ok(&["keys", "revoke", &key.client_id]).await;
    let response = token_at(
        &app.http,
        &sibling,
        &ec.sign(&claims_at(&sibling, &key.client_id)),
        &[],
    )
    .await;
    assert_invalid_client(response).await;
    assert_eq!(last_failure(&app), "revoked");

    // Another key of alice's, warm on the sibling, then alice disabled.
    let spec = KeySpec::new(OWNER, "second")
        .scopes("read")
        .audience(STANDARD_API)
        .public_key(&ec.public_pem);
    let second = app.create_key(spec).await;
    token_ok(
        &app,
        &sibling,
        &ec.sign(&claims_at(&sibling, &second.client_id)),
    )
    .await;
    app.cli_ok(&["users", "disable", OWNER]).await;
    let response = token_at(
        &app.http,
        &sibling,
        &ec.sign(&claims_at(&sibling, &second.client_id)),
        &[],
    )
    .await;
    assert_invalid_client(response).await;
    assert_eq!(last_failure(&app), "owner_disabled");
}

async fn introspection_and_revocation_accept_assertions(engine: Engine) {
    let ec = ClientKey::ec();
    let (app, key) = app_with_key(engine, &ec).await;
    let id = key.client_id.as_str();
    let body = token_ok(&app, &app.address, &ec.sign(&claims(&app, id))).await;
    let access = body["access_token"].as_str().expect("access_token");
    let at = |endpoint: &str| {
        let url = format!("{}/oauth/{endpoint}", app.address);
        let assertion = ec.sign(&with(&claims(&app, id), "aud", url.clone().into()));
        app.http.post(url).form(&[
            ("token", access),
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", &assertion),
        ])
    };
    let response = at("introspect").send().await.expect("introspect");
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.expect("JSON");
    assert_eq!(answer["active"], true, "{answer}");
    assert_eq!(answer["client_id"], id);
    let response = at("revoke").send().await.expect("revoke");
    assert_eq!(response.status(), 200);
    let answer: Value = at("introspect")
        .send()
        .await
        .expect("introspect")
        .json()
        .await
        .expect("JSON");
    assert_eq!(answer, json!({"active": false}));
    // An assertion whose aud is another endpoint's URL is refused here.
    let wrong = ec.sign(&with(
        &claims(&app, id),
        "aud",
        format!("{}/oauth/revoke", app.address).into(),
    ));
    let response = app
        .http
        .post(format!("{}/oauth/introspect", app.address))
        .form(&[
            ("token", access),
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", &wrong),
        ])
        .send()
        .await
        .expect("introspect");
    assert_invalid_client(response).await;
    assert_eq!(last_failure(&app), "assertion_wrong_audience");
}

fn count_keys(app: &TestApp) -> i64 {
    app.count_rows("SELECT COUNT(*) AS n FROM api_keys")
}

async fn the_command_line_takes_pem_jwk_and_jwks_and_refuses_the_rest(engine: Engine) {
    let app = spawn_app(engine).await;
    app.add_owner_and_api(OWNER).await;
    let write = |name: &str, text: &str| {
        let path = app.dir.path().join(name);
        std::fs::write(&path, text).expect("write");
        path.to_string_lossy().into_owned()
    };
    let create = |file: String| {
        let app = &app;
        async move {
            app.cli(&[
                "keys",
                "create",
                "--json",
                "--owner",
                OWNER,
                "--name",
                "signer",
                "--scopes",
                "read",
                "--audience",
                STANDARD_API,
                "--public-key",
                &file,
            ])
            .await
        }
    };
    let ec = ClientKey::ec();
    let ed = ClientKey::ed25519();

    // PEM.
    let out = create(write("ec.pem", &ec.public_pem)).await;
    assert!(out.status.success(), "{}", out.stderr);
    let json = out.json();
    assert_eq!(json["client_secret"], Value::Null);
    assert_eq!(json["auth_method"], "private_key_jwt");
    let thumbprints = json["public_key_thumbprints"]
        .as_array()
        .expect("thumbprints");
    assert_eq!(thumbprints.len(), 1);
    let id = json["client_id"].as_str().expect("client_id").to_owned();
    token_ok(&app, &app.address, &ec.sign(&claims(&app, &id))).await;

    // A JWK on stdin.
    let out = app
        .cli_with_stdin(
            &[
                "keys",
                "create",
                "--json",
                "--owner",
                OWNER,
                "--name",
                "jwk",
                "--scopes",
                "read",
                "--audience",
                STANDARD_API,
                "--public-key",
                "-",
            ],
            Some(&ed.public_jwk().to_string()),
        )
        .await;
    assert!(out.status.success(), "{}", out.stderr);
    let id = out.json()["client_id"].as_str().expect("id").to_owned();
    token_ok(&app, &app.address, &ed.sign(&claims(&app, &id))).await;

    // A JWKS of two keys.
    let jwks = json!({"keys": [ec.public_jwk(), ed.public_jwk()]});
    let out = create(write("two.json", &jwks.to_string())).await;
    assert!(out.status.success(), "{}", out.stderr);
    let json = out.json();
    assert_eq!(
        json["public_key_thumbprints"].as_array().map(Vec::len),
        Some(2)
    );
    let id = json["client_id"].as_str().expect("id").to_owned();
    token_ok(&app, &app.address, &ec.sign(&claims(&app, &id))).await;
    token_ok(&app, &app.address, &ed.sign(&claims(&app, &id))).await;

    // Rotating a key without a secret is refused.
    let out = app.cli(&["keys", "rotate", &id]).await;
    assert_one_line_refusal(&out, &["no secret"]);

    // Refused, writing nothing.
    let before = count_keys(&app);
    let mut private_jwk = ec.public_jwk();
    private_jwk["d"] = "AAAA".into();
    let short_rsa = json!({"kty": "RSA", "e": "AQAB",
        "n": URL_SAFE_NO_PAD.encode([0xc3_u8; 128])});
    let p384 = json!({"kty": "EC", "crv": "P-384",
        "x": URL_SAFE_NO_PAD.encode([1_u8; 48]), "y": URL_SAFE_NO_PAD.encode([2_u8; 48])});
    for (name, text, words) in [
        (
            "private.pem",
            ec.private_pem.clone(),
            vec!["private key", "public half"],
        ),
        (
            "private.json",
            private_jwk.to_string(),
            vec!["private key", "public half"],
        ),
        (
            "oct.json",
            json!({"kty": "oct", "k": "c2VjcmV0"}).to_string(),
            vec!["symmetric"],
        ),
        (
            "short.json",
            short_rsa.to_string(),
            vec!["1024 bits", "2048"],
        ),
        ("p384.json", p384.to_string(), vec!["P-256"]),
        ("garbage.txt", "hello".to_owned(), vec!["not a public key"]),
    ] {
        let out = create(write(name, &text)).await;
        assert_one_line_refusal(&out, &words);
    }
    assert_eq!(count_keys(&app), before, "nothing written");
}

async fn a_roll_over_keeps_both_keys_until_the_old_is_removed(engine: Engine) {
    let old = ClientKey::ec();
    let new = ClientKey::ec();
    let (app, key) = app_with_key(engine, &old).await;
    let id = key.client_id.as_str();
    token_ok(&app, &app.address, &old.sign(&claims(&app, id))).await;
    let both = app.dir.path().join("both.pem");
    std::fs::write(&both, format!("{}{}", old.public_pem, new.public_pem)).expect("write");
    let out = app
        .cli_ok(&[
            "keys",
            "set",
            id,
            "--public-key",
            &both.to_string_lossy(),
            "--json",
        ])
        .await;
    assert_eq!(
        out.json()["public_key_thumbprints"]
            .as_array()
            .map(Vec::len),
        Some(2)
    );
    token_ok(&app, &app.address, &old.sign(&claims(&app, id))).await;
    token_ok(&app, &app.address, &new.sign(&claims(&app, id))).await;
    let only_new = app.dir.path().join("new.pem");
    std::fs::write(&only_new, &new.public_pem).expect("write");
    app.cli_ok(&[
        "keys",
        "set",
        id,
        "--public-key",
        &only_new.to_string_lossy(),
    ])
    .await;
    let response = token(&app, &old.sign(&claims(&app, id))).await;
    assert_invalid_client(response).await;
    assert_eq!(last_failure(&app), "assertion_bad_signature");
    token_ok(&app, &app.address, &new.sign(&claims(&app, id))).await;

    // A key with a secret has no public keys to replace.
    let secret_key = app.create_key(KeySpec::reader(OWNER, "secret")).await;
    let out = app
        .cli(&[
            "keys",
            "set",
            &secret_key.client_id,
            "--public-key",
            &only_new.to_string_lossy(),
        ])
        .await;
    assert_one_line_refusal(&out, &["not private_key_jwt"]);
}

async fn the_api_creates_and_updates_public_keys(engine: Engine) {
    use reqwest::Method;
    let app = spawn_app(engine).await;
    app.add_person("root@example.com", "admin", "a long enough password")
        .await;
    app.add_owner_and_api(OWNER).await;
    let admin = app
        .create_key(KeySpec::new("root@example.com", "admin").scopes("keygate:admin"))
        .await;
    let bearer = app.token_string(&admin).await;
    let ec = ClientKey::ec();
    let created = app
        .api_expect(
            Method::POST,
            &bearer,
            "/keys",
            Some(json!({"name": "signer", "owner": OWNER, "scopes": ["read"],
                "audiences": [STANDARD_API], "public_key": ec.public_pem})),
            201,
        )
        .await;
    assert_eq!(created["client_secret"], Value::Null);
    assert_eq!(created["auth_method"], "private_key_jwt");
    let id = created["client_id"].as_str().expect("id").to_owned();
    token_ok(&app, &app.address, &ec.sign(&claims(&app, &id))).await;

    let message = app
        .api_refused(
            (
                Method::POST,
                "/keys",
                Some(json!({"name": "bad", "owner": OWNER, "scopes": ["read"],
                    "audiences": [STANDARD_API], "public_key": ec.private_pem})),
            ),
            &bearer,
            (422, "invalid_public_key"),
        )
        .await;
    assert!(message.contains("public half"), "{message}");

    let ed = ClientKey::ed25519();
    let updated = app
        .api_expect(
            Method::PATCH,
            &bearer,
            &format!("/keys/{id}"),
            Some(json!({"public_key": json!({"keys": [ed.public_jwk()]}).to_string()})),
            200,
        )
        .await;
    assert_eq!(
        updated["public_key_thumbprints"].as_array().map(Vec::len),
        Some(1)
    );
    assert_ne!(
        updated["public_key_thumbprints"],
        created["public_key_thumbprints"]
    );
    token_ok(&app, &app.address, &ed.sign(&claims(&app, &id))).await;
    let response = token(&app, &ec.sign(&claims(&app, &id))).await;
    assert_invalid_client(response).await;
}

async fn the_prune_job_drops_only_expired_jtis(engine: Engine) {
    use keygate::client_auth::jti;
    let app = TestApp::builder(engine).jobs_on_demand().start().await;
    let now = app.clock.now();
    {
        let mut conn = app.db();
        assert!(
            jti::accept_once(&mut conn, "kg_a", "old", now - chrono::Duration::seconds(1)).unwrap()
        );
        assert!(
            jti::accept_once(
                &mut conn,
                "kg_a",
                "live",
                now + chrono::Duration::minutes(5)
            )
            .unwrap()
        );
        assert!(
            !jti::accept_once(
                &mut conn,
                "kg_a",
                "live",
                now + chrono::Duration::minutes(5)
            )
            .unwrap()
        );
        assert!(
            jti::accept_once(
                &mut conn,
                "kg_b",
                "live",
                now + chrono::Duration::minutes(5)
            )
            .unwrap()
        );
    }
    assert_eq!(app.run_job(keygate::jobs::Job::AssertionJtiPrune).await, 1);
    assert_eq!(
        app.count_rows("SELECT COUNT(*) AS n FROM client_assertion_jtis"),
        2
    );
    app.advance_clock(chrono::Duration::minutes(6));
    assert_eq!(app.run_job(keygate::jobs::Job::AssertionJtiPrune).await, 2);
    assert_eq!(
        app.count_rows("SELECT COUNT(*) AS n FROM client_assertion_jtis"),
        0
    );
}
