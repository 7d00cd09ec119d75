//! A fresh, migrated database for each test: a PostgreSQL database cloned
//! from a migrated template, or a copy of a migrated SQLite file. Migrating
//! is done once per migration set, not once per test.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use diesel::prelude::*;
use tempfile::TempDir;

use super::Engine;

/// The test PostgreSQL server's admin URL.
pub fn postgres_admin_url() -> String {
    std::env::var("KEYGATE_TEST_POSTGRES_URL").unwrap_or_else(|_| {
        panic!(
            "KEYGATE_TEST_POSTGRES_URL is not set: run the tests with scripts/test, \
             which starts a PostgreSQL server, or point it at one (an admin URL)"
        )
    })
}

pub fn parse_url(url: &str) -> keygate::db::DatabaseUrl {
    keygate::db::DatabaseUrl::parse(url).expect("database URL")
}

/// A fresh database of the given engine, migrated as `keygate migrate`
/// would (every command but `serve` and `migrate` refuses a SQLite file that
/// is not there); returns its URL.
pub fn fresh_database(engine: Engine, dir: &TempDir) -> String {
    match engine {
        Engine::Sqlite => {
            let path = dir.path().join("keygate.db");
            // `copy` keeps the template's mode, 0600 as keygate made it.
            std::fs::copy(sqlite_template(), &path).expect("copy the SQLite template");
            format!("sqlite://{}", path.display())
        }
        Engine::Postgres => {
            let name = format!("keygate_test_{}", uuid::Uuid::new_v4().simple());
            admin_execute(&format!(
                "CREATE DATABASE {name} TEMPLATE {}",
                postgres_template()
            ))
            .expect("clone the migrated template");
            database_url(&name)
        }
    }
}

/// Drops a test's PostgreSQL database, ending the connections still open
/// to it. A failure is reported, not raised: the test's verdict stands.
pub fn drop_database(url: &str) {
    let Some(name) = url::Url::parse(url)
        .ok()
        .map(|u| u.path().trim_start_matches('/').to_owned())
    else {
        return;
    };
    if let Err(error) = admin_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")) {
        eprintln!("could not drop the test database {name}: {error}");
    }
}

fn admin_execute(sql: &str) -> Result<(), String> {
    let mut conn = PgConnection::establish(&postgres_admin_url()).map_err(|e| e.to_string())?;
    diesel::sql_query(sql)
        .execute(&mut conn)
        .map(drop)
        .map_err(|e| e.to_string())
}

/// The test server's URL with `name` as its database.
fn database_url(name: &str) -> String {
    let mut url =
        url::Url::parse(&postgres_admin_url()).expect("KEYGATE_TEST_POSTGRES_URL is a URL");
    url.set_path(name);
    url.to_string()
}

/// Held (session-level) while a template is being made: by one thread of
/// one test process at a time, whichever process gets there first.
const TEMPLATE_LOCK: i64 = 7_411_037;

/// The name of the migrated PostgreSQL template, made by the first test of
/// this process that needs it unless a run before (of this or another test
/// process) made it already: its name carries a hash of the migrations, so
/// a changed migration makes a new one.
///
/// Made under an advisory lock, as `keygate_tpl_new_<uuid>` first and renamed
/// once migrated, so that a template under its real name is always complete
/// (a process killed half-way leaves only a `_new_` database behind). No one
/// may connect to it afterwards (`ALLOW_CONNECTIONS false`): `CREATE DATABASE
/// ... TEMPLATE` fails while anyone is connected to the template.
fn postgres_template() -> &'static str {
    static TEMPLATE: OnceLock<String> = OnceLock::new();
    TEMPLATE.get_or_init(|| {
        let name = format!("keygate_tpl_{}", migrations_hash("postgres"));
        let mut admin =
            PgConnection::establish(&postgres_admin_url()).expect("connect to the test PostgreSQL");
        diesel::sql_query(format!("SELECT pg_advisory_lock({TEMPLATE_LOCK})"))
            .execute(&mut admin)
            .expect("take the template lock");
        #[derive(QueryableByName)]
        struct Found {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let found: Found = diesel::sql_query(format!(
            "SELECT COUNT(*) AS n FROM pg_database WHERE datname = '{name}'"
        ))
        .get_result(&mut admin)
        .expect("look for the template");
        if found.n == 0 {
            let building = format!("keygate_tpl_new_{}", uuid::Uuid::new_v4().simple());
            diesel::sql_query(format!("CREATE DATABASE {building}"))
                .execute(&mut admin)
                .expect("create the template");
            {
                let url = parse_url(&database_url(&building));
                let mut conn = keygate::db::connect_one(&url).expect("connect to the template");
                keygate::db::migrate(&mut conn).expect("migrate the template");
            }
            for sql in [
                format!("ALTER DATABASE {building} RENAME TO {name}"),
                format!("ALTER DATABASE {name} WITH ALLOW_CONNECTIONS false"),
            ] {
                diesel::sql_query(sql)
                    .execute(&mut admin)
                    .expect("settle the template");
            }
        }
        // Also released when the connection closes, as it does now.
        let _ = diesel::sql_query(format!("SELECT pg_advisory_unlock({TEMPLATE_LOCK})"))
            .execute(&mut admin);
        name
    })
}

/// A migrated SQLite file, made once per test process in a directory of
/// its own and closed, so that it is whole without its `-wal`: copying it is
/// faster than migrating a new file.
fn sqlite_template() -> &'static Path {
    static TEMPLATE: OnceLock<(TempDir, PathBuf)> = OnceLock::new();
    let (_, path) = TEMPLATE.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("template.db");
        let url = keygate::db::DatabaseUrl::Sqlite(path.clone());
        let mut conn = keygate::db::connect_one(&url).expect("create the SQLite template");
        keygate::db::migrate(&mut conn).expect("migrate the SQLite template");
        drop(conn);
        (dir, path)
    });
    path
}

/// A short hash of one engine's migrations, names and contents.
fn migrations_hash(engine: &str) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(engine);
    let mut files = Vec::new();
    let mut pending = vec![root.clone()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).expect("read the migrations") {
            let path = entry.expect("a migration").path();
            if path.is_dir() {
                pending.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files.sort();
    let mut context = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    for file in files {
        let name = file.strip_prefix(&root).expect("under the root");
        context.update(name.to_string_lossy().as_bytes());
        context.update(&[0]);
        context.update(&std::fs::read(&file).expect("read a migration"));
        context.update(&[0]);
    }
    hex::encode(&context.finish().as_ref()[..8])
}
