//! Failed-authentication throttling, kept in the database so that every
//! keygate process on it enforces the same limits.
//!
//! Counting is per (client ID, source address): an attacker elsewhere cannot
//! lock a client out, and once the limit is reached every request for that
//! client ID from that address gets 429 until the window ends, whatever
//! secret it carries, so the limit is no oracle. A second, higher limit per
//! address alone (subject `*`) stops one address from spraying many IDs.
//!
//! A third kind of counter, [`AcrossAddresses`], counts one subject's
//! attempts whatever address they come from (address column `*`), each
//! taken before it is made and given back when it succeeds: a person's
//! account guessed from many addresses at once (`crate::accounts`).

use chrono::{DateTime, Duration, NaiveDateTime, Utc};
use diesel::prelude::*;

use crate::db::fresh::{self, ANY_CLIENT, ThrottleRow};
use crate::db::schema::auth_throttle;
use crate::db::{DbConnection, write_transaction};
use crate::time::from_db;

/// The address of the counters kept across every address (no address is
/// written like this).
const ANY_ADDRESS: &str = "*";

#[derive(Debug, Clone, Copy)]
pub struct ThrottlePolicy {
    pub per_client: i32,
    pub per_address: i32,
    pub window: Duration,
    /// Sign-in failures for one account, from every address together.
    pub per_account: AcrossAddresses,
}

impl Default for ThrottlePolicy {
    fn default() -> Self {
        Self {
            per_client: 5,
            per_address: 30,
            window: Duration::seconds(60),
            per_account: AcrossAddresses::SIGN_IN,
        }
    }
}

/// A limit on one subject's failures whatever address they come from: once
/// `limit` are counted within `window` of the first, the subject is
/// throttled until that window ends.
#[derive(Debug, Clone, Copy)]
pub struct AcrossAddresses {
    pub limit: i32,
    pub window: Duration,
}

impl AcrossAddresses {
    /// INTERFACE.md: 10 failed sign-ins for one account within 15 minutes.
    pub const SIGN_IN: Self = Self {
        limit: 10,
        window: Duration::minutes(15),
    };

    /// Seconds until `subject` may be tried again, if its limit is reached.
    pub fn retry_after(
        &self,
        conn: &mut DbConnection,
        subject: &str,
        now: DateTime<Utc>,
    ) -> QueryResult<Option<i64>> {
        let row: Option<(NaiveDateTime, i32)> = auth_throttle::table
            .find((subject, ANY_ADDRESS))
            .filter(auth_throttle::window_start.gt((now - self.window).naive_utc()))
            .select((auth_throttle::window_start, auth_throttle::failures))
            .first(conn)
            .optional()?;
        Ok(row
            .filter(|(_, failures)| *failures >= self.limit)
            .map(|(start, _)| (from_db(start) + self.window - now).num_seconds().max(1)))
    }

    /// Takes one of `subject`'s attempts before it is made (a success gives
    /// it back with [`give_back`](Self::give_back)), so that attempts made
    /// at once, on any number of processes, never pass the limit.
    pub fn take_attempt(
        &self,
        conn: &mut DbConnection,
        subject: &str,
        now: DateTime<Utc>,
    ) -> QueryResult<Taken> {
        write_transaction(conn, |conn| {
            let key = auth_throttle::table.find((subject, ANY_ADDRESS));
            let live = auth_throttle::window_start.gt((now - self.window).naive_utc());
            let under = auth_throttle::failures.lt(self.limit);
            let taken = diesel::update(key.filter(live).filter(under))
                .set(auth_throttle::failures.eq(auth_throttle::failures + 1))
                .execute(conn)?;
            if taken > 0 {
                return Ok(Taken::Counted(
                    key.select(auth_throttle::failures).first(conn)?,
                ));
            }
            if let Some(retry_after) = self.retry_after(conn, subject, now)? {
                return Ok(Taken::Throttled { retry_after });
            }
            bump(conn, subject, ANY_ADDRESS, self.window, now).map(Taken::Counted)
        })
    }

    /// Gives back an attempt [`take_attempt`](Self::take_attempt) took, for
    /// one that succeeded.
    pub fn give_back(
        &self,
        conn: &mut DbConnection,
        subject: &str,
        now: DateTime<Utc>,
    ) -> QueryResult<()> {
        let key = auth_throttle::table.find((subject, ANY_ADDRESS));
        let live = auth_throttle::window_start.gt((now - self.window).naive_utc());
        diesel::update(key.filter(live).filter(auth_throttle::failures.gt(0)))
            .set(auth_throttle::failures.eq(auth_throttle::failures - 1))
            .execute(conn)
            .map(drop)
    }
}

/// What [`AcrossAddresses::take_attempt`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Taken {
    /// The attempt may be made; it is this many of the window's.
    Counted(i32),
    /// The limit is reached: none until the window ends, in this many seconds.
    Throttled { retry_after: i64 },
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
        let rows = fresh::throttle_rows(conn, client_id, addr, self.live_after(now))?;
        Ok(self.retry_after_of(&rows, now))
    }

    /// Windows that started after this are live at `now`.
    pub fn live_after(&self, now: DateTime<Utc>) -> NaiveDateTime {
        (now - self.window).naive_utc()
    }

    /// Seconds until the caller may try again, if `rows` (its client ID's
    /// and its address's live throttle rows) say it is throttled.
    pub fn retry_after_of(&self, rows: &[ThrottleRow], now: DateTime<Utc>) -> Option<i64> {
        rows.iter()
            .filter(|(subject, _, failures)| {
                let limit = if subject == ANY_CLIENT {
                    self.per_address
                } else {
                    self.per_client
                };
                *failures >= limit
            })
            .map(|(_, start, _)| (from_db(*start) + self.window - now).num_seconds().max(1))
            .max()
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
                bump(conn, subject, addr, self.window, now)?;
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
        write_transaction(conn, |conn| bump(conn, subject, addr, self.window, now)).map(drop)
    }

    /// Drops counters whose window has ended.
    pub fn prune(&self, conn: &mut DbConnection, now: DateTime<Utc>) -> QueryResult<usize> {
        let ended = |window: Duration| auth_throttle::window_start.le((now - window).naive_utc());
        let per_address = diesel::delete(
            auth_throttle::table
                .filter(auth_throttle::addr.ne(ANY_ADDRESS))
                .filter(ended(self.window)),
        )
        .execute(conn)?;
        let across = diesel::delete(
            auth_throttle::table
                .filter(auth_throttle::addr.eq(ANY_ADDRESS))
                .filter(ended(self.per_account.window)),
        )
        .execute(conn)?;
        Ok(per_address + across)
    }
}

/// Counts one failure against (`subject`, `addr`) in a window of `window`
/// (a new one when the last has ended); returns the count. The increment
/// is one `UPDATE`, so processes counting at once never lose one.
fn bump(
    conn: &mut DbConnection,
    subject: &str,
    addr: &str,
    window: Duration,
    now: DateTime<Utc>,
) -> QueryResult<i32> {
    let key = auth_throttle::table.find((subject, addr));
    let live = auth_throttle::window_start.gt((now - window).naive_utc());
    let counted = diesel::update(key.filter(live))
        .set(auth_throttle::failures.eq(auth_throttle::failures + 1))
        .execute(conn)?;
    if counted > 0 {
        return key.select(auth_throttle::failures).first(conn);
    }
    let restarted = diesel::update(key)
        .set((
            auth_throttle::window_start.eq(now.naive_utc()),
            auth_throttle::failures.eq(1),
        ))
        .execute(conn)?;
    if restarted == 0 {
        diesel::insert_into(auth_throttle::table)
            .values((
                auth_throttle::subject.eq(subject),
                auth_throttle::addr.eq(addr),
                auth_throttle::window_start.eq(now.naive_utc()),
                auth_throttle::failures.eq(1),
            ))
            .execute(conn)?;
    }
    Ok(1)
}
