//! The `tps` cap of one `[[smsc]]`: a limiter shared by all its sessions.
//!
//! Each submit reserves the next free slot; slots are `1/tps` apart, with a small burst
//! allowance so a quiet link can send a few messages at once. Pure: time is an argument.

use std::time::{Duration, Instant};

/// A GCRA limiter: `tat` is the theoretical arrival time of the next submit at the exact
/// rate; a submit may go up to `burst` earlier than that.
#[derive(Debug, Clone)]
pub struct TpsLimiter {
    interval: Duration,
    burst: Duration,
    tat: Option<Instant>,
}

impl TpsLimiter {
    /// `tps` submits per second; `burst` of them may go back to back after a quiet spell.
    pub fn new(tps: u32, burst: u32) -> Self {
        let interval = Duration::from_secs(1) / tps.max(1);
        Self {
            interval,
            burst: interval * burst.saturating_sub(1),
            tat: None,
        }
    }

    /// Reserves a slot and returns when it may be used (`now` or later). Over any one-second
    /// window at most `tps + burst` slots start.
    pub fn reserve(&mut self, now: Instant) -> Instant {
        let tat = self.tat.map_or(now, |tat| tat.max(now));
        let at = tat.checked_sub(self.burst).map_or(now, |at| at.max(now));
        self.tat = Some(tat + self.interval);
        at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spaces_submits_at_the_rate() {
        let t0 = Instant::now();
        let mut l = TpsLimiter::new(10, 1);
        let slots: Vec<_> = (0..5).map(|_| l.reserve(t0) - t0).collect();
        assert_eq!(slots, [0, 100, 200, 300, 400].map(Duration::from_millis));
    }

    #[test]
    fn allows_a_burst_after_a_quiet_spell() {
        let t0 = Instant::now();
        let mut l = TpsLimiter::new(10, 3);
        l.reserve(t0);
        let later = t0 + Duration::from_secs(5);
        let slots: Vec<_> = (0..5).map(|_| l.reserve(later) - later).collect();
        assert_eq!(slots, [0, 0, 0, 100, 200].map(Duration::from_millis));
    }

    #[test]
    fn never_exceeds_the_cap_over_a_second() {
        let t0 = Instant::now();
        let mut l = TpsLimiter::new(50, 5);
        let slots: Vec<_> = (0..500).map(|_| l.reserve(t0)).collect();
        for (i, &s) in slots.iter().enumerate() {
            let in_window = slots[i..]
                .iter()
                .take_while(|&&t| t < s + Duration::from_secs(1))
                .count();
            assert!(in_window <= 55, "{in_window} slots within one second");
        }
    }
}
