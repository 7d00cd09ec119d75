//! When and from where each key was last used: what `last_used_*` records,
//! and how often it is worth writing.

use chrono::{DateTime, NaiveDateTime, Utc};
use quick_cache::sync::Cache;

use super::store::UseSite;
use crate::time::from_db;

/// When and from where a key was last used, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastUse {
    pub at: NaiveDateTime,
    pub from: Option<String>,
}

impl UseSite {
    /// Whether this use is worth a write of `last_used_*` after `last`:
    /// when that is a minute old, or a second old and from another address
    /// (a new `User-Agent` rides along with either). So a busy client does
    /// not turn every token request into a write, and not even one whose
    /// address changes with every request (at most one write a second).
    pub fn is_worth_recording(&self, last: Option<&LastUse>, now: DateTime<Utc>) -> bool {
        let Some(last) = last else {
            return true;
        };
        let age = now - from_db(last.at);
        age >= chrono::Duration::seconds(60)
            || (age >= chrono::Duration::seconds(1)
                && last.from.as_deref() != Some(self.from.as_str()))
    }
}

/// The last use this process recorded of each key it served lately. A
/// credential remembered between requests (`client_auth::verified`) keeps
/// the last use it was read with; this is what was written since.
pub struct RecentUses {
    cache: Cache<String, LastUse>,
}

impl Default for RecentUses {
    fn default() -> Self {
        Self {
            cache: Cache::new(10_000),
        }
    }
}

impl RecentUses {
    /// The later of `stored` (as read with the credential) and the last use
    /// of `key_id` this process recorded.
    pub fn last(&self, key_id: &str, stored: Option<LastUse>) -> Option<LastUse> {
        match (self.cache.get(key_id), stored) {
            (Some(recent), Some(stored)) if stored.at > recent.at => Some(stored),
            (Some(recent), _) => Some(recent),
            (None, stored) => stored,
        }
    }

    pub fn record(&self, key_id: &str, last: LastUse) {
        self.cache.insert(key_id.to_owned(), last);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site(from: &str) -> UseSite {
        UseSite {
            from: from.to_owned(),
            user_agent: None,
        }
    }

    fn at(now: DateTime<Utc>, seconds_ago: i64, from: &str) -> LastUse {
        LastUse {
            at: (now - chrono::Duration::seconds(seconds_ago)).naive_utc(),
            from: Some(from.to_owned()),
        }
    }

    #[test]
    fn a_use_is_recorded_once_a_minute_or_once_a_second_from_elsewhere() {
        let now = Utc::now();
        let a = site("192.0.2.1");
        assert!(a.is_worth_recording(None, now));
        assert!(!a.is_worth_recording(Some(&at(now, 59, "192.0.2.1")), now));
        assert!(a.is_worth_recording(Some(&at(now, 60, "192.0.2.1")), now));
        assert!(!a.is_worth_recording(Some(&at(now, 0, "192.0.2.9")), now));
        assert!(a.is_worth_recording(Some(&at(now, 1, "192.0.2.9")), now));
    }

    #[test]
    fn the_later_of_the_stored_and_the_recorded_use_counts() {
        let now = Utc::now();
        let uses = RecentUses::default();
        assert_eq!(uses.last("k", None), None);
        assert_eq!(
            uses.last("k", Some(at(now, 90, "a"))),
            Some(at(now, 90, "a"))
        );
        uses.record("k", at(now, 10, "b"));
        assert_eq!(
            uses.last("k", Some(at(now, 90, "a"))),
            Some(at(now, 10, "b"))
        );
        assert_eq!(uses.last("k", Some(at(now, 5, "c"))), Some(at(now, 5, "c")));
    }
}
