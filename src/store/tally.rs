//! CSI tallies: per local day (the store's time zone) × flow × operator × channel, the
//! ratings per score, surveys sent and delivered, and finished conversations per outcome.
//!
//! They change in the same record as the step that causes them (a rating, a question
//! queued, a receipt, a conversation's end), so they always agree with the raw records and a
//! report reads a few keys per day instead of every rating. They are small (one value per
//! day and key) and live in memory whole, checkpointed like the rest. A store opened in
//! another zone, or written before tallies (schema 1), rebuilds them from the raw records.
//!
//! Operator and channel of a send or an outcome are the conversation's `this.operator` and
//! `this.channel` (the shipped survey sets them; other flows leave them empty).
//!
//! What a conversation's records count (`of_history`) rebuilds them, and
//! `disagreements` holds stored tallies against that recount for `smsflow store verify`.

use std::collections::{BTreeMap, BTreeSet};

use jiff::civil::Date;
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};

use super::{
    Conversation, MessageStatus, Millis, Rating, StoreError, TimelineStatus, keys, show_key,
};

/// Which tally: a local day, and the flow, operator and channel.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TallyKey {
    pub day: Date,
    pub flow: String,
    pub operator: String,
    pub channel: String,
}

/// The counts of one [`TallyKey`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    /// Ratings recorded that day, per score.
    pub scores: BTreeMap<u8, u64>,
    /// Conversations created that day whose opening step queued a message (a survey's
    /// question).
    pub sent: u64,
    /// Of those, the ones whose opening message a receipt marked delivered.
    pub delivered: u64,
    /// Conversations created that day that finished, per outcome ("error" for a hook that
    /// failed).
    pub outcomes: BTreeMap<String, u64>,
}

impl Tally {
    pub fn responses(&self) -> u64 {
        self.scores.values().sum()
    }
}

/// How a record changes the tallies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delta {
    Rating(u8),
    Sent,
    Delivered,
    Outcome(String),
}

/// The local day of `at` in `zone`.
pub(super) fn day(zone: &TimeZone, at: Millis) -> Date {
    match jiff::Timestamp::from_millisecond(at) {
        Ok(ts) => zone.to_datetime(ts).date(),
        Err(_) if at < 0 => Date::MIN,
        Err(_) => Date::MAX,
    }
}

pub(super) fn of_rating(zone: &TimeZone, r: &Rating) -> (TallyKey, Delta) {
    let key = TallyKey {
        day: day(zone, r.at),
        flow: r.flow.clone(),
        operator: r.operator.clone(),
        channel: r.channel.clone(),
    };
    (key, Delta::Rating(r.score))
}

/// The key of a conversation's sends and outcome: its creation day, its flow, and what its
/// state says of operator and channel.
pub(super) fn of_conversation(zone: &TimeZone, c: &Conversation) -> TallyKey {
    let (operator, channel) = operator_and_channel(&c.state);
    TallyKey {
        day: day(zone, c.created_at),
        flow: c.flow.clone(),
        operator,
        channel,
    }
}

/// A conversation state's `operator` and `channel` (empty when missing or not text).
pub fn operator_and_channel(state: &serde_json::Value) -> (String, String) {
    let text = |name: &str| {
        (state.get(name))
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_owned()
    };
    (text("operator"), text("channel"))
}

/// What a conversation's record and timeline say it counted, for a recount: sent when the
/// step that created it sent a message (its opening message, a survey's question), delivered
/// for each such message a receipt said was delivered, and its outcome once it ended.
///
/// The timeline does not keep `OutMessage::opening`; an opening message is an SMS (it has an
/// outbox id; a webhook call or a send dropped for an opt-out has none) written at the
/// conversation's creation, before anything came in (an inbox conversation starts with the
/// MO it answers). That is what the event hook's step writes, and no other step does.
pub(super) fn of_history(c: &Conversation, timeline: &[super::TimelineEntry]) -> Vec<Delta> {
    let mut deltas = Vec::new();
    let opening: Vec<&super::TimelineEntry> = (timeline.iter())
        .take_while(|e| e.direction == super::Direction::Out && e.at == c.created_at)
        .filter(|e| e.message_id.is_some())
        .collect();
    if !opening.is_empty() {
        deltas.push(Delta::Sent);
    }
    for _ in opening
        .iter()
        .filter(|e| e.status == TimelineStatus::Message(MessageStatus::Delivered))
    {
        deltas.push(Delta::Delivered);
    }
    match &c.status {
        super::ConversationStatus::Open => {}
        super::ConversationStatus::Finished { outcome } => {
            deltas.push(Delta::Outcome(outcome.clone()))
        }
        super::ConversationStatus::Errored { .. } => deltas.push(Delta::Outcome("error".into())),
    }
    deltas
}

/// Where the `stored` tallies (by key: the raw key and the tally) disagree with the ones the
/// raw records count ([`of_history`], `counted`), each a problem naming its key: ratings
/// per score and outcomes per key exactly; surveys sent and delivered per day and flow
/// exactly. A send is counted under the operator and channel the conversation's state had when
/// it was sent, which no record keeps (the recount sees the last state), so only their sum per
/// day is a fact the records hold. The reports of every survey flow read these numbers: a
/// tally that disagrees with its records is a report that is wrong.
pub(super) fn disagreements(
    stored: &BTreeMap<TallyKey, (Vec<u8>, Tally)>,
    counted: &BTreeMap<TallyKey, Tally>,
) -> Vec<String> {
    let mut problems = Vec::new();
    let empty = Tally::default();
    for (k, (key, stored)) in stored {
        let c = counted.get(k).unwrap_or(&empty);
        if c.scores != stored.scores || c.outcomes != stored.outcomes {
            problems.push(format!(
                "state/{}: stored {stored:?} but the ratings and conversations count {c:?}",
                show_key(key)
            ));
        }
    }
    for (k, c) in counted {
        let counts = !c.scores.is_empty() || !c.outcomes.is_empty();
        if counts && !stored.contains_key(k) {
            problems.push(format!(
                "state/{}: no tally stored, the ratings and conversations count {c:?}",
                show_key(&key_bytes(k))
            ));
        }
    }
    let sends = |tallies: &mut dyn Iterator<Item = (&TallyKey, &Tally)>| {
        let mut days: BTreeMap<(Date, String), (u64, u64)> = BTreeMap::new();
        for (k, t) in tallies.filter(|(_, t)| t.sent > 0 || t.delivered > 0) {
            let day = days.entry((k.day, k.flow.clone())).or_default();
            *day = (day.0 + t.sent, day.1 + t.delivered);
        }
        days
    };
    let kept = sends(&mut stored.iter().map(|(k, (_, t))| (k, t)));
    let recounted = sends(&mut counted.iter());
    let days: BTreeSet<_> = kept.keys().chain(recounted.keys()).collect();
    for day in days {
        let (s, c) = (kept.get(day), recounted.get(day));
        if s != c {
            let (s, c) = (
                s.copied().unwrap_or_default(),
                c.copied().unwrap_or_default(),
            );
            problems.push(format!(
                "tallies of flow {:?} on {}: {} sent and {} delivered stored, but the \
                 conversations count {} sent and {} delivered",
                day.1, day.0, s.0, s.1, c.0, c.1
            ));
        }
    }
    problems
}

/// A zone's name as the store records it: its IANA name, else `UTC±hh:mm` of its offset now.
pub fn zone_name(zone: &TimeZone) -> String {
    match zone.iana_name() {
        Some(name) => name.to_owned(),
        None => format!("UTC{}", zone.to_offset(jiff::Timestamp::now())),
    }
}

pub(super) fn apply(tally: &mut Tally, delta: &Delta) {
    match delta {
        Delta::Rating(score) => *tally.scores.entry(*score).or_default() += 1,
        Delta::Sent => tally.sent += 1,
        Delta::Delivered => tally.delivered += 1,
        Delta::Outcome(outcome) => *tally.outcomes.entry(outcome.clone()).or_default() += 1,
    }
}

/// `y | lp(flow) | day(4) | lp(operator) | channel`: a flow's days are a key range.
pub(super) fn key_bytes(key: &TallyKey) -> Vec<u8> {
    let mut k = prefix(&key.flow);
    k.extend_from_slice(&day_bytes(key.day));
    keys::put_lp(&mut k, &key.operator);
    k.extend_from_slice(key.channel.as_bytes());
    k
}

pub(super) fn prefix(flow: &str) -> Vec<u8> {
    let mut k = vec![keys::TALLY];
    keys::put_lp(&mut k, flow);
    k
}

/// A day as year (sign bit flipped, BE), month, day: byte order is date order.
fn day_bytes(day: Date) -> [u8; 4] {
    let [y0, y1] = ((day.year() as u16) ^ (1 << 15)).to_be_bytes();
    [y0, y1, day.month() as u8, day.day() as u8]
}

pub(super) fn key_from(bytes: &[u8]) -> Result<TallyKey, StoreError> {
    let bad = || StoreError::decode(keys::STATE, bytes, "not a tally key");
    let rest = bytes.get(1..).ok_or_else(bad)?;
    let (flow, rest) = take_lp(rest).ok_or_else(bad)?;
    let d = rest.get(..4).ok_or_else(bad)?;
    let year = (u16::from_be_bytes([d[0], d[1]]) ^ (1 << 15)) as i16;
    let day = Date::new(year, d[2] as i8, d[3] as i8).map_err(|_| bad())?;
    let (operator, channel) = take_lp(&rest[4..]).ok_or_else(bad)?;
    Ok(TallyKey {
        day,
        flow,
        operator,
        channel: String::from_utf8(channel.to_vec()).map_err(|_| bad())?,
    })
}

fn take_lp(bytes: &[u8]) -> Option<(String, &[u8])> {
    let len = u32::from_be_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
    let s = String::from_utf8(bytes.get(4..4 + len)?.to_vec()).ok()?;
    Some((s, &bytes[4 + len..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tally_keys_round_trip_and_sort_by_flow_then_day() {
        let key = |y, m, d, op: &str| TallyKey {
            day: Date::new(y, m, d).unwrap(),
            flow: "survey".into(),
            operator: op.into(),
            channel: "call".into(),
        };
        let a = key(2026, 11, 30, "op-9");
        let b = key(2026, 12, 1, "op-1");
        assert!(key_bytes(&a) < key_bytes(&b));
        assert_eq!(key_from(&key_bytes(&a)).unwrap(), a);
        assert_eq!(
            key_from(&key_bytes(&key(-5, 1, 1, ""))).unwrap(),
            key(-5, 1, 1, "")
        );
        assert!(key_bytes(&key(-5, 1, 1, "")) < key_bytes(&a));
        assert!(key_bytes(&a).starts_with(&prefix("survey")));
    }
}
