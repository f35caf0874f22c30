//! The flow engine: loads flow scripts (and reloads them when they change), routes inputs to
//! conversations, calls their hooks, and commits each step's effects together with the new
//! state in one store transaction.
//!
//! Time is an input (`now`), and nothing here does network I/O: messages to send land in the
//! store's outbox, which the service drains into SMPP.
//!
//! Staff calls add two ways in besides the party index (`joins.rs`, `routing.rs`): an event
//! whose `fn join_key(event)` names an open conversation joins it (`on_update`), and a reply
//! that carries a conversation's reply code (`OK 315`) goes to that one; without a code, a
//! sender's open conversations are asked (`fn wants_reply(msg)`) which one it is for.
//!
//! Versions: a conversation records the content hash of the script it started on and keeps
//! running on that version after the file changes (the source is kept in the store, so this
//! holds across restarts too). A script that fails to compile leaves the last good version in
//! place.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

use rhai::{Dynamic, Engine, Map};

use crate::store::{
    Commit, Conversation, ConversationId, ConversationStatus, Direction, Incident, MoRecord,
    OutMessage, Rating, Store, StoreError, TimelineEntry, Timer,
};

use super::api::{Effects, Lookup, Millis};
use super::budget::LogRate;
use super::runner::{self, CallInput, CompiledFlow, FlowError, Hook, Limits};

mod handoffs;
mod joins;
mod loading;
mod routing;
pub use loading::script_paths;

/// The flow that gets MOs from senders with no open conversation.
pub const INBOX: &str = "inbox";

/// Timers fired per [`FlowEngine::fire_due_timers`] call; the rest wait for the next tick.
const MAX_TIMERS_PER_PASS: usize = 10_000;

/// How deep `start_flow` may chain (a survey opening an escalation opening ... ).
const MAX_START_DEPTH: usize = 4;
/// Conversations one event (or MO, or timer) may start through `start_flow`, all levels of
/// the chain together: per hook it is [`super::api::MAX_STARTS`], but that multiplies with depth.
pub const MAX_STARTS_PER_CHAIN: usize = 100;

/// Where a `start_flow` is in its chain: how deep, and how many conversations the whole
/// chain (every level, shared) has started.
#[derive(Default)]
struct Chain {
    depth: usize,
    started: std::rc::Rc<std::cell::Cell<usize>>,
}

/// Conversations are stepped one at a time each; steps of different conversations run in
/// parallel. Stripes keep the lock table small.
const LOCK_STRIPES: usize = 64;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    #[error("unknown flow {flow:?} (flows: {known})")]
    UnknownFlow { flow: String, known: String },
    #[error("flow {flow:?} has no {hook} hook")]
    MissingHook { flow: String, hook: &'static str },
    #[error("conversation {0} not found")]
    UnknownConversation(ConversationId),
    #[error(
        "the script version {version} of flow {flow:?} is gone (not on disk, not in the store)"
    )]
    VersionGone { flow: String, version: String },
    #[error(transparent)]
    Flow(#[from] FlowError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The event lacks a field the flow requires, or has one of the wrong kind.
    #[error("{detail}")]
    InvalidEvent { flow: String, detail: String },
    #[error("state of conversation {conversation} is not a map: {message}")]
    State {
        conversation: ConversationId,
        message: String,
    },
    /// Every reply code of the flow's range is held by an open conversation.
    #[error(
        "flow {flow:?}: all reply codes {from}..={to} are held by open conversations (widen \
         fn reply_codes(), or close calls)"
    )]
    NoReplyCode { flow: String, from: u32, to: u32 },
}

/// What [`FlowEngine::start`] made of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Started {
    /// A new conversation.
    New,
    /// The event id again with the same body: nothing done.
    Duplicate,
    /// An open conversation took it (`on_update`): a repeat with the same join key, or its
    /// own event id again with another body.
    Joined,
    /// The event id already belongs to a conversation that cannot take this body (another
    /// body for a flow without `on_update`, or a conversation that has finished).
    Conflict,
}

/// What a step did, for the caller (HTTP responses, metrics, the SMPP side).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StepResult {
    pub conversation: ConversationId,
    pub flow: String,
    /// Messages committed to the outbox by this step (and by flows it started).
    pub outbox: Vec<OutMessage>,
    pub finished: Option<String>,
    /// The script failed: the conversation is now errored (the input is still recorded).
    pub error: Option<FlowError>,
    /// Conversations started by `start_flow` during this step.
    pub started: Vec<ConversationId>,
}

/// A committed step and the flows it asked to start (started once its lock is released).
struct Stepped {
    result: StepResult,
    starts: Vec<(String, serde_json::Value)>,
}

/// Where an MO went.
#[derive(Debug, Clone, PartialEq)]
pub enum Routed {
    /// To the open conversation it belongs to.
    Conversation(StepResult),
    /// No open conversation: to the `inbox` flow.
    Inbox(StepResult),
    /// No open conversation and no inbox flow: stored as unsolicited.
    Unsolicited(ConversationId),
}

/// Settings of the engine.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// `*.rhai` files; the flow's name is the file stem. `None`: only [`FlowEngine::load_source`].
    pub scripts_dir: Option<PathBuf>,
    /// A file goes live only when its own `test_*` functions pass (`smsflow run` turns this
    /// on; off by default so tests and benches that build engines by the hundred pay nothing).
    pub gate: bool,
    pub timezone: jiff::tz::TimeZone,
    pub limits: Limits,
    /// The `[[webhook]]` names `notify` accepts.
    pub webhooks: Vec<String>,
    /// Refuse to load a file whose `notify("name", ...)` names a webhook not in `webhooks`
    /// (`smsflow run` turns this on; under `check` the tests configure their own).
    pub check_webhooks: bool,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            scripts_dir: None,
            gate: false,
            timezone: jiff::tz::TimeZone::UTC,
            limits: Limits::default(),
            webhooks: Vec::new(),
            check_webhooks: false,
        }
    }
}

#[derive(Default)]
struct Registry {
    /// The version new conversations start on.
    current: HashMap<String, Arc<CompiledFlow>>,
    /// Every version seen, by (flow, version).
    versions: HashMap<(String, String), Arc<CompiledFlow>>,
    /// When each file was last (re)loaded, to reload only what changed.
    modified: HashMap<PathBuf, SystemTime>,
}

/// See the module documentation.
pub struct FlowEngine {
    engine: Engine,
    store: Store,
    config: EngineConfig,
    registry: RwLock<Registry>,
    locks: Vec<Mutex<()>>,
    /// Hook calls that failed (script error or limit hit), per flow, for metrics.
    errors: Mutex<HashMap<String, u64>>,
    /// The webhook names `notify` accepts (`check` tests add theirs).
    webhooks: RwLock<Arc<[String]>>,
    /// The reply code each flow handed out last: the next is the one after it, so a code
    /// just freed is not reused at once (a late `OK 315` must not take a newer call).
    last_codes: Mutex<HashMap<String, u32>>,
    /// Held from a join key's lookup to the commit of the conversation that takes it, so two
    /// presses at once make one incident.
    joining: Mutex<()>,
    /// Each flow's log rate (`log()` lines per minute), shared by its conversations.
    log_rates: Mutex<HashMap<String, Arc<Mutex<LogRate>>>>,
}

struct StoreLookup(Store);

impl Lookup for StoreLookup {
    fn is_opted_out(&self, msisdn: &str) -> bool {
        self.0.is_opted_out(msisdn).unwrap_or(false)
    }

    fn last_conversation_at(&self, flow: &str, msisdn: &str) -> Option<Millis> {
        self.0.last_conversation_at(flow, msisdn).ok().flatten()
    }
}

impl FlowEngine {
    /// An engine over `store`; loads the scripts directory if there is one. Scripts that fail
    /// to compile are returned (they are not loaded); the engine is usable regardless.
    pub fn new(store: Store, config: EngineConfig) -> (FlowEngine, Vec<FlowError>) {
        let engine = FlowEngine {
            engine: runner::engine(config.limits),
            store,
            webhooks: RwLock::new(config.webhooks.clone().into()),
            config,
            registry: RwLock::new(Registry::default()),
            locks: (0..LOCK_STRIPES).map(|_| Mutex::new(())).collect(),
            errors: Mutex::new(HashMap::new()),
            last_codes: Mutex::new(HashMap::new()),
            joining: Mutex::new(()),
            log_rates: Mutex::new(HashMap::new()),
        };
        let errors = engine.reload();
        (engine, errors)
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn rhai(&self) -> &Engine {
        &self.engine
    }

    /// Failed hook calls so far, by flow (the conversations are marked errored).
    pub fn errors(&self) -> HashMap<String, u64> {
        self.errors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The zone of `local_hour()` and quiet hours.
    pub fn timezone(&self) -> &jiff::tz::TimeZone {
        &self.config.timezone
    }

    fn input(&self, now: Millis, flow: &str, reply_code: Option<u32>) -> CallInput {
        let mut rates = self.log_rates.lock().unwrap_or_else(|p| p.into_inner());
        let log_rate = (rates.entry(flow.to_owned()))
            .or_insert_with(|| Arc::new(Mutex::new(LogRate::new(now))))
            .clone();
        CallInput {
            now,
            timezone: self.config.timezone.clone(),
            lookup: Arc::new(StoreLookup(self.store.clone())),
            reply_code,
            webhooks: self.webhooks(),
            log_rate,
        }
    }

    fn lock(&self, id: ConversationId) -> std::sync::MutexGuard<'_, ()> {
        self.locks[(id % LOCK_STRIPES as u64) as usize]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    // ---- inputs ---------------------------------------------------------------------------

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
    fn start_inner(
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
            && let Some(stepped) = self.update(now, open, event.clone(), event_key, "joined")?
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
            status: ConversationStatus::Open,
            event_key: event_key.map(str::to_owned),
            event_digest: keyed.map(|(_, d)| d),
            created_at: now,
            updated_at: now,
            reply_code,
            join_key,
            notifications: 0,
            updates: Vec::new(),
            incident: None,
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
        let from = super::api::normalize_msisdn(from).unwrap_or_else(|| from.to_owned());
        let route = self.route(now, &from, text, received_at)?;
        let msg = message_map(&from, text, received_at, &route);
        let inbound = TimelineEntry {
            at: received_at,
            direction: Direction::In,
            party: from.clone(),
            text: text.to_owned(),
            status: "received".into(),
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
                status: ConversationStatus::Open,
                event_key: None,
                event_digest: None,
                created_at: now,
                updated_at: now,
                reply_code: None,
                join_key: None,
                notifications: 0,
                updates: Vec::new(),
                incident: None,
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
                event_key: None,
                event_digest: None,
                created_at: now,
                updated_at: now,
                reply_code: None,
                join_key: None,
                notifications: 0,
                updates: Vec::new(),
                incident: None,
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

    // ---- one step ---------------------------------------------------------------------------

    /// Calls `hook` on `conversation` and commits everything it did, with `commit`'s extras.
    #[allow(clippy::too_many_arguments)]
    fn step(
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
    fn launch(&self, now: Millis, stepped: Stepped, chain: &Chain) -> StepResult {
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
                    status: "queued".into(),
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
                    status: "suppressed (opted out)".into(),
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

fn message_map(from: &str, text: &str, received_at: Millis, route: &routing::Route) -> Dynamic {
    let mut msg = routing::reply_fields(from, text, received_at);
    route.add_to(&mut msg);
    msg.into()
}

/// What a step recorded, for the metrics once its commit succeeded.
struct Recorded {
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
    fn of(commit: &Commit, survey: bool, before: Option<&serde_json::Value>) -> Recorded {
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

    fn count(&self) {
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

/// A stable digest of an event's JSON (FNV-1a 64 over its text; serde_json writes an
/// object's keys sorted, so the same content is the same text).
pub fn digest(event: &serde_json::Value) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in event.to_string().bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{hash:016x}")
}
