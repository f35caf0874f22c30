//! Where the reports' data comes from: the store's ratings, incidents and survey
//! conversations. The only module of `report` that touches the [`Store`].

use jiff::tz::TimeZone;

use super::audit::{self, AuditData};
use super::query::{Kind, Query, range_ms};
use super::scale::Scale;
use super::stats::Scores;
use super::{CsiData, CsiOptions, DayTally, Report, SurveyEnd, SurveySend, csi, incidents};
use crate::store::{Store, StoreError, tally};

/// Builds the report `query` asks for from `store`, dates in `zone`; the survey flow's scale
/// is what its live script in the store declares (CSAT 1–5 when none is stored).
pub fn build(store: &Store, query: &Query, zone: &TimeZone) -> Result<Report, StoreError> {
    build_with(store, query, zone, None)
}

/// [`build`] with the survey flow's scale given (a running engine knows it).
pub fn build_with(
    store: &Store,
    query: &Query,
    zone: &TimeZone,
    scale: Option<Scale>,
) -> Result<Report, StoreError> {
    Ok(match query.kind {
        Kind::Csi => {
            let data = csi_data(store, query, zone)?;
            let scale = match scale {
                Some(scale) => scale,
                None => stored_scale(store, &query.flow)?,
            };
            let options = CsiOptions {
                scale,
                ..CsiOptions::default()
            };
            Report::Csi(Box::new(csi::compute(query, zone, &data, &options)))
        }
        Kind::Incidents => {
            let (from, to) = range_ms(zone, query.from, query.to);
            let list = store.incidents(from, to)?;
            Report::Incidents(Box::new(incidents::compute(query, zone, &list)))
        }
        Kind::Audit => {
            let data = audit_data(store, query, zone)?;
            Report::Audit(Box::new(audit::compute(query, zone, &data)))
        }
    })
}

/// The audit's counts from the store's tallies (a few keys per quarter hour with presses),
/// and the answered manager calls' times from the range's incident records.
pub fn audit_data(store: &Store, query: &Query, zone: &TimeZone) -> Result<AuditData, StoreError> {
    let (from, to) = range_ms(zone, query.from, query.to);
    let latest = crate::store::Incident::latest(store.incidents(from, to)?);
    Ok(AuditData {
        slots: store.audit_tallies(from, to),
        answers: audit::answers(&latest),
    })
}

/// The counts from [`csi::history_start`] to the end of the range, and the comments of the
/// range: from the store's day tallies when they are counted in `zone` (a few keys per day,
/// whatever the volume), else from the raw records.
pub fn csi_data(store: &Store, query: &Query, zone: &TimeZone) -> Result<CsiData, StoreError> {
    if store.tally_zone() == super::zone_name(zone) {
        csi_tallies(store, query, zone)
    } else {
        csi_records(store, query, zone)
    }
}

/// The scale `flow`'s live script declares, or CSAT 1–5.
pub fn stored_scale(store: &Store, flow: &str) -> Result<Scale, StoreError> {
    Ok(store
        .live_script(flow)?
        .and_then(|(_, source)| crate::flow::runner::declared_scale(&source))
        .unwrap_or_default())
}

/// [`csi_data`] from the raw records: every rating and survey conversation of the window
/// (linear in them), for a zone the tallies are not counted in.
pub fn csi_records(store: &Store, query: &Query, zone: &TimeZone) -> Result<CsiData, StoreError> {
    let (from, to) = range_ms(zone, csi::history_start(query), query.to);
    let mut ratings = store.ratings(from, to)?;
    ratings.retain(|r| r.flow == query.flow);
    let mut sends = Vec::new();
    let mut ends = Vec::new();
    for c in store.created_conversations(&query.flow, from, to)? {
        if let Some(outcome) = c.outcome {
            ends.push(SurveyEnd {
                at: c.created_at,
                outcome,
            });
        }
        if c.sent {
            let (operator, channel) = tally::operator_and_channel(&c.state);
            sends.push(SurveySend {
                at: c.created_at,
                operator,
                channel,
                delivered: c.delivered,
            });
        }
    }
    Ok(CsiData {
        ratings,
        sends,
        ends,
        ..CsiData::default()
    })
}

fn csi_tallies(store: &Store, query: &Query, zone: &TimeZone) -> Result<CsiData, StoreError> {
    let tallies = store
        .tallies(csi::history_start(query), query.to)
        .into_iter()
        // The report is about one survey flow: its ratings, sends and outcomes.
        .filter(|(key, _)| key.flow == query.flow)
        .map(|(key, t)| {
            let mut scores = Scores::default();
            for (&score, &n) in &t.scores {
                scores.add_n(score, n);
            }
            DayTally {
                date: key.day,
                operator: key.operator,
                channel: key.channel,
                scores,
                sent: t.sent,
                delivered: t.delivered,
                outcomes: t.outcomes,
            }
        })
        .collect();
    let (from, to) = range_ms(zone, query.from, query.to);
    let mut comments = store.commented_ratings(from, to)?;
    comments.retain(|r| r.flow == query.flow);
    Ok(CsiData {
        tallies,
        comments,
        ..CsiData::default()
    })
}
