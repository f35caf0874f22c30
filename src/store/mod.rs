//! The durable state of smsflow: conversations, their timelines and timers, the outbox,
//! ratings, incidents, opt-outs, idempotency keys and script versions; and what the service
//! keeps about SMPP traffic: MOs whose response may not have reached the SMSC, parts of
//! concatenated MOs, and which SMSC id belongs to which sent message.
//!
//! [`Store`] is a typed facade: callers see the types in [`types`] and never sled's bytes.
//! Inside, one design (`../shared/STORAGE.md`; TigerBeetle's, STYLE.md §5):
//!
//! - **State in memory** (`state.rs`): a step applies at once to the hot tables (open
//!   conversations, party index, timers, outbox, ...), so reads on the hot path touch no
//!   sled, and becomes a log record (`log.rs`).
//! - **One writer thread** (`writer.rs`) is the only code that writes sled or flushes it: per
//!   group commit it writes every waiting record as one log key, flushes, `fdatasync`s and
//!   answers every waiter. [`Store::flush`] is that barrier; the service acks MOs and answers
//!   HTTP events after it.
//! - **Checkpoints** (`checkpoint.rs`): the same thread writes what changed since the last
//!   one as one atomic batch, each key once however many steps touched it, and prunes the
//!   log behind it. A restart loads the checkpoint and replays the log after it.
//!
//! Everything one step changes goes in one [`Commit`]: applied whole or not at all, and on
//! disk as one record, so a crash never leaves half a step behind. What the store does not
//! do: read a clock (every time is an argument) or decide anything about flows. A corrupted
//! value is a [`StoreError::Decode`] naming the tree and key, never a panic.

pub mod audit_tally;
pub mod backup;
mod calls;
mod checkpoint;
mod damage;
mod delivery;
pub mod export;
pub mod find;
mod keys;
mod log;
mod open;
pub mod query;
mod seal;
mod state;
pub mod tally;
pub mod types;
mod v1;
mod verify;
mod writer;

pub use delivery::{PartState, ReceiptApplied};
pub use keys::SCHEMA_VERSION;
pub use seal::{Damage, FILE as SEAL_FILE};
pub use types::*;
pub use verify::Verified;

use std::fmt;
use std::mem::ManuallyDrop;
use std::path::PathBuf;

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use log::Record;
use state::{Applied, State};

/// Log bytes the writer may be behind before steps are refused ([`StoreError::Overloaded`]):
/// a stalled disk becomes back-pressure, never unbounded memory.
pub const MAX_UNWRITTEN: usize = 64 << 20;

/// Records kept in hourly chunks, and how a time-range read takes them.
struct Chunked<T: 'static> {
    /// What they are, for messages.
    name: &'static str,
    /// Chunk tags to read (ratings with and without a comment are chunked apart).
    tags: &'static [u8],
    of_layer: fn(&state::Layer) -> &Vec<T>,
    keep: fn(&T) -> bool,
    order: fn(&T) -> (Millis, ConversationId),
}

const RATINGS: Chunked<Rating> = Chunked {
    name: "ratings",
    tags: &[keys::RATINGS, keys::COMMENTED],
    of_layer: |l| &l.ratings,
    keep: |_| true,
    order: |r| (r.at, r.conversation),
};

const COMMENTED: Chunked<Rating> = Chunked {
    name: "ratings with a comment",
    tags: &[keys::COMMENTED],
    keep: |r| has_comment(r),
    ..RATINGS
};

const INCIDENTS: Chunked<Incident> = Chunked {
    name: "incidents",
    tags: &[keys::INCIDENTS],
    of_layer: |l| &l.incidents,
    keep: |_| true,
    order: |i| (i.at, i.conversation),
};

/// Whether a rating goes to the commented chunks.
fn has_comment(r: &Rating) -> bool {
    !r.comment.trim().is_empty()
}

/// sled's page cache: the checkpointed tables (reports, closed conversations); the hot state
/// is ours.
const SLED_CACHE_BYTES: u64 = 64 << 20;

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
    /// The store was written with another layout ([`SCHEMA_VERSION`]); `found` is 0
    /// when it has data but records no version.
    #[error(
        "store {} has schema version {found} but this smsflow reads version {expected} (and \
         migrates version 1); use the matching smsflow or a new service.data_dir",
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
    /// The store recovered less than it had made durable, has a hole in its log, or cannot
    /// be read at all: disk damage, most likely (see `seal.rs`). Nothing was opened;
    /// [`Store::open_in_accepting_loss`] opens what is left where there is something.
    #[error("{}", damage.message(path))]
    DataLoss { path: PathBuf, damage: Damage },
    /// A read met damage after the store opened (`detail`: what failed), or a step came
    /// after that: the store takes no more steps until a restore (see `damage.rs`).
    #[error("{}", damage::message(path, detail))]
    Damaged { path: PathBuf, detail: String },
    /// I/O or an internal error of sled after opening.
    #[error("store: {0}")]
    Sled(#[from] sled::Error),
    /// A flush did not reach the medium (the log write, sled's flush or the `fdatasync`
    /// after it failed): nothing since the last good flush may be acknowledged, and the store
    /// takes no more writes until a restart replays its log.
    #[error("store not durable: {0}")]
    Durability(String),
    /// The writer is behind by more than [`MAX_UNWRITTEN`] bytes of log (a stalled disk):
    /// the step was not applied; try again shortly (HTTP answers 503 with `Retry-After`, an
    /// MO is left for the SMSC to redeliver).
    #[error("store overloaded: {0} bytes of steps wait for the disk; try again shortly")]
    Overloaded(usize),
    /// The disk has less room than `[service] min_free_space`: nothing more is written, and
    /// new steps are refused, until there is room again (then everything waiting is written,
    /// with no restart). HTTP answers 503 with `Retry-After`; an MO is left for the SMSC to
    /// redeliver.
    #[error("{0}; try again once there is room")]
    DiskFull(String),
}

impl StoreError {
    pub(crate) fn decode(tree: &'static str, key: &[u8], detail: impl Into<String>) -> StoreError {
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

/// The store. Cloning is cheap (one `Arc`); every clone is the same store.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    /// Stopped first (see `Drop`): its thread writes what is left and lets go of sled.
    writer: writer::Writer,
    state: Arc<Mutex<State>>,
    /// Closed in `Drop`, within [`CLOSE_LIMIT`].
    db: ManuallyDrop<sled::Db>,
    /// The checkpointed tables (read for what is not hot).
    cold: ManuallyDrop<sled::Tree>,
    /// For error messages; `<temporary>` for [`Store::temporary`].
    path: PathBuf,
    /// Bytes the writer keeps free on the disk (see [`Store::set_min_free_space`]).
    reserve: Arc<std::sync::atomic::AtomicU64>,
    /// Damage found after opening (`damage.rs`); the writer marks it too.
    damage: Arc<damage::Watch>,
}

/// How long closing sled may take before it is left to the process's exit. sled flushes
/// when its last handle goes, and after a failed write (a full disk) that flush waits for a
/// buffer that never becomes stable: without a bound, `smsflow run` would never end.
const CLOSE_LIMIT: Duration = Duration::from_secs(5);

impl Drop for Inner {
    fn drop(&mut self) {
        self.writer.stop();
        // SAFETY: `db` and `cold` are taken once, here, and not used after: `self` is being
        // dropped and no other code runs on it.
        let sled = unsafe {
            (
                ManuallyDrop::take(&mut self.db),
                ManuallyDrop::take(&mut self.cold),
            )
        };
        let (done_tx, done) = std::sync::mpsc::channel();
        let closing = std::thread::Builder::new()
            .name("smsflow-store-close".into())
            .spawn(move || {
                drop(sled);
                let _ = done_tx.send(());
            });
        if closing.is_ok() && done.recv_timeout(CLOSE_LIMIT).is_err() {
            tracing::error!(
                path = %self.path.display(),
                "sled did not close within {CLOSE_LIMIT:?} (after a failed write it never \
                 does); leaving it to the process's exit: the store's log and seal already \
                 hold every acknowledged step"
            );
        }
    }
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

/// The state's lock. No lock is held across an `.await` or a sled write; a poisoned lock
/// (a panic while applying) still holds a consistent state, since applying changes nothing
/// until its checks passed.
fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

impl Store {
    /// Every conversation's id, from the creation-time index (linear in the store: for
    /// recounts, exports and checks, not for a hot path).
    pub fn conversation_ids(&self) -> Result<Vec<ConversationId>, StoreError> {
        self.read(|| "the creation-time index".into(), || self.ids_created())
    }

    fn ids_created(&self) -> Result<Vec<ConversationId>, StoreError> {
        let prefix = [keys::CREATED];
        let pending = self.state().pending(None, None, Some(&prefix));
        let mut ids = std::collections::BTreeSet::new();
        for entry in self.inner.cold.scan_prefix(prefix) {
            ids.insert(keys::trailing_u64(&entry?.0)?);
        }
        let layered = (pending.layers.iter()).flat_map(|l| state::created_keys(l, &prefix));
        for key in layered.chain(pending.dirty_created) {
            ids.insert(keys::trailing_u64(&key)?);
        }
        Ok(ids.into_iter().collect())
    }

    /// The CSI tallies of every flow from local day `from` to `to` (inclusive), in the zone
    /// [`Store::tally_zone`] names.
    pub fn tallies(
        &self,
        from: jiff::civil::Date,
        to: jiff::civil::Date,
    ) -> Vec<(tally::TallyKey, tally::Tally)> {
        self.state().tallies(from, to)
    }

    /// The service quality audit's tallies of the quarter hours that begin in `[from, to)`
    /// (see `audit_tally.rs`).
    pub fn audit_tallies(
        &self,
        from: Millis,
        to: Millis,
    ) -> Vec<(audit_tally::AuditKey, audit_tally::AuditTally)> {
        self.state().audit.range(from, to)
    }

    /// The zone the tallies' days are in (its IANA name).
    pub fn tally_zone(&self) -> String {
        tally::zone_name(self.state().zone())
    }

    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.inner.state)
    }

    /// Whether the disk lacks the room `min_free_space` asks for (new steps are refused).
    pub fn disk_full(&self) -> bool {
        self.state().disk_full.is_some()
    }

    /// Whether `e` is the disk being full: worth no ERROR line each time (the store says it
    /// once), and nothing is lost by it.
    pub fn is_disk_full(e: &StoreError) -> bool {
        matches!(e, StoreError::DiskFull(_))
    }

    /// Keeps `bytes` free on the disk of the store: with less room than that the writer
    /// writes nothing and new steps are refused ([`StoreError::DiskFull`]) until there is
    /// room again. 0 (the default) checks nothing.
    pub fn set_min_free_space(&self, bytes: u64) {
        (self.inner.reserve).store(bytes, std::sync::atomic::Ordering::Relaxed);
    }

    /// Applies `record` and logs it, or nothing (a damaged store takes none).
    fn write(&self, record: Record) -> Result<Applied, StoreError> {
        self.refuse_if_damaged()?;
        let mut encoded = Vec::new();
        log::append(&mut encoded, &record)?;
        let mut state = self.state();
        if let Some(failed) = &state.failed {
            return Err(StoreError::Durability(failed.clone()));
        }
        // A full disk refuses new steps; what records the fate of messages already out
        // (submit outcomes, receipts) still goes in, so nothing is sent twice later.
        if let (Some(full), Record::Commit(_)) = (&state.disk_full, &record) {
            return Err(StoreError::DiskFull(full.clone()));
        }
        if state.log.len() > MAX_UNWRITTEN {
            return Err(StoreError::Overloaded(state.log.len()));
        }
        let applied = state.apply(&record);
        if applied.is_ok() {
            state.log.extend_from_slice(&encoded);
        }
        drop(state);
        // A page the step had to read may be damaged.
        self.notice(|| "what a step updates".into(), applied)
    }

    /// A new id for a conversation or an outbox message: never 0, above every id handed out
    /// before, and dense across a clean restart.
    ///
    /// Every checkpoint keeps the last id handed out (the state key `n`); a restart
    /// continues one past it and past every id the replayed log holds. After a clean stop,
    /// whose last checkpoint covers everything, the next id is the one after the last. After
    /// a crash no id is handed out again that a durable record holds or that was handed out
    /// before the last checkpoint on disk; what can come again is an id taken since, by a
    /// step that never became durable. Nothing on disk holds it and nothing sent it out of
    /// the process (an HTTP event is answered, and a message submitted, only once its step
    /// is durable): only a read of the lost step in the moment before its flush, or a log
    /// line, saw it.
    ///
    /// A store checkpointed before the mark existed took its ids from sled's counter, which
    /// restarts 2 000 000 above its last persisted value (twice sled's persist interval):
    /// the "jump to 2000001 after a restart". It continues above that counter once. sled's
    /// counter is still advanced with every id, so an older smsflow (which takes sled's)
    /// opening the store again cannot hand out an id this one did.
    pub fn next_id(&self) -> Result<u64, StoreError> {
        self.inner.db.generate_id()?;
        Ok(self.state().take_id())
    }

    /// Applies everything in `commit` at once, or nothing (an event key taken by another
    /// conversation, an overloaded or failed store). Visible to reads at once; durable after
    /// the next [`Store::flush`].
    pub fn commit(&self, commit: Commit) -> Result<(), StoreError> {
        self.write(Record::Commit(commit)).map(|_| ())
    }

    /// Durability barrier: returns once everything committed before the call is on the
    /// medium (one log write, sled's flush, `fdatasync`). Concurrent callers share one group
    /// commit (see `writer.rs`).
    pub async fn flush(&self) -> Result<(), StoreError> {
        self.inner.writer.flush().await
    }

    /// [`Store::flush`] for callers outside the runtime (shutdown, `report`, tests); blocks
    /// the calling thread.
    pub fn flush_sync(&self) -> Result<(), StoreError> {
        self.inner.writer.flush_blocking()
    }

    /// Stops as a killed process would, for crash simulations and tests: what no flush made
    /// durable yet is lost (a group the writer is writing may or may not reach the disk),
    /// nothing more is written, and no final checkpoint either. Every handle refuses writes
    /// from now on; reopen the directory (once the last handle is dropped) to recover.
    pub fn simulate_crash(&self) {
        {
            let mut state = self.state();
            state.log.clear();
            state.failed = Some("the process crashed (simulated)".into());
        }
        self.inner.writer.crash();
    }

    /// Writes a checkpoint of everything committed so far and prunes the log behind it;
    /// returns once that is durable. The writer does this on its own every few thousand
    /// steps or half second; this is for tools (a bulk load, a backup) and tests.
    pub fn checkpoint(&self) -> Result<(), StoreError> {
        self.inner.writer.checkpoint_blocking()
    }

    pub fn conversation(&self, id: ConversationId) -> Result<Option<Conversation>, StoreError> {
        let record = self.read(|| format!("conversation {id}"), || self.state().record(id))?;
        Ok(record.map(|r| r.conversation))
    }

    /// Open conversations in which `msisdn` is a party, most recently created first.
    pub fn open_conversations_of(&self, msisdn: &str) -> Result<Vec<ConversationId>, StoreError> {
        Ok(self.state().open_conversations_of(msisdn))
    }

    /// Open conversations of `flow` (of every flow for `None`), by id: for metrics and for
    /// keeping old script versions alive.
    pub fn open_conversations(
        &self,
        flow: Option<&str>,
    ) -> Result<Vec<ConversationId>, StoreError> {
        Ok(self.state().open_conversations(flow))
    }

    /// Open conversations per flow, by flow name.
    pub fn open_counts(&self) -> Result<Vec<(String, usize)>, StoreError> {
        Ok(self.state().open_counts())
    }

    /// The calls not over yet (their conversation open, its incident ringing or taken), with
    /// where each is, newest first: from memory, then each record read.
    pub fn open_calls(&self) -> Result<Vec<(Conversation, IncidentState)>, StoreError> {
        let mut heads = self.state().open_calls();
        heads.sort_unstable_by_key(|&(at, id, _)| std::cmp::Reverse((at, id)));
        let mut calls = Vec::with_capacity(heads.len());
        for (_, id, state) in heads {
            if let Some(c) = self.conversation(id)? {
                calls.push((c, state));
            }
        }
        Ok(calls)
    }

    /// How many calls ring, and how many are taken but not resolved.
    pub fn open_call_counts(&self) -> (usize, usize) {
        let calls = self.state().open_calls();
        let ringing = (calls.iter())
            .filter(|(_, _, s)| *s == IncidentState::Ringing)
            .count();
        (ringing, calls.len() - ringing)
    }

    /// The conversation's messages in order of commit; an MT message shows its latest status
    /// (queued, sent, delivered, ...).
    pub fn timeline(&self, id: ConversationId) -> Result<Vec<TimelineEntry>, StoreError> {
        let what = || format!("the timeline of conversation {id}");
        self.read(what, || self.timeline_of(id))
    }

    fn timeline_of(&self, id: ConversationId) -> Result<Vec<TimelineEntry>, StoreError> {
        let pending = self.state().pending(Some(id), None, None);
        let mut entries: Vec<TimelineEntry> = Vec::new();
        for entry in self.inner.cold.scan_prefix(keys::timeline_prefix(id)) {
            let (key, value) = entry?;
            if keys::trailing_u64(&key)? <= pending.horizon {
                let chunk: Vec<TimelineEntry> = keys::decode(keys::STATE, &key, &value)?;
                entries.extend(chunk);
            }
        }
        for layer in &pending.layers {
            entries.extend(layer.timeline.get(&id).into_iter().flatten().cloned());
        }
        entries.extend(pending.dirty_timeline);
        let state = self.state();
        for entry in &mut entries {
            if let Some(outbox_id) = entry.message_id
                && let Some(status) = state.message_status(outbox_id)?
            {
                entry.status = TimelineStatus::Message(status);
            }
        }
        Ok(entries)
    }

    /// The conversation's pending timers, by name.
    pub fn timers_of(&self, id: ConversationId) -> Result<Vec<Timer>, StoreError> {
        Ok(self.state().timers_of(id))
    }

    /// Timers due at or before `now`, earliest first, at most `limit`. They stay until a
    /// commit cancels or replaces them. None once the store is damaged: their steps could
    /// not be stored.
    pub fn due_timers(&self, now: Millis, limit: usize) -> Result<Vec<Timer>, StoreError> {
        if self.is_damaged() {
            return Ok(Vec::new());
        }
        Ok(self.state().due_timers(now, limit))
    }

    /// When the earliest timer is due, for the service's sleep.
    pub fn next_timer_due(&self) -> Result<Option<Millis>, StoreError> {
        if self.is_damaged() {
            return Ok(None);
        }
        Ok(self.state().next_timer_due())
    }

    /// The conversation an HTTP event key of `flow` started.
    pub fn event_conversation(
        &self,
        flow: &str,
        key: &str,
    ) -> Result<Option<ConversationId>, StoreError> {
        let what = || format!("event key {key:?} of flow {flow:?}");
        self.read(what, || self.state().lookup(&keys::event_key(flow, key)))
    }

    /// Ratings with `from <= at < to`, by time, then conversation, then commit order.
    pub fn ratings(&self, from: Millis, to: Millis) -> Result<Vec<Rating>, StoreError> {
        self.time_range(&RATINGS, from, to, |p| p.dirty_ratings)
    }

    /// [`Store::ratings`] with a comment: what comment analysis reads, without decoding the
    /// (many more) ratings that have none.
    pub fn commented_ratings(&self, from: Millis, to: Millis) -> Result<Vec<Rating>, StoreError> {
        self.time_range(&COMMENTED, from, to, |p| p.dirty_ratings)
    }

    /// Incidents with `from <= at < to`, by time, then conversation, then commit order.
    pub fn incidents(&self, from: Millis, to: Millis) -> Result<Vec<Incident>, StoreError> {
        self.time_range(&INCIDENTS, from, to, |p| p.dirty_incidents)
    }

    /// The chunks of `what` whose hours meet `[from, to)`, then the layers', filtered and in
    /// order (time first; stable, so equal keys stay in commit order).
    fn time_range<T: Clone + serde::de::DeserializeOwned>(
        &self,
        what: &Chunked<T>,
        from: Millis,
        to: Millis,
        of_dirty: impl FnOnce(state::Pending) -> Vec<T>,
    ) -> Result<Vec<T>, StoreError> {
        if from >= to {
            return Ok(Vec::new());
        }
        let reading = || format!("the {} from {from} to {to} ms", what.name);
        self.read(reading, || self.chunks_of(what, from, to, of_dirty))
    }

    fn chunks_of<T: Clone + serde::de::DeserializeOwned>(
        &self,
        what: &Chunked<T>,
        from: Millis,
        to: Millis,
        of_dirty: impl FnOnce(state::Pending) -> Vec<T>,
    ) -> Result<Vec<T>, StoreError> {
        let wanted = |x: &T| (from..to).contains(&(what.order)(x).0) && (what.keep)(x);
        let pending = self.state().pending(None, Some((from, to)), None);
        let mut out = Vec::new();
        for &tag in what.tags {
            let start = keys::chunk_from(tag, keys::hour(from));
            let end = keys::chunk(tag, keys::hour(to - 1), u64::MAX);
            for entry in self.inner.cold.range(start..=end) {
                let (key, value) = entry?;
                if keys::trailing_u64(&key)? <= pending.horizon {
                    let chunk: Vec<T> = keys::decode(keys::STATE, &key, &value)?;
                    out.extend(chunk.into_iter().filter(wanted));
                }
            }
        }
        for layer in &pending.layers {
            out.extend((what.of_layer)(layer).iter().filter(|x| wanted(x)).cloned());
        }
        out.extend(of_dirty(pending).into_iter().filter(wanted));
        out.sort_by_key(|x| (what.order)(x));
        Ok(out)
    }

    pub fn is_opted_out(&self, msisdn: &str) -> Result<bool, StoreError> {
        Ok(self.state().is_opted_out(msisdn))
    }

    /// When the most recent conversation of `flow` with `msisdn` as a party was created
    /// (survey fatigue), open or not.
    pub fn last_conversation_at(
        &self,
        flow: &str,
        msisdn: &str,
    ) -> Result<Option<Millis>, StoreError> {
        let what = || format!("the last conversation of flow {flow:?} with a party");
        self.read(what, || {
            self.state().lookup(&keys::last_by_party(flow, msisdn))
        })
    }

    /// The source of a script version kept by a commit.
    /// The version of `flow` that last passed its tests and went live, with its source: what
    /// runs when the file on disk fails its tests at start (durable after the next flush).
    pub fn live_script(&self, flow: &str) -> Result<Option<(String, String)>, StoreError> {
        Ok(self.state().live_script(flow))
    }

    /// Records that `version` of `flow` (with `source`) passed its tests and runs.
    pub fn set_live_script(
        &self,
        flow: &str,
        version: &str,
        source: &str,
    ) -> Result<(), StoreError> {
        if self
            .state()
            .live_script(flow)
            .is_some_and(|(v, _)| v == version)
        {
            return Ok(());
        }
        self.write(Record::ScriptLive {
            flow: flow.to_owned(),
            version: version.to_owned(),
            source: source.to_owned(),
        })
        .map(|_| ())
    }

    pub fn script(&self, flow: &str, version: &str) -> Result<Option<String>, StoreError> {
        Ok(self.state().script(flow, version))
    }

    /// Messages committed but not yet taken out, oldest (lowest id) first; the service
    /// drains it and calls [`Store::outbox_finished`]. None once the store is damaged: what
    /// became of them could not be recorded.
    pub fn outbox(&self, limit: usize) -> Result<Vec<OutMessage>, StoreError> {
        self.outbox_from(None, limit)
    }

    /// [`Store::outbox`] from the message after `after` on: the service reads each message
    /// once and keeps the ones it retries in memory.
    pub fn outbox_after(&self, after: u64, limit: usize) -> Result<Vec<OutMessage>, StoreError> {
        self.outbox_from(Some(after), limit)
    }

    fn outbox_from(&self, after: Option<u64>, limit: usize) -> Result<Vec<OutMessage>, StoreError> {
        if self.is_damaged() {
            return Ok(Vec::new());
        }
        Ok(self.state().outbox_after(after, limit))
    }

    /// How many messages wait in the outbox.
    pub fn outbox_len(&self) -> usize {
        self.state().outbox_len()
    }

    /// Removes messages from the outbox without an outcome. Unknown ids are ignored.
    pub fn outbox_done(&self, ids: &[u64]) -> Result<(), StoreError> {
        self.write(Record::OutboxDone(ids.to_vec())).map(|_| ())
    }

    /// Takes messages out of the outbox with what became of them: the status each message's
    /// timeline entry shows and, for accepted parts, which message a receipt for that SMSC id
    /// belongs to.
    pub fn outbox_finished(&self, outcomes: &[OutboxOutcome]) -> Result<(), StoreError> {
        self.write(Record::OutboxFinished(outcomes.to_vec()))
            .map(|_| ())
    }

    /// The message an SMSC id was given to (see [`Store::outbox_finished`]).
    pub fn sent_part(&self, smsc_message_id: &str) -> Result<Option<SentPart>, StoreError> {
        let what = || format!("the message of SMSC id {smsc_message_id:?}");
        self.read(what, || {
            self.state().lookup(&keys::sent_part(smsc_message_id))
        })
    }

    /// Applies a receipt saying `state` of the part the SMSC gave one of `id_forms` (the same
    /// id written the ways carriers write it): the part's state, the message's status, and,
    /// for a final receipt, forgetting the SMSC id no further receipt will name. `None` when
    /// no form is known (yet): the caller may keep the receipt for a submit still being
    /// recorded.
    pub fn apply_receipt(
        &self,
        id_forms: &[String],
        state: PartState,
        at: Millis,
    ) -> Result<Option<ReceiptApplied>, StoreError> {
        self.apply_receipt_from(id_forms, None, state, at)
    }

    /// [`Store::apply_receipt`] for a receipt from `recipient` (its source_addr: the number
    /// the message went to), which a form other than the receipt's own must match.
    pub fn apply_receipt_from(
        &self,
        id_forms: &[String],
        recipient: Option<&str>,
        state: PartState,
        at: Millis,
    ) -> Result<Option<ReceiptApplied>, StoreError> {
        let what = || format!("the message of SMSC id {:?}", id_forms.first());
        let known = self.read(what, || self.state().known_form(id_forms, recipient))?;
        let Some(smsc_id) = known else {
            return Ok(None);
        };
        match self.write(Record::Receipt { smsc_id, state, at })? {
            Applied::Receipt(applied) => Ok(applied),
            Applied::Done => Ok(None),
        }
    }

    // --- SMPP bookkeeping: MO redelivery, stored parts ---------------------------------------

    /// Whether a step already stored this deliver_sm and its mark is kept at `now`: a
    /// redelivery, to acknowledge without processing again.
    pub fn mo_seen(&self, mark: &MoMark, now: Millis) -> Result<bool, StoreError> {
        Ok(self.state().mo_seen(&mark.0, now))
    }

    /// The deliver_sm_resp of a marked MO is on its way: keep the mark until `until`, for
    /// the redelivery of an SMSC that never saw the response; after it, the same text is a
    /// new message.
    pub fn mo_acknowledged(&self, mark: &MoMark, until: Millis) -> Result<(), StoreError> {
        self.write(Record::MarkKept {
            key: mark.0.clone(),
            until,
        })
        .map(|_| ())
    }

    /// Removes the MO marks kept until before `now`. A damaged store keeps them (it takes no
    /// more steps, and this is no step anyone waits for).
    pub fn sweep_mo_marks(&self, now: Millis) -> Result<usize, StoreError> {
        if self.is_damaged() {
            return Ok(0);
        }
        let marks = self.state().marks_before(now);
        let n = marks.len();
        if n > 0 {
            self.write(Record::MarksSwept(marks))?;
        }
        Ok(n)
    }

    /// Keeps a part of a concatenated MO until its message is complete (then the step that
    /// consumes it removes it, see [`MoRecord::parts`]). Durable after the next flush.
    pub fn put_part(&self, part: &MoPart) -> Result<PartKey, StoreError> {
        self.write(Record::PartPut(part.clone()))?;
        Ok(PartKey::of(part))
    }

    /// Every stored part, for the reassembler after a restart.
    pub fn parts(&self) -> Result<Vec<MoPart>, StoreError> {
        Ok(self.state().parts())
    }

    pub fn remove_parts(&self, parts: &[PartKey]) -> Result<(), StoreError> {
        let keys = parts.iter().map(|k| k.0.clone()).collect();
        self.write(Record::PartsRemoved(keys)).map(|_| ())
    }
}

#[cfg(test)]
mod audit_tests;
#[cfg(test)]
mod calls_tests;
#[cfg(test)]
mod conversation_tests;
#[cfg(test)]
mod damage_tests;
#[cfg(test)]
mod export_tests;
#[cfg(test)]
mod id_tests;
#[cfg(test)]
mod ops_tests;
#[cfg(test)]
mod recovery_tests;
#[cfg(test)]
pub(crate) mod tests;
#[cfg(test)]
mod values_tests;
