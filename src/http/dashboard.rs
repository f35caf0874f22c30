//! `GET /reports`, the dashboard: the reports (CSI, staff calls, the service quality audit
//! with its heat map) and the newest responses on one HTML page,
//! and `GET /`, which sends a browser there.
//!
//! Takes `from`, `to`, `by` (a CSI grouping; the incident part follows it when it is a
//! period, else groups by location) and `flow` (the survey flow, with its scale's numbers and
//! its newest responses; the form offers every flow that declares a scale), `days` (the last N
//! days, instead of `from`), and
//! `refresh` (reload every N seconds, 10 to 3600). An empty value is no value, as the form
//! sends them. A bad parameter gets an HTML page saying what is wrong (400), not JSON: the
//! reader is a person in a browser.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use jiff::ToSpan;

use super::{ApiError, ApiState, Pairs, build_report, today};
use crate::report::feed::{self, FeedQuery};
use crate::report::render::html::{self, Controls, PageOptions};
use crate::report::{self, Kind, Report, query::range_ms};

/// Newest responses shown on the dashboard.
const FEED_ROWS: usize = 10;
/// Open calls the dashboard lists (the panel says when there are more).
const OPEN_ROWS: usize = 50;

/// `GET /`: the dashboard is the page to land on.
pub(super) async fn home() -> Redirect {
    Redirect::to("/reports")
}

pub(super) async fn dashboard(State(state): State<Arc<ApiState>>, pairs: Pairs) -> Response {
    match page(&state, pairs).await {
        Ok(page) => (StatusCode::OK, Html(page)).into_response(),
        Err(e) if e.status().is_server_error() => e.into_response(),
        Err(e) => (StatusCode::BAD_REQUEST, Html(html::error_page(&e.detail()))).into_response(),
    }
}

async fn page(state: &Arc<ApiState>, pairs: Pairs) -> Result<String, ApiError> {
    let Query(pairs) = pairs?;
    let mut refresh = None;
    let mut days = None;
    let mut rest = Vec::new();
    for (name, value) in pairs {
        let value = value.trim().to_owned();
        match name.as_str() {
            _ if value.is_empty() => {}
            "refresh" => {
                refresh = Some(
                    (value.parse::<u32>().ok())
                        .filter(|n| (10..=3600).contains(n))
                        .ok_or_else(|| {
                            ApiError::BadRequest(format!(
                                "refresh {value:?} is not a number of seconds from 10 to 3600"
                            ))
                        })?,
                )
            }
            "days" => {
                days = Some(
                    (value.parse::<i64>().ok())
                        .filter(|n| (1..=366).contains(n))
                        .ok_or_else(|| {
                            ApiError::BadRequest(format!(
                                "days {value:?} is not a number of days from 1 to 366"
                            ))
                        })?,
                )
            }
            _ => rest.push((name, value)),
        }
    }
    if let Some(days) = days {
        let to = (rest.iter().find(|(n, _)| n == "to"))
            .and_then(|(_, v)| v.parse::<jiff::civil::Date>().ok())
            .unwrap_or_else(|| today(state));
        let from = to.checked_sub((days - 1).days()).unwrap_or(to);
        rest.retain(|(n, _)| n != "from");
        rest.push(("from".to_owned(), from.to_string()));
    }
    let csi = report::Query::from_pairs(Kind::Csi, &rest, today(state))?;
    let incidents = report::Query {
        kind: Kind::Incidents,
        by: if csi.by.period().is_some() {
            csi.by
        } else {
            Kind::Incidents.default_grouping()
        },
        ..csi.clone()
    };
    let audit = report::Query {
        kind: Kind::Audit,
        ..incidents.clone()
    };
    let zone = state.engine.timezone().clone();
    let (from, to) = range_ms(&zone, csi.from, csi.to);
    // The survey flows: those that declare what their ratings are.
    let flows = (state.engine.flows().iter())
        .filter(|f| f.survey)
        .map(|f| f.name.clone())
        .collect();
    let controls = Controls {
        from: csi.from.to_string(),
        to: csi.to.to_string(),
        by: csi.by.name().to_owned(),
        flow: csi.flow.clone(),
        flows,
    };
    let (csi, incidents, audit) = (
        build_report(state, csi).await?,
        build_report(state, incidents).await?,
        build_report(state, audit).await?,
    );
    let (Report::Csi(csi), Report::Incidents(incidents), Report::Audit(audit)) =
        (csi, incidents, audit)
    else {
        return Err(ApiError::Internal("a report of the wrong kind".to_owned()));
    };
    let now = (state.now)();
    let store = state.store.clone();
    // The newest responses of the survey shown: another flow's scores are on another scale.
    let feed_query = FeedQuery {
        from,
        to,
        flow: Some(csi.flow.clone()),
        limit: FEED_ROWS,
        ..FeedQuery::default()
    };
    let responses = tokio::task::spawn_blocking(move || feed::page(&store, &feed_query, now))
        .await
        .map_err(|e| ApiError::Internal(format!("the feed task failed: {e}")))?
        .map_err(ApiError::from)?;
    let (store, open_zone) = (state.store.clone(), zone.clone());
    let open = crate::report::open_calls::OpenQuery {
        limit: OPEN_ROWS,
        ..Default::default()
    };
    let open_calls = tokio::task::spawn_blocking(move || {
        crate::report::open_calls::page(&store, &open, now, &open_zone)
    })
    .await
    .map_err(|e| ApiError::Internal(format!("the open-calls task failed: {e}")))?
    .map_err(ApiError::from)?;
    let generated_at = jiff::Timestamp::from_millisecond(now)
        .map(|t| {
            let local = t.to_zoned(zone.clone());
            format!(
                "{} {}",
                local.strftime("%Y-%m-%d %H:%M"),
                report::zone_name(&zone)
            )
        })
        .ok();
    Ok(html::page(
        Some(&csi),
        Some(&incidents),
        &PageOptions {
            generated_at,
            refresh,
            controls: Some(controls),
            responses: Some(&responses),
            open_calls: Some(&open_calls),
            audit: Some(&audit),
        },
    ))
}
