//! A person's session and keys: a member's session touches only its own
//! keys, the key limit and the creation switch hold for sessions, and the
//! session cookie under https.

use super::*;

async fn a_member_session_touches_only_its_own_keys(engine: Engine) {
    let app = spawn_app(engine).await;
    app.add_api("https://api.example.com", "Example", "read write")
        .await;
    app.add_person("root@example.com", "admin", PASSWORD).await;
    app.add_person("alice@example.com", "member", PASSWORD)
        .await;
    app.add_person("bob@example.com", "member", PASSWORD).await;
    let bobs = app
        .create_key(KeySpec::new("bob@example.com", "bobs").scopes("read"))
        .await;
    let alice = app.sign_in("alice@example.com", PASSWORD).await;
    let path = format!("/keys/{}", bobs.client_id);

    let checks = [
        (Method::GET, path.clone(), None, 404),
        (Method::POST, format!("{path}/rotate"), None, 404),
        (Method::POST, format!("{path}/revoke"), None, 404),
        (Method::DELETE, path.clone(), None, 404),
        (Method::GET, "/keys?owner=bob@example.com".into(), None, 403),
        (Method::GET, "/users".into(), None, 403),
        (Method::GET, "/audit-events".into(), None, 403),
        (
            Method::POST,
            "/keys".into(),
            Some(json!({ "name": "x", "scopes": ["read"], "owner": "bob@example.com" })),
            403,
        ),
        (
            Method::POST,
            "/keys".into(),
            Some(json!({ "name": "x", "scopes": ["keygate:admin"] })),
            403,
        ),
        (
            Method::PATCH,
            "/users/alice@example.com".into(),
            Some(json!({ "role": "admin" })),
            403,
        ),
    ];
    for (method, path, body, expected) in checks {
        let mut request = app.api_as(&alice, method.clone(), &path, true);
        if let Some(body) = &body {
            request = request.json(body);
        }
        let (status, answer) = TestApp::send_json(request).await;
        assert_eq!(status, expected, "{method} {path}: {answer}");
    }
    let (_, listed) = TestApp::send_json(app.api_as(&alice, Method::GET, "/keys", false)).await;
    assert_eq!(listed["items"], json!([]), "bob's key is not listed");
    let (status, body) = create_key_as(
        &app,
        &alice,
        json!({ "name": "mine", "scopes": ["keygate:admin"] }),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (403, Some("scope_not_grantable"))
    );
    // Bob's key is untouched.
    assert_eq!(app.access_token(&bobs).await["scope"], "read");

    // An admin's session manages everything.
    let root = app.sign_in("root@example.com", PASSWORD).await;
    let (status, body) = TestApp::send_json(app.api_as(&root, Method::GET, &path, false)).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) =
        TestApp::send_json(app.api_as(&root, Method::POST, &format!("{path}/revoke"), true)).await;
    assert_eq!(
        (status, body["revoked_by"].as_str()),
        (200, Some("root@example.com"))
    );
}

async fn the_key_limit_and_key_creation_switch_hold_for_sessions(engine: Engine) {
    let app = TestApp::builder(engine)
        .vars(&[("KEYGATE_MAX_KEYS_PER_USER", "1")])
        .start()
        .await;
    app.add_api("https://api.example.com", "Example", "read")
        .await;
    app.add_person("alice@example.com", "member", PASSWORD)
        .await;
    let alice = app.sign_in("alice@example.com", PASSWORD).await;
    let key = json!({ "name": "one", "scopes": ["read"] });
    let (status, first) = create_key_as(&app, &alice, key.clone()).await;
    assert_eq!(status, 201, "{first}");
    let (status, body) = create_key_as(&app, &alice, key.clone()).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"], "key_limit_reached");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("revoke one first"),
        "{body}"
    );
    assert_eq!(app.count_rows("SELECT COUNT(*) AS n FROM api_keys"), 1);
    let revoke = format!("/keys/{}/revoke", first["client_id"].as_str().unwrap());
    let (status, _) = TestApp::send_json(app.api_as(&alice, Method::POST, &revoke, true)).await;
    assert_eq!(status, 200);
    let (status, second) = create_key_as(&app, &alice, key.clone()).await;
    assert_eq!(status, 201, "{second}");

    // An expired key does not count. (The session has ended by then too.)
    app.advance_clock(Duration::days(181));
    let alice = app.sign_in("alice@example.com", PASSWORD).await;
    let (status, third) = create_key_as(&app, &alice, key.clone()).await;
    assert_eq!(status, 201, "{third}");

    // Key creation switched off: refused, the existing key still works.
    let out = app
        .cli_ok(&[
            "users",
            "set",
            "alice@example.com",
            "--can-create-keys",
            "false",
        ])
        .await;
    assert!(out.stdout.contains("key creation off"), "{}", out.stdout);
    let (status, body) = create_key_as(&app, &alice, key).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (403, Some("key_creation_disabled"))
    );
    let live = crate::helpers::Key {
        client_id: third["client_id"].as_str().unwrap().to_owned(),
        client_secret: third["client_secret"].as_str().unwrap().to_owned(),
        json: third.clone(),
    };
    app.access_token(&live).await;
}

/// Under an https issuer the cookie is `__Host-` prefixed and `Secure`; under
/// http it is neither. Both are `HttpOnly`, `SameSite=Lax`, `Path=/`, no
/// `Domain`, and live no longer than the session's absolute lifetime.
async fn the_cookie_is_host_prefixed_and_secure_under_https(engine: Engine) {
    for (issuer, name, secure) in [
        (
            Some("https://auth.example.com"),
            "__Host-keygate-session",
            true,
        ),
        (None, "keygate-session", false),
    ] {
        let mut extra = vec![("KEYGATE_SESSION_MAX", "2h")];
        if let Some(issuer) = issuer {
            extra.push(("KEYGATE_ISSUER", issuer));
        }
        let app = TestApp::builder(engine).vars(&extra).start().await;
        app.add_person("alice@example.com", "member", PASSWORD)
            .await;
        let state = app.state();
        let now = state.clock.now();
        let session = accounts::sign_in(
            &state,
            "alice@example.com",
            PASSWORD,
            "127.0.0.1".parse().unwrap(),
            None,
            now,
        )
        .await
        .unwrap();
        assert!(!format!("{session:?}").contains(session.token.expose()));
        assert!(!format!("{session:?}").contains(session.device.value()));
        let cookie = session::session_cookie(&state, &session.token, session.expires_at, now);
        let header = cookie.to_string();
        assert!(header.starts_with(&format!("{name}=")), "{header}");
        assert!(header.contains("HttpOnly"), "{header}");
        assert!(header.contains("SameSite=Lax"), "{header}");
        assert!(header.contains("Path=/"), "{header}");
        assert!(!header.contains("Domain"), "{header}");
        assert_eq!(header.contains("Secure"), secure, "{header}");
        assert!(header.contains("Max-Age=7200"), "{header}");
        let removal = session::removal_cookie(&state).to_string();
        assert!(removal.starts_with(&format!("{name}=;")), "{removal}");
        assert!(removal.contains("Max-Age=0"), "{removal}");

        let browser = crate::helpers::Browser {
            cookie: format!("{}={}", cookie.name(), cookie.value()),
            csrf: session.csrf.as_str().to_owned(),
        };
        let (status, _) =
            TestApp::send_json(app.api_as(&browser, Method::GET, "/keys", false)).await;
        assert_eq!(status, 200, "{name}");
        // The other name is not read.
        let other = if secure {
            "keygate-session"
        } else {
            "__Host-keygate-session"
        };
        let wrong = crate::helpers::Browser {
            cookie: format!("{other}={}", cookie.value()),
            csrf: browser.csrf.clone(),
        };
        let (status, _) = TestApp::send_json(app.api_as(&wrong, Method::GET, "/keys", false)).await;
        assert_eq!(status, 401, "{other}");
    }
}

both_engines!(
    a_member_session_touches_only_its_own_keys,
    the_key_limit_and_key_creation_switch_hold_for_sessions,
    the_cookie_is_host_prefixed_and_secure_under_https,
);
