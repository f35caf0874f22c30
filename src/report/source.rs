//! Where the reports' data comes from: the store's ratings, incidents and survey
//! conversations. The only module of `report` that touches the [`Store`].

use jiff::tz::TimeZone;

use super::query::{Kind, Query, range_ms};
use super::{CsiData, CsiOptions, Report, SurveySend, csi, incidents};
use crate::store::{Store, StoreError};

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

/// Ratings and survey sends from [`csi::history_start`] to the end of the range.
pub fn csi_data(store: &Store, query: &Query, zone: &TimeZone) -> Result<CsiData, StoreError> {
    let (from, to) = range_ms(zone, csi::history_start(query), query.to);
    let ratings = store.ratings(from, to)?;
    let sends = store
        .sent_conversations(SURVEY_FLOW, from, to)?
        .into_iter()
        .map(|c| {
            let text = |name: &str| {
                c.state
                    .get(name)
                    .and_then(|v| v.as_str())
                    .unwrap_or_default()
                    .to_owned()
            };
            SurveySend {
                at: c.created_at,
                operator: text("operator"),
                channel: text("channel"),
                delivered: c.delivered,
            }
        })
        .collect();
    Ok(CsiData { ratings, sends })
}
