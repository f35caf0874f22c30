//! Read-only queries for the reports (src/report): which conversations of a flow sent
//! something in a time range, and whether it was delivered. Kept apart from the write path in
//! `mod.rs`; nothing here writes.

use serde::Deserialize;

use super::{ConversationId, Direction, Millis, Store, StoreError, TimelineEntry, keys};

/// A conversation that sent at least one message (not suppressed by an opt-out).
#[derive(Debug, Clone, PartialEq)]
pub struct SentConversation {
    pub id: ConversationId,
    pub created_at: Millis,
    /// The script's `this` (the survey keeps `operator` and `channel` there).
    pub state: serde_json::Value,
    /// Some message it sent has the timeline status `"delivered"` (set on a delivery receipt).
    pub delivered: bool,
}

/// The fields of a stored conversation the first pass needs (the script state is skipped).
#[derive(Deserialize)]
struct Brief {
    flow: String,
    created_at: Millis,
}

#[derive(Deserialize)]
struct WithState {
    state: serde_json::Value,
}

impl Store {
    /// Conversations of `flow` created with `from <= created_at < to` that have an Out
    /// timeline entry whose status does not start with `"suppressed"`, by id.
    ///
    /// Conversations are keyed by id, not time, so this reads every conversation's head:
    /// linear in the store's conversations (see the report module for measurements).
    pub fn sent_conversations(
        &self,
        flow: &str,
        from: Millis,
        to: Millis,
    ) -> Result<Vec<SentConversation>, StoreError> {
        let mut out = Vec::new();
        for entry in self.inner.conversations.iter() {
            let (key, value) = entry?;
            let brief: Brief = keys::decode(keys::CONVERSATIONS, &key, &value)?;
            if brief.flow != flow || brief.created_at < from || brief.created_at >= to {
                continue;
            }
            let id = keys::trailing_u64(keys::CONVERSATIONS, &key)?;
            // With each message's latest status (receipts update it).
            let timeline: Vec<TimelineEntry> = self.timeline(id)?;
            let mut sent = false;
            let mut delivered = false;
            for e in timeline.iter().filter(|e| e.direction == Direction::Out) {
                sent |= !e.status.starts_with("suppressed");
                delivered |= e.status == "delivered";
            }
            if !sent {
                continue;
            }
            let WithState { state } = keys::decode(keys::CONVERSATIONS, &key, &value)?;
            out.push(SentConversation {
                id,
                created_at: brief.created_at,
                state,
                delivered,
            });
        }
        Ok(out)
    }
}
