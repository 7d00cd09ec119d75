//! The reference verifier as the receiver: `standardwebhooks` (PyPI), run as
//! a real HTTP server (tests/support/webhook_receiver.py), verifies every
//! delivery keygate makes, and refuses one signed with another secret —
//! which keygate records as a failure and retries.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use keygate::jobs::Job;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};

use super::{add_endpoint, deliveries};
use crate::both_engines;
use crate::helpers::{Engine, KeySpec, TestApp};

/// The interpreter with `standardwebhooks`: KEYGATE_TEST_WEBHOOK_PYTHON
/// (scripts/test makes a venv and exports it), else KEYGATE_TEST_PYTHON.
fn python() -> String {
    std::env::var("KEYGATE_TEST_WEBHOOK_PYTHON")
        .or_else(|_| std::env::var("KEYGATE_TEST_PYTHON"))
        .unwrap_or_else(|_| "python3".into())
}

/// tests/support/webhook_receiver.py, running.
struct ReferenceReceiver {
    port: u16,
    secrets: tempfile::NamedTempFile,
    reports: Arc<Mutex<Vec<Value>>>,
    _child: tokio::process::Child,
}

impl ReferenceReceiver {
    async fn start() -> Self {
        let secrets = tempfile::NamedTempFile::new().expect("a secrets file");
        std::fs::write(secrets.path(), "{}").expect("write the secrets");
        let python = python();
        let mut child = tokio::process::Command::new(&python)
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/support/webhook_receiver.py"
            ))
            .arg(secrets.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("run {python}: {e}"));
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        // Real time: a real process starting.
        let first = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
            .await
            .expect("the receiver starts within 20 s");
        let Ok(Some(first)) = first else {
            let mut stderr = String::new();
            if let Some(mut err) = child.stderr.take() {
                use tokio::io::AsyncReadExt;
                let _ = err.read_to_string(&mut stderr).await;
            }
            panic!(
                "{python} could not run the reference receiver (set KEYGATE_TEST_WEBHOOK_PYTHON \
                 to a python that can `import standardwebhooks`; scripts/test makes one):\n{stderr}"
            );
        };
        let port = first
            .strip_prefix("listening ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line: {first}"));
        let reports: Arc<Mutex<Vec<Value>>> = Arc::default();
        let sink = Arc::clone(&reports);
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                let report = serde_json::from_str(&line).expect("a JSON report");
                sink.lock().expect("reports").push(report);
            }
        });
        Self {
            port,
            secrets,
            reports,
            _child: child,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// The secret the receiver verifies each path's deliveries with.
    fn trust(&self, secrets: &[(&str, &str)]) {
        let map: serde_json::Map<String, Value> = secrets
            .iter()
            .map(|(path, secret)| ((*path).to_owned(), Value::from(*secret)))
            .collect();
        std::fs::write(self.secrets.path(), Value::Object(map).to_string())
            .expect("write the secrets");
    }

    /// Its first `count` reports. Real time: the report is written before
    /// the answer, and read from its stdout a moment later.
    async fn reports(&self, count: usize) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let reports = self.reports.lock().expect("reports").clone();
            if reports.len() >= count {
                return reports;
            }
            assert!(
                Instant::now() < deadline,
                "{count} reports expected, got {reports:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// A signing secret keygate did not make.
fn another_secret() -> String {
    let mut key = [0u8; 32];
    getrandom::fill(&mut key).expect("randomness");
    format!("whsec_{}", STANDARD.encode(key))
}

fn on(reports: &[Value], path: &str) -> Vec<Value> {
    reports
        .iter()
        .filter(|r| r["path"] == path)
        .cloned()
        .collect()
}

async fn the_reference_verifier_accepts_every_delivery_and_refuses_another_secret(engine: Engine) {
    let app = TestApp::builder(engine).jobs_on_demand().start().await;
    app.add_owner_and_api("alice@example.com").await;
    let receiver = ReferenceReceiver::start().await;
    let (good, secret) = add_endpoint(&app, &receiver.url("/good"), None).await;
    let (wrong, _) = add_endpoint(
        &app,
        &receiver.url("/wrong"),
        Some(vec!["key.created".into()]),
    )
    .await;
    receiver.trust(&[("/good", &secret), ("/wrong", &another_secret())]);

    let key = app.create_key(KeySpec::standard("read")).await;
    app.cli_ok(&["keys", "rotate", &key.client_id]).await;
    app.cli_ok(&["keys", "revoke", &key.client_id, "--reason", "done"])
        .await;
    // One delivery per endpoint at a time: both endpoints' first, then the
    // good one's others in order.
    for expected in [2, 1, 1, 0] {
        assert_eq!(app.run_job(Job::WebhookDelivery).await, expected);
    }
    let reports = receiver.reports(4).await;
    let verified = on(&reports, "/good");
    assert!(
        verified.iter().all(|r| r["verified"] == true),
        "{verified:?}"
    );
    let types: Vec<&Value> = verified.iter().map(|r| &r["type"]).collect();
    assert_eq!(types, ["key.created", "key.rotated", "key.revoked"]);
    let mut sent: Vec<String> = deliveries(&app, &good).into_iter().map(|d| d.id).collect();
    sent.reverse();
    let got: Vec<&str> = verified
        .iter()
        .map(|r| r["id"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(got, sent);
    assert!(
        deliveries(&app, &good)
            .iter()
            .all(|d| d.status == "delivered")
    );

    // Signed with the secret keygate holds, not the one the receiver
    // trusts: refused, recorded as a failure, retried by the clock.
    let refused = on(&reports, "/wrong");
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0]["verified"], false);
    assert!(
        refused[0]["error"]
            .as_str()
            .is_some_and(|e| e.starts_with("WebhookVerificationError")),
        "{refused:?}"
    );
    let view = &deliveries(&app, &wrong)[0];
    assert_eq!(
        (view.status.as_str(), view.attempts, view.last_status_code),
        ("pending", 1, Some(400))
    );
    assert!(view.next_attempt_at.is_some());
    app.advance_clock(chrono::Duration::seconds(6));
    assert_eq!(app.run_job(Job::WebhookDelivery).await, 1);
    let again = on(&receiver.reports(5).await, "/wrong");
    assert_eq!(again.len(), 2);
    assert_eq!(
        (&again[1]["id"], &again[1]["verified"]),
        (&refused[0]["id"], &Value::Bool(false))
    );
    let view = &deliveries(&app, &wrong)[0];
    assert_eq!(
        (view.status.as_str(), view.attempts, view.last_status_code),
        ("pending", 2, Some(400))
    );
}

both_engines!(the_reference_verifier_accepts_every_delivery_and_refuses_another_secret);
