//! Failed-authentication throttling, kept in the database so that every
//! keygate process on it enforces the same limits.
//!
//! Counting is per (client ID, source address): an attacker elsewhere cannot
//! lock a client out, and once the limit is reached every request for that
//! client ID from that address gets 429 until the window ends, whatever
//! secret it carries, so the limit is no oracle. A second, higher limit per
//! address alone (subject `*`) stops one address from spraying many IDs.

use chrono::{DateTime, Duration, NaiveDateTime, Utc};
use diesel::prelude::*;

use crate::db::schema::auth_throttle;
use crate::db::{DbConnection, write_transaction};
use crate::time::from_db;

/// The subject of the per-address counter.
const ANY_CLIENT: &str = "*";

#[derive(Debug, Clone, Copy)]
pub struct ThrottlePolicy {
    pub per_client: i32,
    pub per_address: i32,
    pub window: Duration,
}

impl Default for ThrottlePolicy {
    fn default() -> Self {
        Self {
            per_client: 5,
            per_address: 30,
            window: Duration::seconds(60),
        }
    }
}

impl ThrottlePolicy {
    /// Seconds until the caller may try again, if it is throttled now.
    pub fn retry_after(
        &self,
        conn: &mut DbConnection,
        client_id: &str,
        addr: &str,
        now: DateTime<Utc>,
    ) -> QueryResult<Option<i64>> {
        let rows: Vec<(String, NaiveDateTime, i32)> = auth_throttle::table
            .filter(auth_throttle::addr.eq(addr))
            // Two equalities rather than IN: a fixed statement shape that
            // diesel can keep prepared, since this runs on every request.
            .filter(
                auth_throttle::subject
                    .eq(client_id)
                    .or(auth_throttle::subject.eq(ANY_CLIENT)),
            )
            .filter(auth_throttle::window_start.gt((now - self.window).naive_utc()))
            .select((
                auth_throttle::subject,
                auth_throttle::window_start,
                auth_throttle::failures,
            ))
            .load(conn)?;
        Ok(rows
            .into_iter()
            .filter(|(subject, _, failures)| {
                let limit = if subject == ANY_CLIENT {
                    self.per_address
                } else {
                    self.per_client
                };
                *failures >= limit
            })
            .map(|(_, start, _)| (from_db(start) + self.window - now).num_seconds().max(1))
            .max())
    }

    /// Counts one failure for the client ID and for the address.
    pub fn record_failure(
        &self,
        conn: &mut DbConnection,
        client_id: &str,
        addr: &str,
        now: DateTime<Utc>,
    ) -> QueryResult<()> {
        write_transaction(conn, |conn| {
            for subject in [client_id, ANY_CLIENT] {
                self.bump(conn, subject, addr, now)?;
            }
            Ok(())
        })
    }

    /// Counts one attempt against `subject` alone: for an endpoint that
    /// throttles every request, not only failures (`crate::exposure`), so
    /// that whether the limit is reached says nothing of what was sent.
    pub fn record_attempt(
        &self,
        conn: &mut DbConnection,
        subject: &str,
        addr: &str,
        now: DateTime<Utc>,
    ) -> QueryResult<()> {
        write_transaction(conn, |conn| self.bump(conn, subject, addr, now))
    }

    fn bump(
        &self,
        conn: &mut DbConnection,
        subject: &str,
        addr: &str,
        now: DateTime<Utc>,
    ) -> QueryResult<()> {
        let key = auth_throttle::table.find((subject, addr));
        let current: Option<(NaiveDateTime, i32)> = key
            .select((auth_throttle::window_start, auth_throttle::failures))
            .first(conn)
            .optional()?;
        match current {
            Some((start, failures)) if from_db(start) > now - self.window => {
                diesel::update(key)
                    .set(auth_throttle::failures.eq(failures.saturating_add(1)))
                    .execute(conn)?;
            }
            Some(_) => {
                diesel::update(key)
                    .set((
                        auth_throttle::window_start.eq(now.naive_utc()),
                        auth_throttle::failures.eq(1),
                    ))
                    .execute(conn)?;
            }
            None => {
                diesel::insert_into(auth_throttle::table)
                    .values((
                        auth_throttle::subject.eq(subject),
                        auth_throttle::addr.eq(addr),
                        auth_throttle::window_start.eq(now.naive_utc()),
                        auth_throttle::failures.eq(1),
                    ))
                    .execute(conn)?;
            }
        }
        Ok(())
    }

    /// Drops counters whose window has ended.
    pub fn prune(&self, conn: &mut DbConnection, now: DateTime<Utc>) -> QueryResult<usize> {
        diesel::delete(
            auth_throttle::table
                .filter(auth_throttle::window_start.le((now - self.window).naive_utc())),
        )
        .execute(conn)
    }
}
