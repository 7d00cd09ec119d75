//! The monotonic time a verifier's caches read: the JWKS lifetime, the
//! unknown-`kid` refetch interval and the online answers' TTL.
//!
//! By default that is [`Instant::now`]. A test gives the verifier a
//! [`ManualClock`] instead and moves it forward, so cache expiry is tested
//! without sleeping. Token `exp` and `nbf` are wall time and are not read
//! from this clock.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Where a verifier reads monotonic time.
#[derive(Clone, Debug)]
pub(crate) enum Clock {
    System,
    Manual(ManualClock),
}

impl Clock {
    pub(crate) fn now(&self) -> Instant {
        match self {
            Self::System => Instant::now(),
            Self::Manual(clock) => clock.now(),
        }
    }
}

/// A clock that stands still until it is advanced, for tests of a
/// [`Verifier`](crate::Verifier)'s caching (see
/// [`VerifierBuilder::clock`](crate::VerifierBuilder::clock)). Clones share
/// one time.
///
/// ```
/// use std::time::Duration;
/// use keygate_verifier::ManualClock;
///
/// let clock = ManualClock::new();
/// let start = clock.now();
/// clock.advance(Duration::from_secs(30));
/// assert_eq!(clock.now() - start, Duration::from_secs(30));
/// ```
#[derive(Clone, Debug)]
pub struct ManualClock {
    now: Arc<Mutex<Instant>>,
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl ManualClock {
    /// A clock standing at the current instant.
    pub fn new() -> Self {
        Self {
            now: Arc::new(Mutex::new(Instant::now())),
        }
    }

    /// The clock's time: where it started plus every [`advance`](Self::advance).
    pub fn now(&self) -> Instant {
        *self.lock()
    }

    /// Moves the clock (and every clone of it) forward by `by`.
    ///
    /// # Panics
    ///
    /// If the time would leave [`Instant`]'s range, as `Instant + Duration`
    /// does.
    pub fn advance(&self, by: Duration) {
        let mut now = self.lock();
        *now += by;
    }

    fn lock(&self) -> MutexGuard<'_, Instant> {
        // An Instant cannot be left half-written: a poisoned lock still
        // holds a valid time.
        self.now
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_advanced_and_clones_share_it() {
        let clock = ManualClock::new();
        let clone = clock.clone();
        let start = clock.now();
        assert_eq!(clock.now(), start);
        clone.advance(Duration::from_millis(500));
        assert_eq!(
            Clock::Manual(clock).now() - start,
            Duration::from_millis(500)
        );
    }

    #[test]
    fn the_system_clock_is_instant_now() {
        let before = Instant::now();
        let now = Clock::System.now();
        assert!(before <= now && now <= Instant::now());
    }
}
