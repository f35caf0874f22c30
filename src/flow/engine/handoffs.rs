//! Hand-offs: what a hook's `notify(webhook, payload)` calls become. Each is a
//! [`WebhookCall`] in the step's own commit (so it is durable exactly when the step is), with
//! its body fixed now, `{"webhook", "flow", "conversation", "at", "payload"}`, and the
//! conversation's next `Idempotency-Key: <conversation>-<n>`; the timeline shows it queued.
//! Delivering it is the webhook worker's business (`crate::webhook`).

use std::sync::Arc;

use super::{EngineError, FlowEngine, Millis};
use crate::store::{Commit, Conversation, Direction, TimelineEntry, TimelineStatus, WebhookCall};

impl FlowEngine {
    /// The webhook names `notify` accepts.
    pub fn webhooks(&self) -> Arc<[String]> {
        self.webhooks
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Replaces the webhook names `notify` accepts (`smsflow check`'s `t_webhook`).
    pub fn set_webhooks(&self, names: Vec<String>) {
        *self.webhooks.write().unwrap_or_else(|p| p.into_inner()) = names.into();
    }

    /// Puts `notifications` (webhook, payload) in `commit` as calls of `conversation`.
    pub(super) fn queue_webhooks(
        &self,
        now: Millis,
        conversation: &mut Conversation,
        notifications: Vec<(String, serde_json::Value)>,
        commit: &mut Commit,
    ) -> Result<(), EngineError> {
        let id = conversation.id;
        let at = jiff::Timestamp::from_millisecond(now).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
        for (webhook, payload) in notifications {
            conversation.notifications += 1;
            let body = serde_json::json!({
                "webhook": webhook, "flow": conversation.flow, "conversation": id,
                "at": at.to_string(), "payload": payload,
            })
            .to_string();
            commit.timeline.push((
                id,
                TimelineEntry {
                    at: now,
                    direction: Direction::Out,
                    party: format!("webhook:{webhook}"),
                    text: body.clone(),
                    status: TimelineStatus::Queued,
                    message_id: None,
                },
            ));
            commit.webhooks.push(WebhookCall {
                id: self.store.next_id()?,
                webhook,
                conversation: id,
                flow: conversation.flow.clone(),
                seq: conversation.notifications,
                created_at: now,
                body,
            });
        }
        Ok(())
    }
}
