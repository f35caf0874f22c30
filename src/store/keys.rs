//! How the store lays itself out in sled: tree names, key layouts, value encoding and the
//! schema version.
//!
//! Everything that decides the bytes on disk lives here, so a change to any of it is one diff
//! next to [`SCHEMA_VERSION`]. This module does no I/O.
//!
//! # Trees
//!
//! - [`LOG`]: the step log. One key per group commit (`seq(8)`), holding every record of
//!   the group (`log.rs`); written by the one writer thread before the group's waiters
//!   are answered. Entries up to the checkpoint are pruned.
//! - [`STATE`]: the checkpoint: every table below, told apart by a tag byte. Written only by
//!   the checkpoint, as one atomic `apply_batch` together with [`CHECKPOINT`], the last log
//!   entry it covers; so on a restart the state is this tree plus the log after it, and no
//!   record is ever applied twice.
//! - [`META`]: the schema version, under [`META_SCHEMA_VERSION`].
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
//! | tag | key | value |
//! |---|---|---|
//! | `c` | `id(8)` | the conversation and its timers (`state::ConversationRecord`) |
//! | `h` | `id(8)` | empty: the conversation is hot (open, or has timers), loaded at start |
//! | `C` | `lp(flow) \| created_at(8) \| id(8)` | empty: conversations by flow and creation time (reports) |
//! | `T` | `id(8) \| seq(8)` | `Vec<`[`TimelineEntry`](super::TimelineEntry)`>`: the entries one checkpoint added |
//! | `r` | `hour(8) \| seq(8)` | `Vec<`[`Rating`](super::Rating)`>` without a comment, of that hour, one chunk per checkpoint |
//! | `R` | `hour(8) \| seq(8)` | likewise the ratings with a comment (what comment analysis reads) |
//! | `i` | `hour(8) \| seq(8)` | `Vec<`[`Incident`](super::Incident)`>`, likewise |
//! | `o` | `id(8)` | [`OutMessage`](super::OutMessage) waiting to be sent |
//! | `w` | `id(8)` | [`WebhookCall`](super::WebhookCall) waiting to be delivered |
//! | `q` | `seq(8)` | [`ExportEvent`](super::export::ExportEvent) waiting to be published (`[export]`) |
//! | `x` | `msisdn` | empty: opted out |
//! | `e` | `lp(flow) \| key` | conversation id of an HTTP event key |
//! | `s` | `lp(flow) \| version` | a script version's source |
//! | `l` | `lp(flow) \| msisdn` | `created_at` of the newest conversation (survey fatigue) |
//! | `a` | [`mo`] | `received_at`: an MO whose step is stored but whose deliver_sm_resp may not have reached the SMSC |
//! | `p` | [`part`] | [`MoPart`](super::MoPart) of a message not yet complete |
//! | `d` | `smsc message id` | [`SentPart`](super::SentPart): which message an SMSC id belongs to |
//! | `m` | `outbox id(8)` | a sent message's status and its parts' states (`delivery::Delivery`) |
//! | `y` | `lp(flow) \| year(2) month(1) day(1) \| lp(operator) \| channel` | a CSI tally of one local day (`tally.rs`) |
//! | `b` | `slot(8) \| lp(location) \| button` | an audit tally of one quarter hour (UTC) of a button's presses (`audit_tally.rs`) |
//! | `z` | | [`TALLY_ZONE`]: the IANA zone the tallies' days are in |
//! | `k` | | [`CHECKPOINT`]: the last log seq the checkpoint covers |
//! | `Q` | | [`EXPORT_MARK`]: whether export events are derived, and the last seq |
//! | `n` | | [`IDS`]: the last id handed out when the checkpoint was frozen (`u64`) |
//! | `N` | | [`CENSUS`]: how many entries the checkpoint's tables hold (`state/census.rs`) |
//!
//! `seq` in `T`, `r` and `i` is the checkpoint's log seq: every chunk key is new, so a
//! checkpoint never reads what it writes, and a time range is a key range.
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

/// The layout this code reads and writes. A store of version 1 (smsflow up to d911031: one
/// tree per table, every step a transaction) is migrated at start (`v1.rs`); any other
/// version is an error ([`StoreError::SchemaMismatch`]).
pub const SCHEMA_VERSION: u32 = 2;

/// First byte of every non-empty value (other than the schema version itself).
pub const ENCODING_VERSION: u8 = 1;

pub const LOG: &str = "log";
pub const STATE: &str = "state";
pub const META: &str = "meta";

/// The [`META`] key of the schema version.
pub const META_SCHEMA_VERSION: &[u8] = b"schema_version";

/// The [`STATE`] key of the checkpoint's log seq.
pub const CHECKPOINT: &[u8] = b"k";

/// The [`STATE`] key of the census: the checkpoint's table sizes, checked at open.
pub const CENSUS: &[u8] = b"N";

/// The [`STATE`] key of the id mark: ids up to it were handed out (`Store::next_id`).
/// Absent in a store written before it, whose ids came from sled's own counter.
pub const IDS: &[u8] = b"n";

pub const CONVERSATION: u8 = b'c';
pub const HOT: u8 = b'h';
pub const CREATED: u8 = b'C';
pub const TIMELINE: u8 = b'T';
pub const RATINGS: u8 = b'r';
pub const COMMENTED: u8 = b'R';
pub const INCIDENTS: u8 = b'i';
pub const OUTBOX: u8 = b'o';
pub const WEBHOOK: u8 = b'w';
pub const EXPORT: u8 = b'q';
pub const OPT_OUT: u8 = b'x';
pub const EVENT_KEY: u8 = b'e';
pub const SCRIPT: u8 = b's';
pub const LAST_BY_PARTY: u8 = b'l';
pub const MO_MARK: u8 = b'a';
pub const PART: u8 = b'p';
pub const SENT_PART: u8 = b'd';
pub const DELIVERY: u8 = b'm';
pub const TALLY: u8 = b'y';
/// Service quality audit tallies (`audit_tally.rs`).
pub const AUDIT: u8 = b'b';
/// `LIVE | flow` → the version of the flow that last passed its tests (see `Store::live_script`).
pub const LIVE: u8 = b'L';

/// The [`STATE`] key of the export switch and the last export seq.
pub const EXPORT_MARK: &[u8] = b"Q";

/// The [`STATE`] key of the zone the tallies are counted in.
pub const TALLY_ZONE: &[u8] = b"z";

const HOUR_MS: Millis = 3_600_000;

// --- key parts -------------------------------------------------------------------------

/// `i64` as 8 bytes whose byte order is numeric order (sign bit flipped, big-endian).
pub fn put_millis(key: &mut Vec<u8>, at: Millis) {
    key.extend_from_slice(&time(at));
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

/// The 8-byte order-preserving form of a time.
pub fn time(at: Millis) -> [u8; 8] {
    ((at as u64) ^ (1 << 63)).to_be_bytes()
}

fn millis_from(bytes: [u8; 8]) -> Millis {
    (u64::from_be_bytes(bytes) ^ (1 << 63)) as Millis
}

/// A time written by [`put_millis`] back, from its 8 bytes.
pub fn millis_at(bytes: &[u8]) -> Option<Millis> {
    bytes.try_into().ok().map(millis_from)
}

/// The `u64` in the last 8 bytes of a key (the id of most index keys).
pub fn trailing_u64(key: &[u8]) -> Result<u64, StoreError> {
    key.len()
        .checked_sub(8)
        .and_then(|at| key[at..].try_into().ok())
        .map(u64::from_be_bytes)
        .ok_or_else(|| StoreError::decode(STATE, key, "key shorter than 8 bytes"))
}

fn tagged(tag: u8, capacity: usize) -> Vec<u8> {
    let mut key = Vec::with_capacity(1 + capacity);
    key.push(tag);
    key
}

fn tagged_u64(tag: u8, n: u64) -> Vec<u8> {
    let mut key = tagged(tag, 8);
    put_u64(&mut key, n);
    key
}

/// `tag | lp(a) | b`.
fn tagged_pair(tag: u8, a: &str, b: &str) -> Vec<u8> {
    let mut key = tagged(tag, 4 + a.len() + b.len());
    put_lp(&mut key, a);
    key.extend_from_slice(b.as_bytes());
    key
}

// --- key builders ----------------------------------------------------------------------

pub fn conversation(id: ConversationId) -> Vec<u8> {
    tagged_u64(CONVERSATION, id)
}

pub fn hot(id: ConversationId) -> Vec<u8> {
    tagged_u64(HOT, id)
}

/// All `C` keys of `flow`.
pub fn created_prefix(flow: &str) -> Vec<u8> {
    let mut key = tagged(CREATED, 4 + flow.len() + 16);
    put_lp(&mut key, flow);
    key
}

pub fn created(flow: &str, created_at: Millis, id: ConversationId) -> Vec<u8> {
    let mut key = created_prefix(flow);
    put_millis(&mut key, created_at);
    put_u64(&mut key, id);
    key
}

/// The `C` key of `flow` at `created_at` before every id: a bound of a time range.
pub fn created_from(flow: &str, created_at: Millis) -> Vec<u8> {
    let mut key = created_prefix(flow);
    put_millis(&mut key, created_at);
    key
}

pub fn timeline_prefix(id: ConversationId) -> Vec<u8> {
    tagged_u64(TIMELINE, id)
}

pub fn timeline(id: ConversationId, seq: u64) -> Vec<u8> {
    let mut key = timeline_prefix(id);
    put_u64(&mut key, seq);
    key
}

/// The hour a rating or incident at `at` is chunked under.
pub fn hour(at: Millis) -> Millis {
    at.div_euclid(HOUR_MS).saturating_mul(HOUR_MS)
}

/// A chunk of ratings (`tag` [`RATINGS`]) or incidents ([`INCIDENTS`]) of one hour.
pub fn chunk(tag: u8, hour: Millis, seq: u64) -> Vec<u8> {
    let mut key = tagged(tag, 16);
    put_millis(&mut key, hour);
    put_u64(&mut key, seq);
    key
}

/// The first chunk key of `hour`: a bound of a time-range scan.
pub fn chunk_from(tag: u8, hour: Millis) -> Vec<u8> {
    let mut key = tagged(tag, 8);
    put_millis(&mut key, hour);
    key
}

pub fn outbox(id: u64) -> Vec<u8> {
    tagged_u64(OUTBOX, id)
}

pub fn webhook(id: u64) -> Vec<u8> {
    tagged_u64(WEBHOOK, id)
}

pub fn export(seq: u64) -> Vec<u8> {
    tagged_u64(EXPORT, seq)
}

pub fn opt_out(msisdn: &str) -> Vec<u8> {
    let mut key = tagged(OPT_OUT, msisdn.len());
    key.extend_from_slice(msisdn.as_bytes());
    key
}

pub fn event_key(flow: &str, key: &str) -> Vec<u8> {
    tagged_pair(EVENT_KEY, flow, key)
}

pub fn live(flow: &str) -> Vec<u8> {
    let mut key = tagged(LIVE, flow.len());
    key.extend_from_slice(flow.as_bytes());
    key
}

pub fn script(flow: &str, version: &str) -> Vec<u8> {
    tagged_pair(SCRIPT, flow, version)
}

pub fn last_by_party(flow: &str, msisdn: &str) -> Vec<u8> {
    tagged_pair(LAST_BY_PARTY, flow, msisdn)
}

/// An MO's content: the deliver_sm fields a redelivery repeats (the SMSC gives a redelivered
/// MO a new sequence number and nothing else to recognise it by). `concat` is
/// `(reference, total, seq)` for a part of a concatenated message.
/// `MO_MARK | kind | lp(source) | lp(destination) | data_coding | payload`, the kind first
/// so a mark says cheaply what identifies it: 0 content only, 1 and the u16 SMSC reference,
/// 2 and the concatenation (u16 reference, total, seq) of a part.
pub fn mo(
    source: &str,
    destination: &str,
    data_coding: u8,
    concat: Option<(u16, u8, u8)>,
    reference: Option<u16>,
    payload: &[u8],
) -> Vec<u8> {
    let mut k = Vec::with_capacity(19 + source.len() + destination.len() + payload.len());
    k.push(MO_MARK);
    match (concat, reference) {
        (Some((reference, total, seq)), _) => {
            k.push(2);
            k.extend_from_slice(&reference.to_be_bytes());
            k.extend_from_slice(&[total, seq]);
        }
        (None, Some(r)) => {
            k.push(1);
            k.extend_from_slice(&r.to_be_bytes());
        }
        (None, None) => k.push(0),
    }
    put_lp(&mut k, source);
    put_lp(&mut k, destination);
    k.push(data_coding);
    k.extend_from_slice(payload);
    k
}

pub fn part(source: &str, destination: &str, reference: u16, total: u8, seq: u8) -> Vec<u8> {
    let mut k = vec![PART];
    put_lp(&mut k, source);
    put_lp(&mut k, destination);
    k.extend_from_slice(&reference.to_be_bytes());
    k.push(total);
    k.push(seq);
    k
}

pub fn sent_part(smsc_message_id: &str) -> Vec<u8> {
    let mut k = tagged(SENT_PART, smsc_message_id.len());
    k.extend_from_slice(smsc_message_id.as_bytes());
    k
}

pub fn delivery(outbox_id: u64) -> Vec<u8> {
    tagged_u64(DELIVERY, outbox_id)
}

pub fn log(seq: u64) -> [u8; 8] {
    seq.to_be_bytes()
}

/// The `created_at` of a `C` key (after `lp(flow)`, before the id).
pub fn created_at_of(key: &[u8]) -> Result<Millis, StoreError> {
    key.len()
        .checked_sub(16)
        .and_then(|at| key[at..at + 8].try_into().ok())
        .map(millis_from)
        .ok_or_else(|| StoreError::decode(STATE, key, "not a conversation time key"))
}

/// The flow of a `C` key (its `lp(flow)`).
pub fn created_flow(key: &[u8]) -> Result<String, StoreError> {
    let bad = || StoreError::decode(STATE, key, "not a conversation time key");
    let len = key.get(1..5).ok_or_else(bad)?;
    let len = u32::from_be_bytes(len.try_into().map_err(|_| bad())?) as usize;
    let flow = key.get(5..5 + len).filter(|_| key.len() == 5 + len + 16);
    String::from_utf8(flow.ok_or_else(bad)?.to_vec()).map_err(|_| bad())
}

// --- values ----------------------------------------------------------------------------

/// [`ENCODING_VERSION`] then named MessagePack.
pub fn encode<T: Serialize + ?Sized>(key: &[u8], value: &T) -> Result<Vec<u8>, StoreError> {
    let mut out = vec![ENCODING_VERSION];
    rmp_serde::encode::write_named(&mut out, value).map_err(|e| StoreError::Encode {
        tree: STATE,
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
        let a = created("survey", 0, 1);
        assert!(!a.starts_with(&created_prefix("surve")));
        assert!(a.starts_with(&created_prefix("survey")));
        assert!(!event_key("99890", "1").starts_with(&event_key("998901", "")));
    }

    #[test]
    fn hours_and_chunks_sort_by_time() {
        assert_eq!(hour(-1), -HOUR_MS);
        assert_eq!(hour(HOUR_MS + 5), HOUR_MS);
        assert!(chunk(RATINGS, hour(-1), 9) < chunk(RATINGS, hour(0), 1));
        assert_eq!(created_at_of(&created("survey", -7, 3)).unwrap(), -7);
        assert_eq!(created_flow(&created("survey", -7, 3)).unwrap(), "survey");
        assert_eq!(created_flow(&created("", 0, 1)).unwrap(), "");
        assert!(created_flow(&created_prefix("survey")).is_err());
    }
}
