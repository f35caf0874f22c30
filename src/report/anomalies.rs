//! Anomalies: an operator (or channel, or the whole service) whose average in one period
//! falls clearly below its own recent history.
//!
//! The test is a lower control limit (Shewhart style): with the key's trailing baseline mean
//! `μ` and standard deviation `σ` over [`baseline_periods`] periods before, a period of `n ≥
//! min_sample` responses whose average is below `μ − q·σ/√n` and at least [`MIN_DROP`] below
//! `μ` is listed. `q` is the three-sigma point for large samples (a one-sided tail of
//! [`TAIL`]), taken from Student's t with n − 1 degrees of freedom so that it widens for small
//! samples: the mean of a handful of 1–5 scores is far from normal (the scale is bounded and
//! skewed), and plain 3σ flagged about one random operator-day in 250 of 8–15 answers drawn
//! from a realistic score distribution; with the t correction about one in 2,600. The minimum drop keeps a busy key
//! from being flagged for a statistically real but meaningless dip, and σ comes from the
//! baseline (many answers), not from the handful in the period, so five identical answers are
//! not "certain".

use std::collections::{BTreeMap, HashMap};

use jiff::ToSpan;
use jiff::civil::Date;
use serde::{Deserialize, Serialize};

use super::query::{Grouping, Period, Query};
use super::stats::{self, Scores};

/// Trailing periods the baseline covers: 28 days, 8 weeks or 6 months.
pub fn baseline_periods(period: Period) -> u32 {
    match period {
        Period::Day => 28,
        Period::Week => 8,
        Period::Month => 6,
    }
}

/// Fewest baseline responses to judge against.
pub const MIN_BASELINE: u64 = 20;

/// One-sided tail probability of the control limit: that of 3σ of a normal distribution.
pub const TAIL: f64 = 0.00135;

/// Smallest drop below the baseline worth listing, in points of the 1–5 scale.
pub const MIN_DROP: f64 = 0.3;

/// The key of the whole service's row.
pub const ALL: &str = "all";

/// One key in one period, clearly below its baseline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Anomaly {
    /// Operator, channel, or `"all"`.
    pub key: String,
    /// `"operator"`, `"channel"` or `"all"`.
    pub dimension: String,
    /// The period key (`2026-11-21`, `2026-W47`, `2026-11`).
    pub period: String,
    pub average: f64,
    /// Mean of the trailing baseline.
    pub baseline: f64,
    pub responses: u64,
    pub baseline_responses: u64,
    /// `baseline − q·σ/√n`: the average had to fall below this.
    pub lower_limit: f64,
    /// How many standard errors below the baseline; null when the baseline has no spread.
    pub z: Option<f64>,
}

/// The first day of the earliest baseline a report starting at `from` needs.
pub fn baseline_start(period: Period, from: Date) -> Date {
    let mut day = period.start(from);
    for _ in 0..baseline_periods(period) {
        day = period.previous(day);
    }
    day
}

/// The scores of one local day of one operator and channel: what anomalies are judged on.
#[derive(Debug, Clone, Copy)]
pub struct DayScores<'a> {
    pub date: Date,
    pub operator: &'a str,
    pub channel: &'a str,
    pub scores: &'a Scores,
}

/// Anomalies in the periods of `query` (its own period for day/week/month groupings, days
/// otherwise), per operator (per channel for `by=channel`), and for the whole service when
/// the grouping is a period. `days` should reach back to [`baseline_start`].
pub fn find<'a>(
    query: &Query,
    days: impl IntoIterator<Item = DayScores<'a>>,
    min_sample: u64,
) -> Vec<Anomaly> {
    let period = query.by.period().unwrap_or(Period::Day);
    let dimensions: &[&str] = match query.by {
        Grouping::Channel => &["channel"],
        Grouping::Day | Grouping::Week | Grouping::Month => &[ALL, "operator"],
        _ => &["operator"],
    };
    // key → day → scores
    let mut days_of: HashMap<(&str, &str), BTreeMap<Date, Scores>> = HashMap::new();
    for d in days {
        for &dimension in dimensions {
            let key = match dimension {
                "channel" => d.channel,
                "operator" => d.operator,
                _ => ALL,
            };
            days_of
                .entry((dimension, key))
                .or_default()
                .entry(d.date)
                .or_default()
                .merge(d.scores);
        }
    }
    let periods = period.each(query.from, query.to);
    let mut found = Vec::new();
    for ((dimension, key), by_day) in &days_of {
        if key.is_empty() {
            continue;
        }
        let sum = |from: Date, to: Date| {
            let mut s = Scores::default();
            if from <= to {
                for (_, day) in by_day.range(from..=to) {
                    s.merge(day);
                }
            }
            s
        };
        for (name, start) in &periods {
            let end = period.next(*start).checked_sub(1.day()).unwrap_or(*start);
            let now = sum((*start).max(query.from), end.min(query.to));
            let base = sum(
                baseline_start(period, *start),
                start.checked_sub(1.day()).unwrap_or(*start),
            );
            if let Some(a) = judge(&now, &base, min_sample) {
                found.push(Anomaly {
                    key: (*key).to_owned(),
                    dimension: (*dimension).to_owned(),
                    period: name.clone(),
                    ..a
                });
            }
        }
    }
    found.sort_by(|a, b| {
        (a.period.as_str(), a.dimension != ALL, a.key.as_str()).cmp(&(
            b.period.as_str(),
            b.dimension != ALL,
            b.key.as_str(),
        ))
    });
    found
}

/// The control-limit test of the module documentation; `Some` (with empty key fields) when
/// `now` is anomalous against `base`.
fn judge(now: &Scores, base: &Scores, min_sample: u64) -> Option<Anomaly> {
    if now.n < min_sample.max(1) || base.n < MIN_BASELINE {
        return None;
    }
    let (avg, mu, sigma) = (now.mean()?, base.mean()?, base.sd()?);
    let se = sigma / (now.n as f64).sqrt();
    let q = stats::t_quantile(1.0 - TAIL, (now.n - 1) as f64);
    let limit = mu - q * se;
    if avg >= limit || mu - avg < MIN_DROP {
        return None;
    }
    Some(Anomaly {
        key: String::new(),
        dimension: String::new(),
        period: String::new(),
        average: stats::round(avg, 2),
        baseline: stats::round(mu, 2),
        responses: now.n,
        baseline_responses: base.n,
        lower_limit: stats::round(limit, 2),
        z: (se > 0.0).then(|| stats::round((avg - mu) / se, 1)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scores(xs: &[u8]) -> Scores {
        let mut s = Scores::default();
        for &x in xs {
            s.add(x);
        }
        s
    }

    #[test]
    fn a_clear_drop_is_flagged_a_dip_is_not() {
        // Baseline: 40 answers around 4.2.
        let base = scores(&[5, 4, 4, 5, 3, 4, 5, 4, 4, 4].repeat(4));
        let low = judge(&scores(&[1, 2, 1, 2, 2, 1]), &base, 5).expect("flagged");
        assert_eq!(low.average, 1.5);
        assert_eq!(low.baseline, 4.2);
        assert!(low.lower_limit > 2.0 && low.lower_limit < 4.2, "{low:?}");
        assert!(judge(&scores(&[4, 4, 3, 4, 5]), &base, 5).is_none());
        // Too few answers in the period, or in the baseline.
        assert!(judge(&scores(&[1, 1, 1]), &base, 5).is_none());
        assert!(judge(&scores(&[1, 1, 1, 1, 1]), &scores(&[5; 10]), 5).is_none());
    }
}
