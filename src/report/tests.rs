//! Reports over generated data sets with known answers.
//!
//! `pattern()` is built so every number can be worked out by hand (the expected values below
//! were): five operators answer the same six scores every day of October and November 2026,
//! op-23 scored lower in October, op-17 had one bad day (2026-11-21), op-99 answered three
//! times, and each comment text belongs to one kind of answer. `noisy()` is seeded random data
//! for the checks that must hold on realistic data: the anomaly is found where it was planted
//! and nowhere else.

use jiff::ToSpan;
use jiff::civil::{Date, date};
use jiff::tz::TimeZone;

use super::csi::{self, CsiOptions, CsiReport};
use super::query::{Grouping, Kind, Query, day_start};
use super::{CsiData, SurveySend};
use crate::store::{Incident, Rating};

pub(super) const ANOMALY_DAY: Date = date(2026, 11, 21);

pub(super) fn zone() -> TimeZone {
    TimeZone::get("Asia/Tashkent").expect("bundled tzdb")
}

pub(super) fn rating(at: i64, score: u8, operator: &str, channel: &str, comment: &str) -> Rating {
    Rating {
        conversation: at as u64,
        flow: "survey".into(),
        at,
        msisdn: "998901234567".into(),
        score,
        operator: operator.into(),
        channel: channel.into(),
        comment: comment.into(),
    }
}

pub(super) const MINUTE: i64 = 60_000;
pub(super) const HOUR: i64 = 60 * MINUTE;

/// The hand-checkable data set (see the module documentation).
pub(super) fn pattern() -> CsiData {
    let ops: [(&str, [u8; 6]); 5] = [
        ("op-11", [5, 5, 4, 5, 5, 4]),
        ("op-17", [5, 4, 4, 5, 4, 4]),
        ("op-23", [4, 4, 3, 4, 4, 5]),
        ("op-31", [3, 4, 3, 4, 3, 4]),
        ("op-42", [5, 4, 3, 2, 4, 5]),
    ];
    let zone = zone();
    let mut data = CsiData::default();
    let mut day = date(2026, 10, 2);
    while day <= date(2026, 11, 30) {
        let start = day_start(&zone, day);
        for (o, (op, scores)) in ops.iter().enumerate() {
            let mut scores = *scores;
            if *op == "op-23" && day.month() == 10 {
                scores = [3, 3, 3, 4, 4, 4];
            }
            if *op == "op-17" && day == ANOMALY_DAY {
                scores = [1, 2, 1, 2, 1, 2];
            }
            for k in 0..8 {
                data.sends.push(SurveySend {
                    at: start + 9 * HOUR + (o * 10 + k) as i64 * MINUTE,
                    operator: (*op).into(),
                    channel: "call".into(),
                    delivered: k != 7,
                });
            }
            for (i, &score) in scores.iter().enumerate() {
                let comment = match (*op, score) {
                    ("op-17", 1) => "Не дозвонился, долго ждал ответа",
                    ("op-17", 2) => "Очень долго ждать, оператор грубый",
                    ("op-42", 2) => "Долго пришлось ждать на линии",
                    ("op-11", 5) => "Вежливый оператор, спасибо!",
                    ("op-31", 4) => "Xizmat juda yaxshi, rahmat",
                    ("op-23", 5) => "Quick and polite, thank you",
                    _ => "",
                };
                let channel = if i < 3 { "call" } else { "chat" };
                let at = start + 10 * HOUR + (o * 10 + i) as i64 * MINUTE;
                data.ratings.push(rating(at, score, op, channel, comment));
            }
        }
        if day == date(2026, 11, 10) {
            for i in 0..3 {
                let at = start + 12 * HOUR + i * MINUTE;
                data.sends.push(SurveySend {
                    at,
                    operator: "op-99".into(),
                    channel: "call".into(),
                    delivered: true,
                });
                data.ratings
                    .push(rating(at + MINUTE, 5, "op-99", "call", "Отлично"));
            }
        }
        day = day.checked_add(1.day()).expect("2026 fits");
    }
    data
}

pub(super) fn november(by: Grouping) -> Query {
    Query {
        kind: Kind::Csi,
        from: date(2026, 11, 1),
        to: date(2026, 11, 30),
        by,
        flow: "survey".to_owned(),
    }
}

pub(super) fn csi_of(data: &CsiData, query: &Query) -> CsiReport {
    csi::compute(query, &zone(), data, &CsiOptions::default())
}

#[test]
fn csi_total_matches_the_hand_computed_numbers() {
    let r = csi_of(&pattern(), &november(Grouping::Operator));
    let doc = serde_json::to_value(&r).unwrap();
    let t = &doc["total"];
    // 5 operators × 30 days × 8 sends + op-99's 3; 7 of each 8 delivered.
    assert_eq!(t["surveys_sent"], 1203);
    assert_eq!(t["delivered"], 1053);
    assert_eq!(t["responses"], 903);
    assert_eq!(t["response_rate"], 75.1); // 903 / 1203
    assert_eq!(t["average"], 4.05); // 3658 / 903
    assert_eq!(t["positive_pct"], 79.4); // 717 / 903
    assert_eq!(t["negative_pct"], 4.0); // 36 / 903
    assert_eq!(
        t["distribution"],
        serde_json::json!({"1": 3, "2": 33, "3": 150, "4": 446, "5": 271})
    );
    // Against 2026-10-02..2026-10-31: 900 responses averaging 3570 / 900.
    assert_eq!(t["previous"]["period"], "2026-10-02..2026-10-31");
    assert_eq!(t["previous"]["average"], 3.97);
    assert_eq!(t["change"]["average"], 0.08); // 4.0509 − 3.9667
    assert_eq!(t["change"]["responses"], 3);
    assert_eq!(t["change"]["surveys_sent"], 3);
    assert_eq!(doc["from"], "2026-11-01");
    assert_eq!(doc["by"], "operator");
    assert_eq!(doc["timezone"], "Asia/Tashkent");
    // The trend has every day of the range.
    assert_eq!(r.trend.len(), 30);
    assert_eq!(r.trend_period, "day");
    let bad_day = r.trend.iter().find(|p| p.key == "2026-11-21").unwrap();
    assert_eq!(bad_day.stats.responses, 30);
}

#[test]
fn csi_groups_rank_compare_and_flag_small_samples() {
    let r = csi_of(&pattern(), &november(Grouping::Operator));
    let keys: Vec<(&str, Option<u32>)> =
        r.groups.iter().map(|g| (g.key.as_str(), g.rank)).collect();
    assert_eq!(
        keys,
        [
            ("op-11", Some(1)),
            ("op-17", Some(2)),
            ("op-23", Some(3)),
            ("op-42", Some(3)),
            ("op-31", Some(5)),
            ("op-99", None),
        ]
    );
    // op-23 and op-42 overlap: one rank, both tied; the others stand apart.
    let tied: Vec<&str> = (r.groups.iter())
        .filter(|g| g.tied)
        .map(|g| g.key.as_str())
        .collect();
    assert_eq!(tied, ["op-23", "op-42"]);
    let g = |key: &str| &r.groups.iter().find(|g| g.key == key).unwrap().stats;
    // op-11: 120 fives and 60 fours; sd = √(40/179), t(179) = 1.9733.
    assert_eq!(g("op-11").average, Some(4.67));
    assert_eq!(g("op-11").ci95, Some([4.6, 4.74]));
    assert_eq!(g("op-11").surveys_sent, 240);
    assert_eq!(g("op-11").delivered, 210);
    assert_eq!(g("op-11").response_rate, Some(75.0));
    assert_eq!(g("op-11").positive_pct, Some(100.0));
    // op-17: 29 normal days and the bad one: 763 / 180.
    assert_eq!(g("op-17").average, Some(4.24));
    assert_eq!(g("op-17").change.as_ref().unwrap().average, Some(-0.09));
    assert_eq!(g("op-17").negative_pct, Some(3.3)); // 6 / 180
    // op-23 went from 3.5 in October to 4.0.
    assert_eq!(g("op-23").average, Some(4.0));
    assert_eq!(g("op-23").previous.as_ref().unwrap().average, Some(3.5));
    assert_eq!(g("op-23").change.as_ref().unwrap().average, Some(0.5));
    assert_eq!(g("op-23").change.as_ref().unwrap().responses, 0);
    assert_eq!(g("op-31").average, Some(3.5));
    assert_eq!(g("op-31").distribution.count(3), 90);
    // op-99: three answers are shown, flagged, not ranked, and have an interval of zero
    // width (all fives) rather than none.
    let small = g("op-99");
    assert!(small.insufficient_sample);
    assert_eq!(small.responses, 3);
    assert_eq!(small.average, Some(5.0));
    assert_eq!(small.ci95, Some([5.0, 5.0]));
    assert_eq!(small.change.as_ref().unwrap().average, None);
    assert!(!g("op-11").insufficient_sample);
}

#[test]
fn csi_by_channel_week_and_month() {
    let data = pattern();
    let r = csi_of(&data, &november(Grouping::Channel));
    // Sends are all "call"; ratings split 3/3 between call and chat (op-99 all call), and
    // the later answers of each pattern are the better ones.
    let keys: Vec<(&str, Option<u32>)> =
        r.groups.iter().map(|g| (g.key.as_str(), g.rank)).collect();
    // Their intervals overlap: both first, tied.
    assert_eq!(keys, [("chat", Some(1)), ("call", Some(1))]);
    assert!(r.groups.iter().all(|g| g.tied));
    assert_eq!(r.groups[1].stats.responses, 453);
    assert_eq!(r.groups[0].stats.responses, 450);
    assert_eq!(r.groups[0].stats.surveys_sent, 0);
    assert_eq!(r.groups[0].stats.response_rate, None);

    let r = csi_of(&data, &november(Grouping::Week));
    let keys: Vec<&str> = r.groups.iter().map(|g| g.key.as_str()).collect();
    // 2026-11-01 is a Sunday (W44); 2026-11-30 a Monday (W49).
    assert_eq!(
        keys,
        [
            "2026-W44", "2026-W45", "2026-W46", "2026-W47", "2026-W48", "2026-W49"
        ]
    );
    assert!(r.groups[0].partial && r.groups[5].partial && !r.groups[1].partial);
    // W44 holds one day of November (30 ratings) and is compared with the whole W43.
    assert_eq!(r.groups[0].stats.responses, 30);
    assert_eq!(
        r.groups[0].stats.previous.as_ref().unwrap().period,
        "2026-W43"
    );
    assert_eq!(r.groups[0].stats.previous.as_ref().unwrap().responses, 210);

    let q = Query {
        from: date(2026, 10, 1),
        ..november(Grouping::Month)
    };
    let r = csi_of(&data, &q);
    let keys: Vec<&str> = r.groups.iter().map(|g| g.key.as_str()).collect();
    assert_eq!(keys, ["2026-10", "2026-11"]);
    assert_eq!(r.groups[1].stats.responses, 903);
    assert_eq!(
        r.groups[1].stats.change.as_ref().unwrap().responses,
        903 - 900
    );
    assert_eq!(
        r.groups[1].stats.change.as_ref().unwrap().average,
        Some(0.08)
    );
}

#[test]
fn csi_comments_find_the_planted_complaint() {
    let r = csi_of(&pattern(), &november(Grouping::Operator));
    let c = &r.comments;
    assert_eq!(c.negative_comments, 36);
    // "долго" in all 36 negative comments, "ждать" in 33 (the other 3 say "ждал").
    assert_eq!(c.negative_terms[0], ("долг".to_owned(), 36));
    assert_eq!(c.negative_terms[1], ("ждат".to_owned(), 33));
    assert_eq!(c.negative_examples["долг"].word, "долго");
    assert_eq!(c.negative_examples["ждат"].word, "ждать");
    let examples = &c.negative_examples["долг"].comments;
    assert!((2..=3).contains(&examples.len()), "{examples:?}");
    assert!(examples.iter().all(|e| e.to_lowercase().contains("долго")));
    assert!(
        c.negative_bigrams
            .iter()
            .any(|(b, n)| b == "долг ждат" && *n == 33),
        "{:?}",
        c.negative_bigrams
    );
    assert!(
        c.negative_terms
            .iter()
            .any(|(t, n)| t == "не дозвон" && *n == 3)
    );
    // Positive: Russian, Uzbek Latin and English comments.
    let positive: Vec<&str> = c.positive_terms.iter().map(|(t, _)| t.as_str()).collect();
    for term in ["вежлив", "спасиб", "xizmat", "yaxshi", "polit"] {
        assert!(positive.contains(&term), "{term} in {positive:?}");
    }
    // Ties are broken alphabetically.
    assert_eq!(c.positive_terms[0], ("вежлив".to_owned(), 120));
    assert!(c.positive_terms.contains(&("оператор".to_owned(), 120)));
}

#[test]
fn csi_anomaly_is_found_where_planted_and_nowhere_else() {
    let r = csi_of(&pattern(), &november(Grouping::Operator));
    assert_eq!(r.anomalies.len(), 1, "{:?}", r.anomalies);
    let a = &r.anomalies[0];
    assert_eq!((a.key.as_str(), a.period.as_str()), ("op-17", "2026-11-21"));
    assert_eq!(a.dimension, "operator");
    assert_eq!(a.average, 1.5);
    assert_eq!(a.baseline, 4.33);
    assert_eq!(a.responses, 6);
    assert_eq!(a.baseline_responses, 168);
    let doc = serde_json::to_value(a).unwrap();
    for key in ["key", "period", "average", "baseline"] {
        assert!(doc.get(key).is_some(), "{key}");
    }
}

/// A seeded generator (SplitMix64), so the noisy data set is the same on every run.
pub(super) struct Rng(pub(super) u64);

impl Rng {
    pub(super) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub(super) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// A score from cumulative weights of 1..5 (out of 100).
    pub(super) fn score(&mut self, cumulative: [u64; 5]) -> u8 {
        let x = self.below(100);
        cumulative.iter().position(|&c| x < c).unwrap_or(4) as u8 + 1
    }
}

/// 90 days of 8–15 random answers per operator per day with realistic spread (sd ≈ 1), plus
/// one planted bad day of mostly 1s and 2s: `bad` = (operator index or None for everyone,
/// day).
pub(super) fn noisy(seed: u64, bad: Option<(Option<usize>, Date)>) -> Vec<Rating> {
    let ops = ["op-11", "op-17", "op-23", "op-31", "op-42"];
    // Cumulative shares of 1, 2, 3, 4, 5: an average around 4.1 with sd ≈ 1.1.
    let normal = [4, 9, 20, 50, 100];
    // The planted day is not left to chance: its answers cycle through these (mean 1.625).
    let awful = [1, 2, 1, 3, 1, 2, 2, 1];
    let zone = zone();
    let mut rng = Rng(seed);
    let mut out = Vec::new();
    let mut day = date(2026, 9, 1);
    while day <= date(2026, 11, 30) {
        let start = day_start(&zone, day);
        for (o, op) in ops.iter().enumerate() {
            let planted = bad.is_some_and(|(who, d)| d == day && who.is_none_or(|w| w == o));
            let n = 8 + rng.below(8);
            for i in 0..n {
                let score = if planted {
                    awful[i as usize % awful.len()]
                } else {
                    rng.score(normal)
                };
                let at = start + 9 * HOUR + (o as i64 * 60 + i as i64) * MINUTE;
                out.push(rating(at, score, op, "call", ""));
            }
        }
        day = day.checked_add(1.day()).expect("2026 fits");
    }
    out
}

/// On realistic random data "nowhere else" is a rate, not a certainty: 20 seeds × 5 operators
/// × 30 days are 3,000 checks, and the limit's false-alarm rate on this score distribution is
/// about 1 in 2,600 (simulated), so at most a couple may appear; the planted day is found in
/// every data set.
#[test]
fn noisy_data_anomaly_only_where_planted() {
    let day = date(2026, 11, 12);
    let mut false_alarms = Vec::new();
    for seed in 1..=20 {
        let data = CsiData {
            ratings: noisy(seed, Some((Some(2), day))),
            sends: Vec::new(),
            ..CsiData::default()
        };
        let r = csi_of(&data, &november(Grouping::Operator));
        assert!(
            r.anomalies
                .iter()
                .any(|a| a.key == "op-23" && a.period == "2026-11-12"),
            "seed {seed}: {:?}",
            r.anomalies
        );
        false_alarms.extend(
            r.anomalies
                .iter()
                .filter(|a| !(a.key == "op-23" && a.period == "2026-11-12"))
                .map(|a| (seed, a.key.clone(), a.period.clone(), a.z)),
        );

        // The average is the plain mean of November's scores.
        let nov: Vec<f64> = data
            .ratings
            .iter()
            .filter(|x| x.at >= day_start(&zone(), date(2026, 11, 1)))
            .map(|x| f64::from(x.score))
            .collect();
        let mean = nov.iter().sum::<f64>() / nov.len() as f64;
        assert_eq!(r.total.average, Some(super::stats::round(mean, 2)));
        assert_eq!(r.total.responses, nov.len() as u64);
    }
    println!("false alarms in 3,000 operator-days: {false_alarms:?}");
    assert!(false_alarms.len() <= 3, "{false_alarms:?}");
}

#[test]
fn noisy_data_whole_bad_day_by_day() {
    let day = date(2026, 11, 12);
    let data = CsiData {
        ratings: noisy(9, Some((None, day))),
        sends: Vec::new(),
        ..CsiData::default()
    };
    let r = csi_of(&data, &november(Grouping::Day));
    let all: Vec<&str> = r
        .anomalies
        .iter()
        .filter(|a| a.key == "all")
        .map(|a| a.period.as_str())
        .collect();
    assert_eq!(all, ["2026-11-12"], "{:?}", r.anomalies);
    let that_day = r
        .anomalies
        .iter()
        .filter(|a| a.period == "2026-11-12")
        .count();
    assert!(that_day >= 4, "most operators too: {:?}", r.anomalies);
    // With nothing planted the service as a whole is never flagged.
    for seed in 1..=5 {
        let quiet = CsiData {
            ratings: noisy(seed, None),
            sends: Vec::new(),
            ..CsiData::default()
        };
        let r = csi_of(&quiet, &november(Grouping::Day));
        assert!(
            r.anomalies.iter().all(|a| a.key != "all"),
            "{:?}",
            r.anomalies
        );
    }
}

pub(super) fn incidents() -> Vec<Incident> {
    let zone = zone();
    let mut out = Vec::new();
    let seconds = [35.0, 120.0, 10.0, 400.0, 50.0, 700.0, 20.0, 90.0];
    for (i, s) in seconds.iter().enumerate() {
        let day = date(2026, 11, 1 + i as i8);
        out.push(Incident {
            conversation: i as u64,
            at: day_start(&zone, day) + 14 * HOUR,
            updated_at: 0,
            fields: serde_json::json!({
                "acknowledged": true, "level": if *s > 100.0 { 2 } else { 1 },
                "escalated": *s > 100.0, "ack_seconds": s,
                "acknowledged_by": format!("99890111111{}", i % 2),
                "location": if i % 2 == 0 { "терапевтическое отделение" } else { "хирургия" },
                "button": format!("Палата {}", 300 + i % 3),
            }),
        });
    }
    out.push(Incident {
        conversation: 99,
        at: day_start(&zone, date(2026, 11, 3)) + HOUR,
        updated_at: 0,
        fields: serde_json::json!({"acknowledged": false, "escalated": true,
                                   "location": "хирургия", "button": "Палата 204"}),
    });
    out
}

#[test]
fn incident_report_medians_levels_and_groups() {
    let q = Query {
        kind: Kind::Incidents,
        ..november(Grouping::Location)
    };
    let r = super::incidents::compute(&q, &zone(), &incidents());
    let t = &r.total;
    assert_eq!((t.incidents, t.acknowledged, t.unacknowledged), (9, 8, 1));
    assert_eq!(t.escalated, 4); // 120, 400, 700 and the unacknowledged one
    // Sorted: 10 20 35 50 90 120 400 700; nearest rank 4 and 8.
    assert_eq!(t.median_ack_seconds, Some(50.0));
    assert_eq!(t.p90_ack_seconds, Some(700.0));
    assert_eq!(t.acknowledged_at_level.get(1), 5);
    assert_eq!(t.acknowledged_at_level.get(2), 3);
    assert_eq!(r.groups[0].key, "хирургия");
    assert_eq!(r.groups[0].stats.incidents, 5);
    let counts: Vec<u64> = r.ack_histogram.iter().map(|b| b.count).collect();
    assert_eq!(counts, [2, 2, 1, 1, 1, 1]);

    let by_day = super::incidents::compute(
        &Query {
            by: Grouping::Day,
            ..q.clone()
        },
        &zone(),
        &incidents(),
    );
    assert_eq!(by_day.groups.len(), 30);
    assert_eq!(by_day.groups[2].key, "2026-11-03");
    assert_eq!(by_day.groups[2].stats.incidents, 2);
}
