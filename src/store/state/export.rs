//! The state's export queue (see `store/export.rs`): events derived from applied records
//! while export is on, under `q | seq` keys, with the `Q` mark holding the switch and the
//! last seq. Deriving reads first and returns the encoded events; queueing them cannot fail.
//!
//! Memory keeps only the queued seqs: the events themselves are values in the layers and,
//! once checkpointed, in sled, so a backlog of millions while NATS is down costs disk, not
//! RSS.

use std::collections::BTreeSet;
use std::sync::Arc;

use super::super::export::{ExportEvent, ExportMark, FinishedConversation, MtStatus, SurveyKey};
use super::super::{
    Commit, ConversationId, ConversationStatus, MessageStatus, Millis, OutboxOutcome, SentPart,
    StoreError, keys, tally,
};
use super::{Change, Slot, State};

/// See the module documentation.
#[derive(Debug, Default)]
pub(in super::super) struct ExportQueue {
    mark: ExportMark,
    seqs: BTreeSet<u64>,
}

/// Events ready to queue: seq, event, encoded value.
pub(super) type Prepared = Vec<(u64, ExportEvent, Vec<u8>)>;

impl State {
    pub fn export_on(&self) -> bool {
        self.export.mark.on
    }

    /// The first `limit` queued seqs after `after`, each with its value when a layer holds
    /// it (`None`: in sled, for the caller to read without the lock; only the exporter's own
    /// cursor takes it out).
    pub fn export_slots(&self, after: u64, limit: usize) -> Vec<(u64, Option<Arc<[u8]>>)> {
        (self.export.seqs.range(after.saturating_add(1)..))
            .take(limit)
            .map(|&seq| {
                let value = match self.slot(&keys::export(seq)) {
                    Some(Slot { value, .. }) => value.clone(),
                    None => None,
                };
                (seq, value)
            })
            .collect()
    }

    pub fn exports_len(&self) -> usize {
        self.export.seqs.len()
    }

    /// The queued seqs, for `verify.rs`.
    pub fn export_seqs(&self) -> impl Iterator<Item = u64> + '_ {
        self.export.seqs.iter().copied()
    }

    pub(super) fn load_exports(&mut self) -> Result<(), StoreError> {
        for key in self.cold.scan_prefix([keys::EXPORT]).keys() {
            self.export.seqs.insert(keys::trailing_u64(&key?)?);
        }
        self.export.mark = self.lookup(keys::EXPORT_MARK)?.unwrap_or_default();
        Ok(())
    }

    pub(super) fn switch_export(&mut self, on: bool) -> Result<(), StoreError> {
        let mark = ExportMark {
            on,
            ..self.export.mark
        };
        self.put_mark(mark)
    }

    /// JetStream has every event up to `upto`.
    pub(super) fn exported(&mut self, upto: u64) {
        let rest = self.export.seqs.split_off(&upto.saturating_add(1));
        for seq in std::mem::replace(&mut self.export.seqs, rest) {
            self.remove(keys::export(seq));
        }
    }

    /// The events commit `c` causes: its ratings and incidents, and the conversations of
    /// `changes` it ends.
    pub(super) fn commit_events(
        &self,
        c: &Commit,
        changes: &[Change],
    ) -> Result<Prepared, StoreError> {
        if !self.export.mark.on {
            return Ok(Vec::new());
        }
        let mut events: Vec<ExportEvent> = (c.ratings.iter().cloned())
            .map(ExportEvent::Rating)
            .chain(c.incidents.iter().cloned().map(ExportEvent::Incident))
            .collect();
        for ch in changes.iter().filter(|ch| ch.stepped) {
            let new = &ch.record.conversation;
            let was_open = ch.old.as_ref().is_none_or(|o| o.open);
            let (outcome, error) = match &new.status {
                ConversationStatus::Open => continue,
                _ if !was_open => continue,
                ConversationStatus::Finished { outcome } => (outcome.clone(), None),
                ConversationStatus::Errored { error } => ("error".to_owned(), Some(error.clone())),
            };
            events.push(ExportEvent::Conversation(FinishedConversation {
                id: new.id,
                flow: new.flow.clone(),
                created_at: new.created_at,
                finished_at: new.updated_at,
                outcome,
                error,
                parties: new.parties.clone(),
                state: new.state.clone(),
            }));
        }
        self.prepare(events)
    }

    /// The events of submits' outcomes.
    pub(super) fn outcome_events(
        &self,
        outcomes: &[OutboxOutcome],
    ) -> Result<Prepared, StoreError> {
        if !self.export.mark.on {
            return Ok(Vec::new());
        }
        let mut events = Vec::with_capacity(outcomes.len());
        for o in outcomes {
            let m = &o.message;
            events.push(ExportEvent::Mt(MtStatus {
                message: m.id,
                conversation: m.conversation,
                flow: m.flow.clone(),
                to: m.to.clone(),
                status: o.status.clone(),
                at: o.at,
                opening: m.opening,
                survey: self.survey_key(m.opening, m.conversation)?,
            }));
        }
        self.prepare(events)
    }

    /// The event of a receipt that made a message's status final.
    pub(super) fn receipt_event(
        &self,
        part: &SentPart,
        changed: Option<&MessageStatus>,
        at: Millis,
    ) -> Result<Prepared, StoreError> {
        let status = match changed {
            Some(s @ (MessageStatus::Delivered | MessageStatus::Undeliverable))
                if self.export.mark.on =>
            {
                s.clone()
            }
            _ => return Ok(Vec::new()),
        };
        self.prepare(vec![ExportEvent::Mt(MtStatus {
            message: part.outbox_id,
            conversation: part.conversation,
            flow: part.flow.clone(),
            to: part.to.clone(),
            status,
            at,
            opening: part.opening,
            survey: self.survey_key(part.opening, part.conversation)?,
        })])
    }

    /// Takes `prepared`'s seqs and puts the events and the mark into the dirty layer.
    pub(super) fn queue_exports(&mut self, prepared: Prepared) {
        let Some(&(last, ..)) = prepared.last() else {
            return;
        };
        for (seq, _, value) in prepared {
            self.export.seqs.insert(seq);
            self.put(keys::export(seq), value, true);
        }
        let mark = ExportMark {
            last,
            ..self.export.mark
        };
        // Two u64s and a bool always encode.
        let _ = self.put_mark(mark);
    }

    fn put_mark(&mut self, mark: ExportMark) -> Result<(), StoreError> {
        let value = keys::encode(keys::EXPORT_MARK, &mark)?;
        self.put(keys::EXPORT_MARK.to_vec(), value, false);
        self.export.mark = mark;
        Ok(())
    }

    fn prepare(&self, events: Vec<ExportEvent>) -> Result<Prepared, StoreError> {
        let mut prepared = Vec::with_capacity(events.len());
        for (seq, event) in (self.export.mark.last + 1..).zip(events) {
            let value = keys::encode(&keys::export(seq), &event)?;
            prepared.push((seq, event, value));
        }
        Ok(prepared)
    }

    fn survey_key(
        &self,
        opening: bool,
        conversation: ConversationId,
    ) -> Result<Option<SurveyKey>, StoreError> {
        if !opening {
            return Ok(None);
        }
        Ok(self.record(conversation)?.map(|r| {
            let (operator, channel) = tally::operator_and_channel(&r.conversation.state);
            SurveyKey {
                created_at: r.conversation.created_at,
                operator,
                channel,
            }
        }))
    }
}
