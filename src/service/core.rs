//! The service's steps between the sans-IO decisions and the flows and store: what the
//! driver's tasks call, and what a simulation drives on virtual time. Nothing here awaits,
//! sleeps or reads a clock: every time is an argument, and durability is the caller's
//! (`Store::flush` before an ack or a submit).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use tokio::time::Instant;

use super::inbound::{Decision, Inbound, Mo, millis};
use super::outbox::{self, Outbox, SendResult};
use super::receipts::{self, EarlyReceipts, IdBase, Kept};
use crate::flow::engine::{EngineError, FlowEngine, Routed};
use crate::metrics as names;
use crate::smpp::receipt::id_forms;
use crate::smpp::session::Inbound as Deliver;
use crate::store::{
    MessageStatus, Millis, MoMark, OutMessage, OutboxOutcome, ReceiptApplied, Store,
};

/// Counters of what went through, for progress and the summary.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub mo: u64,
    pub mo_redelivered: u64,
    pub mt_accepted: u64,
    pub mt_retried: u64,
    pub mt_failed: u64,
    pub receipts: u64,
    pub timers: u64,
    pub script_errors: u64,
}

/// One inbound message handled: whether it is stored (else the SMSC is asked to redeliver),
/// and the mark to clear once its response is on its way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Taken {
    pub stored: bool,
    pub mark: Option<MoMark>,
    /// It changed something that may have queued messages.
    pub outbox_changed: bool,
}

/// See the module documentation.
pub struct Core {
    pub engine: Arc<FlowEngine>,
    pub store: Store,
    counts: Mutex<Counts>,
    early: Mutex<EarlyReceipts>,
    /// What each SMSC's receipts showed of their ids, by `[[smsc]]` name.
    bases: Mutex<HashMap<String, IdBase>>,
}

impl Core {
    pub fn new(engine: Arc<FlowEngine>, store: Store) -> Core {
        Core {
            engine,
            store,
            counts: Mutex::new(Counts::default()),
            early: Mutex::new(EarlyReceipts::default()),
            bases: Mutex::new(HashMap::new()),
        }
    }

    pub fn counts(&self) -> Counts {
        *self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn count(&self, f: impl FnOnce(&mut Counts)) {
        f(&mut self.counts.lock().unwrap_or_else(|p| p.into_inner()));
    }

    /// Logs a store operation that failed: at ERROR, unless the store is damaged, which it
    /// said once, at ERROR, when that was found (`store/damage.rs`): the same line for every
    /// MO the SMSC redelivers would bury it.
    fn store_failed(&self, what: std::fmt::Arguments<'_>) {
        if self.store.is_damaged() {
            tracing::debug!("{what}");
        } else {
            tracing::error!("{what}");
        }
    }

    /// Does what `inbound` decides for one deliver_sm from `smsc` (durable after the next
    /// flush). `now`/`at`: the same instant on the wall clock and the monotonic one.
    pub fn take_in(
        &self,
        inbound: &mut Inbound,
        now: SystemTime,
        at: Instant,
        smsc: &str,
        i: &Deliver,
    ) -> Taken {
        let now_ms = millis(now);
        let taken = |stored, mark, outbox_changed| Taken {
            stored,
            mark,
            outbox_changed,
        };
        let decision = inbound.handle(now, i, |mark| self.store.mo_seen(mark, now_ms));
        let decision = match decision {
            Ok(decision) => decision,
            Err(e) => {
                self.store_failed(format_args!("cannot read the store: {e}"));
                return taken(false, None, false);
            }
        };
        match decision {
            Decision::Receipt(Ok(receipt)) => {
                let kept = Kept {
                    at,
                    receipt,
                    from: i.source_addr.clone(),
                    smsc: smsc.to_owned(),
                };
                let (stored, changed) = self.on_receipt(now_ms, kept);
                taken(stored, None, changed)
            }
            // An unreadable receipt cannot be matched; acknowledging it loses nothing.
            Decision::Receipt(Err(e)) => {
                tracing::debug!(%smsc, "unreadable delivery receipt: {e}");
                taken(true, None, false)
            }
            Decision::Redelivered(mark) => {
                tracing::info!(
                    from = %i.source_addr,
                    %smsc,
                    "an MO already processed came again (the SMSC resending it, as our response \
                     may not have reached it): acknowledged, not processed again"
                );
                self.count(|c| c.mo_redelivered += 1);
                metrics::counter!(names::MO_REDELIVERED, "smsc" => smsc.to_owned()).increment(1);
                taken(true, Some(mark), false)
            }
            Decision::Hold(part) => match self.store.put_part(&part) {
                Ok(_) => taken(true, None, false),
                Err(e) => {
                    self.store_failed(format_args!("cannot store an MO part: {e}"));
                    taken(false, None, false)
                }
            },
            Decision::Deliver(mo) => {
                let mark = mo.mark.clone();
                let stored = self.deliver(now_ms, mo);
                taken(stored, mark, stored)
            }
        }
    }

    /// Routes one whole MO to the flows; `true` when its step is stored.
    pub fn deliver(&self, now_ms: Millis, mo: Mo) -> bool {
        match (self.engine).reply_mo(now_ms, &mo.from, &mo.text, now_ms, Some(mo.record)) {
            Ok(routed) => {
                let flow = match &routed {
                    Routed::Conversation(step) | Routed::Inbox(step) => {
                        if step.error.is_some() {
                            self.count(|c| c.script_errors += 1);
                        }
                        step.flow.clone()
                    }
                    Routed::Unsolicited(_) => "none".to_owned(),
                };
                metrics::counter!(names::MO_MESSAGES, "flow" => flow).increment(1);
                self.count(|c| c.mo += 1);
                true
            }
            Err(e) => {
                if matches!(&e, EngineError::Store(s) if Store::is_disk_full(s)) {
                    tracing::debug!("MO not stored, left for redelivery: {e}");
                } else {
                    self.store_failed(format_args!("MO not stored, left for redelivery: {e}"));
                }
                false
            }
        }
    }

    /// A delivery receipt (with whom and which SMSC it came from): the state of the part it
    /// names, the message's status from all its parts, and `on_delivery` when that status
    /// changed. Returns (stored, the flows took a step). Not stored: the SMSC sends it again.
    pub fn on_receipt(&self, now_ms: Millis, receipt: Kept) -> (bool, bool) {
        self.count(|c| c.receipts += 1);
        self.apply_receipt(now_ms, receipt, false)
    }

    /// Receipts that waited [`receipts::GRACE`] for their own message: from an SMSC whose
    /// receipts carry ids in the other base, matched that way (for the same recipient); else
    /// forgotten. Whether a flow stepped.
    pub fn poll_overdue_receipts(&self, at: Instant, now_ms: Millis) -> bool {
        let overdue = (self.early.lock().unwrap_or_else(|p| p.into_inner())).poll_overdue(at);
        let mut stepped = false;
        for kept in overdue {
            stepped |= self.apply_receipt(now_ms, kept, true).1;
        }
        stepped
    }

    fn base(&self, smsc: &str) -> IdBase {
        let bases = self.bases.lock().unwrap_or_else(|p| p.into_inner());
        bases.get(smsc).copied().unwrap_or_default()
    }

    fn learn(&self, smsc: &str, base: IdBase) {
        let mut bases = self.bases.lock().unwrap_or_else(|p| p.into_inner());
        let known = bases.entry(smsc.to_owned()).or_default();
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
    fn apply_receipt(&self, now_ms: Millis, kept: Kept, overdue: bool) -> (bool, bool) {
        let receipt = &kept.receipt;
        let state = receipts::part_state(receipt);
        let mut forms = id_forms(&receipt.message_id);
        if !overdue || self.base(&kept.smsc) == IdBase::Same {
            forms.truncate(1);
        }
        let applied = match (self.store).apply_receipt_from(&forms, Some(&kept.from), state, now_ms)
        {
            Ok(applied) => applied,
            Err(e) => {
                self.store_failed(format_args!("cannot store a receipt: {e}"));
                return (false, false);
            }
        };
        // Not known yet (its submit is still being recorded, or its id is in the other
        // base), or not ours: kept a while.
        let Some(ReceiptApplied { part, changed }) = applied else {
            if !overdue {
                (self.early.lock().unwrap_or_else(|p| p.into_inner())).keep(kept);
            }
            return (true, false);
        };
        self.learn(
            &kept.smsc,
            if overdue { IdBase::Other } else { IdBase::Same },
        );
        let Some(status) = changed.as_ref().map(MessageStatus::word) else {
            return (true, false);
        };
        // Final once: a later receipt never changes a delivered or undeliverable message.
        if names::MT_RECEIPT_STATUSES.contains(&status) {
            metrics::counter!(names::MT_RECEIPTS, "flow" => part.flow.clone(), "status" => status)
                .increment(1);
            if changed == Some(MessageStatus::Delivered)
                && part.opening
                && self.engine.is_survey(&part.flow)
            {
                metrics::counter!(names::SURVEY_FUNNEL,
                    "flow" => part.flow.clone(), "stage" => "delivered")
                .increment(1);
            }
        }
        let step = (self.engine).delivery(
            now_ms,
            part.conversation,
            &part.to,
            status,
            Some(part.outbox_id),
        );
        if let Err(e) = &step {
            tracing::debug!("receipt for conversation {}: {e}", part.conversation);
        }
        (true, step.is_ok())
    }

    /// What the finished submits came to, as `outbox` decides; the outcomes to record are
    /// stored (durable after the next flush) and returned, for [`Core::after_recorded`].
    pub fn record(
        &self,
        outbox: &mut Outbox,
        at: Instant,
        now_ms: Millis,
        finished: impl IntoIterator<Item = (OutMessage, SendResult)>,
    ) -> Vec<OutboxOutcome> {
        let mut outcomes = Vec::new();
        for (message, result) in finished {
            let (flow, to, opening) = (message.flow.clone(), message.to.clone(), message.opening);
            match outbox.handle_result(at, now_ms, message, result) {
                outbox::Decision::Kept => {}
                outbox::Decision::Retry { pause, attempt } => {
                    tracing::warn!(%to, attempt, ?pause, "message not sent, will retry");
                    self.count(|c| c.mt_retried += 1);
                    metrics::counter!(names::MT_RETRIES, "flow" => flow).increment(1);
                }
                outbox::Decision::Finished(outcome) => {
                    let accepted = outcome.status == MessageStatus::Sent;
                    if !accepted {
                        tracing::warn!(%to, "message refused for good: {}", outcome.status);
                    }
                    self.count_outcome(&flow, accepted, opening);
                    outcomes.push(outcome);
                }
            }
        }
        if !outcomes.is_empty()
            && let Err(e) = self.store.outbox_finished(&outcomes)
        {
            // They stay in the outbox: sent again after a restart (at-least-once).
            self.store_failed(format_args!("cannot record sent messages: {e}"));
            return Vec::new();
        }
        outcomes
    }

    /// Applies the receipts that came before these outcomes were recorded.
    pub fn after_recorded(&self, now_ms: Millis, outcomes: &[OutboxOutcome]) {
        let early = (self.early.lock().unwrap_or_else(|p| p.into_inner()))
            .take(outcomes.iter().flat_map(|o| &o.smsc_ids));
        for kept in early {
            self.apply_receipt(now_ms, kept, false);
        }
    }

    fn count_outcome(&self, flow: &str, accepted: bool, opening: bool) {
        self.count(|c| {
            if accepted {
                c.mt_accepted += 1;
            } else {
                c.mt_failed += 1;
            }
        });
        metrics::counter!(names::MT_MESSAGES,
            "flow" => flow.to_owned(),
            "status" => if accepted { "accepted" } else { "failed" })
        .increment(1);
        if accepted && opening && self.engine.is_survey(flow) {
            metrics::counter!(names::SURVEY_FUNNEL, "flow" => flow.to_owned(), "stage" => "sent")
                .increment(1);
        }
    }

    /// Fires the timers due at `now_ms`; whether any step ran.
    pub fn fire_timers(&self, now_ms: Millis) -> bool {
        // They wait for room: a step that cannot be stored would fail each tick.
        if self.store.disk_full() {
            return false;
        }
        match self.engine.fire_due_timers(now_ms) {
            Ok(steps) if !steps.is_empty() => {
                let errors = steps.iter().filter(|s| s.error.is_some()).count() as u64;
                self.count(|c| {
                    c.timers += steps.len() as u64;
                    c.script_errors += errors;
                });
                true
            }
            Ok(_) => false,
            Err(e) => {
                self.store_failed(format_args!("timers: {e}"));
                false
            }
        }
    }
}
