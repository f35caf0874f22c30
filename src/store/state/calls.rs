//! The state's webhook queue and its open conversations by reply code and join key (the
//! indexes are kept by `State::index` and `State::unindex` with the party index).

use super::super::{
    ConversationId, Direction, TimelineEntry, TimelineStatus, WebhookCall, WebhookOutcome, keys,
};
use super::State;

impl State {
    /// Webhook calls after id `after` (from the first for `None`), by id.
    pub fn webhooks_after(&self, after: Option<u64>, limit: usize) -> Vec<WebhookCall> {
        super::read_after(&self.webhooks, after, limit)
    }

    pub fn webhooks_len(&self) -> usize {
        self.webhooks.len()
    }

    /// The open conversation of `flow` holding reply code `code`.
    pub fn code_holder(&self, flow: &str, code: u32) -> Option<ConversationId> {
        let flow = self.flows.get(flow)?;
        self.codes.get(&(flow.clone(), code)).copied()
    }

    /// Which of `ids` are open and hold reply code `code`.
    pub fn holding_code(&self, ids: &[ConversationId], code: u32) -> Vec<ConversationId> {
        (ids.iter().copied())
            .filter(|id| {
                (self.hot.get(id))
                    .and_then(|h| h.keyed.as_ref())
                    .is_some_and(|k| k.code == Some(code))
            })
            .collect()
    }

    /// The open conversation of `flow` with join key `key` (the newest that took it).
    pub fn join_holder(&self, flow: &str, key: &str) -> Option<ConversationId> {
        let flow = self.flows.get(flow)?;
        self.joins.get(&(flow.clone(), key.to_owned())).copied()
    }

    pub(super) fn webhooks_finished(&mut self, outcomes: &[WebhookOutcome]) {
        for o in outcomes {
            if self.webhooks.remove(&o.call).is_none() {
                // Finished twice (a retry's result after a give-up): once is enough.
                continue;
            }
            self.remove(keys::webhook(o.call));
            self.dirty
                .timeline
                .entry(o.conversation)
                .or_default()
                .push(TimelineEntry {
                    at: o.at,
                    direction: Direction::Out,
                    party: format!("webhook:{}", o.webhook),
                    text: String::new(),
                    status: TimelineStatus::Note(o.status.clone()),
                    message_id: None,
                });
        }
    }
}
