//! Events that belong to a conversation already open, and the reply codes conversations get.
//!
//! - **Join keys.** A flow that defines `fn join_key(event)` (a repeated press of one button:
//!   `"12@NURSE-PC-3"`) has an event with the key of one of its open conversations (started
//!   within `fn join_window()`, if it declares one) go to that conversation's
//!   `on_update(event)` instead of starting another. The timeline shows it; the 202 says
//!   `"joined": true`. The lookup and the commit of a new conversation holding the key run
//!   under one lock, so two presses at once make one incident.
//! - **The same event id again** with another body (`{"id": "inc-5512", "resolve": true}` from
//!   the concentrator's cancel button) goes to `on_update` of the conversation the id
//!   started, while it is open; otherwise it is a conflict (409). With the same body, or one
//!   that already joined, it is a duplicate and nothing happens.
//! - **Reply codes** (`fn reply_codes()`: `#{from: 100, to: 999}`) are handed out in turn,
//!   skipping the ones open conversations hold, so a code comes back only after the whole range
//!   went round (a late `OK 315` must not take a newer call). The turn is not kept across a
//!   restart: after one, codes start again from the lowest free.

use serde_json::Value;

use super::super::runner::{self, CompiledFlow, Hook};
use super::{Chain, EngineError, FlowEngine, Started, StepResult, Stepped, digest};
use crate::store::{Commit, ConversationId, Direction, TimelineEntry, TimelineStatus};

/// Digests of joined events a conversation keeps to recognise their retries.
const MAX_UPDATES: usize = 64;
/// How much of a joining event its timeline entry shows.
const SHOWN_BYTES: usize = 1000;

impl FlowEngine {
    /// The event id `key` of `flow` already names conversation `id`: a duplicate, an update,
    /// or a conflict (see the module documentation).
    pub(super) fn again(
        &self,
        now: i64,
        flow: &str,
        id: ConversationId,
        event: Value,
        key: &str,
    ) -> Result<(StepResult, Started), EngineError> {
        let result = |conversation| StepResult {
            conversation,
            flow: flow.to_owned(),
            ..StepResult::default()
        };
        if self.same_event(id, &digest(&event))? {
            return Ok((result(id), Started::Duplicate));
        }
        if let Some(first) = self.store.conversation(id)?
            && first.flow == flow
            && let Some(stepped) = self.update(now, id, event, None, TimelineStatus::Updated)?
        {
            tracing::info!(%flow, conversation = id, event = key, "event updated its conversation");
            return Ok((
                self.launch(now, stepped, &Chain::default()),
                Started::Joined,
            ));
        }
        Ok((result(id), Started::Conflict))
    }

    /// Whether an event whose body has digest `d` is the one that started conversation `id`
    /// or joined it (then the same id again is a duplicate). A conversation gone, or one that
    /// kept no digest (written before digests), takes any body as its own.
    pub(super) fn same_event(&self, id: ConversationId, d: &str) -> Result<bool, EngineError> {
        Ok(match self.store.conversation(id)? {
            None => true,
            Some(c) => {
                (c.event_digest.as_deref()).is_none_or(|f| f == d)
                    || c.updates.iter().any(|u| u == d)
            }
        })
    }

    /// `on_update(event)` of the open conversation `id`, with the event in its timeline
    /// (`status` says how it came) and `event_key` naming it from now on. `None` when it is
    /// closed or its flow has no `on_update`.
    pub(super) fn update(
        &self,
        now: i64,
        id: ConversationId,
        event: Value,
        event_key: Option<&str>,
        status: TimelineStatus,
    ) -> Result<Option<Stepped>, EngineError> {
        let guard = self.lock(id);
        let Some(mut conversation) = (self.store.conversation(id)?).filter(|c| c.status.is_open())
        else {
            return Ok(None);
        };
        let compiled = self.version(&conversation.flow, &conversation.flow_version)?;
        if !compiled.has("on_update") {
            return Ok(None);
        }
        conversation.updates.push(digest(&event));
        if conversation.updates.len() > MAX_UPDATES {
            conversation.updates.remove(0);
        }
        let arg = rhai::serde::to_dynamic(&event).map_err(|e| EngineError::State {
            conversation: id,
            message: e.to_string(),
        })?;
        let mut shown = event.to_string();
        if shown.len() > SHOWN_BYTES {
            let cut = (0..=SHOWN_BYTES).rev().find(|&i| shown.is_char_boundary(i));
            shown.truncate(cut.unwrap_or(0));
            shown.push('…');
        }
        let inbound = TimelineEntry {
            at: now,
            direction: Direction::In,
            party: "event".into(),
            text: shown,
            status,
            message_id: None,
        };
        let commit = Commit {
            event_key: event_key.map(|k| (conversation.flow.clone(), k.to_owned(), id)),
            ..Commit::default()
        };
        let stepped = self.step(
            now,
            &compiled,
            conversation,
            Hook::Update(arg),
            commit,
            Some(inbound),
        )?;
        drop(guard);
        Ok(Some(stepped))
    }

    /// What `fn join_key(event)` says, `None` for `()` or an empty key. A failing
    /// `join_key` is logged and joins nothing: the event still starts its conversation.
    pub(super) fn join_key(
        &self,
        now: i64,
        flow: &CompiledFlow,
        event: &Value,
    ) -> Result<Option<String>, EngineError> {
        let arg = rhai::serde::to_dynamic(event).map_err(|e| EngineError::InvalidEvent {
            flow: flow.name.clone(),
            detail: e.to_string(),
        })?;
        match runner::ask(
            &self.engine,
            flow,
            "join_key",
            None,
            arg,
            self.input(now, &flow.name, None),
        ) {
            Ok(key) if key.is_unit() => Ok(None),
            Ok(key) if key.is_string() || key.is_int() => {
                Ok(Some(key.to_string()).filter(|k| !k.is_empty()))
            }
            Ok(other) => {
                tracing::warn!(flow = %flow.name, "fn join_key returned {}, not a string: joins nothing", other.type_name());
                Ok(None)
            }
            Err(e) => {
                tracing::warn!(flow = %flow.name, "{e}; the event joins nothing");
                Ok(None)
            }
        }
    }

    /// The open conversation an event with join key `key` joins at `now`, if any.
    pub(super) fn joinable(
        &self,
        flow: &CompiledFlow,
        key: &str,
        now: i64,
    ) -> Result<Option<ConversationId>, EngineError> {
        let Some(id) = self.store.join_holder(&flow.name, key) else {
            return Ok(None);
        };
        let Some(open) = (self.store.conversation(id)?).filter(|c| c.status.is_open()) else {
            return Ok(None);
        };
        let within = flow
            .join_window
            .is_none_or(|window| now.saturating_sub(open.created_at) <= window);
        Ok(within.then_some(id))
    }

    /// The next free reply code of `flow` in `from..=to`, after the one handed out last.
    pub(super) fn allocate_code(
        &self,
        flow: &str,
        (from, to): (u32, u32),
    ) -> Result<u32, EngineError> {
        let mut last = self.last_codes.lock().unwrap_or_else(|p| p.into_inner());
        let span = to - from + 1;
        let after = (last.get(flow).copied())
            .filter(|c| (from..=to).contains(c))
            .map_or(span - 1, |c| c - from);
        for step in 1..=span {
            let code = from + (after + step) % span;
            if self.store.code_holder(flow, code).is_none() {
                last.insert(flow.to_owned(), code);
                return Ok(code);
            }
        }
        Err(EngineError::NoReplyCode {
            flow: flow.to_owned(),
            from,
            to,
        })
    }
}
