//! What the warm token path reads on every request: the change epochs and,
//! when a failure was counted since its client was last found
//! unthrottled, the client's throttle rows. [`Pool::fresh`] reads them on
//! PostgreSQL in shared rounds (`pg_reads`), on SQLite inline, and through
//! the pool when neither can.
//!
//! [`Pool::fresh`]: super::Pool::fresh

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::DbConnection;
use super::epochs::{self, Epochs};
use super::schema::auth_throttle;

/// The subject of a throttle counter that counts an address's failures
/// whatever client ID they name.
pub const ANY_CLIENT: &str = "*";

/// One throttle row: its subject (a client ID, or [`ANY_CLIENT`]), the
/// start of its window, and the failures counted in it.
pub type ThrottleRow = (String, NaiveDateTime, i32);

/// The throttle rows a request needs: those of `subject` and of
/// [`ANY_CLIENT`] at `addr` whose window started after `after`, unless the
/// failure epoch still reads `unless_failures` (then none can have changed).
#[derive(Debug, Clone)]
pub struct ThrottleProbe {
    pub subject: String,
    pub addr: String,
    pub after: NaiveDateTime,
    pub unless_failures: Option<i64>,
}

impl ThrottleProbe {
    /// Whether the rows must be read, given the failure epoch just read.
    pub fn needed(&self, failures: i64) -> bool {
        self.unless_failures != Some(failures)
    }

    /// Whether `row` (subject, address, window start) is one of the probe's.
    pub fn wants(&self, subject: &str, addr: &str, start: NaiveDateTime) -> bool {
        addr == self.addr
            && start > self.after
            && (subject == self.subject || subject == ANY_CLIENT)
    }
}

/// What one request read: the epochs, then its throttle rows.
#[derive(Debug, Clone)]
pub struct Fresh {
    pub epochs: Epochs,
    /// `None` when the probe's failure epoch still held, or there was no probe.
    pub throttle: Option<Vec<ThrottleRow>>,
}

/// The live throttle rows of `subject` and of [`ANY_CLIENT`] at `addr`.
pub fn throttle_rows(
    conn: &mut DbConnection,
    subject: &str,
    addr: &str,
    after: NaiveDateTime,
) -> QueryResult<Vec<ThrottleRow>> {
    auth_throttle::table
        .filter(auth_throttle::addr.eq(addr))
        // Two equalities rather than IN: a fixed statement shape that
        // diesel can keep prepared, since this runs on every request.
        .filter(
            auth_throttle::subject
                .eq(subject)
                .or(auth_throttle::subject.eq(ANY_CLIENT)),
        )
        .filter(auth_throttle::window_start.gt(after))
        .select((
            auth_throttle::subject,
            auth_throttle::window_start,
            auth_throttle::failures,
        ))
        .load(conn)
}

/// The epochs, then the probe's rows if the failure epoch moved, on one
/// connection in that order.
pub fn read(conn: &mut DbConnection, probe: Option<&ThrottleProbe>) -> QueryResult<Fresh> {
    let epochs = epochs::read(conn)?;
    let throttle = match probe.filter(|p| p.needed(epochs.failures)) {
        Some(p) => Some(throttle_rows(conn, &p.subject, &p.addr, p.after)?),
        None => None,
    };
    Ok(Fresh { epochs, throttle })
}
