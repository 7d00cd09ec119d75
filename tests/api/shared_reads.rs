//! The warm path's shared reads on PostgreSQL (`db::pg_reads`): requests
//! that wait at the same moment share one read, and a request never joins
//! a read that began before it did, so a change committed before it began
//! is always seen.

use std::sync::Arc;
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;

use crate::helpers::{Engine, TestApp};
use keygate::db::{
    self,
    fresh::{Probe, ThrottleProbe},
};

/// Reads by many tasks at once, while another connection commits a
/// credential change, a throttled failure and a revoked token: every read
/// that began after the commit returned sees all three, the reads share
/// rounds, and each task's throttle rows and token are its own.
#[tokio::test(flavor = "current_thread")]
async fn reads_at_once_share_rounds_and_see_every_change_committed_before_they_began() {
    let app = TestApp::builder(Engine::Postgres).prepare();
    let pool = db::connect(&keygate::db::DatabaseUrl::parse(&app.database_url).unwrap()).unwrap();
    let mut writer = app.db();
    let before = db::fresh::read(&mut writer, &db::fresh::Probe::default())
        .unwrap()
        .epochs;
    let after = chrono::DateTime::UNIX_EPOCH.naive_utc();
    let stop = Instant::now() + Duration::from_millis(600);
    let local = tokio::task::LocalSet::new();
    let results = Arc::new(std::sync::Mutex::new(Vec::new()));
    for task in 0..64 {
        let (pool, results) = (pool.clone(), Arc::clone(&results));
        local.spawn_local(async move {
            while Instant::now() < stop {
                let began = Instant::now();
                let probe = ThrottleProbe {
                    subject: format!("kg_task{task}"),
                    addr: "192.0.2.7".into(),
                    after,
                    unless_failures: None,
                };
                let probe = Probe {
                    throttle: Some(probe),
                    revoked: Some(format!("jti-{task}")),
                };
                let fresh = pool
                    .fresh_with::<keygate::error::StoreError>(probe)
                    .await
                    .unwrap();
                results.lock().unwrap().push((task, began, fresh));
            }
        });
    }
    let committed = local
        .run_until(async {
            tokio::time::sleep(Duration::from_millis(200)).await;
            writer
                .batch_execute(
                    "UPDATE roles SET scopes = 'read' WHERE name = 'member'; \
                     INSERT INTO auth_throttle (subject, addr, window_start, failures) \
                     VALUES ('kg_task3', '192.0.2.7', '2026-12-02 00:00:00', 5); \
                     INSERT INTO revoked_tokens (jti, client_id, expires_at, revoked_at) \
                     VALUES ('jti-5', 'kg_task5', '2100-01-01 00:00:00', '2026-12-02 00:00:00')",
                )
                .unwrap();
            let committed = Instant::now();
            local_wait(stop).await;
            committed
        })
        .await;
    local.await;

    let results = results.lock().unwrap();
    let later: Vec<_> = results
        .iter()
        .filter(|(_, began, _)| *began > committed)
        .collect();
    assert!(
        later.len() > 64,
        "only {} reads after the commit",
        later.len()
    );
    for (task, _, fresh) in &later {
        assert_eq!(fresh.epochs.credentials, before.credentials + 1);
        assert_eq!(fresh.epochs.failures, before.failures + 1);
        let rows = fresh.throttle.as_ref().expect("rows read");
        assert_eq!(fresh.revoked, Some(*task == 5), "task {task}'s token");
        if *task == 3 {
            assert_eq!(rows.len(), 1, "task 3's own row");
            assert_eq!((rows[0].0.as_str(), rows[0].2), ("kg_task3", 5));
        } else {
            assert!(rows.is_empty(), "task {task} got {rows:?}");
        }
    }
    let (reads, rounds) = pool
        .shared_read_counts()
        .expect("PostgreSQL reads in rounds");
    assert_eq!(
        reads,
        u64::try_from(results.len()).unwrap(),
        "every read in a round"
    );
    assert!(rounds * 4 < reads, "{reads} reads took {rounds} rounds");
}

async fn local_wait(until: Instant) {
    tokio::time::sleep(until.saturating_duration_since(Instant::now())).await;
}

/// `sslmode=verify-full` against the test cluster's root certificate
/// (`KEYGATE_TEST_POSTGRES_CA`, made by scripts/test): the warm path's own
/// connections speak TLS and answer the reads, as the pool's do; with
/// another root the database is refused at once.
#[tokio::test(flavor = "current_thread")]
async fn verify_full_reads_on_the_warm_paths_own_connections_over_tls() {
    let ca = std::env::var("KEYGATE_TEST_POSTGRES_CA").expect(
        "KEYGATE_TEST_POSTGRES_CA: the root certificate of the test PostgreSQL's \
         TLS certificate (scripts/test makes one and starts the server with ssl=on)",
    );
    let app = TestApp::builder(Engine::Postgres).prepare();
    let with = |root: &str| {
        let joint = if app.database_url.contains('?') {
            '&'
        } else {
            '?'
        };
        let url = format!(
            "{}{joint}sslmode=verify-full&sslrootcert={root}",
            app.database_url
        );
        db::connect(&keygate::db::DatabaseUrl::parse(&url).unwrap())
    };
    let pool = with(&ca).unwrap();
    for _ in 0..5 {
        pool.fresh::<keygate::error::StoreError>(None)
            .await
            .unwrap();
    }
    assert_eq!(pool.shared_read_counts().map(|(reads, _)| reads), Some(5));

    #[derive(diesel::QueryableByName)]
    struct Ssl {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        ssl: bool,
    }
    let warm: Vec<Ssl> = diesel::RunQueryDsl::load(
        diesel::sql_query(
            "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a ON a.pid = s.pid \
             WHERE a.application_name = 'keygate warm reads' AND a.datname = current_database()",
        ),
        &mut app.db(),
    )
    .unwrap();
    assert!(!warm.is_empty(), "no warm-path connection");
    assert!(
        warm.iter().all(|row| row.ssl),
        "a warm-path connection without TLS"
    );
    db::close(&pool, std::time::Duration::from_secs(5));

    let dir = tempfile::tempdir().unwrap();
    let other = dir.path().join("other-root.crt");
    std::fs::write(&other, OTHER_ROOT).unwrap();
    let refused = with(&other.display().to_string())
        .err()
        .expect("another root refused");
    assert!(refused.to_string().contains("certificate"), "{refused}");
}

/// A root certificate that signed nothing the test cluster has.
const OTHER_ROOT: &str = include_str!("../support/unrelated-root.crt");
