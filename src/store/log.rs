//! The step log: what changed the store, as records, and how a group of them is one sled
//! value.
//!
//! Every change to the store is a [`Record`], applied to the state in memory
//! ([`super::state`]) and appended to the log; the writer thread ([`super::writer`]) writes
//! every record waiting as one key of the [`LOG`](super::keys::LOG) tree per group commit.
//! A restart loads the checkpoint and applies the records after it, in order, with the same
//! code that applied them the first time, so the state after a restart is the state before
//! it, up to the last durable group.

use serde::{Deserialize, Serialize};

use super::delivery::PartState;
use super::{Commit, Millis, MoPart, OutboxOutcome, StoreError, WebhookOutcome, keys};

/// One change to the store.
// A record is built once, applied by reference and encoded: boxing the commit would only add
// an allocation per step.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) enum Record {
    /// A conversation step (see [`Commit`]).
    Commit(Commit),
    /// An MO's response is on its way: its mark goes (written by earlier releases; now
    /// [`Record::MarkKept`]).
    MoAcknowledged(Vec<u8>),
    /// Marks left by a crash, swept.
    MarksSwept(Vec<Vec<u8>>),
    /// A part of a concatenated MO, kept until its message is complete.
    PartPut(MoPart),
    PartsRemoved(Vec<Vec<u8>>),
    /// Messages taken out of the outbox without an outcome.
    OutboxDone(Vec<u64>),
    /// Messages taken out of the outbox with what became of them.
    OutboxFinished(Vec<OutboxOutcome>),
    /// A delivery receipt for the part the SMSC gave `smsc_id` (the form it is kept under).
    Receipt {
        smsc_id: String,
        state: PartState,
        /// When it came (0 in records written before it was kept).
        #[serde(default)]
        at: Millis,
    },
    /// Every tally, recounted from the raw records in `zone` (IANA name): a store opened in
    /// another zone than it counted in, or one written before tallies.
    TalliesRebuilt {
        zone: String,
        tallies: Vec<(Vec<u8>, super::tally::Tally)>,
    },
    /// An MO's response is on its way: its mark stays until `until` for redeliveries.
    MarkKept {
        key: Vec<u8>,
        until: Millis,
    },
    /// A flow version passed its tests and runs: kept, and the one to fall back on.
    ScriptLive {
        flow: String,
        version: String,
        source: String,
    },
    /// Webhook calls taken out of the queue (delivered, refused or given up).
    WebhooksFinished(Vec<WebhookOutcome>),
    /// Export events are derived from here on (`true`), or no longer.
    ExportSwitched(bool),
    /// JetStream acknowledged the export events up to this seq: they leave the queue.
    Exported {
        upto: u64,
    },
}

/// Appends `record` to a group: `u32` BE length, then the record as a store value.
pub(super) fn append(group: &mut Vec<u8>, record: &Record) -> Result<(), StoreError> {
    let encoded = keys::encode(b"log record", record)?;
    let len = u32::try_from(encoded.len())
        .map_err(|_| StoreError::decode(keys::LOG, b"", "a record over 4 GiB cannot be logged"))?;
    group.extend_from_slice(&len.to_be_bytes());
    group.extend_from_slice(&encoded);
    Ok(())
}

/// The records of one group, in order; `key` names the group in errors.
pub(super) fn records(key: &[u8], mut group: &[u8]) -> Result<Vec<Record>, StoreError> {
    let mut out = Vec::new();
    while !group.is_empty() {
        let bad = || StoreError::decode(keys::LOG, key, "truncated record");
        let len = group
            .get(..4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_be_bytes)
            .ok_or_else(bad)? as usize;
        let body = group.get(4..4 + len).ok_or_else(bad)?;
        out.push(keys::decode(keys::LOG, key, body)?);
        group = &group[4 + len..];
    }
    Ok(out)
}
