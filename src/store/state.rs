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

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use jiff::tz::TimeZone;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

mod calls;
pub(super) mod census;
mod export;

use super::audit_tally::AuditTallies;
use super::delivery::{Delivery, PartState, ReceiptApplied};
use super::log::Record;
use super::tally::{self, Delta, Tally, TallyKey};
use super::{
    Commit, Conversation, ConversationId, ConversationStatus, Incident, IncidentState, Millis,
    MoPart, OutMessage, OutboxOutcome, PartKey, Rating, SentPart, StoreError, TimelineEntry, Timer,
    WebhookCall, keys,
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

    // --- loading (start-up) ------------------------------------------------------------

    /// Loads the hot tables from the checkpoint in sled.
    pub fn load(&mut self) -> Result<(), StoreError> {
        for entry in self.cold.scan_prefix([keys::HOT]) {
            let (key, _) = entry?;
            let id = keys::trailing_u64(&key)?;
            let ckey = keys::conversation(id);
            let value = self
                .cold
                .get(&ckey)?
                .ok_or_else(|| StoreError::decode(keys::STATE, &key, "hot without a record"))?;
            let record: ConversationRecord = keys::decode(keys::STATE, &ckey, &value)?;
            self.index(id, &record, Arc::from(&value[..]));
        }
        for entry in self.cold.scan_prefix([keys::OUTBOX]) {
            let (key, value) = entry?;
            let m: OutMessage = keys::decode(keys::STATE, &key, &value)?;
            self.outbox.insert(m.id, m);
        }
        for entry in self.cold.scan_prefix([keys::WEBHOOK]) {
            let (key, value) = entry?;
            let w: WebhookCall = keys::decode(keys::STATE, &key, &value)?;
            self.webhooks.insert(w.id, w);
        }
        for entry in self.cold.scan_prefix([keys::OPT_OUT]) {
            let (key, _) = entry?;
            self.opt_outs
                .insert(String::from_utf8_lossy(&key[1..]).into_owned());
        }
        for entry in self.cold.scan_prefix([keys::SCRIPT]) {
            let (key, value) = entry?;
            let source: String = keys::decode(keys::STATE, &key, &value)?;
            let (flow, version) = split_lp(&key[1..])
                .ok_or_else(|| StoreError::decode(keys::STATE, &key, "not lp(flow) | version"))?;
            self.scripts.insert((flow, version), source);
        }
        for entry in self.cold.scan_prefix([keys::LIVE]) {
            let (key, value) = entry?;
            let version: String = keys::decode(keys::STATE, &key, &value)?;
            self.live
                .insert(String::from_utf8_lossy(&key[1..]).into_owned(), version);
        }
        for entry in self.cold.scan_prefix([keys::MO_MARK]) {
            let (key, value) = entry?;
            let until: Millis = keys::decode(keys::STATE, &key, &value)?;
            self.marks.insert(key.to_vec(), until);
        }
        for entry in self.cold.scan_prefix([keys::PART]) {
            let (key, value) = entry?;
            let part: MoPart = keys::decode(keys::STATE, &key, &value)?;
            self.parts.insert(key.to_vec(), part);
        }
        for entry in self.cold.scan_prefix([keys::TALLY]) {
            let (key, value) = entry?;
            let t: Tally = keys::decode(keys::STATE, &key, &value)?;
            self.tallies.insert(tally::key_from(&key)?, t);
        }
        self.tally_zone = self.lookup(keys::TALLY_ZONE)?;
        self.audit = AuditTallies::load(&self.cold)?;
        self.load_exports()?;
        if let Some(mark) = self.lookup::<u64>(keys::IDS)? {
            self.next_id = self.next_id.max(mark.saturating_add(1));
            self.ids_noted = Some(mark);
        }
        Ok(())
    }

    fn flow_name(&mut self, flow: &str) -> Arc<str> {
        if let Some(f) = self.flows.get(flow) {
            return f.clone();
        }
        let f: Arc<str> = Arc::from(flow);
        self.flows.insert(f.clone());
        f
    }

    /// Puts a conversation into the hot indexes (replacing nothing: the caller removed the
    /// old entry).
    fn index(&mut self, id: ConversationId, record: &ConversationRecord, encoded: Arc<[u8]>) {
        let c = &record.conversation;
        let open = c.status.is_open();
        if open {
            for party in &c.parties {
                let list = self.parties.entry(party.clone()).or_default();
                let at = list.partition_point(|e| *e < (c.created_at, id));
                list.insert(at, (c.created_at, id));
            }
        }
        for (name, due) in &record.timers {
            self.timers.insert((*due, id, name.clone()));
        }
        let flow = self.flow_name(&c.flow);
        let keyed = (open && (c.reply_code.is_some() || c.join_key.is_some())).then(|| {
            Box::new(Keyed {
                code: c.reply_code,
                join: c.join_key.clone(),
            })
        });
        if let Some(k) = &keyed {
            if let Some(code) = k.code {
                self.codes.insert((flow.clone(), code), id);
            }
            if let Some(join) = &k.join {
                self.joins.insert((flow.clone(), join.clone()), id);
            }
        }
        let call = (c.incident.as_ref())
            .map(IncidentState::of)
            .filter(|s| open && *s != IncidentState::Closed);
        self.hot.insert(
            id,
            Hot {
                flow,
                created_at: c.created_at,
                parties: c.parties.clone(),
                open,
                timers: record.timers.clone(),
                record: encoded,
                keyed,
                call,
            },
        );
    }

    /// Takes a conversation out of the hot indexes.
    fn unindex(&mut self, id: ConversationId) {
        let Some(hot) = self.hot.remove(&id) else {
            return;
        };
        if hot.open {
            for party in &hot.parties {
                if let Entry::Occupied(mut e) = self.parties.entry(party.clone()) {
                    e.get_mut()
                        .retain(|&(at, c)| (at, c) != (hot.created_at, id));
                    if e.get().is_empty() {
                        e.remove();
                    }
                }
            }
        }
        for (name, due) in hot.timers {
            self.timers.remove(&(due, id, name));
        }
        if let Some(k) = hot.keyed {
            // Only if it still names this one: a newer conversation may have taken the key.
            if let Some(code) = k.code
                && let Entry::Occupied(e) = self.codes.entry((hot.flow.clone(), code))
                && *e.get() == id
            {
                e.remove();
            }
            if let Some(join) = k.join
                && let Entry::Occupied(e) = self.joins.entry((hot.flow.clone(), join))
                && *e.get() == id
            {
                e.remove();
            }
        }
    }

    // --- layered reads -----------------------------------------------------------------

    fn slot(&self, key: &[u8]) -> Option<&Slot> {
        self.dirty
            .kv
            .get(key)
            .or_else(|| self.frozen.as_ref().and_then(|f| f.kv.get(key)))
    }

    /// A value of the state: the newest layer that has the key, else sled.
    pub fn lookup<T: DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>, StoreError> {
        match self.slot(key) {
            Some(Slot { value: Some(v), .. }) => keys::decode(keys::STATE, key, v).map(Some),
            Some(Slot { value: None, .. }) => Ok(None),
            None => match self.cold.get(key)? {
                Some(v) => keys::decode(keys::STATE, key, &v).map(Some),
                None => Ok(None),
            },
        }
    }

    fn exists(&self, key: &[u8]) -> Result<bool, StoreError> {
        match self.slot(key) {
            Some(slot) => Ok(slot.value.is_some()),
            None => Ok(self.cold.contains_key(key)?),
        }
    }

    fn put(&mut self, key: Vec<u8>, value: impl Into<Arc<[u8]>>, absent: bool) {
        let value = Some(value.into());
        match self.dirty.kv.entry(key) {
            Entry::Occupied(mut e) => e.get_mut().value = value,
            Entry::Vacant(e) => {
                e.insert(Slot {
                    value,
                    fresh: absent,
                });
            }
        }
    }

    fn remove(&mut self, key: Vec<u8>) {
        match self.dirty.kv.entry(key) {
            Entry::Occupied(e) if e.get().fresh => {
                e.remove();
            }
            Entry::Occupied(mut e) => e.get_mut().value = None,
            Entry::Vacant(e) => {
                e.insert(Slot {
                    value: None,
                    fresh: false,
                });
            }
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

    // --- applying ----------------------------------------------------------------------

    /// Applies `record`, or nothing of it (an error). The caller appends it to the log.
    pub fn apply(&mut self, record: &Record) -> Result<Applied, StoreError> {
        match record {
            Record::Commit(c) => self.apply_commit(c)?,
            Record::MoAcknowledged(key) => self.unmark(key),
            Record::ScriptLive {
                flow,
                version,
                source,
            } => {
                if let Entry::Vacant(slot) = self.scripts.entry((flow.clone(), version.clone())) {
                    let key = keys::script(flow, version);
                    let value = keys::encode(&key, source)?;
                    slot.insert(source.clone());
                    self.put(key, value, true);
                }
                let key = keys::live(flow);
                let value = keys::encode(&key, version)?;
                let absent = self.live.insert(flow.clone(), version.clone()).is_none();
                self.put(key, value, absent);
            }
            Record::MarkKept { key, until } => {
                if let Some(kept) = self.marks.get_mut(key) {
                    *kept = *until;
                    let value = keys::encode(key, until)?;
                    self.put(key.clone(), value, false);
                }
            }
            Record::MarksSwept(keys) => {
                for key in keys {
                    self.unmark(key);
                }
            }
            Record::PartPut(part) => {
                let key = PartKey::of(part).0;
                let value = keys::encode(&key, part)?;
                let absent = self.parts.insert(key.clone(), part.clone()).is_none();
                self.put(key, value, absent);
            }
            Record::PartsRemoved(keys) => {
                for key in keys {
                    if self.parts.remove(key).is_some() {
                        self.remove(key.clone());
                    }
                }
            }
            Record::OutboxDone(ids) => {
                for id in ids {
                    self.take_out(*id);
                }
            }
            Record::OutboxFinished(outcomes) => self.apply_outcomes(outcomes)?,
            Record::Receipt { smsc_id, state, at } => {
                return Ok(Applied::Receipt(self.apply_receipt(smsc_id, *state, *at)?));
            }
            Record::TalliesRebuilt { zone, tallies } => self.replace_tallies(zone, tallies)?,
            Record::WebhooksFinished(outcomes) => self.webhooks_finished(outcomes),
            Record::ExportSwitched(on) => self.switch_export(*on)?,
            Record::Exported { upto } => self.exported(*upto),
        }
        self.dirty.records += 1;
        Ok(Applied::Done)
    }

    /// Adds `delta` to the tally `key`, and its new value to the dirty layer.
    fn count(&mut self, key: TallyKey, delta: &Delta) {
        let bytes = tally::key_bytes(&key);
        let t = self.tallies.entry(key).or_default();
        tally::apply(t, delta);
        // A tally is a handful of numbers; it cannot fail to encode.
        if let Ok(value) = keys::encode(&bytes, t) {
            self.put(bytes, value, false);
        }
    }

    fn replace_tallies(
        &mut self,
        zone: &str,
        tallies: &[(Vec<u8>, Tally)],
    ) -> Result<(), StoreError> {
        let mut fresh = Vec::with_capacity(tallies.len());
        for (bytes, t) in tallies {
            fresh.push((
                tally::key_from(bytes)?,
                bytes.clone(),
                keys::encode(bytes, t)?,
                t,
            ));
        }
        let zone_value = keys::encode(keys::TALLY_ZONE, zone)?;
        for key in std::mem::take(&mut self.tallies).into_keys() {
            self.remove(tally::key_bytes(&key));
        }
        for (key, bytes, value, t) in fresh {
            self.put(bytes, value, false);
            self.tallies.insert(key, t.clone());
        }
        self.put(keys::TALLY_ZONE.to_vec(), zone_value, false);
        self.tally_zone = Some(zone.to_owned());
        Ok(())
    }

    fn unmark(&mut self, key: &[u8]) {
        if self.marks.remove(key).is_some() {
            self.remove(key.to_vec());
        }
    }

    fn take_out(&mut self, id: u64) {
        if self.outbox.remove(&id).is_some() {
            self.remove(keys::outbox(id));
        }
    }

    fn apply_commit(&mut self, c: &Commit) -> Result<(), StoreError> {
        // Reads and checks first: nothing changes until they all pass.
        let event_key = match &c.event_key {
            Some((flow, key, id)) => {
                let k = keys::event_key(flow, key);
                match self.lookup::<ConversationId>(&k)? {
                    Some(existing) if existing != *id => {
                        return Err(StoreError::EventKeyTaken {
                            flow: flow.clone(),
                            key: key.clone(),
                            conversation: existing,
                        });
                    }
                    Some(_) => None,
                    None => Some((k, keys::encode(b"e", id)?)),
                }
            }
            None => None,
        };
        let mut ids: Vec<ConversationId> = c.conversation.iter().map(|c| c.id).collect();
        for id in (c.timers_set.iter().map(|t| t.conversation))
            .chain(c.timers_cancelled.iter().map(|(id, _)| *id))
        {
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        let mut changes = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(change) = self.conversation_change(c, id)? {
                changes.push(change);
            }
        }
        let mut fatigue = Vec::new();
        for ch in changes.iter().filter(|ch| ch.stepped) {
            let new = &ch.record.conversation;
            for msisdn in &new.parties {
                let known = ch.old.as_ref().is_some_and(|o| {
                    o.flow == new.flow
                        && o.created_at == new.created_at
                        && o.parties.contains(msisdn)
                });
                if known {
                    continue;
                }
                let key = keys::last_by_party(&new.flow, msisdn);
                let last: Option<Millis> = self.lookup(&key)?;
                if last.is_none_or(|last| new.created_at > last) {
                    let value = keys::encode(&key, &new.created_at)?;
                    fatigue.push((key, value, last.is_none()));
                }
            }
        }
        let step_at = c.conversation.as_ref().map_or(0, |c| c.updated_at);
        let mo_at = c.mo.as_ref().map_or(0, |mo| mo.received_at).max(step_at);
        let kept_until = mo_at + PENDING_MARK_KEPT;
        let mut marks = Vec::new();
        if let Some(mo) = &c.mo {
            for mark in &mo.pending_ack {
                marks.push((mark.0.clone(), keys::encode(&mark.0, &kept_until)?));
            }
        }
        let mut outbox = Vec::with_capacity(c.outbox.len());
        for m in &c.outbox {
            let key = keys::outbox(m.id);
            outbox.push((m.clone(), keys::encode(&key, m)?));
        }
        let mut webhooks = Vec::with_capacity(c.webhooks.len());
        for w in &c.webhooks {
            webhooks.push((w.clone(), keys::encode(&keys::webhook(w.id), w)?));
        }
        let script = match &c.script {
            Some((flow, version, source))
                if !self.scripts.contains_key(&(flow.clone(), version.clone())) =>
            {
                let key = keys::script(flow, version);
                let value = keys::encode(&key, source)?;
                Some((flow, version, source, key, value))
            }
            _ => None,
        };

        let mut counts: Vec<(TallyKey, Delta)> = (c.ratings.iter())
            .map(|r| tally::of_rating(&self.zone, r))
            .collect();
        for ch in changes.iter().filter(|ch| ch.stepped) {
            let new = &ch.record.conversation;
            let key = || tally::of_conversation(&self.zone, new);
            if c.outbox
                .iter()
                .any(|m| m.opening && m.conversation == ch.id)
            {
                counts.push((key(), Delta::Sent));
            }
            let was_open = ch.old.as_ref().is_none_or(|o| o.open);
            let outcome = match &new.status {
                ConversationStatus::Open => None,
                ConversationStatus::Finished { outcome } => Some(outcome.clone()),
                ConversationStatus::Errored { .. } => Some("error".to_owned()),
            };
            if let Some(outcome) = outcome.filter(|_| was_open) {
                counts.push((key(), Delta::Outcome(outcome)));
            }
        }

        let audit = super::audit_tally::deltas(c, |id| {
            Ok((self.record(id)?).map(|r| (r.conversation.created_at, r.conversation.incident)))
        })?;
        let exports = self.commit_events(c, &changes)?;

        // Then the changes, which cannot fail.
        // Ids a commit holds are taken (tests and tools may pick their own): none is handed
        // out again, and a replay after a crash finds them.
        self.next_id = self.next_id.max(highest_id(c).saturating_add(1));
        for (key, delta) in &counts {
            self.count(key.clone(), delta);
        }
        for (key, value) in self.audit.apply(&audit) {
            match value {
                Some(value) => self.put(key, value, false),
                None => self.remove(key),
            }
        }
        if let Some(mo) = &c.mo {
            for PartKey(key) in &mo.parts {
                if self.parts.remove(key).is_some() {
                    self.remove(key.clone());
                }
            }
        }
        for (key, value) in marks {
            let absent = self.marks.insert(key.clone(), kept_until).is_none();
            self.put(key, value, absent);
        }
        for ch in changes {
            self.change_conversation(ch);
        }
        for (key, value, absent) in fatigue {
            self.put(key, value, absent);
        }
        for (id, entry) in &c.timeline {
            self.dirty
                .timeline
                .entry(*id)
                .or_default()
                .push(entry.clone());
        }
        for (m, value) in outbox {
            let key = keys::outbox(m.id);
            let absent = self.outbox.insert(m.id, m).is_none();
            self.put(key, value, absent);
        }
        for (w, value) in webhooks {
            let key = keys::webhook(w.id);
            let absent = self.webhooks.insert(w.id, w).is_none();
            self.put(key, value, absent);
        }
        self.dirty.ratings.extend(c.ratings.iter().cloned());
        self.dirty.incidents.extend(c.incidents.iter().cloned());
        for msisdn in &c.opt_ins {
            if self.opt_outs.remove(msisdn) {
                self.remove(keys::opt_out(msisdn));
            }
        }
        for msisdn in &c.opt_outs {
            if self.opt_outs.insert(msisdn.clone()) {
                self.put(keys::opt_out(msisdn), Vec::new(), false);
            }
        }
        if let Some((key, value)) = event_key {
            self.put(key, value, true);
        }
        if let Some((flow, version, source, key, value)) = script {
            self.scripts
                .insert((flow.clone(), version.clone()), source.clone());
            self.put(key, value, true);
        }
        self.queue_exports(exports);
        Ok(())
    }

    /// What commit `c` makes of conversation `id`: its new record and what it was.
    fn conversation_change(
        &self,
        c: &Commit,
        id: ConversationId,
    ) -> Result<Option<Change>, StoreError> {
        let hot = self.hot.get(&id);
        let old_record = match (hot, &c.conversation) {
            // Stepped and hot: the indexes have what the change needs.
            (Some(_), Some(new)) if new.id == id => None,
            _ => self.record(id)?,
        };
        let old = match (hot, &old_record) {
            (Some(h), _) => Some(OldHead {
                flow: h.flow.to_string(),
                created_at: h.created_at,
                parties: h.parties.clone(),
                timers: h.timers.iter().cloned().collect(),
                open: h.open,
                hot: true,
            }),
            (None, Some(r)) => Some(OldHead {
                flow: r.conversation.flow.clone(),
                created_at: r.conversation.created_at,
                parties: r.conversation.parties.clone(),
                timers: r.timers.iter().cloned().collect(),
                open: r.conversation.status.is_open(),
                hot: false,
            }),
            (None, None) => None,
        };
        let (conversation, stepped) = match &c.conversation {
            Some(new) if new.id == id => (new.clone(), true),
            // Only its timers change.
            _ => match old_record {
                Some(r) => (r.conversation, false),
                None => return Ok(None),
            },
        };
        let mut timers = old.as_ref().map(|o| o.timers.clone()).unwrap_or_default();
        for (cid, name) in &c.timers_cancelled {
            if *cid == id {
                timers.remove(name);
            }
        }
        for t in c.timers_set.iter().filter(|t| t.conversation == id) {
            timers.insert(t.name.clone(), t.due);
        }
        let record = ConversationRecord {
            conversation,
            timers: timers.into_iter().collect(),
        };
        let encoded = Arc::from(keys::encode(&keys::conversation(id), &record)?);
        Ok(Some(Change {
            id,
            old,
            record,
            encoded,
            stepped,
        }))
    }

    fn change_conversation(&mut self, ch: Change) {
        let Change {
            id,
            old,
            record,
            encoded,
            ..
        } = ch;
        let was_hot = old.as_ref().is_some_and(|o| o.hot);
        let existed = old.is_some();
        let c = &record.conversation;
        if !existed {
            self.put(keys::created(&c.flow, c.created_at, id), Vec::new(), true);
        }
        self.unindex(id);
        let hot = c.status.is_open() || !record.timers.is_empty();
        if hot {
            self.index(id, &record, encoded.clone());
            if !was_hot {
                self.put(keys::hot(id), Vec::new(), !existed);
            }
        } else if was_hot {
            self.remove(keys::hot(id));
        }
        self.put(keys::conversation(id), encoded, !existed);
    }

    fn apply_outcomes(&mut self, outcomes: &[OutboxOutcome]) -> Result<(), StoreError> {
        let exports = self.outcome_events(outcomes)?;
        let mut writes = Vec::new();
        for o in outcomes {
            let m = &o.message;
            let key = keys::delivery(m.id);
            let delivery = Delivery {
                status: o.status.clone(),
                parts: vec![PartState::Sent; o.smsc_ids.len()],
            };
            writes.push((key.clone(), keys::encode(&key, &delivery)?));
            for (part, smsc_id) in o.smsc_ids.iter().enumerate() {
                let sent = SentPart {
                    conversation: m.conversation,
                    outbox_id: m.id,
                    to: m.to.clone(),
                    flow: m.flow.clone(),
                    part,
                    opening: m.opening,
                };
                let key = keys::sent_part(smsc_id);
                writes.push((key.clone(), keys::encode(&key, &sent)?));
            }
        }
        for o in outcomes {
            self.take_out(o.message.id);
        }
        for (key, value) in writes {
            // SMSC ids are new; a message's outcome is recorded once.
            self.put(key, value, true);
        }
        self.queue_exports(exports);
        Ok(())
    }

    /// The SMSC id form under which a sent part is kept, of `forms` (the receipt's own form
    /// first). Another form (the same number read in the other base) counts only for a part
    /// sent to `recipient`, when the receipt names one: short sequential ids read the other
    /// way round are often another message's id, and that message is someone else's.
    pub fn known_form(
        &self,
        forms: &[String],
        recipient: Option<&str>,
    ) -> Result<Option<String>, StoreError> {
        let digits = |n: &str| n.trim().trim_start_matches('+').to_owned();
        for (n, id) in forms.iter().enumerate() {
            let key = keys::sent_part(id);
            if n == 0 {
                if self.exists(&key)? {
                    return Ok(Some(id.clone()));
                }
                continue;
            }
            let Some(part) = self.lookup::<SentPart>(&key)? else {
                continue;
            };
            match recipient.map(digits).filter(|r| !r.is_empty()) {
                Some(r) if r != digits(&part.to) => continue,
                _ => return Ok(Some(id.clone())),
            }
        }
        Ok(None)
    }

    fn apply_receipt(
        &mut self,
        smsc_id: &str,
        state: PartState,
        at: Millis,
    ) -> Result<Option<ReceiptApplied>, StoreError> {
        let sent_key = keys::sent_part(smsc_id);
        let Some(part) = self.lookup::<SentPart>(&sent_key)? else {
            return Ok(None);
        };
        let key = keys::delivery(part.outbox_id);
        let delivery: Option<Delivery> = self.lookup(&key)?;
        let (next, changed) = super::delivery::receipt(delivery, part.part, state);
        let value = match &next {
            Some(d) => Some(keys::encode(&key, d)?),
            None => None,
        };
        // The opening message (a survey's question) delivered counts for its conversation.
        let delivered = match (changed, part.opening) {
            (Some("delivered"), true) => (self.record(part.conversation)?)
                .map(|r| tally::of_conversation(&self.zone, &r.conversation)),
            _ => None,
        };
        let exports = self.receipt_event(&part, changed, at)?;
        if state.is_final() {
            self.remove(sent_key);
        }
        self.queue_exports(exports);
        if let Some(value) = value {
            self.put(key, value, false);
        }
        if let Some(key) = delivered {
            self.count(key, &Delta::Delivered);
        }
        self.dirty.records += 1;
        Ok(Some(ReceiptApplied { part, changed }))
    }

    /// The status a receipt set on outbox message `id`.
    pub fn message_status(&self, id: u64) -> Result<Option<String>, StoreError> {
        Ok(self
            .lookup::<Delivery>(&keys::delivery(id))?
            .map(|d| d.status))
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

/// The highest conversation or outbox id commit `c` holds (0: none).
fn highest_id(c: &Commit) -> u64 {
    let conversations = (c.conversation.iter().map(|c| c.id))
        .chain(c.timers_set.iter().map(|t| t.conversation))
        .chain(c.timers_cancelled.iter().map(|(id, _)| *id))
        .chain(c.timeline.iter().map(|(id, _)| *id))
        .chain(c.ratings.iter().map(|r| r.conversation))
        .chain(c.incidents.iter().map(|i| i.conversation))
        .chain(c.event_key.iter().map(|(_, _, id)| *id));
    let messages = c.outbox.iter().flat_map(|m| [m.id, m.conversation]);
    let webhooks = c.webhooks.iter().map(|w| w.id);
    conversations
        .chain(messages)
        .chain(webhooks)
        .max()
        .unwrap_or(0)
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
