//! A real OpenID provider for console single sign-on: panva's
//! `oidc-provider` (`tests/support/oidc_provider.mjs`, installed by
//! `scripts/test` into `target/npm-oidc`) as a process on a random loopback
//! port, with keygate as its client and test accounts; and a browser
//! without JavaScript (reqwest with a cookie jar, redirects followed by
//! hand) that walks the flow, so a test can stop at the callback and replay
//! or forge it.

use std::process::Stdio;
use std::time::Duration;

use reqwest::header::{LOCATION, SET_COOKIE};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};

/// keygate's client at the test provider.
pub const CLIENT_ID: &str = "keygate";
pub const CLIENT_SECRET: &str = "provider-client-secret-9f3c";

/// The accounts every test provider has, by login: `alice` and `bob` at
/// example.com (verified), `unverified@example.com`, `outsider@other.test`
/// (verified), `noemail`, who shares no address, and `erin@example.com`,
/// verified as Entra ID says it (`xms_edov`).
pub fn accounts() -> Value {
    json!({
        "alice": {"email": "alice@example.com", "email_verified": true, "name": "Alice Example"},
        "bob": {"email": "Bob@Example.com", "email_verified": true, "name": "Bob"},
        "carol": {"email": "carol@example.com", "email_verified": true, "name": "Carol"},
        "unverified": {"email": "unverified@example.com", "email_verified": false},
        "outsider": {"email": "outsider@other.test", "email_verified": true},
        "noemail": {"name": "No Email"},
        // As Entra ID says it: no email_verified, its xms_edov instead.
        "erin": {"email": "erin@example.com", "xms_edov": true, "name": "Erin"},
    })
}

fn package_dir() -> String {
    std::env::var("KEYGATE_TEST_OIDC_PROVIDER").unwrap_or_else(|_| {
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/target/npm-oidc/node_modules/oidc-provider"
        )
        .to_owned()
    })
}

pub struct OidcProvider {
    _child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    /// `http://127.0.0.1:PORT`: `KEYGATE_OIDC_ISSUER`.
    pub issuer: String,
}

impl OidcProvider {
    /// A provider with [`accounts`] and keygate as a client whose redirect
    /// URI is `http://127.0.0.1/sign-in/oidc/callback` on any port (a
    /// loopback redirect of RFC 8252 §7.3, so the provider can start before
    /// the app picks its port).
    pub async fn start() -> Self {
        let dir = package_dir();
        assert!(
            std::path::Path::new(&dir).join("package.json").exists(),
            "oidc-provider not found at {dir}: scripts/test installs it from npm, \
             or set KEYGATE_TEST_OIDC_PROVIDER"
        );
        let config = json!({
            "clients": [{
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
                "application_type": "native",
                "redirect_uris": ["http://127.0.0.1/sign-in/oidc/callback"],
            }],
            "accounts": accounts(),
        });
        let mut child = tokio::process::Command::new("node")
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/support/oidc_provider.mjs"
            ))
            .arg(config.to_string())
            .env("KEYGATE_TEST_OIDC_PROVIDER", &dir)
            // The provider exits when its stdin closes: kept open here.
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("run node: {e} (scripts/test lists nodejs)"));
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        // Real time: a real process starting.
        let first = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
            .await
            .expect("the OpenID provider starts within 20 s");
        let issuer = first
            .ok()
            .flatten()
            .and_then(|line| line.strip_prefix("listening ").map(str::to_owned))
            .expect("the OpenID provider prints its issuer");
        let stdin = child.stdin.take().expect("stdin");
        Self {
            _child: child,
            stdin,
            lines,
            issuer,
        }
    }

    /// The provider starts over with a new signing key on the same issuer,
    /// as one that rotated its keys.
    pub async fn rotate_keys(&mut self) {
        use tokio::io::AsyncWriteExt;
        self.stdin.write_all(b"rotate\n").await.unwrap();
        self.stdin.flush().await.unwrap();
        let answer = tokio::time::timeout(Duration::from_secs(10), self.lines.next_line())
            .await
            .expect("the provider answers within 10 s");
        assert_eq!(answer.unwrap().as_deref(), Some("rotated"));
    }

    /// The variables that make keygate sign people in through this
    /// provider.
    pub fn vars(&self) -> Vec<(&'static str, String)> {
        vec![
            ("KEYGATE_OIDC_ISSUER", self.issuer.clone()),
            ("KEYGATE_OIDC_CLIENT_ID", CLIENT_ID.to_owned()),
            ("KEYGATE_OIDC_CLIENT_SECRET", CLIENT_SECRET.to_owned()),
            ("KEYGATE_OIDC_NAME", "Example ID".to_owned()),
        ]
    }
}

/// A browser without JavaScript: a cookie jar, redirects followed by hand.
pub struct SsoBrowser {
    pub http: reqwest::Client,
    /// keygate's address, `http://127.0.0.1:PORT`.
    app: String,
}

impl SsoBrowser {
    pub fn new(app: &str) -> Self {
        let http = reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Self {
            http,
            app: app.to_owned(),
        }
    }

    /// Presses "Sign in with ..." and signs in at the provider as `login`
    /// (or presses Cancel there when `login` is `None`); returns the
    /// callback URL the provider sends the browser back to, not yet
    /// followed.
    pub async fn through_provider(&self, login: Option<&str>) -> String {
        self.through_provider_from("/sign-in/oidc", login).await.0
    }

    /// As [`through_provider`](Self::through_provider), started at keygate's
    /// `start` (a path with its query); also says whether the provider
    /// showed its login form (it does not when its own session of the
    /// person still stands, unless asked to).
    pub async fn through_provider_from(&self, start: &str, login: Option<&str>) -> (String, bool) {
        let start = self
            .http
            .get(format!("{}{start}", self.app))
            .send()
            .await
            .unwrap();
        assert_eq!(start.status(), 303, "{:?}", start.text().await);
        let mut url = location(&start);
        let mut asked = false;
        loop {
            if url.starts_with(&format!("{}/sign-in/oidc/callback", self.app)) {
                return (url, asked);
            }
            let response = self.http.get(&url).send().await.unwrap();
            if response.status().is_redirection() {
                url = joined(&url, &location(&response));
                continue;
            }
            let status = response.status();
            let html = response.text().await.unwrap();
            assert_eq!(status, 200, "{url}: {html}");
            let actions = form_actions(&html);
            asked = true;
            let answer = match login {
                Some(login) => {
                    let action = actions.first().expect("the login form");
                    self.http.post(action).form(&[("login", login)])
                }
                None => {
                    let abort = actions.iter().find(|a| a.ends_with("/abort"));
                    self.http.post(abort.expect("the cancel form"))
                }
            };
            let response = answer.send().await.unwrap();
            assert!(response.status().is_redirection(), "{html}");
            url = joined(&url, &location(&response));
        }
    }

    /// GETs a URL of keygate's (or any), without following redirects.
    pub async fn get(&self, url: &str) -> reqwest::Response {
        self.http.get(url).send().await.unwrap()
    }

    /// Signs in at the provider as `login` and follows the callback.
    pub async fn sign_in(&self, login: &str) -> reqwest::Response {
        let callback = self.through_provider(Some(login)).await;
        self.get(&callback).await
    }
}

pub fn location(response: &reqwest::Response) -> String {
    response
        .headers()
        .get(LOCATION)
        .unwrap_or_else(|| panic!("no Location in {response:?}"))
        .to_str()
        .unwrap()
        .to_owned()
}

/// Whether a response sets (not removes) a cookie named `name`.
pub fn sets_cookie(response: &reqwest::Response, name: &str) -> bool {
    response.headers().get_all(SET_COOKIE).iter().any(|value| {
        let value = value.to_str().unwrap_or_default();
        value.starts_with(&format!("{name}=")) && !value.contains("Max-Age=0")
    })
}

fn joined(base: &str, location: &str) -> String {
    reqwest::Url::parse(base)
        .unwrap()
        .join(location)
        .unwrap()
        .to_string()
}

fn form_actions(html: &str) -> Vec<String> {
    let pattern = regex::Regex::new(r#"<form method="post" action="([^"]+)""#).unwrap();
    pattern
        .captures_iter(html)
        .map(|c| c[1].replace("&amp;", "&"))
        .collect()
}
