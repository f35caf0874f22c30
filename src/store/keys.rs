//! How the store lays itself out in sled: tree names, key layouts, value encoding and the
//! schema version.
//!
//! Everything that decides the bytes on disk lives here, so a change to any of it is one diff
//! next to [`SCHEMA_VERSION`]. This module does no I/O.
//!
//! # Keys
//!
//! sled orders keys as byte strings, so every integer in a key is big-endian and every
//! timestamp ([`Millis`], an `i64`) has its sign bit flipped first ([`put_millis`]): then
//! byte order is numeric order, negative times included, and a range scan is a time range.
//! A string that is followed by more key parts is length-prefixed (`u32` BE) so that a prefix
//! scan for `"99890"` cannot match `"998901"`; a string at the end of a key is stored bare.
//! `lp(s)` below means `len(s) as u32 BE | s`.
//!
//! | tree | key | value |
//! |---|---|---|
//! | [`CONVERSATIONS`] | `id(8)` | [`Conversation`](super::Conversation) |
//! | [`PARTY_INDEX`] | `lp(msisdn) \| created_at(8) \| id(8)` | empty; only while the conversation is open |
//! | [`OPEN`] | `lp(flow) \| id(8)` | empty; only while the conversation is open |
//! | [`TIMERS`] | `due(8) \| conversation(8) \| name` | [`Timer`](super::Timer) |
//! | [`TIMER_INDEX`] | `conversation(8) \| name` | [`Timer`](super::Timer) (finds the [`TIMERS`] entry to replace or cancel) |
//! | [`TIMELINE`] | `conversation(8) \| seq(8)` | [`TimelineEntry`](super::TimelineEntry) |
//! | [`RATINGS`] | `at(8) \| conversation(8) \| seq(8)` | [`Rating`](super::Rating) |
//! | [`INCIDENTS`] | `at(8) \| conversation(8) \| seq(8)` | [`Incident`](super::Incident) |
//! | [`OPT_OUTS`] | `msisdn` | empty |
//! | [`EVENT_KEYS`] | `lp(flow) \| key` | conversation id |
//! | [`SCRIPTS`] | `lp(flow) \| version` | the script's source |
//! | [`OUTBOX`] | `id(8)` | [`OutMessage`](super::OutMessage) |
//! | [`LAST_BY_PARTY`] | `lp(flow) \| msisdn` | `created_at` of the newest conversation |
//! | [`INBOUND`] | `'a' \| mo key` | `received_at`: an MO whose step is stored but whose deliver_sm_resp may not have reached the SMSC |
//! | [`INBOUND`] | `'p' \| lp(source) \| lp(destination) \| reference(2) \| total(1) \| seq(1)` | [`Part`](crate::smpp::concat::Part) of a message not yet complete |
//! | [`DELIVERY`] | `'s' \| smsc message id` | [`SentPart`](super::SentPart): which outbox message an SMSC id belongs to (receipts) |
//! | [`DELIVERY`] | `'m' \| outbox id(8)` | the MT message's status ("sent", "delivered", ...), overlaid on the timeline |
//! | [`DELIVERY`] | `'r' \| outbox id(8)` | [`PartState`](super::PartState) of each part: what its receipts said |
//! | [`META`] | [`META_SCHEMA_VERSION`] | [`SCHEMA_VERSION`] as 4 raw BE bytes |
//!
//! `seq` is an id from `Store::next_id`, taken per entry: it makes entries with equal
//! timestamps distinct and keeps them in commit order. The party index puts `created_at`
//! before the id so that a reverse prefix scan lists a party's conversations newest first.
//! [`OPEN`] is not in the original list of trees: without it `open_conversations` (metrics,
//! keeping old script versions alive) would have to decode every conversation ever stored.
//!
//! # One transaction over many trees
//!
//! `Store::commit` runs one sled transaction over the 14 trees it may write (all but
//! [`META`] and [`DELIVERY`]), as a tuple: sled 0.34 implements `Transactional` for tuples
//! of up to 14 `&Tree`s, which gives every tree a named view and costs one small overlay per
//! tree. We kept one tree per table rather than grouping tables by key prefix into fewer
//! trees: range scans stay plain, and a table's keys never need a tag byte. The two trees
//! the service keeps about SMPP traffic ([`INBOUND`], [`DELIVERY`]) hold two small tables
//! each, told apart by a tag byte; only [`INBOUND`] is written with conversation steps (an MO
//! is marked seen in the same transaction as the step it caused). A further table in the
//! transaction would mean moving to the `[&Tree]` slice form (same semantics, views by
//! index).
//!
//! # Values
//!
//! A value is [`ENCODING_VERSION`] (one byte) followed by MessagePack written with
//! `rmp_serde::to_vec_named`: structs are maps with field names, so a field added later
//! with `#[serde(default)]` still reads old values, and `serde_json::Value` round-trips.
//! Empty values (index entries) carry no prefix. The schema version in [`META`] is raw bytes
//! because it says how to read everything else, the value encoding included.

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{ConversationId, Millis, StoreError};

/// The layout this code reads and writes. Opening a store that records another version is
/// an error ([`StoreError::SchemaMismatch`]); there is no silent migration.
pub const SCHEMA_VERSION: u32 = 1;

/// First byte of every non-empty value (other than the schema version itself).
pub const ENCODING_VERSION: u8 = 1;

pub const CONVERSATIONS: &str = "conversations";
pub const PARTY_INDEX: &str = "party_index";
pub const OPEN: &str = "open";
pub const TIMERS: &str = "timers";
pub const TIMER_INDEX: &str = "timer_index";
pub const TIMELINE: &str = "timeline";
pub const RATINGS: &str = "ratings";
pub const INCIDENTS: &str = "incidents";
pub const OPT_OUTS: &str = "opt_outs";
pub const EVENT_KEYS: &str = "event_keys";
pub const SCRIPTS: &str = "scripts";
pub const OUTBOX: &str = "outbox";
pub const LAST_BY_PARTY: &str = "last_by_party";
pub const INBOUND: &str = "inbound";
pub const DELIVERY: &str = "delivery";
pub const META: &str = "meta";

/// The [`META`] key of the schema version.
pub const META_SCHEMA_VERSION: &[u8] = b"schema_version";

// --- key parts -------------------------------------------------------------------------

/// `i64` as 8 bytes whose byte order is numeric order (sign bit flipped, big-endian).
pub fn put_millis(key: &mut Vec<u8>, at: Millis) {
    key.extend_from_slice(&((at as u64) ^ (1 << 63)).to_be_bytes());
}

pub fn put_u64(key: &mut Vec<u8>, n: u64) {
    key.extend_from_slice(&n.to_be_bytes());
}

/// A string followed by more key parts: `u32` BE length, then the bytes.
pub fn put_lp(key: &mut Vec<u8>, s: &str) {
    // A key part over 4 GiB cannot be built in memory we would accept from a request anyway.
    let len = u32::try_from(s.len()).unwrap_or(u32::MAX);
    key.extend_from_slice(&len.to_be_bytes());
    key.extend_from_slice(s.as_bytes());
}

fn millis_from(bytes: [u8; 8]) -> Millis {
    (u64::from_be_bytes(bytes) ^ (1 << 63)) as Millis
}

/// The `u64` in the last 8 bytes of a key (the id of most index keys).
pub fn trailing_u64(tree: &'static str, key: &[u8]) -> Result<u64, StoreError> {
    key.len()
        .checked_sub(8)
        .and_then(|at| key[at..].try_into().ok())
        .map(u64::from_be_bytes)
        .ok_or_else(|| StoreError::decode(tree, key, "key shorter than 8 bytes"))
}

// --- key builders ----------------------------------------------------------------------

pub fn conversation(id: ConversationId) -> [u8; 8] {
    id.to_be_bytes()
}

/// All [`PARTY_INDEX`] keys of `msisdn`.
pub fn party_prefix(msisdn: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(4 + msisdn.len() + 16);
    put_lp(&mut key, msisdn);
    key
}

pub fn party(msisdn: &str, created_at: Millis, id: ConversationId) -> Vec<u8> {
    let mut key = party_prefix(msisdn);
    put_millis(&mut key, created_at);
    put_u64(&mut key, id);
    key
}

/// All [`OPEN`] keys of `flow`.
pub fn open_prefix(flow: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(4 + flow.len() + 8);
    put_lp(&mut key, flow);
    key
}

/// The flow of an [`OPEN`] key.
pub fn open_flow(key: &[u8]) -> Result<String, StoreError> {
    let bad = || StoreError::decode(OPEN, key, "not lp(flow) | id(8)");
    let len = u32::from_be_bytes(
        key.get(..4)
            .ok_or_else(bad)?
            .try_into()
            .map_err(|_| bad())?,
    );
    let flow = key.get(4..4 + len as usize).ok_or_else(bad)?;
    String::from_utf8(flow.to_vec()).map_err(|_| bad())
}

pub fn open(flow: &str, id: ConversationId) -> Vec<u8> {
    let mut key = open_prefix(flow);
    put_u64(&mut key, id);
    key
}

pub fn timer(due: Millis, conversation: ConversationId, name: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(16 + name.len());
    put_millis(&mut key, due);
    put_u64(&mut key, conversation);
    key.extend_from_slice(name.as_bytes());
    key
}

/// The first [`TIMERS`] key that is due after `now`: everything before it is due.
/// `None` when `now` is the last representable time (then everything is due).
pub fn timers_after(now: Millis) -> Option<[u8; 8]> {
    now.checked_add(1).map(time)
}

pub fn timer_index(conversation: ConversationId, name: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(8 + name.len());
    put_u64(&mut key, conversation);
    key.extend_from_slice(name.as_bytes());
    key
}

pub fn timeline(conversation: ConversationId, seq: u64) -> [u8; 16] {
    let mut key = [0; 16];
    key[..8].copy_from_slice(&conversation.to_be_bytes());
    key[8..].copy_from_slice(&seq.to_be_bytes());
    key
}

/// [`RATINGS`] and [`INCIDENTS`]: by time, then conversation, then `seq`.
pub fn by_time(at: Millis, conversation: ConversationId, seq: u64) -> [u8; 24] {
    let mut key = [0; 24];
    key[..8].copy_from_slice(&time(at));
    key[8..16].copy_from_slice(&conversation.to_be_bytes());
    key[16..].copy_from_slice(&seq.to_be_bytes());
    key
}

/// The 8-byte time prefix: the bound of a time-range scan over [`RATINGS`] or [`INCIDENTS`].
pub fn time(at: Millis) -> [u8; 8] {
    ((at as u64) ^ (1 << 63)).to_be_bytes()
}

/// The due time a [`TIMERS`] key starts with.
pub fn timer_due(key: &[u8]) -> Result<Millis, StoreError> {
    key.get(..8)
        .and_then(|b| b.try_into().ok())
        .map(millis_from)
        .ok_or_else(|| StoreError::decode(TIMERS, key, "key shorter than 8 bytes"))
}

pub fn event_key(flow: &str, key: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(4 + flow.len() + key.len());
    put_lp(&mut k, flow);
    k.extend_from_slice(key.as_bytes());
    k
}

pub fn script(flow: &str, version: &str) -> Vec<u8> {
    event_key(flow, version)
}

pub fn outbox(id: u64) -> [u8; 8] {
    id.to_be_bytes()
}

pub fn last_by_party(flow: &str, msisdn: &str) -> Vec<u8> {
    event_key(flow, msisdn)
}

/// An MO's content: the deliver_sm fields a redelivery repeats (the SMSC gives a redelivered
/// MO a new sequence number and nothing else to recognise it by). `concat` is
/// `(reference, total, seq)` for a part of a concatenated message.
pub fn mo(
    source: &str,
    destination: &str,
    data_coding: u8,
    concat: Option<(u16, u8, u8)>,
    payload: &[u8],
) -> Vec<u8> {
    let mut k = Vec::with_capacity(16 + source.len() + destination.len() + payload.len());
    k.push(b'a');
    put_lp(&mut k, source);
    put_lp(&mut k, destination);
    k.push(data_coding);
    match concat {
        Some((reference, total, seq)) => {
            k.push(1);
            k.extend_from_slice(&reference.to_be_bytes());
            k.extend_from_slice(&[total, seq]);
        }
        None => k.push(0),
    }
    k.extend_from_slice(payload);
    k
}

pub const MO_PREFIX: &[u8] = b"a";
pub const PART_PREFIX: &[u8] = b"p";

pub fn part(key: &crate::smpp::concat::MessageKey, seq: u8) -> Vec<u8> {
    let mut k = vec![b'p'];
    put_lp(&mut k, &key.source);
    put_lp(&mut k, &key.destination);
    k.extend_from_slice(&key.reference.to_be_bytes());
    k.push(key.total);
    k.push(seq);
    k
}

pub fn sent_part(smsc_message_id: &str) -> Vec<u8> {
    let mut k = vec![b's'];
    k.extend_from_slice(smsc_message_id.as_bytes());
    k
}

pub fn message_status(outbox_id: u64) -> [u8; 9] {
    let mut k = [b'm'; 9];
    k[1..].copy_from_slice(&outbox_id.to_be_bytes());
    k
}

pub fn message_parts(outbox_id: u64) -> [u8; 9] {
    let mut k = [b'r'; 9];
    k[1..].copy_from_slice(&outbox_id.to_be_bytes());
    k
}

// --- values ----------------------------------------------------------------------------

/// [`ENCODING_VERSION`] then named MessagePack.
pub fn encode<T: Serialize + ?Sized>(
    tree: &'static str,
    key: &[u8],
    value: &T,
) -> Result<Vec<u8>, StoreError> {
    let mut out = vec![ENCODING_VERSION];
    rmp_serde::encode::write_named(&mut out, value).map_err(|e| StoreError::Encode {
        tree,
        key: super::show_key(key),
        source: e,
    })?;
    Ok(out)
}

/// The inverse of [`encode`]; errors name the tree and the key.
pub fn decode<T: DeserializeOwned>(
    tree: &'static str,
    key: &[u8],
    value: &[u8],
) -> Result<T, StoreError> {
    match value.split_first() {
        None => Err(StoreError::decode(tree, key, "empty value")),
        Some((&ENCODING_VERSION, body)) => rmp_serde::from_slice(body)
            .map_err(|e| StoreError::decode(tree, key, format!("messagepack: {e}"))),
        Some((other, _)) => Err(StoreError::decode(
            tree,
            key,
            format!("unknown value encoding {other} (this build reads {ENCODING_VERSION})"),
        )),
    }
}

/// The [`META`] value of [`META_SCHEMA_VERSION`].
pub fn schema_version_value(version: u32) -> [u8; 4] {
    version.to_be_bytes()
}

pub fn schema_version_from(value: &[u8]) -> Result<u32, StoreError> {
    value
        .try_into()
        .map(u32::from_be_bytes)
        .map_err(|_| StoreError::decode(META, META_SCHEMA_VERSION, "schema version is not 4 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn millis_order_is_byte_order() {
        let times = [i64::MIN, -86_400_000, -1, 0, 1, 1_700_000_000_000, i64::MAX];
        let keys: Vec<[u8; 8]> = times.iter().map(|&t| time(t)).collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]));
        for (&t, k) in times.iter().zip(&keys) {
            assert_eq!(millis_from(*k), t);
        }
    }

    #[test]
    fn length_prefix_keeps_prefix_scans_apart() {
        let a = party("99890", 0, 1);
        assert!(!a.starts_with(&party_prefix("998901")));
        assert!(!party("998901", 0, 1).starts_with(&party_prefix("99890")));
        assert!(a.starts_with(&party_prefix("99890")));
    }

    #[test]
    fn timers_after_bounds_due_keys() {
        let bound = timers_after(10).expect("10 + 1 fits");
        assert!(timer(10, u64::MAX, "zzz").as_slice() < bound.as_slice());
        assert!(timer(11, 0, "").as_slice() >= bound.as_slice());
        assert_eq!(timers_after(i64::MAX), None);
    }
}
