//! The durable state of smsflow: conversations, their timelines and timers, the outbox,
//! ratings, incidents, opt-outs, idempotency keys and script versions, in one sled database;
//! and what the service keeps about SMPP traffic: MOs whose response may not have reached the
//! SMSC, parts of concatenated MOs, and which SMSC id belongs to which sent message.
//!
//! [`Store`] is a typed facade: callers see the types below and never sled's bytes; the layout
//! (trees, keys, value encoding, schema version) is in [`keys`]. Everything one step of a
//! conversation changes goes in one [`Commit`], applied by [`Store::commit`] as one sled
//! transaction over every tree it touches, so a crash never leaves half a step behind.
//!
//! What the store does not do: read a clock (every time is an argument), flush on commit
//! (callers batch durability with [`Store::flush`], and ack MOs after it), or decide anything
//! about flows. A corrupted value is a [`StoreError::Decode`] naming the tree and key, never a
//! panic.

mod delivery;
mod durability;
pub mod keys;
pub mod query;

pub use delivery::{PartState, ReceiptApplied};

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::smpp::concat::Part;
use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError, TransactionalTree};

pub type ConversationId = u64;
/// Milliseconds since the Unix epoch (UTC). Time is always an input: the store never reads a
/// clock.
pub type Millis = i64;

/// One running (or ended) conversation of a flow: what the script needs to take its next step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Conversation {
    pub id: ConversationId,
    pub flow: String,
    /// Content hash of the script version the conversation runs on (hex).
    pub flow_version: String,
    /// The script's `this`: a JSON object.
    pub state: serde_json::Value,
    /// MSISDNs whose MOs route to this conversation while it is open.
    pub parties: Vec<String>,
    pub status: ConversationStatus,
    /// The HTTP event's idempotency key, if it came from one.
    pub event_key: Option<String>,
    pub created_at: Millis,
    pub updated_at: Millis,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConversationStatus {
    Open,
    /// The script called `finish(outcome)`.
    Finished {
        outcome: String,
    },
    /// A hook failed; the conversation stops rather than retrying a broken script forever.
    Errored {
        error: String,
    },
}

impl ConversationStatus {
    pub fn is_open(&self) -> bool {
        matches!(self, ConversationStatus::Open)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Direction {
    /// MO: from a party to us.
    In,
    /// MT: from us to a party.
    Out,
}

/// One message of a conversation, as the HTTP timeline shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineEntry {
    pub at: Millis,
    pub direction: Direction,
    pub party: String,
    pub text: String,
    /// "received", "queued", "sent", "delivered", "failed", ... (free text, set by the service)
    pub status: String,
    /// Outbox message id for Out entries.
    pub message_id: Option<u64>,
}

/// A CSI survey answer (`record_rating`), the unit of the CSI report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rating {
    pub conversation: ConversationId,
    pub flow: String,
    pub at: Millis,
    pub msisdn: String,
    pub score: u8,
    pub operator: String,
    pub channel: String,
    pub comment: String,
}

/// What an escalation recorded about one incident (`record_incident`), the unit of the
/// incident report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    pub conversation: ConversationId,
    pub at: Millis,
    /// What the script recorded (`record_incident(map)`).
    pub fields: serde_json::Value,
}

/// A named timer of a conversation; `(conversation, name)` is unique.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timer {
    pub conversation: ConversationId,
    pub name: String,
    pub due: Millis,
}

/// An MT message committed with the step that sent it, waiting for the service to submit it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutMessage {
    /// From [`Store::next_id`]: the outbox is drained in id order.
    pub id: u64,
    pub conversation: ConversationId,
    pub to: String,
    pub text: String,
    pub created_at: Millis,
    /// The flow of `conversation` (for metrics); empty in values written before it existed.
    #[serde(default)]
    pub flow: String,
    /// Sent by the hook that started the conversation (a survey's question): the first stage
    /// of the survey funnel.
    #[serde(default)]
    pub opening: bool,
}

/// Which outbox message an SMSC message id belongs to, so a delivery receipt (even one that
/// arrives after a restart) reaches its conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentPart {
    pub conversation: ConversationId,
    pub outbox_id: u64,
    pub to: String,
    pub flow: String,
    /// Which part of the message (0-based): a long text gets one receipt per part.
    #[serde(default)]
    pub part: usize,
    /// See [`OutMessage::opening`].
    #[serde(default)]
    pub opening: bool,
}

/// What an outbox message came to, recorded by [`Store::outbox_finished`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxOutcome {
    pub message: OutMessage,
    /// "sent" (the SMSC accepted every part) or "failed: ..." (refused for good).
    pub status: String,
    /// The SMSC's id of each accepted part.
    pub smsc_ids: Vec<String>,
}

/// The MO a step answers, stored with the step (see [`Commit::mo`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MoRecord {
    /// The deliver_sms whose deliver_sm_resp is still to be sent ([`keys::mo`]): marked seen
    /// with the step, so a redelivery after a crash is recognised; the service unmarks them
    /// with [`Store::mo_acknowledged`] once the response is on its way.
    pub pending_ack: Vec<Vec<u8>>,
    /// Stored parts ([`keys::part`]) the step consumed: removed with it.
    pub parts: Vec<Vec<u8>>,
}

/// Everything one step of a conversation changes, applied atomically by [`Store::commit`].
///
/// The party index is derived from `conversation`: after the commit a conversation's parties
/// are indexed exactly while its status is Open, so there are no separate fields for it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Commit {
    /// Inserted or replaced. When its status is not Open, all its parties leave the party
    /// index. Its timers stay until cancelled (list them with [`Store::timers_of`]).
    pub conversation: Option<Conversation>,
    /// Same `(conversation, name)` replaces the old due time. Cancels apply before sets, so a
    /// name in both lists ends up set.
    pub timers_set: Vec<Timer>,
    pub timers_cancelled: Vec<(ConversationId, String)>,
    /// Appended; each entry gets its own sequence number, in this order.
    pub timeline: Vec<(ConversationId, TimelineEntry)>,
    pub outbox: Vec<OutMessage>,
    pub ratings: Vec<Rating>,
    pub incidents: Vec<Incident>,
    /// Applied after `opt_ins`, so an MSISDN in both ends opted out.
    pub opt_outs: Vec<String>,
    pub opt_ins: Vec<String>,
    /// (flow, key, conversation): the idempotency key of an HTTP event. If the key already
    /// names another conversation the whole commit fails with
    /// [`StoreError::EventKeyTaken`].
    pub event_key: Option<(String, String, ConversationId)>,
    /// (flow, version, source): keeps a script version's source so a conversation started on
    /// it can finish on it after a restart. A version already stored is left as it is.
    pub script: Option<(String, String, String)>,
    /// The MO the step answers, when it came over SMPP.
    pub mo: Option<MoRecord>,
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// sled locks the directory exclusively: another process, or another [`Store`] in this
    /// one, has it open.
    #[error(
        "store {} is in use by another process (sled holds a lock on it); stop the other \
         smsflow or use another service.data_dir",
        path.display()
    )]
    Locked { path: PathBuf, source: sled::Error },
    /// Any other failure to open the directory (permissions, a file in the way, ...).
    #[error("cannot open store {}: {source}", path.display())]
    Open { path: PathBuf, source: sled::Error },
    /// The store was written with another layout ([`keys::SCHEMA_VERSION`]); `found` is 0
    /// when it has data but records no version.
    #[error(
        "store {} has schema version {found} but this smsflow reads version {expected}; \
         there is no automatic migration: use the matching smsflow or a new service.data_dir",
        path.display()
    )]
    SchemaMismatch {
        found: u32,
        expected: u32,
        path: PathBuf,
    },
    /// The HTTP event key is already taken by another conversation (a concurrent duplicate);
    /// nothing of the commit was applied.
    #[error("event key {key:?} of flow {flow:?} already belongs to conversation {conversation}")]
    EventKeyTaken {
        flow: String,
        key: String,
        conversation: ConversationId,
    },
    /// A value could not be encoded (nothing was written).
    #[error("cannot encode {tree}/{key}: {source}")]
    Encode {
        tree: &'static str,
        key: String,
        source: rmp_serde::encode::Error,
    },
    /// A stored key or value is not what this build wrote: corruption, or a write by other
    /// software.
    #[error("corrupt entry {tree}/{key}: {detail}")]
    Decode {
        tree: &'static str,
        key: String,
        detail: String,
    },
    /// I/O or an internal error of sled after opening.
    #[error("store: {0}")]
    Sled(#[from] sled::Error),
    /// A flush did not reach the medium (sled's flush or the `fdatasync` after it failed):
    /// nothing written since the last good flush may be acknowledged.
    #[error("store not durable: {0}")]
    Durability(String),
}

/// A failed transaction: our own abort as it was, or sled's storage error.
impl From<TransactionError<StoreError>> for StoreError {
    fn from(e: TransactionError<StoreError>) -> StoreError {
        match e {
            TransactionError::Abort(e) => e,
            TransactionError::Storage(e) => StoreError::Sled(e),
        }
    }
}

impl StoreError {
    fn decode(tree: &'static str, key: &[u8], detail: impl Into<String>) -> StoreError {
        StoreError::Decode {
            tree,
            key: show_key(key),
            detail: detail.into(),
        }
    }
}

/// A key for error messages: printable ASCII as is, other bytes as `\xNN`.
fn show_key(key: &[u8]) -> String {
    key.escape_ascii().to_string()
}

/// The sled database and its trees. Cloning is cheap (one `Arc`).
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    db: sled::Db,
    /// The only code that flushes (see [`durability`]).
    flusher: durability::Flusher,
    /// For error messages; `<temporary>` for [`Store::temporary`].
    path: PathBuf,
    conversations: sled::Tree,
    party_index: sled::Tree,
    open: sled::Tree,
    timers: sled::Tree,
    timer_index: sled::Tree,
    timeline: sled::Tree,
    ratings: sled::Tree,
    incidents: sled::Tree,
    opt_outs: sled::Tree,
    event_keys: sled::Tree,
    scripts: sled::Tree,
    outbox: sled::Tree,
    last_by_party: sled::Tree,
    inbound: sled::Tree,
    delivery: sled::Tree,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

/// The fields of a stored conversation that index maintenance needs; decoding it skips the
/// script state.
#[derive(Deserialize)]
struct Head {
    flow: String,
    parties: Vec<String>,
    status: ConversationStatus,
    created_at: Millis,
}

/// The 14 trees [`Store::commit`] writes, as one transaction's views.
type Views = (
    TransactionalTree,
    TransactionalTree,
    TransactionalTree,
    TransactionalTree,
    TransactionalTree,
    TransactionalTree,
    TransactionalTree,
    TransactionalTree,
    TransactionalTree,
    TransactionalTree,
    TransactionalTree,
    TransactionalTree,
    TransactionalTree,
    TransactionalTree,
);

type TxResult<T> = Result<T, ConflictableTransactionError<StoreError>>;

fn abort(e: StoreError) -> ConflictableTransactionError<StoreError> {
    ConflictableTransactionError::Abort(e)
}

impl Store {
    /// Creates or opens the store in directory `path`, and records or checks
    /// [`keys::SCHEMA_VERSION`].
    pub fn open(path: impl AsRef<Path>) -> Result<Store, StoreError> {
        let path = path.as_ref();
        let db = sled::Config::new().path(path).open().map_err(|source| {
            // sled 0.34 reports a held lock only as an `Io(Other)` with this text.
            let locked = matches!(&source, sled::Error::Io(e)
                if e.to_string().contains("could not acquire lock"));
            if locked {
                StoreError::Locked {
                    path: path.to_path_buf(),
                    source,
                }
            } else {
                StoreError::Open {
                    path: path.to_path_buf(),
                    source,
                }
            }
        })?;
        Store::from_db(db, path.to_path_buf(), true)
    }

    /// A store in a temporary directory that sled removes when the last handle drops: for
    /// tests and `smsflow check`.
    pub fn temporary() -> Result<Store, StoreError> {
        let db = sled::Config::new().temporary(true).open()?;
        Store::from_db(db, PathBuf::from("<temporary>"), false)
    }

    /// `on_disk`: `path` is sled's directory, whose log the flusher `fdatasync`s.
    fn from_db(db: sled::Db, path: PathBuf, on_disk: bool) -> Result<Store, StoreError> {
        let existing: Vec<sled::IVec> = db.tree_names();
        let meta = db.open_tree(keys::META)?;
        match meta.get(keys::META_SCHEMA_VERSION)? {
            Some(value) => {
                let found = keys::schema_version_from(&value)?;
                if found != keys::SCHEMA_VERSION {
                    return Err(StoreError::SchemaMismatch {
                        found,
                        expected: keys::SCHEMA_VERSION,
                        path,
                    });
                }
            }
            None => {
                // sled always has its default tree; any other tree without a recorded version
                // is data we cannot vouch for.
                let foreign = existing.iter().any(|name| {
                    &name[..] != b"__sled__default" && &name[..] != keys::META.as_bytes()
                });
                if foreign {
                    return Err(StoreError::SchemaMismatch {
                        found: 0,
                        expected: keys::SCHEMA_VERSION,
                        path,
                    });
                }
                meta.insert(
                    keys::META_SCHEMA_VERSION,
                    &keys::schema_version_value(keys::SCHEMA_VERSION)[..],
                )?;
                db.flush()?;
            }
        }
        let inner = Inner {
            conversations: db.open_tree(keys::CONVERSATIONS)?,
            party_index: db.open_tree(keys::PARTY_INDEX)?,
            open: db.open_tree(keys::OPEN)?,
            timers: db.open_tree(keys::TIMERS)?,
            timer_index: db.open_tree(keys::TIMER_INDEX)?,
            timeline: db.open_tree(keys::TIMELINE)?,
            ratings: db.open_tree(keys::RATINGS)?,
            incidents: db.open_tree(keys::INCIDENTS)?,
            opt_outs: db.open_tree(keys::OPT_OUTS)?,
            event_keys: db.open_tree(keys::EVENT_KEYS)?,
            scripts: db.open_tree(keys::SCRIPTS)?,
            outbox: db.open_tree(keys::OUTBOX)?,
            last_by_party: db.open_tree(keys::LAST_BY_PARTY)?,
            inbound: db.open_tree(keys::INBOUND)?,
            delivery: db.open_tree(keys::DELIVERY)?,
            flusher: durability::Flusher::start(db.clone(), on_disk.then_some(path.as_path()))?,
            db,
            path,
        };
        Ok(Store {
            inner: Arc::new(inner),
        })
    }

    /// A new id: monotonic, never 0, and unique across restarts (sled persists its counter
    /// ahead of what it hands out). Not contiguous.
    pub fn next_id(&self) -> Result<u64, StoreError> {
        let id = self.inner.db.generate_id()?;
        // sled counts from 0; 0 stays free as "no id". u64::MAX ids are out of reach.
        Ok(id.saturating_add(1))
    }

    /// Applies everything in `commit` in one sled transaction, or nothing. Values are encoded
    /// and sequence numbers taken before the transaction, so a conflict retry only redoes
    /// the tree operations. Does not flush: see [`Store::flush`].
    pub fn commit(&self, commit: Commit) -> Result<(), StoreError> {
        let prepared = Prepared::new(self, &commit)?;
        let i = &*self.inner;
        let trees = (
            &i.conversations,
            &i.party_index,
            &i.open,
            &i.timers,
            &i.timer_index,
            &i.timeline,
            &i.ratings,
            &i.incidents,
            &i.opt_outs,
            &i.event_keys,
            &i.scripts,
            &i.outbox,
            &i.last_by_party,
            &i.inbound,
        );
        trees
            .transaction(|views| prepared.apply(views))
            .map_err(StoreError::from)
    }

    /// Durability barrier: returns once everything committed before the call is on the
    /// medium (sled's flush, then `fdatasync` of its log). Concurrent callers share one flush
    /// (see [`durability`]); the service acks MOs after it.
    pub async fn flush(&self) -> Result<(), StoreError> {
        self.inner.flusher.flush().await
    }

    /// [`Store::flush`] for callers outside the runtime (shutdown, `report`, tests); blocks
    /// the calling thread.
    pub fn flush_sync(&self) -> Result<(), StoreError> {
        self.inner.flusher.flush_blocking()
    }

    pub fn conversation(&self, id: ConversationId) -> Result<Option<Conversation>, StoreError> {
        let key = keys::conversation(id);
        get(&self.inner.conversations, keys::CONVERSATIONS, &key)
    }

    /// Open conversations in which `msisdn` is a party, most recently created first.
    pub fn open_conversations_of(&self, msisdn: &str) -> Result<Vec<ConversationId>, StoreError> {
        let prefix = keys::party_prefix(msisdn);
        self.inner
            .party_index
            .scan_prefix(&prefix)
            .rev()
            .map(|entry| keys::trailing_u64(keys::PARTY_INDEX, &entry?.0))
            .collect()
    }

    /// Open conversations of `flow` (of every flow for `None`), by id: for metrics and for
    /// keeping old script versions alive.
    pub fn open_conversations(
        &self,
        flow: Option<&str>,
    ) -> Result<Vec<ConversationId>, StoreError> {
        let entries = match flow {
            Some(flow) => self.inner.open.scan_prefix(keys::open_prefix(flow)),
            None => self.inner.open.iter(),
        };
        let mut ids = entries
            .map(|entry| keys::trailing_u64(keys::OPEN, &entry?.0))
            .collect::<Result<Vec<_>, _>>()?;
        if flow.is_none() {
            // Keys sort by flow first.
            ids.sort_unstable();
        }
        Ok(ids)
    }

    /// The conversation's messages in order of commit; an MT message shows its latest status
    /// (queued, sent, delivered, ...).
    pub fn timeline(&self, id: ConversationId) -> Result<Vec<TimelineEntry>, StoreError> {
        let mut entries: Vec<TimelineEntry> = values(
            self.inner.timeline.scan_prefix(keys::conversation(id)),
            keys::TIMELINE,
            usize::MAX,
        )?;
        for entry in &mut entries {
            if let Some(outbox_id) = entry.message_id
                && let Some(status) = self.message_status(outbox_id)?
            {
                entry.status = status;
            }
        }
        Ok(entries)
    }

    /// The conversation's pending timers, by name.
    pub fn timers_of(&self, id: ConversationId) -> Result<Vec<Timer>, StoreError> {
        values(
            self.inner.timer_index.scan_prefix(keys::conversation(id)),
            keys::TIMER_INDEX,
            usize::MAX,
        )
    }

    /// Timers due at or before `now`, earliest first, at most `limit`. They stay until a
    /// commit cancels or replaces them.
    pub fn due_timers(&self, now: Millis, limit: usize) -> Result<Vec<Timer>, StoreError> {
        let entries = match keys::timers_after(now) {
            Some(end) => self.inner.timers.range(..end),
            None => self.inner.timers.iter(),
        };
        values(entries, keys::TIMERS, limit)
    }

    /// When the earliest timer is due, for the service's sleep.
    pub fn next_timer_due(&self) -> Result<Option<Millis>, StoreError> {
        match self.inner.timers.first()? {
            Some((key, _)) => keys::timer_due(&key).map(Some),
            None => Ok(None),
        }
    }

    /// The conversation an HTTP event key of `flow` started.
    pub fn event_conversation(
        &self,
        flow: &str,
        key: &str,
    ) -> Result<Option<ConversationId>, StoreError> {
        get(
            &self.inner.event_keys,
            keys::EVENT_KEYS,
            &keys::event_key(flow, key),
        )
    }

    /// Ratings with `from <= at < to`, by time.
    pub fn ratings(&self, from: Millis, to: Millis) -> Result<Vec<Rating>, StoreError> {
        time_range(&self.inner.ratings, keys::RATINGS, from, to)
    }

    /// Incidents with `from <= at < to`, by time.
    pub fn incidents(&self, from: Millis, to: Millis) -> Result<Vec<Incident>, StoreError> {
        time_range(&self.inner.incidents, keys::INCIDENTS, from, to)
    }

    pub fn is_opted_out(&self, msisdn: &str) -> Result<bool, StoreError> {
        Ok(self.inner.opt_outs.contains_key(msisdn.as_bytes())?)
    }

    /// When the most recent conversation of `flow` with `msisdn` as a party was created
    /// (survey fatigue), open or not.
    pub fn last_conversation_at(
        &self,
        flow: &str,
        msisdn: &str,
    ) -> Result<Option<Millis>, StoreError> {
        get(
            &self.inner.last_by_party,
            keys::LAST_BY_PARTY,
            &keys::last_by_party(flow, msisdn),
        )
    }

    /// The source of a script version kept by a commit.
    pub fn script(&self, flow: &str, version: &str) -> Result<Option<String>, StoreError> {
        get(
            &self.inner.scripts,
            keys::SCRIPTS,
            &keys::script(flow, version),
        )
    }

    /// Messages committed but not yet marked sent, oldest (lowest id) first; the service
    /// drains it and calls [`Store::outbox_done`].
    pub fn outbox(&self, limit: usize) -> Result<Vec<OutMessage>, StoreError> {
        values(self.inner.outbox.iter(), keys::OUTBOX, limit)
    }

    /// [`Store::outbox`] from the message after `after` on: the service reads each message
    /// once and keeps the ones it retries in memory.
    pub fn outbox_after(&self, after: u64, limit: usize) -> Result<Vec<OutMessage>, StoreError> {
        let Some(from) = after.checked_add(1) else {
            return Ok(Vec::new());
        };
        values(
            self.inner.outbox.range(keys::outbox(from)..),
            keys::OUTBOX,
            limit,
        )
    }

    /// How many messages wait in the outbox (counts every entry: for metrics, not hot paths).
    pub fn outbox_len(&self) -> usize {
        self.inner.outbox.len()
    }

    /// Open conversations per flow, by flow name (counts index keys; decodes no values).
    pub fn open_counts(&self) -> Result<Vec<(String, usize)>, StoreError> {
        let mut counts: Vec<(String, usize)> = Vec::new();
        for entry in self.inner.open.iter() {
            let (key, _) = entry?;
            let flow = keys::open_flow(&key)?;
            match counts.last_mut() {
                Some((last, n)) if *last == flow => *n += 1,
                _ => counts.push((flow, 1)),
            }
        }
        Ok(counts)
    }

    /// Removes messages from the outbox, atomically. Unknown ids are ignored.
    pub fn outbox_done(&self, ids: &[u64]) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        for &id in ids {
            batch.remove(&keys::outbox(id)[..]);
        }
        self.inner.outbox.apply_batch(batch)?;
        Ok(())
    }
}

impl Store {
    // --- SMPP bookkeeping: MO redelivery, stored parts, sent messages ------------------------

    /// Whether a step already stored this deliver_sm ([`keys::mo`]) while its response may
    /// not have reached the SMSC: a redelivery, to acknowledge without processing again.
    pub fn mo_seen(&self, key: &[u8]) -> Result<bool, StoreError> {
        Ok(self.inner.inbound.contains_key(key)?)
    }

    /// The deliver_sm_resp of a marked MO is on its way: forget the mark, so the same text
    /// sent again later (a second "OK") is a new message.
    pub fn mo_acknowledged(&self, key: &[u8]) -> Result<(), StoreError> {
        self.inner.inbound.remove(key)?;
        Ok(())
    }

    /// Removes MO marks made before `before` (left by a crash between a step and its
    /// response; the SMSC redelivers within minutes, so old marks only stand in the way).
    pub fn sweep_mo_marks(&self, before: Millis) -> Result<usize, StoreError> {
        let mut removed = 0;
        for entry in self.inner.inbound.scan_prefix(keys::MO_PREFIX) {
            let (key, value) = entry?;
            let at: Millis = keys::decode(keys::INBOUND, &key, &value)?;
            if at < before {
                self.inner.inbound.remove(key)?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Keeps a part of a concatenated MO until its message is complete (then the step that
    /// consumes it removes it, see [`MoRecord::parts`]). Not flushed.
    pub fn put_part(&self, part: &Part) -> Result<Vec<u8>, StoreError> {
        let key = keys::part(&part_message_key(part), part.concat.seq);
        let value = keys::encode(keys::INBOUND, &key, part)?;
        self.inner.inbound.insert(&key[..], value)?;
        Ok(key)
    }

    /// Every stored part, for the reassembler after a restart.
    pub fn parts(&self) -> Result<Vec<Part>, StoreError> {
        values(
            self.inner.inbound.scan_prefix(keys::PART_PREFIX),
            keys::INBOUND,
            usize::MAX,
        )
    }

    pub fn remove_parts(&self, part_keys: &[Vec<u8>]) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        for key in part_keys {
            batch.remove(&key[..]);
        }
        self.inner.inbound.apply_batch(batch)?;
        Ok(())
    }
}

fn part_message_key(part: &Part) -> crate::smpp::concat::MessageKey {
    crate::smpp::concat::MessageKey {
        source: part.source.clone(),
        destination: part.destination.clone(),
        reference: part.concat.reference,
        total: part.concat.total,
    }
}

fn get<T: serde::de::DeserializeOwned>(
    tree: &sled::Tree,
    name: &'static str,
    key: &[u8],
) -> Result<Option<T>, StoreError> {
    match tree.get(key)? {
        Some(value) => keys::decode(name, key, &value).map(Some),
        None => Ok(None),
    }
}

fn values<T: serde::de::DeserializeOwned>(
    entries: sled::Iter,
    name: &'static str,
    limit: usize,
) -> Result<Vec<T>, StoreError> {
    entries
        .take(limit)
        .map(|entry| {
            let (key, value) = entry?;
            keys::decode(name, &key, &value)
        })
        .collect()
}

fn time_range<T: serde::de::DeserializeOwned>(
    tree: &sled::Tree,
    name: &'static str,
    from: Millis,
    to: Millis,
) -> Result<Vec<T>, StoreError> {
    if from >= to {
        return Ok(Vec::new());
    }
    values(
        tree.range(keys::time(from)..keys::time(to)),
        name,
        usize::MAX,
    )
}

/// A [`Commit`] encoded into keys and values, ready to apply (possibly more than once, when
/// sled retries a conflicting transaction).
/// Encodes each item of one table for a commit: its key (which may take a fresh id) and its
/// value, before the transaction starts.
fn encode_each<'a, T, K: AsRef<[u8]>, V: serde::Serialize + ?Sized + 'a>(
    tree: &'static str,
    items: &'a [T],
    key: impl Fn(&'a T) -> Result<K, StoreError>,
    value: impl Fn(&'a T) -> &'a V,
) -> Result<Vec<(K, Vec<u8>)>, StoreError> {
    items
        .iter()
        .map(|item| {
            let k = key(item)?;
            let v = keys::encode(tree, k.as_ref(), value(item))?;
            Ok((k, v))
        })
        .collect()
}

struct Prepared<'c> {
    conversation: Option<PreparedConversation<'c>>,
    /// (conversation, name, [`keys::TIMER_INDEX`] key)
    timers_cancelled: Vec<(ConversationId, &'c str, Vec<u8>)>,
    timers_set: Vec<PreparedTimer<'c>>,
    timeline: Vec<([u8; 16], Vec<u8>)>,
    outbox: Vec<([u8; 8], Vec<u8>)>,
    ratings: Vec<([u8; 24], Vec<u8>)>,
    incidents: Vec<([u8; 24], Vec<u8>)>,
    opt_outs: &'c [String],
    opt_ins: &'c [String],
    event_key: Option<PreparedEventKey<'c>>,
    /// (key, encoded source)
    script: Option<(Vec<u8>, Vec<u8>)>,
    mo: Option<&'c MoRecord>,
    /// When the MO was marked, encoded.
    mo_at: Vec<u8>,
}

struct PreparedTimer<'c> {
    timer: &'c Timer,
    /// [`keys::TIMER_INDEX`] key.
    index: Vec<u8>,
    /// [`keys::TIMERS`] key.
    key: Vec<u8>,
    /// The encoded timer, the value in both trees.
    value: Vec<u8>,
}

struct PreparedEventKey<'c> {
    flow: &'c str,
    event: &'c str,
    conversation: ConversationId,
    key: Vec<u8>,
    /// The encoded conversation id.
    value: Vec<u8>,
}

struct PreparedConversation<'c> {
    conversation: &'c Conversation,
    key: [u8; 8],
    value: Vec<u8>,
    /// `created_at`, encoded for `last_by_party`.
    created_at: Vec<u8>,
}

impl<'c> Prepared<'c> {
    fn new(store: &Store, commit: &'c Commit) -> Result<Prepared<'c>, StoreError> {
        let mo_marked_at = commit.conversation.as_ref().map_or(0, |c| c.updated_at);
        let conversation = match &commit.conversation {
            Some(c) => {
                let key = keys::conversation(c.id);
                Some(PreparedConversation {
                    conversation: c,
                    key,
                    value: keys::encode(keys::CONVERSATIONS, &key, c)?,
                    created_at: keys::encode(keys::LAST_BY_PARTY, &key, &c.created_at)?,
                })
            }
            None => None,
        };
        let timers_set = commit
            .timers_set
            .iter()
            .map(|t| {
                let index = keys::timer_index(t.conversation, &t.name);
                let value = keys::encode(keys::TIMER_INDEX, &index, t)?;
                let key = keys::timer(t.due, t.conversation, &t.name);
                Ok(PreparedTimer {
                    timer: t,
                    index,
                    key,
                    value,
                })
            })
            .collect::<Result<_, StoreError>>()?;
        let timeline = encode_each(
            keys::TIMELINE,
            &commit.timeline,
            |(id, _)| Ok(keys::timeline(*id, store.next_id()?)),
            |(_, entry)| entry,
        )?;
        let outbox = encode_each(
            keys::OUTBOX,
            &commit.outbox,
            |m| Ok(keys::outbox(m.id)),
            |m| m,
        )?;
        let ratings = encode_each(
            keys::RATINGS,
            &commit.ratings,
            |r| Ok(keys::by_time(r.at, r.conversation, store.next_id()?)),
            |r| r,
        )?;
        let incidents = encode_each(
            keys::INCIDENTS,
            &commit.incidents,
            |r| Ok(keys::by_time(r.at, r.conversation, store.next_id()?)),
            |r| r,
        )?;
        let event_key = match &commit.event_key {
            Some((flow, key, id)) => {
                let k = keys::event_key(flow, key);
                let value = keys::encode(keys::EVENT_KEYS, &k, id)?;
                Some(PreparedEventKey {
                    flow,
                    event: key,
                    conversation: *id,
                    key: k,
                    value,
                })
            }
            None => None,
        };
        let script = match &commit.script {
            Some((flow, version, source)) => {
                let key = keys::script(flow, version);
                let value = keys::encode(keys::SCRIPTS, &key, source)?;
                Some((key, value))
            }
            None => None,
        };
        Ok(Prepared {
            conversation,
            timers_cancelled: commit
                .timers_cancelled
                .iter()
                .map(|(id, name)| (*id, name.as_str(), keys::timer_index(*id, name)))
                .collect(),
            timers_set,
            timeline,
            outbox,
            ratings,
            incidents,
            opt_outs: &commit.opt_outs,
            opt_ins: &commit.opt_ins,
            event_key,
            script,
            mo: commit.mo.as_ref(),
            mo_at: keys::encode(keys::INBOUND, keys::MO_PREFIX, &mo_marked_at)?,
        })
    }

    /// The transaction body. Plain writes come before the writes that depend on reads, so a
    /// failing read aborts a transaction that has already staged writes (which the tests
    /// check leaves nothing behind).
    fn apply(&self, views: &Views) -> TxResult<()> {
        let (
            conversations,
            party_index,
            open,
            timers,
            timer_index,
            timeline,
            ratings,
            incidents,
            opt_outs,
            event_keys,
            scripts,
            outbox,
            last_by_party,
            inbound,
        ) = views;

        if let Some(mo) = self.mo {
            for key in &mo.pending_ack {
                inbound.insert(&key[..], &self.mo_at[..])?;
            }
            for key in &mo.parts {
                inbound.remove(&key[..])?;
            }
        }

        if let Some(p) = &self.conversation {
            let c = p.conversation;
            let old: Option<Head> = match conversations.get(p.key)? {
                Some(v) => Some(keys::decode(keys::CONVERSATIONS, &p.key, &v).map_err(abort)?),
                None => None,
            };
            conversations.insert(&p.key[..], &p.value[..])?;

            // Index entries of the old and the new version; only the difference is written.
            let index_of = |flow: &str, parties: &[String], open: bool, created_at: Millis| {
                let party_keys: Vec<Vec<u8>> = if open {
                    parties
                        .iter()
                        .map(|m| keys::party(m, created_at, c.id))
                        .collect()
                } else {
                    Vec::new()
                };
                (party_keys, open.then(|| keys::open(flow, c.id)))
            };
            let (old_parties, old_open) = match &old {
                Some(h) => index_of(&h.flow, &h.parties, h.status.is_open(), h.created_at),
                None => (Vec::new(), None),
            };
            let (new_parties, new_open) =
                index_of(&c.flow, &c.parties, c.status.is_open(), c.created_at);
            for key in old_parties.iter().filter(|k| !new_parties.contains(k)) {
                party_index.remove(&key[..])?;
            }
            for key in new_parties.iter().filter(|k| !old_parties.contains(k)) {
                party_index.insert(&key[..], &[][..])?;
            }
            if old_open != new_open {
                if let Some(key) = old_open {
                    open.remove(key)?;
                }
                if let Some(key) = new_open {
                    open.insert(key, &[][..])?;
                }
            }

            // Survey fatigue: only parties new to this conversation can move it forward.
            let unchanged = |h: &Head| h.flow == c.flow && h.created_at == c.created_at;
            for msisdn in &c.parties {
                if old
                    .as_ref()
                    .is_some_and(|h| unchanged(h) && h.parties.contains(msisdn))
                {
                    continue;
                }
                let key = keys::last_by_party(&c.flow, msisdn);
                let newer = match last_by_party.get(&key)? {
                    Some(v) => {
                        let last: Millis =
                            keys::decode(keys::LAST_BY_PARTY, &key, &v).map_err(abort)?;
                        c.created_at > last
                    }
                    None => true,
                };
                if newer {
                    last_by_party.insert(key, &p.created_at[..])?;
                }
            }
        }

        for (key, value) in &self.timeline {
            timeline.insert(&key[..], &value[..])?;
        }
        for (key, value) in &self.outbox {
            outbox.insert(&key[..], &value[..])?;
        }
        for (key, value) in &self.ratings {
            ratings.insert(&key[..], &value[..])?;
        }
        for (key, value) in &self.incidents {
            incidents.insert(&key[..], &value[..])?;
        }
        for msisdn in self.opt_ins {
            opt_outs.remove(msisdn.as_bytes())?;
        }
        for msisdn in self.opt_outs {
            opt_outs.insert(msisdn.as_bytes(), &[][..])?;
        }

        for (conversation, name, index) in &self.timers_cancelled {
            if let Some(old) = timer_index.remove(&index[..])? {
                let old: Timer = keys::decode(keys::TIMER_INDEX, index, &old).map_err(abort)?;
                timers.remove(keys::timer(old.due, *conversation, name))?;
            }
        }
        for PreparedTimer {
            timer,
            index,
            key,
            value,
        } in &self.timers_set
        {
            if let Some(old) = timer_index.get(index)? {
                let old: Timer = keys::decode(keys::TIMER_INDEX, index, &old).map_err(abort)?;
                if old.due != timer.due {
                    timers.remove(keys::timer(old.due, timer.conversation, &timer.name))?;
                }
            }
            timers.insert(&key[..], &value[..])?;
            timer_index.insert(&index[..], &value[..])?;
        }

        if let Some(PreparedEventKey {
            flow,
            event,
            conversation: id,
            key,
            value,
        }) = &self.event_key
        {
            if let Some(existing) = event_keys.get(key)? {
                let existing: ConversationId =
                    keys::decode(keys::EVENT_KEYS, key, &existing).map_err(abort)?;
                if existing != *id {
                    return Err(abort(StoreError::EventKeyTaken {
                        flow: flow.to_string(),
                        key: event.to_string(),
                        conversation: existing,
                    }));
                }
            } else {
                event_keys.insert(&key[..], &value[..])?;
            }
        }
        if let Some((key, value)) = &self.script
            && scripts.get(key)?.is_none()
        {
            scripts.insert(&key[..], &value[..])?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
