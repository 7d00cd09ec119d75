//! Starts the real application on a random port with a fresh database, on
//! SQLite or PostgreSQL, and drives it over real HTTP and the real CLI.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::Output;
use std::sync::Mutex;
use std::time::Duration;

use diesel::prelude::*;
use keygate::jobs::{Job, Jobs};
use keygate::time::ManualClock;
use keygate::{Application, Background, Config, StartOptions};
use serde_json::Value;
use tempfile::TempDir;

pub mod proxy;
pub mod serve;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

/// Runs each listed `async fn name(engine: Engine)` once per engine, as tests
/// `sqlite::name` and `postgres::name`.
#[macro_export]
macro_rules! both_engines {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::helpers::Engine::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::helpers::Engine::Postgres).await
                }
            )*
        }
    };
}

/// The test PostgreSQL server's admin URL.
pub fn postgres_admin_url() -> String {
    std::env::var("KEYGATE_TEST_POSTGRES_URL").unwrap_or_else(|_| {
        panic!(
            "KEYGATE_TEST_POSTGRES_URL is not set: run the tests with scripts/test, \
             which starts a PostgreSQL server, or point it at one (an admin URL)"
        )
    })
}

/// A fresh, empty database of the given engine; returns its URL.
fn fresh_database(engine: Engine, dir: &TempDir) -> String {
    match engine {
        Engine::Sqlite => format!("sqlite://{}", dir.path().join("keygate.db").display()),
        Engine::Postgres => {
            let admin = postgres_admin_url();
            let name = format!("keygate_test_{}", uuid::Uuid::new_v4().simple());
            let mut conn = PgConnection::establish(&admin).expect("connect to the test PostgreSQL");
            diesel::sql_query(format!("CREATE DATABASE {name}"))
                .execute(&mut conn)
                .expect("create a test database");
            let mut url = url::Url::parse(&admin).expect("KEYGATE_TEST_POSTGRES_URL is a URL");
            url.set_path(&name);
            url.to_string()
        }
    }
}

/// Drops a test's PostgreSQL database, ending the connections still open
/// to it. A failure is reported, not raised: the test's verdict stands.
fn drop_database(url: &str) {
    let Some(name) = url::Url::parse(url)
        .ok()
        .map(|u| u.path().trim_start_matches('/').to_owned())
    else {
        return;
    };
    let dropped = PgConnection::establish(&postgres_admin_url())
        .map_err(|e| e.to_string())
        .and_then(|mut conn| {
            diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .execute(&mut conn)
                .map_err(|e| e.to_string())
        });
    if let Err(error) = dropped {
        eprintln!("could not drop the test database {name}: {error}");
    }
}

pub struct TestApp {
    pub engine: Engine,
    pub address: String,
    pub issuer: String,
    pub database_url: String,
    pub secret_key: String,
    pub dir: TempDir,
    /// Variables given to the app; the CLI gets the same.
    pub vars: HashMap<String, String>,
    pub http: reqwest::Client,
    /// The clock of every server this test starts in process: the real
    /// time until the test moves it.
    pub clock: ManualClock,
    /// Pools of the servers started in this process, closed when the test
    /// ends so that none is logging in while the test binary exits.
    pools: Mutex<Vec<keygate::db::Pool>>,
    /// The background jobs of each server started in process, in order.
    jobs: Mutex<Vec<Jobs>>,
    /// The request state of each server started in process, in order.
    states: Mutex<Vec<actix_web::web::Data<keygate::state::AppState>>>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let pools = self.pools.get_mut().unwrap_or_else(|e| e.into_inner());
        for pool in pools.drain(..) {
            keygate::db::close(&pool, Duration::from_secs(10));
        }
        if self.engine == Engine::Postgres {
            drop_database(&self.database_url);
        }
    }
}

pub async fn spawn_app(engine: Engine) -> TestApp {
    spawn_app_with(engine, &[]).await
}

/// Starts keygate with extra `KEYGATE_*` variables.
pub async fn spawn_app_with(engine: Engine, extra: &[(&str, &str)]) -> TestApp {
    let mut app = prepare_app(engine, extra);
    let (address, issuer) = app.start(|_| {}, Background::Periodic).await;
    app.address = address;
    app.issuer = issuer;
    app
}

fn rand_bytes() -> [u8; 32] {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).expect("randomness");
    b
}

#[derive(Debug, Clone)]
pub struct Key {
    pub client_id: String,
    pub client_secret: String,
    pub json: Value,
}

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
    /// Starts a second server on the same database, as a load-balanced
    /// deployment would; returns its address.
    pub async fn spawn_sibling(&self) -> String {
        self.start(|_| {}, Background::Periodic).await.0
    }

    /// Builds and runs one server process-alike on this app's variables and
    /// clock, its configuration adjusted first; returns its address and
    /// issuer.
    async fn start(
        &self,
        adjust: impl FnOnce(&mut Config),
        background: Background,
    ) -> (String, String) {
        let mut config = Config::from_vars(&self.vars).expect("valid test configuration");
        adjust(&mut config);
        let options = StartOptions {
            clock: self.clock.clone().into(),
            background,
        };
        let app = Application::build_with(config, options)
            .await
            .expect("application starts");
        let address = format!("http://127.0.0.1:{}", app.port());
        let issuer = app.issuer().to_owned();
        self.pools
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(app.pool().clone());
        self.jobs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(app.jobs());
        self.states
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(app.state());
        tokio::spawn(app.run_until_stopped());
        (address, issuer)
    }

    fn all_jobs(&self) -> Vec<Jobs> {
        self.jobs.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The jobs of the `index`th server started, to run one while another
    /// server's is under way.
    pub fn jobs_of(&self, index: usize) -> Jobs {
        self.all_jobs()
            .get(index)
            .cloned()
            .expect("that many servers are running")
    }

    /// Runs `job` once on the first server started; returns what it did.
    pub async fn run_job(&self, job: Job) -> usize {
        let jobs = self.all_jobs();
        let first = jobs.first().expect("a server is running");
        first
            .run_once(job)
            .await
            .unwrap_or_else(|e| panic!("{job:?}: {e}"))
    }

    /// Runs `job` once on every server started, all at the same moment.
    pub async fn run_job_everywhere(&self, job: Job) -> Vec<usize> {
        let runs = self.all_jobs().into_iter().map(|jobs| {
            tokio::spawn(async move {
                jobs.run_once(job)
                    .await
                    .unwrap_or_else(|e| panic!("{job:?}: {e}"))
            })
        });
        let mut done = Vec::new();
        for run in runs.collect::<Vec<_>>() {
            done.push(run.await.expect("job task"));
        }
        done
    }

    /// Moves the servers' clock forward by `by` (back, when negative).
    pub fn advance_clock(&self, by: chrono::Duration) {
        self.clock.advance(by);
    }

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

    /// The key's row as `keys list --json` shows it.
    pub async fn listed_key(&self, client_id: &str) -> Value {
        let list = self.cli_ok(&["keys", "list", "--json"]).await.json();
        list.as_array()
            .expect("a list")
            .iter()
            .find(|k| k["client_id"] == client_id)
            .cloned()
            .expect("the key is listed")
    }

    /// A user, an API `https://api.example.com` with scopes `read write`, and
    /// a key holding `scope` for it.
    pub async fn standard_key(&self, scope: &str) -> Key {
        self.standard_key_with(scope, &[]).await
    }

    /// The API `https://api.example.com` with scopes `read write`.
    pub async fn add_standard_api(&self) {
        self.cli_ok(&[
            "apis",
            "add",
            "https://api.example.com",
            "--name",
            "Example API",
            "--scopes",
            "read write",
        ])
        .await;
    }

    /// [`TestApp::standard_key`] created with more `keys create` arguments.
    pub async fn standard_key_with(&self, scope: &str, extra: &[&str]) -> Key {
        self.cli_ok(&["users", "add", "alice@example.com"]).await;
        self.add_standard_api().await;
        let mut args = vec![
            "--owner",
            "alice@example.com",
            "--name",
            "ci",
            "--scope",
            scope,
            "--audience",
            "https://api.example.com",
        ];
        args.extend_from_slice(extra);
        self.create_key(&args).await
    }

    pub async fn create_key(&self, args: &[&str]) -> Key {
        let mut all = vec!["keys", "create", "--json"];
        all.extend_from_slice(args);
        let json = self.cli_ok(&all).await.json();
        Key {
            client_id: json["client_id"].as_str().expect("client_id").to_owned(),
            client_secret: json["client_secret"]
                .as_str()
                .expect("client_secret")
                .to_owned(),
            json,
        }
    }

    pub fn token_url(&self) -> String {
        format!("{}/oauth/token", self.address)
    }

    /// `client_secret_basic` with the given form.
    pub async fn token_basic(
        &self,
        id: &str,
        secret: &str,
        form: &[(&str, &str)],
    ) -> reqwest::Response {
        self.http
            .post(self.token_url())
            .basic_auth(id, Some(secret))
            .form(form)
            .send()
            .await
            .expect("token request")
    }

    pub async fn token_for(&self, key: &Key, form: &[(&str, &str)]) -> reqwest::Response {
        self.token_basic(&key.client_id, &key.client_secret, form)
            .await
    }

    /// A token request that must succeed; returns the body.
    pub async fn access_token(&self, key: &Key) -> Value {
        let response = self
            .token_for(key, &[("grant_type", "client_credentials")])
            .await;
        let status = response.status();
        let body: Value = response.json().await.expect("JSON body");
        assert_eq!(status, 200, "{body}");
        body
    }

    pub async fn jwks(&self) -> jsonwebtoken::jwk::JwkSet {
        self.http
            .get(format!("{}/.well-known/jwks.json", self.address))
            .send()
            .await
            .expect("jwks")
            .json()
            .await
            .expect("jwks JSON")
    }

    /// Validates as a strict resource server would: the JWKS from the server,
    /// `typ`, algorithm, signature, issuer, audience and required claims.
    pub async fn validate(&self, token: &str, audience: &str) -> jsonwebtoken::TokenData<Value> {
        let header = jsonwebtoken::decode_header(token).expect("JWT header");
        assert_eq!(header.typ.as_deref(), Some("at+jwt"));
        let kid = header.kid.expect("kid");
        let jwks = self.jwks().await;
        let jwk = jwks
            .find(&kid)
            .unwrap_or_else(|| panic!("kid {kid} not in the JWKS"));
        let key = jsonwebtoken::DecodingKey::from_jwk(jwk).expect("usable JWK");
        let mut validation = jsonwebtoken::Validation::new(header.alg);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        validation.leeway = 0;
        jsonwebtoken::decode::<Value>(token, &key, &validation).expect("token validates")
    }

    /// Row counts of every table, to prove a failed command wrote nothing.
    pub fn table_counts(&self) -> Vec<(String, i64)> {
        let mut conn = self.db();
        [
            "users",
            "roles",
            "apis",
            "api_keys",
            "signing_keys",
            "audit_events",
            "auth_throttle",
        ]
        .into_iter()
        .map(|table| {
            #[derive(QueryableByName)]
            struct Count {
                #[diesel(sql_type = diesel::sql_types::BigInt)]
                n: i64,
            }
            let count: Count = diesel::sql_query(format!("SELECT COUNT(*) AS n FROM {table}"))
                .get_result(&mut conn)
                .expect("count rows");
            (table.to_owned(), count.n)
        })
        .collect()
    }

    /// Every row of every table as text, for "the secret is stored nowhere".
    pub fn dump_database(&self) -> String {
        match self.engine {
            Engine::Sqlite => {
                let path = PathBuf::from(self.database_url.trim_start_matches("sqlite://"));
                let mut all = Vec::new();
                for suffix in ["", "-wal"] {
                    let mut p = path.clone().into_os_string();
                    p.push(suffix);
                    if let Ok(bytes) = std::fs::read(&p) {
                        all.extend(bytes);
                    }
                }
                String::from_utf8_lossy(&all).into_owned()
            }
            Engine::Postgres => {
                let mut conn = self.db();
                #[derive(QueryableByName)]
                struct Row {
                    #[diesel(sql_type = diesel::sql_types::Text)]
                    t: String,
                }
                let tables = [
                    "users",
                    "roles",
                    "apis",
                    "api_keys",
                    "signing_keys",
                    "audit_events",
                    "auth_throttle",
                ];
                let mut out = String::new();
                for table in tables {
                    let rows: Vec<Row> =
                        diesel::sql_query(format!("SELECT x::text AS t FROM {table} x"))
                            .load(&mut conn)
                            .expect("dump table");
                    for row in rows {
                        out.push_str(&row.t);
                        out.push('\n');
                    }
                }
                out
            }
        }
    }
}

fn parse_url(url: &str) -> keygate::db::DatabaseUrl {
    keygate::db::DatabaseUrl::parse(url).expect("database URL")
}

/// The same secret with one character of its body changed: the checksum
/// no longer matches.
pub fn wrong_checksum(secret: &str) -> String {
    let mut text = secret.to_owned();
    let replacement = if &text[10..11] == "a" { "b" } else { "a" };
    text.replace_range(10..11, replacement);
    text
}

/// A client bound to another loopback address, to act as a second source.
pub fn client_from(ip: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(ip.parse::<IpAddr>().expect("ip"))
        .build()
        .expect("client")
}

/// Error body and headers every refused client authentication shares.
pub async fn assert_invalid_client(response: reqwest::Response) {
    assert_eq!(response.status(), 401);
    assert_eq!(
        response.headers()["www-authenticate"],
        r#"Basic realm="keygate""#
    );
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = response.json().await.expect("JSON error");
    assert_eq!(
        body,
        serde_json::json!({"error": "invalid_client", "error_description": "client authentication failed"})
    );
}

pub async fn assert_oauth_error(response: reqwest::Response, status: u16, error: &str) -> Value {
    assert_eq!(response.status(), status);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = response.json().await.expect("JSON error");
    assert_eq!(body["error"], error, "{body}");
    body
}

/// A fresh, migrated database and its variables, with no server started yet:
/// for tests that start their own (a tuned in-process server, or the real
/// binary). Migrated as `keygate migrate` would, since every other command
/// refuses a SQLite file that is not there.
pub fn prepare_app(engine: Engine, extra: &[(&str, &str)]) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let database_url = fresh_database(engine, &dir);
    keygate::db::migrate(
        &mut keygate::db::connect_one(&parse_url(&database_url)).expect("connect"),
    )
    .expect("migrate the test database");
    let secret_key = hex::encode(rand_bytes());
    let mut vars: HashMap<String, String> = [
        ("KEYGATE_DATABASE_URL", database_url.as_str()),
        ("KEYGATE_SECRET_KEY", secret_key.as_str()),
        ("KEYGATE_LISTEN", "127.0.0.1:0"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    vars.insert(
        "KEYGATE_MAIL_DIR".into(),
        dir.path().join("mail").display().to_string(),
    );
    for (k, v) in extra {
        vars.insert((*k).to_owned(), (*v).to_owned());
    }
    TestApp {
        engine,
        address: String::new(),
        issuer: String::new(),
        database_url,
        secret_key,
        dir,
        vars,
        http: reqwest::Client::new(),
        clock: ManualClock::new(),
        pools: Mutex::default(),
        jobs: Mutex::default(),
        states: Mutex::default(),
    }
}

impl TestApp {
    /// Starts an in-process server on this app's variables with its
    /// configuration adjusted first (e.g. mail tuning), its background jobs
    /// running only when the test runs them ([`run_job`](Self::run_job)).
    /// The first one started becomes `address`; returns its own address.
    pub async fn serve_on_demand(&mut self, adjust: impl FnOnce(&mut Config)) -> String {
        self.serve(adjust, Background::OnDemand).await
    }

    async fn serve(&mut self, adjust: impl FnOnce(&mut Config), background: Background) -> String {
        let (address, issuer) = self.start(adjust, background).await;
        if self.address.is_empty() {
            self.address = address.clone();
            self.issuer = issuer;
        }
        address
    }
}

/// Introspection, revocation and token crafting.
impl TestApp {
    /// `POST /oauth/introspect` as `caller` (client_secret_basic).
    pub async fn introspect(&self, caller: &Key, token: &str) -> reqwest::Response {
        self.post_token(caller, "introspect", token).await
    }

    /// Introspection that must answer 200; returns the body.
    pub async fn introspect_ok(&self, caller: &Key, token: &str) -> Value {
        let response = self.introspect(caller, token).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["cache-control"], "no-store");
        response.json().await.expect("JSON body")
    }

    /// `POST /oauth/revoke` as `caller` (client_secret_basic).
    pub async fn revoke(&self, caller: &Key, token: &str) -> reqwest::Response {
        self.post_token(caller, "revoke", token).await
    }

    /// `POST /oauth/{endpoint}` with `token=...`, authenticated as `caller`.
    async fn post_token(&self, caller: &Key, endpoint: &str, token: &str) -> reqwest::Response {
        self.http
            .post(format!("{}/oauth/{endpoint}", self.address))
            .basic_auth(&caller.client_id, Some(&caller.client_secret))
            .form(&[("token", token)])
            .send()
            .await
            .unwrap_or_else(|e| panic!("{endpoint} request: {e}"))
    }

    /// An admin `root@example.com` and a key of theirs holding
    /// `keygate:introspect`.
    pub async fn introspector_key(&self) -> Key {
        self.cli_ok(&["users", "add", "root@example.com", "--role", "admin"])
            .await;
        self.create_key(&[
            "--owner",
            "root@example.com",
            "--name",
            "introspector",
            "--scope",
            "keygate:introspect",
        ])
        .await
    }

    /// A fresh access token for `key`.
    pub async fn token_string(&self, key: &Key) -> String {
        self.access_token(key).await["access_token"]
            .as_str()
            .expect("access_token")
            .to_owned()
    }

    /// A connection to this app's database (one, not a pool: nothing of it
    /// runs on after the test).
    pub fn db(&self) -> keygate::db::DbConnection {
        keygate::db::connect_one(&parse_url(&self.database_url)).expect("connection")
    }

    /// The server's active signing key, decrypted from the database: for
    /// crafting tokens that carry a valid signature by the real key.
    pub fn server_signing_key(&self) -> (String, keygate::signing::KeyPair) {
        let mut conn = self.db();
        let rows = keygate::signing::load_published_keys(&mut conn, chrono::Utc::now())
            .expect("signing keys");
        let row = rows
            .iter()
            .find(|r| r.retired_at.is_none())
            .expect("an active signing key");
        let master = keygate::signing::MasterKey::from_hex(&self.secret_key).expect("master key");
        let pair = row
            .decrypt(&keygate::signing::AtRest::new(&master))
            .expect("decrypt the signing key");
        (row.kid.clone(), pair)
    }

    /// Claims as keygate would issue them for `key`, valid for 10 minutes.
    pub fn claims_for(&self, key: &Key, aud: &str) -> Value {
        let now = chrono::Utc::now().timestamp();
        serde_json::json!({
            "iss": self.issuer,
            "sub": key.client_id,
            "client_id": key.client_id,
            "aud": aud,
            "scope": "read",
            "iat": now,
            "exp": now + 600,
            "jti": uuid::Uuid::new_v4().to_string(),
        })
    }

    /// Moves a key's timestamps `by` into the past, as if it had been
    /// created that much earlier: what a test does instead of waiting when
    /// the CLI (its own process, on the real clock) must see time pass.
    pub fn age_key(&self, client_id: &str, by: chrono::Duration) {
        use chrono::NaiveDateTime;
        use keygate::db::schema::api_keys;
        let mut conn = self.db();
        let row = api_keys::table.filter(api_keys::client_id.eq(client_id));
        let (created, updated, expires, grace): (
            NaiveDateTime,
            NaiveDateTime,
            Option<NaiveDateTime>,
            Option<NaiveDateTime>,
        ) = row
            .select((
                api_keys::created_at,
                api_keys::updated_at,
                api_keys::expires_at,
                api_keys::previous_secret_expires_at,
            ))
            .first(&mut conn)
            .expect("the key's row");
        diesel::update(row)
            .set((
                api_keys::created_at.eq(created - by),
                api_keys::updated_at.eq(updated - by),
                api_keys::expires_at.eq(expires.map(|t| t - by)),
                api_keys::previous_secret_expires_at.eq(grace.map(|t| t - by)),
            ))
            .execute(&mut conn)
            .expect("age the key");
    }

    /// Count of one table's rows.
    pub fn count_rows(&self, sql: &str) -> i64 {
        #[derive(QueryableByName)]
        struct Count {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let mut conn = self.db();
        diesel::sql_query(sql)
            .get_result::<Count>(&mut conn)
            .expect("count rows")
            .n
    }
}

fn b64url(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A compact JWS of `header` and `claims` signed with `pair`, whatever the
/// header says.
pub fn sign_token(pair: &keygate::signing::KeyPair, header: &Value, claims: &Value) -> String {
    let input = format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    );
    let signature = pair.sign(input.as_bytes()).expect("sign");
    format!("{input}.{}", b64url(&signature))
}

/// The header keygate writes: `{alg, typ: at+jwt, kid}`.
pub fn at_jwt_header(pair: &keygate::signing::KeyPair, kid: &str) -> Value {
    serde_json::json!({"alg": pair.alg().as_str(), "typ": "at+jwt", "kid": kid})
}

/// A new key pair of `alg` that keygate never saw.
pub fn foreign_key_pair(alg: keygate::signing::SigningAlg) -> keygate::signing::KeyPair {
    let der = keygate::signing::KeyPair::generate(alg).expect("generate");
    keygate::signing::KeyPair::from_pkcs8(alg, &der).expect("parse")
}

/// `token` with its payload replaced by `claims`, the signature kept.
pub fn with_payload(token: &str, claims: &Value) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    format!(
        "{}.{}.{}",
        parts[0],
        b64url(claims.to_string().as_bytes()),
        parts[2]
    )
}

/// The decoded payload of `token`, unverified.
pub fn payload_of(token: &str) -> Value {
    use base64::Engine as _;
    let part = token.split('.').nth(1).expect("payload");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .expect("base64url");
    serde_json::from_slice(&bytes).expect("JSON payload")
}

/// A console session as a browser holds it: the cookie and the page's CSRF token.
#[derive(Debug, Clone)]
pub struct Browser {
    pub cookie: String,
    pub csrf: String,
}

/// People, sessions and one-time links.
impl TestApp {
    /// The request state of the first server started.
    pub fn state(&self) -> actix_web::web::Data<keygate::state::AppState> {
        self.states
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .first()
            .cloned()
            .expect("a server is running")
    }

    /// Adds a person with a password through the CLI.
    pub async fn add_person(&self, email: &str, role: &str, password: &str) {
        let out = self
            .cli_with_stdin(
                &["users", "add", email, "--role", role, "--password-stdin"],
                Some(password),
            )
            .await;
        assert!(out.status.success(), "users add {email}: {}", out.stderr);
    }

    /// Signs in through `keygate::accounts::sign_in` against the running
    /// server's state, from 127.0.0.1, as the console will.
    pub async fn try_sign_in(
        &self,
        email: &str,
        password: &str,
    ) -> Result<Browser, keygate::accounts::SignInError> {
        self.try_sign_in_from(email, password, "127.0.0.1").await
    }

    pub async fn try_sign_in_from(
        &self,
        email: &str,
        password: &str,
        from: &str,
    ) -> Result<Browser, keygate::accounts::SignInError> {
        let state = self.state();
        let now = state.clock.now();
        let session =
            keygate::accounts::sign_in(&state, email, password, from.parse().unwrap(), now).await?;
        let cookie =
            keygate::accounts::session_cookie(&state, &session.token, session.expires_at, now);
        Ok(Browser {
            cookie: format!("{}={}", cookie.name(), cookie.value()),
            csrf: session.csrf.as_str().to_owned(),
        })
    }

    pub async fn sign_in(&self, email: &str, password: &str) -> Browser {
        self.try_sign_in(email, password)
            .await
            .unwrap_or_else(|e| panic!("sign in as {email}: {e}"))
    }

    /// A request to `/api/v1{path}` with the browser's cookie and, when
    /// `csrf` is true, its CSRF token.
    pub fn api_as(
        &self,
        browser: &Browser,
        method: reqwest::Method,
        path: &str,
        csrf: bool,
    ) -> reqwest::RequestBuilder {
        let mut request = self
            .http
            .request(method, format!("{}/api/v1{path}", self.address))
            .header("cookie", &browser.cookie);
        if csrf {
            request = request.header("x-csrf-token", &browser.csrf);
        }
        request
    }

    /// The status and JSON body of a request.
    pub async fn send_json(request: reqwest::RequestBuilder) -> (u16, Value) {
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        let body = response.json().await.unwrap_or(Value::Null);
        (status, body)
    }

    /// The token of the newest one-time link emailed to `recipient`, read
    /// from the outbox before the email is sent.
    pub fn newest_link_token(&self, recipient: &str) -> String {
        use keygate::db::schema::email_outbox;
        let mut conn = self.db();
        let bodies: Vec<String> = email_outbox::table
            .filter(email_outbox::recipient.eq(recipient))
            .filter(email_outbox::key_id.is_null())
            .order(email_outbox::id.desc())
            .select(email_outbox::body_text)
            .load(&mut conn)
            .expect("outbox rows");
        let body = bodies.first().expect("an account email was queued");
        link_token(body).unwrap_or_else(|| panic!("no link in {body}"))
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
