//! The ways in: an event starts (or joins) a conversation, an MO is routed to one, a timer
//! fires, a delivery receipt arrives, a conversation is finished from outside.

use rhai::{Dynamic, Map};

use crate::store::{
    Commit, Conversation, ConversationId, ConversationStatus, Direction, MoRecord, StoreError,
    TimelineEntry, TimelineStatus, Timer,
};

use super::super::api::Millis;
use super::super::runner::Hook;
use super::step::Recorded;
use super::{Chain, EngineError, FlowEngine, INBOX, MAX_TIMERS_PER_PASS, Routed, Started};
use super::{StepResult, digest, routing};

impl FlowEngine {
    /// Starts a conversation of `flow` from an event, or hands it to the open conversation it
    /// joins (see [`Started`]). With `event_key`, the same key again with the same body
    /// returns the first conversation and does nothing ([`Started::Duplicate`]).
    pub fn start(
        &self,
        now: Millis,
        flow: &str,
        event: serde_json::Value,
        event_key: Option<&str>,
    ) -> Result<(StepResult, Started), EngineError> {
        if let Some(key) = event_key
            && let Some(id) = self.store.event_conversation(flow, key)?
        {
            return self.again(now, flow, id, event, key);
        }
        let keyed = event_key.map(|k| (k, digest(&event)));
        match self.start_inner(now, flow, event, keyed.clone(), &Chain::default()) {
            // A concurrent request with the same id won the race: a duplicate when the
            // bodies match (the winner's step may not even have run its hook yet).
            Err(EngineError::Store(StoreError::EventKeyTaken { conversation, .. })) => {
                let d = keyed.map(|(_, d)| d).unwrap_or_default();
                let started = match self.same_event(conversation, &d)? {
                    true => Started::Duplicate,
                    false => Started::Conflict,
                };
                let result = StepResult {
                    conversation,
                    flow: flow.to_owned(),
                    ..StepResult::default()
                };
                Ok((result, started))
            }
            other => other,
        }
    }

    /// `keyed`: the event's idempotency key and the digest of its body.
    pub(super) fn start_inner(
        &self,
        now: Millis,
        flow: &str,
        event: serde_json::Value,
        keyed: Option<(&str, String)>,
        chain: &Chain,
    ) -> Result<(StepResult, Started), EngineError> {
        let event_key = keyed.as_ref().map(|(k, _)| *k);
        let compiled = self.flow(flow).ok_or_else(|| EngineError::UnknownFlow {
            flow: flow.to_owned(),
            known: self
                .flows()
                .iter()
                .map(|f| f.name.clone())
                .collect::<Vec<_>>()
                .join(", "),
        })?;
        if !compiled.has("on_event") {
            return Err(EngineError::MissingHook {
                flow: flow.to_owned(),
                hook: "on_event",
            });
        }
        // Before an id is taken: a bad event creates nothing.
        compiled
            .event_schema
            .check(&event)
            .map_err(|detail| EngineError::InvalidEvent {
                flow: flow.to_owned(),
                detail,
            })?;
        // Two presses of one button at once must make one incident: the lookup and the
        // commit of the conversation that takes the key happen under one lock.
        let joining = compiled
            .joins
            .then(|| self.joining.lock().unwrap_or_else(|p| p.into_inner()));
        let join_key = match compiled.joins {
            true => self.join_key(now, &compiled, &event)?,
            false => None,
        };
        if let Some(key) = &join_key
            && let Some(open) = self.joinable(&compiled, key, now)?
            && let Some(stepped) =
                self.update(now, open, event.clone(), event_key, TimelineStatus::Joined)?
        {
            drop(joining);
            tracing::info!(%flow, conversation = open, "event joined an open conversation");
            return Ok((self.launch(now, stepped, chain), Started::Joined));
        }
        let reply_code = match compiled.reply_codes {
            Some(range) => Some(self.allocate_code(flow, range)?),
            None => None,
        };
        let id = self.store.next_id()?;
        let guard = self.lock(id);
        let conversation = Conversation {
            id,
            flow: flow.to_owned(),
            flow_version: compiled.version.clone(),
            state: serde_json::Value::Object(Default::default()),
            parties: Vec::new(),
            event_key: event_key.map(str::to_owned),
            event_digest: keyed.map(|(_, d)| d),
            created_at: now,
            updated_at: now,
            reply_code,
            join_key,
            ..Default::default()
        };
        let arg = rhai::serde::to_dynamic(&event).map_err(|e| EngineError::State {
            conversation: id,
            message: e.to_string(),
        })?;
        let commit = Commit {
            event_key: event_key.map(|k| (flow.to_owned(), k.to_owned(), id)),
            script: Some((
                flow.to_owned(),
                compiled.version.clone(),
                compiled.source.to_string(),
            )),
            ..Commit::default()
        };
        let party = event
            .get("msisdn")
            .and_then(|m| m.as_str())
            .unwrap_or_default()
            .to_owned();
        let stepped = self.step(now, &compiled, conversation, Hook::Event(arg), commit, None)?;
        drop(guard);
        drop(joining);
        tracing::info!(%flow, conversation = id, %party, "conversation started");
        Ok((self.launch(now, stepped, chain), Started::New))
    }

    /// An MO from `from`: to the most recent open conversation where `from` is a party, else
    /// to the inbox flow, else stored as unsolicited.
    pub fn reply(
        &self,
        now: Millis,
        from: &str,
        text: &str,
        received_at: Millis,
    ) -> Result<Routed, EngineError> {
        self.reply_mo(now, from, text, received_at, None)
    }

    /// [`FlowEngine::reply`] for an MO that came over SMPP: `mo` is stored in the same commit
    /// as the step it causes (redelivery mark, consumed parts).
    pub fn reply_mo(
        &self,
        now: Millis,
        from: &str,
        text: &str,
        received_at: Millis,
        mut mo: Option<MoRecord>,
    ) -> Result<Routed, EngineError> {
        let from = super::super::api::normalize_msisdn(from).unwrap_or_else(|| from.to_owned());
        let route = self.route(now, &from, text, received_at)?;
        let msg = message_map(&from, text, received_at, &route);
        let inbound = TimelineEntry {
            at: received_at,
            direction: Direction::In,
            party: from.clone(),
            text: text.to_owned(),
            status: TimelineStatus::Received,
            message_id: None,
        };
        if let Some(id) = route.conversation {
            let guard = self.lock(id);
            // Re-read under the lock: another step may have finished it meanwhile.
            if let Some(conversation) = self.store.conversation(id)?
                && conversation.status.is_open()
            {
                let compiled = self.version(&conversation.flow, &conversation.flow_version)?;
                if compiled.has("on_reply") {
                    let stepped = self.step(
                        now,
                        &compiled,
                        conversation,
                        Hook::Reply(msg),
                        Commit {
                            mo: mo.take(),
                            ..Commit::default()
                        },
                        Some(inbound),
                    )?;
                    drop(guard);
                    return Ok(Routed::Conversation(self.launch(
                        now,
                        stepped,
                        &Chain::default(),
                    )));
                }
            }
        }
        if let Some(inbox) = self.flow(INBOX).filter(|f| f.has("on_reply")) {
            let id = self.store.next_id()?;
            let guard = self.lock(id);
            let conversation = Conversation {
                id,
                flow: INBOX.to_owned(),
                flow_version: inbox.version.clone(),
                state: serde_json::Value::Object(Default::default()),
                parties: vec![from.clone()],
                created_at: now,
                updated_at: now,
                ..Default::default()
            };
            let commit = Commit {
                script: Some((
                    INBOX.to_owned(),
                    inbox.version.clone(),
                    inbox.source.to_string(),
                )),
                mo: mo.take(),
                ..Commit::default()
            };
            let mut stepped = self.step(
                now,
                &inbox,
                conversation,
                Hook::Reply(msg),
                commit,
                Some(inbound),
            )?;
            // An inbox conversation is one message long, whatever the script did.
            if stepped.result.finished.is_none() && stepped.result.error.is_none() {
                self.finish_now(now, id, "handled")?;
                stepped.result.finished = Some("handled".into());
            }
            drop(guard);
            return Ok(Routed::Inbox(self.launch(now, stepped, &Chain::default())));
        }
        let id = self.store.next_id()?;
        self.store.commit(Commit {
            conversation: Some(Conversation {
                id,
                flow: String::new(),
                flow_version: String::new(),
                state: serde_json::Value::Object(Default::default()),
                parties: vec![from],
                status: ConversationStatus::Finished {
                    outcome: "unsolicited".into(),
                },
                created_at: now,
                updated_at: now,
                ..Default::default()
            }),
            timeline: vec![(id, inbound)],
            mo,
            ..Commit::default()
        })?;
        Ok(Routed::Unsolicited(id))
    }

    /// Fires the timers due at or before `now`, earliest first (one pass); returns what each
    /// step did.
    pub fn fire_due_timers(&self, now: Millis) -> Result<Vec<StepResult>, EngineError> {
        // One pass over what is due now: a timer a hook sets again with no delay fires on the
        // next call, not in a loop here (a script must not be able to spin the timer task).
        let due = self.store.due_timers(now, MAX_TIMERS_PER_PASS)?;
        let mut results = Vec::with_capacity(due.len());
        for timer in due {
            if let Some(result) = self.fire(timer.due.min(now), &timer)? {
                results.push(result);
            }
        }
        Ok(results)
    }

    /// Fires one timer (at `now`); `None` when its conversation is gone or closed.
    pub fn fire(&self, now: Millis, timer: &Timer) -> Result<Option<StepResult>, EngineError> {
        let guard = self.lock(timer.conversation);
        let cancel = Commit {
            timers_cancelled: vec![(timer.conversation, timer.name.clone())],
            ..Commit::default()
        };
        let Some(conversation) = self.store.conversation(timer.conversation)? else {
            self.store.commit(cancel)?;
            return Ok(None);
        };
        let compiled = self.version(&conversation.flow, &conversation.flow_version)?;
        if !conversation.status.is_open() || !compiled.has("on_timer") {
            self.store.commit(cancel)?;
            return Ok(None);
        }
        // The fired timer is removed in the same commit as the step, so it fires exactly once
        // (unless the hook sets it again).
        let stepped = self.step(
            now,
            &compiled,
            conversation,
            Hook::Timer(timer.name.clone()),
            cancel,
            None,
        )?;
        drop(guard);
        Ok(Some(self.launch(now, stepped, &Chain::default())))
    }

    /// A delivery receipt for a message `conversation` sent to `to`.
    pub fn delivery(
        &self,
        now: Millis,
        conversation: ConversationId,
        to: &str,
        status: &str,
        message_id: Option<u64>,
    ) -> Result<Option<StepResult>, EngineError> {
        let guard = self.lock(conversation);
        let Some(conv) = self.store.conversation(conversation)? else {
            return Err(EngineError::UnknownConversation(conversation));
        };
        let compiled = self.version(&conv.flow, &conv.flow_version)?;
        if !conv.status.is_open() || !compiled.has("on_delivery") {
            return Ok(None);
        }
        let mut receipt = Map::new();
        receipt.insert("to".into(), to.into());
        receipt.insert("status".into(), status.into());
        receipt.insert("delivered".into(), (status == "delivered").into());
        receipt.insert(
            "message_id".into(),
            message_id.map_or(Dynamic::UNIT, |id| (id as i64).into()),
        );
        let stepped = self.step(
            now,
            &compiled,
            conv,
            Hook::Delivery(receipt.into()),
            Commit::default(),
            None,
        )?;
        drop(guard);
        Ok(Some(self.launch(now, stepped, &Chain::default())))
    }

    fn finish_now(
        &self,
        now: Millis,
        id: ConversationId,
        outcome: &str,
    ) -> Result<(), EngineError> {
        if let Some(mut conversation) = self.store.conversation(id)? {
            let conversation_flow = conversation.flow.clone();
            conversation.status = ConversationStatus::Finished {
                outcome: outcome.to_owned(),
            };
            conversation.updated_at = now;
            let timers = self.store.timers_of(id)?;
            let commit = Commit {
                conversation: Some(conversation),
                timers_cancelled: timers.into_iter().map(|t| (id, t.name)).collect(),
                ..Commit::default()
            };
            let recorded = Recorded::of(&commit, self.is_survey(&conversation_flow), None);
            self.store.commit(commit)?;
            recorded.count();
        }
        Ok(())
    }
}

fn message_map(from: &str, text: &str, received_at: Millis, route: &routing::Route) -> Dynamic {
    let mut msg = routing::reply_fields(from, text, received_at);
    route.add_to(&mut msg);
    msg.into()
}
