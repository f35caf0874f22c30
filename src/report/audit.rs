//! The service quality audit of restaurants and shops (`smsflow report audit`,
//! `GET /api/v1/reports/audit`): how many complaints (cancel presses: the service fell short,
//! nobody called) and manager calls (call presses), where and when, how fast the manager came
//! (answered OK: median and p90, nearest rank), and the calls nobody answered; per location,
//! button or period, and a heat map of the presses by hour of day × weekday.
//!
//! Pure: [`compute`] takes [`AuditData`], the counts per quarter hour, location and button (the
//! store's tallies, or what raw incident records count: [`AuditData::from_incidents`]) and the
//! answered calls' times. Days, weeks, months, hours and weekdays are cut in the report's zone.
//! A press counts on the day it was pressed; a call counts from its press, and as answered once
//! the manager answered.

use std::collections::{BTreeMap, HashMap};

use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};

use super::incidents::NONE_KEY;
use super::query::{Grouping, Period, Query, local_date};
use super::{stats, zone_name};
use crate::store::audit_tally::{self, AuditKey, AuditTally};
use crate::store::{Incident, Millis};

/// A manager call the manager answered: when it was pressed, where, and how long he took.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub at: Millis,
    pub location: String,
    pub button: String,
    pub seconds: f64,
}

/// What the audit is computed from.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuditData {
    /// Counts per quarter hour (UTC), location and button.
    pub slots: Vec<(AuditKey, AuditTally)>,
    /// Every answered manager call of the range.
    pub answers: Vec<Answer>,
}

impl AuditData {
    /// The data of raw incident records (of every flow; each call's latest record counts),
    /// as the tallies would hold it: the stream's report, and the tallies' cross-check.
    pub fn from_incidents(records: &[Incident]) -> AuditData {
        let latest = Incident::latest(records.iter().cloned());
        let mut slots: BTreeMap<AuditKey, AuditTally> = BTreeMap::new();
        for i in &latest {
            if let Some((key, t)) = audit_tally::facts(i.at, &i.fields) {
                slots.entry(key).or_default().add(&t);
            }
        }
        AuditData {
            slots: slots.into_iter().collect(),
            answers: answers(&latest),
        }
    }
}

/// The answered manager calls among `latest` (each call's latest record).
pub fn answers(latest: &[Incident]) -> Vec<Answer> {
    let text = |i: &Incident, name: &str| {
        (i.fields.get(name).and_then(|v| v.as_str()))
            .unwrap_or_default()
            .trim()
            .to_owned()
    };
    (latest.iter())
        .filter(|i| i.fields.get("kind").and_then(|k| k.as_str()) == Some("manager_call"))
        .filter(|i| i.fields.get("acknowledged").and_then(|a| a.as_bool()) == Some(true))
        .filter_map(|i| {
            let seconds = i.fields.get("ack_seconds").and_then(|s| s.as_f64())?;
            (seconds.is_finite() && seconds >= 0.0).then(|| Answer {
                at: i.at,
                location: text(i, "location"),
                button: text(i, "button"),
                seconds,
            })
        })
        .collect()
}

/// The audit document; `--format json` and `GET /api/v1/reports/audit` give exactly this.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditReport {
    pub from: String,
    pub to: String,
    pub by: String,
    pub timezone: String,
    pub total: AuditStats,
    pub groups: Vec<AuditGroup>,
    /// The step of `trend`: `"day"`, `"week"` or `"month"`.
    pub trend_period: String,
    /// Every period of the range, empty ones included.
    pub trend: Vec<AuditGroup>,
    /// Monday to Sunday, each with the presses of every hour 0–23.
    pub heatmap: Vec<HeatRow>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AuditStats {
    /// Every press: `complaints + manager_calls`.
    pub presses: u64,
    /// Cancel presses: the service fell short, nobody was called.
    pub complaints: u64,
    /// Call presses: the manager was called.
    pub manager_calls: u64,
    /// Calls a manager answered (OK).
    pub answered: u64,
    /// Calls over with no answer (every level called, every round).
    pub not_answered: u64,
    /// Calls still ringing.
    pub open: u64,
    /// Calls cancelled at the button before anyone answered.
    pub cancelled: u64,
    /// `answered` of `manager_calls`, 0–100; null without calls.
    pub answered_pct: Option<f64>,
    /// Time from the press until the manager answered, nearest-rank median and p90 of the
    /// answered calls; null without.
    pub median_answer_seconds: Option<f64>,
    pub p90_answer_seconds: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditGroup {
    pub key: String,
    #[serde(flatten)]
    pub stats: AuditStats,
}

/// One weekday of the heat map.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeatRow {
    /// `Mon` … `Sun`.
    pub weekday: String,
    /// Complaints in each hour, 0–23 (24 numbers).
    pub complaints: Vec<u64>,
    /// Manager calls in each hour.
    pub manager_calls: Vec<u64>,
}

pub const WEEKDAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

/// What one group gathers before its stats are made.
#[derive(Default)]
struct Bucket {
    counts: AuditTally,
    seconds: Vec<f64>,
}

impl Bucket {
    fn stats(mut self) -> AuditStats {
        let c = self.counts;
        let (median, p90) = stats::median_p90(&mut self.seconds);
        let open = c
            .calls
            .saturating_sub(c.answered + c.not_answered + c.cancelled);
        AuditStats {
            presses: c.complaints + c.calls,
            complaints: c.complaints,
            manager_calls: c.calls,
            answered: c.answered,
            not_answered: c.not_answered,
            open,
            cancelled: c.cancelled,
            answered_pct: (c.calls > 0)
                .then(|| stats::round(100.0 * c.answered as f64 / c.calls as f64, 1)),
            median_answer_seconds: median,
            p90_answer_seconds: p90,
        }
    }
}

/// The audit of `query` over `data` (what lies outside the range is ignored).
pub fn compute(query: &Query, zone: &TimeZone, data: &AuditData) -> AuditReport {
    let in_range = |d: jiff::civil::Date| query.from <= d && d <= query.to;
    let named = |s: &str| {
        if s.is_empty() {
            NONE_KEY.to_owned()
        } else {
            s.to_owned()
        }
    };
    let key_of = |location: &str, button: &str, d: jiff::civil::Date| match query.by {
        Grouping::Button => named(button),
        Grouping::Location => named(location),
        other => other.period().unwrap_or(Period::Day).key(d),
    };
    let trend_period = Period::for_trend(query.days());
    let (mut total, mut groups, mut trend) = (
        Bucket::default(),
        HashMap::<String, Bucket>::new(),
        HashMap::<String, Bucket>::new(),
    );
    let mut complaints = [[0u64; 24]; 7];
    let mut calls = [[0u64; 24]; 7];
    for (key, counts) in &data.slots {
        let Ok(at) = jiff::Timestamp::from_millisecond(key.starts_at()) else {
            continue;
        };
        let local = at.to_zoned(zone.clone());
        let date = local.date();
        if !in_range(date) {
            continue;
        }
        for bucket in [
            &mut total,
            groups
                .entry(key_of(&key.location, &key.button, date))
                .or_default(),
            trend.entry(trend_period.key(date)).or_default(),
        ] {
            bucket.counts.add(counts);
        }
        let (day, hour) = (
            usize::from(local.weekday().to_monday_zero_offset() as u8),
            local.hour() as usize,
        );
        complaints[day][hour] += counts.complaints;
        calls[day][hour] += counts.calls;
    }
    for a in &data.answers {
        let date = local_date(zone, a.at);
        if !in_range(date) {
            continue;
        }
        total.seconds.push(a.seconds);
        let group = key_of(&a.location, &a.button, date);
        groups.entry(group).or_default().seconds.push(a.seconds);
        trend
            .entry(trend_period.key(date))
            .or_default()
            .seconds
            .push(a.seconds);
    }
    let groups = match query.by.period() {
        Some(period) => (period.each(query.from, query.to).into_iter())
            .map(|(key, _)| AuditGroup {
                stats: groups.remove(&key).unwrap_or_default().stats(),
                key,
            })
            .collect(),
        None => {
            let mut list: Vec<AuditGroup> = (groups.into_iter())
                .map(|(key, b)| AuditGroup {
                    key,
                    stats: b.stats(),
                })
                .collect();
            list.sort_by(|a, b| {
                (b.stats.presses.cmp(&a.stats.presses)).then_with(|| a.key.cmp(&b.key))
            });
            list
        }
    };
    let trend = (trend_period.each(query.from, query.to).into_iter())
        .map(|(key, _)| AuditGroup {
            stats: trend.remove(&key).unwrap_or_default().stats(),
            key,
        })
        .collect();
    AuditReport {
        from: query.from.to_string(),
        to: query.to.to_string(),
        by: query.by.name().to_owned(),
        timezone: zone_name(zone),
        total: total.stats(),
        groups,
        trend_period: match trend_period {
            Period::Day => "day",
            Period::Week => "week",
            Period::Month => "month",
        }
        .to_owned(),
        trend,
        heatmap: (0..7)
            .map(|d| HeatRow {
                weekday: WEEKDAYS[d].to_owned(),
                complaints: complaints[d].to_vec(),
                manager_calls: calls[d].to_vec(),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::query::Kind;
    use jiff::civil::date;
    use serde_json::json;

    /// 2026-11-23 (a Monday) 19:00 in Tashkent.
    const EVENING: Millis = 1_795_442_400_000;

    fn record(n: u64, at: Millis, fields: serde_json::Value) -> Incident {
        Incident {
            conversation: n,
            at,
            updated_at: at,
            fields,
        }
    }

    fn evening() -> Vec<Incident> {
        let complaint = |table: &str| json!({"kind": "complaint", "state": "closed", "location": "зал 1", "button": table});
        let minute = 60_000;
        vec![
            record(1, EVENING, complaint("Стол 12")),
            record(2, EVENING + 10 * minute, complaint("Стол 12")),
            record(3, EVENING + 70 * minute, complaint("Стол 7")),
            // A call answered after 95 s, one nobody answered, one still ringing.
            record(
                4,
                EVENING + 5 * minute,
                json!({"kind": "manager_call", "state": "ringing",
                "location": "зал 1", "button": "Стол 7", "acknowledged": false}),
            ),
            record(
                4,
                EVENING + 5 * minute,
                json!({"kind": "manager_call", "state": "closed",
                "outcome": "acknowledged", "location": "зал 1", "button": "Стол 7",
                "acknowledged": true, "ack_seconds": 95.0}),
            ),
            record(
                5,
                EVENING + 80 * minute,
                json!({"kind": "manager_call", "state": "closed",
                "outcome": "unacknowledged", "location": "терраса", "button": "Стол 30",
                "acknowledged": false}),
            ),
            record(
                6,
                EVENING + 90 * minute,
                json!({"kind": "manager_call", "state": "ringing",
                "location": "терраса", "button": "Стол 31", "acknowledged": false}),
            ),
            // A ward's staff call is not the audit's.
            record(
                7,
                EVENING,
                json!({"state": "closed", "acknowledged": true, "ack_seconds": 5.0}),
            ),
        ]
    }

    fn query(by: &str) -> Query {
        Query::parse(
            Kind::Audit,
            Some("2026-11-01"),
            Some("2026-11-30"),
            Some(by),
            date(2026, 11, 30),
        )
        .unwrap()
    }

    #[test]
    fn an_evening_of_complaints_and_manager_calls() {
        let zone = TimeZone::get("Asia/Tashkent").unwrap();
        let data = AuditData::from_incidents(&evening());
        let r = compute(&query("location"), &zone, &data);
        let doc = serde_json::to_value(&r).unwrap();
        assert_eq!(
            doc["total"],
            json!({"presses": 6, "complaints": 3, "manager_calls": 3, "answered": 1,
                   "not_answered": 1, "open": 1, "cancelled": 0, "answered_pct": 33.3,
                   "median_answer_seconds": 95.0, "p90_answer_seconds": 95.0})
        );
        assert_eq!(r.groups[0].key, "зал 1");
        assert_eq!(
            (
                r.groups[0].stats.complaints,
                r.groups[0].stats.manager_calls
            ),
            (3, 1)
        );
        assert_eq!(
            (r.groups[1].key.as_str(), r.groups[1].stats.open),
            ("терраса", 1)
        );
        // Monday 19:00–20:59 local.
        let monday = &r.heatmap[0];
        assert_eq!((monday.complaints[19], monday.complaints[20]), (2, 1));
        assert_eq!((monday.manager_calls[19], monday.manager_calls[20]), (1, 2));
        assert_eq!(r.heatmap[1].complaints.iter().sum::<u64>(), 0);
        let back: AuditReport = serde_json::from_str(&doc.to_string()).unwrap();
        assert_eq!(back, r);

        let by_button = compute(&query("button"), &zone, &data);
        let twelve = by_button
            .groups
            .iter()
            .find(|g| g.key == "Стол 12")
            .unwrap();
        assert_eq!(twelve.stats.complaints, 2);
        let by_day = compute(&query("day"), &zone, &data);
        assert_eq!(by_day.groups.len(), 30);
        assert_eq!(by_day.groups[22].stats.presses, 6);
    }

    /// The tallies the store keeps for these records give the same report as the records.
    #[test]
    fn the_report_from_tallies_is_the_report_from_records() {
        let zone = TimeZone::get("Asia/Tashkent").unwrap();
        let store = crate::store::Store::temporary().unwrap();
        for (i, r) in evening().into_iter().enumerate() {
            let conversation = crate::store::Conversation {
                id: r.conversation,
                flow: "escalation".into(),
                flow_version: String::new(),
                state: json!({}),
                parties: Vec::new(),
                status: crate::store::ConversationStatus::Open,
                created_at: r.at,
                updated_at: r.at + i as i64,
                incident: Some(r.fields.clone()),
                ..Default::default()
            };
            store
                .commit(crate::store::Commit {
                    conversation: Some(conversation),
                    incidents: vec![r],
                    ..Default::default()
                })
                .unwrap();
        }
        let (from, to) =
            crate::report::query::range_ms(&zone, date(2026, 11, 1), date(2026, 12, 1));
        let tallied = AuditData {
            slots: store.audit_tallies(from, to),
            answers: answers(&Incident::latest(store.incidents(from, to).unwrap())),
        };
        let raw = AuditData::from_incidents(&store.incidents(from, to).unwrap());
        assert_eq!(tallied, raw);
        assert_eq!(compute(&query("day"), &zone, &tallied).total.presses, 6);
    }
}
