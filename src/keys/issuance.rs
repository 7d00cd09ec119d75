//! Issuance limits: at most N tokens per minute for a key, across every
//! server process sharing the database, without a write per token.
//!
//! Minutes are fixed windows (`now` in whole minutes since the epoch). The
//! table `key_issuance` holds, per key, how many of the current window's
//! tokens processes have claimed. A process claims a *share* at a time
//! ([`share_of`]: a twentieth of the limit, 1 to 100 tokens) in one short
//! write transaction, then hands tokens out of its share from memory. So a
//! key with a limit costs one write per share, a key without one costs
//! nothing, and the limit is never exceeded: every token issued was claimed
//! first, and claims stop at the limit. The price is that a share claimed
//! by one process and not used before the minute ends is lost to the others
//! (at most one share per process and minute: with two processes and a limit
//! of 100, a client may get 95 instead of 100 in an unlucky minute).
//!
//! Once the database said a window is used up, the process refuses the rest
//! of that window from memory, so a client hammering past its limit costs no
//! database work; raising the limit (`keys set`) ends that at once, since
//! the cached answer is kept per limit.

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use diesel::prelude::*;

use crate::db::schema::key_issuance;
use crate::db::{DbConnection, Pool, write_transaction};

/// Length of one issuance window.
pub const WINDOW_SECS: i64 = 60;
/// Leases kept in memory before those of past windows are dropped.
const PRUNE_ABOVE: usize = 10_000;

/// Whether a token may be issued now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Granted,
    /// The key used up this minute: retry after this many seconds (when the
    /// next window opens). `first` is true for this process's first refusal
    /// of the key in this window, which is worth an audit event.
    Limited {
        retry_after_secs: u64,
        first: bool,
    },
}

/// This process's shares of each limited key's current window.
#[derive(Default)]
pub struct Issuance {
    leases: Mutex<HashMap<String, Lease>>,
}

#[derive(Debug, Clone, Copy)]
struct Lease {
    window: i64,
    /// The limit the lease was taken under.
    limit: u32,
    /// Tokens claimed and not yet issued.
    remaining: u32,
    /// The database said the window is used up (under `limit`).
    exhausted: bool,
    /// A refusal of this window was already reported.
    refusal_reported: bool,
}

/// The window `now` falls in.
pub fn window_of(now: DateTime<Utc>) -> i64 {
    now.timestamp().div_euclid(WINDOW_SECS)
}

/// Seconds until the window after `now`'s opens: 1 to 60.
pub fn retry_after(now: DateTime<Utc>) -> u64 {
    let into = now.timestamp().rem_euclid(WINDOW_SECS);
    u64::try_from(WINDOW_SECS - into).unwrap_or(1)
}

/// How many tokens a process claims at once under `limit`: a twentieth, at
/// least 1 and at most 100, so little is lost to other processes at a window's
/// end while a busy key writes about once per 100 tokens.
pub fn share_of(limit: u32) -> u32 {
    (limit / 20).clamp(1, 100)
}

/// What a poisoned lock holds is still sound (every update is one
/// assignment), so a panic elsewhere does not stop issuance.
fn lock(
    leases: &Mutex<HashMap<String, Lease>>,
) -> std::sync::MutexGuard<'_, HashMap<String, Lease>> {
    leases
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Issuance {
    /// Takes one token of `limit` per minute for the key `key_id`: from this
    /// process's share when it has one, else by claiming a new share from
    /// the database.
    pub async fn admit(
        &self,
        pool: &Pool,
        key_id: &str,
        limit: u32,
        now: DateTime<Utc>,
    ) -> Result<Admission, crate::error::StoreError> {
        let window = window_of(now);
        let limited = |first| Admission::Limited {
            retry_after_secs: retry_after(now),
            first,
        };
        {
            let mut leases = lock(&self.leases);
            if let Some(lease) = leases.get_mut(key_id)
                && lease.window == window
                && lease.limit == limit
            {
                if lease.remaining > 0 {
                    lease.remaining -= 1;
                    return Ok(Admission::Granted);
                }
                if lease.exhausted {
                    let first = !lease.refusal_reported;
                    lease.refusal_reported = true;
                    return Ok(limited(first));
                }
            }
        }

        let share = share_of(limit);
        let granted = {
            let id = key_id.to_owned();
            pool.run(move |conn| {
                claim(conn, &id, window, limit, share).map_err(crate::error::StoreError::from)
            })
            .await?
        };

        let mut leases = lock(&self.leases);
        if leases.len() > PRUNE_ABOVE {
            leases.retain(|_, lease| lease.window >= window);
        }
        let lease = leases.entry(key_id.to_owned()).or_insert(Lease {
            window,
            limit,
            remaining: 0,
            exhausted: false,
            refusal_reported: false,
        });
        if lease.window != window || lease.limit != limit {
            *lease = Lease {
                window,
                limit,
                remaining: 0,
                exhausted: false,
                refusal_reported: false,
            };
        }
        if granted == 0 {
            lease.exhausted = true;
            let first = !lease.refusal_reported;
            lease.refusal_reported = true;
            return Ok(limited(first));
        }
        // One of the claimed tokens is this request's.
        lease.remaining += granted - 1;
        Ok(Admission::Granted)
    }
}

/// Claims up to `want` tokens of the key's `window` under `limit`; returns
/// how many were granted (0 once the window is used up). One short write
/// transaction: SQLite's `BEGIN IMMEDIATE`, on PostgreSQL the key's row
/// locked, so processes claiming at once are served one after another.
pub fn claim(
    conn: &mut DbConnection,
    key_id: &str,
    window: i64,
    limit: u32,
    want: u32,
) -> QueryResult<u32> {
    write_transaction(conn, |conn| {
        let first_row = diesel::insert_into(key_issuance::table)
            .values((
                key_issuance::key_id.eq(key_id),
                key_issuance::window_start.eq(window),
                key_issuance::claimed.eq(0_i64),
            ))
            .on_conflict_do_nothing();
        match conn {
            DbConnection::Pg(pg) => first_row.execute(pg)?,
            DbConnection::Sqlite(sqlite) => first_row.execute(sqlite)?,
        };
        let row = key_issuance::table
            .find(key_id)
            .select((key_issuance::window_start, key_issuance::claimed));
        let (stored_window, stored_claimed): (i64, i64) = match conn {
            DbConnection::Pg(pg) => row.for_update().first(pg)?,
            DbConnection::Sqlite(_) => row.first(conn)?,
        };
        let claimed = if stored_window == window {
            stored_claimed
        } else {
            0
        };
        let left = i64::from(limit).saturating_sub(claimed).max(0);
        let granted = left.min(i64::from(want));
        if granted > 0 || stored_window != window {
            diesel::update(key_issuance::table.find(key_id))
                .set((
                    key_issuance::window_start.eq(window),
                    key_issuance::claimed.eq(claimed + granted),
                ))
                .execute(conn)?;
        }
        Ok(u32::try_from(granted).unwrap_or(0))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_are_whole_minutes() {
        let at = |s: i64| DateTime::<Utc>::from_timestamp(s, 0).unwrap();
        assert_eq!(window_of(at(120)), 2);
        assert_eq!(window_of(at(179)), 2);
        assert_eq!(retry_after(at(120)), 60);
        assert_eq!(retry_after(at(179)), 1);
    }

    #[test]
    fn shares_are_a_twentieth_within_bounds() {
        assert_eq!(share_of(1), 1);
        assert_eq!(share_of(60), 3);
        assert_eq!(share_of(1_000), 50);
        assert_eq!(share_of(1_000_000), 100);
    }
}
