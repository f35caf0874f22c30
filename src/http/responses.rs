//! `GET /api/v1/responses?from=&to=&operator=&channel=&score=&flow=&limit=&cursor=`: the
//! response feed ([`report::feed`](crate::report::feed)), every parameter optional:
//!
//! - `from`, `to`: when the rating was recorded, both ends included: a date (its whole day in
//!   `service.timezone`) or an RFC 3339 time, as `GET /api/v1/conversations` takes them;
//! - `operator`, `channel`, `flow`: exactly these;
//! - `score`: one score (0–10);
//! - `limit`: rows per page, 1 to 500, default 50;
//! - `cursor`: the `next` of the page before.
//!
//! The answer is `{"items": [...], "next": CURSOR|null}`, newest first. MSISDNs are masked
//! (`99890*****67`) unless the request's token is one of `http.number_tokens`. Anything else
//! in the query, or a parameter given twice, is a 400 naming it.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use jiff::tz::TimeZone;

use super::find::{blocking, checked_pairs, time};
use super::{ApiError, ApiState, Pairs, auth};
use crate::report::feed::{self, Cursor, FeedQuery, MAX_LIMIT};
use crate::store::Millis;

const NAMES: [&str; 8] = [
    "from", "to", "operator", "channel", "score", "flow", "limit", "cursor",
];

/// `GET /api/v1/responses`; see the module documentation.
pub(super) async fn responses(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    pairs: Pairs,
) -> Result<Response, ApiError> {
    let Query(pairs) = pairs?;
    let mut query = parse(&pairs, state.engine.timezone())?;
    query.full_numbers = (headers.get(header::AUTHORIZATION))
        .and_then(|h| auth::presented(h).ok())
        .is_some_and(|token| auth::accepted(&state.number_tokens, &token));
    let store = state.store.clone();
    let now = (state.now)();
    let page = blocking(move || feed::page(&store, &query, now).map_err(ApiError::from)).await?;
    Ok((StatusCode::OK, axum::Json(page)).into_response())
}

/// `GET /api/v1/incidents?state=open|ringing|acknowledged&limit=&cursor=`: the calls not over
/// yet, newest first ([`report::open_calls`](crate::report::open_calls)); `taken_by` masked
/// unless the token is one of `http.number_tokens`.
pub(super) async fn open_calls(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    pairs: Pairs,
) -> Result<Response, ApiError> {
    use crate::report::open_calls::{self, OpenQuery, Which};
    const OPEN: [&str; 3] = ["state", "limit", "cursor"];
    let Query(pairs) = pairs?;
    let bad = |detail: String| ApiError::BadRequest(detail);
    let mut query = OpenQuery {
        limit: open_calls::DEFAULT_LIMIT,
        ..OpenQuery::default()
    };
    for (name, value) in checked_pairs(&pairs, &OPEN, &OPEN.join(", "))? {
        match name {
            "state" => query.which = Which::parse(value).map_err(bad)?,
            "limit" => {
                query.limit = (value.parse::<usize>().ok())
                    .filter(|n| (1..=open_calls::MAX_LIMIT).contains(n))
                    .ok_or_else(|| {
                        bad(format!(
                            "limit {value:?} is not a whole number from 1 to {}",
                            open_calls::MAX_LIMIT
                        ))
                    })?
            }
            // "cursor"
            _ => query.after = Some(open_calls::decode(value).ok_or_else(|| {
                bad(format!(
                    "cursor {value:?} is not one this route gave (pass a page's next as it came)"
                ))
            })?),
        }
    }
    query.full_numbers = (headers.get(header::AUTHORIZATION))
        .and_then(|h| auth::presented(h).ok())
        .is_some_and(|token| auth::accepted(&state.number_tokens, &token));
    let (store, now, zone) = (
        state.store.clone(),
        (state.now)(),
        state.engine.timezone().clone(),
    );
    let page =
        blocking(move || open_calls::page(&store, &query, now, &zone).map_err(ApiError::from))
            .await?;
    Ok((StatusCode::OK, axum::Json(page)).into_response())
}

/// The query of the route as a [`FeedQuery`]; days are `zone`'s.
pub fn parse(pairs: &[(String, String)], zone: &TimeZone) -> Result<FeedQuery, ApiError> {
    let bad = |detail: String| ApiError::BadRequest(detail);
    let mut query = FeedQuery::default();
    let mut from: Option<(&str, Millis)> = None;
    let mut to: Option<(&str, Millis)> = None;
    for (name, value) in checked_pairs(pairs, &NAMES, &NAMES.join(", "))? {
        match name {
            "from" => from = Some((value, time("from", value, zone)?.0)),
            "to" => to = Some((value, time("to", value, zone)?.1)),
            "operator" => query.operator = Some(value.to_owned()),
            "channel" => query.channel = Some(value.to_owned()),
            "flow" => query.flow = Some(value.to_owned()),
            "score" => {
                query.score = Some(
                    (value.parse::<u8>().ok().filter(|s| *s <= 10)).ok_or_else(|| {
                        bad(format!("score {value:?} is not a whole number 0–10"))
                    })?,
                )
            }
            "limit" => {
                query.limit = (value.parse::<usize>().ok())
                    .filter(|n| (1..=MAX_LIMIT).contains(n))
                    .ok_or_else(|| {
                        bad(format!(
                            "limit {value:?} is not a whole number from 1 to {MAX_LIMIT}"
                        ))
                    })?
            }
            // "cursor"
            _ => query.after = Some(Cursor::decode(value).ok_or_else(|| {
                bad(format!(
                    "cursor {value:?} is not one this route gave (pass a page's next as it came)"
                ))
            })?),
        }
    }
    if let (Some((f, from)), Some((t, to))) = (from, to)
        && from >= to
    {
        return Err(bad(format!("from {f:?} is after to {t:?}")));
    }
    query.from = from.map_or(Millis::MIN, |(_, ms)| ms);
    query.to = to.map_or(Millis::MAX, |(_, ms)| ms);
    Ok(query)
}
