//! A real headless Chromium driven through chromedriver (WebDriver), for the
//! console's tests: pages are loaded over real HTTP from the app under test,
//! forms are filled and submitted as a person would, and every page is
//! checked by axe-core for accessibility at desktop and phone width. With
//! `KEYGATE_TEST_SCREENSHOTS=1` each is also saved as a screenshot at both
//! widths under `target/screenshots/`, to look at (a full-height PNG costs a
//! second or two a page, so ordinary runs skip it).
//!
//! `scripts/test` installs Debian's `chromium` and `chromium-driver` and
//! axe-core from npm; `KEYGATE_TEST_CHROMEDRIVER` and `KEYGATE_TEST_AXE`
//! point elsewhere.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};
use tokio::process::{Child, Command};

pub const DESKTOP: (u32, u32) = (1280, 900);
pub const PHONE: (u32, u32) = (390, 844);

pub struct Browser {
    pub client: Client,
    driver: Child,
    pub downloads: tempfile::TempDir,
    _profile: tempfile::TempDir,
}

fn chromedriver() -> PathBuf {
    let path = std::env::var_os("KEYGATE_TEST_CHROMEDRIVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromedriver"));
    assert!(
        path.exists(),
        "{} not found: the console's browser tests need Debian's chromium and \
         chromium-driver (scripts/test installs them), or KEYGATE_TEST_CHROMEDRIVER",
        path.display()
    );
    path
}

/// axe-core's source, read once.
fn axe_source() -> &'static str {
    static SOURCE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SOURCE.get_or_init(|| {
        let path = std::env::var_os("KEYGATE_TEST_AXE")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("target/npm/node_modules/axe-core/axe.min.js")
            });
        std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "axe-core not found at {} ({e}): scripts/test installs it from npm, \
                 or set KEYGATE_TEST_AXE",
                path.display()
            )
        })
    })
}

/// Where screenshots go, when `KEYGATE_TEST_SCREENSHOTS` asks for them.
pub fn screenshot_dir() -> Option<PathBuf> {
    std::env::var_os("KEYGATE_TEST_SCREENSHOTS").filter(|v| !v.is_empty() && v != "0")?;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    Some(dir)
}

/// The WebAuthn automation commands chromedriver serves (W3C WebAuthn
/// Level 2 §11.3).
#[derive(Debug)]
enum WebAuthnCommand {
    AddAuthenticator,
    Credentials(String),
}

impl fantoccini::wd::WebDriverCompatibleCommand for WebAuthnCommand {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        let session = session_id.unwrap_or_default();
        match self {
            Self::AddAuthenticator => {
                base_url.join(&format!("session/{session}/webauthn/authenticator"))
            }
            Self::Credentials(id) => base_url.join(&format!(
                "session/{session}/webauthn/authenticator/{id}/credentials"
            )),
        }
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        match self {
            Self::AddAuthenticator => {
                let options = json!({
                    "protocol": "ctap2",
                    "transport": "internal",
                    "hasResidentKey": true,
                    "hasUserVerification": true,
                    "isUserConsenting": true,
                    "isUserVerified": true,
                });
                (http::Method::POST, Some(options.to_string()))
            }
            Self::Credentials(_) => (http::Method::GET, None),
        }
    }
}

impl Browser {
    pub async fn start() -> Self {
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let driver = Command::new(chromedriver())
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("chromedriver starts");
        let profile = tempfile::tempdir().unwrap();
        let downloads = tempfile::tempdir().unwrap();
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": std::env::var("KEYGATE_TEST_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()),
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--disable-extensions",
                    "--hide-scrollbars", "--force-device-scale-factor=1",
                    format!("--user-data-dir={}", profile.path().display()),
                    format!("--window-size={},{}", DESKTOP.0, DESKTOP.1),
                ],
                "prefs": {
                    "download.default_directory": downloads.path(),
                    "download.prompt_for_download": false,
                    "credentials_enable_service": false,
                    "profile.password_manager_enabled": false,
                },
            }),
        );
        let url = format!("http://127.0.0.1:{port}");
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let client = loop {
            match ClientBuilder::new(HttpConnector::new())
                .capabilities(caps.clone())
                .connect(&url)
                .await
            {
                Ok(client) => break client,
                Err(e) if std::time::Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("could not start a Chromium session through chromedriver: {e}"),
            }
        };
        Self {
            client,
            driver,
            downloads,
            _profile: profile,
        }
    }

    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.unwrap();
    }

    pub async fn path(&self) -> String {
        let url = self.client.current_url().await.unwrap();
        match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_owned(),
        }
    }

    pub async fn fill(&self, css: &str, value: &str) {
        let field = self.client.find(Locator::Css(css)).await.unwrap();
        field.clear().await.unwrap();
        field.send_keys(value).await.unwrap();
    }

    pub async fn click(&self, css: &str) {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no element {css}: {e}"))
            .click()
            .await
            .unwrap();
    }

    /// Clicks something that loads a new page (a link, a form's button)
    /// and waits until that page has loaded: a click returns as soon as the
    /// browser took it, and on a loaded machine the old page is still
    /// there a moment later.
    pub async fn follow(&self, css: &str) {
        self.mark_document().await;
        self.click(css).await;
        self.wait_for_new_document().await;
    }

    /// As [`follow`](Self::follow), for a form whose script asks "are you
    /// sure?" first: the prompt is accepted.
    pub async fn follow_confirming(&self, css: &str) {
        self.mark_document().await;
        self.click(css).await;
        self.client.accept_alert().await.unwrap();
        self.wait_for_new_document().await;
    }

    /// As [`follow`](Self::follow), for an element found otherwise.
    pub async fn follow_element(&self, element: fantoccini::elements::Element, confirm: bool) {
        self.mark_document().await;
        element.click().await.unwrap();
        if confirm {
            self.client.accept_alert().await.unwrap();
        }
        self.wait_for_new_document().await;
    }

    /// Reloads the page and waits for the new one (a prompt to post the
    /// form again, if the browser shows one, is accepted).
    pub async fn reload(&self) {
        self.mark_document().await;
        self.client.refresh().await.unwrap();
        let _ = self.client.accept_alert().await;
        self.wait_for_new_document().await;
    }

    async fn mark_document(&self) {
        self.client
            .execute("window.__keygate_old_page = true;", vec![])
            .await
            .unwrap();
    }

    async fn wait_for_new_document(&self) {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let state = self
                .client
                .execute(
                    "return window.__keygate_old_page === true ? 'old' : document.readyState;",
                    vec![],
                )
                .await;
            if let Ok(Value::String(state)) = state
                && state == "complete"
            {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no new page loaded within 20 s (still at {})",
                self.path().await
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until an element matches `css` (a script changed the page).
    pub async fn wait_for(&self, css: &str) {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while !self.exists(css).await {
            assert!(
                std::time::Instant::now() < deadline,
                "no {css} within 20 s: {}",
                self.body_text().await
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A WebDriver virtual authenticator (W3C WebAuthn §11, "Automation")
    /// in this browser: a platform authenticator that keeps discoverable
    /// credentials and verifies its user, as a phone or laptop does. Returns
    /// its ID.
    pub async fn add_virtual_authenticator(&self) -> String {
        let answer = self
            .client
            .issue_cmd(WebAuthnCommand::AddAuthenticator)
            .await
            .expect("chromedriver adds a virtual authenticator");
        answer
            .as_str()
            .map(str::to_owned)
            .or_else(|| answer["authenticatorId"].as_str().map(str::to_owned))
            .unwrap_or_else(|| panic!("no authenticator ID in {answer}"))
    }

    /// The credentials the virtual authenticator `id` holds.
    pub async fn authenticator_credentials(&self, id: &str) -> Vec<Value> {
        let answer = self
            .client
            .issue_cmd(WebAuthnCommand::Credentials(id.to_owned()))
            .await
            .expect("chromedriver lists the credentials");
        answer
            .as_array()
            .cloned()
            .or_else(|| answer["credentials"].as_array().cloned())
            .unwrap_or_default()
    }

    pub async fn text(&self, css: &str) -> String {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no element {css}: {e}"))
            .text()
            .await
            .unwrap()
    }

    pub async fn body_text(&self) -> String {
        self.text("body").await
    }

    pub async fn exists(&self, css: &str) -> bool {
        !self
            .client
            .find_all(Locator::Css(css))
            .await
            .unwrap()
            .is_empty()
    }

    pub async fn resize(&self, (width, height): (u32, u32)) {
        self.client.set_window_size(width, height).await.unwrap();
    }

    /// Checks the page with axe-core at desktop and phone width and, when
    /// screenshots are asked for, saves it at each as `NAME.png` and
    /// `NAME-phone.png`.
    pub async fn capture(&self, name: &str) {
        let title = self.client.title().await.unwrap();
        assert!(
            !title.is_empty(),
            "{name}: the page has no title, so it did not render: {}",
            self.body_text().await
        );
        let dir = screenshot_dir();
        for (size, suffix) in [(DESKTOP, ""), (PHONE, "-phone")] {
            self.resize(size).await;
            if let Some(dir) = &dir {
                self.full_height().await;
                let png = self.client.screenshot().await.unwrap();
                std::fs::write(dir.join(format!("{name}{suffix}.png")), png).unwrap();
            }
            self.assert_accessible(&format!("{name}{suffix}")).await;
        }
        self.resize(DESKTOP).await;
    }

    /// Grows the window to the page's height, so a screenshot shows all of it.
    async fn full_height(&self) {
        let (width, _) = self.client.get_window_size().await.unwrap();
        let height = self
            .client
            .execute("return document.documentElement.scrollHeight;", vec![])
            .await
            .unwrap()
            .as_u64()
            .unwrap_or(900) as u32;
        self.client
            .set_window_size(width as u32, height.clamp(600, 4000) + 120)
            .await
            .unwrap();
    }

    /// Runs axe-core (WCAG 2 A and AA rules, and best practices) on the page
    /// and fails on any serious or critical violation.
    pub async fn assert_accessible(&self, page: &str) {
        // Injected once per page: half a megabyte of script to send and
        // compile, which the page keeps until it is left.
        let loaded = self
            .client
            .execute("return typeof axe !== 'undefined';", vec![])
            .await
            .unwrap();
        if loaded != Value::Bool(true) {
            self.client.execute(axe_source(), vec![]).await.unwrap();
        }
        let result = self
            .client
            .execute_async(
                "const done = arguments[arguments.length - 1];
                 axe.run(document, { resultTypes: ['violations'] })
                    .then(r => done(r.violations.map(v => ({
                        id: v.id, impact: v.impact, help: v.help,
                        nodes: v.nodes.map(n => n.target.join(' ')) }))))
                    .catch(e => done([{ id: 'axe-error', impact: 'critical', help: String(e), nodes: [] }]));",
                vec![],
            )
            .await
            .unwrap();
        let bad: Vec<&Value> = result
            .as_array()
            .unwrap()
            .iter()
            .filter(|v| matches!(v["impact"].as_str(), Some("serious" | "critical")))
            .collect();
        assert!(
            bad.is_empty(),
            "accessibility violations on {page}: {}",
            serde_json::to_string_pretty(&bad).unwrap()
        );
    }

    /// The file the browser downloaded, once it is complete.
    pub async fn downloaded(&self, name: &str) -> String {
        let path = self.downloads.path().join(name);
        // Chromium may create the file before it writes it: a download is
        // finished once no `.crdownload` is left and two reads 100 ms apart
        // agree on a non-empty content.
        let mut previous: Option<String> = None;
        for _ in 0..100 {
            let in_progress = std::fs::read_dir(self.downloads.path()).unwrap().any(|e| {
                e.unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with(".crdownload")
            });
            let now = std::fs::read_to_string(&path)
                .ok()
                .filter(|t| !t.is_empty());
            if !in_progress && now.is_some() && now == previous {
                return now.unwrap_or_default();
            }
            previous = now;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let present: Vec<_> = std::fs::read_dir(self.downloads.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        panic!("{name} was not downloaded; the download folder holds {present:?}");
    }

    pub async fn close(mut self) {
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill().await;
    }
}
