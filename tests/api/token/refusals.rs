//! What the token endpoint refuses, and how: credentials that fail look
//! alike, malformed requests, other grants and methods, the failure
//! throttle, forwarded addresses, the audit, and changes made by another
//! process honoured on the next request.

use super::*;

async fn refused_credentials_all_look_alike(engine: Engine) {
    let app = spawn_app(engine).await;
    let key = app.standard_key("read").await;

    // Wrong secret, a made-up well-formed secret, and an unknown client.
    assert_invalid_client(app.token_basic(&key.client_id, "wrong", &[CC]).await).await;
    let other = app
        .create_key(KeySpec::new("alice@example.com", "other"))
        .await;
    assert_invalid_client(
        app.token_basic(&key.client_id, &other.client_secret, &[CC])
            .await,
    )
    .await;
    assert_invalid_client(
        app.token_basic("kgc_unknown", &key.client_secret, &[CC])
            .await,
    )
    .await;

    // No client authentication at all (RFC 6749 §5.2: invalid_client).
    let response = app
        .http
        .post(app.token_url())
        .form(&[CC])
        .send()
        .await
        .unwrap();
    assert_invalid_client(response).await;
    // client_id without a secret.
    let response = app
        .http
        .post(app.token_url())
        .form(&[CC, ("client_id", key.client_id.as_str())])
        .send()
        .await
        .unwrap();
    assert_invalid_client(response).await;
}

async fn revoked_key_is_refused(engine: Engine) {
    let app = spawn_app(engine).await;
    let key = app.standard_key("read").await;
    assert_eq!(app.token_for(&key, &[CC]).await.status(), 200);
    app.cli_ok(&["keys", "revoke", &key.client_id, "--reason", "leaked"])
        .await;
    assert_invalid_client(app.token_for(&key, &[CC]).await).await;
}

async fn expired_key_is_refused(engine: Engine) {
    let app = spawn_app(engine).await;
    app.standard_key("read").await;
    let key = app
        .create_key(KeySpec::new("alice@example.com", "short").expires_in("2s"))
        .await;
    assert_eq!(app.token_for(&key, &[CC]).await.status(), 200);
    app.advance_clock(chrono::Duration::minutes(1));
    assert_invalid_client(app.token_for(&key, &[CC]).await).await;
}

async fn disabled_owner_is_refused_at_once(engine: Engine) {
    let app = spawn_app(engine).await;
    let key = app.standard_key("read").await;
    assert_eq!(app.token_for(&key, &[CC]).await.status(), 200);
    app.cli_ok(&["users", "disable", "alice@example.com"]).await;
    assert_invalid_client(app.token_for(&key, &[CC]).await).await;
}

async fn malformed_requests_are_invalid_request(engine: Engine) {
    let app = spawn_app(engine).await;
    let key = app.standard_key("read").await;

    // Missing grant_type.
    let response = app.token_for(&key, &[("scope", "read")]).await;
    assert_oauth_error(response, 400, "invalid_request").await;
    // Repeated parameters.
    let response = app.token_for(&key, &[CC, CC]).await;
    assert_oauth_error(response, 400, "invalid_request").await;
    let response = app
        .token_for(&key, &[CC, ("scope", "read"), ("scope", "read")])
        .await;
    assert_oauth_error(response, 400, "invalid_request").await;
    // Both client authentication methods at once.
    let response = app
        .http
        .post(app.token_url())
        .basic_auth(&key.client_id, Some(&key.client_secret))
        .form(&[
            CC,
            ("client_id", key.client_id.as_str()),
            ("client_secret", key.client_secret.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_oauth_error(response, 400, "invalid_request").await;
    // Wrong content type.
    let response = app
        .http
        .post(app.token_url())
        .basic_auth(&key.client_id, Some(&key.client_secret))
        .json(&serde_json::json!({"grant_type": "client_credentials"}))
        .send()
        .await
        .unwrap();
    assert_oauth_error(response, 400, "invalid_request").await;
}

async fn other_grant_types_are_unsupported(engine: Engine) {
    let app = spawn_app(engine).await;
    let key = app.standard_key("read").await;
    for grant in [
        "password",
        "authorization_code",
        "urn:ietf:params:oauth:grant-type:jwt-bearer",
    ] {
        let response = app.token_for(&key, &[("grant_type", grant)]).await;
        assert_oauth_error(response, 400, "unsupported_grant_type").await;
    }
}

async fn other_methods_are_405_with_allow(engine: Engine) {
    let app = spawn_app(engine).await;
    for method in [
        reqwest::Method::GET,
        reqwest::Method::PUT,
        reqwest::Method::DELETE,
    ] {
        let response = app
            .http
            .request(method.clone(), app.token_url())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 405, "{method}");
        assert_eq!(response.headers()["allow"], "POST");
    }
}

/// After a few failures one (client ID, address) pair gets 429 whatever
/// secret it carries; the same client from another address still works.
async fn failed_authentications_are_throttled_per_address(engine: Engine) {
    let app = spawn_app(engine).await;
    let key = app.standard_key("read").await;
    // Served, and then remembered as verified and unthrottled: the warm
    // path must still see the failures that follow.
    for _ in 0..2 {
        assert_eq!(app.token_for(&key, &[CC]).await.status(), 200);
    }
    for _ in 0..5 {
        assert_invalid_client(app.token_basic(&key.client_id, "kgs_wrong", &[CC]).await).await;
    }
    for secret in ["kgs_wrong", key.client_secret.as_str()] {
        let response = app.token_basic(&key.client_id, secret, &[CC]).await;
        assert_eq!(response.status(), 429);
        let retry: i64 = response.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=60).contains(&retry), "retry-after {retry}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "too_many_requests");
    }
    let elsewhere = client_from("127.0.0.2")
        .post(app.token_url())
        .basic_auth(&key.client_id, Some(&key.client_secret))
        .form(&[CC])
        .send()
        .await
        .unwrap();
    assert_eq!(elsewhere.status(), 200);
}

/// The throttle lasts its window by the server's clock, and the prune job
/// then drops what it counted.
async fn the_throttle_ends_with_its_window_and_is_pruned(engine: Engine) {
    let app = spawn_app(engine).await;
    let key = app.standard_key("read").await;
    for _ in 0..5 {
        assert_invalid_client(app.token_basic(&key.client_id, "kgs_wrong", &[CC]).await).await;
    }
    assert_eq!(app.token_for(&key, &[CC]).await.status(), 429);
    let counted = "SELECT COUNT(*) AS n FROM auth_throttle";
    assert!(app.count_rows(counted) > 0);
    app.run_job(Job::ThrottlePrune).await;
    assert!(app.count_rows(counted) > 0, "pruned inside the window");

    app.advance_clock(chrono::Duration::seconds(61));
    assert_eq!(app.token_for(&key, &[CC]).await.status(), 200);
    app.run_job(Job::ThrottlePrune).await;
    assert_eq!(app.count_rows(counted), 0);
}

/// Behind a trusted reverse proxy the client's address comes from
/// `X-Forwarded-For`; from anyone else the header is ignored, so it cannot be
/// used to dodge the throttle.
async fn forwarded_addresses_count_only_behind_trusted_proxies(engine: Engine) {
    let with_xff =
        |app: &crate::helpers::TestApp, key: &crate::helpers::Key, secret: &str, xff: &str| {
            app.http
                .post(app.token_url())
                .basic_auth(&key.client_id, Some(secret))
                .header("x-forwarded-for", xff)
                .form(&[CC])
                .send()
        };
    let app = TestApp::builder(engine)
        .vars(&[("KEYGATE_TRUSTED_PROXIES", "127.0.0.1")])
        .start()
        .await;
    let key = app.standard_key("read").await;
    for _ in 0..5 {
        assert_invalid_client(
            with_xff(&app, &key, "kgs_wrong", "203.0.113.5")
                .await
                .unwrap(),
        )
        .await;
    }
    let blocked = with_xff(&app, &key, &key.client_secret, "203.0.113.5")
        .await
        .unwrap();
    assert_eq!(blocked.status(), 429);
    let other = with_xff(&app, &key, &key.client_secret, "203.0.113.6")
        .await
        .unwrap();
    assert_eq!(other.status(), 200);

    let direct = spawn_app(engine).await;
    let key = direct.standard_key("read").await;
    for i in 0..5 {
        let spoofed = format!("203.0.113.{i}");
        assert_invalid_client(
            with_xff(&direct, &key, "kgs_wrong", &spoofed)
                .await
                .unwrap(),
        )
        .await;
    }
    let blocked = with_xff(&direct, &key, &key.client_secret, "203.0.113.99")
        .await
        .unwrap();
    assert_eq!(blocked.status(), 429);
}

/// Failed authentications are audited with client ID, address and reason.
async fn failures_are_audited(engine: Engine) {
    let app = spawn_app(engine).await;
    let key = app.standard_key("read").await;
    assert_invalid_client(app.token_basic(&key.client_id, "kgs_wrong", &[CC]).await).await;
    let events = keygate::audit::list_events(&mut app.db(), Some(&key.client_id), 10, 0).unwrap();
    let failed = events
        .iter()
        .find(|e| e.action == "client_auth.failed")
        .expect("audited");
    assert_eq!(failed.source_addr.as_deref(), Some("127.0.0.1"));
    assert!(
        failed.details.contains("wrong_secret"),
        "{}",
        failed.details
    );
}

/// Two `keygate serve` processes on one database, each holding the key's
/// credential warm from earlier requests: a change committed by the CLI (a
/// third process) is honoured by the very next request on both. This is
/// the guarantee the warm path's cache must keep (`client_auth::verified`),
/// and so are failures counted by the other server process;
/// it fails if the cache is ever trusted without asking the database.
async fn changes_by_another_process_bite_on_the_next_request_everywhere(engine: Engine) {
    let app = TestApp::builder(engine).prepare();
    let (one, two) = tokio::join!(Serve::start(&app, &[]), Serve::start(&app, &[]));
    let servers = [one.url("/oauth/token"), two.url("/oauth/token")];
    add_writer_bob(&app).await;
    let create = |name: &'static str| {
        let app = &app;
        async move {
            app.create_key(
                KeySpec::new("bob@example.com", name)
                    .scopes("read write")
                    .audience(API),
            )
            .await
        }
    };
    let (key, other, third) = (
        create("k").await,
        create("other").await,
        create("third").await,
    );
    let token = |url: &str, id: &str, secret: &str| {
        app.http
            .post(url)
            .basic_auth(id, Some(secret))
            .form(&[CC])
            .send()
    };
    let scope_on = |url: String, key: &Key| {
        let request = token(&url, &key.client_id, &key.client_secret);
        async move {
            let response = request.await.unwrap();
            assert_eq!(response.status(), 200);
            response.json::<Value>().await.unwrap()["scope"].clone()
        }
    };
    for url in &servers {
        for _ in 0..3 {
            assert_eq!(scope_on(url.clone(), &key).await, "read write");
            assert_eq!(scope_on(url.clone(), &other).await, "read write");
            assert_eq!(scope_on(url.clone(), &third).await, "read write");
        }
    }

    // A narrowed role.
    app.cli_ok(&["roles", "set", "writer", "--scopes", "read"])
        .await;
    for url in &servers {
        assert_eq!(scope_on(url.clone(), &key).await, "read");
    }

    // A rotation without grace: the old secret is dead, the new one works.
    let rotated = app
        .cli_ok(&["keys", "rotate", &key.client_id, "--json"])
        .await
        .json();
    let new_secret = rotated["client_secret"].as_str().unwrap().to_owned();
    for url in &servers {
        assert_invalid_client(
            token(url, &key.client_id, &key.client_secret)
                .await
                .unwrap(),
        )
        .await;
        let fresh = token(url, &key.client_id, &new_secret).await.unwrap();
        assert_eq!(fresh.status(), 200);
    }

    // A revocation.
    app.cli_ok(&["keys", "revoke", &key.client_id, "--reason", "leaked"])
        .await;
    for url in &servers {
        assert_invalid_client(token(url, &key.client_id, &new_secret).await.unwrap()).await;
        assert_eq!(scope_on(url.clone(), &other).await, "read");
    }

    // Failures counted by one process throttle the client on the other,
    // where it was just served.
    for url in servers.iter().chain(&servers) {
        assert_eq!(scope_on(url.clone(), &third).await, "read");
    }
    for _ in 0..5 {
        let response = token(&servers[0], &third.client_id, "kgs_wrong")
            .await
            .unwrap();
        assert_invalid_client(response).await;
    }
    let response = token(&servers[1], &third.client_id, &third.client_secret)
        .await
        .unwrap();
    assert_eq!(response.status(), 429);

    // A disabled owner.
    app.cli_ok(&["users", "disable", "bob@example.com"]).await;
    for url in &servers {
        let response = token(url, &other.client_id, &other.client_secret)
            .await
            .unwrap();
        assert_invalid_client(response).await;
    }
}

both_engines!(
    refused_credentials_all_look_alike,
    revoked_key_is_refused,
    expired_key_is_refused,
    disabled_owner_is_refused_at_once,
    malformed_requests_are_invalid_request,
    other_grant_types_are_unsupported,
    other_methods_are_405_with_allow,
    failed_authentications_are_throttled_per_address,
    the_throttle_ends_with_its_window_and_is_pruned,
    forwarded_addresses_count_only_behind_trusted_proxies,
    failures_are_audited,
    changes_by_another_process_bite_on_the_next_request_everywhere,
);
