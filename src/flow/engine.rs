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

use rhai::Engine;

use crate::store::{ConversationId, OutMessage, Store, StoreError};

use super::api::{Lookup, Millis};
use super::budget::LogRate;
use super::runner::{self, CallInput, CompiledFlow, FlowError, Limits};

mod handoffs;
mod inputs;
mod joins;
mod loading;
mod routing;
mod step;
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
    /// The event's step was taken, but the group commit that was to make it durable failed:
    /// it waits in memory (written once there is room) and a retry is its duplicate.
    #[error("cannot make the event durable: {detail}")]
    NotDurable { disk_full: bool, detail: String },
}

/// What an event came to once its step is durable: what [`FlowEngine::start`] made of it,
/// or why not.
pub type Accepted = Result<(StepResult, Started), EngineError>;

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

/// The reload gate: runs a candidate file's own `test_*` functions beside the flows running
/// now; the first failure, as (test, why), keeps the candidate out. The engine only calls it:
/// running tests is [`check`](super::check)'s business ([`check::gate`](super::check::gate)).
pub type Gate = fn(
    candidate: &Arc<CompiledFlow>,
    others: &[Arc<CompiledFlow>],
    timezone: &jiff::tz::TimeZone,
) -> Result<(), (String, String)>;

/// Settings of the engine.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// `*.rhai` files; the flow's name is the file stem. `None`: only [`FlowEngine::load_source`].
    pub scripts_dir: Option<PathBuf>,
    /// A file goes live only when it passes this (`smsflow run` hands it
    /// [`check::gate`](super::check::gate); none by default so tests and benches that build
    /// engines by the hundred pay nothing).
    pub gate: Option<Gate>,
    /// Registers functions scripts may call beside the [`api`](super::api): the `t_*`
    /// functions of script tests ([`check::register`](super::check::register)), which fail
    /// outside `check`.
    pub functions: fn(&mut Engine),
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
            gate: None,
            functions: |_| {},
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
        let mut rhai = runner::engine(config.limits);
        (config.functions)(&mut rhai);
        let engine = FlowEngine {
            engine: rhai,
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
