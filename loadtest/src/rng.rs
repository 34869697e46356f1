//! A small, fast, seedable random generator (SplitMix64).
//!
//! Failure odds and size spreads need cheap randomness on the hot path, not
//! cryptographic quality, and a seed makes a test run repeatable.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Seeds handed out so far; mixed into every new generator so two sessions started in
/// the same nanosecond still draw different numbers.
static SEEDS: AtomicU64 = AtomicU64::new(0);

/// SplitMix64: one add and three multiplies per draw, good enough for odds.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator that repeats the same draws for the same seed (for tests).
    pub fn seeded(seed: u64) -> Self {
        Self(seed)
    }

    /// A generator seeded from the clock, the process id and a process-wide counter.
    pub fn from_entropy() -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        let n = SEEDS.fetch_add(1, Ordering::Relaxed);
        // The process id keeps two runs started in the same nanosecond apart.
        let pid = u64::from(std::process::id()).rotate_left(40);
        Self(nanos ^ pid ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15))
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform number in `[0, 1)`.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// True with probability `p` (never for `p <= 0`, always for `p >= 1`).
    pub fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && (p >= 1.0 || self.next_f64() < p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chance_matches_odds_roughly() {
        let mut rng = Rng::seeded(7);
        let hits = (0..100_000).filter(|_| rng.chance(0.25)).count();
        assert!((23_000..27_000).contains(&hits), "{hits}");
    }

    #[test]
    fn chance_edges_are_exact() {
        let mut rng = Rng::seeded(1);
        assert!((0..1000).all(|_| !rng.chance(0.0)));
        assert!((0..1000).all(|_| rng.chance(1.0)));
    }
}
