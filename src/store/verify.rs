//! `smsflow store verify`: every key of every tree decoded, the indexes held against the
//! records they index, and the CSI tallies recounted from the raw records (ratings per score,
//! surveys sent and delivered, and outcomes: see [`tally::disagreements`]), and the audit
//! tallies from the conversations' incidents (`audit_tally::disagreements`).
//!
//! A damaged store that still opens (the damage hit pages nothing read at start: a closed
//! conversation, an old rating chunk) shows up here, not at open. Verify writes a checkpoint
//! first, so sled's state tree holds everything and the log only what came after; then it
//! only reads. Each problem names the tree and key it is about; nothing is repaired.

use std::collections::{BTreeMap, BTreeSet};

use super::audit_tally::{self, AuditKey, AuditTally};
use super::delivery::Delivery;
use super::state::census::Census;
use super::state::{ConversationRecord, split_lp};
use super::tally::{self, Tally, TallyKey};
use super::{
    ConversationId, Incident, Millis, MoPart, OutMessage, PartKey, Rating, SentPart, Store,
    StoreError, TimelineEntry, WebhookCall, has_comment, keys, log, show_key,
};

mod cross_checks;

/// Problems listed in full; beyond that they are only counted.
const MAX_PROBLEMS: usize = 1_000;

/// What [`Store::verify`] found.
#[derive(Debug, Default, Clone)]
pub struct Verified {
    /// Entries and records read, per kind ("conversations", "ratings", ...).
    pub counts: BTreeMap<&'static str, u64>,
    /// The log seq the checkpoint that verify wrote covers.
    pub checkpoint: u64,
    /// What is wrong, each naming its tree and key (the first 1 000).
    pub problems: Vec<String>,
    /// Problems beyond those listed.
    pub more_problems: usize,
}

impl Verified {
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }

    /// How many problems were found in all.
    pub fn problem_count(&self) -> usize {
        self.problems.len() + self.more_problems
    }
}

/// What the check keeps of a conversation record, to hold the indexes against.
struct Head {
    flow: String,
    created_at: Millis,
    open: bool,
    parties: Vec<String>,
    timers: Vec<(String, Millis)>,
}

#[derive(Default)]
struct Check {
    verified: Verified,
    /// An entry did not decode: the tallies cannot be recounted from the records.
    undecodable: bool,
    conversations: BTreeMap<ConversationId, Head>,
    hot: BTreeSet<ConversationId>,
    created: BTreeSet<(String, Millis, ConversationId)>,
    /// (key, conversation) of entries that name a conversation: timelines, event keys, the
    /// outbox.
    references: Vec<(Vec<u8>, ConversationId)>,
    outbox: BTreeSet<u64>,
    webhooks: BTreeSet<u64>,
    exports: BTreeSet<u64>,
    tallies: BTreeMap<TallyKey, (Vec<u8>, Tally)>,
    audit: BTreeMap<AuditKey, (Vec<u8>, AuditTally)>,
    /// (creation, latest incident) of each conversation that has one: what the audit
    /// tallies count.
    incidents: Vec<(Millis, serde_json::Value)>,
    checkpoint: Option<u64>,
    census: Option<Census>,
    /// Tags of the state tree whose entries sled could not all read: the checks that need
    /// them whole are left out (the unreadable part is a problem of its own).
    unread: BTreeSet<u8>,
}

impl Store {
    /// Checks the whole store (see the module documentation): linear in its size, for
    /// `smsflow store verify` and after a restore. `Err` only when the checkpoint before the
    /// check cannot be written; what is wrong with the data is in [`Verified::problems`].
    pub fn verify(&self) -> Result<Verified, StoreError> {
        self.checkpoint()?;
        let mut check = Check::default();
        for name in self.inner.db.tree_names() {
            let tree = self.inner.db.open_tree(&name)?;
            match &name[..] {
                // sled's own tree; nothing of ours is in it.
                b"__sled__default" => {}
                n if n == keys::META.as_bytes() => check.meta(&tree),
                n if n == keys::LOG.as_bytes() => check.log(&tree),
                n if n == keys::STATE.as_bytes() => {
                    for (key, value) in check.state_entries(&tree) {
                        check.state_entry(&key, &value);
                    }
                }
                other => check.problem(format!(
                    "tree {:?}: not a tree this smsflow writes",
                    show_key(other)
                )),
            }
        }
        check.records();
        check.memory(self);
        check.census();
        if check.undecodable {
            check.problem(
                "tallies not recounted: entries above do not decode, so the raw records are \
                 not all there"
                    .into(),
            );
        } else {
            match self.counted_tallies(false) {
                Ok(counted) => check.tallies(counted),
                Err(e) => check.problem(format!("tallies not recounted: {e}")),
            }
            let counted = audit_tally::recount(std::mem::take(&mut check.incidents));
            for p in audit_tally::disagreements(&check.audit, &counted) {
                check.problem(p);
            }
        }
        Ok(check.verified)
    }
}

impl Check {
    fn problem(&mut self, problem: String) {
        if self.verified.problems.len() < MAX_PROBLEMS {
            self.verified.problems.push(problem);
        } else {
            self.verified.more_problems += 1;
        }
    }

    fn count(&mut self, kind: &'static str, n: u64) {
        *self.verified.counts.entry(kind).or_default() += n;
    }

    /// Every entry of `tree`; an entry sled cannot read ends the walk of that tree with a
    /// problem.
    fn entries(&mut self, name: &str, tree: &sled::Tree) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut out = Vec::new();
        let mut last: Option<Vec<u8>> = None;
        for entry in tree.iter() {
            match entry {
                Ok((k, v)) => {
                    last = Some(k.to_vec());
                    out.push((k.to_vec(), v.to_vec()));
                }
                Err(e) => {
                    let after = last.as_deref().map_or("the start".into(), show_key);
                    self.undecodable = true;
                    self.problem(format!("{name}: sled cannot read past {after}: {e}"));
                    break;
                }
            }
        }
        out
    }

    /// Every entry of the state tree, one tag at a time: a page sled cannot read costs the
    /// rest of its tag's entries, not every tag after it.
    fn state_entries(&mut self, tree: &sled::Tree) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut out = Vec::new();
        for tag in 0..=u8::MAX {
            let entries = match tag.checked_add(1) {
                Some(next) => tree.range([tag]..[next]),
                None => tree.range([tag]..),
            };
            let mut last: Option<Vec<u8>> = None;
            for entry in entries {
                match entry {
                    Ok((k, v)) => {
                        last = Some(k.to_vec());
                        out.push((k.to_vec(), v.to_vec()));
                    }
                    Err(e) => {
                        let from = last
                            .map_or(format!("the first {:?} key", tag as char), |k| show_key(&k));
                        self.undecodable = true;
                        self.unread.insert(tag);
                        let e = super::damage::describe(&e.into());
                        self.problem(format!("state: sled cannot read past {from}: {e}"));
                        break;
                    }
                }
            }
        }
        out
    }

    /// Whether every entry of each of `tags` was read.
    fn whole(&self, tags: &[u8]) -> bool {
        tags.iter().all(|t| !self.unread.contains(t))
    }

    fn decode<T: serde::de::DeserializeOwned>(&mut self, key: &[u8], value: &[u8]) -> Option<T> {
        match keys::decode(keys::STATE, key, value) {
            Ok(v) => Some(v),
            Err(e) => {
                self.undecodable = true;
                self.problem(e.to_string());
                None
            }
        }
    }

    fn bad_key(&mut self, key: &[u8], what: &str) {
        self.undecodable = true;
        self.problem(format!("state/{}: {what}", show_key(key)));
    }

    fn meta(&mut self, tree: &sled::Tree) {
        for (key, value) in self.entries(keys::META, tree) {
            if key != keys::META_SCHEMA_VERSION {
                self.problem(format!("meta/{}: not a key of ours", show_key(&key)));
                continue;
            }
            match keys::schema_version_from(&value) {
                Ok(keys::SCHEMA_VERSION) => {}
                Ok(v) => self.problem(format!(
                    "meta/schema_version: {v}, this smsflow writes {}",
                    keys::SCHEMA_VERSION
                )),
                Err(e) => self.problem(e.to_string()),
            }
        }
    }

    fn log(&mut self, tree: &sled::Tree) {
        let mut previous: Option<u64> = None;
        for (key, group) in self.entries(keys::LOG, tree) {
            let Ok(seq) = <[u8; 8]>::try_from(&key[..]).map(u64::from_be_bytes) else {
                self.undecodable = true;
                self.problem(format!("log/{}: not an 8-byte seq", show_key(&key)));
                continue;
            };
            if let Some(p) = previous
                && p + 1 != seq
            {
                self.problem(format!("log: groups {}..={} are missing", p + 1, seq - 1));
            }
            previous = Some(seq);
            match log::records(&key, &group) {
                Ok(records) => self.count("log records", records.len() as u64),
                Err(e) => {
                    self.undecodable = true;
                    self.problem(e.to_string());
                }
            }
            self.count("log groups", 1);
        }
    }

    /// The conversation id of a `tag | id(8)` key.
    fn id_key(&mut self, key: &[u8]) -> Option<u64> {
        if key.len() != 9 {
            self.bad_key(key, "not a tag and an 8-byte id");
            return None;
        }
        keys::trailing_u64(key).ok()
    }

    fn index_entry(&mut self, key: &[u8], value: &[u8]) {
        if !value.is_empty() {
            self.problem(format!(
                "state/{}: an index entry with a value",
                show_key(key)
            ));
        }
    }

    fn state_entry(&mut self, key: &[u8], value: &[u8]) {
        let Some(&tag) = key.first() else {
            self.bad_key(key, "an empty key");
            return;
        };
        match tag {
            keys::CONVERSATION => self.conversation(key, value),
            keys::HOT => {
                self.index_entry(key, value);
                if let Some(id) = self.id_key(key) {
                    self.hot.insert(id);
                }
                self.count("hot index entries", 1);
            }
            keys::CREATED => {
                self.index_entry(key, value);
                let flow = (key.get(1..5).and_then(|b| b.try_into().ok()))
                    .map(|b| u32::from_be_bytes(b) as usize)
                    .filter(|&len| key.len() == 5 + len + 16)
                    .and_then(|len| String::from_utf8(key[5..5 + len].to_vec()).ok());
                match (flow, keys::created_at_of(key), keys::trailing_u64(key)) {
                    (Some(flow), Ok(at), Ok(id)) => {
                        self.created.insert((flow, at, id));
                    }
                    _ => self.bad_key(key, "not lp(flow) | created_at | id"),
                }
                self.count("creation-time index entries", 1);
            }
            keys::TIMELINE => {
                let entries: Option<Vec<TimelineEntry>> = self.decode(key, value);
                if key.len() != 17 {
                    self.bad_key(key, "not a tag, an id and a seq");
                } else if let Some(entries) = entries {
                    let id = u64::from_be_bytes(key[1..9].try_into().unwrap_or_default());
                    self.references.push((key.to_vec(), id));
                    self.count("timeline entries", entries.len() as u64);
                }
                self.count("timeline chunks", 1);
            }
            keys::RATINGS | keys::COMMENTED => {
                let ratings: Option<Vec<Rating>> = self.decode(key, value);
                for r in ratings.iter().flatten() {
                    if has_comment(r) != (tag == keys::COMMENTED) {
                        self.problem(format!(
                            "state/{}: the rating of conversation {} is in the wrong chunk \
                             for its comment",
                            show_key(key),
                            r.conversation
                        ));
                    }
                }
                let at: Vec<Millis> = ratings.iter().flatten().map(|r| r.at).collect();
                self.chunk(key, &at, "ratings", "rating chunks");
            }
            keys::INCIDENTS => {
                let incidents: Option<Vec<Incident>> = self.decode(key, value);
                let at: Vec<Millis> = incidents.iter().flatten().map(|i| i.at).collect();
                self.chunk(key, &at, "incidents", "incident chunks");
            }
            keys::OUTBOX => {
                let m: Option<OutMessage> = self.decode(key, value);
                let held = m.map(|m| (m.id, m.conversation));
                if let Some(id) = self.queued(key, held, "outbox message") {
                    self.outbox.insert(id);
                }
                self.count("outbox messages", 1);
            }
            keys::WEBHOOK => {
                let w: Option<WebhookCall> = self.decode(key, value);
                let held = w.map(|w| (w.id, w.conversation));
                if let Some(id) = self.queued(key, held, "webhook call") {
                    self.webhooks.insert(id);
                }
                self.count("webhook calls waiting", 1);
            }
            keys::EXPORT => {
                let event: Option<super::export::ExportEvent> = self.decode(key, value);
                if let (Some(seq), Some(_)) = (self.id_key(key), event) {
                    self.exports.insert(seq);
                }
                self.count("export events waiting", 1);
            }
            keys::OPT_OUT => {
                self.index_entry(key, value);
                if std::str::from_utf8(&key[1..]).is_err() {
                    self.bad_key(key, "an MSISDN that is not UTF-8");
                }
                self.count("opt-outs", 1);
            }
            keys::EVENT_KEY => {
                let id: Option<ConversationId> = self.decode(key, value);
                if split_lp(&key[1..]).is_none() {
                    self.bad_key(key, "not lp(flow) | event key");
                } else if let Some(id) = id {
                    self.references.push((key.to_vec(), id));
                }
                self.count("event keys", 1);
            }
            keys::SCRIPT | keys::LAST_BY_PARTY => {
                let ok = if tag == keys::SCRIPT {
                    self.decode::<String>(key, value).is_some()
                } else {
                    self.decode::<Millis>(key, value).is_some()
                };
                if ok && split_lp(&key[1..]).is_none() {
                    self.bad_key(key, "not lp(flow) | name");
                }
                let kind = if tag == keys::SCRIPT {
                    "script versions"
                } else {
                    "fatigue dates"
                };
                self.count(kind, 1);
            }
            keys::LIVE => {
                self.decode::<String>(key, value);
                self.count("live flow versions", 1);
            }
            keys::MO_MARK => {
                self.decode::<Millis>(key, value);
                self.count("MO marks", 1);
            }
            keys::PART => {
                if let Some(part) = self.decode::<MoPart>(key, value)
                    && PartKey::of(&part).0 != key
                {
                    self.bad_key(key, "a stored MO part under another part's key");
                }
                self.count("MO parts", 1);
            }
            keys::SENT_PART => {
                self.decode::<SentPart>(key, value);
                self.count("sent parts", 1);
            }
            keys::DELIVERY => {
                self.id_key(key);
                self.decode::<Delivery>(key, value);
                self.count("delivery states", 1);
            }
            keys::TALLY => {
                let t: Option<Tally> = self.decode(key, value);
                match tally::key_from(key) {
                    Ok(k) => {
                        if let Some(t) = t {
                            self.tallies.insert(k, (key.to_vec(), t));
                        }
                    }
                    Err(e) => {
                        self.undecodable = true;
                        self.problem(e.to_string());
                    }
                }
                self.count("tallies", 1);
            }
            keys::AUDIT => {
                match audit_tally::entry_of(key, value) {
                    Ok((k, t)) => drop(self.audit.insert(k, (key.to_vec(), t))),
                    Err(e) => {
                        self.undecodable = true;
                        self.problem(e.to_string());
                    }
                }
                self.count("audit tallies", 1);
            }
            _ if key == keys::IDS => {
                self.decode::<u64>(key, value);
            }
            _ if key == keys::EXPORT_MARK => {
                self.decode::<super::export::ExportMark>(key, value);
            }
            _ if key == keys::TALLY_ZONE => {
                self.decode::<String>(key, value);
            }
            _ if key == keys::CENSUS => self.census = self.decode(key, value),
            _ if key == keys::CHECKPOINT => match <[u8; 8]>::try_from(value) {
                Ok(b) => self.checkpoint = Some(u64::from_be_bytes(b)),
                Err(_) => self.bad_key(key, "a checkpoint seq that is not 8 bytes"),
            },
            _ => self.bad_key(key, "a key this smsflow does not write"),
        }
    }

    /// An entry of a queue keyed by its id (`o`, `w`) holding `held` (its id and its
    /// conversation, when it decoded): the id, once checked against the key.
    fn queued(
        &mut self,
        key: &[u8],
        held: Option<(u64, ConversationId)>,
        what: &str,
    ) -> Option<u64> {
        let (id, (held, conversation)) = (self.id_key(key)?, held?);
        if held != id {
            self.problem(format!("state/{}: holds {what} {held}", show_key(key)));
        }
        self.references.push((key.to_vec(), conversation));
        Some(id)
    }

    fn conversation(&mut self, key: &[u8], value: &[u8]) {
        self.count("conversations", 1);
        let record: Option<ConversationRecord> = self.decode(key, value);
        let (Some(id), Some(record)) = (self.id_key(key), record) else {
            return;
        };
        let c = record.conversation;
        if let Some(incident) = c.incident {
            self.incidents.push((c.created_at, incident));
        }
        if c.id != id {
            self.problem(format!(
                "state/{}: holds conversation {}",
                show_key(key),
                c.id
            ));
        }
        self.conversations.insert(
            id,
            Head {
                open: c.status.is_open(),
                flow: c.flow,
                created_at: c.created_at,
                parties: c.parties,
                timers: record.timers,
            },
        );
    }

    /// A chunk of ratings or incidents at times `at`: each of them in the chunk's hour.
    fn chunk(&mut self, key: &[u8], at: &[Millis], items: &'static str, chunks: &'static str) {
        if key.len() != 17 {
            self.bad_key(key, "not a tag, an hour and a seq");
            return;
        }
        let seq = keys::trailing_u64(key).unwrap_or_default();
        if let Some(&stray) = (at.iter()).find(|&&t| keys::chunk(key[0], keys::hour(t), seq) != key)
        {
            self.problem(format!(
                "state/{}: holds one at {stray} ms, outside the chunk's hour",
                show_key(key)
            ));
        }
        self.count(items, at.len() as u64);
        self.count(chunks, 1);
    }
}
