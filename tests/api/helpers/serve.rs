//! The real `keygate serve` binary as a child process: started on a free
//! port with a test's variables, its stderr collected while it runs (a
//! server logging under load never blocks on a full pipe), stopped by
//! SIGTERM or SIGKILL.

use std::os::unix::process::ExitStatusExt;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::AsyncBufReadExt;
use tokio::task::JoinHandle;

use super::TestApp;

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind a free port")
        .local_addr()
        .expect("its address")
        .port()
}

/// Waits until the server at `base` answers `/readyz` with 200. Real time: a
/// real process starting up.
pub async fn wait_ready(client: &reqwest::Client, base: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ready = client.get(format!("{base}/readyz")).send().await;
        if ready.is_ok_and(|r| r.status() == 200) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "server at {base} did not become ready"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A running `keygate serve`; killed on drop.
pub struct Serve {
    child: tokio::process::Child,
    /// `http://127.0.0.1:PORT`
    pub base: String,
    logs: Arc<Mutex<String>>,
    reader: Option<JoinHandle<()>>,
}

impl Serve {
    /// Starts `keygate serve` on `app`'s variables (and `extra`, which may
    /// override them; `RUST_LOG` is `info` unless given) on a free port,
    /// and waits until it is ready.
    ///
    /// The port is found free a moment before the server binds it, so
    /// another test (or the other server of a pair started together) may
    /// take it first: a server that exits because its port is taken is
    /// started again on another. Any other exit fails with its log.
    pub async fn start(app: &TestApp, extra: &[(&str, &str)]) -> Self {
        for _ in 0..5 {
            let mut serve = Self::spawn(app, extra);
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                // Bounded: a port taken by another test's listener that
                // never answers HTTP must not hang the wait.
                let ready = app
                    .http
                    .get(format!("{}/readyz", serve.base))
                    .timeout(Duration::from_secs(5))
                    .send()
                    .await;
                if ready.is_ok_and(|r| r.status() == 200) {
                    return serve;
                }
                if let Some(status) = serve.child.try_wait().expect("the server's status") {
                    if let Some(reader) = serve.reader.take() {
                        let _ = reader.await;
                    }
                    let logs = serve.logs();
                    assert!(
                        logs.contains("Address already in use"),
                        "keygate serve exited ({status}) before it was ready:\n{logs}"
                    );
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "server at {} did not become ready:\n{}",
                    serve.base,
                    serve.logs()
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        panic!("no free port for keygate serve in five tries");
    }

    /// As [`start`](Self::start), without waiting.
    pub fn spawn(app: &TestApp, extra: &[(&str, &str)]) -> Self {
        let port = free_port();
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_keygate"))
            .arg("serve")
            .env_clear()
            .envs(&app.vars)
            .env("KEYGATE_LISTEN", format!("127.0.0.1:{port}"))
            .env("RUST_LOG", "info")
            .envs(extra.iter().copied())
            .current_dir(app.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("run keygate serve");
        let logs = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().expect("stderr");
        let reader = {
            let logs = Arc::clone(&logs);
            tokio::spawn(async move {
                let mut lines = tokio::io::BufReader::new(stderr).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    let mut logs = logs.lock().unwrap_or_else(|e| e.into_inner());
                    logs.push_str(&line);
                    logs.push('\n');
                }
            })
        };
        Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
            logs,
            reader: Some(reader),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// What it logged so far.
    pub fn logs(&self) -> String {
        self.logs.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn signal(&self, signal: &str) {
        let pid = self.child.id().expect("still running").to_string();
        let sent = std::process::Command::new("kill")
            .args([signal, &pid])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill {signal} {pid}");
    }

    /// SIGTERM: what an orchestrator sends to stop it.
    pub fn sigterm(&self) {
        self.signal("-TERM");
    }

    /// kill -9: no shutdown of any kind.
    pub async fn kill(&mut self) {
        self.child.kill().await.expect("kill -9");
        self.exited(Duration::from_secs(5)).await;
    }

    /// Waits up to `within` for the process to exit, then for the last of
    /// its logs; returns its status.
    pub async fn exited(&mut self, within: Duration) -> ExitStatus {
        let status = tokio::time::timeout(within, self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("keygate serve still running after {within:?}"))
            .expect("wait for keygate serve");
        if let Some(reader) = self.reader.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), reader).await;
        }
        status
    }

    /// Sends SIGTERM and insists on exit status 0 within `within`; returns
    /// the logs.
    pub async fn stop(mut self, within: Duration) -> String {
        self.sigterm();
        let status = self.exited(within).await;
        let logs = self.logs();
        assert!(
            status.success(),
            "exit {:?}, signal {:?}: {logs}",
            status.code(),
            status.signal()
        );
        logs
    }
}
