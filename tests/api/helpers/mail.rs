//! Email as a test sees it: a real SMTP server (aiosmtpd) and what it
//! received, the `.eml` folder, the outbox's rows, one-time links in
//! messages; and waits for what a worker sends on its own timers.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use diesel::prelude::*;
use keygate::Config;
use keygate::mail::MailTuning;
use mail_parser::{MessageParser, MimeHeaders, PartType};
use tempfile::TempDir;

use super::app::TestAppBuilder;
use super::{Engine, Key, TestApp};

/// aiosmtpd storing what it accepts in a Maildir; killed on drop. Refuses
/// (550) recipients starting with "reject" (tests/support/keygate_smtp.py).
pub struct SmtpSink {
    pub port: u16,
    maildir: PathBuf,
    _dir: TempDir,
    child: Option<std::process::Child>,
}

fn python() -> String {
    std::env::var("KEYGATE_TEST_PYTHON").unwrap_or_else(|_| "/usr/bin/python3".into())
}

impl SmtpSink {
    /// A sink on a free port, not yet listening.
    pub fn stopped() -> Self {
        let dir = tempfile::tempdir().unwrap();
        Self {
            port: super::serve::free_port(),
            // aiosmtpd creates the Maildir; it must not exist beforehand.
            maildir: dir.path().join("maildir"),
            _dir: dir,
            child: None,
        }
    }

    pub async fn started() -> Self {
        let mut sink = Self::stopped();
        sink.start().await;
        sink
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}?tls=none", self.port)
    }

    /// An app whose email goes to this server.
    pub fn app(&self, engine: Engine) -> TestAppBuilder {
        TestApp::builder(engine).vars(&[("KEYGATE_SMTP_URL", &self.url())])
    }

    /// [`app`](Self::app) with short mail retries ([`fast_mail`]) and its
    /// jobs run when the test runs them.
    pub fn app_on_demand(&self, engine: Engine) -> TestAppBuilder {
        self.app(engine).config(fast_mail).jobs_on_demand()
    }

    pub async fn start(&mut self) {
        assert!(self.child.is_none(), "already running");
        let support = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support");
        let child = std::process::Command::new(python())
            .args(["-m", "aiosmtpd", "-n", "-l"])
            .arg(format!("127.0.0.1:{}", self.port))
            .args(["-c", "keygate_smtp.RejectingMailbox"])
            .arg(&self.maildir)
            .env("PYTHONPATH", support)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start aiosmtpd (set KEYGATE_TEST_PYTHON to a python that has it)");
        self.child = Some(child);
        // Real time: a real process binding its port.
        let deadline = Instant::now() + Duration::from_secs(15);
        while tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "aiosmtpd did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// An outage: the port stops answering.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn messages(&self) -> Vec<Received> {
        let Ok(entries) = std::fs::read_dir(self.maildir.join("new")) else {
            return Vec::new();
        };
        entries
            .map(|e| Received::parse(&std::fs::read(e.unwrap().path()).unwrap()))
            .collect()
    }

    /// Waits until at least `count` messages arrived.
    pub async fn wait_for(&self, count: usize, within: Duration) -> Vec<Received> {
        wait_for_messages(|| self.messages(), count, within).await
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Real time: polls a real SMTP server's Maildir (or the `.eml` folder)
/// for what a worker sent; returns at once when it is there already.
pub async fn wait_for_messages(
    read: impl Fn() -> Vec<Received>,
    count: usize,
    within: Duration,
) -> Vec<Received> {
    let deadline = Instant::now() + within;
    loop {
        let got = read();
        if got.len() >= count {
            return got;
        }
        assert!(
            Instant::now() < deadline,
            "expected {count} messages, got {}: {:?}",
            got.len(),
            got.iter().map(|m| &m.subject).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One received message, parsed.
#[derive(Debug, Clone)]
pub struct Received {
    pub raw: String,
    pub subject: String,
    pub message_id: String,
    pub to: String,
    pub content_type: String,
    /// The MIME types of the root's parts, in order.
    pub parts: Vec<String>,
    pub text: String,
    pub html: String,
    pub has_date: bool,
    pub from: String,
}

impl Received {
    pub fn parse(bytes: &[u8]) -> Self {
        let message = MessageParser::default()
            .parse(bytes)
            .expect("a parsable message");
        let root = message.root_part();
        let content_type = message
            .content_type()
            .map(|c| format!("{}/{}", c.ctype(), c.subtype().unwrap_or("")))
            .unwrap_or_default();
        let mut parts = Vec::new();
        let (mut text, mut html) = (String::new(), String::new());
        for id in root.sub_parts().unwrap_or(&[]) {
            let part = &message.parts[*id as usize];
            match &part.body {
                PartType::Text(t) => {
                    parts.push("text/plain".to_owned());
                    text = t.to_string();
                }
                PartType::Html(h) => {
                    parts.push("text/html".to_owned());
                    html = h.to_string();
                }
                _ => parts.push("other".to_owned()),
            }
        }
        Self {
            raw: String::from_utf8_lossy(bytes).into_owned(),
            subject: message.subject().unwrap_or_default().to_owned(),
            message_id: message.message_id().unwrap_or_default().to_owned(),
            to: message
                .to()
                .and_then(|a| a.first())
                .and_then(|a| a.address())
                .unwrap_or_default()
                .to_owned(),
            from: message
                .from()
                .and_then(|a| a.first())
                .and_then(|a| a.address())
                .unwrap_or_default()
                .to_owned(),
            has_date: message.date().is_some(),
            content_type,
            parts,
            text,
            html,
        }
    }

    /// Well formed as INTERFACE.md asks, to the owner, naming the key and
    /// holding no secret anywhere.
    pub fn assert_well_formed(&self, owner: &str, key: &Key) {
        assert_eq!(self.content_type, "multipart/alternative", "{}", self.raw);
        assert_eq!(self.parts, ["text/plain", "text/html"], "{}", self.raw);
        assert_eq!(self.to, owner);
        assert_eq!(self.from, "keygate@localhost");
        assert!(self.has_date, "no Date header");
        assert!(self.message_id.ends_with("@keygate"), "{}", self.message_id);
        assert!(self.text.contains(&key.client_id), "{}", self.text);
        assert!(self.html.contains(&key.client_id), "{}", self.html);
        assert!(
            self.subject
                .contains(&format!("\"{}\"", key.json["name"].as_str().unwrap()))
        );
        for secret in [&key.client_secret, &key.client_secret[4..]] {
            for (what, body) in [
                ("raw message", &self.raw),
                ("text", &self.text),
                ("html", &self.html),
            ] {
                assert!(!body.contains(secret), "the secret is in the {what}");
            }
        }
    }
}

/// Exactly one message whose subject contains `word`.
pub fn one_with<'a>(messages: &'a [Received], word: &str) -> &'a Received {
    let matching: Vec<_> = messages
        .iter()
        .filter(|m| m.subject.contains(word))
        .collect();
    assert_eq!(
        matching.len(),
        1,
        "messages with {word:?}: {:?}",
        messages.iter().map(|m| &m.subject).collect::<Vec<_>>()
    );
    matching[0]
}

/// Short retries and timeouts; the jobs themselves run when a test runs them.
pub fn fast_mail(config: &mut Config) {
    config.mail_tuning = MailTuning {
        retry_base: Duration::from_millis(200),
        retry_cap: Duration::from_secs(1),
        lease: Duration::from_secs(10),
        smtp_timeout: Duration::from_secs(5),
        ..MailTuning::default()
    };
}

#[derive(Debug, QueryableByName)]
pub struct OutboxRow {
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub event: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub recipient: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub status: String,
    #[diesel(sql_type = diesel::sql_types::Integer)]
    pub attempts: i32,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    pub last_error: Option<String>,
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub body: String,
    /// A worker holds the email right now.
    #[diesel(sql_type = diesel::sql_types::Bool)]
    pub leased: bool,
}

pub fn outbox(app: &TestApp) -> Vec<OutboxRow> {
    diesel::sql_query(
        "SELECT event, recipient, status, attempts, last_error, \
         subject || body_text || body_html AS body, \
         locked_until IS NOT NULL AS leased FROM email_outbox \
         ORDER BY sent_at, id",
    )
    .load(&mut app.db())
    .expect("the outbox")
}

/// Real time: for tests of the real binary, whose worker runs on its own
/// timers.
pub async fn wait_until(what: &str, within: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Real time: waits until no queued email is pending or held by a worker,
/// so that whatever will reach the SMTP server has reached it (a message is
/// accepted before its row is marked sent).
pub async fn wait_until_outbox_settled(app: &TestApp, within: Duration) {
    wait_until("no queued email is pending", within, || {
        outbox(app)
            .iter()
            .all(|r| r.status != "pending" && !r.leased)
    })
    .await;
}

impl TestApp {
    /// The text of the newest account email (an invitation or a reset: no
    /// key) to `recipient`. Its outbox row holds it until the worker sends
    /// it and blanks the row (the link must not outlive the sending), which
    /// may be at once: then it is read from the `.eml` file the worker
    /// wrote first (`KEYGATE_MAIL_DIR`, which every test app has unless it
    /// mails through SMTP).
    pub fn newest_account_email(&self, recipient: &str) -> String {
        use keygate::db::schema::email_outbox;
        let mut conn = self.db();
        let rows: Vec<(String, String)> = email_outbox::table
            .filter(email_outbox::recipient.eq(recipient))
            .filter(email_outbox::key_id.is_null())
            .order(email_outbox::id.desc())
            .select((email_outbox::id, email_outbox::body_text))
            .load(&mut conn)
            .expect("outbox rows");
        let (id, body) = rows.first().expect("an account email was queued");
        if !body.starts_with("(removed once sent") {
            return body.clone();
        }
        let message_id = format!("{id}@keygate");
        self.mail_files()
            .into_iter()
            .find(|message| message.message_id == message_id)
            .unwrap_or_else(|| panic!("{message_id} was sent, but not to {:?}", self.mail_dir()))
            .text
    }

    /// The token of the newest one-time link emailed to `recipient`.
    pub fn newest_link_token(&self, recipient: &str) -> String {
        let body = self.newest_account_email(recipient);
        link_token(&body).unwrap_or_else(|| panic!("no link in {body}"))
    }

    /// The app's `KEYGATE_MAIL_DIR`.
    pub fn mail_dir(&self) -> PathBuf {
        self.dir.path().join("mail")
    }

    /// The `.eml` files the app wrote to its mail folder, parsed.
    pub fn mail_files(&self) -> Vec<Received> {
        let Ok(entries) = std::fs::read_dir(self.mail_dir()) else {
            return Vec::new();
        };
        entries
            .map(|entry| entry.expect("a mail folder entry").path())
            .filter(|path| path.extension().is_some_and(|x| x == "eml"))
            .map(|path| Received::parse(&std::fs::read(path).expect("an .eml file")))
            .collect()
    }
}

/// The token of the first `/set-password?token=` link in `text`.
pub fn link_token(text: &str) -> Option<String> {
    let at = text.find("/set-password?token=")? + "/set-password?token=".len();
    let token: String = text[at..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    (!token.is_empty()).then_some(token)
}
