//! The incident (staff call) report: how many calls, how many were taken and at which level,
//! how often they escalated, and how long staff took to answer (median and p90, nearest rank),
//! for the range and per location, button or period. Pure: [`compute`] takes the incidents the
//! escalation flow recorded.
//!
//! The fields read are the ones `scripts/escalation.rhai` records: `acknowledged`, `level`,
//! `escalated`, `ack_seconds`, `acknowledged_by`, `resolved`, `resolve_seconds` (from the call
//! to DONE), `location`, `button`, `id`, `levels`, `rounds`. A missing or mistyped field counts as
//! absent (an incident without `acknowledged: true` is unacknowledged), so a changed script
//! degrades the report instead of breaking it. An incident belongs to the day it was recorded
//! (acknowledged or given up), in the service's time zone.

use std::collections::HashMap;

use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};

use super::query::{Grouping, Period, Query, local_date};
use super::stats;
use super::{Counts, zone_name};
use crate::store::Incident;

/// Bounds of the time-to-ack histogram, in seconds: <30 s, 30 s–1 m, 1–2 m, 2–5 m, 5–10 m,
/// ≥10 m.
pub const ACK_BUCKETS: [f64; 5] = [30.0, 60.0, 120.0, 300.0, 600.0];

/// The key of a group whose location or button is empty.
pub const NONE_KEY: &str = "(none)";

/// The incident report document (SPEC.md); `--format json` and
/// `GET /api/v1/reports/incidents` give exactly this.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentReport {
    pub from: String,
    pub to: String,
    pub by: String,
    pub timezone: String,
    pub total: IncidentStats,
    pub groups: Vec<IncidentGroup>,
    /// The step of `trend`: `"day"`, `"week"` or `"month"`.
    pub trend_period: String,
    /// Every period of the range, empty ones included.
    pub trend: Vec<IncidentGroup>,
    /// Acknowledged incidents by time to ack.
    pub ack_histogram: Vec<Bucket>,
    /// The calls nobody took, newest first (at most [`UNACKNOWLEDGED_LISTED`]).
    #[serde(default)]
    pub unacknowledged_calls: Vec<UnacknowledgedCall>,
    /// Time to ack per level (1 = first).
    #[serde(default)]
    pub levels: Vec<LevelStats>,
    /// Acknowledgements per staff member (the number that answered OK), most first.
    #[serde(default)]
    pub staff: Vec<StaffStats>,
}

/// Unacknowledged calls listed in the report, at most; `total.unacknowledged` counts them all.
pub const UNACKNOWLEDGED_LISTED: usize = 100;

/// A call nobody took.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnacknowledgedCall {
    /// When it was given up, RFC 3339 in the report's zone.
    pub at: String,
    pub conversation: u64,
    /// The event id of the incident.
    pub id: String,
    pub button: String,
    pub location: String,
    /// How many levels of staff were called (null when the flow does not record it).
    pub levels_tried: Option<u64>,
    /// How many times the chain was walked.
    pub rounds: Option<u64>,
}

/// Time to ack at one level.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LevelStats {
    pub level: u32,
    pub acknowledged: u64,
    pub median_ack_seconds: Option<f64>,
    pub p90_ack_seconds: Option<f64>,
}

/// What one staff member acknowledged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StaffStats {
    pub staff: String,
    pub acknowledged: u64,
    pub median_ack_seconds: Option<f64>,
    pub p90_ack_seconds: Option<f64>,
    /// Level → calls taken there.
    pub at_level: Counts,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IncidentStats {
    pub incidents: u64,
    pub acknowledged: u64,
    pub unacknowledged: u64,
    /// Went past level 1 (acknowledged later or never).
    pub escalated: u64,
    /// 0–100; null without incidents.
    pub acknowledged_pct: Option<f64>,
    pub escalated_pct: Option<f64>,
    /// Nearest-rank median of the acknowledged incidents' time to ack; null when none.
    pub median_ack_seconds: Option<f64>,
    pub p90_ack_seconds: Option<f64>,
    pub max_ack_seconds: Option<f64>,
    /// Level (1 = first) → incidents acknowledged there.
    pub acknowledged_at_level: Counts,
    /// Reported done (DONE, or the concentrator's cancel button).
    pub resolved: u64,
    /// Nearest-rank median of the resolved incidents' time from the call to DONE; null when
    /// none.
    pub median_resolve_seconds: Option<f64>,
    pub p90_resolve_seconds: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentGroup {
    pub key: String,
    #[serde(flatten)]
    pub stats: IncidentStats,
}

/// One bar of the time-to-ack histogram.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bucket {
    pub label: String,
    /// Lower bound, seconds (inclusive).
    pub from_seconds: f64,
    /// Upper bound, seconds (exclusive); null for the last bucket.
    pub to_seconds: Option<f64>,
    pub count: u64,
}

/// What the report reads of one incident.
#[derive(Debug, Clone, Default)]
struct Record {
    acknowledged: bool,
    escalated: bool,
    level: Option<u32>,
    ack_seconds: Option<f64>,
    by: Option<String>,
    resolve_seconds: Option<f64>,
}

impl Record {
    fn of(incident: &Incident) -> Record {
        let f = &incident.fields;
        let acknowledged = f.get("acknowledged").and_then(|v| v.as_bool()) == Some(true);
        Record {
            acknowledged,
            escalated: f.get("escalated").and_then(|v| v.as_bool()) == Some(true),
            level: acknowledged
                .then(|| f.get("level").and_then(|v| v.as_u64()))
                .flatten()
                .and_then(|l| u32::try_from(l).ok()),
            ack_seconds: acknowledged
                .then(|| f.get("ack_seconds").and_then(|v| v.as_f64()))
                .flatten()
                .filter(|s| s.is_finite() && *s >= 0.0),
            by: acknowledged
                .then(|| f.get("acknowledged_by").and_then(|v| v.as_str()))
                .flatten()
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
            resolve_seconds: (f.get("resolved").and_then(|v| v.as_bool()) == Some(true))
                .then(|| f.get("resolve_seconds").and_then(|v| v.as_f64()))
                .flatten()
                .filter(|s| s.is_finite() && *s >= 0.0),
        }
    }
}

fn text_field(incident: &Incident, name: &str) -> String {
    match incident.fields.get(name) {
        Some(serde_json::Value::String(s)) if !s.trim().is_empty() => s.trim().to_owned(),
        Some(serde_json::Value::Number(n)) => n.to_string(),
        _ => NONE_KEY.to_owned(),
    }
}

/// The incident report of `query` over `incidents` (those outside the range are ignored).
pub fn compute(query: &Query, zone: &TimeZone, incidents: &[Incident]) -> IncidentReport {
    let in_range: Vec<(&Incident, jiff::civil::Date, Record)> = incidents
        .iter()
        .map(|i| (i, local_date(zone, i.at), Record::of(i)))
        .filter(|(_, d, _)| query.from <= *d && *d <= query.to)
        .collect();
    let all: Vec<&Record> = in_range.iter().map(|(_, _, r)| r).collect();
    let total = stats_of(&all);

    let key_of = |i: &Incident, d: jiff::civil::Date| -> String {
        match query.by {
            Grouping::Button => text_field(i, "button"),
            Grouping::Location => text_field(i, "location"),
            other => other.period().unwrap_or(Period::Day).key(d),
        }
    };
    let mut buckets: HashMap<String, Vec<&Record>> = HashMap::new();
    for (i, d, r) in &in_range {
        buckets.entry(key_of(i, *d)).or_default().push(r);
    }
    let groups = match query.by.period() {
        Some(period) => period
            .each(query.from, query.to)
            .into_iter()
            .map(|(key, _)| IncidentGroup {
                stats: stats_of(buckets.get(&key).map(Vec::as_slice).unwrap_or(&[])),
                key,
            })
            .collect(),
        None => {
            let mut groups: Vec<IncidentGroup> = buckets
                .iter()
                .map(|(key, records)| IncidentGroup {
                    key: key.clone(),
                    stats: stats_of(records),
                })
                .collect();
            groups.sort_by(|a, b| {
                b.stats
                    .incidents
                    .cmp(&a.stats.incidents)
                    .then_with(|| a.key.cmp(&b.key))
            });
            groups
        }
    };

    let trend_period = Period::for_trend(query.days());
    let mut by_trend: HashMap<String, Vec<&Record>> = HashMap::new();
    for (_, d, r) in &in_range {
        by_trend.entry(trend_period.key(*d)).or_default().push(r);
    }
    let trend = trend_period
        .each(query.from, query.to)
        .into_iter()
        .map(|(key, _)| IncidentGroup {
            stats: stats_of(by_trend.get(&key).map(Vec::as_slice).unwrap_or(&[])),
            key,
        })
        .collect();

    IncidentReport {
        from: query.from.to_string(),
        to: query.to.to_string(),
        by: query.by.name().to_owned(),
        timezone: zone_name(zone),
        total,
        groups,
        trend_period: match trend_period {
            Period::Day => "day",
            Period::Week => "week",
            Period::Month => "month",
        }
        .to_owned(),
        trend,
        ack_histogram: histogram(all.iter().filter_map(|r| r.ack_seconds)),
        unacknowledged_calls: unacknowledged(zone, &in_range),
        levels: levels(&all),
        staff: staff(&all),
    }
}

fn unacknowledged(
    zone: &TimeZone,
    in_range: &[(&Incident, jiff::civil::Date, Record)],
) -> Vec<UnacknowledgedCall> {
    let count = |i: &Incident, name: &str| i.fields.get(name).and_then(|v| v.as_u64());
    let mut calls: Vec<&Incident> = (in_range.iter())
        .filter(|(_, _, r)| !r.acknowledged)
        .map(|(i, _, _)| *i)
        .collect();
    calls.sort_by_key(|i| std::cmp::Reverse((i.at, i.conversation)));
    calls.truncate(UNACKNOWLEDGED_LISTED);
    calls
        .into_iter()
        .map(|i| UnacknowledgedCall {
            at: jiff::Timestamp::from_millisecond(i.at)
                .map(|t| {
                    t.to_zoned(zone.clone())
                        .strftime("%Y-%m-%dT%H:%M:%S%:z")
                        .to_string()
                })
                .unwrap_or_default(),
            conversation: i.conversation,
            id: text_field(i, "id"),
            button: text_field(i, "button"),
            location: text_field(i, "location"),
            levels_tried: count(i, "levels"),
            rounds: count(i, "rounds"),
        })
        .collect()
}

/// Median and p90 (nearest rank) of some times to ack, rounded.
fn ack_times(mut seconds: Vec<f64>) -> (Option<f64>, Option<f64>) {
    seconds.sort_by(f64::total_cmp);
    let secs = |x: Option<f64>| x.map(|s| stats::round(s, 1));
    (
        secs(stats::nearest_rank(&seconds, 0.5)),
        secs(stats::nearest_rank(&seconds, 0.9)),
    )
}

fn levels(records: &[&Record]) -> Vec<LevelStats> {
    let mut by_level: std::collections::BTreeMap<u32, Vec<f64>> = Default::default();
    for r in records {
        if let Some(level) = r.level {
            by_level.entry(level).or_default().extend(r.ack_seconds);
        }
    }
    by_level
        .into_iter()
        .map(|(level, seconds)| {
            let acknowledged = records.iter().filter(|r| r.level == Some(level)).count() as u64;
            let (median, p90) = ack_times(seconds);
            LevelStats {
                level,
                acknowledged,
                median_ack_seconds: median,
                p90_ack_seconds: p90,
            }
        })
        .collect()
}

fn staff(records: &[&Record]) -> Vec<StaffStats> {
    let mut by_staff: HashMap<&str, Vec<&Record>> = HashMap::new();
    for r in records {
        if let Some(by) = &r.by {
            by_staff.entry(by).or_default().push(r);
        }
    }
    let mut out: Vec<StaffStats> = by_staff
        .into_iter()
        .map(|(staff, taken)| {
            let (median, p90) = ack_times(taken.iter().filter_map(|r| r.ack_seconds).collect());
            let mut at_level = Counts::default();
            for level in taken.iter().filter_map(|r| r.level) {
                *at_level.0.entry(level).or_default() += 1;
            }
            StaffStats {
                staff: staff.to_owned(),
                acknowledged: taken.len() as u64,
                median_ack_seconds: median,
                p90_ack_seconds: p90,
                at_level,
            }
        })
        .collect();
    out.sort_by(|a, b| (b.acknowledged.cmp(&a.acknowledged)).then_with(|| a.staff.cmp(&b.staff)));
    out
}

fn stats_of(records: &[&Record]) -> IncidentStats {
    let n = records.len() as u64;
    let acknowledged = records.iter().filter(|r| r.acknowledged).count() as u64;
    let escalated = records.iter().filter(|r| r.escalated).count() as u64;
    let mut seconds: Vec<f64> = records.iter().filter_map(|r| r.ack_seconds).collect();
    seconds.sort_by(f64::total_cmp);
    let mut resolve: Vec<f64> = records.iter().filter_map(|r| r.resolve_seconds).collect();
    resolve.sort_by(f64::total_cmp);
    let mut levels = Counts::default();
    for level in records.iter().filter_map(|r| r.level) {
        *levels.0.entry(level).or_default() += 1;
    }
    let pct = |k: u64| (n > 0).then(|| stats::round(100.0 * k as f64 / n as f64, 1));
    let secs = |x: Option<f64>| x.map(|s| stats::round(s, 1));
    IncidentStats {
        incidents: n,
        acknowledged,
        unacknowledged: n - acknowledged,
        escalated,
        acknowledged_pct: pct(acknowledged),
        escalated_pct: pct(escalated),
        median_ack_seconds: secs(stats::nearest_rank(&seconds, 0.5)),
        p90_ack_seconds: secs(stats::nearest_rank(&seconds, 0.9)),
        max_ack_seconds: secs(seconds.last().copied()),
        acknowledged_at_level: levels,
        resolved: resolve.len() as u64,
        median_resolve_seconds: secs(stats::nearest_rank(&resolve, 0.5)),
        p90_resolve_seconds: secs(stats::nearest_rank(&resolve, 0.9)),
    }
}

fn histogram(seconds: impl Iterator<Item = f64>) -> Vec<Bucket> {
    let label = |s: f64| {
        if s < 60.0 {
            format!("{s:.0}s")
        } else {
            format!("{:.0}m", s / 60.0)
        }
    };
    let mut buckets: Vec<Bucket> = Vec::new();
    let mut lower = 0.0;
    for upper in ACK_BUCKETS {
        buckets.push(Bucket {
            label: if lower == 0.0 {
                format!("<{}", label(upper))
            } else {
                format!("{}–{}", label(lower), label(upper))
            },
            from_seconds: lower,
            to_seconds: Some(upper),
            count: 0,
        });
        lower = upper;
    }
    buckets.push(Bucket {
        label: format!("≥{}", label(lower)),
        from_seconds: lower,
        to_seconds: None,
        count: 0,
    });
    for s in seconds {
        let i = ACK_BUCKETS
            .iter()
            .position(|&b| s < b)
            .unwrap_or(ACK_BUCKETS.len());
        buckets[i].count += 1;
    }
    buckets
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;
    use serde_json::json;

    fn incident(at: i64, fields: serde_json::Value) -> Incident {
        Incident {
            conversation: 1,
            at,
            fields,
        }
    }

    fn november_by_location() -> Query {
        Query {
            kind: super::super::query::Kind::Incidents,
            from: date(2026, 11, 1),
            to: date(2026, 11, 22),
            by: Grouping::Location,
            flow: String::new(),
        }
    }

    #[test]
    fn the_spec_example() {
        // 2026-11-10 12:00 UTC
        let t = 1_794_312_000_000;
        let incidents = [
            incident(
                t,
                json!({"acknowledged": true, "level": 1, "escalated": false, "ack_seconds": 35.0,
                       "acknowledged_by": "998901111111",
                       "location": "терапевтическое отделение", "button": "Палата 315"}),
            ),
            incident(
                t + 1000,
                json!({"acknowledged": true, "level": 2, "escalated": true, "ack_seconds": 120.0,
                       "acknowledged_by": "998901111111",
                       "resolved": true, "resolve_seconds": 600.0,
                       "location": "терапевтическое отделение", "button": "Палата 316"}),
            ),
            incident(
                t + 2000,
                json!({"acknowledged": false, "level": null, "escalated": true, "id": "inc-9",
                       "levels": 3, "rounds": 2,
                       "location": "хирургия", "button": "Палата 204"}),
            ),
            // Outside the range.
            incident(
                0,
                json!({"acknowledged": true, "level": 1, "ack_seconds": 1.0}),
            ),
        ];
        let query = november_by_location();
        let r = compute(&query, &TimeZone::UTC, &incidents);
        let doc = serde_json::to_value(&r).unwrap();
        assert_eq!(
            doc["total"],
            json!({"incidents": 3, "acknowledged": 2, "unacknowledged": 1, "escalated": 2,
                   "acknowledged_pct": 66.7, "escalated_pct": 66.7,
                   "median_ack_seconds": 35.0, "p90_ack_seconds": 120.0, "max_ack_seconds": 120.0,
                   "acknowledged_at_level": {"1": 1, "2": 1},
                   "resolved": 1, "median_resolve_seconds": 600.0, "p90_resolve_seconds": 600.0})
        );
        assert_eq!(doc["groups"][0]["key"], "терапевтическое отделение");
        assert_eq!(doc["groups"][0]["incidents"], 2);
        assert_eq!(doc["groups"][1]["key"], "хирургия");
        let counts: Vec<u64> = r.ack_histogram.iter().map(|b| b.count).collect();
        assert_eq!(counts, [0, 1, 0, 1, 0, 0]);
        assert_eq!(r.ack_histogram[0].label, "<30s");
        assert_eq!(r.ack_histogram[5].label, "≥10m");
        // The call nobody took, when (Tashkent is not needed: UTC here), and who took the rest.
        assert_eq!(
            doc["unacknowledged_calls"],
            json!([{"at": "2026-11-10T12:00:02+00:00", "conversation": 1, "id": "inc-9",
                    "button": "Палата 204", "location": "хирургия", "levels_tried": 3, "rounds": 2}])
        );
        assert_eq!(
            doc["levels"],
            json!([{"level": 1, "acknowledged": 1, "median_ack_seconds": 35.0, "p90_ack_seconds": 35.0},
                   {"level": 2, "acknowledged": 1, "median_ack_seconds": 120.0, "p90_ack_seconds": 120.0}])
        );
        assert_eq!(
            doc["staff"],
            json!([{"staff": "998901111111", "acknowledged": 2, "median_ack_seconds": 35.0,
                    "p90_ack_seconds": 120.0, "at_level": {"1": 1, "2": 1}}])
        );
        let back: IncidentReport = serde_json::from_str(&doc.to_string()).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn time_to_resolve_is_the_median_and_p90_of_the_resolved_ones() {
        let t = 1_794_312_000_000;
        let mut incidents: Vec<Incident> = [
            60.0, 120.0, 180.0, 240.0, 300.0, 360.0, 420.0, 480.0, 540.0, 3600.0,
        ]
        .iter()
        .map(|s| {
            incident(
                t,
                json!({"acknowledged": true, "ack_seconds": 10.0, "level": 1,
                                       "resolved": true, "resolve_seconds": s, "location": "a"}),
            )
        })
        .collect();
        // Not resolved (given up after the reminders), or a `resolved` without the time.
        incidents.push(incident(
            t,
            json!({"acknowledged": true, "resolved": false, "resolve_seconds": 1.0}),
        ));
        incidents.push(incident(t, json!({"acknowledged": true, "resolved": true})));
        let r = compute(&november_by_location(), &TimeZone::UTC, &incidents);
        assert_eq!(r.total.resolved, 10);
        assert_eq!(r.total.median_resolve_seconds, Some(300.0));
        assert_eq!(r.total.p90_resolve_seconds, Some(540.0));
        let a = r.groups.iter().find(|g| g.key == "a").unwrap();
        assert_eq!(a.stats.median_resolve_seconds, Some(300.0));
    }
}
