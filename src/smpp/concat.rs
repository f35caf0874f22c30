//! Reassembly of concatenated mobile-originated messages, sans I/O.
//!
//! Owns the pending-parts state: which parts of which multi-part message have arrived, when
//! each message was first seen, and which messages were released incomplete (TTL or capacity)
//! and are waiting to be taken. The whole [`Reassembler`] is serde-serialisable so the service
//! can persist it across restarts.
//!
//! Must not: read a clock (time is always the caller's `now`, wall clock because the state
//! outlives the process), do I/O, decode text (parts keep their own `data_coding`; decoding is
//! the caller's job), parse UDHs or TLVs (the caller maps 8-bit UDH, 16-bit UDH and SAR TLVs to
//! [`ConcatInfo`]), or drop a part silently: every part offered either comes back in exactly one
//! [`Assembled`] or is reported as [`Offer::Duplicate`].
//!
//! Not detectable here: a redelivered part of a message that has already been released. Once a
//! message completes (or expires, or is evicted) its state is gone, so a late copy of one of its
//! parts starts a new pending message, which will later be released incomplete. The service
//! dedups redelivered MOs separately (before or after reassembly); this module only dedups
//! parts of messages it still holds.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::smpp::pdu::Sm;
use crate::smpp::text::{self, MessageBody};
use crate::smpp::udh::ConcatInfo;

/// One received part, user data already stripped of its UDH.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Part {
    pub source: String,
    pub destination: String,
    pub concat: ConcatInfo,
    pub data_coding: u8,
    pub payload: Vec<u8>,
}

impl Part {
    /// The part a deliver_sm carries, or `None` when it is a message in one piece. The
    /// concatenation info comes from the UDH or SAR TLVs ([`Sm::concat`]); the payload has its
    /// UDH removed ([`Sm::payload`]).
    pub fn from_sm(sm: &Sm<'_>) -> Option<Self> {
        Some(Self {
            concat: sm.concat()?,
            source: sm.source_addr.to_str_lossy().into_owned(),
            destination: sm.destination_addr.to_str_lossy().into_owned(),
            data_coding: sm.data_coding,
            payload: sm.payload().to_vec(),
        })
    }
}

/// Identifies one multi-part message. The total is part of the key because senders reuse
/// references: the same reference with a different total is a different message.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct MessageKey {
    pub source: String,
    pub destination: String,
    pub reference: u16,
    pub total: u8,
}

/// A message released by the reassembler: complete, or incomplete after its TTL / eviction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assembled {
    pub key: MessageKey,
    /// Received parts in sequence order (each keeps its own data_coding; the caller decodes).
    pub parts: Vec<AssembledPart>,
    /// Sequence numbers never received, ascending; empty when complete.
    pub missing: Vec<u8>,
    /// When the first part of this message (whichever seq it was) was offered.
    pub first_seen: SystemTime,
}

/// One part of a released message. Parts keep their own `data_coding` because some SMSCs mix
/// codings within one message (e.g. a GSM 7-bit part followed by a UCS-2 part).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssembledPart {
    /// 1-based sequence number.
    pub seq: u8,
    pub data_coding: u8,
    pub payload: Vec<u8>,
}

impl Assembled {
    /// True when every part `1..=total` was received.
    pub fn is_complete(&self) -> bool {
        self.missing.is_empty()
    }

    /// Payloads joined in sequence order (for single-coding messages; with mixed codings,
    /// decode [`Assembled::parts`] one by one instead). Gaps are simply skipped.
    pub fn payload(&self) -> Vec<u8> {
        self.parts
            .iter()
            .flat_map(|p| p.payload.iter().copied())
            .collect()
    }

    /// `Some(dc)` if every part has the same data_coding; `None` if they differ (or, for a
    /// hand-built value, if there are no parts), so the caller never decodes with the wrong one.
    pub fn data_coding(&self) -> Option<u8> {
        let first = self.parts.first()?.data_coding;
        self.parts
            .iter()
            .all(|p| p.data_coding == first)
            .then_some(first)
    }
}

impl Assembled {
    /// The message's content: decoded once over the joined payload when all parts share a
    /// coding (so a character split across parts survives), else part by part. Binary parts
    /// make the whole message binary.
    pub fn body(&self) -> MessageBody {
        if let Some(data_coding) = self.data_coding() {
            return text::decode(data_coding, &self.payload());
        }
        let mut joined = String::new();
        for part in &self.parts {
            match text::decode(part.data_coding, &part.payload) {
                MessageBody::Text(t) => joined.push_str(&t),
                MessageBody::Binary(_) => return MessageBody::Binary(self.payload()),
            }
        }
        MessageBody::Text(joined)
    }
}

/// What happened to an offered part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Offer {
    /// This part completed its message; the message is no longer held.
    Complete(Assembled),
    /// Held; `received` distinct parts of `total` so far.
    Stored { received: u8, total: u8 },
    /// A part with the same key and seq is already held; this copy was discarded and the
    /// first copy kept.
    Duplicate,
}

/// Why a part was refused. Such a part cannot be placed in any message, so the caller should
/// deliver it on its own (or log it); it is not stored.
#[derive(Debug, Clone, Copy, thiserror::Error, PartialEq, Eq)]
pub enum PartError {
    /// The concatenation header says the message has no parts.
    #[error("concatenated message total is 0 (reference {reference})")]
    ZeroTotal { reference: u16 },
    /// The part's sequence number is 0 or greater than the total.
    #[error("part sequence {seq} is outside 1..={total} (reference {reference})")]
    SeqOutOfRange { reference: u16, seq: u8, total: u8 },
}

/// Why persisted state was refused on deserialisation. Surfaced through serde's error message;
/// the state is only ever produced by [`Reassembler`]'s `Serialize`, so this means corruption.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
enum StateError {
    #[error("pending message (reference {reference}, total {total}) has total below 2")]
    TotalTooSmall { reference: u16, total: u8 },
    #[error("pending message (reference {reference}) has {held} of {total} parts held")]
    BadPartCount {
        reference: u16,
        held: usize,
        total: u8,
    },
    #[error(
        "pending message (reference {reference}) holds seq {seq} out of order or outside 1..={total}"
    )]
    BadSeq { reference: u16, seq: u8, total: u8 },
    #[error("pending message (reference {reference}, total {total}) appears twice")]
    DuplicateKey { reference: u16, total: u8 },
}

/// A message still waiting for parts. Parts are kept sorted by seq with no duplicates; a
/// `Vec` with binary search is enough because a message has at most 255 parts.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pending {
    first_seen: SystemTime,
    parts: Vec<AssembledPart>,
}

/// Reassembles concatenated messages from parts arriving in any order, at most once each.
///
/// Expiry boundary: a message expires at exactly `first_seen + ttl`, inclusive, i.e.
/// `expire(now)` releases it when `now >= first_seen + ttl`, so calling `expire` with the value
/// [`Reassembler::next_expiry`] returned always releases at least that message. Only the first
/// part starts the clock; later parts do not extend it. A message whose deadline does not fit in
/// a `SystemTime` never expires (it can still be evicted).
///
/// Expiry happens only in [`Reassembler::expire`]: a part offered after its message's deadline
/// but before the caller ran `expire` still joins the message (completing late beats releasing
/// the message in two halves).
///
/// Capacity: at most `max_pending` messages, and at most `max_bytes` of held payload, are held
/// (see [`Reassembler::with_max_bytes`]). When a new part would exceed either, the
/// message with the oldest `first_seen` (ties broken by key) is released incomplete into a queue
/// drained by [`Reassembler::take_evicted`]. If the wall clock went backwards, that can be the
/// message just started; it is then still never lost, only released at once.
///
/// Serialisation: the pending messages, the eviction queue and the limits are persisted; the
/// expiry index is rebuilt on deserialisation, which also validates the state. `SystemTime`s
/// before the Unix epoch cannot be serialised by serde (an error, not a panic).
#[derive(Debug, Clone)]
pub struct Reassembler {
    ttl: Duration,
    max_pending: usize,
    /// Payload bytes held at most (not persisted: a setting of the holder), and held now.
    max_bytes: usize,
    held_bytes: usize,
    pending: BTreeMap<MessageKey, Pending>,
    /// `(first_seen, key)` for every pending message: the first entry is the next to expire and
    /// the first to evict. Always holds exactly the keys of `pending`.
    by_age: BTreeSet<(SystemTime, MessageKey)>,
    evicted: Vec<Assembled>,
}

impl Reassembler {
    /// `ttl`: how long after its first part a message may wait for the rest.
    /// `max_pending`: how many incomplete messages may be held at once; 0 is treated as 1,
    /// because holding none would make every multi-part message an eviction.
    pub fn new(ttl: Duration, max_pending: usize) -> Self {
        Self {
            ttl,
            max_pending: max_pending.max(1),
            max_bytes: usize::MAX,
            held_bytes: 0,
            pending: BTreeMap::new(),
            by_age: BTreeSet::new(),
            evicted: Vec::new(),
        }
    }

    /// The same, holding at most `max_bytes` of payload: 254-part messages fill memory long
    /// before a count limit does.
    pub fn with_max_bytes(mut self, max_bytes: usize) -> Self {
        self.max_bytes = max_bytes;
        self
    }

    /// Payload bytes held now.
    pub fn held_bytes(&self) -> usize {
        self.held_bytes
    }

    /// Add a part. `total == 1` completes at once (nothing is stored). A part whose key and seq
    /// are already held is a [`Offer::Duplicate`]; the first copy is kept, even if the payloads
    /// differ. Starting a new message may evict the oldest one (see [`Reassembler::take_evicted`]).
    pub fn offer(&mut self, now: SystemTime, part: Part) -> Result<Offer, PartError> {
        let ConcatInfo {
            reference,
            total,
            seq,
        } = part.concat;
        if total == 0 {
            return Err(PartError::ZeroTotal { reference });
        }
        if seq == 0 || seq > total {
            return Err(PartError::SeqOutOfRange {
                reference,
                seq,
                total,
            });
        }
        let key = MessageKey {
            source: part.source,
            destination: part.destination,
            reference,
            total,
        };
        let new_part = AssembledPart {
            seq,
            data_coding: part.data_coding,
            payload: part.payload,
        };

        if total == 1 {
            return Ok(Offer::Complete(Assembled {
                key,
                parts: vec![new_part],
                missing: Vec::new(),
                first_seen: now,
            }));
        }

        if let Some(pending) = self.pending.get_mut(&key) {
            let Err(at) = pending.parts.binary_search_by_key(&seq, |p| p.seq) else {
                return Ok(Offer::Duplicate);
            };
            self.held_bytes += new_part.payload.len();
            pending.parts.insert(at, new_part);
            let received = pending.parts.len();
            if received < usize::from(total) {
                self.evict_over_capacity();
                return Ok(Offer::Stored {
                    received: count_u8(received),
                    total,
                });
            }
            // All `total` distinct seqs in 1..=total are held: the message is complete.
            return Ok(match self.remove(&key) {
                Some(assembled) => Offer::Complete(assembled),
                // Unreachable: `key` was found in `pending` just above.
                None => Offer::Stored {
                    received: count_u8(received),
                    total,
                },
            });
        }

        self.by_age.insert((now, key.clone()));
        self.held_bytes += new_part.payload.len();
        self.pending.insert(
            key,
            Pending {
                first_seen: now,
                parts: vec![new_part],
            },
        );
        self.evict_over_capacity();
        Ok(Offer::Stored { received: 1, total })
    }

    /// Release, as incomplete with `missing` filled, every message whose deadline
    /// `first_seen + ttl` is at or before `now` (inclusive boundary). Oldest first.
    pub fn expire(&mut self, now: SystemTime) -> Vec<Assembled> {
        let mut released = Vec::new();
        while let Some((first_seen, key)) = self.by_age.first() {
            // Deadlines grow with first_seen, so the first unexpired (or unrepresentable)
            // deadline ends the scan.
            match first_seen.checked_add(self.ttl) {
                Some(deadline) if deadline <= now => {}
                _ => break,
            }
            let key = key.clone();
            if let Some(assembled) = self.remove(&key) {
                released.push(assembled);
            }
        }
        released
    }

    /// When the next message would expire, for the caller's timer: pass this instant to
    /// [`Reassembler::expire`]. `None` when nothing is pending (or the deadline overflows).
    /// Cost: O(log n), the first entry of an ordered index.
    pub fn next_expiry(&self) -> Option<SystemTime> {
        let (first_seen, _) = self.by_age.first()?;
        first_seen.checked_add(self.ttl)
    }

    /// Messages evicted because `max_pending` was exceeded (oldest `first_seen` first), released
    /// as incomplete. Never silently dropped: they queue here (and are persisted with the
    /// state) until taken.
    pub fn take_evicted(&mut self) -> Vec<Assembled> {
        std::mem::take(&mut self.evicted)
    }

    /// Number of incomplete messages held (not counting the eviction queue).
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Takes a message out of both indexes and releases it; `missing` is derived from the
    /// held seqs, so a complete message gets an empty list.
    fn remove(&mut self, key: &MessageKey) -> Option<Assembled> {
        let (key, pending) = self.pending.remove_entry(key)?;
        self.by_age.remove(&(pending.first_seen, key.clone()));
        let bytes: usize = pending.parts.iter().map(|p| p.payload.len()).sum();
        self.held_bytes = self.held_bytes.saturating_sub(bytes);
        let missing = (1..=key.total)
            .filter(|seq| pending.parts.binary_search_by_key(seq, |p| p.seq).is_err())
            .collect();
        Some(Assembled {
            key,
            parts: pending.parts,
            missing,
            first_seen: pending.first_seen,
        })
    }

    fn evict_over_capacity(&mut self) {
        while self.pending.len() > self.max_pending || self.held_bytes > self.max_bytes {
            let Some((_, key)) = self.by_age.first() else {
                break;
            };
            let key = key.clone();
            match self.remove(&key) {
                Some(assembled) => self.evicted.push(assembled),
                // Unreachable while `by_age` mirrors `pending`; stop rather than spin.
                None => break,
            }
        }
    }

    /// Rebuilds the derived index from persisted state, refusing anything `offer` could not
    /// have produced, then re-applies the capacity limit.
    fn from_state(state: ReassemblerState) -> Result<Self, StateError> {
        let mut this = Self::new(state.ttl, state.max_pending);
        this.evicted = state.evicted;
        for entry in state.pending {
            let MessageKey {
                reference, total, ..
            } = entry.key;
            if total < 2 {
                return Err(StateError::TotalTooSmall { reference, total });
            }
            let held = entry.parts.len();
            if held == 0 || held >= usize::from(total) {
                return Err(StateError::BadPartCount {
                    reference,
                    held,
                    total,
                });
            }
            let mut previous = 0u8;
            for part in &entry.parts {
                if part.seq <= previous || part.seq > total {
                    return Err(StateError::BadSeq {
                        reference,
                        seq: part.seq,
                        total,
                    });
                }
                previous = part.seq;
            }
            if this.pending.contains_key(&entry.key) {
                return Err(StateError::DuplicateKey { reference, total });
            }
            this.by_age.insert((entry.first_seen, entry.key.clone()));
            this.held_bytes += entry.parts.iter().map(|p| p.payload.len()).sum::<usize>();
            this.pending.insert(
                entry.key,
                Pending {
                    first_seen: entry.first_seen,
                    parts: entry.parts,
                },
            );
        }
        this.evict_over_capacity();
        Ok(this)
    }
}

/// A count of held parts, which never exceeds a `u8` total; saturates rather than panics.
fn count_u8(n: usize) -> u8 {
    u8::try_from(n).unwrap_or(u8::MAX)
}

/// The persisted form. Pending messages are a list rather than a map because JSON map keys
/// must be strings and [`MessageKey`] is a struct.
#[derive(Deserialize)]
struct ReassemblerState {
    ttl: Duration,
    max_pending: usize,
    pending: Vec<PendingEntry>,
    evicted: Vec<Assembled>,
}

#[derive(Deserialize)]
struct PendingEntry {
    key: MessageKey,
    first_seen: SystemTime,
    parts: Vec<AssembledPart>,
}

/// Borrowed mirror of [`ReassemblerState`], so serialising does not clone the state.
#[derive(Serialize)]
struct ReassemblerStateRef<'a> {
    ttl: Duration,
    max_pending: usize,
    pending: Vec<PendingEntryRef<'a>>,
    evicted: &'a [Assembled],
}

#[derive(Serialize)]
struct PendingEntryRef<'a> {
    key: &'a MessageKey,
    first_seen: SystemTime,
    parts: &'a [AssembledPart],
}

impl Serialize for Reassembler {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        ReassemblerStateRef {
            ttl: self.ttl,
            max_pending: self.max_pending,
            pending: self
                .pending
                .iter()
                .map(|(key, p)| PendingEntryRef {
                    key,
                    first_seen: p.first_seen,
                    parts: &p.parts,
                })
                .collect(),
            evicted: &self.evicted,
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Reassembler {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let state = ReassemblerState::deserialize(deserializer)?;
        Self::from_state(state).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const T0_SECS: u64 = 1_700_000_000;
    const TTL: Duration = Duration::from_secs(60);

    fn t(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(T0_SECS + secs)
    }

    fn part(source: &str, reference: u16, total: u8, seq: u8, payload: &[u8]) -> Part {
        Part {
            source: source.to_owned(),
            destination: "12345".to_owned(),
            concat: ConcatInfo {
                reference,
                total,
                seq,
            },
            data_coding: 0,
            payload: payload.to_vec(),
        }
    }

    fn complete(offer: Offer) -> Assembled {
        match offer {
            Offer::Complete(a) => a,
            other => panic!("expected Complete, got {other:?}"),
        }
    }

    #[test]
    fn held_bytes_are_bounded_oldest_message_first() {
        let mut r = Reassembler::new(TTL, 10_000).with_max_bytes(1_000);
        let big = [b'x'; 140];
        // Seven 140-byte parts of seven messages fit (980 bytes) ...
        for (i, reference) in (1..=7u16).enumerate() {
            r.offer(t(i as u64), part("998901", reference, 254, 1, &big))
                .unwrap();
        }
        assert_eq!((r.pending(), r.held_bytes()), (7, 980));
        assert!(r.take_evicted().is_empty());
        // ... the eighth pushes out the oldest, released incomplete with what it had.
        r.offer(t(10), part("998901", 8, 254, 1, &big)).unwrap();
        let evicted = r.take_evicted();
        assert_eq!(evicted.len(), 1);
        assert_eq!(evicted[0].key.reference, 1);
        assert_eq!(evicted[0].parts.len(), 1);
        assert_eq!((r.pending(), r.held_bytes()), (7, 980));
        // A second part of a held message counts too.
        r.offer(t(11), part("998901", 8, 254, 2, &big)).unwrap();
        assert_eq!(r.take_evicted()[0].key.reference, 2);
        // Completing a message gives its bytes back.
        let mut r = Reassembler::new(TTL, 10).with_max_bytes(1_000);
        r.offer(t(0), part("998901", 1, 2, 1, b"ab")).unwrap();
        complete(r.offer(t(1), part("998901", 1, 2, 2, b"cd")).unwrap());
        assert_eq!(r.held_bytes(), 0);
    }

    #[test]
    fn eight_bit_reference_message_in_order_completes_on_last_part() {
        // From a UDH IE 0x00: reference 0x2a, 3 parts.
        let mut r = Reassembler::new(TTL, 10);
        assert_eq!(
            r.offer(t(0), part("447700", 0x2a, 3, 1, b"Hel")),
            Ok(Offer::Stored {
                received: 1,
                total: 3
            })
        );
        assert_eq!(
            r.offer(t(1), part("447700", 0x2a, 3, 2, b"lo ")),
            Ok(Offer::Stored {
                received: 2,
                total: 3
            })
        );
        let a = complete(r.offer(t(2), part("447700", 0x2a, 3, 3, b"world")).unwrap());
        assert!(a.is_complete());
        assert_eq!(a.payload(), b"Hello world");
        assert_eq!(a.data_coding(), Some(0));
        assert_eq!(a.first_seen, t(0));
        assert_eq!(a.key.reference, 0x2a);
        assert_eq!(r.pending(), 0);
        assert_eq!(r.next_expiry(), None);
    }

    #[test]
    fn sixteen_bit_reference_above_255_reversed_completes() {
        // From a UDH IE 0x08: reference 0xbeef does not fit in 8 bits.
        let mut r = Reassembler::new(TTL, 10);
        for seq in (2..=4).rev() {
            let payload = [b'0' + seq];
            assert!(matches!(
                r.offer(t(0), part("a", 0xbeef, 4, seq, &payload)),
                Ok(Offer::Stored { .. })
            ));
        }
        let a = complete(r.offer(t(1), part("a", 0xbeef, 4, 1, b"1")).unwrap());
        assert_eq!(a.key.reference, 0xbeef);
        assert_eq!(a.payload(), b"1234");
        assert_eq!(
            a.parts.iter().map(|p| p.seq).collect::<Vec<_>>(),
            vec![1, 2, 3, 4]
        );
    }

    #[test]
    fn sar_style_shuffled_parts_complete_in_order() {
        // From TLVs sar_msg_ref_num (u16), sar_total_segments, sar_segment_seqnum.
        let mut r = Reassembler::new(TTL, 10);
        for seq in [3, 1, 5, 2] {
            let payload = [b'a' + seq - 1];
            assert!(matches!(
                r.offer(t(0), part("sar", 0x1234, 5, seq, &payload)),
                Ok(Offer::Stored { .. })
            ));
        }
        let a = complete(r.offer(t(0), part("sar", 0x1234, 5, 4, b"d")).unwrap());
        assert_eq!(a.payload(), b"abcde");
        assert!(a.missing.is_empty());
    }

    #[test]
    fn single_part_message_completes_at_once_without_being_stored() {
        let mut r = Reassembler::new(TTL, 10);
        let a = complete(r.offer(t(5), part("a", 7, 1, 1, b"solo")).unwrap());
        assert_eq!(a.payload(), b"solo");
        assert_eq!(a.first_seen, t(5));
        assert_eq!(r.pending(), 0);
    }

    #[test]
    fn duplicate_part_is_ignored_and_first_copy_kept() {
        let mut r = Reassembler::new(TTL, 10);
        r.offer(t(0), part("a", 1, 2, 1, b"first")).unwrap();
        assert_eq!(
            r.offer(t(1), part("a", 1, 2, 1, b"second")),
            Ok(Offer::Duplicate)
        );
        let a = complete(r.offer(t(2), part("a", 1, 2, 2, b"!")).unwrap());
        assert_eq!(a.payload(), b"first!");
    }

    #[test]
    fn duplicate_after_completion_starts_a_new_message() {
        // Documented limitation: the service dedups redelivered MOs, not this module.
        let mut r = Reassembler::new(TTL, 10);
        r.offer(t(0), part("a", 1, 2, 1, b"x")).unwrap();
        complete(r.offer(t(0), part("a", 1, 2, 2, b"y")).unwrap());
        assert_eq!(
            r.offer(t(1), part("a", 1, 2, 2, b"y")),
            Ok(Offer::Stored {
                received: 1,
                total: 2
            })
        );
    }

    #[test]
    fn interleaved_messages_from_same_sender_with_different_references_stay_apart() {
        let mut r = Reassembler::new(TTL, 10);
        r.offer(t(0), part("a", 10, 2, 1, b"A1")).unwrap();
        r.offer(t(0), part("a", 11, 2, 2, b"B2")).unwrap();
        assert_eq!(r.pending(), 2);
        let b = complete(r.offer(t(1), part("a", 11, 2, 1, b"B1")).unwrap());
        assert_eq!(b.key.reference, 11);
        assert_eq!(b.payload(), b"B1B2");
        let a = complete(r.offer(t(1), part("a", 10, 2, 2, b"A2")).unwrap());
        assert_eq!(a.key.reference, 10);
        assert_eq!(a.payload(), b"A1A2");
    }

    #[test]
    fn same_reference_from_different_senders_stays_apart() {
        let mut r = Reassembler::new(TTL, 10);
        r.offer(t(0), part("a", 5, 2, 1, b"a")).unwrap();
        assert!(matches!(
            r.offer(t(0), part("b", 5, 2, 1, b"b")),
            Ok(Offer::Stored { received: 1, .. })
        ));
        assert_eq!(r.pending(), 2);
    }

    #[test]
    fn same_reference_with_different_total_is_a_different_message() {
        let mut r = Reassembler::new(TTL, 10);
        r.offer(t(0), part("a", 9, 2, 1, b"two-1")).unwrap();
        // Same seq 1, but total 3: not a duplicate.
        assert_eq!(
            r.offer(t(0), part("a", 9, 3, 1, b"three-1")),
            Ok(Offer::Stored {
                received: 1,
                total: 3
            })
        );
        let two = complete(r.offer(t(0), part("a", 9, 2, 2, b"two-2")).unwrap());
        assert_eq!(two.payload(), b"two-1two-2");
        assert_eq!(r.pending(), 1);
    }

    #[test]
    fn ttl_expiry_releases_incomplete_message_with_missing_seqs() {
        let mut r = Reassembler::new(TTL, 10);
        r.offer(t(0), part("a", 1, 5, 2, b"b")).unwrap();
        r.offer(t(10), part("a", 1, 5, 4, b"d")).unwrap();
        r.offer(t(30), part("b", 2, 2, 1, b"other")).unwrap();
        // Later parts do not extend the first part's clock.
        assert_eq!(r.next_expiry(), Some(t(60)));
        let released = r.expire(t(61));
        assert_eq!(released.len(), 1);
        let a = &released[0];
        assert!(!a.is_complete());
        assert_eq!(a.missing, vec![1, 3, 5]);
        assert_eq!(
            a.parts.iter().map(|p| p.seq).collect::<Vec<_>>(),
            vec![2, 4]
        );
        assert_eq!(a.first_seen, t(0));
        assert_eq!(r.pending(), 1);
        assert_eq!(r.next_expiry(), Some(t(90)));
    }

    #[test]
    fn expiry_boundary_is_inclusive_at_first_seen_plus_ttl() {
        let mut r = Reassembler::new(TTL, 10);
        r.offer(t(0), part("a", 1, 2, 1, b"x")).unwrap();
        let deadline = t(0) + TTL;
        assert_eq!(r.next_expiry(), Some(deadline));
        assert!(r.expire(deadline - Duration::from_nanos(1)).is_empty());
        assert_eq!(r.pending(), 1);
        let released = r.expire(deadline);
        assert_eq!(released.len(), 1);
        assert_eq!(released[0].missing, vec![2]);
        assert_eq!(r.next_expiry(), None);
    }

    #[test]
    fn expire_releases_all_due_messages_oldest_first() {
        let mut r = Reassembler::new(TTL, 10);
        r.offer(t(20), part("b", 1, 2, 1, b"")).unwrap();
        r.offer(t(10), part("a", 1, 2, 1, b"")).unwrap();
        r.offer(t(30), part("c", 1, 2, 1, b"")).unwrap();
        let released = r.expire(t(100));
        let sources: Vec<_> = released.iter().map(|a| a.key.source.as_str()).collect();
        assert_eq!(sources, vec!["a", "b", "c"]);
    }

    #[test]
    fn late_part_before_expire_is_called_still_completes() {
        let mut r = Reassembler::new(TTL, 10);
        r.offer(t(0), part("a", 1, 2, 1, b"x")).unwrap();
        let a = complete(r.offer(t(600), part("a", 1, 2, 2, b"y")).unwrap());
        assert_eq!(a.payload(), b"xy");
    }

    #[test]
    fn max_pending_eviction_releases_oldest_first_seen_into_queue() {
        let mut r = Reassembler::new(TTL, 2);
        r.offer(t(1), part("a", 1, 3, 1, b"a1")).unwrap();
        r.offer(t(2), part("b", 1, 3, 2, b"b2")).unwrap();
        // A later part of "a" does not refresh its age.
        r.offer(t(3), part("a", 1, 3, 3, b"a3")).unwrap();
        assert!(r.take_evicted().is_empty());
        r.offer(t(4), part("c", 1, 3, 1, b"c1")).unwrap();
        assert_eq!(r.pending(), 2);
        r.offer(t(5), part("d", 1, 3, 1, b"d1")).unwrap();
        let evicted = r.take_evicted();
        let sources: Vec<_> = evicted.iter().map(|a| a.key.source.as_str()).collect();
        assert_eq!(sources, vec!["a", "b"]);
        assert_eq!(evicted[0].missing, vec![2]);
        assert_eq!(evicted[0].payload(), b"a1a3");
        assert!(r.take_evicted().is_empty(), "taking drains the queue");
        assert_eq!(r.pending(), 2);
    }

    #[test]
    fn zero_max_pending_is_treated_as_one() {
        let mut r = Reassembler::new(TTL, 0);
        r.offer(t(0), part("a", 1, 2, 1, b"")).unwrap();
        assert_eq!(r.pending(), 1);
        assert!(r.take_evicted().is_empty());
    }

    #[test]
    fn serde_json_round_trip_mid_message_then_completes_after_deserialisation() {
        let mut r = Reassembler::new(TTL, 1);
        r.offer(t(0), part("old", 1, 2, 1, b"evicted")).unwrap();
        r.offer(t(1), part("a", 300, 3, 3, b"!")).unwrap();
        r.offer(t(2), part("a", 300, 3, 1, b"hi")).unwrap();
        r.offer(t(2), part("a", 301, 1, 1, b"solo")).unwrap();

        let json = serde_json::to_string(&r).unwrap();
        let mut restored: Reassembler = serde_json::from_str(&json).unwrap();
        assert_eq!(restored.pending(), 1);
        assert_eq!(restored.next_expiry(), Some(t(1) + TTL));
        assert_eq!(
            restored.offer(t(3), part("a", 300, 3, 1, b"dup")),
            Ok(Offer::Duplicate)
        );
        let a = complete(
            restored
                .offer(t(3), part("a", 300, 3, 2, b" there"))
                .unwrap(),
        );
        assert_eq!(a.payload(), b"hi there!");
        assert_eq!(a.first_seen, t(1));
        let evicted = restored.take_evicted();
        assert_eq!(evicted.len(), 1, "the eviction queue is persisted too");
        assert_eq!(evicted[0].key.source, "old");
    }

    #[test]
    fn corrupted_persisted_state_is_refused_not_trusted() {
        let mut r = Reassembler::new(TTL, 10);
        r.offer(t(0), part("a", 1, 3, 2, b"x")).unwrap();
        let good = serde_json::to_value(&r).unwrap();

        let mut bad_seq = good.clone();
        bad_seq["pending"][0]["parts"][0]["seq"] = 9.into();
        let err = serde_json::from_value::<Reassembler>(bad_seq).unwrap_err();
        assert!(err.to_string().contains("seq 9"), "{err}");

        let mut dup = good.clone();
        let entry = dup["pending"][0].clone();
        dup["pending"].as_array_mut().unwrap().push(entry);
        assert!(serde_json::from_value::<Reassembler>(dup).is_err());

        let mut empty = good;
        empty["pending"][0]["parts"] = serde_json::json!([]);
        assert!(serde_json::from_value::<Reassembler>(empty).is_err());
    }

    #[test]
    fn invalid_seq_and_total_are_rejected_and_nothing_is_stored() {
        let mut r = Reassembler::new(TTL, 10);
        assert_eq!(
            r.offer(t(0), part("a", 4, 3, 0, b"")),
            Err(PartError::SeqOutOfRange {
                reference: 4,
                seq: 0,
                total: 3
            })
        );
        assert_eq!(
            r.offer(t(0), part("a", 4, 3, 4, b"")),
            Err(PartError::SeqOutOfRange {
                reference: 4,
                seq: 4,
                total: 3
            })
        );
        let err = r.offer(t(0), part("a", 4, 0, 1, b"")).unwrap_err();
        assert_eq!(err, PartError::ZeroTotal { reference: 4 });
        assert_eq!(
            err.to_string(),
            "concatenated message total is 0 (reference 4)"
        );
        assert_eq!(r.pending(), 0);
    }

    #[test]
    fn mixed_data_codings_are_kept_per_part() {
        let mut r = Reassembler::new(TTL, 10);
        let mut p1 = part("a", 1, 2, 1, b"ab");
        p1.data_coding = 0x00;
        let mut p2 = part("a", 1, 2, 2, &[0x00, 0x41]);
        p2.data_coding = 0x08;
        r.offer(t(0), p2).unwrap();
        let a = complete(r.offer(t(0), p1).unwrap());
        assert_eq!(a.data_coding(), None);
        assert_eq!(a.parts[0].data_coding, 0x00);
        assert_eq!(a.parts[1].data_coding, 0x08);
    }

    /// A permutation of `1..=total`, plus duplicates (of any part but the one that completes
    /// the message) inserted anywhere before the completing part.
    fn arrivals() -> impl Strategy<Value = (u8, Vec<(u8, bool)>)> {
        (1u8..=10)
            .prop_flat_map(|total| {
                let seqs: Vec<u8> = (1..=total).collect();
                (
                    Just(total),
                    Just(seqs).prop_shuffle(),
                    proptest::collection::vec((any::<usize>(), any::<usize>()), 0..6),
                )
            })
            .prop_map(|(total, perm, dups)| {
                let Some((&last, head)) = perm.split_last() else {
                    return (total, Vec::new());
                };
                let mut order: Vec<(u8, bool)> = head.iter().map(|&s| (s, false)).collect();
                if !head.is_empty() {
                    for (which, at) in dups {
                        let seq = head[which % head.len()];
                        order.insert(at % (order.len() + 1), (seq, true));
                    }
                }
                order.push((last, false));
                (total, order)
            })
    }

    proptest! {
        #[test]
        fn any_arrival_order_with_duplicates_completes_exactly_once_in_order(
            (total, order) in arrivals()
        ) {
            let mut r = Reassembler::new(TTL, 4);
            let mut seen = std::collections::BTreeMap::new();
            let mut completions = Vec::new();
            for (i, &(seq, is_dup)) in order.iter().enumerate() {
                let payload = vec![seq, u8::from(is_dup)];
                let offer = r.offer(t(i as u64), part("p", 0x0101, total, seq, &payload)).unwrap();
                let first_copy = !seen.contains_key(&seq);
                seen.entry(seq).or_insert(payload);
                match offer {
                    Offer::Complete(a) => completions.push(a),
                    Offer::Duplicate => prop_assert!(!first_copy),
                    Offer::Stored { received, total: t } => {
                        prop_assert!(first_copy);
                        prop_assert_eq!(usize::from(received), seen.len());
                        prop_assert_eq!(t, total);
                    }
                }
            }
            prop_assert_eq!(completions.len(), 1);
            let a = &completions[0];
            prop_assert!(a.is_complete());
            let seqs: Vec<u8> = a.parts.iter().map(|p| p.seq).collect();
            prop_assert_eq!(seqs, (1..=total).collect::<Vec<_>>());
            for p in &a.parts {
                prop_assert_eq!(Some(&p.payload), seen.get(&p.seq), "first copy kept");
            }
            prop_assert_eq!(r.pending(), 0);
            prop_assert!(r.take_evicted().is_empty());
        }

        #[test]
        fn offer_never_panics_and_never_loses_a_part(
            parts in proptest::collection::vec((0u16..3, 0u8..5, 0u8..6, 0u64..200), 0..40),
            expire_at in 0u64..300,
        ) {
            let mut r = Reassembler::new(TTL, 3);
            let mut accepted = 0usize;
            let mut released = 0usize;
            for (reference, total, seq, at) in parts {
                match r.offer(t(at), part("x", reference, total, seq, b"")) {
                    Ok(Offer::Complete(a)) => released += a.parts.len(),
                    Ok(Offer::Stored { .. }) => {}
                    Ok(Offer::Duplicate) | Err(_) => continue,
                }
                accepted += 1;
            }
            released += r.expire(t(expire_at)).iter().map(|a| a.parts.len()).sum::<usize>();
            released += r.take_evicted().iter().map(|a| a.parts.len()).sum::<usize>();
            released += r.expire(t(10_000)).iter().map(|a| a.parts.len()).sum::<usize>();
            prop_assert_eq!(accepted, released);
            prop_assert_eq!(r.pending(), 0);
        }
    }
}
