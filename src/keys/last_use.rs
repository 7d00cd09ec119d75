//! When and from where each key was last used: what `last_used_*` records,
//! and how often it is worth writing.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use quick_cache::sync::Cache;

use crate::db::DbConnection;
use crate::db::schema::api_keys;
use crate::text;
use crate::time::from_db;

/// Where a token request came from, as [`touch_last_used`] records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UseSite {
    /// The client's address (behind trusted proxies, the forwarded one).
    pub from: String,
    /// Its `User-Agent`, cleaned ([`UseSite::clean_user_agent`]).
    pub user_agent: Option<String>,
}

/// Longest `User-Agent` kept; the rest is cut.
const MAX_USER_AGENT_LEN: usize = 200;

impl UseSite {
    /// A `User-Agent` fit to store and show: control characters dropped,
    /// at most [`MAX_USER_AGENT_LEN`] bytes, redacted when it could hold a
    /// secret; `None` when nothing is left.
    pub fn clean_user_agent(raw: &[u8]) -> Option<String> {
        let text = String::from_utf8_lossy(raw);
        let mut cleaned: String = text.chars().filter(|c| !c.is_control()).collect();
        if cleaned.len() > MAX_USER_AGENT_LEN {
            let mut end = MAX_USER_AGENT_LEN;
            while !cleaned.is_char_boundary(end) {
                end -= 1;
            }
            cleaned.truncate(end);
        }
        let cleaned = cleaned.trim();
        (!cleaned.is_empty()).then(|| text::redact_secret(cleaned).into_owned())
    }
}

/// Records that the key was used now, from where and by what.
pub fn touch_last_used(
    conn: &mut DbConnection,
    key_id: &str,
    site: &UseSite,
    now: DateTime<Utc>,
) -> QueryResult<()> {
    diesel::update(api_keys::table.find(key_id))
        .set((
            api_keys::last_used_at.eq(now.naive_utc()),
            api_keys::last_used_from.eq(&site.from),
            api_keys::last_used_user_agent.eq(site.user_agent.as_deref()),
        ))
        .execute(conn)
        .map(|_| ())
}

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

    #[test]
    fn user_agents_are_cleaned_cut_and_never_hold_a_secret() {
        assert_eq!(
            UseSite::clean_user_agent(b"curl/8.5.0").as_deref(),
            Some("curl/8.5.0")
        );
        assert_eq!(
            UseSite::clean_user_agent(b"  bad\x1b[31m agent\x07 ").as_deref(),
            Some("bad[31m agent")
        );
        assert_eq!(UseSite::clean_user_agent(b" \t ").as_deref(), None);
        let long = "é".repeat(150);
        let cut = UseSite::clean_user_agent(long.as_bytes()).unwrap();
        assert_eq!(cut.len(), MAX_USER_AGENT_LEN);
        assert!(cut.chars().all(|c| c == 'é'));
        let leaky = format!(
            "deploy-bot (secret {}{})",
            crate::text::SECRET_PREFIX,
            "a".repeat(49)
        );
        assert_eq!(
            UseSite::clean_user_agent(leaky.as_bytes()).as_deref(),
            Some(crate::text::REDACTED_SECRET)
        );
        assert_eq!(
            UseSite::clean_user_agent(b"\xff\xfeok").as_deref(),
            Some("\u{fffd}\u{fffd}ok")
        );
    }

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
