//! What the warm token path reads on every request: the change epochs and,
//! when a failure was counted since its client was last found
//! unthrottled, the client's throttle rows; for introspection, the epochs
//! and whether one token is revoked. [`Pool::fresh`] reads them on
//! PostgreSQL in shared rounds (`pg_reads`), on SQLite inline, and through
//! the pool when neither can.
//!
//! [`Pool::fresh`]: super::Pool::fresh

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::DbConnection;
use super::epochs::{self, Epochs};
use super::schema::{auth_throttle, revoked_tokens};

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

/// What one request wants read besides the epochs.
#[derive(Debug, Clone, Default)]
pub struct Probe {
    pub throttle: Option<ThrottleProbe>,
    /// The `jti` of a token whose revocation is asked.
    pub revoked: Option<String>,
}

/// What one request read: the epochs, then its throttle rows and its
/// token's revocation.
#[derive(Debug, Clone)]
pub struct Fresh {
    pub epochs: Epochs,
    /// `None` when the probe's failure epoch still held, or there was no probe.
    pub throttle: Option<Vec<ThrottleRow>>,
    /// Whether the probe's token is revoked; `None` when none was asked.
    pub revoked: Option<bool>,
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

/// Whether the token `jti` is revoked.
pub fn is_revoked(conn: &mut DbConnection, jti: &str) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        revoked_tokens::table.filter(revoked_tokens::jti.eq(jti)),
    ))
    .get_result(conn)
}

/// The epochs, then the probe's rows if the failure epoch moved and its
/// token's revocation, on one connection in that order.
pub fn read(conn: &mut DbConnection, probe: &Probe) -> QueryResult<Fresh> {
    let epochs = epochs::read(conn)?;
    let throttle = match probe
        .throttle
        .as_ref()
        .filter(|p| p.needed(epochs.failures))
    {
        Some(p) => Some(throttle_rows(conn, &p.subject, &p.addr, p.after)?),
        None => None,
    };
    let revoked = match &probe.revoked {
        Some(jti) => Some(is_revoked(conn, jti)?),
        None => None,
    };
    Ok(Fresh {
        epochs,
        throttle,
        revoked,
    })
}
