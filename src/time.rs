//! Time: the clock the server reads at its edges, and the storage boundary
//! (the database holds naive UTC timestamps, everything else `DateTime<Utc>`).

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, Duration, NaiveDateTime, Utc};

/// Where `now` comes from. Read once at the edge (a request, a job run) and
/// passed down as a `DateTime<Utc>`; nothing below reads the time itself.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    manual: Option<ManualClock>,
}

impl Clock {
    /// The system's clock: what `serve` uses.
    pub fn system() -> Self {
        Self::default()
    }

    pub fn now(&self) -> DateTime<Utc> {
        match &self.manual {
            None => Utc::now(),
            Some(manual) => manual.now(),
        }
    }
}

impl From<ManualClock> for Clock {
    fn from(manual: ManualClock) -> Self {
        Self {
            manual: Some(manual),
        }
    }
}

/// A clock tests move: the system's time plus an offset that only the test
/// changes. It starts at the real time, so rows written by another process
/// on the real clock (the CLI) are never in its future; moving it past an
/// expiry or a grace period takes no waiting. Clones share the offset.
#[derive(Debug, Clone, Default)]
pub struct ManualClock {
    offset_ms: Arc<AtomicI64>,
}

impl ManualClock {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn now(&self) -> DateTime<Utc> {
        Utc::now() + self.offset()
    }

    /// Moves the clock by `by`; a negative `by` moves it back (a token
    /// issued then is already expired by the real clock).
    pub fn advance(&self, by: Duration) {
        self.offset_ms
            .fetch_add(by.num_milliseconds(), Ordering::SeqCst);
    }

    /// How far the clock is from the system's.
    pub fn offset(&self) -> Duration {
        Duration::milliseconds(self.offset_ms.load(Ordering::SeqCst))
    }
}

pub fn from_db(naive: NaiveDateTime) -> DateTime<Utc> {
    naive.and_utc()
}

/// The inverse of [`rfc3339`]; `None` for anything else.
pub fn parse_rfc3339(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|at| at.with_timezone(&Utc))
}

/// Which end of a day a date stands for in a time filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DayEdge {
    /// Its first instant: `since`.
    Start,
    /// Its last: `until`, inclusive.
    End,
}

/// A time filter's bound: an RFC 3339 time, or a `YYYY-MM-DD` day in UTC
/// from its first instant or to its last. `None` for anything else.
pub fn parse_bound(text: &str, edge: DayEdge) -> Option<DateTime<Utc>> {
    let text = text.trim();
    if let Some(at) = parse_rfc3339(text) {
        return Some(at);
    }
    let day = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()?;
    let at = match edge {
        DayEdge::Start => day.and_hms_opt(0, 0, 0),
        DayEdge::End => day.and_hms_micro_opt(23, 59, 59, 999_999),
    };
    at.map(|at| at.and_utc())
}

/// RFC 3339 with a `Z`, second precision: what JSON output and emails show.
pub fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Serde adapters writing stored naive UTC timestamps as RFC 3339.
pub mod naive_utc {
    use chrono::NaiveDateTime;
    use serde::Serializer;

    pub fn serialize<S: Serializer>(at: &NaiveDateTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::rfc3339(at.and_utc()))
    }
}

pub mod naive_utc_opt {
    use chrono::NaiveDateTime;
    use serde::Serializer;

    pub fn serialize<S: Serializer>(at: &Option<NaiveDateTime>, s: S) -> Result<S::Ok, S::Error> {
        match at {
            Some(at) => s.serialize_str(&super::rfc3339(at.and_utc())),
            None => s.serialize_none(),
        }
    }
}

/// Serde adapters writing a `DateTime<Utc>` as [`rfc3339`] (to the second).
pub mod utc {
    use chrono::{DateTime, Utc};
    use serde::Serializer;

    pub fn serialize<S: Serializer>(at: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::rfc3339(*at))
    }
}

pub mod utc_opt {
    use chrono::{DateTime, Utc};
    use serde::Serializer;

    pub fn serialize<S: Serializer>(at: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
        match at {
            Some(at) => super::utc::serialize(at, s),
            None => s.serialize_none(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bound_is_a_day_or_a_time_and_nothing_else() {
        let at = |text| parse_bound(text, DayEdge::Start).map(rfc3339);
        assert_eq!(at("2026-12-01").as_deref(), Some("2026-12-01T00:00:00Z"));
        assert_eq!(
            parse_bound(" 2026-12-01 ", DayEdge::End).map(|t| t.to_rfc3339()),
            Some("2026-12-01T23:59:59.999999+00:00".to_owned())
        );
        assert_eq!(
            at("2026-12-01T10:00:00+02:00").as_deref(),
            Some("2026-12-01T08:00:00Z")
        );
        for garbage in [
            "garbage",
            "2026-13-01",
            "2026-12-1x",
            "yesterday",
            "1764547200",
        ] {
            assert_eq!(at(garbage), None, "{garbage}");
        }
    }

    #[test]
    fn a_manual_clock_moves_only_when_told() {
        let manual = ManualClock::new();
        let clock = Clock::from(manual.clone());
        let before = Utc::now();
        assert!(clock.now() >= before);
        assert!(clock.now() - before < Duration::minutes(1));
        manual.advance(Duration::hours(2));
        assert!(clock.now() - before >= Duration::hours(2));
        manual.advance(Duration::hours(-3));
        assert!(clock.now() < before - Duration::minutes(59));
        assert_eq!(manual.offset(), Duration::hours(-1));
    }

    #[test]
    fn the_system_clock_is_the_real_time() {
        let before = Utc::now();
        let now = Clock::system().now();
        assert!(now >= before && now - before < Duration::minutes(1));
    }
}
