//! One step: a hook called on a conversation, and everything it did committed in one store
//! transaction with the new state; the flows it asked to start launched after.

use crate::store::{
    Commit, Conversation, ConversationId, ConversationStatus, Direction, Incident, OutMessage,
    Rating, TimelineEntry, TimelineStatus, Timer,
};

use super::super::api::{Effects, Millis};
use super::super::runner::{self, CompiledFlow, Hook};
use super::Stepped;
use super::{Chain, EngineError, FlowEngine, MAX_START_DEPTH, MAX_STARTS_PER_CHAIN, StepResult};

impl FlowEngine {
    /// Calls `hook` on `conversation` and commits everything it did, with `commit`'s extras.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn step(
        &self,
        now: Millis,
        flow: &CompiledFlow,
        mut conversation: Conversation,
        hook: Hook,
        mut commit: Commit,
        inbound: Option<TimelineEntry>,
    ) -> Result<Stepped, EngineError> {
        let id = conversation.id;
        let mut state =
            rhai::serde::to_dynamic(&conversation.state).map_err(|e| EngineError::State {
                conversation: id,
                message: e.to_string(),
            })?;
        let input = self.input(now, &flow.name, conversation.reply_code);
        if let Some(entry) = inbound {
            commit.timeline.push((id, entry));
        }
        conversation.updated_at = now;
        let incident_before = conversation.incident.clone();
        let mut result = StepResult {
            conversation: id,
            flow: flow.name.clone(),
            ..StepResult::default()
        };
        let effects = match runner::call_hook(&self.engine, flow, &hook, &mut state, input) {
            Ok(effects) => effects,
            Err(error) => {
                tracing::warn!(conversation = id, "{error}");
                *self
                    .errors
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .entry(flow.name.clone())
                    .or_default() += 1;
                let timers = self.store.timers_of(id)?;
                commit
                    .timers_cancelled
                    .extend(timers.into_iter().map(|t| (id, t.name)));
                conversation.status = ConversationStatus::Errored {
                    error: error.to_string(),
                };
                commit.conversation = Some(conversation);
                let recorded = Recorded::of(&commit, flow.survey, incident_before.as_ref());
                self.store.commit(commit)?;
                recorded.count();
                metrics::counter!(crate::metrics::FLOW_ERRORS,
                    "flow" => flow.name.clone(), "hook" => hook.name())
                .increment(1);
                result.error = Some(error);
                return Ok(Stepped {
                    result,
                    starts: Vec::new(),
                });
            }
        };
        conversation.state = rhai::serde::from_dynamic(&state).map_err(|e| EngineError::State {
            conversation: id,
            message: e.to_string(),
        })?;
        let starts = self.apply(now, &mut conversation, effects, &mut commit, &mut result)?;
        if matches!(hook, Hook::Event(_)) {
            // What the event hook sends opens the conversation (the survey question).
            for message in &mut commit.outbox {
                message.opening = true;
            }
        }
        commit.conversation = Some(conversation);
        let recorded = Recorded::of(&commit, flow.survey, incident_before.as_ref());
        self.store.commit(commit)?;
        recorded.count();
        Ok(Stepped { result, starts })
    }

    /// Starts the flows a step asked for, each its own conversation and commit. Called with no
    /// conversation lock held: a started conversation's lock may share a stripe with its
    /// parent's, and the locks are not reentrant.
    pub(super) fn launch(&self, now: Millis, stepped: Stepped, chain: &Chain) -> StepResult {
        let Stepped { mut result, starts } = stepped;
        for (flow, event) in starts {
            if chain.depth >= MAX_START_DEPTH {
                tracing::warn!(conversation = result.conversation, %flow, "start_flow nested deeper than {MAX_START_DEPTH}; not started");
                continue;
            }
            if chain.started.get() >= MAX_STARTS_PER_CHAIN {
                tracing::warn!(conversation = result.conversation, %flow, "start_flow: {MAX_STARTS_PER_CHAIN} conversations started by one event already; not started");
                continue;
            }
            chain.started.set(chain.started.get() + 1);
            let deeper = Chain {
                depth: chain.depth + 1,
                started: chain.started.clone(),
            };
            match self.start_inner(now, &flow, event, None, &deeper) {
                Ok((child, _)) => {
                    result.started.push(child.conversation);
                    result.outbox.extend(child.outbox);
                }
                Err(e) => {
                    tracing::warn!(conversation = result.conversation, %flow, "start_flow failed: {e}")
                }
            }
        }
        result
    }

    /// Turns a hook's effects into store changes; returns the flows to start afterwards.
    fn apply(
        &self,
        now: Millis,
        conversation: &mut Conversation,
        effects: Effects,
        commit: &mut Commit,
        result: &mut StepResult,
    ) -> Result<Vec<(String, serde_json::Value)>, EngineError> {
        let id = conversation.id;
        conversation
            .parties
            .retain(|p| !effects.parties_removed.contains(p));
        for party in effects.parties {
            if !conversation.parties.contains(&party) {
                conversation.parties.push(party);
            }
        }
        self.queue_webhooks(now, conversation, effects.notifications, commit)?;
        for (to, text) in effects.sends {
            let message = OutMessage {
                id: self.store.next_id()?,
                conversation: id,
                to: to.clone(),
                text: text.clone(),
                created_at: now,
                flow: conversation.flow.clone(),
                opening: false,
            };
            commit.timeline.push((
                id,
                TimelineEntry {
                    at: now,
                    direction: Direction::Out,
                    party: to,
                    text,
                    status: TimelineStatus::Queued,
                    message_id: Some(message.id),
                },
            ));
            result.outbox.push(message.clone());
            commit.outbox.push(message);
        }
        for to in effects.suppressed {
            tracing::info!(conversation = id, "send to an opted-out number dropped");
            commit.timeline.push((
                id,
                TimelineEntry {
                    at: now,
                    direction: Direction::Out,
                    party: to,
                    text: String::new(),
                    status: TimelineStatus::OptedOut,
                    message_id: None,
                },
            ));
        }
        for name in effects.timers_cancelled {
            commit.timers_cancelled.push((id, name));
        }
        for (name, due) in effects.timers_set {
            commit
                .timers_cancelled
                .retain(|(c, n)| !(*c == id && *n == name));
            commit.timers_set.push(Timer {
                conversation: id,
                name,
                due,
            });
        }
        let default_msisdn = conversation.parties.first().cloned().unwrap_or_default();
        for rating in effects.ratings {
            commit.ratings.push(Rating {
                conversation: id,
                flow: conversation.flow.clone(),
                at: now,
                msisdn: rating.msisdn.unwrap_or_else(|| default_msisdn.clone()),
                score: rating.score,
                operator: rating.operator,
                channel: rating.channel,
                comment: rating.comment,
            });
        }
        // The call is the conversation: every record dates from its start, and the last one
        // is what it is now (the report counts that, the open-calls list shows it).
        for fields in effects.incidents {
            conversation.incident = Some(fields.clone());
            commit.incidents.push(Incident {
                conversation: id,
                at: conversation.created_at,
                updated_at: now,
                fields,
            });
        }
        commit.opt_outs.extend(effects.opt_outs);
        commit.opt_ins.extend(effects.opt_ins);
        for line in effects.logs {
            let line = if crate::logging::redaction_enabled() {
                crate::logging::redact_parties(&line, &conversation.parties)
            } else {
                line
            };
            tracing::info!(target: "smsflow::flow", flow = %conversation.flow, conversation = id, "{line}");
        }
        if let Some(outcome) = effects.finished {
            // A finished conversation keeps no timers.
            let pending: Vec<String> = self
                .store
                .timers_of(id)?
                .into_iter()
                .map(|t| t.name)
                .chain(commit.timers_set.drain(..).map(|t| t.name))
                .collect();
            commit
                .timers_cancelled
                .extend(pending.into_iter().map(|name| (id, name)));
            conversation.status = ConversationStatus::Finished {
                outcome: outcome.clone(),
            };
            result.finished = Some(outcome);
        }
        Ok(effects.flows_started)
    }
}

/// What a step recorded, for the metrics once its commit succeeded.
pub(super) struct Recorded {
    /// (flow, score) of each rating.
    scores: Vec<(String, u8)>,
    /// The conversation's flow is a survey flow: its end counts in the survey funnel.
    survey: bool,
    /// The level that took each escalated incident's call, `None` when nobody did.
    escalations: Vec<Option<i64>>,
    /// (level, seconds) of each acknowledged incident.
    acks: Vec<(i64, f64)>,
    /// (flow, outcome, conversation, its first party) when the step finished it.
    finished: Option<(String, String, ConversationId, String)>,
}

impl Recorded {
    /// What `commit` records, its incidents counted as they change from `before` (the
    /// conversation's incident until this step): a call's ack once, at the ack; a call
    /// nobody took once, when it closes.
    pub(super) fn of(
        commit: &Commit,
        survey: bool,
        before: Option<&serde_json::Value>,
    ) -> Recorded {
        let flag =
            |f: &serde_json::Value, name: &str| f.get(name).and_then(|v| v.as_bool()) == Some(true);
        let (mut escalations, mut acks) = (Vec::new(), Vec::new());
        let mut was_acked = before.is_some_and(|f| flag(f, "acknowledged"));
        let mut was_closed = before.is_some_and(|f| f.get("state").is_none_or(|s| s == "closed"));
        for i in &commit.incidents {
            let f = &i.fields;
            let level = f.get("level").and_then(|l| l.as_i64());
            let acked = flag(f, "acknowledged");
            let closed = i.state() == crate::store::IncidentState::Closed;
            if acked && !was_acked {
                if flag(f, "escalated") {
                    escalations.push(level);
                }
                if let (Some(level), Some(seconds)) =
                    (level, f.get("ack_seconds").and_then(|s| s.as_f64()))
                {
                    acks.push((level, seconds));
                }
            }
            let cancelled = f.get("outcome").and_then(|o| o.as_str()) == Some("cancelled");
            if closed && !was_closed && !acked && flag(f, "escalated") && !cancelled {
                escalations.push(None);
            }
            was_acked |= acked;
            was_closed |= closed;
        }
        Recorded {
            scores: (commit.ratings.iter())
                .map(|r| (r.flow.clone(), r.score))
                .collect(),
            survey,
            escalations,
            acks,
            finished: commit.conversation.as_ref().and_then(|c| {
                let outcome = match &c.status {
                    ConversationStatus::Finished { outcome } => outcome.clone(),
                    ConversationStatus::Errored { .. } => "error".to_owned(),
                    ConversationStatus::Open => return None,
                };
                let party = c.parties.first().cloned().unwrap_or_default();
                Some((c.flow.clone(), outcome, c.id, party))
            }),
        }
    }

    pub(super) fn count(&self) {
        use crate::metrics as names;
        for (flow, score) in &self.scores {
            metrics::counter!(names::RATINGS, "flow" => flow.clone(), "score" => score.to_string())
                .increment(1);
        }
        for level in &self.escalations {
            let level = level.map_or_else(|| "none".to_owned(), |l| l.to_string());
            metrics::counter!(names::ESCALATIONS, "level" => level).increment(1);
        }
        for (level, seconds) in &self.acks {
            metrics::histogram!(names::ACK_SECONDS, "level" => level.to_string()).record(*seconds);
        }
        if let Some((flow, outcome, id, party)) = &self.finished {
            // The log writer masks the number.
            tracing::info!(%flow, conversation = id, %outcome, %party, "conversation finished");
            metrics::counter!(names::CONVERSATIONS_FINISHED,
                "flow" => flow.clone(), "outcome" => outcome.clone())
            .increment(1);
            if self.survey {
                for stage in names::survey_stages(outcome) {
                    metrics::counter!(names::SURVEY_FUNNEL,
                        "flow" => flow.clone(), "stage" => *stage)
                    .increment(1);
                }
            }
        }
    }
}
