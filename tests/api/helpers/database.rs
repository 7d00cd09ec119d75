//! A fresh, migrated database for each test: a PostgreSQL database cloned
//! from a migrated template, or a copy of a migrated SQLite file. Migrating
//! is done once per migration set, not once per test, and PostgreSQL clones
//! are made ahead, while tests run.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::{Mutex, OnceLock};

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
            let mut admin = keygate::db::connect_postgres(&postgres_admin_url())
                .expect("connect to the test PostgreSQL");
            if !take_spare(&mut admin, &name) {
                let template = postgres_template();
                diesel::sql_query(format!("CREATE DATABASE {name} TEMPLATE {template}"))
                    .execute(&mut admin)
                    .expect("clone the migrated template");
            }
            database_url(&name)
        }
    }
}

/// Makes the database at `url` as new as before `keygate migrate`: no
/// SQLite file, or an empty PostgreSQL database under the same name.
pub fn empty_database(url: &str) {
    match parse_url(url) {
        keygate::db::DatabaseUrl::Sqlite(path) => {
            for suffix in ["", "-wal", "-shm"] {
                let mut file = path.clone().into_os_string();
                file.push(suffix);
                let _ = std::fs::remove_file(file);
            }
        }
        keygate::db::DatabaseUrl::Postgres(_) => {
            let name = url::Url::parse(url).expect("a URL").path()[1..].to_owned();
            let mut admin = keygate::db::connect_postgres(&postgres_admin_url())
                .expect("connect to the test PostgreSQL");
            drop_quickly(&mut admin, &name).expect("drop the test database");
            diesel::sql_query(format!("CREATE DATABASE {name}"))
                .execute(&mut admin)
                .expect("create an empty database");
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
    let dropped = keygate::db::connect_postgres(&postgres_admin_url())
        .map_err(|e| e.to_string())
        .and_then(|mut admin| drop_quickly(&mut admin, &name).map_err(|e| e.to_string()));
    if let Err(error) = dropped {
        eprintln!("could not drop the test database {name}: {error}");
    }
}

/// `DROP ... WITH (FORCE)` ends the sessions still open and then sleeps a
/// tenth of a second before it looks again; ended first, and their end
/// awaited in short steps, they are gone by the time it looks.
fn drop_quickly(admin: &mut PgConnection, name: &str) -> QueryResult<()> {
    #[derive(QueryableByName)]
    struct Open {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let open = format!(
        "SELECT COUNT(pg_terminate_backend(pid)) AS n FROM pg_stat_activity \
         WHERE datname = '{name}' AND pid <> pg_backend_pid()"
    );
    for _ in 0..500 {
        if diesel::sql_query(&open).get_result::<Open>(admin)?.n == 0 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(admin)
        .map(drop)
}

/// The test server's URL with `name` as its database.
fn database_url(name: &str) -> String {
    let mut url =
        url::Url::parse(&postgres_admin_url()).expect("KEYGATE_TEST_POSTGRES_URL is a URL");
    url.set_path(name);
    url.to_string()
}

/// Spare databases cloned ahead of need, by a thread of their own.
const SPARES_AHEAD: usize = 2;

/// Renames a spare clone of the template to `name`, when one is ready;
/// false when none is. Renaming is how a spare is claimed: a spare left by
/// an earlier run is offered to every test process, and whichever renames
/// it first has it.
fn take_spare(admin: &mut PgConnection, name: &str) -> bool {
    static SPARES: OnceLock<Mutex<Receiver<String>>> = OnceLock::new();
    let spares = SPARES.get_or_init(|| {
        let (ready, spares) = std::sync::mpsc::sync_channel(SPARES_AHEAD);
        std::thread::spawn(move || make_spares(&ready));
        Mutex::new(spares)
    });
    loop {
        let Ok(spare) = spares.lock().unwrap_or_else(|e| e.into_inner()).try_recv() else {
            return false;
        };
        let claimed = diesel::sql_query(format!("ALTER DATABASE {spare} RENAME TO {name}"))
            .execute(admin)
            .is_ok();
        if claimed {
            return true;
        }
    }
}

/// Offers the spares earlier runs left, then clones new ones while there is
/// room, until the process ends (a spare it leaves is the next run's).
fn make_spares(ready: &SyncSender<String>) {
    let prefix = format!("keygate_spare_{}_", &migrations_hash("postgres")[..12]);
    let Ok(mut admin) = keygate::db::connect_postgres(&postgres_admin_url()) else {
        return;
    };
    #[derive(QueryableByName)]
    struct Name {
        #[diesel(sql_type = diesel::sql_types::Text)]
        datname: String,
    }
    let left: Vec<Name> = diesel::sql_query(format!(
        "SELECT datname FROM pg_database WHERE datname LIKE '{prefix}%'"
    ))
    .load(&mut admin)
    .unwrap_or_default();
    for spare in left {
        if ready.send(spare.datname).is_err() {
            return;
        }
    }
    let template = postgres_template();
    loop {
        let spare = format!("{prefix}{}", uuid::Uuid::new_v4().simple());
        let made = diesel::sql_query(format!("CREATE DATABASE {spare} TEMPLATE {template}"))
            .execute(&mut admin);
        if made.is_err() || ready.send(spare).is_err() {
            return;
        }
    }
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
        let mut admin = keygate::db::connect_postgres(&postgres_admin_url())
            .expect("connect to the test PostgreSQL");
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
