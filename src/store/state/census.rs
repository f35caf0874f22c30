//! The census: how many entries the checkpoint's tables hold, written with every checkpoint
//! (the `N` key, in the same atomic batch as `k`) and held against what the store reads back
//! at open.
//!
//! Why: the seal catches a log that sled cut short, but not a checkpoint whose pages went
//! bad. A page that fails its checksum errors when read; a page sled recovered from an older
//! copy (a segment it could not read skipped at recovery) reads back fine, with entries
//! missing. For the idempotency index that means an event id posted again starts a second
//! conversation. So the open reads the whole event-key index (decoding every value) and the
//! creation-time index (a key per conversation) and counts them, and counts the tables it
//! loads whole anyway (hot conversations, outbox, webhook calls, export queue, tallies);
//! a count that differs from the census is [`Damage::Census`](super::super::Damage::Census).
//! Conversation records, timelines and rating chunks are read when asked for (`damage.rs`).
//!
//! Event keys and `C` keys are only ever added (never rewritten or removed), so a
//! checkpoint's count is the last one plus the layer's new keys; the others are the sizes of
//! the tables in memory when the layer is frozen, which is the state the checkpoint holds.

use serde::{Deserialize, Serialize};

use super::super::{StoreError, keys};
use super::{ConversationId, State, split_lp};

/// See the module documentation. Fields added later read as 0 from an older census.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub(in super::super) struct Census {
    /// The log seq of the checkpoint it counts (`k`): written in the same batch, so equal
    /// unless a build without a census checkpointed since.
    pub checkpoint: u64,
    /// `C` keys: one per conversation.
    pub conversations: u64,
    /// `e` keys: the HTTP events' idempotency keys.
    pub event_keys: u64,
    /// `h` keys: open conversations and those with timers.
    pub hot: u64,
    pub outbox: u64,
    pub webhooks: u64,
    pub exports: u64,
    pub tallies: u64,
}

impl Census {
    /// The tables whose counts differ, as `what: found, census says N`.
    pub fn differences(&self, census: &Census) -> Vec<String> {
        let pairs = [
            (
                "as the census of checkpoint",
                self.checkpoint,
                census.checkpoint,
            ),
            ("conversations", self.conversations, census.conversations),
            ("event ids", self.event_keys, census.event_keys),
            ("open conversations", self.hot, census.hot),
            ("outbox messages", self.outbox, census.outbox),
            ("webhook calls", self.webhooks, census.webhooks),
            ("export events", self.exports, census.exports),
            ("tallies", self.tallies, census.tallies),
        ];
        (pairs.into_iter())
            .filter(|(_, found, counted)| found != counted)
            .map(|(what, found, counted)| format!("{found} {what} where it wrote {counted}"))
            .collect()
    }
}

/// What the open found, for `open.rs` to act on.
#[derive(Debug, Clone)]
pub(in super::super) enum Checked {
    /// The store holds what its census says.
    Matches,
    /// No census (a new store, or one written before censuses) or one of an older
    /// checkpoint (a build without censuses checkpointed since): `counted` is to be stored.
    Uncounted { counted: Census, stale: bool },
    /// The store holds other counts than its last checkpoint wrote.
    Differs { counted: Census, census: Census },
}

/// The census in `cold` (sled's state tree), if any.
pub(in super::super) fn stored(cold: &sled::Tree) -> Result<Option<Census>, StoreError> {
    match cold.get(keys::CENSUS)? {
        Some(v) => keys::decode(keys::STATE, keys::CENSUS, &v).map(Some),
        None => Ok(None),
    }
}

/// Writes `census` straight to sled's state tree, for a store that had none: what it
/// counts is that tree as it is, before the writer starts.
pub(in super::super) fn store(cold: &sled::Tree, census: &Census) -> Result<(), StoreError> {
    cold.insert(keys::CENSUS, keys::encode(keys::CENSUS, census)?)?;
    Ok(())
}

/// The census value of a checkpoint at log seq `seq` (the frozen layer's census, stamped).
pub(in super::super) fn stamped(value: &[u8], seq: u64) -> Result<Vec<u8>, StoreError> {
    let census: Census = keys::decode(keys::STATE, keys::CENSUS, value)?;
    keys::encode(
        keys::CENSUS,
        &Census {
            checkpoint: seq,
            ..census
        },
    )
}

impl State {
    /// The sizes of the tables held whole in memory.
    fn sizes(&self) -> Census {
        let n = |len: usize| len as u64;
        Census {
            hot: n(self.hot.len()),
            outbox: n(self.outbox.len()),
            webhooks: n(self.webhooks.len()),
            exports: n(self.exports_len()),
            tallies: n(self.tallies.len()),
            ..Census::default()
        }
    }

    /// Counts the store as loaded from sled (before the log is replayed) against its census
    /// (`checkpointed`: the checkpoint's seq): every event key read and decoded, every `C`
    /// key read. A page sled cannot read is an error here, as at any read.
    pub fn check_census(&self, checkpointed: u64) -> Result<Checked, StoreError> {
        let mut counted = Census {
            checkpoint: checkpointed,
            ..self.sizes()
        };
        for entry in self.cold.scan_prefix([keys::EVENT_KEY]) {
            let (key, value) = entry?;
            if split_lp(&key[1..]).is_none() {
                return Err(StoreError::decode(
                    keys::STATE,
                    &key,
                    "not lp(flow) | event id",
                ));
            }
            keys::decode::<ConversationId>(keys::STATE, &key, &value)?;
            counted.event_keys += 1;
        }
        for key in self.cold.scan_prefix([keys::CREATED]).keys() {
            let key = key?;
            keys::created_flow(&key)?;
            counted.conversations += 1;
        }
        Ok(match stored(&self.cold)? {
            Some(census) if census == counted => Checked::Matches,
            // A later checkpoint without a census: an older smsflow ran on the store.
            Some(census) if census.checkpoint < checkpointed => Checked::Uncounted {
                counted,
                stale: true,
            },
            Some(census) => Checked::Differs { counted, census },
            None => Checked::Uncounted {
                counted,
                stale: false,
            },
        })
    }

    /// Puts the census of the dirty layer's checkpoint into it, to be frozen now (the
    /// writer, under the lock): the last census plus the layer's new event and `C` keys,
    /// and the tables' sizes. Its seq is stamped when the checkpoint is written
    /// ([`stamped`]). A census that cannot be read leaves it out (the next open recounts).
    pub fn note_census(&mut self) {
        let last = match stored(&self.cold) {
            Ok(last) => last.unwrap_or_default(),
            Err(e) => {
                tracing::warn!("store: cannot read the census, not keeping one: {e}");
                return;
            }
        };
        let mut census = Census {
            conversations: last.conversations,
            event_keys: last.event_keys,
            ..self.sizes()
        };
        for (key, slot) in &self.dirty.kv {
            let added = u64::from(slot.fresh && slot.value.is_some());
            match key.first() {
                Some(&keys::EVENT_KEY) => census.event_keys += added,
                Some(&keys::CREATED) => census.conversations += added,
                _ => {}
            }
        }
        // A handful of integers always encode.
        if let Ok(value) = keys::encode(keys::CENSUS, &census) {
            self.put(keys::CENSUS.to_vec(), value, false);
        }
    }
}
