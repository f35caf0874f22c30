//! Delivery receipts, without I/O: what a receipt says of its part, and the receipts that
//! came before their submit's outcome was recorded.
//!
//! A receipt is matched by the id it carries. An SMSC may send it within milliseconds of the
//! submit_sm_resp, before the driver recorded which message that SMSC id belongs to: such a
//! receipt is kept (by canonical id) and applied once the outcome is recorded. One still
//! unmatched after [`GRACE`] may carry the id in the other base (decimal for a hex
//! submit_sm_resp, or the reverse): only then is it matched that way, because short
//! sequential ids read the other way round are often another message's id, which is no
//! longer a risk once its own message had time to be recorded; and once an SMSC's receipt
//! matched as given, its ids are not read the other way again (until a restart). A receipt
//! for a message that is not ours (sent before the store was new, or a copy whose
//! submit_sm_resp was lost) is forgotten after that. What is left: right after a restart,
//! before that SMSC's first receipt matched, an overdue foreign receipt with a short
//! sequential id may still match another message to the same recipient.

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

use crate::flow::engine::FlowEngine;
use crate::metrics as names;
use crate::smpp::receipt::{DeliveryReceipt, canonical_id, id_forms};
use crate::store::{MessageStatus, Millis, OutboxOutcome, PartState, ReceiptApplied, Store};

/// Receipts kept while their submit's outcome is being recorded, at most ...
pub const MAX_EARLY: usize = 10_000;
/// ... and how long each is kept once the map is full.
pub const EARLY_TTL: Duration = Duration::from_secs(60);
/// How long a receipt waits for its own message before its id is read in the other base.
pub const GRACE: Duration = Duration::from_secs(5);

/// What a receipt says of its part.
pub fn part_state(receipt: &DeliveryReceipt) -> PartState {
    if receipt.state.is_success() {
        PartState::Delivered
    } else if receipt.state.is_final() {
        PartState::Undeliverable
    } else {
        PartState::Enroute
    }
}

/// A receipt waiting for its message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kept {
    pub at: Instant,
    pub receipt: DeliveryReceipt,
    /// Its source_addr: the number the message went to.
    pub from: String,
    /// The `[[smsc]]` it came from.
    pub smsc: String,
}

/// What an SMSC's receipts showed of their ids so far (see the module documentation).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum IdBase {
    #[default]
    Unknown,
    /// A receipt carried a submit's id as the submit_sm_resp gave it: no other base is tried.
    Same,
    /// A receipt matched only in the other base.
    Other,
}

/// See the module documentation.
#[derive(Debug, Default)]
pub struct EarlyReceipts {
    /// By canonical id.
    kept: HashMap<String, Kept>,
}

impl EarlyReceipts {
    /// Keeps a receipt no recorded message claims (yet). A full map first drops what is older
    /// than [`EARLY_TTL`]; still full, the receipt is not kept.
    pub fn keep(&mut self, kept: Kept) {
        if self.kept.len() >= MAX_EARLY {
            let now = kept.at;
            self.kept
                .retain(|_, k| now.duration_since(k.at) < EARLY_TTL);
            if self.kept.len() >= MAX_EARLY {
                return;
            }
        }
        self.kept
            .insert(canonical_id(&kept.receipt.message_id), kept);
    }

    /// Receipts kept for [`GRACE`] or longer at `now`, taken out: to be matched in the other
    /// base, or forgotten.
    pub fn poll_overdue(&mut self, now: Instant) -> Vec<Kept> {
        let overdue: Vec<String> = (self.kept.iter())
            .filter(|(_, k)| now.duration_since(k.at) >= GRACE)
            .map(|(id, _)| id.clone())
            .collect();
        let mut out: Vec<Kept> = (overdue.into_iter())
            .filter_map(|id| self.kept.remove(&id))
            .collect();
        out.sort_by_key(|k| k.at);
        out
    }

    /// The kept receipts for these (canonical) SMSC ids, taken out, with whom they came from.
    pub fn take<'a>(&mut self, smsc_ids: impl IntoIterator<Item = &'a String>) -> Vec<Kept> {
        if self.kept.is_empty() {
            return Vec::new();
        }
        (smsc_ids.into_iter())
            .filter_map(|id| self.kept.remove(id))
            .collect()
    }

    pub fn len(&self) -> usize {
        self.kept.len()
    }

    pub fn is_empty(&self) -> bool {
        self.kept.is_empty()
    }
}

/// What a receipt did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    /// It is in the store (or kept, or not ours): acknowledge it. Not stored: the SMSC sends
    /// it again.
    pub stored: bool,
    /// A flow took a step (`on_delivery`): it may have queued messages.
    pub stepped: bool,
}

/// Every receipt's way to its message: the ones waiting for their submit's outcome, and
/// what each SMSC's receipts showed of their ids (see the module documentation).
#[derive(Debug, Default)]
pub struct Receipts {
    early: EarlyReceipts,
    /// By `[[smsc]]` name.
    bases: HashMap<String, IdBase>,
}

impl Receipts {
    /// A receipt that just came: the state of the part it names, the message's status from
    /// all its parts, and `on_delivery` when that status changed; kept when its message is
    /// not known yet.
    pub fn handle(
        &mut self,
        store: &Store,
        engine: &FlowEngine,
        now: Millis,
        kept: Kept,
    ) -> Applied {
        self.apply(store, engine, now, kept, false)
    }

    /// Receipts that waited [`GRACE`] for their own message: from an SMSC whose receipts
    /// carry ids in the other base, matched that way (for the same recipient); else
    /// forgotten. Whether a flow stepped.
    pub fn poll_overdue(
        &mut self,
        store: &Store,
        engine: &FlowEngine,
        at: Instant,
        now: Millis,
    ) -> bool {
        let mut stepped = false;
        for kept in self.early.poll_overdue(at) {
            stepped |= self.apply(store, engine, now, kept, true).stepped;
        }
        stepped
    }

    /// The receipts that came before these outcomes were recorded, applied.
    pub fn handle_recorded(
        &mut self,
        store: &Store,
        engine: &FlowEngine,
        now: Millis,
        outcomes: &[OutboxOutcome],
    ) -> bool {
        let early = self.early.take(outcomes.iter().flat_map(|o| &o.smsc_ids));
        let mut stepped = false;
        for kept in early {
            stepped |= self.apply(store, engine, now, kept, false).stepped;
        }
        stepped
    }

    fn learn(&mut self, smsc: &str, base: IdBase) {
        let known = self.bases.entry(smsc.to_owned()).or_default();
        if *known == IdBase::Unknown {
            let how = match base {
                IdBase::Same => "match submit_sm_resp ids as given",
                IdBase::Other => "carry submit_sm_resp ids in the other base (hex vs decimal)",
                IdBase::Unknown => "are not known yet",
            };
            tracing::info!(%smsc, "delivery receipt ids of {smsc} {how}");
            *known = base;
        }
    }

    /// `overdue`: the receipt waited its grace; its id may be read in the other base (unless
    /// its SMSC showed it gives them as they are), and unmatched it is forgotten.
    fn apply(
        &mut self,
        store: &Store,
        engine: &FlowEngine,
        now: Millis,
        kept: Kept,
        overdue: bool,
    ) -> Applied {
        let receipt = &kept.receipt;
        let state = part_state(receipt);
        let mut forms = id_forms(&receipt.message_id);
        let base = self.bases.get(&kept.smsc).copied().unwrap_or_default();
        if !overdue || base == IdBase::Same {
            forms.truncate(1);
        }
        let (stored, stepped) = (
            Applied {
                stored: true,
                stepped: false,
            },
            Applied {
                stored: true,
                stepped: true,
            },
        );
        let applied = match store.apply_receipt_from(&forms, Some(&kept.from), state, now) {
            Ok(applied) => applied,
            Err(e) => {
                store.log_failure(format_args!("cannot store a receipt: {e}"));
                return Applied {
                    stored: false,
                    stepped: false,
                };
            }
        };
        // Not known yet (its submit is still being recorded, or its id is in the other
        // base), or not ours: kept a while.
        let Some(ReceiptApplied { part, changed }) = applied else {
            if !overdue {
                self.early.keep(kept);
            }
            return stored;
        };
        self.learn(
            &kept.smsc,
            if overdue { IdBase::Other } else { IdBase::Same },
        );
        let Some(status) = changed.as_ref().map(MessageStatus::word) else {
            return stored;
        };
        // Final once: a later receipt never changes a delivered or undeliverable message.
        if names::MT_RECEIPT_STATUSES.contains(&status) {
            metrics::counter!(names::MT_RECEIPTS, "flow" => part.flow.clone(), "status" => status)
                .increment(1);
            if changed == Some(MessageStatus::Delivered)
                && part.opening
                && engine.is_survey(&part.flow)
            {
                metrics::counter!(names::SURVEY_FUNNEL,
                    "flow" => part.flow.clone(), "stage" => "delivered")
                .increment(1);
            }
        }
        let step = engine.delivery(
            now,
            part.conversation,
            &part.to,
            status,
            Some(part.outbox_id),
        );
        match step {
            Ok(_) => stepped,
            Err(e) => {
                tracing::debug!("receipt for conversation {}: {e}", part.conversation);
                stored
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smpp::receipt::MessageState;

    fn receipt(at: Instant, id: &str, state: MessageState) -> Kept {
        Kept {
            at,
            receipt: DeliveryReceipt {
                message_id: id.into(),
                state,
                error: None,
                done_at: None,
            },
            from: "998901234567".into(),
            smsc: "sim".into(),
        }
    }

    #[test]
    fn early_receipts_wait_for_their_outcome_and_a_full_map_forgets_old_ones() {
        let t0 = Instant::now();
        let mut early = EarlyReceipts::default();
        early.keep(receipt(t0, "00AB", MessageState::Delivered));
        assert!(early.take(&["cd".to_owned()]).is_empty());
        let taken = early.take(&["ab".to_owned()]);
        assert_eq!(taken.len(), 1, "found under its canonical id");
        assert_eq!(part_state(&taken[0].receipt), PartState::Delivered);
        assert_eq!(taken[0].from, "998901234567", "with whom it came from");
        early.keep(receipt(t0, "5", MessageState::Delivered));
        assert!(
            early
                .poll_overdue(t0 + GRACE - Duration::from_millis(1))
                .is_empty()
        );
        assert_eq!(
            early.poll_overdue(t0 + GRACE).len(),
            1,
            "overdue after its grace"
        );
        assert!(early.is_empty());

        for i in 0..MAX_EARLY {
            early.keep(receipt(t0, &format!("{i:x}"), MessageState::Enroute));
        }
        // Full: a new one is dropped until the old ones are past their TTL.
        early.keep(receipt(
            t0 + Duration::from_secs(1),
            "fresh",
            MessageState::Undeliverable,
        ));
        assert_eq!(early.len(), MAX_EARLY);
        assert!(early.take(&["fresh".to_owned()]).is_empty());
        early.keep(receipt(
            t0 + EARLY_TTL,
            "fresh",
            MessageState::Undeliverable,
        ));
        assert_eq!(early.len(), 1);
        assert_eq!(
            part_state(&early.take(&["fresh".to_owned()])[0].receipt),
            PartState::Undeliverable
        );
    }
}
