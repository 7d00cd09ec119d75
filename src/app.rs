//! Start-up: open and migrate the database, settle the master key and the
//! signing keys, bind the listener, start background work.

mod config;

pub use config::{Config, ConfigError, variables};

use std::fs::OpenOptions;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpListener;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::http::header;
use actix_web::middleware::{Condition, DefaultHeaders, Logger};
use actix_web::{App, HttpServer, web};

use crate::client_auth::ClientAuth;
use crate::client_auth::argon2_pool::Argon2Pool;
use crate::client_auth::throttle::ThrottlePolicy;
use crate::client_auth::verified::VerifiedSecrets;
use crate::db::DatabaseUrl;
use crate::db::{self, Pool};
use crate::http::oauth::{discovery, exposed, github_scanning, introspect, revoke, token};
use crate::http::peer::TrustedProxies;
use crate::http::{console, edge, mgmt, ops};
use crate::jobs::{Jobs, JobsSetup};
use crate::keys::issuance::Issuance;
use crate::keys::last_use::RecentUses;
use crate::mail::{Delivery, MailTransport, Mailer};
use crate::metrics::Metrics;
use crate::signing::MasterKey;
use crate::signing::{self, AtRest, Signer};
use crate::state::{AccountSettings, AppState};
use crate::time::Clock;
use crate::webhooks::{Dispatcher, WebhookSealer};

/// SIGTERM (or SIGINT) stops the server in three steps, each bounded, 25 s
/// at most together: inside the 30 s an orchestrator (Kubernetes' default
/// grace period, `docker stop`) waits before SIGKILL.
///
/// 1. The listener closes and the requests in flight finish, for up to this
///    long; each keep-alive connection is closed after its response, an
///    idle one at once.
const HTTP_DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// 2. The email worker, told at the signal, finishes the email it is
///    sending and hands the others back to the outbox, for up to this long
///    after the requests are done.
const MAIL_STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// 3. Database connection attempts under way finish (libpq's
///    `connect_timeout` is 3 s), so none is inside libpq while the process
///    exits.
const DATABASE_CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// actix's default: TLS handshakes under way at once, per worker.
const MAX_TLS_HANDSHAKES_PER_WORKER: usize = 256;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Database(#[from] db::DbError),
    #[error("KEYGATE_SECRET_KEY: {0}")]
    SecretKey(String),
    #[error("signing keys: {0}")]
    Signing(#[from] signing::KeyringError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Other(String),
}

/// Where the generated master key of a SQLite database lives.
pub fn secret_key_path(database: &Path) -> PathBuf {
    let mut name = database
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".secret");
    database.with_file_name(name)
}

/// `KEYGATE_SECRET_KEY`, or for SQLite the key generated once into a file
/// beside the database (mode 0600). Created with O_EXCL so that a CLI and a
/// server starting together agree on one key.
pub fn master_key(config: &Config) -> Result<MasterKey, StartupError> {
    if let Some(key) = &config.secret_key {
        return Ok(key.clone());
    }
    let DatabaseUrl::Sqlite(database) = &config.database_url else {
        return Err(StartupError::SecretKey("required with PostgreSQL".into()));
    };
    let path = secret_key_path(database);
    let shown = path.display();
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
    {
        Ok(mut file) => {
            let key = MasterKey::generate();
            file.write_all(key.to_hex().as_bytes())
                .and_then(|()| file.sync_all())
                .map_err(|e| StartupError::SecretKey(format!("cannot write {shown}: {e}")))?;
            tracing::info!(path = %shown, "generated a new secret key");
            Ok(key)
        }
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {
            let mut text = String::new();
            OpenOptions::new()
                .read(true)
                .open(&path)
                .and_then(|mut f| f.read_to_string(&mut text))
                .map_err(|e| StartupError::SecretKey(format!("cannot read {shown}: {e}")))?;
            MasterKey::from_hex(&text).map_err(|m| StartupError::SecretKey(format!("{shown}: {m}")))
        }
        Err(e) => Err(StartupError::SecretKey(format!(
            "cannot create {shown}: {e}"
        ))),
    }
}

/// Connects a pool and applies pending migrations: for `serve`.
pub fn open_database(config: &Config) -> Result<Pool, StartupError> {
    let pool = db::connect(&config.database_url)?;
    let mut conn = pool
        .get()
        .map_err(|e| db::DbError::Connect(format!("{:?}: {e}", config.database_url)))?;
    migrate(&mut conn)?;
    Ok(pool)
}

/// One migrated connection and no pool: for one-shot commands, which then
/// have no connection threads of their own running when they exit. Also
/// gives how many migrations it applied.
pub fn open_connection(config: &Config) -> Result<(db::DbConnection, usize), StartupError> {
    let mut conn = db::connect_one(&config.database_url)?;
    let applied = migrate(&mut conn)?;
    Ok((conn, applied))
}

fn migrate(conn: &mut db::DbConnection) -> Result<usize, StartupError> {
    let applied = db::migrate(conn)?;
    if applied > 0 {
        tracing::info!(applied, "applied database migrations");
    }
    Ok(applied)
}

/// How a server's background jobs run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Background {
    /// Each on its timer: what `serve` does.
    #[default]
    Periodic,
    /// Only when [`Jobs::run_once`] is called: for tests that decide when.
    OnDemand,
}

/// What start-up takes beside the configuration; the defaults are `serve`'s.
#[derive(Debug, Clone, Default)]
pub struct StartOptions {
    /// Where every `now` comes from (a test passes a manual clock).
    pub clock: Clock,
    pub background: Background,
    /// A socket already listening, served instead of binding
    /// `KEYGATE_LISTEN` (a test that must know its port before start-up,
    /// to name it in `KEYGATE_ISSUER`).
    pub listener: Option<Arc<TcpListener>>,
}

pub struct Application {
    server: Server,
    port: u16,
    issuer: String,
    pool: Pool,
    jobs: Jobs,
    state: web::Data<AppState>,
}

impl Application {
    /// Everything `keygate serve` does before it answers: the returned
    /// application is bound (port 0 picks a free port) but not yet running.
    pub async fn build(config: Config) -> Result<Self, StartupError> {
        Self::build_with(config, StartOptions::default()).await
    }

    /// [`build`](Self::build) with a chosen clock and background mode.
    pub async fn build_with(config: Config, options: StartOptions) -> Result<Self, StartupError> {
        let StartOptions {
            clock,
            background,
            listener,
        } = options;
        config.require_public_issuer()?;
        let bound = match listener {
            Some(given) => given.try_clone(),
            None => TcpListener::bind(config.listen),
        };
        let listener = bound.map_err(|source| StartupError::Bind {
            addr: config.listen.to_string(),
            source,
        })?;
        let local = listener
            .local_addr()
            .map_err(|e| StartupError::Other(e.to_string()))?;
        let issuer = config
            .issuer
            .clone()
            .unwrap_or_else(|| format!("http://{local}"));
        if let Some(warning) = config.insecure_issuer_warning(&issuer) {
            tracing::warn!("{warning}");
        }

        let (pool, signer, master, webhook_sealer) = {
            let config = config.clone();
            let clock = clock.clone();
            tokio::task::spawn_blocking(move || prepare(&config, &clock))
                .await
                .map_err(|e| StartupError::Other(e.to_string()))??
        };

        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let argon2 = Argon2Pool::new(cores).map_err(|e| StartupError::Other(e.to_string()))?;
        // The decoys are hashed now, not at the first request for an unknown
        // client or person, and on an argon2 thread, in the memory it keeps
        // for its verifications (`crate::argon2id`).
        argon2
            .run(|| {
                crate::keys::SecretHash::decoy();
                crate::accounts::warm_up();
            })
            .await
            .map_err(|e| StartupError::Other(e.to_string()))?;
        let mut metrics = Metrics::default();
        metrics.count_shared_reads(&pool);
        let metrics = Arc::new(metrics);
        let throttle = ThrottlePolicy::default();
        let mailer = Mailer::new(&config.mail, config.mail_tuning.smtp_timeout)
            .map_err(|e| StartupError::Other(e.to_string()))?;
        let jobs = Jobs::new(JobsSetup {
            pool: pool.clone(),
            clock: clock.clone(),
            delivery: Delivery::new(
                pool.clone(),
                mailer,
                config.mail_from.clone(),
                config.mail_tuning,
                metrics.mail(),
                clock.clone(),
            ),
            expiry_warning: config.expiry_warning,
            issuer: issuer.clone(),
            sweep_interval: config.mail_tuning.sweep_interval,
            throttle,
            signer: Arc::clone(&signer),
            session_idle: config.session_idle,
            webhooks: Arc::new(
                Dispatcher::new(
                    pool.clone(),
                    Arc::clone(&webhook_sealer),
                    config.webhook_tuning,
                    metrics.webhook.clone(),
                    clock.clone(),
                    issuer.clone(),
                )
                .map_err(StartupError::Other)?,
            ),
        });
        let state = web::Data::new(AppState {
            pool: pool.clone(),
            clock,
            issuer: issuer.clone(),
            token_ttl: config.token_ttl,
            signer,
            client_auth: ClientAuth {
                pool: pool.clone(),
                verified: VerifiedSecrets::default(),
                known_keys: crate::client_auth::known_keys::KnownKeys::default(),
                argon2,
                throttle,
                metrics: Arc::clone(&metrics),
                trusted_proxies: config.trusted_proxies.clone(),
            },
            issuance: Issuance::default(),
            recent_uses: RecentUses::default(),
            metrics: Arc::clone(&metrics),
            jwks_max_age: chrono::Duration::seconds(300),
            key_max_lifetime: config.key_max_lifetime,
            expiry_warning: config.expiry_warning,
            max_keys_per_user: config.max_keys_per_user,
            accounts: account_settings(&config, &issuer, &master),
            sso: single_sign_on(&config, &issuer, &master, &pool).await?,
            exposure_budget: crate::exposure::budget::Budget::default(),
            exposure_turn: tokio::sync::Semaphore::new(1),
            webhook_sealer,
            federation_keys: crate::federation::JwksCache::new(config.federation_tuning)
                .map_err(StartupError::Other)?,
        });
        if background == Background::Periodic {
            jobs.spawn_periodic();
        }

        // What the operations endpoints read, apart from the request state.
        let probe_pool = web::Data::new(pool.clone());
        let probe_metrics = web::Data::from(metrics);
        let trusted_proxies = web::Data::new(TrustedProxies(config.trusted_proxies.clone()));
        let metrics_access = web::Data::new(ops::MetricsAccess {
            allow_from: config.metrics_allow_from.clone(),
            trusted_proxies: config.trusted_proxies.clone(),
        });
        let github_keys = config.github_scanning_keys.clone().map(web::Data::from);
        if let Some(keys) = &github_keys {
            tracing::info!(
                keys = keys.len(),
                path = github_scanning::PATH,
                "accepting GitHub secret-scanning alerts"
            );
        }
        let tuning = config.http_tuning;
        let https = is_https(&issuer);
        let app_state = state.clone();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .app_data(probe_pool.clone())
                .app_data(probe_metrics.clone())
                .app_data(metrics_access.clone())
                .app_data(trusted_proxies.clone())
                .app_data(web::PayloadConfig::new(64 * 1024))
                .wrap_fn(edge::body_deadline(tuning.body_read_timeout))
                .wrap_fn(in_request_span)
                .wrap(access_log())
                .wrap(Condition::new(https, strict_transport_security()))
                .configure(token::routes)
                .configure(introspect::routes)
                .configure(revoke::routes)
                .configure(exposed::routes)
                .configure(|cfg| {
                    // Unset: no route at all, 404 like any unknown path.
                    if let Some(keys) = &github_keys {
                        cfg.app_data(keys.clone());
                        github_scanning::routes(cfg);
                    }
                })
                .configure(discovery::routes)
                .configure(ops::routes)
                .configure(mgmt::routes)
                .configure(console::routes)
        })
        .workers(cores)
        // `run_until_stopped` handles SIGTERM and SIGINT: it tells the jobs too.
        .disable_signals()
        .shutdown_timeout(HTTP_DRAIN_TIMEOUT.as_secs())
        .client_request_timeout(tuning.client_request_timeout)
        .client_disconnect_timeout(tuning.client_disconnect_timeout)
        .max_connections(tuning.max_connections_per_worker(cores))
        // Bounds TLS handshakes only; keygate serves plain HTTP behind its
        // TLS terminator, so this is set for the day it does not.
        .max_connection_rate(MAX_TLS_HANDSHAKES_PER_WORKER)
        .listen(listener)
        .map_err(|source| StartupError::Bind {
            addr: local.to_string(),
            source,
        })?
        .run();
        tracing::info!(%local, %issuer, "keygate listening");
        Ok(Self {
            server,
            port: local.port(),
            issuer,
            pool,
            jobs,
            state: app_state,
        })
    }

    /// What the server's handlers share: for a test that calls a feature's
    /// facade (such as `accounts::sign_in`) against the running server.
    pub fn state(&self) -> web::Data<AppState> {
        self.state.clone()
    }

    /// The server's background jobs, to run one now.
    pub fn jobs(&self) -> Jobs {
        self.jobs.clone()
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The server's database pool: whoever stops it without
    /// [`run_until_stopped`](Self::run_until_stopped) returning (a test that
    /// drops it) closes it with [`db::close`] before the process exits.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Serves until SIGTERM or SIGINT, then stops as [`HTTP_DRAIN_TIMEOUT`]
    /// and the constants after it say: requests in flight finish, the email
    /// worker hands back what it has not sent, the database pool's
    /// connection attempts are shut so that the process can exit.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let Self {
            server, pool, jobs, ..
        } = self;
        let handle = server.handle();
        let stopping = jobs.clone();
        let signal = shutdown_signal();
        let signalled = tokio::spawn(async move {
            let signal = signal.await;
            tracing::info!(
                signal,
                "shutting down: finishing the requests in flight, handing back unsent emails"
            );
            stopping.stop();
            // actix closes the listener, lets each connection finish the
            // request it is serving and closes it after the response
            // (`Connection: close`), and closes idle keep-alive connections.
            handle.stop(true).await;
        });
        let result = server.await;
        signalled.abort();
        // Stopped without a signal (the listener failed): the jobs too.
        jobs.stop();
        jobs.stopped(MAIL_STOP_TIMEOUT).await;
        let closed =
            tokio::task::spawn_blocking(move || db::close(&pool, DATABASE_CLOSE_TIMEOUT)).await;
        if let Err(error) = closed {
            tracing::warn!(%error, "could not close the database pool");
        }
        tracing::info!("stopped");
        result
    }
}

/// Waits for SIGTERM or SIGINT; returns its name. A signal that cannot be
/// listened for is logged and never arrives.
/// Listens for SIGTERM and SIGINT from the moment it is called: the
/// handlers are installed before the server first answers, so a signal that
/// follows a first `/readyz` is never the default one that kills at once.
fn shutdown_signal() -> impl std::future::Future<Output = &'static str> {
    use tokio::signal::unix::{Signal, SignalKind, signal};
    let listen = |kind: SignalKind, name: &'static str| -> Option<Signal> {
        signal(kind)
            .inspect_err(|error| {
                tracing::warn!(%error, signal = name, "cannot listen for the signal");
            })
            .ok()
    };
    let terminate = listen(SignalKind::terminate(), "SIGTERM");
    let interrupt = listen(SignalKind::interrupt(), "SIGINT");
    let received = |stream: Option<Signal>, name: &'static str| async move {
        match stream {
            Some(mut stream) => {
                stream.recv().await;
            }
            None => std::future::pending::<()>().await,
        }
        name
    };
    async move {
        tokio::select! {
            name = received(terminate, "SIGTERM") => name,
            name = received(interrupt, "SIGINT") => name,
        }
    }
}

/// Every event a request causes is logged inside its span: method, path (never
/// the query, which a confused client may fill with credentials) and an ID
/// that ties the lines of one request together.
fn in_request_span<S>(
    request: actix_web::dev::ServiceRequest,
    service: &S,
) -> impl std::future::Future<Output = Result<actix_web::dev::ServiceResponse, actix_web::Error>> + use<S>
where
    S: actix_web::dev::Service<
            actix_web::dev::ServiceRequest,
            Response = actix_web::dev::ServiceResponse,
            Error = actix_web::Error,
        >,
{
    use tracing::Instrument as _;
    let span = tracing::info_span!(
        "request",
        method = %request.method(),
        path = %request.path(),
        id = %uuid::Uuid::now_v7().simple(),
    );
    service.call(request).instrument(span)
}

/// One line per request. The path only: a query string might carry a
/// credential that a confused client put in the URL, and logs never hold one.
fn access_log() -> Logger {
    Logger::new(r#"%a "%{method}xi %U" %s %b %Dms"#)
        .custom_request_replace("method", |req| req.method().to_string())
}

/// What accounts and sessions use, for `issuer`.
pub fn account_settings(config: &Config, issuer: &str, master: &MasterKey) -> AccountSettings {
    AccountSettings {
        session_idle: config.session_idle,
        session_max: config.session_max,
        invite_ttl: config.invite_ttl,
        token_hasher: master.token_hasher(),
        mail_to_files: matches!(config.mail, MailTransport::Files(_)),
        https: is_https(issuer),
        password_sign_in: config.password_sign_in,
        require_mfa: config.require_mfa,
        sealer: crate::accounts::AccountSealer::new(master),
        passkeys: crate::accounts::RelyingParty::for_issuer(issuer),
    }
}

/// The identity provider of `KEYGATE_OIDC_*`, if one is configured: its
/// default role must exist. The provider itself is first asked at the
/// first sign-in, so keygate starts (and serves tokens) while it is down.
async fn single_sign_on(
    config: &Config,
    issuer: &str,
    master: &MasterKey,
    pool: &Pool,
) -> Result<Option<Arc<crate::accounts::sso::Sso>>, StartupError> {
    let Some(settings) = config.sso.clone() else {
        return Ok(None);
    };
    if let Some(role) = settings.default_role.clone() {
        let found = pool
            .run(move |conn| crate::users::find_role(conn, &role).map(|_| ()))
            .await;
        match found {
            Ok(()) => {}
            Err(crate::users::UserError::RoleNotFound { name }) => {
                return Err(StartupError::Config(ConfigError {
                    variable: variables::OIDC_DEFAULT_ROLE.name,
                    message: format!("no role named {name:?} (see `keygate roles list`)"),
                }));
            }
            Err(e) => return Err(StartupError::Other(e.to_string())),
        }
    }
    let sso =
        crate::accounts::sso::Sso::new(settings, issuer, master).map_err(StartupError::Other)?;
    tracing::info!(
        provider = sso.settings().issuer,
        "console sign-in through single sign-on"
    );
    Ok(Some(Arc::new(sso)))
}

fn is_https(issuer: &str) -> bool {
    issuer
        .get(..8)
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("https://"))
}

/// Under an https issuer every response, whatever the surface and status,
/// tells browsers to come back over https only, for a year (RFC 6797).
/// Without `includeSubDomains`: the issuer's domain may have siblings that
/// are not keygate's to speak for.
fn strict_transport_security() -> DefaultHeaders {
    DefaultHeaders::new().add((header::STRICT_TRANSPORT_SECURITY, "max-age=31536000"))
}

/// Database, master key and keyring, ready for the first request.
fn prepare(
    config: &Config,
    clock: &Clock,
) -> Result<(Pool, Arc<Signer>, MasterKey, Arc<WebhookSealer>), StartupError> {
    let pool = open_database(config)?;
    // The URL as configured, its password redacted: which database this is.
    tracing::info!(database = ?config.database_url, "opened the database");
    let master = master_key(config)?;
    let signer = Arc::new(Signer::new(AtRest::new(&master)));
    let mut conn = pool
        .get()
        .map_err(|e| db::DbError::Connect(e.to_string()))?;
    let now = clock.now();
    if let Some(kid) =
        signing::ensure_signing_key(&mut conn, signer.at_rest(), config.signing_alg, now)?
    {
        tracing::info!(%kid, alg = %config.signing_alg, "created the first signing key");
    }
    signer.refresh(&mut conn, now)?;
    let sealer = Arc::new(WebhookSealer::new(&master));
    Ok((pool, signer, master, sealer))
}
