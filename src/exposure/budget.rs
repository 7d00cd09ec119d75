//! The argon2 work leak reports may cost this process per minute, across
//! every address. A string whose lookup tag finds no key costs no argon2 at
//! all (one indexed read); only a tag hit, which only a real secret makes,
//! is verified. The budget bounds even that: a holder of many live secrets
//! can revoke them all, but not faster than this.
//!
//! It protects this process's CPU, so it is this process's: several
//! processes each have their own, as each has its own cores.

use std::sync::Mutex;

use chrono::{DateTime, Utc};

/// Verifications per minute (each ~16 ms of one core: 120 are about 3 %).
pub const VERIFICATIONS_PER_MINUTE: u32 = 120;

/// A count of verifications in the current minute.
#[derive(Debug)]
pub struct Budget {
    per_minute: u32,
    /// (minute since the epoch, verifications taken in it)
    window: Mutex<(i64, u32)>,
}

impl Default for Budget {
    fn default() -> Self {
        Self::new(VERIFICATIONS_PER_MINUTE)
    }
}

impl Budget {
    pub fn new(per_minute: u32) -> Self {
        Self {
            per_minute,
            window: Mutex::new((i64::MIN, 0)),
        }
    }

    /// Takes `n` verifications from this minute's budget, all or none;
    /// `Err(seconds)` until the next minute when they do not fit.
    pub fn take(&self, n: u32, now: DateTime<Utc>) -> Result<(), i64> {
        if n == 0 {
            return Ok(());
        }
        let minute = now.timestamp().div_euclid(60);
        let mut window = self
            .window
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if window.0 != minute {
            *window = (minute, 0);
        }
        if window.1.saturating_add(n) > self.per_minute {
            return Err(60 - now.timestamp().rem_euclid(60));
        }
        window.1 += n;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(seconds, 0).unwrap()
    }

    #[test]
    fn the_budget_is_per_minute_and_all_or_nothing() {
        let budget = Budget::new(3);
        assert_eq!(budget.take(2, at(600)), Ok(()));
        assert_eq!(budget.take(2, at(610)), Err(50), "two do not fit in one");
        assert_eq!(budget.take(1, at(610)), Ok(()));
        assert_eq!(budget.take(1, at(659)), Err(1));
        assert_eq!(budget.take(3, at(660)), Ok(()), "a new minute");
        assert_eq!(budget.take(0, at(661)), Ok(()), "nothing costs nothing");
    }
}
