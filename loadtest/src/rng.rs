//! Randomness for failure odds, size spreads and content classes: rand's [`SmallRng`],
//! cheap on the hot path (cryptographic quality is not needed) and seedable, so that a
//! run with `--seed` repeats its draws.

use rand::rngs::SmallRng;
use rand::{RngExt as _, SeedableRng as _};

/// The generator every worker and sink session holds.
pub type Rng = SmallRng;

/// A generator that repeats the same draws for the same seed.
pub fn seeded(seed: u64) -> Rng {
    SmallRng::seed_from_u64(seed)
}

/// A generator seeded by the operating system.
pub fn from_entropy() -> Rng {
    rand::make_rng()
}

/// True with probability `p`: never for `p <= 0` (or NaN), always for `p >= 1`.
pub fn chance(rng: &mut Rng, p: f64) -> bool {
    p > 0.0 && (p >= 1.0 || rng.random_bool(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chance_follows_the_odds() {
        let mut rng = seeded(7);
        let hits = (0..100_000).filter(|_| chance(&mut rng, 0.25)).count();
        assert!((24_000..26_000).contains(&hits), "{hits}");
    }

    #[test]
    fn zero_and_one_are_exact() {
        let mut rng = seeded(1);
        assert!((0..1000).all(|_| !chance(&mut rng, 0.0)));
        assert!((0..1000).all(|_| chance(&mut rng, 1.0)));
        assert!(!chance(&mut rng, f64::NAN));
    }

    #[test]
    fn a_seed_repeats_its_draws() {
        let (mut a, mut b) = (seeded(42), seeded(42));
        assert!((0..100).all(|_| chance(&mut a, 0.5) == chance(&mut b, 0.5)));
    }
}
