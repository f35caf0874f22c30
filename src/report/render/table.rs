//! The terminal table: what `smsflow report` prints by default and what the demo ends with.
//! Every line fits in 100 columns (keys are cut with `…`).

use std::fmt::Write;

use super::{duration, num, signed};
use crate::report::Distribution;
use crate::report::clauses::Finding;
use crate::report::csi::{CsiGroup, CsiReport, CsiStats};
use crate::report::incidents::{IncidentReport, IncidentStats};
use crate::report::outcomes::Outcomes;
use crate::report::scale;

/// The widest line the table writes.
pub const WIDTH: usize = 100;

#[derive(Clone, Copy)]
pub(super) enum Align {
    Left,
    Right,
}

/// `text` padded (or cut with `…`) to `width` characters.
pub(super) fn cell(text: &str, width: usize, align: Align) -> String {
    let n = text.chars().count();
    if n > width {
        let mut cut: String = text.chars().take(width.saturating_sub(1)).collect();
        cut.push('…');
        return cut;
    }
    let pad = " ".repeat(width - n);
    match align {
        Align::Left => format!("{text}{pad}"),
        Align::Right => format!("{pad}{text}"),
    }
}

pub(super) fn line(cells: &[(String, usize, Align)]) -> String {
    let parts: Vec<String> = cells.iter().map(|(t, w, a)| cell(t, *w, *a)).collect();
    parts.join(" ").trim_end().to_owned()
}

fn distribution(d: &Distribution) -> String {
    d.scores()
        .map(|s| format!("{s}: {}", d.count(s)))
        .collect::<Vec<_>>()
        .join("  ")
}

fn ci(s: &CsiStats) -> String {
    match s.ci95 {
        Some([lo, hi]) => format!("{lo:.2}–{hi:.2}"),
        None => "–".to_owned(),
    }
}

/// The CSI report as text.
pub fn csi(r: &CsiReport) -> String {
    let mut out = String::new();
    let t = &r.total;
    let _ = writeln!(
        out,
        "CSI report {} .. {} ({}), by {}{}",
        r.from,
        r.to,
        r.timezone,
        r.by,
        if r.flow == crate::report::query::SURVEY_FLOW && r.scale.kind == "csat" {
            String::new()
        } else {
            format!(
                "; flow {}, {} {}-{}",
                r.flow,
                r.scale.kind.to_uppercase(),
                r.scale.min,
                r.scale.max
            )
        }
    );
    let _ = writeln!(
        out,
        "  surveys sent {}, delivered {}, responses {} (response rate {} %)",
        t.surveys_sent,
        t.delivered,
        t.responses,
        num(t.response_rate, 1)
    );
    let (positive, negative) = (scale::positive(&r.scale), scale::negative(&r.scale));
    let words = scale::words(&r.scale);
    let mut average = format!(
        "  average {} of {}-{} (95% CI {})",
        num(t.average, 2),
        r.scale.min,
        r.scale.max,
        ci(t)
    );
    if let Some(nps) = t.nps {
        let ci = t
            .nps_ci95
            .map(|[lo, hi]| format!(" (95% CI {lo:.1}–{hi:.1})"))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "  NPS {nps:.1}{ci}: promoters ({}-{}) {} %, passives {} %, detractors ({}-{}) {} %",
            positive.start(),
            positive.end(),
            num(t.promoters_pct, 1),
            num(t.passives_pct, 1),
            negative.start(),
            negative.end(),
            num(t.detractors_pct, 1)
        );
    } else {
        // The NPS line above has the shares; other kinds have theirs after the average.
        let _ = write!(
            average,
            ", {} ({}-{}) {} %, {} ({}-{}) {} %",
            words.positive,
            positive.start(),
            positive.end(),
            num(t.positive_pct, 1),
            words.negative,
            negative.start(),
            negative.end(),
            num(t.negative_pct, 1)
        );
    }
    let _ = writeln!(out, "{average}");
    let _ = writeln!(out, "  distribution  {}", distribution(&t.distribution));
    if let Some(p) = t.previous.as_ref().filter(|p| p.responses == 0) {
        // Nothing to compare with: "+1338" against an empty period would read as growth.
        let _ = writeln!(out, "  vs {}: no responses then", p.period);
    } else if let (Some(c), Some(p)) = (&t.change, &t.previous) {
        let _ = writeln!(
            out,
            "  vs {}: average {} → {} ({}), responses {} ({})",
            p.period,
            num(p.average, 2),
            num(t.average, 2),
            if c.average.is_some() {
                signed(c.average, 2)
            } else {
                "–".into()
            },
            t.responses,
            signed(Some(c.responses as f64), 0)
        );
    }
    let _ = writeln!(out);
    out.push_str(&csi_groups(&r.by, &r.groups, words));
    if r.groups.iter().any(|g| g.stats.insufficient_sample) {
        let _ = writeln!(
            out,
            "  * fewer than {} responses: shown but not ranked",
            r.min_sample
        );
    }
    if r.groups.iter().any(|g| g.tied) {
        let _ = writeln!(
            out,
            "  = tied: 95% intervals overlap, the data cannot order them (rank: 1 + groups clearly better)"
        );
    }
    for g in r
        .groups
        .iter()
        .filter(|g| !g.problems.is_empty() || !g.praise.is_empty())
    {
        let list = |f: &[Finding]| {
            f.iter()
                .map(|f| format!("{} ({})", f.term, f.count))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let _ = writeln!(
            out,
            "  {}: {}",
            cell(&g.key, 18, Align::Left).trim_end(),
            cell(
                &format!(
                    "problems {} | praise {}",
                    or_dash(list(&g.problems)),
                    or_dash(list(&g.praise))
                ),
                WIDTH - 22,
                Align::Left
            )
            .trim_end()
        );
    }

    let o = &r.outcomes;
    let _ = writeln!(
        out,
        "\nOutcomes of the {} surveys sent: {}",
        t.surveys_sent,
        (o.rows().iter())
            .filter(|(k, _)| !Outcomes::not_sent(k))
            .map(|(k, n)| format!("{} {n}", k.replace('_', " ")))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let _ = writeln!(
        out,
        "  not sent: opted out {}, fatigue (surveyed recently) {}",
        o.opted_out, o.fatigue
    );

    let c = &r.comments;
    let _ = writeln!(out, "\nComments: {}{}", c.commented, c.sample_note());
    for (title, findings) in [("Problems", &c.problems), ("Praise", &c.praise)] {
        let _ = writeln!(out, "  {title}:");
        if findings.is_empty() {
            let _ = writeln!(out, "    (none)");
        }
        for f in findings {
            let _ = writeln!(
                out,
                "    {} {:>5} {:>5.1}%  {}",
                cell(&f.term, 30, Align::Left),
                f.count,
                f.share,
                f.examples
                    .first()
                    .map(|e| format!("«{}»", cell(e, WIDTH - 52, Align::Left).trim_end()))
                    .unwrap_or_default()
            );
        }
    }

    let c = &r.comments;
    for (negative, title, terms, bigrams, n) in [
        (
            true,
            "Negative comments (1-2)",
            &c.negative_terms,
            &c.negative_bigrams,
            c.negative_comments,
        ),
        (
            false,
            "Positive comments (4-5)",
            &c.positive_terms,
            &c.positive_bigrams,
            c.positive_comments,
        ),
    ] {
        let _ = writeln!(out, "\n{title}: {n}");
        if terms.is_empty() {
            let _ = writeln!(out, "  (no comments)");
            continue;
        }
        wrap_terms(&mut out, "  terms   ", terms, |t| c.word(negative, t));
        if !bigrams.is_empty() {
            wrap_terms(&mut out, "  phrases ", bigrams, |t| c.word(negative, t));
        }
        if let Some((term, _)) = terms.first() {
            let examples = if negative {
                &c.negative_examples
            } else {
                &c.positive_examples
            };
            if let Some(e) = examples.get(term) {
                for comment in e.comments.iter().take(2) {
                    let _ = writeln!(
                        out,
                        "  «{}»",
                        cell(comment, WIDTH - 6, Align::Left).trim_end()
                    );
                }
            }
        }
    }

    let _ = writeln!(out, "\nAnomalies: {}", r.anomalies.len());
    for a in &r.anomalies {
        let _ = writeln!(
            out,
            "  {} {} {}: average {:.2} vs baseline {:.2} ({} responses; limit {:.2})",
            a.dimension,
            cell(&a.key, 16, Align::Left).trim_end(),
            a.period,
            a.average,
            a.baseline,
            a.responses,
            a.lower_limit
        );
    }
    out
}

/// `label` then `word (n)` items, wrapped at [`WIDTH`].
fn wrap_terms<'a>(
    out: &mut String,
    label: &str,
    terms: &'a [(String, u64)],
    word: impl Fn(&'a str) -> &'a str,
) {
    let indent = " ".repeat(label.chars().count());
    let mut current = label.to_owned();
    let mut first = true;
    for (term, n) in terms {
        let item = format!("{} ({n})", word(term));
        let sep = if first { "" } else { ", " };
        if !first && current.chars().count() + sep.len() + item.chars().count() > WIDTH {
            let _ = writeln!(out, "{},", current.trim_end());
            current = indent.clone();
            current.push_str(&item);
        } else {
            current.push_str(sep);
            current.push_str(&item);
        }
        first = false;
    }
    let _ = writeln!(out, "{current}");
}

fn csi_groups(by: &str, groups: &[CsiGroup], words: scale::Words) -> String {
    use Align::*;
    let mut out = String::new();
    let head = |t: &str, w, a| (t.to_owned(), w, a);
    // `pos%`, `pro%` (promoters), `easy%`: the scale's words, cut to fit.
    let share = |word: &str| format!("{}%", if word.len() == 4 { word } else { &word[..3] });
    let _ = writeln!(
        out,
        "{}",
        line(&[
            head(by, 18, Left),
            head("sent", 6, Right),
            head("deliv", 6, Right),
            head("resp", 5, Right),
            head("rate%", 6, Right),
            head("avg", 5, Right),
            head("95% CI", 10, Right),
            head(&share(words.positive), 5, Right),
            head(&share(words.negative), 5, Right),
            head("Δavg", 6, Right),
            head("Δresp", 6, Right),
            head("rank", 4, Right),
        ])
    );
    for g in groups {
        let s = &g.stats;
        let change = s.change.as_ref();
        let mut key = g.key.clone();
        if g.partial {
            key.push('~');
        }
        let _ = writeln!(
            out,
            "{}",
            line(&[
                (key, 18, Left),
                (s.surveys_sent.to_string(), 6, Right),
                (s.delivered.to_string(), 6, Right),
                (s.responses.to_string(), 5, Right),
                (num(s.response_rate, 1), 6, Right),
                (num(s.average, 2), 5, Right),
                (ci(s), 10, Right),
                (num(s.positive_pct, 1), 5, Right),
                (num(s.negative_pct, 1), 5, Right),
                (signed(change.and_then(|c| c.average), 2), 6, Right),
                (signed(change.map(|c| c.responses as f64), 0), 6, Right),
                (
                    match (g.rank, s.insufficient_sample) {
                        (Some(r), _) if g.tied => format!("{r}="),
                        (Some(r), _) => r.to_string(),
                        (None, true) => "*".to_owned(),
                        (None, false) => String::new(),
                    },
                    4,
                    Right
                ),
            ])
        );
    }
    out
}

fn or_dash(s: String) -> String {
    if s.is_empty() { "–".to_owned() } else { s }
}

fn levels(s: &IncidentStats) -> String {
    s.acknowledged_at_level
        .iter()
        .map(|(l, n)| format!("L{l}:{n}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The incident report as text.
pub fn incidents(r: &IncidentReport) -> String {
    use Align::*;
    let mut out = String::new();
    let t = &r.total;
    let _ = writeln!(
        out,
        "Staff calls {} .. {} ({}), by {}",
        r.from, r.to, r.timezone, r.by
    );
    let _ = writeln!(
        out,
        "  incidents {}, acknowledged {} ({} %), unacknowledged {}, escalated {} ({} %)",
        t.incidents,
        t.acknowledged,
        num(t.acknowledged_pct, 1),
        t.unacknowledged,
        t.escalated,
        num(t.escalated_pct, 1)
    );
    let _ = writeln!(
        out,
        "  open {} (ringing {}), cancelled at the button {}",
        t.open, t.ringing, t.cancelled
    );
    let _ = writeln!(
        out,
        "  time to ack: median {}, p90 {}, max {}",
        duration(t.median_ack_seconds),
        duration(t.p90_ack_seconds),
        duration(t.max_ack_seconds)
    );
    let _ = writeln!(
        out,
        "  resolved {}, time to resolve: median {}, p90 {}",
        t.resolved,
        duration(t.median_resolve_seconds),
        duration(t.p90_resolve_seconds)
    );
    let _ = writeln!(out, "  acknowledged at level  {}", levels(t));
    let hist: Vec<String> = r
        .ack_histogram
        .iter()
        .map(|b| format!("{} {}", b.label, b.count))
        .collect();
    let _ = writeln!(out, "  time to ack histogram  {}", hist.join(", "));
    let _ = writeln!(out);
    let head = |t: &str, w, a| (t.to_owned(), w, a);
    let _ = writeln!(
        out,
        "{}",
        line(&[
            head(&r.by, 24, Left),
            head("calls", 6, Right),
            head("ack", 5, Right),
            head("unack", 6, Right),
            head("open", 5, Right),
            head("esc", 5, Right),
            head("median", 8, Right),
            head("done", 5, Right),
            head("resolve", 8, Right),
            head("by level", 14, Left),
        ])
    );
    for g in &r.groups {
        let s = &g.stats;
        let _ = writeln!(
            out,
            "{}",
            line(&[
                (g.key.clone(), 24, Left),
                (s.incidents.to_string(), 6, Right),
                (s.acknowledged.to_string(), 5, Right),
                (s.unacknowledged.to_string(), 6, Right),
                (s.open.to_string(), 5, Right),
                (s.escalated.to_string(), 5, Right),
                (duration(s.median_ack_seconds), 8, Right),
                (s.resolved.to_string(), 5, Right),
                (duration(s.median_resolve_seconds), 8, Right),
                (levels(s), 14, Left),
            ])
        );
    }
    let _ = writeln!(out, "\nTime to ack by level:");
    if r.levels.is_empty() {
        let _ = writeln!(out, "  (no call was acknowledged)");
    }
    for l in &r.levels {
        let _ = writeln!(
            out,
            "  level {}: {} acknowledged, median {}, p90 {}",
            l.level,
            l.acknowledged,
            duration(l.median_ack_seconds),
            duration(l.p90_ack_seconds)
        );
    }
    let _ = writeln!(out, "\nAcknowledged by:");
    if r.staff.is_empty() {
        let _ = writeln!(out, "  (nobody)");
    }
    const STAFF_ROWS: usize = 20;
    if r.staff.len() > STAFF_ROWS {
        let _ = writeln!(
            out,
            "  (the {STAFF_ROWS} who took most; {} more in the JSON, CSV and XLSX)",
            r.staff.len() - STAFF_ROWS
        );
    }
    for p in r.staff.iter().take(STAFF_ROWS) {
        let at: Vec<String> = p
            .at_level
            .iter()
            .map(|(l, n)| format!("L{l}:{n}"))
            .collect();
        let _ = writeln!(
            out,
            "  {:<16} {:>4} calls, median {:>7}, p90 {:>7}  {}",
            p.staff,
            p.acknowledged,
            duration(p.median_ack_seconds),
            duration(p.p90_ack_seconds),
            at.join(" ")
        );
    }
    if !r.alert_recipients.is_empty() {
        let _ = writeln!(out, "\nAlerts per person (time from the press):");
        for p in r.alert_recipients.iter().take(STAFF_ROWS) {
            let _ = writeln!(
                out,
                "  {:<16} {:>4} alerts, {} sent, {} failed, delivered {} (median {}, p90 {}), OK {} (median {}, p90 {})",
                p.msisdn,
                p.alerts,
                p.sends,
                p.failed,
                p.delivered,
                duration(p.median_deliver_seconds),
                duration(p.p90_deliver_seconds),
                p.acknowledged,
                duration(p.median_ack_seconds),
                duration(p.p90_ack_seconds)
            );
        }
    }
    // The groups above count them by place; a terminal gets the newest few.
    const UNACKNOWLEDGED_ROWS: usize = 10;
    let listed = r.unacknowledged_calls.len().min(UNACKNOWLEDGED_ROWS);
    let _ = writeln!(
        out,
        "\nUnacknowledged calls: {}{}",
        t.unacknowledged,
        if (t.unacknowledged as usize) > listed {
            format!(
                " (the newest {listed}; up to {} in the JSON, CSV and XLSX)",
                crate::report::incidents::UNACKNOWLEDGED_LISTED
            )
        } else {
            String::new()
        }
    );
    for c in r.unacknowledged_calls.iter().take(UNACKNOWLEDGED_ROWS) {
        let tried = match (c.levels_tried, c.rounds) {
            (Some(l), Some(n)) => format!("{l} levels × {n} rounds"),
            (Some(l), None) => format!("{l} levels"),
            _ => String::new(),
        };
        let _ = writeln!(
            out,
            "  {} {} ({}) {}",
            c.at.chars().take(16).collect::<String>().replace('T', " "),
            cell(&c.button, 24, Left).trim_end(),
            cell(&c.location, 30, Left).trim_end(),
            tried
        );
    }
    out
}
