//! Signing-key rotation across processes, discovery and operations endpoints.

use keygate::jobs::Job;
use serde_json::Value;

use crate::both_engines;
use crate::helpers::{Engine, TestApp, client_from, spawn_app};

const API: &str = "https://api.example.com";

fn kid_of(token: &str) -> String {
    jsonwebtoken::decode_header(token).unwrap().kid.unwrap()
}

/// A token from the server at `address`.
async fn token_from(app: &TestApp, address: &str, key: &crate::helpers::Key) -> String {
    let body: Value = app
        .http
        .post(format!("{address}/oauth/token"))
        .basic_auth(&key.client_id, Some(&key.client_secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

/// A rotation made by the CLI reaches every server on the database at its
/// next keyring refresh (every two seconds in `serve`; run here at once);
/// tokens signed before it keep validating.
async fn signing_key_rotation_reaches_every_server(engine: Engine) {
    let app = spawn_app(engine).await;
    let sibling = app.spawn_sibling().await;
    let key = app.standard_key("read").await;
    let before = app.access_token(&key).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let old_kid = kid_of(&before);

    let out = app.cli_ok(&["signing-keys", "rotate"]).await;
    assert!(out.stdout.contains("new active signing key"));

    app.run_job_everywhere(Job::KeyringRefresh).await;
    let after = token_from(&app, &app.address, &key).await;
    let from_sibling = token_from(&app, &sibling, &key).await;
    assert_ne!(
        kid_of(&after),
        old_kid,
        "the rotation did not reach the server"
    );
    assert_eq!(kid_of(&after), kid_of(&from_sibling));

    // Both the old and the new key are published; both tokens validate.
    let jwks = app.jwks().await;
    assert!(jwks.find(&old_kid).is_some());
    assert!(jwks.find(&kid_of(&after)).is_some());
    app.validate(&before, API).await;
    app.validate(&after, API).await;

    let listed = app.cli_ok(&["signing-keys", "list", "--json"]).await.json();
    let statuses: Vec<_> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["active", "published"]);
}

/// Two servers starting on one empty database agree on one signing key.
async fn servers_share_one_signing_key(engine: Engine) {
    let app = spawn_app(engine).await;
    let sibling = app.spawn_sibling().await;
    let mine: Value = app
        .http
        .get(format!("{}/.well-known/jwks.json", app.address))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let theirs: Value = app
        .http
        .get(format!("{sibling}/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(mine, theirs);
    assert_eq!(mine["keys"].as_array().unwrap().len(), 1);
}

async fn jwks_is_public_and_cacheable(engine: Engine) {
    let app = spawn_app(engine).await;
    let response = app
        .http
        .get(format!("{}/.well-known/jwks.json", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let cache = response.headers()["cache-control"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(cache.contains("max-age="), "{cache}");
    let jwks: Value = response.json().await.unwrap();
    let key = &jwks["keys"][0];
    assert_eq!(key["use"], "sig");
    assert_eq!(key["alg"], "ES256");
    assert_eq!(key["kty"], "EC");
    assert!(key["kid"].is_string());
    for private in ["d", "p", "q", "dp", "dq", "qi"] {
        assert!(key.get(private).is_none(), "JWKS leaks {private}");
    }
}

async fn metadata_follows_rfc_8414(engine: Engine) {
    let app = spawn_app(engine).await;
    app.standard_key("read").await;
    let issuer = &app.issuer;
    let mut documents = Vec::new();
    for path in ["oauth-authorization-server", "openid-configuration"] {
        let response = app
            .http
            .get(format!("{}/.well-known/{path}", app.address))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        documents.push(response.json::<Value>().await.unwrap());
    }
    assert_eq!(documents[0], documents[1]);
    let m = &documents[0];
    assert_eq!(m["issuer"], issuer.as_str());
    assert_eq!(m["token_endpoint"], format!("{issuer}/oauth/token"));
    assert_eq!(m["jwks_uri"], format!("{issuer}/.well-known/jwks.json"));
    assert_eq!(
        m["introspection_endpoint"],
        format!("{issuer}/oauth/introspect")
    );
    assert_eq!(m["revocation_endpoint"], format!("{issuer}/oauth/revoke"));
    assert_eq!(
        m["grant_types_supported"],
        serde_json::json!([
            "client_credentials",
            "urn:ietf:params:oauth:grant-type:token-exchange"
        ])
    );
    assert_eq!(m["response_types_supported"], serde_json::json!([]));
    assert_eq!(
        m["token_endpoint_auth_methods_supported"],
        serde_json::json!([
            "client_secret_basic",
            "client_secret_post",
            "private_key_jwt"
        ])
    );
    for endpoint in ["token", "introspection", "revocation"] {
        assert_eq!(
            m[format!("{endpoint}_endpoint_auth_signing_alg_values_supported")],
            serde_json::json!([
                "ES256", "EdDSA", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512"
            ])
        );
    }
    let scopes = m["scopes_supported"].as_array().unwrap();
    for scope in [
        "read",
        "write",
        "keygate:keys",
        "keygate:admin",
        "keygate:introspect",
    ] {
        assert!(scopes.iter().any(|s| s == scope), "{scope} missing");
    }
}

async fn operations_endpoints(engine: Engine) {
    let app = spawn_app(engine).await;
    let key = app.standard_key("read").await;
    app.access_token(&key).await;
    app.access_token(&key).await;
    let _ = app
        .token_basic(
            &key.client_id,
            "wrong",
            &[("grant_type", "client_credentials")],
        )
        .await;
    for path in ["healthz", "readyz"] {
        let response = app
            .http
            .get(format!("{}/{path}", app.address))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{path}");
    }
    let metrics = app
        .http
        .get(format!("{}/metrics", app.address))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("keygate_tokens_issued_total 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"keygate_token_failures_total{reason="wrong_secret"} 1"#),
        "{metrics}"
    );
    assert!(metrics.contains("keygate_token_request_duration_seconds_bucket"));
    assert!(metrics.contains("keygate_token_request_duration_seconds_count 3"));
    assert!(metrics.contains("keygate_email_outbox_pending"));
    // The second token was the warm path's: on PostgreSQL its read was a
    // shared round's (alone in it); SQLite reads inline and has none.
    let shared = [
        "keygate_db_shared_reads_total 1",
        "keygate_db_shared_read_rounds_total 1",
    ];
    for line in shared {
        assert_eq!(
            metrics.contains(line),
            engine == Engine::Postgres,
            "{line}\n{metrics}"
        );
    }
}

/// A retired key stays in the JWKS while tokens it signed may be unexpired
/// (token lifetime plus a margin for other processes' refresh and clock
/// skew), then leaves it. Time is passed in, so nothing sleeps.
async fn retired_key_leaves_the_jwks_after_its_tokens_expire(engine: Engine) {
    use keygate::signing::{self, AtRest, PUBLISH_MARGIN, SigningAlg};
    let app = spawn_app(engine).await;
    let mut conn = app.db();
    let master = keygate::signing::MasterKey::from_hex(&app.secret_key).unwrap();
    let at_rest = AtRest::new(&master);
    let now = chrono::Utc::now();
    let ttl = chrono::Duration::minutes(15);
    let old = signing::load_published_keys(&mut conn, now).unwrap();
    assert_eq!(old.len(), 1);
    let old_kid = old[0].kid.clone();

    let new_kid =
        signing::rotate_signing_key(&mut conn, &at_rest, SigningAlg::EdDsa, ttl, now, "test")
            .unwrap();
    let kids = |at| {
        signing::load_published_keys(&mut app.db(), at)
            .unwrap()
            .into_iter()
            .map(|r| r.kid)
            .collect::<Vec<_>>()
    };
    let last_token_expiry = now + ttl;
    assert_eq!(kids(now), [new_kid.clone(), old_kid.clone()]);
    assert_eq!(kids(last_token_expiry), [new_kid.clone(), old_kid.clone()]);
    let gone = last_token_expiry + PUBLISH_MARGIN + chrono::Duration::seconds(1);
    assert_eq!(kids(gone), [new_kid]);
}

/// Every change is audited with who acted and on what.
async fn changes_are_audited(engine: Engine) {
    let app = spawn_app(engine).await;
    let key = app.standard_key("read").await;
    app.cli_ok(&["keys", "rotate", &key.client_id]).await;
    app.cli_ok(&["keys", "revoke", &key.client_id, "--reason", "done"])
        .await;
    app.cli_ok(&["roles", "set", "readers", "--scopes", "read"])
        .await;
    app.cli_ok(&["users", "disable", "alice@example.com"]).await;
    app.cli_ok(&["signing-keys", "rotate"]).await;
    let events = keygate::audit::list_events(&mut app.db(), None, 100, 0).unwrap();
    let seen: Vec<(&str, &str, &str)> = events
        .iter()
        .rev()
        .map(|e| (e.actor.as_str(), e.action.as_str(), e.target.as_str()))
        .filter(|(_, action, _)| *action != "signing_key.created")
        .collect();
    let signing_kid = events[0].target.as_str();
    assert_eq!(
        seen,
        [
            ("command line", "user.created", "alice@example.com"),
            ("command line", "account.invited", "alice@example.com"),
            ("command line", "api.created", API),
            ("command line", "key.created", key.client_id.as_str()),
            ("command line", "key.rotated", key.client_id.as_str()),
            ("command line", "key.revoked", key.client_id.as_str()),
            ("command line", "role.set", "readers"),
            ("command line", "user.disabled", "alice@example.com"),
            ("command line", "signing_key.rotated", signing_kid),
        ]
    );
}

/// `/metrics` answers only to `KEYGATE_METRICS_ALLOW_FROM`, here a network
/// without the tests' 127.0.0.1: 404 to everyone else, as if it did not
/// exist. Behind a trusted proxy, the forwarded client address decides.
async fn metrics_answer_only_to_allowed_networks(engine: Engine) {
    let app = TestApp::builder(engine)
        .vars(&[
            ("KEYGATE_METRICS_ALLOW_FROM", "127.0.0.2/32, 10.0.0.0/8"),
            ("KEYGATE_TRUSTED_PROXIES", "127.0.0.3"),
        ])
        .start()
        .await;
    let get = |client: reqwest::Client, forwarded: Option<&'static str>| {
        let url = format!("{}/metrics", app.address);
        async move {
            let mut request = client.get(url);
            if let Some(f) = forwarded {
                request = request.header("x-forwarded-for", f);
            }
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.text().await.unwrap())
        }
    };
    let (status, body) = get(app.http.clone(), None).await;
    assert_eq!(status, 404);
    assert!(!body.contains("keygate_"), "{body}");
    // An untrusted peer cannot name an allowed address.
    assert_eq!(get(app.http.clone(), Some("127.0.0.2")).await.0, 404);
    let (status, body) = get(client_from("127.0.0.2"), None).await;
    assert_eq!(status, 200);
    assert!(body.contains("keygate_tokens_issued_total"), "{body}");
    // Through the trusted proxy: the client it names decides.
    assert_eq!(get(client_from("127.0.0.3"), Some("10.1.2.3")).await.0, 200);
    assert_eq!(
        get(client_from("127.0.0.3"), Some("203.0.113.9")).await.0,
        404
    );
    assert_eq!(get(client_from("127.0.0.3"), None).await.0, 404);
    // The other operations endpoints stay open.
    assert_eq!(
        app.http
            .get(format!("{}/healthz", app.address))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

both_engines!(
    metrics_answer_only_to_allowed_networks,
    retired_key_leaves_the_jwks_after_its_tokens_expire,
    changes_are_audited,
    signing_key_rotation_reaches_every_server,
    servers_share_one_signing_key,
    jwks_is_public_and_cacheable,
    metadata_follows_rfc_8414,
    operations_endpoints,
);
