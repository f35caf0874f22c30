//! Service quality audit tallies (`smsflow report audit`): per quarter hour × location ×
//! button, the complaints (a restaurant's cancel presses), the manager calls pressed, and how
//! many of those the manager answered, nobody answered, or were cancelled.
//!
//! A conversation counts by its incident as last recorded (`Conversation::incident`) when
//! that has `kind` `"complaint"` or `"manager_call"` (`scripts/complaint.rhai`, and the
//! escalation it calls the manager through): [`facts`] says what one incident counts, and a
//! step adds the difference between the facts of its conversation's incident before and after
//! it, in the same record as the step. So the tallies always equal what the conversations'
//! latest incidents count (`smsflow store verify` recounts them, `disagreements`), a call
//! counts from its press, and its answer once it comes.
//!
//! Quarter hours of UTC, not local days: every time zone's offset is a whole number of quarter
//! hours, so a report in any zone cuts its days and hours exactly from these keys, and nothing
//! is recounted when `service.timezone` changes. They live in memory whole, like the CSI
//! tallies: a key per quarter hour, location and button that had a press.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Commit, ConversationId, IncidentState, Millis, StoreError, keys, show_key};

/// A slot's length: a quarter hour.
pub const SLOT_MS: Millis = 15 * 60 * 1000;

/// Which tally: a quarter hour (UTC) and the button's location and name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AuditKey {
    /// Quarter hours since the Unix epoch.
    pub slot: i64,
    pub location: String,
    pub button: String,
}

impl AuditKey {
    /// When the slot begins (ms).
    pub fn starts_at(&self) -> Millis {
        self.slot.saturating_mul(SLOT_MS)
    }
}

/// The counts of one [`AuditKey`]. `calls = answered + not_answered + cancelled + open`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditTally {
    /// Cancel presses: complaints without a call.
    pub complaints: u64,
    /// Manager calls pressed.
    pub calls: u64,
    /// Of those, the ones a manager answered (OK).
    pub answered: u64,
    /// Over, and nobody answered.
    pub not_answered: u64,
    /// Cancelled at the button before anyone answered.
    pub cancelled: u64,
}

impl AuditTally {
    fn values(&self) -> [u64; 5] {
        [
            self.complaints,
            self.calls,
            self.answered,
            self.not_answered,
            self.cancelled,
        ]
    }

    fn from_values(v: [u64; 5]) -> AuditTally {
        AuditTally {
            complaints: v[0],
            calls: v[1],
            answered: v[2],
            not_answered: v[3],
            cancelled: v[4],
        }
    }

    pub fn add(&mut self, other: &AuditTally) {
        let (a, b) = (self.values(), other.values());
        *self = AuditTally::from_values(std::array::from_fn(|i| a[i] + b[i]));
    }
}

/// What one incident, of a call that began at `at`, counts: `None` for incidents that are
/// not the audit's (staff calls of a ward, alerts).
pub fn facts(at: Millis, incident: &serde_json::Value) -> Option<(AuditKey, AuditTally)> {
    let kind = incident.get("kind").and_then(|k| k.as_str())?;
    let text = |name: &str| match incident.get(name) {
        Some(serde_json::Value::String(s)) => s.trim().to_owned(),
        Some(serde_json::Value::Number(n)) => n.to_string(),
        _ => String::new(),
    };
    let key = AuditKey {
        slot: at.div_euclid(SLOT_MS),
        location: text("location"),
        button: text("button"),
    };
    let mut t = AuditTally::default();
    match kind {
        "complaint" => t.complaints = 1,
        "manager_call" => {
            t.calls = 1;
            let acknowledged = incident.get("acknowledged").and_then(|a| a.as_bool()) == Some(true);
            let closed = IncidentState::of(incident) == IncidentState::Closed;
            let cancelled = incident.get("outcome").and_then(|o| o.as_str()) == Some("cancelled");
            t.answered = u64::from(acknowledged);
            t.not_answered = u64::from(closed && !acknowledged && !cancelled);
            t.cancelled = u64::from(closed && !acknowledged && cancelled);
        }
        _ => return None,
    }
    Some((key, t))
}

/// A change to one tally: signed, since a call's answer moves it from open to answered.
pub(super) type Delta = (AuditKey, [i64; 5]);

/// What commit `c` changes in the tallies: the facts of its conversation's incident after the
/// step less those before (`before(id)`: the stored conversation's creation and incident, if
/// it is stored). Reads `before` only for a conversation that has an incident.
pub(super) fn deltas(
    c: &Commit,
    before: impl FnOnce(
        ConversationId,
    ) -> Result<Option<(Millis, Option<serde_json::Value>)>, StoreError>,
) -> Result<Vec<Delta>, StoreError> {
    let Some(new) = &c.conversation else {
        return Ok(Vec::new());
    };
    let Some(incident) = &new.incident else {
        return Ok(Vec::new());
    };
    let after = facts(new.created_at, incident);
    let old = match before(new.id)? {
        Some((at, Some(old))) => facts(at, &old),
        _ => None,
    };
    let signed = |t: &AuditTally, sign: i64| t.values().map(|v| sign * v as i64);
    let mut out: Vec<Delta> = Vec::new();
    match (old, after) {
        (Some((ok, o)), Some((nk, n))) if ok == nk => {
            let (o, n) = (o.values(), n.values());
            let d: [i64; 5] = std::array::from_fn(|i| n[i] as i64 - o[i] as i64);
            if d.iter().any(|x| *x != 0) {
                out.push((nk, d));
            }
        }
        (old, after) => {
            out.extend(old.map(|(k, t)| (k, signed(&t, -1))));
            out.extend(after.map(|(k, t)| (k, signed(&t, 1))));
        }
    }
    Ok(out)
}

/// The tallies, whole, as the state keeps them.
#[derive(Debug, Default)]
pub(super) struct AuditTallies {
    map: BTreeMap<AuditKey, AuditTally>,
}

/// A write the state makes of a changed tally: its key and the value, `None` to remove it.
pub(super) type Write = (Vec<u8>, Option<Vec<u8>>);

impl AuditTallies {
    /// The tallies of a checkpoint.
    pub fn load(cold: &sled::Tree) -> Result<AuditTallies, StoreError> {
        let mut map = BTreeMap::new();
        for entry in cold.scan_prefix([keys::AUDIT]) {
            let (key, value) = entry?;
            let (k, t) = entry_of(&key, &value)?;
            map.insert(k, t);
        }
        Ok(AuditTallies { map })
    }

    /// Applies `deltas`; what to write (a tally that comes to nothing is removed).
    pub fn apply(&mut self, deltas: &[Delta]) -> Vec<Write> {
        let mut writes = Vec::with_capacity(deltas.len());
        for (key, d) in deltas {
            let t = self.map.entry(key.clone()).or_default();
            let v = t.values();
            *t = AuditTally::from_values(std::array::from_fn(|i| v[i].saturating_add_signed(d[i])));
            let bytes = key_bytes(key);
            if *t == AuditTally::default() {
                self.map.remove(key);
                writes.push((bytes, None));
            } else {
                // Five integers always encode.
                writes.push((bytes.clone(), keys::encode(&bytes, &*t).ok()));
            }
        }
        writes
    }

    /// The tallies of the slots that begin in `[from, to)`.
    pub fn range(&self, from: Millis, to: Millis) -> Vec<(AuditKey, AuditTally)> {
        let first = AuditKey {
            slot: from.div_euclid(SLOT_MS) + i64::from(from.rem_euclid(SLOT_MS) != 0),
            location: String::new(),
            button: String::new(),
        };
        (self.map.range(first..))
            .take_while(|(k, _)| k.starts_at() < to)
            .map(|(k, t)| (k.clone(), *t))
            .collect()
    }

    #[cfg(test)]
    pub fn all(&self) -> &BTreeMap<AuditKey, AuditTally> {
        &self.map
    }
}

/// What the conversations' latest incidents count (`incidents`: each conversation's creation
/// and its incident), for `smsflow store verify`.
pub(super) fn recount(
    incidents: impl IntoIterator<Item = (Millis, serde_json::Value)>,
) -> BTreeMap<AuditKey, AuditTally> {
    let mut map: BTreeMap<AuditKey, AuditTally> = BTreeMap::new();
    for (at, incident) in incidents {
        if let Some((k, t)) = facts(at, &incident) {
            map.entry(k).or_default().add(&t);
        }
    }
    map
}

/// Where the stored tallies (by key: the raw key and the tally) disagree with the recount,
/// each a problem naming its key.
pub(super) fn disagreements(
    stored: &BTreeMap<AuditKey, (Vec<u8>, AuditTally)>,
    counted: &BTreeMap<AuditKey, AuditTally>,
) -> Vec<String> {
    let mut problems = Vec::new();
    for (k, (key, t)) in stored {
        let c = counted.get(k).copied().unwrap_or_default();
        if c != *t {
            problems.push(format!(
                "state/{}: audit tally {t:?}, but the conversations' incidents count {c:?}",
                show_key(key)
            ));
        }
    }
    for (k, c) in counted.iter().filter(|(k, _)| !stored.contains_key(*k)) {
        problems.push(format!(
            "state/{}: no audit tally stored, the conversations' incidents count {c:?}",
            show_key(&key_bytes(k))
        ));
    }
    problems
}

/// `b | slot(8) | lp(location) | button`: a time range is a key range.
pub(super) fn key_bytes(key: &AuditKey) -> Vec<u8> {
    let mut k = vec![keys::AUDIT];
    keys::put_millis(&mut k, key.slot);
    keys::put_lp(&mut k, &key.location);
    k.extend_from_slice(key.button.as_bytes());
    k
}

/// A stored entry back into its key and tally.
pub(super) fn entry_of(key: &[u8], value: &[u8]) -> Result<(AuditKey, AuditTally), StoreError> {
    let bad = || StoreError::decode(keys::STATE, key, "not an audit tally key");
    let slot = keys::millis_at(key.get(1..9).ok_or_else(bad)?).ok_or_else(bad)?;
    let rest = &key[9..];
    let len = u32::from_be_bytes(
        rest.get(..4)
            .ok_or_else(bad)?
            .try_into()
            .map_err(|_| bad())?,
    );
    let location = rest.get(4..4 + len as usize).ok_or_else(bad)?;
    let button = &rest[4 + len as usize..];
    let text = |b: &[u8]| String::from_utf8(b.to_vec()).map_err(|_| bad());
    let k = AuditKey {
        slot,
        location: text(location)?,
        button: text(button)?,
    };
    Ok((k, keys::decode(keys::STATE, key, value)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_round_trip_and_sort_by_time() {
        let key = |slot, location: &str| AuditKey {
            slot,
            location: location.into(),
            button: "Стол 12".into(),
        };
        let (a, b) = (key(-3, "зал 2"), key(7, "зал 1"));
        assert!(key_bytes(&a) < key_bytes(&b));
        let t = AuditTally {
            complaints: 2,
            ..AuditTally::default()
        };
        let value = keys::encode(&key_bytes(&b), &t).unwrap();
        assert_eq!(entry_of(&key_bytes(&b), &value).unwrap(), (b, t));
    }

    #[test]
    fn a_call_counts_from_its_press_and_its_answer_once_it_comes() {
        let at = 1_795_428_000_000; // a quarter hour's start
        let ringing = json!({"kind": "manager_call", "state": "ringing", "location": "зал 1",
                             "button": "Стол 12", "acknowledged": false});
        let (key, t) = facts(at + 60_000, &ringing).unwrap();
        assert_eq!(key.starts_at(), at);
        assert_eq!((t.calls, t.answered, t.not_answered), (1, 0, 0));
        let answered = json!({"kind": "manager_call", "state": "closed", "outcome": "acknowledged",
                              "location": "зал 1", "button": "Стол 12", "acknowledged": true});
        assert_eq!(facts(at, &answered).unwrap().1.answered, 1);
        let gone = json!({"kind": "manager_call", "state": "closed", "outcome": "cancelled",
                          "acknowledged": false});
        assert_eq!(facts(at, &gone).unwrap().1.cancelled, 1);
        assert!(facts(at, &json!({"state": "closed", "acknowledged": true})).is_none());
        assert!(facts(at, &json!({"kind": "alert"})).is_none());

        let mut tallies = AuditTallies::default();
        let press = |i: &serde_json::Value| facts(at, i).unwrap();
        let (k, t) = press(&ringing);
        tallies.apply(&[(k.clone(), t.values().map(|v| v as i64))]);
        let (o, n) = (t.values(), press(&answered).1.values());
        let writes = tallies.apply(&[(
            k.clone(),
            std::array::from_fn(|i| n[i] as i64 - o[i] as i64),
        )]);
        assert_eq!(writes.len(), 1);
        assert_eq!(tallies.range(at, at + SLOT_MS)[0].1.answered, 1);
        assert!(tallies.range(at + 1, at + SLOT_MS).is_empty());
        // Taken back to nothing, the tally is removed.
        let writes = tallies.apply(&[(k, n.map(|v| -(v as i64)))]);
        assert_eq!(writes[0].1, None);
        assert!(tallies.all().is_empty());
    }
}
