//! Inbound MOs, without I/O: what to do with each deliver_sm the sessions hand over. Time
//! is an input; the driver does what [`Inbound::handle`] decides against the store and the
//! flows, and acknowledges the MO once that is durable.
//!
//! - A delivery receipt is a receipt (see `receipts.rs`).
//! - An MO whose mark the store has is a **redelivery** (the SMSC resending after a crash
//!   between the flush and the response, or after a link lost before the response reached
//!   it): acknowledged, not processed again. Unless only its content identifies it (no
//!   `user_message_reference`, no concatenation) and the SMSC cannot be resending it: we
//!   answered the first copy on a bind that is still up, or that showed the SMSC read on
//!   (see [`BindView::may_resend`](crate::esme::BindView::may_resend)). Then it is someone writing the same again (a nurse's
//!   second `OK` for the next call) and a new message.
//! - A part of a concatenated MO is **held**: stored, acknowledged, and kept in the
//!   reassembler until the message is complete; the step that takes the whole message
//!   removes the stored parts.
//! - A whole MO (one piece, a completed message, or a part whose concatenation info cannot
//!   be right) is **delivered** to the flows with its mark, stored with the step.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use super::core::millis;
use crate::esme::BindLife;
use crate::smpp::concat::{Assembled, Offer, Part, Reassembler};
use crate::smpp::receipt::{DeliveryReceipt, ReceiptError};
use crate::smpp::session::Inbound as Deliver;
use crate::smpp::text::{self, MessageBody};
use crate::smpp::udh::ConcatInfo;
use crate::store::{MoConcat, MoMark, MoPart, MoRecord, PartKey};

/// How long the parts of an incomplete concatenated MO wait for the rest.
pub const PART_TTL: Duration = Duration::from_secs(300);
/// Incomplete concatenated MOs held at once (the oldest goes first beyond it).
pub const MAX_PENDING_MESSAGES: usize = 10_000;
/// Payload bytes of incomplete concatenated MOs held at once (the oldest goes first beyond
/// it): 10 000 messages of 254 parts would be 1.7 GB; a real backlog is a few hundred parts.
pub const MAX_PENDING_BYTES: usize = 4 * 1024 * 1024;

/// What to do with one deliver_sm.
#[derive(Debug)]
pub enum Decision {
    /// A delivery receipt (unreadable ones can be acknowledged: nothing matches them).
    Receipt(Result<DeliveryReceipt, ReceiptError>),
    /// Its step is stored already: acknowledge it, process nothing.
    Redelivered(MoMark),
    /// A part of a message not yet complete: store it, then acknowledge.
    Hold(MoPart),
    /// A whole message for the flows.
    Deliver(Mo),
}

/// A whole MO for the flows, and what its step stores with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mo {
    pub from: String,
    pub text: String,
    pub record: MoRecord,
    /// The mark to clear once its response is on its way (`None`: nothing waits for one).
    pub mark: Option<MoMark>,
}

/// See the module documentation.
pub struct Inbound {
    reassembler: Reassembler,
    /// Content-only MOs answered in this process, by mark: the bind that took the response
    /// and when we handed it over. Kept [`UNREFERENCED_WINDOW`], as long as their marks.
    acked: HashMap<MoMark, (Arc<BindLife>, Instant)>,
    /// How long after our response a bind's close still means the SMSC may not have it: the
    /// response timeout of the `[[smsc]]`s.
    grace: Duration,
}

impl Default for Inbound {
    fn default() -> Self {
        Inbound::new(DEFAULT_GRACE)
    }
}

/// [`Inbound::new`]'s grace when no `[[smsc]]` gives one: SMPP's usual response timeout.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(10);

/// The mark a deliver_sm's step stores: what a redelivery of it repeats.
pub fn mark(i: &Deliver) -> MoMark {
    let concat = i.concat.map(|c| (c.reference, c.total, c.seq));
    MoMark::new(
        &i.source_addr,
        &i.destination_addr,
        i.data_coding,
        concat,
        i.reference,
        &i.payload,
    )
}

/// How long a mark is kept once its MO is acknowledged: `window` when a reference (the
/// SMSC's, or a part's concatenation) identifies the MO. With only its content to go by, at
/// most [`UNREFERENCED_WINDOW`]: an SMSC resends an unanswered deliver_sm on the rebind
/// (seconds) or at its first retry (typically 30–60 s); the same text from the same person
/// later is someone writing again ("OK" to the next call), not a redelivery.
pub fn kept_for(mark: &MoMark, window: Duration) -> Duration {
    if mark.has_reference() {
        window
    } else {
        window.min(UNREFERENCED_WINDOW)
    }
}

/// See [`kept_for`].
pub const UNREFERENCED_WINDOW: Duration = Duration::from_secs(60);

impl Inbound {
    /// `grace`: see [`BindView::may_resend`](crate::esme::BindView::may_resend).
    pub fn new(grace: Duration) -> Inbound {
        Inbound {
            reassembler: Reassembler::new(PART_TTL, MAX_PENDING_MESSAGES)
                .with_max_bytes(MAX_PENDING_BYTES),
            acked: HashMap::new(),
            grace,
        }
    }

    /// Decides about `i`, received at `now`; `seen` asks the store whether it keeps the
    /// MO's [`mark`] (receipts have none); its error is the decision's.
    pub fn handle<E>(
        &mut self,
        now: SystemTime,
        i: &Deliver,
        seen: impl FnOnce(&MoMark) -> Result<bool, E>,
    ) -> Result<Decision, E> {
        if let Some(receipt) = &i.receipt {
            return Ok(Decision::Receipt(receipt.clone()));
        }
        let mark = mark(i);
        if seen(&mark)? && !self.copy_is_new(&mark) {
            return Ok(Decision::Redelivered(mark));
        }
        Ok(self.handle_new(now, i, mark))
    }

    /// Whether an MO whose mark the store keeps is nevertheless a new message: only its
    /// content identifies it, and we answered the first copy on a bind that is up or showed
    /// the SMSC read on. Without a reference, from before a restart, or while the first
    /// copy's response is pending, the copy may be the SMSC's: a redelivery.
    fn copy_is_new(&self, mark: &MoMark) -> bool {
        if mark.has_reference() {
            return false;
        }
        let Some((bind, acked)) = self.acked.get(mark) else {
            return false;
        };
        !bind.view().may_resend(*acked, self.grace)
    }

    /// The response to a content-only MO went to `bind` at `at`: a copy of it is then judged
    /// by that bind's life (see `Inbound::copy_is_new`).
    pub fn acknowledged(&mut self, mark: MoMark, bind: Arc<BindLife>, at: Instant) {
        if !mark.has_reference() {
            self.acked.insert(mark, (bind, at));
        }
    }

    /// An MO not seen before.
    fn handle_new(&mut self, now: SystemTime, i: &Deliver, mark: MoMark) -> Decision {
        let alone = |mark: MoMark| {
            Decision::Deliver(Mo {
                from: i.source_addr.clone(),
                text: body_text(text::decode(i.data_coding, &i.payload)),
                record: MoRecord {
                    pending_ack: vec![mark.clone()],
                    parts: Vec::new(),
                    received_at: millis(now),
                },
                mark: Some(mark),
            })
        };
        let Some(concat) = i.concat else {
            return alone(mark);
        };
        let part = Part {
            source: i.source_addr.clone(),
            destination: i.destination_addr.clone(),
            concat,
            data_coding: i.data_coding,
            payload: i.payload.to_vec(),
        };
        let stored = to_store(&part);
        match self.reassembler.offer(now, part) {
            // Every part is marked with the step: a part acknowledged while held may be
            // redelivered after the message is complete.
            Ok(Offer::Complete(whole)) => Decision::Deliver(Mo {
                mark: Some(mark),
                ..whole_mo(now, &whole, part_marks(&whole))
            }),
            // Held (a duplicate copy changes nothing): stored, then acknowledged.
            Ok(_) => Decision::Hold(stored),
            // Concatenation info that cannot be right (seq 0, seq > total): the part is a
            // message of its own.
            Err(e) => {
                tracing::debug!(source = %i.source_addr, "bad concatenation info, taking the part alone: {e}");
                alone(mark)
            }
        }
    }

    /// Parts stored before a restart, back into the reassembler. A message found complete
    /// here was completed by a part whose response may never have been sent: every part is
    /// marked, so the SMSC's redelivery of it is recognised.
    pub fn restore(&mut self, now: SystemTime, parts: Vec<MoPart>) -> Vec<Mo> {
        let mut whole = Vec::new();
        for part in parts {
            if let Ok(Offer::Complete(done)) = self.reassembler.offer(now, from_store(part)) {
                whole.push(whole_mo(now, &done, part_marks(&done)));
            }
        }
        whole
    }

    /// Messages whose missing parts never came (TTL, or pushed out by newer ones), as far as
    /// they got: a reply missing its end is still a reply.
    pub fn expire(&mut self, now: SystemTime, at: Instant) -> Vec<Mo> {
        // Past the window their marks are gone from the store too.
        (self.acked)
            .retain(|_, (_, acked)| at.saturating_duration_since(*acked) <= UNREFERENCED_WINDOW);
        let mut released = self.reassembler.expire(now);
        let evicted = self.reassembler.take_evicted();
        if !evicted.is_empty() {
            tracing::warn!(
                messages = evicted.len(),
                "concatenated MOs held over {MAX_PENDING_MESSAGES} messages or \
                 {MAX_PENDING_BYTES} bytes: the oldest released incomplete"
            );
            metrics::counter!(crate::metrics::MO_EVICTED).increment(evicted.len() as u64);
        }
        released.extend(evicted);
        (released.iter())
            .map(|done| {
                tracing::info!(missing = ?done.missing, "concatenated MO incomplete; taking the parts received");
                whole_mo(now, done, part_marks(done))
            })
            .collect()
    }
}

/// The marks of every part of an assembled message.
fn part_marks(whole: &Assembled) -> Vec<MoMark> {
    let k = &whole.key;
    (whole.parts.iter())
        .map(|p| {
            let concat = Some((k.reference, k.total, p.seq));
            MoMark::new(
                &k.source,
                &k.destination,
                p.data_coding,
                concat,
                None,
                &p.payload,
            )
        })
        .collect()
}

/// The MO of an assembled message whose step consumes its stored parts.
fn whole_mo(now: SystemTime, whole: &Assembled, pending_ack: Vec<MoMark>) -> Mo {
    let k = &whole.key;
    Mo {
        from: k.source.clone(),
        text: body_text(whole.body()),
        record: MoRecord {
            pending_ack,
            parts: (whole.parts.iter())
                .map(|p| PartKey::new(&k.source, &k.destination, k.reference, k.total, p.seq))
                .collect(),
            received_at: millis(now),
        },
        mark: None,
    }
}

fn body_text(body: MessageBody) -> String {
    match body {
        MessageBody::Text(text) => text,
        MessageBody::Binary(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
    }
}

fn to_store(p: &Part) -> MoPart {
    MoPart {
        source: p.source.clone(),
        destination: p.destination.clone(),
        concat: MoConcat {
            reference: p.concat.reference,
            total: p.concat.total,
            seq: p.concat.seq,
        },
        data_coding: p.data_coding,
        payload: p.payload.clone(),
    }
}

fn from_store(p: MoPart) -> Part {
    Part {
        source: p.source,
        destination: p.destination,
        concat: ConcatInfo {
            reference: p.concat.reference,
            total: p.concat.total,
            seq: p.concat.seq,
        },
        data_coding: p.data_coding,
        payload: p.payload,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mark_with_a_reference_is_kept_the_window_one_without_at_most_a_minute() {
        let window = Duration::from_secs(600);
        let with = MoMark::new("998901234567", "5700", 0, None, Some(4242), b"OK");
        let part = MoMark::new("998901234567", "5700", 0, Some((7, 2, 1)), None, b"OK");
        let without = MoMark::new("998901234567", "5700", 0, None, None, b"OK");
        assert_eq!(kept_for(&with, window), window);
        assert_eq!(kept_for(&part, window), window);
        assert_eq!(kept_for(&without, window), UNREFERENCED_WINDOW);
        let short = Duration::from_secs(5);
        assert_eq!(kept_for(&without, short), short);
    }
}
