//! The schema check at open, and the migration of a version 1 store (smsflow up to d911031:
//! one sled tree per table, every step a transaction over 14 of them) to this layout.
//!
//! Version 1's values are encoded as ours (one version byte, named MessagePack), so most
//! tables move by adding their tag byte to the old key. What changes shape: a conversation's
//! timers join its record, its timeline becomes one chunk, ratings and incidents become
//! hourly chunks, and a sent message's status and part states become one value. The indexes
//! (party, open, timers by due time) are rebuilt from the records in memory at every start.

use std::collections::BTreeMap;
use std::path::Path;

use super::delivery::{Delivery, PartState};
use super::state::ConversationRecord;
use super::{Conversation, Incident, Millis, Rating, StoreError, TimelineEntry, Timer, keys};

const VERSION: u32 = 1;

/// Version 1's trees, by name.
const CONVERSATIONS: &str = "conversations";
const TIMER_INDEX: &str = "timer_index";
const TIMELINE: &str = "timeline";
const RATINGS: &str = "ratings";
const INCIDENTS: &str = "incidents";
const OPT_OUTS: &str = "opt_outs";
const EVENT_KEYS: &str = "event_keys";
const SCRIPTS: &str = "scripts";
const OUTBOX: &str = "outbox";
const LAST_BY_PARTY: &str = "last_by_party";
const INBOUND: &str = "inbound";
const DELIVERY: &str = "delivery";
/// Derived in version 1, rebuilt in memory now.
const INDEXES: [&str; 3] = ["party_index", "open", "timers"];

/// Keys written per batch while migrating.
const BATCH: usize = 10_000;

/// Records [`keys::SCHEMA_VERSION`] in a new store, migrates a version 1 store, and refuses
/// any other.
pub(super) fn check_schema(db: &sled::Db, path: &Path) -> Result<(), StoreError> {
    let meta = db.open_tree(keys::META)?;
    let found = match meta.get(keys::META_SCHEMA_VERSION)? {
        Some(value) => keys::schema_version_from(&value)?,
        None => {
            // sled always has its default tree; any other tree without a recorded version is
            // data we cannot vouch for.
            let foreign = db
                .tree_names()
                .iter()
                .any(|name| &name[..] != b"__sled__default" && &name[..] != keys::META.as_bytes());
            if foreign { 0 } else { keys::SCHEMA_VERSION }
        }
    };
    match found {
        keys::SCHEMA_VERSION => {}
        VERSION => migrate(db, path)?,
        found => {
            return Err(StoreError::SchemaMismatch {
                found,
                expected: keys::SCHEMA_VERSION,
                path: path.to_path_buf(),
            });
        }
    }
    meta.insert(
        keys::META_SCHEMA_VERSION,
        &keys::schema_version_value(keys::SCHEMA_VERSION)[..],
    )?;
    // A migration that stopped after recording the version leaves old trees: drop them.
    for name in db.tree_names() {
        if let Ok(name) = std::str::from_utf8(&name)
            && is_v1_tree(name)
        {
            db.drop_tree(name)?;
        }
    }
    db.flush()?;
    Ok(())
}

fn is_v1_tree(name: &str) -> bool {
    [
        CONVERSATIONS,
        TIMER_INDEX,
        TIMELINE,
        RATINGS,
        INCIDENTS,
        OPT_OUTS,
        EVENT_KEYS,
        SCRIPTS,
        OUTBOX,
        LAST_BY_PARTY,
        INBOUND,
        DELIVERY,
    ]
    .contains(&name)
        || INDEXES.contains(&name)
}

/// Batches of writes to the new state tree.
struct Out {
    tree: sled::Tree,
    batch: sled::Batch,
    n: usize,
    total: usize,
}

impl Out {
    fn put(&mut self, key: Vec<u8>, value: &[u8]) -> Result<(), StoreError> {
        self.batch.insert(key, value);
        self.n += 1;
        if self.n >= BATCH {
            self.tree.apply_batch(std::mem::take(&mut self.batch))?;
            self.total += self.n;
            self.n = 0;
        }
        Ok(())
    }

    fn put_value<T: serde::Serialize>(
        &mut self,
        key: Vec<u8>,
        value: &T,
    ) -> Result<(), StoreError> {
        let encoded = keys::encode(&key, value)?;
        self.put(key, &encoded)
    }

    fn finish(mut self) -> Result<usize, StoreError> {
        self.tree.apply_batch(std::mem::take(&mut self.batch))?;
        Ok(self.total + self.n)
    }
}

fn tagged(tag: u8, key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + key.len());
    k.push(tag);
    k.extend_from_slice(key);
    k
}

fn decode<T: serde::de::DeserializeOwned>(
    tree: &'static str,
    key: &[u8],
    value: &[u8],
) -> Result<T, StoreError> {
    keys::decode(tree, key, value)
}

/// Rewrites a version 1 store into the state tree (a fresh one: a migration that stopped
/// midway starts over), then records the version; the caller drops the old trees.
fn migrate(db: &sled::Db, path: &Path) -> Result<(), StoreError> {
    tracing::info!(path = %path.display(), "store: migrating schema version 1 to {}", keys::SCHEMA_VERSION);
    let started = std::time::Instant::now();
    db.drop_tree(keys::STATE)?;
    db.drop_tree(keys::LOG)?;
    let mut out = Out {
        tree: db.open_tree(keys::STATE)?,
        batch: sled::Batch::default(),
        n: 0,
        total: 0,
    };
    let tree = |name: &str| db.open_tree(name);

    // Conversations with their timers, the hot index and the creation-time index.
    let mut timers: BTreeMap<u64, Vec<(String, Millis)>> = BTreeMap::new();
    for entry in tree(TIMER_INDEX)?.iter() {
        let (key, value) = entry?;
        let t: Timer = decode(TIMER_INDEX, &key, &value)?;
        timers
            .entry(t.conversation)
            .or_default()
            .push((t.name, t.due));
    }
    let mut conversations = 0;
    for entry in tree(CONVERSATIONS)?.iter() {
        let (key, value) = entry?;
        let c: Conversation = decode(CONVERSATIONS, &key, &value)?;
        let id = c.id;
        let record = ConversationRecord {
            timers: timers.remove(&id).unwrap_or_default(),
            conversation: c,
        };
        if record.conversation.status.is_open() || !record.timers.is_empty() {
            out.put(keys::hot(id), &[])?;
        }
        let c = &record.conversation;
        out.put(keys::created(&c.flow, c.created_at, id), &[])?;
        out.put_value(keys::conversation(id), &record)?;
        conversations += 1;
    }

    // A conversation's timeline as one chunk.
    let mut timeline: Option<(u64, Vec<TimelineEntry>)> = None;
    for entry in tree(TIMELINE)?.iter() {
        let (key, value) = entry?;
        let id = key
            .get(..8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_be_bytes)
            .ok_or_else(|| StoreError::decode(TIMELINE, &key, "key shorter than 8 bytes"))?;
        let e: TimelineEntry = decode(TIMELINE, &key, &value)?;
        match &mut timeline {
            Some((current, entries)) if *current == id => entries.push(e),
            _ => {
                if let Some((done, entries)) = timeline.replace((id, vec![e])) {
                    out.put_value(keys::timeline(done, 0), &entries)?;
                }
            }
        }
    }
    if let Some((done, entries)) = timeline {
        out.put_value(keys::timeline(done, 0), &entries)?;
    }

    // Ratings and incidents in hourly chunks (version 1 keeps them by time).
    let mut ratings: BTreeMap<Millis, Vec<Rating>> = BTreeMap::new();
    for entry in tree(RATINGS)?.iter() {
        let (key, value) = entry?;
        let r: Rating = decode(RATINGS, &key, &value)?;
        ratings.entry(keys::hour(r.at)).or_default().push(r);
    }
    for (hour, chunk) in ratings {
        let (commented, plain): (Vec<Rating>, Vec<Rating>) =
            chunk.into_iter().partition(super::has_comment);
        for (tag, chunk) in [(keys::COMMENTED, commented), (keys::RATINGS, plain)] {
            if !chunk.is_empty() {
                out.put_value(keys::chunk(tag, hour, 0), &chunk)?;
            }
        }
    }
    let mut incidents: BTreeMap<Millis, Vec<Incident>> = BTreeMap::new();
    for entry in tree(INCIDENTS)?.iter() {
        let (key, value) = entry?;
        let i: Incident = decode(INCIDENTS, &key, &value)?;
        incidents.entry(keys::hour(i.at)).or_default().push(i);
    }
    for (hour, chunk) in incidents {
        out.put_value(keys::chunk(keys::INCIDENTS, hour, 0), &chunk)?;
    }

    // Tables whose keys and values stay: the tag byte in front.
    for (name, tag) in [
        (OPT_OUTS, keys::OPT_OUT),
        (EVENT_KEYS, keys::EVENT_KEY),
        (SCRIPTS, keys::SCRIPT),
        (OUTBOX, keys::OUTBOX),
        (LAST_BY_PARTY, keys::LAST_BY_PARTY),
    ] {
        for entry in tree(name)?.iter() {
            let (key, value) = entry?;
            out.put(tagged(tag, &key), &value)?;
        }
    }
    // MO marks ('a') and parts ('p') are tagged already.
    for entry in tree(INBOUND)?.iter() {
        let (key, value) = entry?;
        out.put(key.to_vec(), &value)?;
    }
    // Sent parts ('s'), statuses ('m') and part states ('r', since 92d8121).
    let delivery = tree(DELIVERY)?;
    for entry in delivery.iter() {
        let (key, value) = entry?;
        match key.first() {
            Some(b's') => out.put(tagged(keys::SENT_PART, &key[1..]), &value)?,
            Some(b'm') => {
                let status: String = decode(DELIVERY, &key, &value)?;
                let mut parts_key = key.to_vec();
                parts_key[0] = b'r';
                let parts: Vec<PartState> = match delivery.get(&parts_key)? {
                    Some(v) => decode(DELIVERY, &parts_key, &v)?,
                    None => Vec::new(),
                };
                let id = keys::trailing_u64(&key)?;
                out.put_value(
                    keys::delivery(id),
                    &Delivery {
                        status: status.into(),
                        parts,
                    },
                )?;
            }
            _ => {}
        }
    }
    out.put(keys::CHECKPOINT.to_vec(), &0u64.to_be_bytes())?;
    let written = out.finish()?;
    db.flush()?;
    tracing::info!(
        conversations,
        keys = written,
        seconds = started.elapsed().as_secs_f64(),
        "store: migrated to schema version {}",
        keys::SCHEMA_VERSION
    );
    Ok(())
}
