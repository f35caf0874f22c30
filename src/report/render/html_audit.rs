//! The dashboard's service quality audit: cards, complaints and manager calls per period, the
//! heat map of complaints by hour of day × weekday (inline SVG, darker for more), and the table
//! per location, button or period.

use std::fmt::Write;

use super::html_common::{ACCENT, WARN, card, escape, panel_wide};
use super::svg::{Column, WIDE, columns, short_period};
use super::{duration, num};
use crate::report::audit::{AuditReport, HeatRow};

pub fn section(out: &mut String, r: &AuditReport) {
    let t = &r.total;
    let _ = writeln!(
        out,
        "<h2>Service quality audit</h2>\n<p class=\"sub\">Restaurant and shop buttons: a cancel \
         press is a complaint (nobody is called), a call press calls the manager.</p>\n\
         <div class=\"cards\">"
    );
    card(
        out,
        "Complaints",
        &t.complaints.to_string(),
        "cancel presses",
    );
    card(
        out,
        "Manager calls",
        &t.manager_calls.to_string(),
        &format!("{} answered ({} %)", t.answered, num(t.answered_pct, 1)),
    );
    card(
        out,
        "Manager came in",
        &duration(t.median_answer_seconds),
        &format!("median; p90 {}", escape(&duration(t.p90_answer_seconds))),
    );
    card(
        out,
        "Not answered",
        &t.not_answered.to_string(),
        &format!("{} ringing now", t.open),
    );
    let _ = writeln!(out, "</div>\n<div class=\"charts\">");
    let (complaints, calls) = (("complaints", WARN), ("manager calls", ACCENT));
    let trend: Vec<Column> = (r.trend.iter())
        .map(|g| {
            (
                short_period(&g.key),
                vec![
                    (g.stats.complaints as f64, complaints.1, complaints.0),
                    (g.stats.manager_calls as f64, calls.1, calls.0),
                ],
            )
        })
        .collect();
    panel_wide(
        out,
        &format!("Presses by {}", r.trend_period),
        &columns(&trend, false, WIDE, &[complaints, calls]),
    );
    panel_wide(
        out,
        &format!("Complaints by hour and weekday ({})", r.timezone),
        &heatmap(&r.heatmap),
    );
    let _ = writeln!(out, "</div>");
    let _ = writeln!(
        out,
        "<div class=\"panel\" style=\"margin-top:12px\"><h3>By {}</h3><table>\n<tr><th>{}</th>\
         <th>presses</th><th>complaints</th><th>manager calls</th><th>answered</th>\
         <th>not answered</th><th>ringing</th><th>median came</th><th>p90 came</th></tr>",
        escape(&r.by),
        escape(&r.by)
    );
    for g in &r.groups {
        let s = &g.stats;
        let _ = writeln!(
            out,
            "<tr{}><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td>{}</td><td>{}</td></tr>",
            if s.presses == 0 {
                " class=\"muted\""
            } else {
                ""
            },
            escape(&g.key),
            s.presses,
            s.complaints,
            s.manager_calls,
            s.answered,
            s.not_answered,
            s.open,
            escape(&duration(s.median_answer_seconds)),
            escape(&duration(s.p90_answer_seconds)),
        );
    }
    if r.groups.is_empty() {
        let _ = writeln!(
            out,
            "<tr><td colspan=\"9\" class=\"empty\">No presses in this range.</td></tr>"
        );
    }
    let _ = writeln!(out, "</table></div>");
}

/// A grid of weekdays (rows, Monday first) × hours 0–23 (columns), each cell as dark as its
/// share of the busiest hour, with its count written in it and a tooltip.
pub fn heatmap(rows: &[HeatRow]) -> String {
    const W: f64 = WIDE;
    let (left, top, cell_h) = (44.0, 20.0, 26.0);
    let cell_w = (W - left - 8.0) / 24.0;
    let h = top + cell_h * rows.len() as f64 + 6.0;
    let max = (rows.iter())
        .flat_map(|r| r.complaints.iter().copied())
        .max()
        .unwrap_or(0);
    let mut s = format!(
        "<svg viewBox=\"0 0 {W} {h}\" role=\"img\" aria-label=\"complaints by hour and weekday\">"
    );
    for hour in 0..24 {
        let x = left + cell_w * (hour as f64 + 0.5);
        let _ = write!(
            s,
            "<text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{hour}</text>",
            top - 6.0
        );
    }
    for (d, row) in rows.iter().enumerate() {
        let y = top + cell_h * d as f64;
        let _ = write!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\">{}</text>",
            4.0,
            y + cell_h * 0.65,
            escape(&row.weekday)
        );
        for (hour, n) in row.complaints.iter().enumerate() {
            let x = left + cell_w * hour as f64;
            // 0 is the page's light grey; the busiest hour full red.
            let share = if max == 0 {
                0.0
            } else {
                *n as f64 / max as f64
            };
            let fill = if *n == 0 {
                "#eef1f4".to_owned()
            } else {
                format!("rgba(217,83,79,{:.2})", 0.2 + 0.8 * share)
            };
            let _ = write!(
                s,
                "<rect x=\"{:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{:.1}\" rx=\"2\" \
                 fill=\"{fill}\"><title>{} {hour:02}:00–{:02}:00: {n} complaint{}</title></rect>",
                x + 1.0,
                cell_w - 2.0,
                cell_h - 2.0,
                escape(&row.weekday),
                (hour + 1) % 24,
                if *n == 1 { "" } else { "s" }
            );
            if *n > 0 {
                let _ = write!(
                    s,
                    "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{n}</text>",
                    x + cell_w / 2.0,
                    y + cell_h * 0.62
                );
            }
        }
    }
    if max == 0 {
        let _ = write!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" class=\"empty\">No complaints \
             in this range.</text>",
            W / 2.0,
            h / 2.0
        );
    }
    s.push_str("</svg>");
    s
}
