//! GitHub's secret scanning partner alerts (INTERFACE.md "Leaked secrets"):
//! `POST /integrations/github/secret-scanning`, signed with a key of
//! `KEYGATE_GITHUB_SCANNING_KEYS`, revokes each live secret's key once and
//! labels every match; a bad signature changes nothing; without the
//! variable there is no such endpoint. The tests play GitHub with their own
//! P-256 key pairs.

use std::path::Path;
use std::time::Duration;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine as _;
use serde_json::{Value, json};

use crate::both_engines;
use crate::helpers::mail::{SmtpSink, wait_until_outbox_settled};
use crate::helpers::serve::Serve;
use crate::helpers::{Engine, Key, KeySpec, TestApp, spawn_app, wrong_checksum};

const OWNER: &str = "alice@example.com";
const PATH: &str = "/integrations/github/secret-scanning";
const TOKEN_TYPE: &str = "keygate_client_secret";
const LEAK_URL: &str = "https://github.com/octo/app/blob/4f2a/config.yml";

/// GitHub as the tests play it: two published keys (the outgoing one and
/// the current one) and a key it never published.
struct Github {
    old: EcdsaKeyPair,
    current: EcdsaKeyPair,
    stranger: EcdsaKeyPair,
}

const OLD_ID: &str = "90a421169f0a406205f1563a953312f0be898d3c7b6c06b681aa86a874555f4a";
const CURRENT_ID: &str = "bcb53661c06b4728e59d897fb6165d5c9cda0fd9cdf9d09ead458168deb7518c";

fn key_pair() -> EcdsaKeyPair {
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &SystemRandom::new())
        .unwrap();
    EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref()).unwrap()
}

fn pem(pair: &EcdsaKeyPair) -> String {
    let der = pair.public_key().as_der().unwrap();
    let b64 = base64::engine::general_purpose::STANDARD.encode(der.as_ref());
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        lines.join("\n")
    )
}

impl Github {
    fn new() -> Self {
        Self {
            old: key_pair(),
            current: key_pair(),
            stranger: key_pair(),
        }
    }

    /// The keys file as https://api.github.com/meta/public_keys/secret_scanning
    /// answers it; returns its path.
    fn write_keys(&self, dir: &Path) -> String {
        let file = json!({
            "public_keys": [
                { "key_identifier": OLD_ID, "key": pem(&self.old), "is_current": false },
                { "key_identifier": CURRENT_ID, "key": pem(&self.current), "is_current": true },
            ]
        });
        let path = dir.join("github-secret-scanning-keys.json");
        std::fs::write(&path, serde_json::to_vec_pretty(&file).unwrap()).unwrap();
        path.display().to_string()
    }

    /// base64 of the ASN.1 DER ECDSA P-256 SHA-256 signature of `body`.
    fn sign(pair: &EcdsaKeyPair, body: &str) -> String {
        let sig = pair.sign(&SystemRandom::new(), body.as_bytes()).unwrap();
        base64::engine::general_purpose::STANDARD.encode(sig.as_ref())
    }

    fn signed(&self, body: &str) -> Vec<(&'static str, String)> {
        vec![
            ("Github-Public-Key-Identifier", CURRENT_ID.to_owned()),
            (
                "Github-Public-Key-Signature",
                Self::sign(&self.current, body),
            ),
        ]
    }
}

/// Request headers: name and value.
type Headers = Vec<(&'static str, String)>;

/// POSTs `body` with `headers`; returns status, headers and body text.
async fn post(
    client: &reqwest::Client,
    url: &str,
    headers: &[(&str, String)],
    body: &str,
) -> (u16, reqwest::header::HeaderMap, String) {
    let mut request = client
        .post(url)
        .header("content-type", "application/json")
        .header("user-agent", "GitHub-Hookshot/044aadd")
        .body(body.to_owned());
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.text().await.unwrap())
}

/// GitHub's alert body for `tokens`, each found in a commit's file.
fn alert(tokens: &[&str]) -> String {
    let matches: Vec<Value> = tokens
        .iter()
        .map(|t| json!({ "token": t, "type": TOKEN_TYPE, "url": LEAK_URL, "source": "content" }))
        .collect();
    Value::Array(matches).to_string()
}

/// The labels a 200 answer gives, in order, after checking that each echoes
/// its token and type.
fn labels(text: &str, tokens: &[&str]) -> Vec<String> {
    let answer: Value = serde_json::from_str(text).unwrap();
    let answer = answer.as_array().unwrap();
    assert_eq!(answer.len(), tokens.len(), "{text}");
    answer
        .iter()
        .zip(tokens)
        .map(|(item, token)| {
            assert_eq!(item["token_raw"], *token);
            assert_eq!(item["token_type"], TOKEN_TYPE);
            assert_eq!(item.as_object().unwrap().len(), 3, "{item}");
            item["label"].as_str().unwrap().to_owned()
        })
        .collect()
}

fn revocations_of(app: &TestApp, key: &Key) -> i64 {
    app.count_rows(&format!(
        "SELECT COUNT(*) AS n FROM audit_events \
         WHERE action = 'key.revoked' AND target = '{}' AND actor = 'keygate' \
         AND source_addr = '127.0.0.1'",
        key.client_id
    ))
}

/// The real binary and a real SMTP server. Every kind of bad signature is
/// 401 and changes nothing; a signed batch of a live secret, a previous
/// secret within its grace, a wrong checksum, a well-formed secret of no
/// key and a secret rotated away is handled item by item: the two live
/// keys revoked, their owner emailed once each, audited; the same batch
/// again revokes and emails nothing more, and labels the revoked key's
/// current secret `true_positive` still (a real secret), the rest
/// `false_positive`. No secret reaches a log line, an email, an audit
/// event or a row.
async fn a_signed_alert_is_handled_item_by_item_and_a_bad_signature_changes_nothing(
    engine: Engine,
) {
    let github = Github::new();
    let smtp = SmtpSink::started().await;
    let dir = tempfile::tempdir().unwrap();
    let keys_file = github.write_keys(dir.path());
    let app = TestApp::builder(engine)
        .vars(&[
            ("KEYGATE_SMTP_URL", &smtp.url()),
            ("KEYGATE_GITHUB_SCANNING_KEYS", &keys_file),
        ])
        .prepare();
    let server = Serve::start(&app, &[("RUST_LOG", "debug")]).await;
    let url = server.url(PATH);
    app.add_owner_and_api(OWNER).await;
    let live = app.create_key(KeySpec::reader(OWNER, "live")).await;
    let graced = app.create_key(KeySpec::reader(OWNER, "graced")).await;
    let rotated = app.create_key(KeySpec::reader(OWNER, "rotated")).await;
    let bystander = app.create_key(KeySpec::reader(OWNER, "bystander")).await;
    app.cli_ok(&["keys", "rotate", &graced.client_id, "--grace", "1h"])
        .await;
    let rotated_now = app
        .cli_ok(&["keys", "rotate", &rotated.client_id, "--json"])
        .await
        .json()["client_secret"]
        .as_str()
        .unwrap()
        .to_owned();
    // Four "created", two "rotated".
    smtp.wait_for(6, Duration::from_secs(20)).await;

    let unknown = crate::helpers::fixtures::unused_secret();
    let wrong = wrong_checksum(&live.client_secret);
    let tokens = [
        live.client_secret.as_str(),
        wrong.as_str(),
        unknown.as_str(),
        rotated.client_secret.as_str(),
        graced.client_secret.as_str(),
        live.client_secret.as_str(),
    ];
    let body = alert(&tokens);

    // Bad signatures: 401, nothing read, nothing changed.
    let before = app.table_counts();
    let good = Github::sign(&github.current, &body);
    let tampered = body.replace("content", "commit");
    let id = |v: &str| ("Github-Public-Key-Identifier", v.to_owned());
    let sig = |v: &str| ("Github-Public-Key-Signature", v.to_owned());
    let cases: Vec<(&str, Headers, &str)> = vec![
        ("no headers", vec![], body.as_str()),
        ("no signature", vec![id(CURRENT_ID)], &body),
        ("no identifier", vec![sig(&good)], &body),
        (
            "an unknown identifier",
            vec![id("0123abcd"), sig(&good)],
            &body,
        ),
        (
            "garbage base64",
            vec![id(CURRENT_ID), sig("%%%not base64%%%")],
            &body,
        ),
        ("an empty signature", vec![id(CURRENT_ID), sig("")], &body),
        (
            "a key GitHub never published",
            vec![id(CURRENT_ID), sig(&Github::sign(&github.stranger, &body))],
            &body,
        ),
        (
            "the other published key's identifier",
            vec![id(OLD_ID), sig(&good)],
            &body,
        ),
        (
            "a tampered body",
            vec![id(CURRENT_ID), sig(&good)],
            &tampered,
        ),
        (
            "a signature of a truncated body",
            vec![
                id(CURRENT_ID),
                sig(&Github::sign(&github.current, &body[1..])),
            ],
            &body,
        ),
    ];
    for (what, headers, sent) in &cases {
        let (status, response_headers, text) = post(&app.http, &url, headers, sent).await;
        assert_eq!(status, 401, "{what}: {text}");
        assert_eq!(
            response_headers["content-type"], "application/json",
            "{what}"
        );
        assert_eq!(response_headers["cache-control"], "no-store", "{what}");
        assert!(response_headers.contains_key("www-authenticate"), "{what}");
        let error: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(error["error"], "invalid_signature", "{what}: {text}");
        assert!(error["error_description"].is_string(), "{what}: {text}");
        for token in &tokens {
            assert!(!text.contains(token), "{what}: a token in the answer");
        }
    }
    assert_eq!(app.table_counts(), before);
    assert_eq!(app.listed_key(&live.client_id).await["status"], "active");
    // The old key signs too: GitHub may still use it while it rotates.
    let (status, _, text) = post(
        &app.http,
        &url,
        &[id(OLD_ID), sig(&Github::sign(&github.old, "[]"))],
        "[]",
    )
    .await;
    assert_eq!((status, text.as_str()), (200, "[]"));

    // Signed, but not GitHub's shape: 400, nothing changed.
    let too_many = alert(&vec!["kgs_x"; 1001]);
    for bad in [
        "not json",
        r#"{"token": "kgs_x"}"#,
        "[1]",
        r#"[{"type": "t"}]"#,
        &too_many,
    ] {
        let (status, _, text) = post(&app.http, &url, &github.signed(bad), bad).await;
        assert_eq!(status, 400, "{bad}: {text}");
        let error: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(error["error"], "invalid_request", "{text}");
    }
    // Bodies are read up to 1 MiB.
    let huge = format!("[{}]", " ".repeat(1024 * 1024));
    let (status, _, text) = post(&app.http, &url, &github.signed(&huge), &huge).await;
    assert_eq!(status, 413, "{text}");
    assert_eq!(
        serde_json::from_str::<Value>(&text).unwrap()["error"],
        "invalid_request"
    );
    assert_eq!(app.table_counts(), before);

    // The signed alert, item by item.
    let (status, headers, text) = post(&app.http, &url, &github.signed(&body), &body).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(
        labels(&text, &tokens),
        [
            "true_positive",
            "false_positive",
            "false_positive",
            "false_positive",
            "true_positive",
            "true_positive",
        ]
    );
    let expected_reason = format!("exposed: GitHub secret scanning: content {LEAK_URL}");
    for key in [&live, &graced] {
        let row = app.listed_key(&key.client_id).await;
        assert_eq!(row["status"], "revoked", "{row}");
        assert_eq!(row["revoked_reason"], expected_reason.as_str());
        assert_eq!(row["revoked_by"], "keygate");
        assert_eq!(revocations_of(&app, key), 1);
    }
    for key in [&rotated, &bystander] {
        assert_eq!(app.listed_key(&key.client_id).await["status"], "active");
    }
    let token = app
        .http
        .post(server.url("/oauth/token"))
        .basic_auth(&rotated.client_id, Some(&rotated_now))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(token.status(), 200, "the rotated key's new secret works");

    let messages = smtp.wait_for(8, Duration::from_secs(20)).await;
    let exposed: Vec<_> = messages
        .iter()
        .filter(|m| m.subject.contains("exposed"))
        .collect();
    assert_eq!(
        exposed.len(),
        2,
        "{:?}",
        messages.iter().map(|m| &m.subject).collect::<Vec<_>>()
    );
    for key in [&live, &graced] {
        let email = exposed
            .iter()
            .find(|m| m.text.contains(&key.client_id))
            .expect("an exposed email for each revoked key");
        email.assert_well_formed(OWNER, key);
        assert!(
            email.text.contains("GitHub secret scanning"),
            "{}",
            email.text
        );
        assert!(email.text.contains(LEAK_URL), "{}", email.text);
    }

    // The same alert again: nothing is live any more, nothing changes. The
    // revoked key's secret is still a real one; the graced previous secret
    // lost its hash with the revocation.
    let after_first = app.table_counts();
    let (status, _, text) = post(&app.http, &url, &github.signed(&body), &body).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(
        labels(&text, &tokens),
        [
            "true_positive",
            "false_positive",
            "false_positive",
            "false_positive",
            "false_positive",
            "true_positive",
        ],
        "{text}"
    );
    assert_eq!(app.table_counts(), after_first);
    // Once nothing is left to send, whatever was queued has arrived.
    wait_until_outbox_settled(&app, Duration::from_secs(20)).await;
    assert_eq!(smtp.messages().len(), 8);
    for key in [&live, &graced] {
        assert_eq!(revocations_of(&app, key), 1);
    }
    assert_eq!(
        app.count_rows("SELECT COUNT(*) AS n FROM email_outbox WHERE event = 'exposed'"),
        2
    );

    let logs = server.logs();
    assert!(logs.contains("reported exposed"), "{logs}");
    assert!(
        logs.contains("handled a GitHub secret-scanning alert"),
        "{logs}"
    );
    assert!(
        logs.contains("refused a GitHub secret-scanning alert"),
        "{logs}"
    );
    let database = app.dump_database();
    for secret in [
        &live.client_secret,
        &graced.client_secret,
        &rotated.client_secret,
    ] {
        for text in [secret.as_str(), &secret[4..]] {
            assert!(!logs.contains(text), "a secret is in the logs");
            assert!(!database.contains(text), "a secret is stored");
            for message in smtp.messages() {
                assert!(!message.raw.contains(text), "a secret is in an email");
            }
        }
    }
}

/// Without `KEYGATE_GITHUB_SCANNING_KEYS` the endpoint does not exist: a
/// signed alert gets the very answer of an unknown path. With it, other
/// methods are 405.
async fn without_the_keys_file_there_is_no_endpoint(engine: Engine) {
    let github = Github::new();
    let app = spawn_app(engine).await;
    let ci = app.standard_key("read").await;
    let body = alert(&[&ci.client_secret]);
    let answer = |response: reqwest::Response| async move {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        (
            status,
            headers.get("content-type").cloned(),
            response.text().await.unwrap(),
        )
    };
    let mut signed = app
        .http
        .post(format!("{}{PATH}", app.address))
        .body(body.clone());
    for (name, value) in github.signed(&body) {
        signed = signed.header(name, value);
    }
    let not_there = answer(signed.send().await.unwrap()).await;
    let unknown = answer(
        app.http
            .post(format!("{}/integrations/github/elsewhere", app.address))
            .body(body.clone())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(not_there.0, 404);
    assert_eq!(not_there, unknown);
    assert_eq!(
        app.cli_ok(&["keys", "list", "--json"]).await.json()[0]["status"],
        "active"
    );

    let dir = tempfile::tempdir().unwrap();
    let keys_file = github.write_keys(dir.path());
    let with = TestApp::builder(engine)
        .vars(&[("KEYGATE_GITHUB_SCANNING_KEYS", &keys_file)])
        .start()
        .await;
    let get = with
        .http
        .get(format!("{}{PATH}", with.address))
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), 405);
    assert_eq!(get.headers()["allow"], "POST");
}

/// A keys file that is missing or not GitHub's stops `keygate serve` with
/// one line naming the variable.
async fn a_bad_keys_file_stops_start_up(engine: Engine) {
    let dir = tempfile::tempdir().unwrap();
    let not_keys = dir.path().join("not-keys.json");
    std::fs::write(&not_keys, r#"{"public_keys": [{"key_identifier": "a", "key": "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", "is_current": true}]}"#).unwrap();
    let missing = dir.path().join("missing.json");
    for path in [&not_keys, &missing] {
        let path = path.display().to_string();
        let app = TestApp::builder(engine)
            .vars(&[("KEYGATE_GITHUB_SCANNING_KEYS", &path)])
            .prepare();
        let mut serve = Serve::spawn(&app, &[]);
        let status = serve.exited(Duration::from_secs(20)).await;
        assert!(!status.success());
        let logs = serve.logs();
        let line = logs
            .lines()
            .find(|l| l.contains("KEYGATE_GITHUB_SCANNING_KEYS"))
            .unwrap_or_else(|| panic!("no line names the variable: {logs}"));
        assert!(line.contains(&path), "{line}");
    }
}

both_engines!(
    a_signed_alert_is_handled_item_by_item_and_a_bad_signature_changes_nothing,
    without_the_keys_file_there_is_no_endpoint,
    a_bad_keys_file_stops_start_up,
);

/// The patterns docs/LEAKED_KEYS.md gives to GitHub, GitLab, gitleaks and
/// trufflehog, read from the page: each finds a generated secret whole in
/// the places secrets end up, and nothing one character shorter, longer or
/// glued to other letters.
#[test]
fn the_documented_patterns_find_exactly_keygate_secrets() {
    let page =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/LEAKED_KEYS.md"))
            .unwrap();
    let flat = regex::Regex::new(r"\s+").unwrap().replace_all(&page, " ");
    let one = |pattern: &str, text: &str| -> String {
        regex::Regex::new(pattern)
            .unwrap()
            .captures(text)
            .unwrap_or_else(|| panic!("{pattern} in the page"))[1]
            .to_owned()
    };
    let all = |pattern: &str| -> Vec<String> {
        regex::Regex::new(pattern)
            .unwrap()
            .captures_iter(&page)
            .map(|c| c[1].to_owned())
            .collect()
    };

    let format = one(r"(?m)^```\n(kgs_\S+)\n```", &page);
    assert_eq!(format, one(r"the regular expression: `([^`]+)`", &flat));
    let github = regex::Regex::new(
        r#"secret format `([^`]+)`, "before secret" `([^`]+)`, "after secret" `([^`]+)`"#,
    )
    .unwrap()
    .captures(&flat)
    .map(|c| (c[1].to_owned(), c[2].to_owned(), c[3].to_owned()))
    .expect("GitHub's custom pattern in the page");
    assert_eq!(github.0, format);
    let gitleaks = all(r"regex = '''([^']+)'''");
    let trufflehog = all(r"secret: '([^']+)'");
    assert_eq!(gitleaks.len(), 2, "GitLab's and gitleaks' rules");
    assert_eq!(trufflehog.len(), 1);

    // Each pattern, as a regex whose first group is the secret found.
    let mut bounded: Vec<String> = gitleaks
        .iter()
        .chain(&trufflehog)
        .map(|p| format!("({p})"))
        .collect();
    bounded.push(format!("(?:{})({})(?:{})", github.1, github.0, github.2));
    // Compiled once: an unoptimised build compiles a regex slowly.
    let bounded: Vec<(String, regex::Regex)> = bounded
        .into_iter()
        .map(|p| {
            let compiled = regex::Regex::new(&p).unwrap();
            (p, compiled)
        })
        .collect();
    let found = |pattern: &regex::Regex, text: &str| -> Option<String> {
        pattern.captures(text).map(|c| c[1].to_owned())
    };
    let whole = regex::Regex::new(&format!("^(?:{format})$")).unwrap();
    let anywhere = regex::Regex::new(&format!("({format})")).unwrap();

    for _ in 0..200 {
        let secret = crate::helpers::fixtures::unused_secret();
        let s = secret.as_str();
        assert!(whole.is_match(s), "{format} is the whole secret");
        let shorter = &s[..s.len() - 1];
        assert_eq!(found(&anywhere, shorter), None);
        for (pattern, compiled) in &bounded {
            for text in [
                s.to_owned(),
                format!("\"{s}\""),
                format!("KEYGATE_CLIENT_SECRET={s}\n"),
                format!("client_secret: '{s}'"),
                format!("see {s}."),
                format!("{s}\nnext line"),
            ] {
                assert_eq!(
                    found(compiled, &text).as_deref(),
                    Some(s),
                    "{pattern} in {text}"
                );
            }
            for text in [
                format!("{s}A"),
                format!("x{s}"),
                shorter.to_owned(),
                format!("kgc_{}", &s[4..]),
            ] {
                assert_eq!(found(compiled, &text), None, "{pattern} in {text}");
            }
        }
    }
}
