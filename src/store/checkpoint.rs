//! Checkpoints and recovery: a frozen layer as one sled batch, and the state back from the
//! last checkpoint plus the log after it.

use std::collections::BTreeMap;

use super::log::{self, Record};
use super::state::{Layer, State, census};
use super::{Incident, Millis, Rating, StoreError, keys};

/// Everything `layer` changed, as one batch with the checkpoint's log `seq`: sled applies a
/// batch atomically, so the state tree is always one checkpoint, never half of one.
pub(super) fn batch(layer: &Layer, seq: u64) -> Result<sled::Batch, StoreError> {
    let mut batch = sled::Batch::default();
    for (key, slot) in &layer.kv {
        match &slot.value {
            Some(value) if key == keys::CENSUS => {
                batch.insert(&key[..], census::stamped(value, seq)?);
            }
            Some(value) => batch.insert(&key[..], &value[..]),
            None => batch.remove(&key[..]),
        }
    }
    for (id, entries) in &layer.timeline {
        let key = keys::timeline(*id, seq);
        batch.insert(&key[..], keys::encode(&key, entries)?);
    }
    let (commented, plain): (Vec<&Rating>, Vec<&Rating>) =
        layer.ratings.iter().partition(|r| super::has_comment(r));
    chunks(&mut batch, keys::COMMENTED, &commented, |r| r.at, seq)?;
    chunks(&mut batch, keys::RATINGS, &plain, |r| r.at, seq)?;
    let incidents: Vec<&Incident> = layer.incidents.iter().collect();
    chunks(&mut batch, keys::INCIDENTS, &incidents, |i| i.at, seq)?;
    batch.insert(keys::CHECKPOINT, &seq.to_be_bytes()[..]);
    Ok(batch)
}

/// One chunk key per hour of `items`.
fn chunks<T: serde::Serialize>(
    batch: &mut sled::Batch,
    tag: u8,
    items: &[&T],
    at: impl Fn(&T) -> Millis,
    seq: u64,
) -> Result<(), StoreError> {
    let mut by_hour: BTreeMap<Millis, Vec<&T>> = BTreeMap::new();
    for &item in items {
        by_hour.entry(keys::hour(at(item))).or_default().push(item);
    }
    for (hour, items) in by_hour {
        let key = keys::chunk(tag, hour, seq);
        batch.insert(&key[..], keys::encode(&key, &items)?);
    }
    Ok(())
}

/// The log seq of the checkpoint in `state` (0: none yet).
pub(super) fn checkpointed(state: &sled::Tree) -> Result<u64, StoreError> {
    match state.get(keys::CHECKPOINT)? {
        Some(v) => (v[..].try_into().ok().map(u64::from_be_bytes))
            .ok_or_else(|| StoreError::decode(keys::STATE, keys::CHECKPOINT, "not 8 bytes")),
        None => Ok(0),
    }
}

/// What [`replay`] found in the log.
#[derive(Debug, Clone, Copy)]
pub(super) struct Replayed {
    /// The seq of the next log group.
    pub next: u64,
    /// Records applied.
    pub records: usize,
    /// A hole: (the last group applied, the first group after the hole), not applied.
    pub gap: Option<(u64, u64)>,
}

/// Applies the log after the checkpoint to `state` (loaded from it), in seq order, up to the
/// end or a hole (a group missing: what follows was written on top of it and cannot apply).
pub(super) fn replay(log: &sled::Tree, state: &mut State) -> Result<Replayed, StoreError> {
    let mut replayed = Replayed {
        next: state.checkpointed + 1,
        records: 0,
        gap: None,
    };
    for entry in log.range(keys::log(replayed.next)..) {
        let (key, group) = entry?;
        let seq = keys::trailing_u64(&key)?;
        if seq != replayed.next {
            replayed.gap = Some((replayed.next - 1, seq));
            break;
        }
        for record in log::records(&key, &group)? {
            apply_again(state, &record, &key)?;
            replayed.records += 1;
        }
        replayed.next = seq + 1;
    }
    Ok(replayed)
}

/// A record that applied once applies again to the same state; if it does not, the store is
/// not what this build wrote.
fn apply_again(state: &mut State, record: &Record, key: &[u8]) -> Result<(), StoreError> {
    state.apply(record).map(|_| ()).map_err(|e| {
        StoreError::decode(
            keys::LOG,
            key,
            format!("a logged record does not apply: {e}"),
        )
    })
}
