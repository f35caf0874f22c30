//! Open calls now: each staff call waiting for an OK (`ringing`) or taken and not resolved yet
//! (`acknowledged`), newest first, with its button, location, the level it reached, who took
//! it and its age (`GET /api/v1/incidents`, `smsflow report incidents --open`, the dashboard).
//!
//! The store keeps which open conversations have such a call in memory; each row is the
//! call's latest incident record (`record_incident`), read from its conversation.

use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};

use super::feed::mask;
use crate::store::{Conversation, ConversationId, IncidentState, Millis, Store, StoreError};

/// Rows per page when `limit` is not given, and the most a page may have.
pub const DEFAULT_LIMIT: usize = 50;
pub const MAX_LIMIT: usize = 500;

/// Which open calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Which {
    /// Ringing or taken: every call not over.
    #[default]
    Open,
    Ringing,
    Acknowledged,
}

impl Which {
    /// `open`, `ringing` or `acknowledged` (what `?state=` takes).
    pub fn parse(text: &str) -> Result<Which, String> {
        match text {
            "open" => Ok(Which::Open),
            "ringing" => Ok(Which::Ringing),
            "acknowledged" => Ok(Which::Acknowledged),
            other => Err(format!(
                "state {other:?} is not one of open, ringing, acknowledged"
            )),
        }
    }

    fn takes(self, state: IncidentState) -> bool {
        match self {
            Which::Open => state != IncidentState::Closed,
            Which::Ringing => state == IncidentState::Ringing,
            Which::Acknowledged => state == IncidentState::Acknowledged,
        }
    }
}

/// What rows to give.
#[derive(Debug, Clone, Default)]
pub struct OpenQuery {
    pub which: Which,
    pub limit: usize,
    /// Rows strictly after this one: (started at, conversation) of the last row given.
    pub after: Option<(Millis, ConversationId)>,
    /// Whole MSISDNs instead of masked ones.
    pub full_numbers: bool,
}

/// One open call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpenCall {
    /// The event id of the incident.
    pub id: String,
    pub conversation: ConversationId,
    pub button: String,
    pub location: String,
    /// `ringing` or `acknowledged`.
    pub state: String,
    /// The level calling now (ringing), or the one that took it.
    pub level: Option<u64>,
    pub round: Option<u64>,
    /// Who took it (masked unless the token may see numbers); null while ringing.
    pub taken_by: Option<String>,
    /// When it was pressed, RFC 3339 in the service's zone.
    pub started_at: String,
    pub age_seconds: f64,
}

/// A page: `{"items": [...], "next": CURSOR|null}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpenPage {
    pub items: Vec<OpenCall>,
    pub next: Option<String>,
}

/// The page `query` asks for, ages at `now`, times in `zone`.
pub fn page(
    store: &Store,
    query: &OpenQuery,
    now: Millis,
    zone: &TimeZone,
) -> Result<OpenPage, StoreError> {
    let limit = query.limit.clamp(1, MAX_LIMIT);
    let calls = store.open_calls()?;
    let mut rows = (calls.iter())
        .filter(|(_, state)| query.which.takes(*state))
        .filter(|(c, _)| query.after.is_none_or(|after| (c.created_at, c.id) < after));
    let mut items = Vec::new();
    let mut last = None;
    for (c, state) in rows.by_ref().take(limit) {
        items.push(row(c, *state, now, zone, query.full_numbers));
        last = Some((c.created_at, c.id));
    }
    let next = match (rows.next(), last) {
        (Some(_), Some(last)) => Some(encode(last)),
        _ => None,
    };
    Ok(OpenPage { items, next })
}

fn row(
    c: &Conversation,
    state: IncidentState,
    now: Millis,
    zone: &TimeZone,
    full: bool,
) -> OpenCall {
    let null = serde_json::Value::Null;
    let f = c.incident.as_ref().unwrap_or(&null);
    let text = |name: &str| match f.get(name) {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(serde_json::Value::Number(n)) => n.to_string(),
        _ => String::new(),
    };
    let number = |name: &str| f.get(name).and_then(|v| v.as_u64());
    let taken_by = (state == IncidentState::Acknowledged)
        .then(|| f.get("acknowledged_by").and_then(|v| v.as_str()))
        .flatten()
        .map(|by| {
            if full || !by.bytes().all(|b| b.is_ascii_digit()) {
                by.to_owned()
            } else {
                mask(by)
            }
        });
    OpenCall {
        id: text("id"),
        conversation: c.id,
        button: text("button"),
        location: text("location"),
        state: state.name().to_owned(),
        level: match state {
            IncidentState::Ringing => number("level_reached"),
            _ => number("level").or(number("level_reached")),
        },
        round: number("rounds"),
        taken_by,
        started_at: jiff::Timestamp::from_millisecond(c.created_at)
            .map(|t| {
                t.to_zoned(zone.clone())
                    .strftime("%Y-%m-%dT%H:%M:%S%:z")
                    .to_string()
            })
            .unwrap_or_default(),
        age_seconds: ((now - c.created_at).max(0) as f64 / 1000.0).round(),
    }
}

/// The opaque cursor: hex of the last row's start and conversation.
pub fn encode((at, conversation): (Millis, ConversationId)) -> String {
    format!("{:016x}{:016x}", at as u64, conversation)
}

pub fn decode(cursor: &str) -> Option<(Millis, ConversationId)> {
    if cursor.len() != 32 || !cursor.is_ascii() {
        return None;
    }
    let at = u64::from_str_radix(&cursor[..16], 16).ok()? as Millis;
    let conversation = u64::from_str_radix(&cursor[16..], 16).ok()?;
    Some((at, conversation))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_states_parse() {
        let c = (1_794_312_000_123, 42);
        assert_eq!(decode(&encode(c)), Some(c));
        assert_eq!(decode("zz"), None);
        assert_eq!(Which::parse("ringing"), Ok(Which::Ringing));
        assert!(
            Which::parse("closed")
                .unwrap_err()
                .contains("open, ringing, acknowledged")
        );
    }
}
