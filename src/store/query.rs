//! Read-only queries for the reports (src/report): which conversations of a flow sent
//! something in a time range, and whether it was delivered. Kept apart from the write path in
//! `mod.rs`; nothing here writes.

use std::collections::BTreeSet;

use super::state::created_keys;
use super::{
    ConversationId, ConversationStatus, Direction, MessageStatus, Millis, Store, StoreError,
    TimelineStatus, keys,
};

/// A conversation of a flow, with what the reports need of it.
#[derive(Debug, Clone, PartialEq)]
pub struct CreatedConversation {
    pub id: ConversationId,
    pub created_at: Millis,
    /// The script's `this` (the survey keeps `operator` and `channel` there).
    pub state: serde_json::Value,
    /// It sent at least one message (not suppressed by an opt-out).
    pub sent: bool,
    /// Some message it sent has the timeline status `"delivered"` (set on a delivery receipt).
    pub delivered: bool,
    /// How it ended (`"error"` for a failed hook); None while open.
    pub outcome: Option<String>,
}

impl Store {
    /// [`Store::created_conversations`] that have an Out timeline entry whose status does
    /// not start with `"suppressed"`.
    pub fn sent_conversations(
        &self,
        flow: &str,
        from: Millis,
        to: Millis,
    ) -> Result<Vec<CreatedConversation>, StoreError> {
        let mut all = self.created_conversations(flow, from, to)?;
        all.retain(|c| c.sent);
        Ok(all)
    }

    /// Conversations of `flow` created with `from <= created_at < to`, by id.
    ///
    /// Reads only that range of the creation-time index, then each conversation found.
    pub fn created_conversations(
        &self,
        flow: &str,
        from: Millis,
        to: Millis,
    ) -> Result<Vec<CreatedConversation>, StoreError> {
        if from >= to {
            return Ok(Vec::new());
        }
        let what = || format!("the conversations of flow {flow:?} from {from} to {to} ms");
        self.read(what, || self.created_in(flow, from, to))
    }

    fn created_in(
        &self,
        flow: &str,
        from: Millis,
        to: Millis,
    ) -> Result<Vec<CreatedConversation>, StoreError> {
        let prefix = keys::created_prefix(flow);
        let pending = self.state().pending(None, None, Some(&prefix));
        let mut ids = BTreeSet::new();
        let in_range = |key: &[u8]| -> Result<bool, StoreError> {
            let at = keys::created_at_of(key)?;
            Ok(from <= at && at < to)
        };
        for entry in
            (self.inner.cold).range(keys::created_from(flow, from)..keys::created_from(flow, to))
        {
            let (key, _) = entry?;
            ids.insert(keys::trailing_u64(&key)?);
        }
        let layered = pending.layers.iter().flat_map(|l| created_keys(l, &prefix));
        for key in layered.chain(pending.dirty_created) {
            if in_range(&key)? {
                ids.insert(keys::trailing_u64(&key)?);
            }
        }
        let mut out = Vec::new();
        for id in ids {
            let Some(conversation) = self.conversation(id)? else {
                continue;
            };
            // With each message's latest status (receipts update it).
            let mut sent = false;
            let mut delivered = false;
            for e in self
                .timeline(id)?
                .iter()
                .filter(|e| e.direction == Direction::Out)
            {
                sent |= e.status != TimelineStatus::OptedOut;
                delivered |= e.status == TimelineStatus::Message(MessageStatus::Delivered);
            }
            let outcome = match conversation.status {
                ConversationStatus::Open => None,
                ConversationStatus::Finished { outcome } => Some(outcome),
                ConversationStatus::Errored { .. } => Some("error".to_owned()),
            };
            out.push(CreatedConversation {
                id,
                created_at: conversation.created_at,
                state: conversation.state,
                sent,
                delivered,
                outcome,
            });
        }
        Ok(out)
    }
}
