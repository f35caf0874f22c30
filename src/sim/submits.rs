//! The SMSC's side of `submit_sm` once a bound transmitter sends one: whether to take it
//! (fault injection, the TPS limit), its message id, its delivery receipt, and the reassembled
//! view of what was submitted ([`Submitted`]) for observers and the simulated people.
//!
//! Must not: write to a socket (the session answers; receipts go to [`Deliveries`]) or block:
//! its locks are held for a counter, a token bucket or one reassembly step.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use tokio::sync::{broadcast, mpsc};
use tokio::time::Instant;
use tracing::warn;

use super::deliveries::Deliveries;
use super::stats::{Stats, take_one};
use super::{SimConfig, SimError, SplitMix64, Submitted, lock, unreachable};
use crate::smpp::concat::{MessageKey, Offer, Part, Reassembler};
use crate::smpp::encode::{self, Address, Param, ShortMessage};
use crate::smpp::pdu::Sm;
use crate::smpp::text::{self, MessageBody};

/// Receivers of [`Submits::subscribe`] that fall further behind than this miss events.
const SUBMITTED_CAPACITY: usize = 8192;
/// How long the parts of a concatenated MT may wait for the rest before they are dropped from
/// the [`Submitted`] view.
const MT_ASSEMBLY_TTL: Duration = Duration::from_secs(600);
/// Incomplete concatenated MT messages held at once for the [`Submitted`] view.
const MT_ASSEMBLY_MAX_PENDING: usize = 10_000;
/// esm_class message type "SMSC delivery receipt" (SMPP 3.4 §5.2.12).
const ESM_CLASS_RECEIPT: u8 = 0x04;
/// registered_delivery bits asking for a receipt on final outcome (SMPP 3.4 §5.2.17).
const RECEIPT_REQUESTED: u8 = 0x01;
/// message_state values (SMPP 3.4 §5.2.28).
const STATE_DELIVERED: u8 = 2;
const STATE_UNDELIVERABLE: u8 = 5;

/// What becomes of one submit_sm from a bound transmitter.
pub(super) enum SubmitAnswer {
    /// Taken and not answered ([`Submits::swallow_next`]): a part lost on the way.
    Swallowed,
    /// Refused with ESME_RTHROTTLED.
    Throttled,
    /// Accepted with this message id.
    Accepted(MessageId),
}

/// The submit_sm side of the simulator.
pub(super) struct Submits {
    seed: u64,
    receipt_failure_share: f64,
    receipt_delay: Duration,
    next_message_id: AtomicU64,
    throttle_next: AtomicU64,
    swallow: AtomicU64,
    tps: Option<Mutex<TokenBucket>>,
    submitted: broadcast::Sender<Submitted>,
    /// The simulated people's inbox, when they play.
    handsets: Option<mpsc::UnboundedSender<Submitted>>,
    assembly: Mutex<MtAssembly>,
    stats: Arc<Stats>,
}

impl Submits {
    pub(super) fn new(
        config: &SimConfig,
        handsets: Option<mpsc::UnboundedSender<Submitted>>,
        stats: Arc<Stats>,
    ) -> Self {
        Self {
            seed: config.seed,
            receipt_failure_share: config.receipt_failure_share,
            receipt_delay: config.receipt_delay,
            next_message_id: AtomicU64::new(
                0x1000_0000 + SplitMix64::new(config.seed).next_u64() % 0xE000_0000,
            ),
            throttle_next: AtomicU64::new(0),
            swallow: AtomicU64::new(0),
            tps: config
                .max_tps
                .map(|rate| Mutex::new(TokenBucket::new(rate, Instant::now()))),
            submitted: broadcast::channel(SUBMITTED_CAPACITY).0,
            handsets,
            assembly: Mutex::new(MtAssembly {
                reassembler: Reassembler::new(MT_ASSEMBLY_TTL, MT_ASSEMBLY_MAX_PENDING),
                ids: HashMap::new(),
            }),
            stats,
        }
    }

    /// Every message submitted from now on, reassembled.
    pub(super) fn subscribe(&self) -> broadcast::Receiver<Submitted> {
        self.submitted.subscribe()
    }

    /// Answer the next `n` submit_sm with ESME_RTHROTTLED (adds to any still pending).
    pub(super) fn throttle_next(&self, n: u64) {
        self.throttle_next.fetch_add(n, Relaxed);
    }

    /// Take the next `n` submit_sm without answering or keeping them.
    pub(super) fn swallow_next(&self, n: u64) {
        self.swallow.fetch_add(n, Relaxed);
    }

    /// Decides on the submit_sm `sm` that a session bound as `system_id` received at `now`;
    /// an accepted one with a receipt asked for owes it to [`Deliveries`].
    pub(super) fn take(
        &self,
        system_id: &str,
        sm: &Sm<'_>,
        now: Instant,
        deliveries: &Deliveries,
    ) -> SubmitAnswer {
        if take_one(&self.swallow) {
            return SubmitAnswer::Swallowed;
        }
        if self.throttles(now) {
            self.stats.submit_sm_throttled.fetch_add(1, Relaxed);
            return SubmitAnswer::Throttled;
        }
        let id = MessageId::new(self.next_message_id.fetch_add(1, Relaxed));
        if sm.registered_delivery & RECEIPT_REQUESTED != 0 {
            match self.receipt(id.as_str(), sm) {
                Ok(receipt) => deliveries.owe_receipt(now + self.receipt_delay, receipt),
                Err(error) => warn!(id = id.as_str(), %error, "cannot build the delivery receipt"),
            }
        }
        self.observe_submit(system_id, sm, id.as_str());
        SubmitAnswer::Accepted(id)
    }

    /// Whether this submit_sm is to be refused with ESME_RTHROTTLED.
    fn throttles(&self, now: Instant) -> bool {
        if take_one(&self.throttle_next) {
            return true;
        }
        self.tps
            .as_ref()
            .is_some_and(|bucket| !lock(bucket).take(now))
    }

    /// Whether messages to `number` never reach a handset: their receipts say UNDELIV and
    /// nobody answers them. The same for every message to the number, whatever order, session
    /// or thread they come in.
    fn unreachable(&self, number: &str) -> bool {
        unreachable(self.seed, self.receipt_failure_share, number)
    }

    /// The delivery receipt for the accepted submit_sm `sm` (message id `id`).
    fn receipt(&self, id: &str, sm: &Sm<'_>) -> Result<Bytes, SimError> {
        let to = sm.destination_addr.to_str_lossy();
        let (dlvrd, stat, err, state) = if self.unreachable(&to) {
            ("000", "UNDELIV", "001", STATE_UNDELIVERABLE)
        } else {
            ("001", "DELIVRD", "000", STATE_DELIVERED)
        };
        let now = SystemTime::now();
        let text = format!(
            "id:{id} sub:001 dlvrd:{dlvrd} submit date:{} done date:{} stat:{stat} err:{err} text:{}",
            receipt_date(now),
            receipt_date(now + self.receipt_delay),
            receipt_excerpt(sm),
        );
        // The receipt comes from the handset the message went to.
        let (source, destination) = (
            sm.destination_addr.to_str_lossy(),
            sm.source_addr.to_str_lossy(),
        );
        let message = ShortMessage::new(
            Address {
                ton: sm.dest_addr_ton.value(),
                npi: sm.dest_addr_npi.value(),
                addr: &source,
            },
            Address {
                ton: sm.source_addr_ton.value(),
                npi: sm.source_addr_npi.value(),
                addr: &destination,
            },
            0,
            text.as_bytes(),
        )
        .esm_class(ESM_CLASS_RECEIPT)
        .params(vec![
            Param::ReceiptedMessageId(id),
            Param::MessageState(state),
        ]);
        Ok(encode::to_frame(&encode::deliver_sm(0, &message)?))
    }

    /// Feeds an accepted submit_sm to the [`Submitted`] view, if anyone looks at it.
    fn observe_submit(&self, system_id: &str, sm: &Sm<'_>, message_id: &str) {
        let broadcast = self.submitted.receiver_count() > 0;
        if !broadcast && self.handsets.is_none() {
            return;
        }
        let Some(event) = self.assemble(system_id, sm, message_id) else {
            return;
        };
        if let Some(handsets) = &self.handsets
            && !self.unreachable(&event.destination)
        {
            self.stats.replies_pending.fetch_add(1, Relaxed);
            if handsets.send(event.clone()).is_err() {
                // Closed only when the simulator stops: no reply will come.
                self.stats.replies_pending.fetch_sub(1, Relaxed);
            }
        }
        if broadcast {
            // No receivers left since the check above: nothing to do.
            let _ = self.submitted.send(event);
        }
    }

    /// The whole message once its last part is in; `None` while parts are missing.
    fn assemble(&self, system_id: &str, sm: &Sm<'_>, message_id: &str) -> Option<Submitted> {
        let single = |sm: &Sm<'_>| Submitted {
            system_id: system_id.to_owned(),
            source: sm.source_addr.to_str_lossy().into_owned(),
            destination: sm.destination_addr.to_str_lossy().into_owned(),
            text: body_text(text::decode(sm.data_coding, sm.payload())),
            message_ids: vec![message_id.to_owned()],
            data_coding: sm.data_coding,
            registered_delivery: sm.registered_delivery,
        };
        let Some(part) = Part::from_sm(sm) else {
            return Some(single(sm));
        };
        let key = MessageKey {
            source: part.source.clone(),
            destination: part.destination.clone(),
            reference: part.concat.reference,
            total: part.concat.total,
        };
        let seq = part.concat.seq;
        let now = SystemTime::now();
        let mut assembly = lock(&self.assembly);
        let MtAssembly { reassembler, ids } = &mut *assembly;
        for lost in reassembler
            .expire(now)
            .into_iter()
            .chain(reassembler.take_evicted())
        {
            warn!(
                source = %lost.key.source,
                destination = %lost.key.destination,
                missing = ?lost.missing,
                "concatenated submit_sm never completed; left out of the submitted view"
            );
            ids.remove(&lost.key);
        }
        match reassembler.offer(now, part) {
            Ok(Offer::Complete(assembled)) => {
                let mut message_ids = ids.remove(&assembled.key).unwrap_or_default();
                drop(assembly);
                message_ids.push((seq, message_id.to_owned()));
                message_ids.sort_unstable();
                Some(Submitted {
                    system_id: system_id.to_owned(),
                    source: key.source,
                    destination: key.destination,
                    text: body_text(assembled.body()),
                    message_ids: message_ids.into_iter().map(|(_, id)| id).collect(),
                    data_coding: assembled
                        .parts
                        .first()
                        .map_or(sm.data_coding, |p| p.data_coding),
                    registered_delivery: sm.registered_delivery,
                })
            }
            Ok(Offer::Stored { .. }) => {
                ids.entry(key)
                    .or_default()
                    .push((seq, message_id.to_owned()));
                None
            }
            Ok(Offer::Duplicate) => None,
            Err(error) => {
                drop(assembly);
                warn!(%error, "submit_sm has a concatenation header that cannot be placed");
                Some(single(sm))
            }
        }
    }
}

fn body_text(body: MessageBody) -> String {
    match body {
        MessageBody::Text(text) => text,
        MessageBody::Binary(octets) => String::from_utf8_lossy(&octets).into_owned(),
    }
}

/// Concatenated MT parts waiting for the rest, and the message id given to each.
struct MtAssembly {
    reassembler: Reassembler,
    ids: HashMap<MessageKey, Vec<(u8, String)>>,
}

/// A submit_sm per second limit with one second of burst.
struct TokenBucket {
    rate: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    fn new(rate: u32, now: Instant) -> Self {
        let rate = f64::from(rate);
        Self {
            rate,
            tokens: rate,
            last: now,
        }
    }

    fn take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// A message id as uppercase hex, at least 8 digits, without allocating.
pub(super) struct MessageId {
    digits: [u8; 16],
    len: usize,
}

impl MessageId {
    fn new(number: u64) -> Self {
        const HEX: &[u8; 16] = b"0123456789ABCDEF";
        let len = (16 - number.leading_zeros() as usize / 4).max(8);
        let mut digits = [b'0'; 16];
        for (i, digit) in digits[..len].iter_mut().rev().enumerate() {
            *digit = HEX[((number >> (4 * i)) & 0xF) as usize];
        }
        Self { digits, len }
    }

    pub(super) fn as_str(&self) -> &str {
        // Only ASCII hex digits are ever written.
        std::str::from_utf8(&self.digits[..self.len]).unwrap_or_default()
    }
}

/// `YYMMDDhhmm` in UTC, the receipt text's date format.
fn receipt_date(at: SystemTime) -> String {
    // Out of jiff's range (years beyond ±9999) only with a broken clock: the epoch then.
    let at = jiff::Timestamp::try_from(at).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    at.to_zoned(jiff::tz::TimeZone::UTC)
        .strftime("%y%m%d%H%M")
        .to_string()
}

/// The first 20 characters of the message for the receipt's `text:` field, as printable
/// ASCII (receipt text is read as IA5 by most ESMEs; other characters become `?`).
fn receipt_excerpt(sm: &Sm<'_>) -> String {
    let text = body_text(text::decode(sm.data_coding, sm.payload()));
    text.chars()
        .take(20)
        .map(|c| {
            if c == ' ' || c.is_ascii_graphic() {
                c
            } else {
                '?'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids_are_uppercase_hex_of_at_least_8_digits() {
        assert_eq!(MessageId::new(0x5E0F_1A2B).as_str(), "5E0F1A2B");
        assert_eq!(MessageId::new(0xAB).as_str(), "000000AB");
        assert_eq!(MessageId::new(0x1_0000_0000).as_str(), "100000000");
        assert_eq!(MessageId::new(u64::MAX).as_str(), "FFFFFFFFFFFFFFFF");
    }

    #[test]
    fn receipt_dates_are_utc_yymmddhhmm() {
        use std::time::UNIX_EPOCH;
        assert_eq!(receipt_date(UNIX_EPOCH), "7001010000");
        // 2026-11-22 14:49:30 UTC.
        let at = UNIX_EPOCH + Duration::from_secs(1_795_358_970);
        assert_eq!(receipt_date(at), "2611221449");
        // 2024-02-29 23:59 UTC, a leap day.
        let at = UNIX_EPOCH + Duration::from_secs(1_709_251_140);
        assert_eq!(receipt_date(at), "2402292359");
    }

    #[test]
    fn token_bucket_allows_a_second_of_burst_then_the_rate() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(10, start);
        assert_eq!((0..15).filter(|_| bucket.take(start)).count(), 10);
        let later = start + Duration::from_millis(500);
        assert_eq!((0..15).filter(|_| bucket.take(later)).count(), 5);
    }
}
