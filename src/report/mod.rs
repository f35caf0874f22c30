//! Reports: the CSI survey report, the staff-call (incident) report and the service quality
//! audit of restaurants and shops (`audit`), as one JSON document each (SPEC.md "Report JSON"), rendered as a terminal table, CSV, JSON, XLSX or a
//! self-contained HTML page with SVG charts.
//!
//! # Layout
//!
//! - [`query`]: the request (`from`, `to`, `by`), its checks and the calendar periods in the
//!   service's time zone (jiff).
//! - [`csi`], [`incidents`], [`comments`], [`anomalies`], [`stats`]: pure computation over plain
//!   data ([`CsiData`], incidents); no store, no clock, so tests feed generated data with
//!   known answers.
//! - [`source`]: reads that data from the [`Store`](crate::store::Store) (the only module here that does).
//! - [`remote`]: asks a running service for the JSON when it holds the store's lock.
//! - [`open_calls`]: the staff calls not over yet, newest first (`--open`, `/api/v1/incidents`).
//! - [`cli`]: `smsflow report`: store or service, then render.
//! - [`render`]: table, CSV, JSON, XLSX, HTML.
//!
//! # Raw logs, no tallies
//!
//! Every report is computed from the raw ratings, incidents and survey conversations of the
//! requested range (plus the history its comparisons need). Incremental per-period tallies were
//! left out on purpose: periods depend on the configured time zone, `--from/--to` are arbitrary
//! dates, and confidence intervals, percentiles and comment terms need the raw values anyway.
//! Measured on a debug build: see `report_of_100k_ratings` in this module's tests and the
//! numbers in README.md; the store scan of survey conversations is the part that grows with the
//! whole history, not just the range.

pub mod alerts;
pub mod anomalies;
pub mod audit;
pub mod clauses;
pub mod cli;
pub mod comments;
pub mod csi;
pub mod feed;
pub mod incidents;
pub mod lexicon;
pub mod open_calls;
pub mod outcomes;
pub mod query;
pub mod remote;
pub mod render;
pub mod scale;
pub mod source;
pub mod stats;
pub mod stream;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::store::{Millis, Rating};

pub use audit::AuditReport;
pub use csi::{CsiOptions, CsiReport};
pub use incidents::IncidentReport;
pub use query::{Grouping, Kind, Query, QueryError};

/// A survey whose question went out: the unit of `surveys_sent` and `delivered`.
#[derive(Debug, Clone, PartialEq)]
pub struct SurveySend {
    /// When the survey conversation was created.
    pub at: Millis,
    pub operator: String,
    pub channel: String,
    /// Its question has a delivery receipt saying delivered.
    pub delivered: bool,
}

/// Counts of one local day, operator and channel, already summed (the store's tallies).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DayTally {
    pub date: jiff::civil::Date,
    pub operator: String,
    pub channel: String,
    pub scores: stats::Scores,
    pub sent: u64,
    pub delivered: u64,
    /// Survey conversations created that day that ended, per outcome.
    pub outcomes: BTreeMap<String, u64>,
}

/// A survey conversation that ended (the raw form of [`DayTally::outcomes`]).
#[derive(Debug, Clone, PartialEq)]
pub struct SurveyEnd {
    /// When the conversation was created.
    pub at: Millis,
    pub outcome: String,
}

/// Everything the CSI report is computed from: raw records, day tallies, or both (they are
/// added up, so a fact must be in one of them only).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CsiData {
    /// Counted, and their comments analysed.
    pub ratings: Vec<Rating>,
    pub sends: Vec<SurveySend>,
    pub tallies: Vec<DayTally>,
    /// Ratings whose comments are analysed but which are not counted (their scores are in
    /// `tallies`).
    pub comments: Vec<Rating>,
    pub ends: Vec<SurveyEnd>,
}

/// Small numbers (a score, a level) → how many, as a JSON object with the numbers as keys
/// (`{"1": 3, "2": 0}`) in numeric order. A newtype because serde's `flatten` (used by the
/// groups) cannot read integer map keys back from strings on its own.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts(pub BTreeMap<u32, u64>);

impl Counts {
    pub fn get(&self, key: u32) -> u64 {
        self.0.get(&key).copied().unwrap_or(0)
    }

    pub fn iter(&self) -> impl Iterator<Item = (u32, u64)> + '_ {
        self.0.iter().map(|(k, v)| (*k, *v))
    }

    pub fn max_key(&self) -> Option<u32> {
        self.0.keys().next_back().copied()
    }
}

impl Serialize for Counts {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(&k.to_string(), v)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Counts {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = BTreeMap::<String, u64>::deserialize(deserializer)?;
        raw.into_iter()
            .map(|(k, v)| {
                k.parse::<u32>()
                    .map(|k| (k, v))
                    .map_err(|_| serde::de::Error::custom(format!("key {k:?} is not a number")))
            })
            .collect::<Result<BTreeMap<_, _>, _>>()
            .map(Counts)
    }
}

/// Every score of the survey's scale → how many; every score is present, so the JSON has
/// `"1"`..`"5"` for CSAT, `"0"`..`"10"` for NPS.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Distribution(pub Counts);

impl Distribution {
    pub fn from_scores(scores: &stats::Scores, scale: &scale::Scale) -> Distribution {
        Distribution(Counts(
            (scale.min..=scale.max.min(stats::MAX_SCORE))
                .map(|s| (u32::from(s), scores.distribution[usize::from(s)]))
                .collect(),
        ))
    }

    /// The scores it has, lowest first.
    pub fn scores(&self) -> impl Iterator<Item = u8> + '_ {
        self.0.0.keys().filter_map(|k| u8::try_from(*k).ok())
    }

    pub fn count(&self, score: u8) -> u64 {
        self.0.get(u32::from(score))
    }
}

/// One of the reports.
#[derive(Debug, Clone, PartialEq)]
pub enum Report {
    Csi(Box<CsiReport>),
    Incidents(Box<IncidentReport>),
    Audit(Box<AuditReport>),
}

impl Report {
    /// The JSON document (the same as the HTTP API answers).
    pub fn to_json(&self) -> serde_json::Value {
        // Both documents are plain structs of numbers, strings, maps with string or integer
        // keys and options: serialization cannot fail.
        match self {
            Report::Csi(r) => serde_json::to_value(r),
            Report::Incidents(r) => serde_json::to_value(r),
            Report::Audit(r) => serde_json::to_value(r),
        }
        .unwrap_or(serde_json::Value::Null)
    }

    /// Reads the document of a `kind` report (e.g. from the HTTP API).
    pub fn from_json(kind: Kind, body: &str) -> Result<Report, serde_json::Error> {
        Ok(match kind {
            Kind::Csi => Report::Csi(serde_json::from_str(body)?),
            Kind::Incidents => Report::Incidents(serde_json::from_str(body)?),
            Kind::Audit => Report::Audit(serde_json::from_str(body)?),
        })
    }
}

/// The zone's IANA name, or its fixed offset when it has none (as the store names the zone
/// of its tallies).
pub use crate::store::tally::zone_name;

#[cfg(test)]
mod render_tests;
#[cfg(test)]
mod scale_tests;
#[cfg(test)]
mod tests;
