//! Where the reports' data comes from: the store's ratings, incidents and survey
//! conversations. The only module of `report` that touches the [`Store`].

use jiff::tz::TimeZone;

use super::query::{Kind, Query, range_ms};
use super::stats::Scores;
use super::{CsiData, CsiOptions, DayTally, Report, SurveyEnd, SurveySend, csi, incidents};
use crate::store::{Store, StoreError, tally};

/// The flow whose conversations are surveys (`surveys_sent`, `delivered`).
pub const SURVEY_FLOW: &str = "survey";

/// Builds the report `query` asks for from `store`, dates in `zone`.
pub fn build(store: &Store, query: &Query, zone: &TimeZone) -> Result<Report, StoreError> {
    Ok(match query.kind {
        Kind::Csi => {
            let data = csi_data(store, query, zone)?;
            Report::Csi(Box::new(csi::compute(
                query,
                zone,
                &data,
                &CsiOptions::default(),
            )))
        }
        Kind::Incidents => {
            let (from, to) = range_ms(zone, query.from, query.to);
            let list = store.incidents(from, to)?;
            Report::Incidents(Box::new(incidents::compute(query, zone, &list)))
        }
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

/// [`csi_data`] from the raw records: every rating and survey conversation of the window
/// (linear in them), for a zone the tallies are not counted in.
pub fn csi_records(store: &Store, query: &Query, zone: &TimeZone) -> Result<CsiData, StoreError> {
    let (from, to) = range_ms(zone, csi::history_start(query), query.to);
    let ratings = store.ratings(from, to)?;
    let mut sends = Vec::new();
    let mut ends = Vec::new();
    for c in store.created_conversations(SURVEY_FLOW, from, to)? {
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
        .map(|(key, t)| {
            let mut scores = Scores::default();
            for (&score, &n) in &t.scores {
                scores.add_n(score, n);
            }
            // Ratings of every flow count; sends are the survey flow's.
            let survey = key.flow == SURVEY_FLOW;
            DayTally {
                date: key.day,
                operator: key.operator,
                channel: key.channel,
                scores,
                sent: if survey { t.sent } else { 0 },
                delivered: if survey { t.delivered } else { 0 },
                outcomes: if survey {
                    t.outcomes
                } else {
                    Default::default()
                },
            }
        })
        .collect();
    let (from, to) = range_ms(zone, query.from, query.to);
    let comments = store.commented_ratings(from, to)?;
    Ok(CsiData {
        tallies,
        comments,
        ..CsiData::default()
    })
}
