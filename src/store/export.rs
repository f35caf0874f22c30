//! The store's side of `[export]`: the queue of conversation events waiting to be published
//! to NATS JetStream (`src/export`), and the cursor that takes them out.
//!
//! Events are not queued by callers: the state derives them from the records it applies
//! (`state/export.rs`) while export is on, so every producer (a flow step, a submit's
//! outcome, a receipt) is covered and an event is in the same log group as the step that
//! caused it. A replay after a crash derives the same events under the same seqs, so a
//! publish retried after a restart carries the same `Nats-Msg-Id` and JetStream drops the
//! copy. Whether export is on is itself recorded ([`Store::set_export`]), so a replay derives
//! exactly what the first run did whatever the config says at the next start.

use serde::{Deserialize, Serialize};

use super::log::Record;
use super::{ConversationId, Incident, Millis, Rating, Store, StoreError, keys};

/// One event to export, and its place in the queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueuedEvent {
    /// 1, 2, 3 … in the order the events happened on this store; never reused.
    pub seq: u64,
    pub event: ExportEvent,
}

/// What happened (SPEC.md "Export": the subject's `<kind>`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ExportEvent {
    Rating(Rating),
    Incident(Incident),
    Conversation(FinishedConversation),
    Mt(MtStatus),
}

impl ExportEvent {
    /// The subject's last token.
    pub fn kind(&self) -> &'static str {
        match self {
            ExportEvent::Rating(_) => "rating",
            ExportEvent::Incident(_) => "incident",
            ExportEvent::Conversation(_) => "conversation",
            ExportEvent::Mt(_) => "mt",
        }
    }
}

/// A conversation that ended (finished by its script or stopped by a failed hook).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FinishedConversation {
    pub id: ConversationId,
    pub flow: String,
    pub created_at: Millis,
    pub finished_at: Millis,
    /// `finish(outcome)`'s outcome, or `"error"`.
    pub outcome: String,
    /// The failed hook's error, for `"error"`.
    pub error: Option<String>,
    pub parties: Vec<String>,
    /// The script's `this` when it ended.
    pub state: serde_json::Value,
}

/// A sent message's status as it became known: accepted by the SMSC (`sent`) or refused
/// (`failed: …`), then its final receipt (`delivered`, `undeliverable`). A message's last
/// event is its final status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MtStatus {
    /// The outbox id.
    pub message: u64,
    pub conversation: ConversationId,
    pub flow: String,
    pub to: String,
    pub status: super::MessageStatus,
    pub at: Millis,
    /// Sent by the hook that opened the conversation (a survey's question).
    pub opening: bool,
    /// For an opening message, what the CSI report keys its sends by: the conversation's
    /// creation time and its `this.operator` and `this.channel`.
    pub survey: Option<SurveyKey>,
}

/// See [`MtStatus::survey`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SurveyKey {
    pub created_at: Millis,
    pub operator: String,
    pub channel: String,
}

/// The `Q` key: whether events are derived, and the last seq handed out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct ExportMark {
    pub on: bool,
    pub last: u64,
}

impl Store {
    /// Turns the derivation of export events on or off (a record when it changes). Off, the
    /// events already queued stay for a later start with `[export]`.
    pub fn set_export(&self, on: bool) -> Result<(), StoreError> {
        if self.state().export_on() == on {
            return Ok(());
        }
        self.write(Record::ExportSwitched(on)).map(|_| ())
    }

    /// Queued events after seq `after` (0: from the first), oldest first. The ones already
    /// checkpointed are read from sled outside the state's lock. None once the store is
    /// damaged: their acknowledgement could not be recorded.
    pub fn exports_after(&self, after: u64, limit: usize) -> Result<Vec<QueuedEvent>, StoreError> {
        if self.is_damaged() {
            return Ok(Vec::new());
        }
        self.read(
            || "the export queue".into(),
            || self.queued_after(after, limit),
        )
    }

    fn queued_after(&self, after: u64, limit: usize) -> Result<Vec<QueuedEvent>, StoreError> {
        let slots = self.state().export_slots(after, limit);
        let mut events = Vec::with_capacity(slots.len());
        for (seq, value) in slots {
            let key = keys::export(seq);
            let event = match value {
                Some(value) => keys::decode(keys::STATE, &key, &value)?,
                None => match self.inner.cold.get(&key)? {
                    Some(value) => keys::decode(keys::STATE, &key, &value)?,
                    None => return Err(StoreError::decode(keys::STATE, &key, "queued but absent")),
                },
            };
            events.push(QueuedEvent { seq, event });
        }
        Ok(events)
    }

    /// How many events wait.
    pub fn exports_len(&self) -> usize {
        self.state().exports_len()
    }

    /// JetStream acknowledged every event up to seq `upto`: they leave the queue.
    pub fn exported(&self, upto: u64) -> Result<(), StoreError> {
        self.write(Record::Exported { upto }).map(|_| ())
    }
}
