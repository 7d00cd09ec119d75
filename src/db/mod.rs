//! The database: one connection type over SQLite and PostgreSQL
//! (`connection`), the pool and what guards it (`pool`, `manager`, `gate`,
//! `reachability`, `inline`, `sqlite_file`, `lasting`), migrations, and the
//! write-transaction helper every store uses (`transaction`).

mod connection;
mod database_url;
pub mod epochs;
pub mod fresh;
mod gate;
mod inline;
mod lasting;
mod manager;
mod migrations;
mod pg_reads;
mod pg_tls;
mod pool;
mod reachability;
pub mod schema;
mod sqlite_file;
mod transaction;

pub use connection::{DbConnection, DbError, connect_one, connect_postgres};
pub use database_url::DatabaseUrl;
pub use manager::{Manager, PING_AFTER_IDLE, Tracked};
pub use migrations::migrate;
pub use pool::{CHECKOUT_TIMEOUT, Pool, PooledConnection, close, connect};
pub use transaction::{is_unique_violation, write_transaction};

/// Lets a type that wraps a `Text` column be read straight from a row:
/// `$from(String)` builds it from what keygate itself wrote, so every layer
/// above the store holds the type, never the string. The type also derives
/// `diesel::deserialize::FromSqlRow`.
#[macro_export]
macro_rules! text_column {
    ($ty:ty, $from:expr) => {
        impl<DB> diesel::deserialize::FromSql<diesel::sql_types::Text, DB> for $ty
        where
            DB: diesel::backend::Backend,
            String: diesel::deserialize::FromSql<diesel::sql_types::Text, DB>,
        {
            fn from_sql(bytes: DB::RawValue<'_>) -> diesel::deserialize::Result<Self> {
                <String as diesel::deserialize::FromSql<diesel::sql_types::Text, DB>>::from_sql(
                    bytes,
                )
                .map($from)
            }
        }
    };
}
