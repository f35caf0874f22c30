//! The built-in SMSC simulator: what `smsflow demo`, `smsflow smsc`, the end-to-end tests and
//! the benches talk SMPP to.
//!
//! Owns a loopback-grade SMSC ([`smsc`]): binds checked against one account, `submit_sm`
//! answered with unique message ids (optionally slowly, or throttled), delivery receipts, MO
//! injection with SMSC retry semantics (every deliver_sm is re-sent until the ESME answers it
//! with ESME_ROK or a permanent error, across reconnects), enquire_link both ways, fault
//! injection and counters. [`handsets`] plays the subscribers and staff who answer the texts.
//!
//! Layout, each module one concern and no two importing each other: [`smsc`] (start and the
//! handle), `session` (one ESME connection), `deliveries` (the deliver_sm owed until answered),
//! `submits` (submit_sm answers, receipts, the submitted view), `shared` (what they share),
//! `stats` (counters), [`handsets`] (the people, planned without I/O), [`control`] (the HTTP
//! control port: MOs by hand, what was submitted).
//!
//! Must not: use anything of smsflow beyond the wire layer ([`crate::smpp`]) for PDUs, hold a
//! lock across `.await`, panic on anything a peer sends, or use an unseeded random source: given
//! the same [`SimConfig::seed`] and the same traffic it makes the same choices.
//!
//! Counters count PDUs: a concatenated MO in three parts is three deliver_sm.

pub mod control;
mod deliveries;
pub mod handsets;
mod session;
mod shared;
pub mod smsc;
mod stats;
mod submits;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

pub use deliveries::DeliveryHandle;
pub use handsets::{MtKind, classify};
pub use smsc::{SmscHandle, start};

use crate::smpp::encode::EncodeError;

/// How the simulator behaves. Every field documents its default ([`SimConfig::default`]).
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Where to accept ESME connections. Default `127.0.0.1:2775` (the SMPP port); port 0 picks
    /// a free port (see [`SmscHandle::local_addr`]).
    pub listen: SocketAddr,
    /// The one account the simulator accepts: `system_id` … Default `smsflow`.
    pub system_id: String,
    /// … and its password. Default `smsflow`.
    pub password: String,
    /// The system_id the simulator announces in bind responses. Default `SMSFLOWSIM`.
    pub smsc_system_id: String,
    /// Delay before each submit_sm_resp, to exercise the ESME's window. Default 0; changeable
    /// at run time with [`SmscHandle::set_submit_latency`].
    pub submit_latency: Duration,
    /// submit_sm per second over all sessions before answering ESME_RTHROTTLED (token bucket
    /// with one second of burst). Default `None`: no limit.
    pub max_tps: Option<u32>,
    /// How long after a submit_sm asking for one the delivery receipt is sent. Default 200 ms.
    pub receipt_delay: Duration,
    /// Share of destination numbers that are unreachable (0.0..=1.0): every receipt for one
    /// reports UNDELIV and, with [`SimConfig::subscribers`], nobody answers there. Chosen per
    /// number from the seed, so it does not depend on the order messages come in. Default 0.0.
    pub receipt_failure_share: f64,
    /// How long the simulator waits for a deliver_sm_resp (or enquire_link_resp) before it
    /// treats the deliver_sm as not delivered (or the link as dead). Default 10 s.
    pub response_timeout: Duration,
    /// How long a deliver_sm that was not acknowledged waits before it is sent again. Default 1 s.
    pub retry_delay: Duration,
    /// Most deliver_sm in flight per session; the rest wait in the queue. Default 100.
    pub window: usize,
    /// Interval of the simulator's own enquire_link; a session that does not answer within
    /// `response_timeout` is closed. Default `None`: the simulator only answers enquire_links.
    pub enquire_link_interval: Option<Duration>,
    /// Seed of every random choice (receipt failures, subscriber replies). Default 1.
    pub seed: u64,
    /// Play subscribers and staff who answer surveys and escalations. Default `None`: off.
    pub subscribers: Option<SubscribersConfig>,
    /// Speak SMPP over TLS with this server config (built with [`crate::tls::server_config`];
    /// with client roots it requires client certificates). Default `None`: plain TCP.
    pub tls: Option<std::sync::Arc<rustls::ServerConfig>>,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 2775)),
            system_id: "smsflow".into(),
            password: "smsflow".into(),
            smsc_system_id: "SMSFLOWSIM".into(),
            submit_latency: Duration::ZERO,
            max_tps: None,
            receipt_delay: Duration::from_millis(200),
            receipt_failure_share: 0.0,
            response_timeout: Duration::from_secs(10),
            retry_delay: Duration::from_secs(1),
            window: 100,
            enquire_link_interval: None,
            seed: 1,
            subscribers: None,
            tls: None,
        }
    }
}

impl SimConfig {
    /// Refuses values the simulator cannot run with, naming the field.
    pub fn validate(&self) -> Result<(), SimError> {
        if !(0.0..=1.0).contains(&self.receipt_failure_share) {
            return Err(SimError::Config {
                field: "receipt_failure_share",
                reason: format!("{} is outside 0.0..=1.0", self.receipt_failure_share),
            });
        }
        if self.window == 0 {
            return Err(SimError::Config {
                field: "window",
                reason: "0 would never deliver anything (use 1 or more)".into(),
            });
        }
        if self.max_tps == Some(0) {
            return Err(SimError::Config {
                field: "max_tps",
                reason: "0 would throttle everything (use None for no limit)".into(),
            });
        }
        if self.enquire_link_interval == Some(Duration::ZERO) {
            return Err(SimError::Config {
                field: "enquire_link_interval",
                reason: "0 s (use None to switch it off)".into(),
            });
        }
        if let Some(subscribers) = &self.subscribers {
            subscribers
                .reply_delay
                .validate("subscribers.reply_delay")?;
            subscribers.ack_delay.validate("subscribers.ack_delay")?;
        }
        Ok(())
    }
}

/// How the simulated subscribers and staff behave (see [`handsets`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscribersConfig {
    /// How long a subscriber takes to answer a survey question. Default 200 ms..=2 s.
    pub reply_delay: DelayRange,
    /// How long a staff member takes to answer an escalation with OK. Default 1 s..=90 s
    /// (tests scale it down).
    pub ack_delay: DelayRange,
}

impl Default for SubscribersConfig {
    fn default() -> Self {
        Self {
            reply_delay: DelayRange::new(Duration::from_millis(200), Duration::from_secs(2)),
            ack_delay: DelayRange::new(Duration::from_secs(1), Duration::from_secs(90)),
        }
    }
}

/// A delay drawn uniformly from `min..=max`, or from `min`, `min + step`, ... up to `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DelayRange {
    pub min: Duration,
    pub max: Duration,
    /// Zero: any delay in the range. Else only whole steps from `min`, so delays stay apart
    /// from a timer's deadline by a margin (see [`DelayRange::in_steps`]).
    pub step: Duration,
}

impl DelayRange {
    pub const fn new(min: Duration, max: Duration) -> Self {
        Self {
            min,
            max,
            step: Duration::ZERO,
        }
    }

    /// Only `min`, `min + step`, ... `<= max`. A run on the real clock then repeats: e.g. acks
    /// at 2, 4, 6 or 8 s against a 5 s timeout are a second from it, never a race with it.
    pub const fn in_steps(self, step: Duration) -> Self {
        Self { step, ..self }
    }

    /// The delay at `fraction` (0.0..1.0) of the way from `min` to `max`.
    pub fn at(&self, fraction: f64) -> Duration {
        let span = self.max.saturating_sub(self.min);
        let fraction = fraction.clamp(0.0, 1.0);
        if self.step.is_zero() {
            return self.min + span.mul_f64(fraction);
        }
        let steps = span.as_nanos() / self.step.as_nanos();
        // fraction < 1.0 picks one of the steps + 1 values evenly; 1.0 is the last.
        let index = ((fraction * (steps + 1) as f64) as u128).min(steps);
        self.min + self.step * u32::try_from(index).unwrap_or(u32::MAX)
    }

    fn validate(&self, field: &'static str) -> Result<(), SimError> {
        if self.min > self.max {
            return Err(SimError::Config {
                field,
                reason: format!("min {:?} is above max {:?}", self.min, self.max),
            });
        }
        Ok(())
    }
}

/// A text a subscriber sends to the service (mobile-originated).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mo {
    /// The subscriber's MSISDN.
    pub source: String,
    /// The short code (e.g. `5700`).
    pub destination: String,
    pub text: String,
}

/// An address with its type of number and numbering plan.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SimAddress {
    pub ton: u8,
    pub npi: u8,
    pub addr: String,
}

impl SimAddress {
    /// The TON/NPI a carrier would use: international ISDN for long digit strings (MSISDNs),
    /// network-specific for short codes, alphanumeric otherwise.
    pub fn guess(addr: &str) -> Self {
        let digits = !addr.is_empty() && addr.bytes().all(|b| b.is_ascii_digit());
        let (ton, npi) = match (digits, addr.len()) {
            (true, 9..) => (1, 1),
            (true, _) => (3, 0),
            (false, _) => (5, 0),
        };
        Self {
            ton,
            npi,
            addr: addr.to_owned(),
        }
    }
}

/// A deliver_sm with every field chosen by the caller, for tests of codings, UDH and SAR.
/// The simulator sends it as it is (a new sequence number on each attempt).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RawDeliver {
    pub service_type: String,
    pub source: SimAddress,
    pub destination: SimAddress,
    pub esm_class: u8,
    pub registered_delivery: u8,
    pub data_coding: u8,
    pub short_message: Vec<u8>,
    /// TLVs as `(tag, value)`, in this order.
    pub tlvs: Vec<(u16, Vec<u8>)>,
}

/// A message an ESME submitted, reassembled when it came in concatenated parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submitted {
    /// The system_id of the session it came in on.
    pub system_id: String,
    pub source: String,
    pub destination: String,
    /// The whole text (binary user data is shown lossily as UTF-8).
    pub text: String,
    /// The message id of every part, in part order.
    pub message_ids: Vec<String>,
    /// The data_coding of the first part.
    pub data_coding: u8,
    /// The registered_delivery of the part that completed the message.
    pub registered_delivery: u8,
}

/// A snapshot of the simulator's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SimStats {
    /// Binds answered ESME_ROK.
    pub binds_accepted: u64,
    /// Binds refused (wrong credentials, already bound, [`SmscHandle::reject_binds`]).
    pub binds_rejected: u64,
    /// TCP connections open now.
    pub sessions_open: u64,
    /// Sessions bound now.
    pub sessions_bound: u64,
    /// submit_sm received (any outcome).
    pub submit_sm_received: u64,
    /// submit_sm answered ESME_RTHROTTLED.
    pub submit_sm_throttled: u64,
    /// Delivery receipts sent (first attempts only).
    pub receipts_sent: u64,
    /// MO deliver_sm injected.
    pub mo_injected: u64,
    /// MO deliver_sm the ESME answered ESME_ROK.
    pub mo_delivered: u64,
    /// MO deliver_sm the ESME refused for good (ESME_RX_P_APPN, ESME_RX_R_APPN).
    pub mo_rejected: u64,
    /// MO deliver_sm not answered for good yet (queued, in flight or waiting to be retried).
    pub mo_pending: u64,
    /// MO deliver_sm sent again after a temporary error, a timeout or a lost session.
    pub mo_redelivered: u64,
    /// Delivery receipts not answered for good yet (waiting for their delay, queued, in
    /// flight or to be retried).
    pub receipts_pending: u64,
    /// Replies of the simulated people not sent yet: planned (waiting for their delay) or
    /// still being planned. With `mo_pending` and `receipts_pending` at zero the simulator
    /// has nothing more to say until something is submitted.
    pub replies_pending: u64,
    /// generic_nack sent for frames that did not decode or commands we do not take.
    pub generic_nacks_sent: u64,
    /// TLS handshakes that failed or timed out (with [`SimConfig::tls`]): an ESME without the
    /// client certificate asked for, or one that does not trust the simulator's.
    pub tls_handshakes_failed: u64,
}

impl SimStats {
    /// Nothing the simulator owes the ESME: no MO, receipt or reply of a simulated person
    /// waiting to go out or to be answered.
    pub fn idle(&self) -> bool {
        self.mo_pending == 0 && self.receipts_pending == 0 && self.replies_pending == 0
    }
}

/// Whether the handset at `number` is unreachable (see [`SimConfig::receipt_failure_share`]):
/// a pure function of the seed and the number.
pub(crate) fn unreachable(seed: u64, share: f64, number: &str) -> bool {
    share > 0.0
        && SplitMix64::new(seed ^ fnv1a(number.as_bytes()).rotate_left(17)).next_f64() < share
}

/// Locks, ignoring poisoning: every critical section of the simulator is a push, a pop or a
/// counter update, which cannot leave the data half-changed.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// FNV-1a: a stable hash for the generator's seeds (std's hasher is randomly keyed per
/// process).
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xCBF2_9CE4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01B3)
    })
}

/// What can go wrong using the simulator.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SimError {
    /// The listener could not be opened (address in use, no permission).
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    /// A config value the simulator cannot run with.
    #[error("invalid simulator config: {field}: {reason}")]
    Config { field: &'static str, reason: String },
    /// An injected message has a field SMPP cannot carry (e.g. an address over 20 characters).
    #[error("cannot build the deliver_sm: {0}")]
    Encode(#[from] EncodeError),
    /// The simulator shut down before the ESME answered the deliver_sm for good.
    #[error("the simulator stopped before the deliver_sm was answered")]
    Stopped,
}

/// SplitMix64 (Steele, Lea, Flood 2014): a tiny seeded generator, enough for choosing replies
/// and receipt outcomes, and the same on every platform, so runs are reproducible.
#[derive(Debug, Clone)]
pub(crate) struct SplitMix64(u64);

impl SplitMix64 {
    pub(crate) const fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0.0..1.0` (53 random bits).
    pub(crate) fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// An index into `weights`, chosen with probability proportional to its weight.
    pub(crate) fn weighted(&mut self, weights: impl Iterator<Item = u32> + Clone) -> usize {
        let total: u64 = weights.clone().map(u64::from).sum();
        if total == 0 {
            return 0;
        }
        let mut pick = self.next_u64() % total;
        for (i, weight) in weights.enumerate() {
            let weight = u64::from(weight);
            if pick < weight {
                return i;
            }
            pick -= weight;
        }
        0
    }

    /// An element of a non-empty slice; `None` for an empty one.
    pub(crate) fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        let len = u64::try_from(items.len()).ok()?;
        if len == 0 {
            return None;
        }
        items.get(usize::try_from(self.next_u64() % len).ok()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stepped_delays_take_only_whole_steps() {
        let range = DelayRange::new(Duration::from_secs(2), Duration::from_secs(8))
            .in_steps(Duration::from_secs(2));
        let secs = |f: f64| range.at(f).as_secs_f64();
        assert_eq!(secs(0.0), 2.0);
        assert_eq!(secs(0.24), 2.0);
        assert_eq!(secs(0.26), 4.0);
        assert_eq!(secs(0.99), 8.0);
        assert_eq!(secs(1.0), 8.0);
        let mut seen: Vec<f64> = (0..100).map(|i| secs(f64::from(i) / 100.0)).collect();
        seen.dedup();
        assert_eq!(seen, [2.0, 4.0, 6.0, 8.0]);
        // Without steps, anything in between.
        let plain = DelayRange::new(Duration::from_secs(2), Duration::from_secs(8));
        assert_eq!(plain.at(0.25), Duration::from_millis(3500));
    }

    #[test]
    fn unreachable_numbers_depend_on_seed_and_number_only() {
        let numbers: Vec<String> = (0..2000).map(|i| format!("99890{i:07}")).collect();
        let off = |seed| -> Vec<&String> {
            numbers
                .iter()
                .filter(|n| unreachable(seed, 0.05, n))
                .collect()
        };
        assert_eq!(off(7), off(7));
        assert_ne!(off(7), off(8));
        assert!((50..150).contains(&off(7).len()), "{}", off(7).len());
        assert!(!numbers.iter().any(|n| unreachable(7, 0.0, n)));
        assert!(numbers.iter().all(|n| unreachable(7, 1.0, n)));
    }
}
