//! The CSI report: surveys sent and delivered, responses, response rate, average with its
//! confidence interval, positive/negative shares and the 1–5 distribution, for the whole
//! range and per group, each against its previous period; plus the trend, the comment
//! analysis and the anomalies. Pure: [`compute`] takes plain data and returns the document.

use std::collections::{BTreeMap, HashMap};

use jiff::ToSpan;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};

use super::anomalies::{self, Anomaly};
use super::clauses::{self, Finding};
use super::comments::{self, Comments};
use super::outcomes::Outcomes;
use super::query::{Grouping, Period, Query, local_date};
use super::scale::{self, Scale};
use super::stats::{self, CI_METHOD, Scores};
use super::{CsiData, Distribution, zone_name};
use crate::store::Rating;

/// Groups with fewer responses are flagged `insufficient_sample` and not ranked: an average
/// of three answers says more about those three customers than about the operator.
pub const MIN_SAMPLE: u64 = 5;

/// The key of a group whose operator or channel is empty.
pub const NONE_KEY: &str = "(none)";

/// Settings of a CSI report beyond the query.
#[derive(Debug, Clone, PartialEq)]
pub struct CsiOptions {
    /// See [`MIN_SAMPLE`].
    pub min_sample: u64,
    /// The scale of the survey flow's ratings (its `fn scale()`).
    pub scale: Scale,
}

impl Default for CsiOptions {
    fn default() -> Self {
        CsiOptions {
            min_sample: MIN_SAMPLE,
            scale: Scale::default(),
        }
    }
}

/// The CSI report document (SPEC.md "Report JSON"); the CLI's `--format json` and
/// `GET /api/v1/reports/csi` give exactly this.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CsiReport {
    pub from: String,
    pub to: String,
    pub by: String,
    /// IANA name of the zone the dates are in.
    pub timezone: String,
    /// The range the `change` of `total` is measured against.
    pub previous_from: String,
    pub previous_to: String,
    pub min_sample: u64,
    /// How `ci95` is computed.
    pub confidence_interval: String,
    pub total: CsiStats,
    pub groups: Vec<CsiGroup>,
    /// `"day"`, `"week"` or `"month"`: the step of `trend`.
    pub trend_period: String,
    /// Every period of the range in order, empty ones included.
    pub trend: Vec<CsiGroup>,
    pub comments: Comments,
    /// How the surveys created in the range ended.
    #[serde(default)]
    pub outcomes: Outcomes,
    pub anomalies: Vec<Anomaly>,
}

/// One row: the whole range, a group, or a point of the trend.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CsiStats {
    /// Survey conversations created in the period that sent their question.
    pub surveys_sent: u64,
    /// Of those, the ones whose question has a delivery receipt saying delivered.
    pub delivered: u64,
    /// Ratings recorded in the period.
    pub responses: u64,
    /// responses / surveys_sent, 0–100; null when nothing was sent. Can pass 100 when
    /// answers come in for surveys sent before the period.
    pub response_rate: Option<f64>,
    /// Mean score (2 decimals); null without responses.
    pub average: Option<f64>,
    /// The 95 % confidence interval of `average` (see `confidence_interval`), clipped to 1–5;
    /// null below two responses.
    pub ci95: Option<[f64; 2]>,
    /// Share of the positive scores (CSAT 4–5, NPS promoters, CES easy), 0–100.
    pub positive_pct: Option<f64>,
    /// Share of the negative scores (CSAT 1–2, NPS detractors, CES hard), 0–100.
    pub negative_pct: Option<f64>,
    /// Every score of the scale → how many.
    pub distribution: Distribution,
    /// Fewer than `min_sample` responses: shown, not ranked.
    pub insufficient_sample: bool,
    /// NPS surveys: promoters % − detractors % (−100..100), its interval and the shares.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nps: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nps_ci95: Option<[f64; 2]>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promoters_pct: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passives_pct: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detractors_pct: Option<f64>,
    /// CES surveys: the share of "easy" (5–7).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub easy_pct: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<Previous>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change: Option<Change>,
}

/// A group of the report: its key (operator, channel or period) and its numbers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CsiGroup {
    pub key: String,
    #[serde(flatten)]
    pub stats: CsiStats,
    /// Among groups with a sufficient sample (operator and channel groupings only): 1 + how
    /// many groups are clearly better (their 95 % interval lies wholly above this one's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rank: Option<u32>,
    /// Another group has the same rank: their intervals overlap, so the data cannot order
    /// them.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub tied: bool,
    /// The group's top problems and praise (operator and channel groupings).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<Finding>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub praise: Vec<Finding>,
    /// A period group only partly inside `from..=to`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub partial: bool,
}

/// The numbers of the period a row is compared with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Previous {
    /// A period key, or `FROM..TO` for the range before the report's.
    pub period: String,
    pub surveys_sent: u64,
    pub responses: u64,
    pub average: Option<f64>,
    pub positive_pct: Option<f64>,
}

/// This period minus the previous one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    pub surveys_sent: i64,
    pub responses: i64,
    /// Null when either period has no responses.
    pub average: Option<f64>,
    /// Percentage points.
    pub positive_pct: Option<f64>,
}

/// Scores plus survey counts of one bucket.
#[derive(Debug, Clone, Copy, Default)]
struct Tally {
    scores: Scores,
    sent: u64,
    delivered: u64,
}

impl Tally {
    fn merge(&mut self, other: &Tally) {
        self.scores.merge(&other.scores);
        self.sent += other.sent;
        self.delivered += other.delivered;
    }
}

/// The first day of data [`compute`] needs: the previous range, the period before the first
/// group, and the anomaly baselines all lie before `query.from`.
pub fn history_start(query: &Query) -> Date {
    let (previous_from, _) = query.previous_range();
    let period = query.by.period().unwrap_or(Period::Day);
    previous_from
        .min(period.previous(query.from))
        .min(anomalies::baseline_start(period, query.from))
}

/// A rating or a survey send, reduced to what bucketing needs.
struct Fact<'a> {
    date: Date,
    operator: &'a str,
    channel: &'a str,
    tally: Tally,
}

/// The CSI report of `query` over `data` (which should cover [`history_start`]..=`to`; facts
/// outside that are ignored), with dates in `zone`.
pub fn compute(query: &Query, zone: &TimeZone, data: &CsiData, options: &CsiOptions) -> CsiReport {
    let min = options.min_sample;
    let mut facts = Vec::with_capacity(data.ratings.len() + data.sends.len());
    for r in &data.ratings {
        let mut tally = Tally::default();
        tally.scores.add(r.score);
        facts.push(Fact {
            date: local_date(zone, r.at),
            operator: &r.operator,
            channel: &r.channel,
            tally,
        });
    }
    for s in &data.sends {
        facts.push(Fact {
            date: local_date(zone, s.at),
            operator: &s.operator,
            channel: &s.channel,
            tally: Tally {
                sent: 1,
                delivered: u64::from(s.delivered),
                ..Tally::default()
            },
        });
    }
    for t in &data.tallies {
        facts.push(Fact {
            date: t.date,
            operator: &t.operator,
            channel: &t.channel,
            tally: Tally {
                scores: t.scores,
                sent: t.sent,
                delivered: t.delivered,
            },
        });
    }
    let (prev_from, prev_to) = query.previous_range();
    let current = |d: Date| query.from <= d && d <= query.to;

    // Total, against the range before.
    let mut total = Tally::default();
    let mut total_prev = Tally::default();
    for f in &facts {
        if current(f.date) {
            total.merge(&f.tally);
        } else if prev_from <= f.date && f.date <= prev_to {
            total_prev.merge(&f.tally);
        }
    }
    let mut total_stats = stats(&total, options);
    compare(
        &mut total_stats,
        &total,
        &total_prev,
        format!("{prev_from}..{prev_to}"),
        &options.scale,
    );

    // Groups.
    let mut groups = match query.by.period() {
        Some(period) => period_groups(query, period, &facts, options),
        None => key_groups(query, &facts, options, prev_from, prev_to),
    };

    // Trend: every period of the range.
    let trend_period = Period::for_trend(query.days());
    let mut by_trend: HashMap<String, Tally> = HashMap::new();
    for f in facts.iter().filter(|f| current(f.date)) {
        by_trend
            .entry(trend_period.key(f.date))
            .or_default()
            .merge(&f.tally);
    }
    let trend = trend_period
        .each(query.from, query.to)
        .into_iter()
        .map(|(key, _)| CsiGroup {
            stats: stats(&by_trend.get(&key).copied().unwrap_or_default(), options),
            key,
            ..CsiGroup::default()
        })
        .collect();

    // Comments over the range; anomalies over each key's history.
    let in_range: Vec<_> = (data.ratings.iter())
        .chain(&data.comments)
        .filter(|r| current(local_date(zone, r.at)))
        .collect();
    let comments = comments::analyse(in_range.iter().copied());
    if query.by.period().is_none() {
        group_findings(&mut groups, &in_range, |r| {
            group_key(query.by, &r.operator, &r.channel)
        });
    }
    let mut outcomes = Outcomes::default();
    for t in data.tallies.iter().filter(|t| current(t.date)) {
        for (name, n) in &t.outcomes {
            outcomes.add(name, *n);
        }
    }
    for e in data.ends.iter().filter(|e| current(local_date(zone, e.at))) {
        outcomes.add(&e.outcome, 1);
    }
    outcomes.close(total.sent);
    let days = facts.iter().map(|f| anomalies::DayScores {
        date: f.date,
        operator: f.operator,
        channel: f.channel,
        scores: &f.tally.scores,
    });
    let anomalies = anomalies::find(query, days, min);

    CsiReport {
        from: query.from.to_string(),
        to: query.to.to_string(),
        by: query.by.name().to_owned(),
        timezone: zone_name(zone),
        previous_from: prev_from.to_string(),
        previous_to: prev_to.to_string(),
        min_sample: min,
        confidence_interval: CI_METHOD.to_owned(),
        total: total_stats,
        groups,
        trend_period: period_name(trend_period).to_owned(),
        trend,
        comments,
        outcomes,
        anomalies,
    }
}

/// The key of a fact in an operator or channel grouping.
fn group_key(by: Grouping, operator: &str, channel: &str) -> String {
    let k = if by == Grouping::Channel {
        channel
    } else {
        operator
    };
    if k.is_empty() {
        NONE_KEY.to_owned()
    } else {
        k.to_owned()
    }
}

/// Problems and praise shown per group.
const GROUP_FINDINGS: usize = 3;

/// Each group's top problems and praise, from its comments in the range.
fn group_findings(
    groups: &mut [CsiGroup],
    ratings: &[&Rating],
    key_of: impl Fn(&Rating) -> String,
) {
    let mut by_key: HashMap<String, Vec<&Rating>> = HashMap::new();
    for r in ratings.iter().filter(|r| !r.comment.trim().is_empty()) {
        by_key.entry(key_of(r)).or_default().push(r);
    }
    for g in groups {
        if let Some(list) = by_key.get_mut(&g.key) {
            let found =
                clauses::findings(comments::sample(list), GROUP_FINDINGS, 0, |c| c.to_owned());
            g.problems = found.problems;
            g.praise = found.praise;
        }
    }
}

fn period_name(p: Period) -> &'static str {
    match p {
        Period::Day => "day",
        Period::Week => "week",
        Period::Month => "month",
    }
}

/// Groups by day/week/month: each period of the range (clipped to it), compared with the whole
/// period before it.
fn period_groups(
    query: &Query,
    period: Period,
    facts: &[Fact],
    options: &CsiOptions,
) -> Vec<CsiGroup> {
    let mut clipped: HashMap<String, Tally> = HashMap::new();
    let mut whole: HashMap<String, Tally> = HashMap::new();
    for f in facts {
        let key = period.key(f.date);
        if query.from <= f.date && f.date <= query.to {
            clipped.entry(key.clone()).or_default().merge(&f.tally);
        }
        whole.entry(key).or_default().merge(&f.tally);
    }
    period
        .each(query.from, query.to)
        .into_iter()
        .map(|(key, start)| {
            let now = clipped.get(&key).copied().unwrap_or_default();
            let mut s = stats(&now, options);
            let prev_key = period.key(period.previous(start));
            let prev = whole.get(&prev_key).copied().unwrap_or_default();
            compare(&mut s, &now, &prev, prev_key, &options.scale);
            let end = period.next(start).checked_sub(1.day()).unwrap_or(start);
            CsiGroup {
                key,
                stats: s,
                rank: None,
                partial: start < query.from || end > query.to,
                ..CsiGroup::default()
            }
        })
        .collect()
}

/// Groups by operator or channel, compared with the same key in the range before; ranked by
/// average among the groups with enough responses.
fn key_groups(
    query: &Query,
    facts: &[Fact],
    options: &CsiOptions,
    prev_from: Date,
    prev_to: Date,
) -> Vec<CsiGroup> {
    let key_of = |f: &Fact| group_key(query.by, f.operator, f.channel);
    let mut now: BTreeMap<String, Tally> = BTreeMap::new();
    let mut before: HashMap<String, Tally> = HashMap::new();
    for f in facts {
        if query.from <= f.date && f.date <= query.to {
            now.entry(key_of(f)).or_default().merge(&f.tally);
        } else if prev_from <= f.date && f.date <= prev_to {
            before.entry(key_of(f)).or_default().merge(&f.tally);
        }
    }
    let label = format!("{prev_from}..{prev_to}");
    let mut groups: Vec<CsiGroup> = now
        .into_iter()
        // A key with nothing sent and nothing answered in the range (another flow's
        // conversations, say) is not a group to show.
        .filter(|(_, tally)| tally.sent > 0 || tally.scores.n > 0)
        .map(|(key, tally)| {
            let mut s = stats(&tally, options);
            let prev = before.get(&key).copied().unwrap_or_default();
            compare(&mut s, &tally, &prev, label.clone(), &options.scale);
            CsiGroup {
                key,
                stats: s,
                rank: None,
                partial: false,
                ..CsiGroup::default()
            }
        })
        .collect();
    // Ranked first, by the lower bound of the interval (a 4.6 of 200 answers above a 4.8 of
    // 6), then average and responses; the rest after, by key.
    let bounds = |g: &CsiGroup| {
        let avg = g.stats.average.unwrap_or(0.0);
        g.stats.ci95.unwrap_or([avg, avg])
    };
    groups.sort_by(|a, b| {
        let ranked = |g: &CsiGroup| !g.stats.insufficient_sample;
        ranked(b)
            .cmp(&ranked(a))
            .then_with(|| {
                if ranked(a) {
                    let avg = |g: &CsiGroup| g.stats.average.unwrap_or(0.0);
                    (bounds(b)[0].total_cmp(&bounds(a)[0]))
                        .then(avg(b).total_cmp(&avg(a)))
                        .then(b.stats.responses.cmp(&a.stats.responses))
                } else {
                    std::cmp::Ordering::Equal
                }
            })
            .then_with(|| a.key.cmp(&b.key))
    });
    // A group's rank is 1 + the groups clearly better: whose whole interval lies above its
    // own. Overlapping intervals share a rank and are `tied`: the data cannot order them.
    let ranked: Vec<[f64; 2]> = (groups.iter())
        .filter(|g| !g.stats.insufficient_sample)
        .map(bounds)
        .collect();
    for g in groups.iter_mut().filter(|g| !g.stats.insufficient_sample) {
        let [_, high] = bounds(g);
        let better = ranked.iter().filter(|b| b[0] > high).count();
        g.rank = Some(better as u32 + 1);
    }
    let ranks: Vec<u32> = groups.iter().filter_map(|g| g.rank).collect();
    for g in &mut groups {
        g.tied = g
            .rank
            .is_some_and(|r| ranks.iter().filter(|&&x| x == r).count() > 1);
    }
    groups
}

fn stats(t: &Tally, options: &CsiOptions) -> CsiStats {
    let s = &t.scores;
    let scale = &options.scale;
    let (lowest, highest) = (f64::from(scale.min), f64::from(scale.max));
    let nps = (scale.kind == "nps")
        .then(|| scale::nps(s, scale))
        .flatten();
    CsiStats {
        surveys_sent: t.sent,
        delivered: t.delivered,
        responses: s.n,
        response_rate: (t.sent > 0).then(|| stats::round(100.0 * s.n as f64 / t.sent as f64, 1)),
        average: s.mean().map(|m| stats::round(m, 2)),
        // Clipped to the scale: no mean of its scores lies outside it, whatever t says.
        ci95: stats::mean_ci(s).map(|(lo, hi)| {
            [
                stats::round(lo.max(lowest), 2),
                stats::round(hi.min(highest), 2),
            ]
        }),
        positive_pct: s.pct_in(scale::positive(scale)).map(|p| stats::round(p, 1)),
        negative_pct: s.pct_in(scale::negative(scale)).map(|p| stats::round(p, 1)),
        distribution: Distribution::from_scores(s, scale),
        insufficient_sample: s.n < options.min_sample,
        nps: nps.map(|n| n.nps),
        nps_ci95: nps.and_then(|n| n.ci95),
        promoters_pct: nps.map(|n| n.promoters_pct),
        passives_pct: nps.map(|n| n.passives_pct),
        detractors_pct: nps.map(|n| n.detractors_pct),
        easy_pct: (scale.kind == "ces")
            .then(|| s.pct_in(scale::positive(scale)).map(|p| stats::round(p, 1)))
            .flatten(),
        previous: None,
        change: None,
    }
}

/// Fills `previous` and `change` of `s` (the stats of `now`) from the tally of the period
/// before. Deltas come from the unrounded numbers, then are rounded.
fn compare(s: &mut CsiStats, now: &Tally, prev: &Tally, period: String, scale: &Scale) {
    let p = &prev.scores;
    let positive = |x: &Scores| x.pct_in(scale::positive(scale));
    let diff = |a: Option<f64>, b: Option<f64>, places| match (a, b) {
        (Some(a), Some(b)) => Some(stats::round(a - b, places)),
        _ => None,
    };
    s.change = Some(Change {
        surveys_sent: now.sent as i64 - prev.sent as i64,
        responses: now.scores.n as i64 - p.n as i64,
        average: diff(now.scores.mean(), p.mean(), 2),
        positive_pct: diff(positive(&now.scores), positive(p), 1),
    });
    s.previous = Some(Previous {
        period,
        surveys_sent: prev.sent,
        responses: p.n,
        average: p.mean().map(|m| stats::round(m, 2)),
        positive_pct: positive(p).map(|x| stats::round(x, 1)),
    });
}
