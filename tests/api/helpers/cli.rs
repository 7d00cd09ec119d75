//! The real `keygate` binary run against the app's database, for the tests
//! that are about the command line: it runs on the real clock, in its own
//! process.

use std::process::Output;

use serde_json::Value;

use super::TestApp;

pub struct CliOutput {
    pub status: std::process::ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl CliOutput {
    fn from(output: Output) -> Self {
        Self {
            status: output.status,
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", self.stdout))
    }
}

impl TestApp {
    /// Runs the real `keygate` binary against this app's database.
    pub async fn cli(&self, args: &[&str]) -> CliOutput {
        self.cli_with_stdin(args, None).await
    }

    pub async fn cli_with_stdin(&self, args: &[&str], stdin: Option<&str>) -> CliOutput {
        use tokio::io::AsyncWriteExt;
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_keygate"));
        command
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("RUST_LOG", "warn")
            .envs(&self.vars)
            .current_dir(self.dir.path())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        // The operator's CLI names the server's issuer in its emails.
        if !self.issuer.is_empty() && !self.vars.contains_key("KEYGATE_ISSUER") {
            command.env("KEYGATE_ISSUER", &self.issuer);
        }
        let mut child = command.spawn().expect("run keygate");
        let mut pipe = child.stdin.take().expect("stdin");
        if let Some(text) = stdin {
            pipe.write_all(text.as_bytes()).await.expect("write stdin");
        }
        drop(pipe);
        CliOutput::from(child.wait_with_output().await.expect("keygate exits"))
    }

    /// Runs the CLI and insists it succeeds.
    pub async fn cli_ok(&self, args: &[&str]) -> CliOutput {
        let out = self.cli(args).await;
        assert!(
            out.status.success(),
            "keygate {args:?} failed: {}{}",
            out.stdout,
            out.stderr
        );
        out
    }

    /// [`cli_ok`](Self::cli_ok) of `keys create --json` with `args`: a key
    /// made by the real binary, on the real clock.
    pub async fn cli_create_key(&self, args: &[&str]) -> super::Key {
        let mut all = vec!["keys", "create", "--json"];
        all.extend_from_slice(args);
        let json = self.cli_ok(&all).await.json();
        super::Key {
            client_id: json["client_id"].as_str().expect("client_id").to_owned(),
            client_secret: json["client_secret"]
                .as_str()
                .expect("client_secret")
                .to_owned(),
            json,
        }
    }
}

/// A refusal on the command line: non-zero, one line on stderr holding
/// each of `words`, nothing on stdout.
pub fn assert_one_line_refusal(out: &CliOutput, words: &[&str]) {
    assert!(!out.status.success(), "succeeded: {}", out.stdout);
    assert_eq!(out.status.code(), Some(1), "{}", out.stderr);
    assert_eq!(out.stderr.trim().lines().count(), 1, "{}", out.stderr);
    for word in words {
        assert!(out.stderr.contains(word), "{word:?} not in {}", out.stderr);
    }
    assert!(out.stdout.is_empty(), "{}", out.stdout);
}
