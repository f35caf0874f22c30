//! Finding conversations over HTTP: `GET /api/v1/conversations` (a page of
//! [`Store::find`]) and `GET /api/v1/flows/{flow}/events/{id}` (the conversation an event
//! started). This file parses and checks the query and shapes the answer; what is read,
//! and how much at most, is the store's (`store/find.rs`).
//!
//! `GET /api/v1/conversations?msisdn=&flow=&status=&from=&to=&limit=&cursor=`, every
//! parameter optional:
//!
//! - `msisdn`: a party of the conversation (subscriber or staff), `+` allowed;
//! - `flow`: a loaded flow, or one with conversations in the store;
//! - `status`: `open`, `finished` or `errored`;
//! - `from`, `to`: when the conversation was created, both ends included: a date
//!   (`2026-11-01`, its whole day in `service.timezone`, as the reports) or an RFC 3339
//!   time (`2026-11-01T09:30:00+05:00`; `+` in a query is a space unless written `%2B`,
//!   and a space is read back as `+`);
//! - `limit`: conversations per page, 1 to [`MAX_LIMIT`], default [`DEFAULT_LIMIT`];
//! - `cursor`: the `next_cursor` of the page before.
//!
//! The answer is `{"conversations": [...], "next_cursor": "..." | null}`, newest first
//! (creation time, then id), each conversation as `GET /api/v1/conversations/{id}` shows it
//! without its state, timeline and timers, plus `"event_id"`. One request reads at most
//! [`MAX_SCANNED`](crate::store::find::MAX_SCANNED) conversations: a filter that matches
//! few of many can answer a page with fewer than `limit` conversations, even none, and a
//! `next_cursor` to go on from; `next_cursor` is null only once nothing older is left.
//! Anything else in the query, or a parameter given twice, is a 400 naming it.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use jiff::tz::TimeZone;
use serde_json::{Value, json};

use super::{ApiError, ApiState, Pairs, conversation_json, rfc3339};
use crate::flow::api::normalize_msisdn;
use crate::flow::engine::FlowEngine;
use crate::report::query::range_ms;
use crate::store::find::{Find, Found, Position, StatusFilter};
use crate::store::{Conversation, ConversationStatus, Millis, Store};

/// Conversations per page when `limit` is not given.
pub const DEFAULT_LIMIT: usize = 50;
/// The most conversations a page may have.
pub const MAX_LIMIT: usize = 500;

const NAMES: [&str; 7] = ["msisdn", "flow", "status", "from", "to", "limit", "cursor"];
const PARAMETERS: &str = "msisdn, flow, status, from, to, limit and cursor";

/// Runs `f` on the store off the async threads (a page can read many conversations).
pub(super) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::Internal(format!("the store task failed: {e}")))?
}

/// `GET /api/v1/conversations`; see the module documentation.
pub(super) async fn find_conversations(
    State(state): State<Arc<ApiState>>,
    pairs: Pairs,
) -> Result<Response, ApiError> {
    let Query(pairs) = pairs?;
    let find = parse(&pairs, state.engine.timezone())?;
    let (engine, store) = (state.engine.clone(), state.store.clone());
    let body = blocking(move || {
        if let Some(flow) = &find.flow {
            let known = known_flows(&engine, &store)?;
            if !known.contains(flow) {
                return Err(crate::report::query::unknown_flow(flow, &known).into());
            }
        }
        Ok(page_json(&store.find(&find).map_err(ApiError::from)?))
    })
    .await?;
    Ok((StatusCode::OK, axum::Json(body)).into_response())
}

/// `GET /api/v1/flows/{flow}/events/{id}`: the conversation the event `id` of `flow`
/// started, as `GET /api/v1/conversations/{id}` shows it.
pub(super) async fn event_conversation(
    State(state): State<Arc<ApiState>>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path((flow, key)) = path?;
    let (engine, store) = (state.engine.clone(), state.store.clone());
    let body = blocking(move || {
        let known = known_flows(&engine, &store)?;
        if !known.contains(&flow) {
            return Err(ApiError::UnknownFlow(format!(
                "no flow named {flow:?} (flows: {})",
                (known.iter().filter(|n| !n.is_empty()))
                    .map(String::as_str)
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        let id = (store
            .event_conversation(&flow, &key)
            .map_err(ApiError::from)?)
        .ok_or_else(|| ApiError::UnknownEvent(format!("no event {key:?} of flow {flow:?}")))?;
        conversation_json(&store, id)
    })
    .await?;
    Ok((StatusCode::OK, axum::Json(body)).into_response())
}

/// The flows that run now or ran (their conversations are still there to read).
pub(super) fn known_flows(
    engine: &FlowEngine,
    store: &Store,
) -> Result<BTreeSet<String>, ApiError> {
    let mut names = store.stored_flows().map_err(ApiError::from)?;
    names.extend(engine.flows().iter().map(|f| f.name.clone()));
    Ok(names)
}

/// The parameters of a query, each once and each one of `names` (a 400 naming the first that
/// is not, `takes` listing them), empty values dropped (as the report routes: an empty value
/// is no value), values trimmed.
pub(super) fn checked_pairs<'a>(
    pairs: &'a [(String, String)],
    names: &[&str],
    takes: &str,
) -> Result<Vec<(&'a str, &'a str)>, ApiError> {
    let bad = |detail: String| ApiError::BadRequest(detail);
    let mut seen: Vec<&str> = Vec::new();
    let mut out = Vec::new();
    for (name, value) in pairs {
        if !names.contains(&name.as_str()) {
            return Err(bad(format!(
                "unknown parameter {name:?} (this route takes {takes})"
            )));
        }
        if seen.contains(&name.as_str()) {
            return Err(bad(format!("parameter {name:?} is given twice")));
        }
        seen.push(name);
        let value = value.trim();
        if !value.is_empty() {
            out.push((name.as_str(), value));
        }
    }
    Ok(out)
}

/// The query of `GET /api/v1/conversations` as a [`Find`]; days are `zone`'s.
fn parse(pairs: &[(String, String)], zone: &TimeZone) -> Result<Find, ApiError> {
    let bad = |detail: String| ApiError::BadRequest(detail);
    let mut find = Find {
        limit: DEFAULT_LIMIT,
        ..Find::default()
    };
    let (mut from, mut to) = (None, None);
    for (name, value) in checked_pairs(pairs, &NAMES, PARAMETERS)? {
        match name {
            "msisdn" => {
                let msisdn = normalize_msisdn(value).ok_or_else(|| {
                    bad(format!(
                        "msisdn {value:?} is not an MSISDN (international digits, 5 to 15, \
                         optional +)"
                    ))
                })?;
                find.msisdn = Some(msisdn);
            }
            "flow" => find.flow = Some(value.to_owned()),
            "status" => find.status = Some(status(value)?),
            "from" => from = Some((value, time("from", value, zone)?.0)),
            "to" => to = Some((value, time("to", value, zone)?.1)),
            "limit" => find.limit = limit(value)?,
            // "cursor", the last of NAMES
            _ => find.before = Some(cursor_from(value)?),
        }
    }
    if let (Some((f, from)), Some((t, to))) = (from, to)
        && from >= to
    {
        return Err(bad(format!("from {f:?} is after to {t:?}")));
    }
    find.from = from.map_or(Millis::MIN, |(_, ms)| ms);
    find.to = to.map_or(Millis::MAX, |(_, ms)| ms);
    Ok(find)
}

fn status(value: &str) -> Result<StatusFilter, ApiError> {
    match value.to_ascii_lowercase().as_str() {
        "open" => Ok(StatusFilter::Open),
        "finished" => Ok(StatusFilter::Finished),
        "errored" => Ok(StatusFilter::Errored),
        _ => Err(ApiError::BadRequest(format!(
            "status {value:?} is not one of open, finished, errored"
        ))),
    }
}

fn limit(value: &str) -> Result<usize, ApiError> {
    value
        .parse::<usize>()
        .ok()
        .filter(|n| (1..=MAX_LIMIT).contains(n))
        .ok_or_else(|| {
            ApiError::BadRequest(format!(
                "limit {value:?} is not a whole number from 1 to {MAX_LIMIT}"
            ))
        })
}

/// `[start, end)` in ms of a date (its day in `zone`) or an RFC 3339 time (its ms).
pub(super) fn time(
    field: &str,
    value: &str,
    zone: &TimeZone,
) -> Result<(Millis, Millis), ApiError> {
    if value.len() == 10
        && let Ok(date) = value.parse::<jiff::civil::Date>()
    {
        return Ok(range_ms(zone, date, date));
    }
    // A `+` of the offset that came unencoded reads as a space.
    let instant = value
        .parse::<jiff::Timestamp>()
        .or_else(|_| value.replace(' ', "+").parse::<jiff::Timestamp>());
    match instant {
        Ok(t) => Ok((t.as_millisecond(), t.as_millisecond().saturating_add(1))),
        Err(_) => Err(ApiError::BadRequest(format!(
            "{field} {value:?} is neither a date (YYYY-MM-DD, e.g. 2026-11-01) nor an RFC 3339 \
             time (e.g. 2026-11-01T09:30:00%2B05:00)"
        ))),
    }
}

/// The opaque `next_cursor`: where the page ended, in hex.
fn cursor(p: Position) -> String {
    format!("{:016x}{:016x}", p.created_at as u64, p.id)
}

fn cursor_from(value: &str) -> Result<Position, ApiError> {
    let hex = |s: &str| u64::from_str_radix(s, 16).ok();
    let position = (value.len() == 32 && value.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| Some((hex(&value[..16])?, hex(&value[16..])?)))
        .flatten();
    match position {
        Some((at, id)) => Ok(Position {
            created_at: at as Millis,
            id,
        }),
        None => Err(ApiError::BadRequest(format!(
            "cursor {value:?} is not one this route gave (pass a page's next_cursor as it came)"
        ))),
    }
}

fn page_json(found: &Found) -> Value {
    json!({
        "conversations": found.conversations.iter().map(summary_json).collect::<Vec<_>>(),
        "next_cursor": found.next.map(cursor),
    })
}

/// A conversation without its state, timeline and timers: what a list shows, and what
/// `GET /api/v1/conversations/{id}` adds those to.
pub(super) fn summary_json(c: &Conversation) -> Value {
    let mut body = json!({
        "id": c.id,
        "flow": c.flow,
        "parties": c.parties,
        "created_at": rfc3339(c.created_at),
        "updated_at": rfc3339(c.updated_at),
        "event_id": c.event_key,
    });
    match &c.status {
        ConversationStatus::Open => body["status"] = json!("open"),
        ConversationStatus::Finished { outcome } => {
            body["status"] = json!("finished");
            body["outcome"] = json!(outcome);
        }
        ConversationStatus::Errored { error } => {
            body["status"] = json!("errored");
            body["error"] = json!(error);
        }
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(query: &[(&str, &str)]) -> Vec<(String, String)> {
        (query.iter())
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn detail(query: &[(&str, &str)]) -> String {
        match parse(&pairs(query), &TimeZone::UTC) {
            Err(ApiError::BadRequest(d)) => d,
            other => panic!("{query:?}: {other:?}"),
        }
    }

    #[test]
    fn every_parameter_is_read_and_checked() {
        let tashkent = TimeZone::get("Asia/Tashkent").unwrap();
        let query = [
            ("msisdn", " 998901234567"),
            ("flow", "survey"),
            ("status", "Errored"),
            ("from", "2026-11-01"),
            ("to", "2026-11-02T10:00:00 05:00"),
            ("limit", "500"),
            (
                "cursor",
                &cursor(Position {
                    created_at: -5,
                    id: 7,
                }),
            ),
        ];
        let find = parse(&pairs(&query), &tashkent).unwrap();
        assert_eq!(find.msisdn.as_deref(), Some("998901234567"));
        assert_eq!(find.flow.as_deref(), Some("survey"));
        assert_eq!(find.status, Some(StatusFilter::Errored));
        // 2026-11-01T00:00+05:00, and the ms after 10:00 local the day after.
        assert_eq!(find.from, 1_793_473_200_000);
        assert_eq!(find.to, 1_793_473_200_000 + 86_400_000 + 10 * 3_600_000 + 1);
        assert_eq!(find.limit, 500);
        assert_eq!(
            find.before,
            Some(Position {
                created_at: -5,
                id: 7
            })
        );
        let dates = parse(&pairs(&[("to", "2026-11-01")]), &tashkent).unwrap();
        assert_eq!(dates.to, 1_793_473_200_000 + 86_400_000, "the whole day");
        assert_eq!(parse(&[], &tashkent).unwrap().limit, DEFAULT_LIMIT);
    }

    #[test]
    fn bad_parameters_are_named() {
        for (query, named) in [
            (&[("limit", "0")][..], "limit \"0\""),
            (&[("limit", "501")], "limit \"501\""),
            (&[("limit", "ten")], "limit \"ten\""),
            (&[("status", "closed")], "status \"closed\""),
            (&[("from", "2026-13-01")], "from \"2026-13-01\""),
            (&[("to", "yesterday")], "to \"yesterday\""),
            (&[("msisdn", "12ab")], "msisdn \"12ab\""),
            (&[("cursor", "zz")], "cursor \"zz\""),
            (&[("cursor", &"é".repeat(16))], "cursor"),
            (&[("page", "2")], "unknown parameter \"page\""),
            (&[("and", "1")], "unknown parameter \"and\""),
            (&[("flow", "a"), ("flow", "b")], "\"flow\" is given twice"),
            (
                &[("from", "2026-11-02"), ("to", "2026-11-01")],
                "from \"2026-11-02\" is after to \"2026-11-01\"",
            ),
        ] {
            let detail = detail(query);
            assert!(detail.contains(named), "{query:?}: {detail}");
        }
    }
}
