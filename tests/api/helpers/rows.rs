//! What the app's database holds: row counts, a dump of every row, a
//! connection for a test's own query.

use std::path::PathBuf;

use diesel::prelude::*;

use super::database::parse_url;
use super::{Engine, TestApp};

/// The tables a failed command must leave as they were.
const TABLES: [&str; 10] = [
    "users",
    "roles",
    "apis",
    "teams",
    "team_members",
    "api_keys",
    "signing_keys",
    "audit_events",
    "auth_throttle",
    "email_outbox",
];

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

impl TestApp {
    /// A connection to this app's database (one, not a pool: nothing of it
    /// runs on after the test).
    pub fn db(&self) -> keygate::db::DbConnection {
        keygate::db::connect_one(&parse_url(&self.database_url)).expect("connection")
    }

    /// Row counts of every table, to prove a failed command wrote nothing.
    pub fn table_counts(&self) -> Vec<(String, i64)> {
        let mut conn = self.db();
        TABLES
            .into_iter()
            .map(|table| {
                let count: Count = diesel::sql_query(format!("SELECT COUNT(*) AS n FROM {table}"))
                    .get_result(&mut conn)
                    .expect("count rows");
                (table.to_owned(), count.n)
            })
            .collect()
    }

    /// The actor and details of every audit entry of `action`, oldest first.
    pub fn audited(&self, action: &str) -> Vec<(String, serde_json::Value)> {
        use keygate::db::schema::audit_events;
        let mut conn = self.db();
        audit_events::table
            .filter(audit_events::action.eq(action))
            .order(audit_events::id.asc())
            .select((audit_events::actor, audit_events::details))
            .load::<(String, String)>(&mut conn)
            .expect("audit entries")
            .into_iter()
            .map(|(actor, details)| (actor, serde_json::from_str(&details).expect("JSON details")))
            .collect()
    }

    /// Count of one table's rows.
    pub fn count_rows(&self, sql: &str) -> i64 {
        let mut conn = self.db();
        diesel::sql_query(sql)
            .get_result::<Count>(&mut conn)
            .expect("count rows")
            .n
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
                let mut out = String::new();
                for table in TABLES {
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
