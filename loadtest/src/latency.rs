//! Latency histograms and the percentile summary every report carries.
//!
//! Latencies are recorded in microseconds in an HDR histogram (three significant
//! digits), so a percentile is exact to 0.1% whatever the spread, and merging the
//! histograms of many connections costs nothing per message.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;
use serde::Serialize;

/// Highest latency recorded exactly (one hour); larger values are clamped to it.
const MAX_MICROS: u64 = 3_600_000_000;

/// Nanoseconds since the Unix epoch: the clock `X-Blaster-Sent` is written in, so the
/// sender and the sink (on the same machine) measure end-to-end latency on one clock.
pub fn unix_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// A latency histogram in microseconds.
#[derive(Debug, Clone)]
pub struct Latency(Histogram<u64>);

impl Default for Latency {
    fn default() -> Self {
        Self::new()
    }
}

impl Latency {
    /// An empty histogram covering 1 µs to one hour.
    pub fn new() -> Self {
        match Histogram::new_with_bounds(1, MAX_MICROS, 3) {
            Ok(h) => Self(h),
            // The bounds above are constants that hdrhistogram accepts.
            Err(e) => unreachable!("histogram bounds: {e}"),
        }
    }

    /// Records one latency.
    pub fn record(&mut self, latency: Duration) {
        self.record_micros(latency.as_micros().min(u128::from(MAX_MICROS)) as u64);
    }

    /// Records one latency given in microseconds.
    pub fn record_micros(&mut self, micros: u64) {
        self.0.saturating_record(micros.clamp(1, MAX_MICROS));
    }

    /// Adds every value of `other`.
    pub fn merge(&mut self, other: &Latency) {
        // Same bounds on both sides, so adding cannot fail.
        let _ = self.0.add(&other.0);
    }

    /// How many values were recorded.
    pub fn count(&self) -> u64 {
        self.0.len()
    }

    /// The percentile summary in milliseconds.
    pub fn percentiles(&self) -> Percentiles {
        let ms = |q: f64| self.0.value_at_quantile(q) as f64 / 1000.0;
        if self.0.is_empty() {
            return Percentiles::default();
        }
        Percentiles {
            count: self.0.len(),
            mean: self.0.mean() / 1000.0,
            p50: ms(0.50),
            p90: ms(0.90),
            p99: ms(0.99),
            p999: ms(0.999),
            max: self.0.max() as f64 / 1000.0,
        }
    }

    /// `(latency in ms, share of values at or below it)` points for a CDF plot.
    pub fn cdf(&self) -> Vec<(f64, f64)> {
        if self.0.is_empty() {
            return Vec::new();
        }
        let total = self.0.len() as f64;
        let mut seen = 0u64;
        self.0
            .iter_recorded()
            .map(|v| {
                seen += v.count_at_value();
                (v.value_iterated_to() as f64 / 1000.0, seen as f64 / total)
            })
            .collect()
    }
}

/// Latency percentiles in milliseconds, as written to every JSON report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Percentiles {
    /// How many latencies were recorded.
    pub count: u64,
    /// Arithmetic mean.
    pub mean: f64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Largest value seen.
    pub max: f64,
}

impl std::fmt::Display for Percentiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms",
            self.p50, self.p90, self.p99, self.p999, self.max
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_a_uniform_spread() {
        let mut h = Latency::new();
        for ms in 1..=1000u64 {
            h.record(Duration::from_millis(ms));
        }
        let p = h.percentiles();
        assert_eq!(p.count, 1000);
        assert!((p.p50 - 500.0).abs() < 1.0, "{p:?}");
        assert!((p.p99 - 990.0).abs() < 1.5, "{p:?}");
        assert!((p.max - 1000.0).abs() < 1.0, "{p:?}");
    }

    #[test]
    fn empty_histogram_reports_zeroes() {
        assert_eq!(Latency::new().percentiles(), Percentiles::default());
    }

    #[test]
    fn merge_adds_counts() {
        let mut a = Latency::new();
        let mut b = Latency::new();
        a.record_micros(10);
        b.record_micros(20);
        a.merge(&b);
        assert_eq!(a.count(), 2);
    }
}
