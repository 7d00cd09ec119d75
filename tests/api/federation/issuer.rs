//! The test OpenID issuer (`tests/support/oidc_issuer.py`) as a real
//! process: discovery, a JWKS, GitHub-Actions-shaped tokens on request,
//! key rotation and misbehaviour on command.

use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};

/// The interpreter with `cryptography`: KEYGATE_TEST_OAUTH_PYTHON
/// (scripts/test makes a venv and exports it), else KEYGATE_TEST_PYTHON.
fn python() -> String {
    std::env::var("KEYGATE_TEST_OAUTH_PYTHON")
        .or_else(|_| std::env::var("KEYGATE_TEST_PYTHON"))
        .unwrap_or_else(|_| "python3".into())
}

pub struct Issuer {
    child: tokio::process::Child,
    /// `http://127.0.0.1:PORT`, the tokens' `iss`.
    pub url: String,
    http: reqwest::Client,
}

impl Issuer {
    pub async fn start() -> Self {
        let python = python();
        let mut child = tokio::process::Command::new(&python)
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/support/oidc_issuer.py"
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("run {python}: {e}"));
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        // Real time: a real process starting.
        let first = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
            .await
            .expect("the issuer starts within 20 s");
        let port: u16 = first
            .ok()
            .flatten()
            .and_then(|l| l.strip_prefix("listening ").and_then(|p| p.parse().ok()))
            .unwrap_or_else(|| {
                panic!("{python} could not run the test issuer (set KEYGATE_TEST_OAUTH_PYTHON)")
            });
        Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
        }
    }

    async fn post(&self, path: &str, body: Value) -> reqwest::Response {
        let response = self
            .http
            .post(format!("{}{path}", self.url))
            .json(&body)
            .send()
            .await
            .expect("the test issuer answers");
        assert_eq!(response.status(), 200);
        response
    }

    /// A token as `request` says (see the script): `claims` override the
    /// GitHub-Actions-shaped defaults, `remove` drops some, `header` adds
    /// to the header, `alg` and `key` choose the signature.
    pub async fn mint(&self, request: Value) -> String {
        self.post("/mint", request)
            .await
            .text()
            .await
            .expect("a token")
    }

    /// A token with the default claims (aud `keygate`).
    pub async fn token(&self) -> String {
        self.mint(json!({})).await
    }

    /// A new signing key (new kid); the old one leaves the JWKS.
    pub async fn rotate(&self) {
        self.post("/rotate", json!({})).await;
    }

    /// How the JWKS is served: "normal", "huge", "slow" (after `delay`
    /// seconds), "redirect" (to another host), "error".
    pub async fn mode(&self, jwks: &str, delay: f64) {
        self.post("/mode", json!({"jwks": jwks, "delay": delay}))
            .await;
    }

    /// How many times the JWKS was fetched.
    pub async fn jwks_fetches(&self) -> u64 {
        let stats: Value = self
            .http
            .get(format!("{}/stats", self.url))
            .send()
            .await
            .expect("stats")
            .json()
            .await
            .expect("stats JSON");
        stats["jwks"].as_u64().expect("a count")
    }

    /// Stops the process: the issuer is down.
    pub async fn stop(&mut self) {
        self.child.kill().await.expect("stop the issuer");
    }
}
