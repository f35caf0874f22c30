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
mod tests;
