//! A fresh keygate database for one scenario group: a temp dir, a SQLite
//! file in it (or a scratch PostgreSQL database), a user, an API and a key
//! made through keygate's own CLI, and bulk keys written straight into
//! `api_keys` with an explicit column list (columns added later, being
//! nullable, stay NULL).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};
use diesel::RunQueryDsl;
use diesel::connection::SimpleConnection;
use keygate::db::{DatabaseUrl, connect_one, connect_postgres};
use keygate::keys::{ClientId, PlainSecret};
use tempfile::TempDir;

/// KEYGATE_SECRET_KEY of every benchmark server: a fixed test value.
pub const SECRET_KEY: &str = "6b6579676174652d62656e63682d6f6e6c792d6e6f742d612d7265616c2d6b79";
pub const OWNER: &str = "bench@example.com";
pub const AUDIENCE: &str = "https://api.example.com";
pub const SCOPE: &str = "read";
/// Rows per INSERT statement when seeding.
const SEED_CHUNK: usize = 500;

/// A key to write: its client ID, the secret when the benchmark will use
/// it, and the argon2 PHC string stored for it.
#[derive(Clone)]
pub struct SeedKey {
    pub client_id: String,
    pub secret: Option<String>,
    pub hash: String,
}

/// A key the load generator authenticates with.
#[derive(Clone, Debug)]
pub struct Credentials {
    pub client_id: String,
    pub secret: String,
}

pub struct Fixture {
    pub dir: TempDir,
    pub database_url: String,
    keygate_bin: PathBuf,
    /// The scratch PostgreSQL database, dropped with the fixture (after
    /// the servers, which the caller declares later).
    scratch: Option<ScratchDatabase>,
}

impl Fixture {
    pub fn new(keygate_bin: &Path, postgres: Option<&str>) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("keygate-bench-")
            .tempdir()
            .context("making a temp dir")?;
        let (database_url, scratch) = match postgres {
            None => (
                format!("sqlite://{}", dir.path().join("keygate.db").display()),
                None,
            ),
            Some(admin) => {
                let scratch = ScratchDatabase::create(admin)?;
                (scratch.url.clone(), Some(scratch))
            }
        };
        Ok(Self {
            dir,
            database_url,
            keygate_bin: keygate_bin.to_owned(),
            scratch,
        })
    }

    /// `keygate` with this fixture's environment.
    pub fn keygate(&self) -> Command {
        let mut cmd = Command::new(&self.keygate_bin);
        cmd.current_dir(self.dir.path())
            .env("KEYGATE_DATABASE_URL", &self.database_url)
            .env("KEYGATE_SECRET_KEY", SECRET_KEY)
            .env("KEYGATE_MAIL_DIR", self.dir.path().join("mail"))
            .env("RUST_LOG", "warn");
        cmd
    }

    /// Runs a CLI command; its stdout, or an error carrying its stderr.
    pub fn cli(&self, args: &[&str]) -> Result<String> {
        let out = self
            .keygate()
            .args(args)
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("running {}", self.keygate_bin.display()))?;
        if !out.status.success() {
            bail!(
                "keygate {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The user, the API and one key, through the CLI; that key's
    /// credentials (its row is also the template of seeded keys).
    pub fn prepare(&self) -> Result<Credentials> {
        self.cli(&["migrate"])?;
        self.cli(&["users", "add", OWNER])?;
        self.cli(&[
            "apis",
            "add",
            AUDIENCE,
            "--name",
            "bench",
            "--scopes",
            "read write",
        ])?;
        let json = self.cli(&[
            "keys",
            "create",
            "--owner",
            OWNER,
            "--name",
            "bench",
            "--scopes",
            SCOPE,
            "--audience",
            AUDIENCE,
            "--json",
        ])?;
        let key: serde_json::Value =
            serde_json::from_str(&json).context("keys create --json printed no JSON")?;
        let field = |name: &str| {
            key[name]
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| anyhow!("keys create --json has no {name}"))
        };
        Ok(Credentials {
            client_id: field("client_id")?,
            secret: field("client_secret")?,
        })
    }

    /// Writes the `live` keys and `idle` more sharing `idle_hash`, in one
    /// transaction, copying owner, scopes, audiences and dates from the
    /// template key's row. Returns the seconds it took.
    pub fn seed(
        &self,
        template: &str,
        live: &[SeedKey],
        idle: usize,
        idle_hash: &str,
    ) -> Result<f64> {
        let started = Instant::now();
        let url = DatabaseUrl::parse(&self.database_url).map_err(|e| anyhow!(e))?;
        let mut conn = connect_one(&url).map_err(|e| anyhow!("{e}"))?;
        conn.batch_execute("BEGIN")?;
        for chunk in live.chunks(SEED_CHUNK) {
            conn.batch_execute(&insert_statement(template, chunk)?)
                .context("seeding api_keys")?;
        }
        let mut left = idle;
        while left > 0 {
            let chunk = idle_keys(left.min(SEED_CHUNK), idle_hash);
            left -= chunk.len();
            conn.batch_execute(&insert_statement(template, &chunk)?)
                .context("seeding idle api_keys")?;
        }
        conn.batch_execute("COMMIT")?;
        Ok(started.elapsed().as_secs_f64())
    }
}

/// A PostgreSQL backend's process ID (`pg_stat_activity.pid`).
#[derive(diesel::QueryableByName)]
struct Backend {
    #[diesel(sql_type = diesel::sql_types::Integer)]
    pid: i32,
}

impl Fixture {
    /// The process IDs of the PostgreSQL backends connected to this
    /// fixture's scratch database, whose CPU is the database's share of
    /// keygate's work; none on SQLite, whose work is keygate's own.
    pub fn database_backends(&self) -> Result<Vec<u32>> {
        let Some(scratch) = &self.scratch else {
            return Ok(Vec::new());
        };
        let mut admin = connect_postgres(&scratch.admin_url)
            .map_err(|e| anyhow!("connecting to --postgres: {e}"))?;
        let backends: Vec<Backend> =
            diesel::sql_query("SELECT pid FROM pg_stat_activity WHERE datname = $1")
                .bind::<diesel::sql_types::Text, _>(&scratch.name)
                .load(&mut admin)
                .context("listing the scratch database's backends")?;
        Ok(backends
            .into_iter()
            .filter_map(|b| u32::try_from(b.pid).ok())
            .collect())
    }
}

/// One INSERT of a chunk of keys; `column1..3` are what both SQLite and
/// PostgreSQL call the columns of a VALUES list.
fn insert_statement(template: &str, keys: &[SeedKey]) -> Result<String> {
    let mut sql = String::from(
        "INSERT INTO api_keys (id, client_id, owner_id, name, description, scopes, audiences, \
         secret_hash, created_by, created_at, updated_at, expires_at) \
         SELECT v.column1, v.column2, t.owner_id, t.name, t.description, t.scopes, t.audiences, \
         v.column3, t.created_by, t.created_at, t.updated_at, t.expires_at FROM (VALUES ",
    );
    for (i, key) in keys.iter().enumerate() {
        if i > 0 {
            sql.push(',');
        }
        let id = uuid::Uuid::new_v4().to_string();
        sql.push_str(&format!(
            "({}, {}, {})",
            literal(&id)?,
            literal(&key.client_id)?,
            literal(&key.hash)?
        ));
    }
    sql.push_str(&format!(
        ") AS v CROSS JOIN api_keys AS t WHERE t.client_id = {}",
        literal(template)?
    ));
    Ok(sql)
}

/// A SQL string literal of generated text (IDs, PHC strings): refuses
/// anything outside the characters those use rather than escaping.
fn literal(text: &str) -> Result<String> {
    let safe = text
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"$=,+/-_.".contains(&b));
    if !safe {
        bail!("refusing to seed an unexpected value {text:?}");
    }
    Ok(format!("'{text}'"))
}

/// `count` idle keys sharing one argon2 hash (of a secret nobody keeps):
/// a million real hashings would take hours.
fn idle_keys(count: usize, shared_hash: &str) -> Vec<SeedKey> {
    (0..count)
        .map(|_| SeedKey {
            client_id: ClientId::generate().into_string(),
            secret: None,
            hash: shared_hash.to_owned(),
        })
        .collect()
}

/// `count` keys with their own secrets and real argon2 hashes, hashed on
/// `threads` threads.
pub fn live_keys(count: usize, threads: usize) -> Result<Vec<SeedKey>> {
    let per_thread = count.div_ceil(threads.max(1)).max(1);
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..count)
            .collect::<Vec<_>>()
            .chunks(per_thread)
            .map(|chunk| {
                let n = chunk.len();
                scope.spawn(move || -> Result<Vec<SeedKey>> {
                    (0..n)
                        .map(|_| {
                            let secret = PlainSecret::generate();
                            let hash = secret
                                .hash()
                                .map_err(|e| anyhow!("argon2 hashing failed: {e}"))?;
                            Ok(SeedKey {
                                client_id: ClientId::generate().into_string(),
                                secret: Some(secret.expose().to_owned()),
                                hash: hash.as_str().to_owned(),
                            })
                        })
                        .collect()
                })
            })
            .collect();
        let mut keys = Vec::with_capacity(count);
        for worker in workers {
            let part = worker
                .join()
                .map_err(|_| anyhow!("a hashing thread panicked"))??;
            keys.extend(part);
        }
        Ok(keys)
    })
}

impl SeedKey {
    pub fn credentials(&self) -> Option<Credentials> {
        self.secret.as_ref().map(|secret| Credentials {
            client_id: self.client_id.clone(),
            secret: secret.clone(),
        })
    }
}

/// A database created on the given PostgreSQL server for one group, and
/// dropped afterwards.
struct ScratchDatabase {
    admin_url: String,
    name: String,
    url: String,
}

impl ScratchDatabase {
    fn create(admin_url: &str) -> Result<Self> {
        let name = format!(
            "keygate_bench_{}",
            keygate::random::alphanumeric(10).to_ascii_lowercase()
        );
        let mut admin =
            connect_postgres(admin_url).map_err(|e| anyhow!("connecting to --postgres: {e}"))?;
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .with_context(|| format!("creating database {name}"))?;
        let mut url = url::Url::parse(admin_url).context("--postgres is not a URL")?;
        url.set_path(&name);
        Ok(Self {
            admin_url: admin_url.to_owned(),
            name,
            url: url.to_string(),
        })
    }
}

impl Drop for ScratchDatabase {
    fn drop(&mut self) {
        if let Ok(mut admin) = connect_postgres(&self.admin_url) {
            let _ = admin.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_insert_names_its_columns_and_copies_the_template() {
        let keys = idle_keys(2, "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA");
        let sql = insert_statement("kgc_template", &keys).unwrap();
        assert!(sql.starts_with("INSERT INTO api_keys (id, client_id, owner_id,"));
        assert!(sql.ends_with("WHERE t.client_id = 'kgc_template'"));
        assert_eq!(sql.matches("$argon2id$").count(), 2);
    }

    #[test]
    fn a_value_with_a_quote_is_refused() {
        assert!(literal("x'; DROP TABLE api_keys; --").is_err());
        assert!(literal("kgc_AbC123").is_ok());
    }
}
