//! The store's state in memory, and the one place that applies a [`Record`] to it.
//!
//! Hot state lives here whole: open conversations (and any with timers), the party index,
//! timers by due time, the outbox, opt-outs, script sources, MO marks and stored MO parts.
//! Every change also goes into the **dirty layer**: the keys and values it changes in the
//! [`STATE`](keys::STATE) tree, plus the timeline entries, ratings and incidents it adds.
//! The writer freezes the dirty layer at a group commit and writes it as the next checkpoint
//! (one `apply_batch`), so a key changed by many steps between two checkpoints is written
//! once. Cold data (closed conversations, event keys, fatigue dates, receipts' bookkeeping)
//! is read through the layers, newest first, then from sled.
//!
//! Applying is deterministic: a restart applies the logged records after the checkpoint with
//! this same code and gets the same state. Each apply reads and checks everything first and
//! changes nothing when it fails.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};

mod apply;
mod calls;
pub(super) mod census;
mod export;
mod layers;
mod load;

use super::audit_tally::AuditTallies;
use super::delivery::ReceiptApplied;
use super::tally::{Tally, TallyKey};
use super::{
    Conversation, ConversationId, Incident, IncidentState, Millis, MoPart, OutMessage, Rating,
    StoreError, TimelineEntry, Timer, WebhookCall, keys,
};

/// How long an MO's mark is kept while its response is pending: past a crash between the
/// step and the response, until the SMSC redelivers after the rebind (ms).
const PENDING_MARK_KEPT: Millis = 3_600_000;

/// A conversation as the `c` key holds it: the conversation and its pending timers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct ConversationRecord {
    pub conversation: Conversation,
    /// (name, due), by name.
    #[serde(default)]
    pub timers: Vec<(String, Millis)>,
}

/// A hot conversation: what the indexes need, and its record as stored.
struct Hot {
    flow: Arc<str>,
    created_at: Millis,
    parties: Vec<String>,
    open: bool,
    /// (name, due), by name: as in the record (a map per conversation would cost a tree node
    /// each, for one or two timers).
    timers: Vec<(String, Millis)>,
    /// The encoded [`ConversationRecord`] (shared with the dirty layer's `c` value).
    record: Arc<[u8]>,
    /// Its reply code and join key, while open (boxed: most conversations have neither).
    keyed: Option<Box<Keyed>>,
    /// Where its call is, while it is open and its incident is not closed.
    call: Option<IncidentState>,
}

/// What an open conversation is found by besides its parties.
struct Keyed {
    code: Option<u32>,
    join: Option<String>,
}

/// A value in a layer: `None` is a removal. `fresh`: the key is absent below this layer, so
/// removing it again needs no write at all.
#[derive(Debug, Clone)]
pub(super) struct Slot {
    pub value: Option<Arc<[u8]>>,
    fresh: bool,
}

/// What happened since the last freeze: the next checkpoint.
#[derive(Debug, Default)]
pub(super) struct Layer {
    pub kv: HashMap<Vec<u8>, Slot>,
    pub timeline: BTreeMap<ConversationId, Vec<TimelineEntry>>,
    pub ratings: Vec<Rating>,
    pub incidents: Vec<Incident>,
    /// Records applied to this layer.
    pub records: u64,
}

impl Layer {
    pub fn is_empty(&self) -> bool {
        // The id mark alone (`State::note_ids`) is a change too: ids were handed out.
        self.records == 0 && self.kv.is_empty()
    }
}

/// What a read that merges sled with the layers needs, taken under the lock (see
/// [`State::pending`]).
pub(super) struct Pending {
    /// Chunk keys with a seq above this are in `layers`, whether sled has them yet or not.
    pub horizon: u64,
    pub layers: Vec<Arc<Layer>>,
    pub dirty_timeline: Vec<TimelineEntry>,
    pub dirty_ratings: Vec<Rating>,
    pub dirty_incidents: Vec<Incident>,
    pub dirty_created: Vec<Vec<u8>>,
}

/// What applying a record tells its caller.
pub(super) enum Applied {
    Done,
    Receipt(Option<ReceiptApplied>),
}

/// See the module documentation.
pub(super) struct State {
    cold: sled::Tree,
    hot: HashMap<ConversationId, Hot>,
    /// Open conversations per party: (created_at, id), ascending.
    parties: HashMap<String, Vec<(Millis, ConversationId)>>,
    timers: BTreeSet<(Millis, ConversationId, String)>,
    outbox: BTreeMap<u64, OutMessage>,
    /// Webhook calls waiting for delivery, by id.
    webhooks: BTreeMap<u64, WebhookCall>,
    /// Events waiting to be exported (`[export]`).
    export: export::ExportQueue,
    /// Open conversations by (flow, reply code) and by (flow, join key).
    codes: HashMap<(Arc<str>, u32), ConversationId>,
    joins: HashMap<(Arc<str>, String), ConversationId>,
    opt_outs: HashSet<String>,
    scripts: HashMap<(String, String), String>,
    /// The live version of each flow (see [`Record::ScriptLive`]).
    live: HashMap<String, String>,
    /// MO marks and until when each is kept.
    marks: HashMap<Vec<u8>, Millis>,
    parts: BTreeMap<Vec<u8>, MoPart>,
    /// Flow names, shared by the hot conversations.
    flows: HashSet<Arc<str>>,
    /// CSI tallies, whole (see `tally.rs`), by local day in `zone`.
    tallies: BTreeMap<TallyKey, Tally>,
    zone: TimeZone,
    /// The service quality audit's tallies (`audit_tally.rs`).
    pub audit: AuditTallies,
    /// The zone the tallies were counted in, as recorded (`None`: never counted).
    pub tally_zone: Option<String>,
    pub dirty: Layer,
    /// The layer being written as a checkpoint; `None` once sled has it.
    pub frozen: Option<Arc<Layer>>,
    /// The log seq of the newest checkpoint sled has.
    pub checkpointed: u64,
    /// Records applied but not yet handed to the writer, as a log group.
    pub log: Vec<u8>,
    /// Why the writer stopped (a failed log write or flush): nothing more is accepted.
    pub failed: Option<String>,
    /// Why the writer writes nothing for now (less room on the disk than the reserve): new
    /// steps are refused until it finds room again.
    pub disk_full: Option<String>,
    /// The id [`super::Store::next_id`] hands out next: one past every id handed out and
    /// every id an applied record holds.
    next_id: u64,
    /// The id mark ([`keys::IDS`]) as last put into a layer or loaded (`None`: never).
    ids_noted: Option<u64>,
}

impl State {
    pub fn new(cold: sled::Tree, checkpointed: u64, zone: TimeZone) -> State {
        State {
            cold,
            tallies: BTreeMap::new(),
            zone,
            tally_zone: None,
            audit: AuditTallies::default(),
            hot: HashMap::new(),
            parties: HashMap::new(),
            timers: BTreeSet::new(),
            outbox: BTreeMap::new(),
            webhooks: BTreeMap::new(),
            export: export::ExportQueue::default(),
            codes: HashMap::new(),
            joins: HashMap::new(),
            opt_outs: HashSet::new(),
            scripts: HashMap::new(),
            live: HashMap::new(),
            marks: HashMap::new(),
            parts: BTreeMap::new(),
            flows: HashSet::new(),
            dirty: Layer::default(),
            frozen: None,
            checkpointed,
            log: Vec::new(),
            failed: None,
            disk_full: None,
            next_id: 1,
            ids_noted: None,
        }
    }

    // --- reads -------------------------------------------------------------------------

    pub fn record(&self, id: ConversationId) -> Result<Option<ConversationRecord>, StoreError> {
        match self.hot.get(&id) {
            Some(hot) => keys::decode(keys::STATE, &keys::conversation(id), &hot.record).map(Some),
            None => self.lookup(&keys::conversation(id)),
        }
    }

    pub fn open_conversations_of(&self, msisdn: &str) -> Vec<ConversationId> {
        self.parties
            .get(msisdn)
            .map(|list| list.iter().rev().map(|&(_, id)| id).collect())
            .unwrap_or_default()
    }

    pub fn open_conversations(&self, flow: Option<&str>) -> Vec<ConversationId> {
        let mut ids: Vec<ConversationId> = self
            .hot
            .iter()
            .filter(|(_, h)| h.open && flow.is_none_or(|f| &*h.flow == f))
            .map(|(&id, _)| id)
            .collect();
        ids.sort_unstable();
        ids
    }

    /// (created_at, id) of the open conversations in which `msisdn` is a party (the party
    /// index) or of all open ones, of `flow` or of every flow; in no order.
    pub fn open_heads(&self, msisdn: Option<&str>, flow: Option<&str>) -> Vec<(Millis, u64)> {
        let of_flow = |id: &ConversationId| {
            flow.is_none_or(|f| self.hot.get(id).is_some_and(|h| &*h.flow == f))
        };
        match msisdn {
            Some(m) => (self.parties.get(m).into_iter().flatten())
                .filter(|(_, id)| of_flow(id))
                .copied()
                .collect(),
            None => (self.hot.iter())
                .filter(|(id, h)| h.open && of_flow(id))
                .map(|(&id, h)| (h.created_at, id))
                .collect(),
        }
    }

    /// (created_at, id, where the call is) of the open conversations whose call is not
    /// closed, in no order.
    pub fn open_calls(&self) -> Vec<(Millis, ConversationId, IncidentState)> {
        (self.hot.iter())
            .filter_map(|(&id, h)| Some((h.created_at, id, h.call?)))
            .collect()
    }

    pub fn open_counts(&self) -> Vec<(String, usize)> {
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for h in self.hot.values().filter(|h| h.open) {
            *counts.entry(&h.flow).or_default() += 1;
        }
        counts.into_iter().map(|(f, n)| (f.to_owned(), n)).collect()
    }

    pub fn timers_of(&self, id: ConversationId) -> Vec<Timer> {
        self.hot.get(&id).map_or_else(Vec::new, |h| {
            h.timers
                .iter()
                .map(|(name, due)| Timer {
                    conversation: id,
                    name: name.clone(),
                    due: *due,
                })
                .collect()
        })
    }

    pub fn due_timers(&self, now: Millis, limit: usize) -> Vec<Timer> {
        self.timers
            .iter()
            .take_while(|(due, _, _)| *due <= now)
            .take(limit)
            .map(|(due, id, name)| Timer {
                conversation: *id,
                name: name.clone(),
                due: *due,
            })
            .collect()
    }

    pub fn next_timer_due(&self) -> Option<Millis> {
        self.timers.first().map(|(due, _, _)| *due)
    }

    pub fn is_opted_out(&self, msisdn: &str) -> bool {
        self.opt_outs.contains(msisdn)
    }

    /// The live version of `flow` and its source.
    pub fn live_script(&self, flow: &str) -> Option<(String, String)> {
        let version = self.live.get(flow)?;
        let source = self.script(flow, version)?;
        Some((version.clone(), source))
    }

    pub fn script(&self, flow: &str, version: &str) -> Option<String> {
        self.scripts
            .get(&(flow.to_owned(), version.to_owned()))
            .cloned()
    }

    /// Outbox messages after id `after` (from the first for `None`), by id.
    pub fn outbox_after(&self, after: Option<u64>, limit: usize) -> Vec<OutMessage> {
        read_after(&self.outbox, after, limit)
    }

    pub fn outbox_len(&self) -> usize {
        self.outbox.len()
    }

    pub fn mo_seen(&self, key: &[u8], now: Millis) -> bool {
        self.marks.get(key).is_some_and(|until| *until >= now)
    }

    pub fn parts(&self) -> Vec<MoPart> {
        self.parts.values().cloned().collect()
    }

    /// The marks kept until before `now`.
    pub fn marks_before(&self, now: Millis) -> Vec<Vec<u8>> {
        let mut keys: Vec<Vec<u8>> = self
            .marks
            .iter()
            .filter(|(_, until)| **until < now)
            .map(|(k, _)| k.clone())
            .collect();
        keys.sort();
        keys
    }

    /// What the layers add to sled for a merged read of conversation `timeline` (or none),
    /// the ratings and incidents in `[from, to)` and the `C` keys with `prefix`.
    pub fn pending(
        &self,
        timeline: Option<ConversationId>,
        range: Option<(Millis, Millis)>,
        created: Option<&[u8]>,
    ) -> Pending {
        let in_range = |at: Millis| range.is_some_and(|(from, to)| from <= at && at < to);
        Pending {
            horizon: self.checkpointed,
            layers: self.frozen.iter().cloned().collect(),
            dirty_timeline: timeline
                .and_then(|id| self.dirty.timeline.get(&id).cloned())
                .unwrap_or_default(),
            dirty_ratings: (self.dirty.ratings.iter())
                .filter(|r| in_range(r.at))
                .cloned()
                .collect(),
            dirty_incidents: (self.dirty.incidents.iter())
                .filter(|i| in_range(i.at))
                .cloned()
                .collect(),
            dirty_created: created
                .map_or_else(Vec::new, |prefix| created_keys(&self.dirty, prefix)),
        }
    }

    /// The tallies from day `from` to day `to` (inclusive), of every flow.
    pub fn tallies(
        &self,
        from: jiff::civil::Date,
        to: jiff::civil::Date,
    ) -> Vec<(TallyKey, Tally)> {
        (self.tallies.iter())
            .filter(|(k, _)| from <= k.day && k.day <= to)
            .map(|(k, t)| (k.clone(), t.clone()))
            .collect()
    }

    pub fn zone(&self) -> &TimeZone {
        &self.zone
    }

    /// The indexes kept in memory, for `verify.rs` to hold against the records in sled.
    pub fn indexes(&self) -> Indexes<'_> {
        Indexes {
            hot: self.hot.keys().copied().collect(),
            parties: &self.parties,
            timers: &self.timers,
            outbox: &self.outbox,
            webhooks: &self.webhooks,
            exports: self.export_seqs().collect(),
            tallies: &self.tallies,
        }
    }

    // --- ids (see `Store::next_id`) -------------------------------------------------------

    /// A new id, never 0 and above every id handed out or held by an applied record.
    pub fn take_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id = id.saturating_add(1);
        id
    }

    /// Hands out no id below `floor` (a store whose checkpoint has no id mark).
    pub fn raise_next_id(&mut self, floor: u64) {
        self.next_id = self.next_id.max(floor);
    }

    /// Whether the checkpoint or a layer holds the id mark.
    pub fn has_id_mark(&self) -> bool {
        self.ids_noted.is_some()
    }

    /// Puts the id mark (the last id handed out) into the dirty layer when it moved since it
    /// was last put, so the checkpoint about to be frozen keeps it: a restart hands out the
    /// next id, not one of those.
    pub fn note_ids(&mut self) {
        let mark = self.next_id - 1;
        if self.ids_noted == Some(mark) {
            return;
        }
        // A u64 always encodes.
        if let Ok(value) = keys::encode(keys::IDS, &mark) {
            self.put(keys::IDS.to_vec(), value, false);
            self.ids_noted = Some(mark);
        }
    }

    /// (parties indexed, timers pending), for tests that check nothing is left behind.
    #[cfg(test)]
    pub fn index_sizes(&self) -> (usize, usize) {
        (self.parties.len(), self.timers.len())
    }
}

/// See [`State::indexes`].
pub(super) struct Indexes<'a> {
    pub hot: BTreeSet<ConversationId>,
    pub parties: &'a HashMap<String, Vec<(Millis, ConversationId)>>,
    pub timers: &'a BTreeSet<(Millis, ConversationId, String)>,
    pub outbox: &'a BTreeMap<u64, OutMessage>,
    pub webhooks: &'a BTreeMap<u64, WebhookCall>,
    pub exports: BTreeSet<u64>,
    pub tallies: &'a BTreeMap<TallyKey, Tally>,
}

/// The values of `queue` (the outbox, the webhook calls) after id `after` (from the first for
/// `None`), by id, at most `limit`.
fn read_after<T: Clone>(queue: &BTreeMap<u64, T>, after: Option<u64>, limit: usize) -> Vec<T> {
    let from = match after {
        Some(after) => match after.checked_add(1) {
            Some(from) => from,
            None => return Vec::new(),
        },
        None => 0,
    };
    (queue.range(from..))
        .take(limit)
        .map(|(_, v)| v.clone())
        .collect()
}

/// A conversation's head before a commit.
struct OldHead {
    flow: String,
    created_at: Millis,
    parties: Vec<String>,
    timers: BTreeMap<String, Millis>,
    open: bool,
    hot: bool,
}

struct Change {
    id: ConversationId,
    old: Option<OldHead>,
    record: ConversationRecord,
    encoded: Arc<[u8]>,
    /// The commit's own conversation (not one whose timers alone change).
    stepped: bool,
}

/// The `C` keys of a layer with `prefix`, sorted.
pub(super) fn created_keys(layer: &Layer, prefix: &[u8]) -> Vec<Vec<u8>> {
    let mut keys: Vec<Vec<u8>> = layer
        .kv
        .iter()
        .filter(|(k, s)| k.starts_with(prefix) && s.value.is_some())
        .map(|(k, _)| k.clone())
        .collect();
    keys.sort();
    keys
}

/// `lp(a) | b` back into its strings.
pub(super) fn split_lp(bytes: &[u8]) -> Option<(String, String)> {
    let len = u32::from_be_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
    let a = bytes.get(4..4 + len)?;
    let b = &bytes[4 + len..];
    Some((
        String::from_utf8(a.to_vec()).ok()?,
        String::from_utf8(b.to_vec()).ok()?,
    ))
}
