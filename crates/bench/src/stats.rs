//! One measurement's figures: a latency histogram (hdrhistogram, µs) and
//! counts, turned into requests/s, p50, p99 and max.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;

/// Latencies above this (µs) are recorded as this: a minute.
const MAX_LATENCY_US: u64 = 60_000_000;

/// Counts and latencies of one group of connections over one window.
#[derive(Debug, Clone)]
pub struct Tally {
    pub latencies: Histogram<u64>,
    /// Responses by status code (0: the connection failed).
    pub by_status: BTreeMap<u16, u64>,
    /// Responses that were not what the scenario expects (see `load::Expect`).
    pub unexpected: u64,
}

impl Default for Tally {
    fn default() -> Self {
        Self::new()
    }
}

impl Tally {
    pub fn new() -> Self {
        // Three significant digits from 1 µs to a minute. The bounds are
        // constants hdrhistogram accepts (a unit test builds one).
        #[allow(clippy::expect_used)]
        let latencies = Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)
            .expect("constant histogram bounds are valid");
        Self {
            latencies,
            by_status: BTreeMap::new(),
            unexpected: 0,
        }
    }

    pub fn record(&mut self, status: u16, latency: Duration, expected: bool) {
        let us = u64::try_from(latency.as_micros()).unwrap_or(MAX_LATENCY_US);
        self.latencies
            .saturating_record(us.clamp(1, MAX_LATENCY_US));
        *self.by_status.entry(status).or_default() += 1;
        if !expected {
            self.unexpected += 1;
        }
    }

    pub fn merge(&mut self, other: &Tally) {
        // Same bounds on both sides, so adding cannot fail.
        let _ = self.latencies.add(&other.latencies);
        for (status, n) in &other.by_status {
            *self.by_status.entry(*status).or_default() += n;
        }
        self.unexpected += other.unexpected;
    }

    pub fn count(&self) -> u64 {
        self.latencies.len()
    }

    pub fn summary(&self, window: Duration) -> Summary {
        let secs = window.as_secs_f64();
        let n = self.count();
        let ms = |q: f64| {
            if n == 0 {
                0.0
            } else {
                self.latencies.value_at_quantile(q) as f64 / 1000.0
            }
        };
        Summary {
            requests: n,
            seconds: secs,
            rps: if secs > 0.0 { n as f64 / secs } else { 0.0 },
            p50_ms: ms(0.50),
            p99_ms: ms(0.99),
            max_ms: if n == 0 {
                0.0
            } else {
                self.latencies.max() as f64 / 1000.0
            },
            errors: self.unexpected,
            by_status: self.by_status.clone(),
        }
    }
}

/// The figures of one measurement, as printed and saved.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Summary {
    pub requests: u64,
    pub seconds: f64,
    pub rps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// Responses other than the expected ones, connection failures included.
    pub errors: u64,
    pub by_status: BTreeMap<u16, u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_and_rate_of_a_known_distribution() {
        let mut t = Tally::new();
        for ms in 1..=100u64 {
            t.record(200, Duration::from_millis(ms), true);
        }
        t.record(401, Duration::from_millis(1), false);
        let s = t.summary(Duration::from_secs(2));
        assert_eq!(s.requests, 101);
        assert!((s.rps - 50.5).abs() < 1e-9);
        assert!((s.p50_ms - 50.0).abs() < 0.1, "{}", s.p50_ms);
        assert!((s.p99_ms - 99.0).abs() < 0.1, "{}", s.p99_ms);
        assert!((s.max_ms - 100.0).abs() < 0.1);
        assert_eq!(s.errors, 1);
        assert_eq!(s.by_status[&200], 100);
        assert_eq!(s.by_status[&401], 1);
    }

    #[test]
    fn merge_adds_counts_and_latencies() {
        let mut a = Tally::new();
        let mut b = Tally::new();
        a.record(200, Duration::from_micros(100), true);
        b.record(0, Duration::from_micros(300), false);
        a.merge(&b);
        let s = a.summary(Duration::from_secs(1));
        assert_eq!((s.requests, s.errors), (2, 1));
        assert_eq!(s.by_status.get(&0), Some(&1));
    }

    #[test]
    fn an_empty_window_reports_zeroes() {
        let s = Tally::new().summary(Duration::ZERO);
        assert_eq!(s, Summary::default());
    }
}
