//! The application under test: one builder for its database, variables,
//! configuration, clock and background jobs; the in-process servers it
//! starts on them; their jobs and their clock.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use keygate::jobs::{Job, Jobs};
use keygate::time::ManualClock;
use keygate::{Application, Background, Config, StartOptions};
use tempfile::TempDir;

use super::Engine;
use super::database::{drop_database, fresh_database};

/// Adjusts a server's configuration after it is read from the variables
/// (what no variable sets, such as the mail worker's tuning).
type Adjust = Arc<dyn Fn(&mut Config) + Send + Sync>;

pub struct TestApp {
    pub engine: Engine,
    /// The first in-process server's base URL; empty until one started.
    pub address: String,
    pub issuer: String,
    pub database_url: String,
    pub secret_key: String,
    pub dir: TempDir,
    /// Variables given to the app; the CLI gets the same.
    pub vars: HashMap<String, String>,
    pub http: reqwest::Client,
    /// The clock of every server this test starts in process and of the
    /// fixtures: the real time until the test moves it.
    pub clock: ManualClock,
    adjust: Adjust,
    background: Background,
    servers: Mutex<Vec<Started>>,
    /// The socket the first server serves, bound before start-up by
    /// [`TestAppBuilder::on_localhost`].
    listener: Mutex<Option<Arc<std::net::TcpListener>>>,
}

/// What the test keeps of each server it started in process.
struct Started {
    /// Closed when the test ends, so that none is logging in while the
    /// test binary exits.
    pool: keygate::db::Pool,
    jobs: Jobs,
    state: actix_web::web::Data<keygate::state::AppState>,
}

/// How a [`TestApp`] is made: `TestApp::builder(engine)`, then what differs
/// from the defaults (no extra variable, the configuration as read, jobs on
/// their timers), then [`start`](Self::start) for an app with one server
/// running in process, or [`prepare`](Self::prepare) for its database and
/// variables alone (for a test that starts the real binary). Every app gets
/// a clock of its own, at the real time until the test moves it.
pub struct TestAppBuilder {
    engine: Engine,
    vars: Vec<(String, String)>,
    adjust: Adjust,
    background: Background,
    localhost: bool,
}

impl TestAppBuilder {
    /// Extra `KEYGATE_*` variables, for the servers and the CLI alike.
    pub fn vars(mut self, extra: &[(&str, &str)]) -> Self {
        self.vars.extend(
            extra
                .iter()
                .map(|(name, value)| ((*name).to_owned(), (*value).to_owned())),
        );
        self
    }

    /// Adjusts every in-process server's configuration before it starts.
    pub fn config(mut self, adjust: impl Fn(&mut Config) + Send + Sync + 'static) -> Self {
        self.adjust = Arc::new(adjust);
        self
    }

    /// Background jobs run only when the test runs them
    /// ([`TestApp::run_job`]), not on their timers.
    pub fn jobs_on_demand(mut self) -> Self {
        self.background = Background::OnDemand;
        self
    }

    /// The first server's issuer is `http://localhost:PORT` (its socket
    /// bound first, to know the port): what browsers require of a WebAuthn
    /// relying party over plain http. Open its pages at [`TestApp::issuer`].
    pub fn on_localhost(mut self) -> Self {
        self.localhost = true;
        self
    }

    /// A fresh, migrated database and the app's variables, with no server
    /// started yet.
    pub fn prepare(self) -> TestApp {
        let dir = tempfile::tempdir().expect("temp dir");
        let database_url = fresh_database(self.engine, &dir);
        let secret_key = hex::encode(rand_bytes());
        let mut vars: HashMap<String, String> = [
            ("KEYGATE_DATABASE_URL", database_url.clone()),
            ("KEYGATE_SECRET_KEY", secret_key.clone()),
            ("KEYGATE_LISTEN", "127.0.0.1:0".to_owned()),
            (
                "KEYGATE_MAIL_DIR",
                dir.path().join("mail").display().to_string(),
            ),
        ]
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value))
        .collect();
        vars.extend(self.vars);
        let listener = self.localhost.then(|| {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a loopback port");
            let port = listener.local_addr().expect("its port").port();
            vars.insert(
                "KEYGATE_ISSUER".to_owned(),
                format!("http://localhost:{port}"),
            );
            Arc::new(listener)
        });
        TestApp {
            engine: self.engine,
            address: String::new(),
            issuer: String::new(),
            database_url,
            secret_key,
            dir,
            vars,
            http: reqwest::Client::new(),
            clock: ManualClock::new(),
            adjust: self.adjust,
            background: self.background,
            servers: Mutex::default(),
            listener: Mutex::new(listener),
        }
    }

    /// [`prepare`](Self::prepare), then one server in process; its address
    /// and issuer become the app's.
    pub async fn start(self) -> TestApp {
        let mut app = self.prepare();
        app.serve().await;
        app
    }
}

/// An app with one server running in process, everything as the defaults
/// say: `TestApp::builder(engine).start()`.
pub async fn spawn_app(engine: Engine) -> TestApp {
    TestApp::builder(engine).start().await
}

fn rand_bytes() -> [u8; 32] {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).expect("randomness");
    b
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let servers = self.servers.get_mut().unwrap_or_else(|e| e.into_inner());
        for server in servers.drain(..) {
            keygate::db::close(&server.pool, Duration::from_secs(10));
        }
        if self.engine == Engine::Postgres {
            drop_database(&self.database_url);
        }
    }
}

impl TestApp {
    pub fn builder(engine: Engine) -> TestAppBuilder {
        TestAppBuilder {
            engine,
            vars: Vec::new(),
            adjust: Arc::new(|_| {}),
            background: Background::Periodic,
            localhost: false,
        }
    }

    /// Starts the first server of an app made with
    /// [`prepare`](TestAppBuilder::prepare), in process; its address and
    /// issuer become the app's.
    pub async fn serve(&mut self) {
        let (address, issuer) = self.start_server().await;
        self.address = address;
        self.issuer = issuer;
    }

    /// Starts another server in process on the same database, variables,
    /// configuration and clock, as a load-balanced deployment would; returns
    /// its address.
    pub async fn spawn_sibling(&self) -> String {
        self.start_server().await.0
    }

    /// Builds and runs one server on this app's variables and clock, its
    /// configuration adjusted first; returns its address and issuer.
    async fn start_server(&self) -> (String, String) {
        let mut config = Config::from_vars(&self.vars).expect("valid test configuration");
        (self.adjust)(&mut config);
        let options = StartOptions {
            clock: self.clock.clone().into(),
            background: self.background,
            listener: self
                .listener
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take(),
        };
        let app = Application::build_with(config, options)
            .await
            .expect("application starts");
        let address = format!("http://127.0.0.1:{}", app.port());
        let issuer = app.issuer().to_owned();
        self.servers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Started {
                pool: app.pool().clone(),
                jobs: app.jobs(),
                state: app.state(),
            });
        tokio::spawn(app.run_until_stopped());
        (address, issuer)
    }

    fn all_jobs(&self) -> Vec<Jobs> {
        self.servers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|s| s.jobs.clone())
            .collect()
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
        self.jobs_of(0)
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

    /// Moves the clock of the servers and fixtures forward by `by` (back,
    /// when negative).
    pub fn advance_clock(&self, by: chrono::Duration) {
        self.clock.advance(by);
    }

    /// The request state of the first server started.
    pub fn state(&self) -> actix_web::web::Data<keygate::state::AppState> {
        self.servers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .first()
            .map(|s| s.state.clone())
            .expect("a server is running")
    }
}
