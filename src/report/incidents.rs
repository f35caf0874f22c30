//! The incident (staff call) report: how many calls, how many were taken and at which level,
//! how often they escalated, and how long staff took to answer (median and p90, nearest rank),
//! for the range and per location, button or period. Pure: [`compute`] takes the incidents the
//! escalation flow recorded.
//!
//! The fields read are the ones `scripts/escalation.rhai` records: `acknowledged`, `level`,
//! `escalated`, `ack_seconds`, `acknowledged_by`, `resolved`, `resolve_seconds` (from the call
//! to DONE), `location`, `button`, `id`, `levels`, `rounds`, and `state` and `outcome`. A
//! missing or mistyped field counts as absent (an incident without `acknowledged: true` was not
//! taken), so a changed script degrades the report instead of breaking it.
//!
//! A call counts from its press: a conversation records its incident as it goes (ringing,
//! taken, closed) and the report reads each call's latest record, on the day the call began
//! (in the service's time zone). So a call taken but not resolved is in today's report, as
//! `acknowledged` and `open`; one still ringing as `ringing` and `open`. Every call is exactly
//! one of: acknowledged (taken at some point), ringing, unacknowledged (over, nobody took it),
//! cancelled (at the button before anyone answered).
//!
//! Calls of every flow count (a restaurant's manager call, `kind: "manager_call"`, and an
//! alert, `kind: "alert"`, are staff calls too); complaints (`kind: "complaint"`, a cancel
//! press that calls nobody) are the service quality audit's (`audit.rs`) and not counted here.

use std::collections::HashMap;

use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};

use super::alerts::AlertRecipient;
use super::query::{Grouping, Period, Query, local_date};
use super::stats;
use super::{Counts, zone_name};
use crate::store::{Incident, IncidentState};

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
    /// Emergency alerts per person: sends, failed receipts, time to deliver and to `OK`
    /// ([`super::alerts`]).
    #[serde(default)]
    pub alert_recipients: Vec<AlertRecipient>,
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
    /// Calls pressed in the range: `acknowledged + ringing + unacknowledged + cancelled`.
    pub incidents: u64,
    /// Taken by someone (open or over).
    pub acknowledged: u64,
    /// Over, and nobody took it.
    pub unacknowledged: u64,
    /// Not over yet: ringing, or taken and not resolved.
    #[serde(default)]
    pub open: u64,
    /// Calling staff now; nobody took it yet.
    #[serde(default)]
    pub ringing: u64,
    /// Cancelled at the button before anyone answered.
    #[serde(default)]
    pub cancelled: u64,
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
#[derive(Debug, Clone)]
struct Record {
    state: IncidentState,
    cancelled: bool,
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
        let state = incident.state();
        let cancelled = !acknowledged
            && state == IncidentState::Closed
            && f.get("outcome").and_then(|v| v.as_str()) == Some("cancelled");
        Record {
            state,
            cancelled,
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

impl Record {
    /// Over, and nobody took it (not cancelled at the button).
    fn unacknowledged(&self) -> bool {
        self.state == IncidentState::Closed && !self.acknowledged && !self.cancelled
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
    // Each call as it stands (its latest record), on the day it began. A complaint (a
    // restaurant's cancel press) calls nobody: it is the audit's, not a staff call.
    let incidents: Vec<Incident> = (Incident::latest(incidents.iter().cloned()).into_iter())
        .filter(|i| i.fields.get("kind").and_then(|k| k.as_str()) != Some("complaint"))
        .collect();
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
        alert_recipients: super::alerts::recipients(in_range.iter().map(|(i, _, _)| *i)),
    }
}

fn unacknowledged(
    zone: &TimeZone,
    in_range: &[(&Incident, jiff::civil::Date, Record)],
) -> Vec<UnacknowledgedCall> {
    let count = |i: &Incident, name: &str| i.fields.get(name).and_then(|v| v.as_u64());
    let mut calls: Vec<&Incident> = (in_range.iter())
        .filter(|(_, _, r)| r.unacknowledged())
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

fn levels(records: &[&Record]) -> Vec<LevelStats> {
    let mut by_level: std::collections::BTreeMap<u32, Vec<f64>> = Default::default();
    for r in records {
        if let Some(level) = r.level {
            by_level.entry(level).or_default().extend(r.ack_seconds);
        }
    }
    by_level
        .into_iter()
        .map(|(level, mut seconds)| {
            let acknowledged = records.iter().filter(|r| r.level == Some(level)).count() as u64;
            let (median, p90) = stats::median_p90(&mut seconds);
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
            let mut seconds: Vec<f64> = taken.iter().filter_map(|r| r.ack_seconds).collect();
            let (median, p90) = stats::median_p90(&mut seconds);
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
    let count = |f: &dyn Fn(&Record) -> bool| records.iter().filter(|r| f(r)).count() as u64;
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
        unacknowledged: count(&|r| r.unacknowledged()),
        open: count(&|r| r.state != IncidentState::Closed),
        ringing: count(&|r| r.state == IncidentState::Ringing),
        cancelled: count(&|r| r.cancelled),
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

    /// An incident of a call of its own: conversations numbered by the fields' `n` (tests
    /// that need a known one set it), else by a hash of the fields.
    fn incident(at: i64, fields: serde_json::Value) -> Incident {
        let conversation = fields.get("n").and_then(|n| n.as_u64()).unwrap_or_else(|| {
            let text = fields.to_string();
            text.bytes()
                .fold(at as u64, |h, b| h.wrapping_mul(31).wrapping_add(b.into()))
        });
        Incident {
            conversation,
            at,
            updated_at: at,
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
                       "levels": 3, "rounds": 2, "n": 1,
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
                   "open": 0, "ringing": 0, "cancelled": 0,
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

    /// Each call is counted once, from its press, as its latest record says: ringing, taken
    /// and open, resolved, over with nobody taking it, cancelled at the button.
    #[test]
    fn a_call_counts_from_its_press_by_its_latest_record() {
        let t = 1_794_312_000_000;
        let record = |n: u64, updated: i64, fields: serde_json::Value| Incident {
            conversation: n,
            at: t + n as i64,
            updated_at: t + updated,
            fields,
        };
        let ringing = json!({"state": "ringing", "acknowledged": false, "escalated": false});
        let taken = |level: u64, secs: f64| {
            json!({"state": "acknowledged", "acknowledged": true,
            "level": level, "ack_seconds": secs, "escalated": level > 1, "acknowledged_by": "998901111111"})
        };
        let incidents = [
            // 1: still ringing, past level 1.
            record(1, 0, ringing.clone()),
            record(
                1,
                180_000,
                json!({"state": "ringing", "acknowledged": false, "escalated": true}),
            ),
            // 2: taken at level 2, not resolved yet.
            record(2, 0, ringing.clone()),
            record(2, 200_000, taken(2, 200.0)),
            // 3: taken, then resolved (the closing record repeats the ack).
            record(3, 0, ringing.clone()),
            record(3, 30_000, taken(1, 30.0)),
            record(
                3,
                90_000,
                json!({"state": "closed", "outcome": "resolved", "acknowledged": true,
                "level": 1, "ack_seconds": 30.0, "resolved": true, "resolve_seconds": 90.0}),
            ),
            // 4: nobody took it.
            record(4, 0, ringing.clone()),
            record(
                4,
                900_000,
                json!({"state": "closed", "outcome": "unacknowledged",
                "acknowledged": false, "escalated": true}),
            ),
            // 5: cancelled at the button after escalating.
            record(5, 0, ringing.clone()),
            record(
                5,
                400_000,
                json!({"state": "closed", "outcome": "cancelled",
                "acknowledged": false, "escalated": true, "level_reached": 3}),
            ),
            // 6: a restaurant's complaint calls nobody: not a staff call.
            record(
                6,
                0,
                json!({"kind": "complaint", "state": "closed", "outcome": "complaint"}),
            ),
        ];
        let r = compute(&november_by_location(), &TimeZone::UTC, &incidents);
        let t = &r.total;
        assert_eq!(
            (
                t.incidents,
                t.acknowledged,
                t.open,
                t.ringing,
                t.unacknowledged,
                t.cancelled
            ),
            (5, 2, 2, 1, 1, 1)
        );
        assert_eq!(
            t.incidents,
            t.acknowledged + t.ringing + t.unacknowledged + t.cancelled
        );
        assert_eq!((t.resolved, t.median_resolve_seconds), (1, Some(90.0)));
        // Time to ack: the two taken calls only (not the cancelled one).
        assert_eq!(
            (t.median_ack_seconds, t.max_ack_seconds),
            (Some(30.0), Some(200.0))
        );
        assert_eq!(
            (
                r.unacknowledged_calls.len(),
                r.unacknowledged_calls[0].conversation
            ),
            (1, 4)
        );
    }

    #[test]
    fn time_to_resolve_is_the_median_and_p90_of_the_resolved_ones() {
        let t = 1_794_312_000_000;
        let mut incidents: Vec<Incident> = [
            60.0, 120.0, 180.0, 240.0, 300.0, 360.0, 420.0, 480.0, 540.0, 3600.0,
        ]
        .iter()
        .enumerate()
        .map(|(n, s)| {
            incident(
                t,
                json!({"acknowledged": true, "ack_seconds": 10.0, "level": 1, "n": n,
                       "resolved": true, "resolve_seconds": s, "location": "a"}),
            )
        })
        .collect();
        // Not resolved (given up after the reminders), or a `resolved` without the time.
        incidents.push(incident(
            t,
            json!({"acknowledged": true, "resolved": false, "resolve_seconds": 1.0, "n": 20}),
        ));
        incidents.push(incident(
            t,
            json!({"acknowledged": true, "resolved": true, "n": 21}),
        ));
        let r = compute(&november_by_location(), &TimeZone::UTC, &incidents);
        assert_eq!(r.total.resolved, 10);
        assert_eq!(r.total.median_resolve_seconds, Some(300.0));
        assert_eq!(r.total.p90_resolve_seconds, Some(540.0));
        let a = r.groups.iter().find(|g| g.key == "a").unwrap();
        assert_eq!(a.stats.median_resolve_seconds, Some(300.0));
    }
}
