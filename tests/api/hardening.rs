//! Issue 24's safety rules (INTERFACE.md "Safety rules that hold
//! everywhere"): a trusted proxy's `X-Forwarded-For` read entry by entry and
//! refused when an entry is not an address; HSTS under an https issuer;
//! unparsable list filters refused; email files readable by their owner
//! only.

use std::fs::Permissions;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use keygate::jobs::Job;
use reqwest::Method;
use serde_json::{Value, json};

use crate::both_engines;
use crate::helpers::{
    Engine, Key, KeySpec, TestApp, assert_invalid_client, assert_oauth_error, client_from,
};

const CC: (&str, &str) = ("grant_type", "client_credentials");
const PASSWORD: &str = "a long enough admin password";

async fn token_forwarded_for(app: &TestApp, key: &Key, forwarded: &str) -> reqwest::Response {
    app.http
        .post(app.token_url())
        .basic_auth(&key.client_id, Some(&key.client_secret))
        .header("x-forwarded-for", forwarded)
        .form(&[CC])
        .send()
        .await
        .unwrap()
}

async fn get_forwarded_for(app: &TestApp, path: &str, forwarded: &str) -> reqwest::Response {
    app.http
        .get(format!("{}{path}", app.address))
        .header("x-forwarded-for", forwarded)
        .send()
        .await
        .unwrap()
}

/// Behind a trusted proxy, with a key allowed only from 127.0.0.0/8: an
/// `IP:PORT` entry is that IP (outside: refused as any outsider is), and an
/// entry that is not an address is `invalid_request`, never the proxy's own
/// (allowed) address.
async fn forwarded_entries_are_addresses_or_the_request_is_refused(engine: Engine) {
    let app = TestApp::builder(engine)
        .vars(&[("KEYGATE_TRUSTED_PROXIES", "127.0.0.1")])
        .start()
        .await;
    let key = app
        .standard_key_with(KeySpec::standard("read").allow_from("127.0.0.0/8"))
        .await;

    for inside in ["127.0.0.5", "127.0.0.5:4444", "::ffff:127.0.0.5"] {
        let response = token_forwarded_for(&app, &key, inside).await;
        assert_eq!(response.status(), 200, "{inside}");
    }
    for outside in [
        "203.0.113.9:4444",
        "[2001:db8::9]:4444",
        "198.51.100.4, 127.0.0.1:8080",
    ] {
        assert_invalid_client(token_forwarded_for(&app, &key, outside).await).await;
    }
    for unreadable in [
        "[::ffff:10.1.2.3]",
        "[10.1.2.3]:80",
        "garbage",
        "unknown",
        "203.0.113.9,",
        "",
        "garbage, 127.0.0.5",
    ] {
        let response = token_forwarded_for(&app, &key, unreadable).await;
        let body = assert_oauth_error(response, 400, "invalid_request").await;
        assert!(
            body["error_description"]
                .as_str()
                .unwrap()
                .contains("X-Forwarded-For"),
            "{unreadable:?}: {body}"
        );
    }
    // From a peer that is not a trusted proxy the header is not read at all.
    let untrusted = client_from("127.0.0.2");
    let direct = untrusted
        .post(app.token_url())
        .basic_auth(&key.client_id, Some(&key.client_secret))
        .header("x-forwarded-for", "garbage")
        .form(&[CC])
        .send()
        .await
        .unwrap();
    assert_eq!(direct.status(), 200);

    // The other surfaces refuse it too, each in its own format.
    let api = get_forwarded_for(&app, "/api/v1/keys", "unknown").await;
    assert_eq!(api.status(), 400);
    assert_eq!(api.headers()["cache-control"], "no-store");
    let body: Value = api.json().await.unwrap();
    assert_eq!(body["error"], "invalid_request", "{body}");

    let page = get_forwarded_for(&app, "/sign-in", "unknown").await;
    assert_eq!(page.status(), 400);
    assert!(
        page.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("default-src 'none'")
    );
    assert!(page.text().await.unwrap().contains("X-Forwarded-For"));

    let metrics = get_forwarded_for(&app, "/metrics", "127.0.0.1,").await;
    assert_eq!(metrics.status(), 400);
}

/// `.eml` files hold working invitation and reset links: readable by their
/// owner only, in a folder only its owner can open, even one that was
/// created open before (an older keygate's, the umask's 0755).
async fn email_files_are_readable_by_their_owner_only(engine: Engine) {
    let mut app = TestApp::builder(engine).jobs_on_demand().prepare();
    let dir = app.dir.path().join("mail");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, Permissions::from_mode(0o755)).unwrap();
    app.serve().await;
    app.standard_key("read").await;
    app.cli_ok(&["users", "add", "bob@example.com"]).await;
    app.run_job(Job::MailDelivery).await;

    let files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    assert!(files.len() >= 2, "{files:?}");
    for file in &files {
        assert_eq!(file.extension().unwrap(), "eml", "{file:?}");
        assert_eq!(mode(file), 0o600, "{file:?}");
    }
    assert_eq!(mode(&dir), 0o700);
}

/// Under an https issuer every answer carries HSTS, whatever the surface and
/// status; under an http one (local development) none does.
async fn an_https_issuer_sends_hsts_everywhere(engine: Engine) {
    let https = TestApp::builder(engine)
        .vars(&[("KEYGATE_ISSUER", "https://auth.example.test")])
        .start()
        .await;
    let http = TestApp::builder(engine).vars(&[]).start().await;
    for (method, path) in [
        (Method::POST, "/oauth/token"),
        (Method::POST, "/oauth/introspect"),
        (Method::GET, "/oauth/token"),
        (Method::GET, "/api/v1/keys"),
        (Method::GET, "/api/v1/openapi.json"),
        (Method::GET, "/sign-in"),
        (Method::GET, "/keys"),
        (Method::GET, "/healthz"),
        (Method::GET, "/readyz"),
        (Method::GET, "/metrics"),
        (Method::GET, "/.well-known/oauth-authorization-server"),
        (Method::GET, "/.well-known/jwks.json"),
        (Method::GET, "/no-such-page"),
    ] {
        let on = |app: &TestApp| {
            app.http
                .request(method.clone(), format!("{}{path}", app.address))
                .send()
        };
        let response = on(&https).await.unwrap();
        assert_eq!(
            response.headers()["strict-transport-security"],
            "max-age=31536000",
            "{method} {path}: {}",
            response.status()
        );
        let response = on(&http).await.unwrap();
        assert!(
            !response.headers().contains_key("strict-transport-security"),
            "{method} {path}"
        );
    }
}

/// A list filter that cannot be read is a 400, in the API as in the console,
/// never the whole list.
async fn unparsable_filters_are_refused_in_the_api_and_the_console(engine: Engine) {
    let app = TestApp::builder(engine).vars(&[]).start().await;
    app.standard_key("read").await;
    app.add_person("root@example.com", "admin", PASSWORD).await;
    let admin = app.sign_in("root@example.com", PASSWORD).await;
    let api = |path: &str| TestApp::send_json(app.api_as(&admin, Method::GET, path, false));

    for path in [
        "/audit-events?since=garbage",
        "/audit-events?until=garbage",
        "/audit-events?since=2026-13-01",
        "/audit-events?limit=garbage",
        "/audit-events?limit=0",
        "/audit-events?cursor=garbage",
        "/keys?status=garbage",
        "/keys?limit=many",
        "/users?limit=-1",
        "/apis?cursor=x",
    ] {
        let (status, body) = api(path).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert_eq!(body["error"], "invalid_request", "{path}: {body}");
    }
    // Readable bounds filter: a day, or an RFC 3339 time.
    let (status, all) = api("/audit-events?since=2000-01-01&until=2999-12-31").await;
    assert_eq!(status, 200, "{all}");
    assert!(!all["items"].as_array().unwrap().is_empty());
    for empty in [
        "/audit-events?until=2000-01-01",
        "/audit-events?since=2999-01-01T00:00:00Z",
    ] {
        let (status, body) = api(empty).await;
        assert_eq!((status, body["items"].clone()), (200, json!([])), "{empty}");
    }
    let (_, created) = api("/audit-events?action=key.created").await;
    let created = created["items"].as_array().unwrap();
    assert_eq!(created.len(), 1, "{created:?}");

    for path in [
        "/admin/audit?since=garbage",
        "/admin/audit?until=2026-12-1x",
        "/admin/audit?page=garbage",
        "/admin/keys?status=garbage",
    ] {
        let page = app
            .http
            .get(format!("{}{path}", app.address))
            .header("cookie", &admin.cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), 400, "{path}");
        let text = page.text().await.unwrap();
        assert!(text.contains("That did not work"), "{path}: {text}");
    }
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

both_engines!(
    forwarded_entries_are_addresses_or_the_request_is_refused,
    email_files_are_readable_by_their_owner_only,
    an_https_issuer_sends_hsts_everywhere,
    unparsable_filters_are_refused_in_the_api_and_the_console,
);
