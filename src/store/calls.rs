//! The store's side of staff calls and hand-offs: the webhook queue (calls a step queued with
//! `notify`, waiting for the delivery worker) and the open conversations found by reply code
//! or join key. The queue lives with the other hot tables in memory and in the checkpoint
//! under `w` keys (`keys.rs`), so a call a durable step queued survives any crash.

use super::log::Record;
use super::{ConversationId, Store, StoreError, WebhookCall, WebhookOutcome};

impl Store {
    /// Webhook calls waiting, oldest (lowest id) first, after id `after` (0: from the first);
    /// the worker delivers them and calls [`Store::webhooks_finished`]. None once the store
    /// is damaged: what became of them could not be recorded.
    pub fn webhooks_after(&self, after: u64, limit: usize) -> Vec<WebhookCall> {
        if self.is_damaged() {
            return Vec::new();
        }
        self.state().webhooks_after(Some(after), limit)
    }

    /// How many webhook calls wait.
    pub fn webhooks_len(&self) -> usize {
        self.state().webhooks_len()
    }

    /// Takes calls out of the queue with what became of them (each conversation's timeline
    /// gets a line). Calls no longer queued are ignored.
    pub fn webhooks_finished(&self, outcomes: &[WebhookOutcome]) -> Result<(), StoreError> {
        if outcomes.is_empty() {
            return Ok(());
        }
        self.write(Record::WebhooksFinished(outcomes.to_vec()))
            .map(|_| ())
    }

    /// The open conversation of `flow` whose reply code is `code`.
    pub fn code_holder(&self, flow: &str, code: u32) -> Option<ConversationId> {
        self.state().code_holder(flow, code)
    }

    /// Which of `conversations` (open ones, from [`Store::open_conversations_of`]) hold reply
    /// code `code`: from memory, no record decoded (a survey's bare `5` asks this too).
    pub fn holding_code(&self, conversations: &[ConversationId], code: u32) -> Vec<ConversationId> {
        self.state().holding_code(conversations, code)
    }

    /// The open conversation of `flow` that events with join key `key` join.
    pub fn join_holder(&self, flow: &str, key: &str) -> Option<ConversationId> {
        self.state().join_holder(flow, key)
    }
}
