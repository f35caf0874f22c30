//! Reconnect back-off: exponential between a floor and a ceiling, with jitter so that many
//! sessions (or many smsflow instances) that lost the same SMSC do not reconnect in lockstep.
//! Pure: the caller sleeps; randomness is a seeded generator so tests are exact.

use std::time::Duration;

/// Exponential back-off with "equal jitter": each delay is half the current step plus a random
/// share of the other half, so it never drops below half the step and never exceeds it.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    step: Duration,
    rng: SplitMix64,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration, seed: u64) -> Self {
        let min = min.max(Duration::from_millis(1));
        Self {
            min,
            max: max.max(min),
            step: min,
            rng: SplitMix64(seed),
        }
    }

    /// The delay before the next attempt; the step doubles up to `max`.
    pub fn next_delay(&mut self) -> Duration {
        let step = self.step;
        self.step = (self.step * 2).min(self.max);
        self.jitter(step)
    }

    /// The delay after a failure that retrying soon will not fix (credentials refused): the
    /// ceiling, jittered, and the step stays there until [`Backoff::reset`].
    pub fn next_long_delay(&mut self) -> Duration {
        self.step = self.max;
        self.jitter(self.max)
    }

    /// Back to the floor, after a session that bound successfully.
    pub fn reset(&mut self) {
        self.step = self.min;
    }

    fn jitter(&mut self, step: Duration) -> Duration {
        let half = step / 2;
        let fraction = (self.rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        half + half.mul_f64(fraction)
    }
}

/// A tiny, well-mixed generator (Steele et al.); enough for jitter, no dependency needed.
#[derive(Debug, Clone)]
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn grows_to_the_ceiling_within_jitter_bounds() {
        let mut b = Backoff::new(1000 * MS, 60_000 * MS, 7);
        let mut step = 1000 * MS;
        for _ in 0..10 {
            let d = b.next_delay();
            assert!(
                d >= step / 2 && d <= step,
                "{d:?} outside [{:?}, {step:?}]",
                step / 2
            );
            step = (step * 2).min(60_000 * MS);
        }
        assert_eq!(step, 60_000 * MS);
    }

    #[test]
    fn long_delay_jumps_to_the_ceiling_and_reset_returns_to_the_floor() {
        let mut b = Backoff::new(1000 * MS, 60_000 * MS, 1);
        assert!(b.next_long_delay() >= 30_000 * MS);
        assert!(b.next_delay() >= 30_000 * MS, "stays long until reset");
        b.reset();
        assert!(b.next_delay() <= 1000 * MS);
    }

    #[test]
    fn jitter_differs_between_seeds() {
        let a: Vec<_> = (0..5)
            .map({
                let mut b = Backoff::new(1000 * MS, 60_000 * MS, 1);
                move |_| b.next_delay()
            })
            .collect();
        let b: Vec<_> = (0..5)
            .map({
                let mut b = Backoff::new(1000 * MS, 60_000 * MS, 2);
                move |_| b.next_delay()
            })
            .collect();
        assert_ne!(a, b);
    }
}
