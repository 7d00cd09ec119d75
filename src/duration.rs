//! Human durations such as `30s`, `15m`, `12h`, `90d`, as the CLI and the
//! configuration write them.

use std::fmt;
use std::str::FromStr;

/// A positive whole number of seconds, parsed from `<number><unit>` where the
/// unit is one of `s`, `m`, `h`, `d`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HumanDuration {
    seconds: i64,
}

/// Upper bound that keeps every date computation far from chrono's limits.
const MAX_SECONDS: i64 = 100 * 365 * 86_400;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("expected a number with a unit (s, m, h or d), such as 30s, 15m, 12h or 90d")]
    Malformed,
    #[error("must be greater than zero")]
    Zero,
    #[error("must be at most 100 years")]
    TooLong,
}

impl HumanDuration {
    pub const fn from_secs(seconds: i64) -> Self {
        Self { seconds }
    }

    pub fn as_secs(self) -> i64 {
        self.seconds
    }

    pub fn as_chrono(self) -> chrono::Duration {
        chrono::Duration::seconds(self.seconds)
    }

    pub fn as_std(self) -> std::time::Duration {
        std::time::Duration::from_secs(self.seconds.unsigned_abs())
    }

    /// The duration as a person reads it: `3 days`, `12 hours`, `1 minute`
    /// (the largest unit that divides it exactly, as [`Display`] picks).
    ///
    /// [`Display`]: fmt::Display
    pub fn in_words(self) -> String {
        let s = self.seconds;
        let (n, unit) = match () {
            _ if s % 86_400 == 0 => (s / 86_400, "day"),
            _ if s % 3_600 == 0 => (s / 3_600, "hour"),
            _ if s % 60 == 0 => (s / 60, "minute"),
            _ => (s, "second"),
        };
        if n == 1 {
            format!("1 {unit}")
        } else {
            format!("{n} {unit}s")
        }
    }

    /// Parses a duration that may also be `0`, meaning "none" (used by
    /// `KEYGATE_KEY_MAX_LIFETIME` and `--grace`).
    pub fn parse_or_zero(text: &str) -> Result<Option<Self>, DurationError> {
        if text.trim() == "0" {
            return Ok(None);
        }
        text.parse().map(Some)
    }
}

impl FromStr for HumanDuration {
    type Err = DurationError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        let split = text
            .find(|c: char| !c.is_ascii_digit())
            .ok_or(DurationError::Malformed)?;
        let (digits, unit) = text.split_at(split);
        if digits.is_empty() || digits.len() > 12 {
            return Err(DurationError::Malformed);
        }
        let number: i64 = digits.parse().map_err(|_| DurationError::Malformed)?;
        let factor = match unit {
            "s" => 1,
            "m" => 60,
            "h" => 3_600,
            "d" => 86_400,
            _ => return Err(DurationError::Malformed),
        };
        let seconds = number.checked_mul(factor).ok_or(DurationError::TooLong)?;
        if seconds == 0 {
            return Err(DurationError::Zero);
        }
        if seconds > MAX_SECONDS {
            return Err(DurationError::TooLong);
        }
        Ok(Self { seconds })
    }
}

impl fmt::Display for HumanDuration {
    /// Writes the largest unit that divides the duration exactly.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.seconds;
        match () {
            _ if s % 86_400 == 0 => write!(f, "{}d", s / 86_400),
            _ if s % 3_600 == 0 => write!(f, "{}h", s / 3_600),
            _ if s % 60 == 0 => write!(f, "{}m", s / 60),
            _ => write!(f, "{s}s"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn reads_as_words() {
        assert_eq!("72h".parse::<HumanDuration>().unwrap().in_words(), "3 days");
        assert_eq!("1h".parse::<HumanDuration>().unwrap().in_words(), "1 hour");
        assert_eq!(
            "90m".parse::<HumanDuration>().unwrap().in_words(),
            "90 minutes"
        );
        assert_eq!(
            "61s".parse::<HumanDuration>().unwrap().in_words(),
            "61 seconds"
        );
    }

    #[test]
    fn parses_each_unit() {
        assert_eq!("30s".parse::<HumanDuration>().unwrap().as_secs(), 30);
        assert_eq!("15m".parse::<HumanDuration>().unwrap().as_secs(), 900);
        assert_eq!("12h".parse::<HumanDuration>().unwrap().as_secs(), 43_200);
        assert_eq!("90d".parse::<HumanDuration>().unwrap().as_secs(), 7_776_000);
    }

    #[test]
    fn rejects_malformed_input() {
        for bad in [
            "", "15", "m", "1.5h", "-3d", "3 d", "3w", "10dd", "d10", "1e3s",
        ] {
            assert_eq!(
                bad.parse::<HumanDuration>(),
                Err(DurationError::Malformed),
                "{bad:?}"
            );
        }
        assert_eq!("0s".parse::<HumanDuration>(), Err(DurationError::Zero));
        assert_eq!(
            "99999999999d".parse::<HumanDuration>(),
            Err(DurationError::TooLong)
        );
    }

    #[test]
    fn zero_means_none_where_allowed() {
        assert_eq!(HumanDuration::parse_or_zero("0"), Ok(None));
        assert_eq!(
            HumanDuration::parse_or_zero("1h"),
            Ok(Some(HumanDuration::from_secs(3600)))
        );
    }

    proptest! {
        #[test]
        fn display_round_trips(seconds in 1i64..MAX_SECONDS) {
            let d = HumanDuration::from_secs(seconds);
            prop_assert_eq!(d.to_string().parse::<HumanDuration>(), Ok(d));
        }

        #[test]
        fn never_panics(text in "\\PC{0,20}") {
            let _ = text.parse::<HumanDuration>();
        }
    }
}
