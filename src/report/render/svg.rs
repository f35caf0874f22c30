//! The dashboard's charts as inline SVG: the CSI trend (average line over response columns),
//! the CSAT % trend, column charts (distribution, staff calls, time to ack), stacked columns
//! (calls by outcome) and each group's average with its interval. Every chart has a
//! `viewBox` and no fixed size, so the page scales it to its panel down to a phone's width,
//! and says so when it has nothing to draw.

use std::fmt::Write;

use super::html_common::{ACCENT, MUTED, escape};
use crate::report::csi::CsiGroup;

/// At most this many groups are drawn as bars (all are in the table).
pub const MAX_BARS: usize = 20;

/// One part of a stacked column: its value, colour and name (for the tooltip).
pub(super) type Part<'a> = (f64, &'a str, &'a str);
/// A column: its label and its parts, bottom first.
pub(super) type Column<'a> = (String, Vec<Part<'a>>);

/// Axis ticks from 0 to at least `max`: steps of 1, 2 or 5 × 10ⁿ, at most six ticks.
pub(super) fn nice_ticks(max: f64) -> Vec<f64> {
    let max = max.max(1.0);
    let raw = max / 5.0;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= raw)
        .unwrap_or(magnitude * 10.0)
        .max(1.0);
    let top = (max / step).ceil() * step;
    (0..=((top / step) as usize))
        .map(|i| i as f64 * step)
        .collect()
}

/// Whole percentages of `values` that add up to 100 (largest remainder), or zeros.
pub(super) fn shares(values: &[f64]) -> Vec<u64> {
    let total: f64 = values.iter().sum();
    if total <= 0.0 {
        return vec![0; values.len()];
    }
    let exact: Vec<f64> = values.iter().map(|v| 100.0 * v / total).collect();
    let mut out: Vec<u64> = exact.iter().map(|e| e.floor() as u64).collect();
    let missing = 100u64.saturating_sub(out.iter().sum());
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| {
        (exact[b] - exact[b].floor())
            .total_cmp(&(exact[a] - exact[a].floor()))
            .then(a.cmp(&b))
    });
    for &i in order.iter().take(missing as usize) {
        out[i] += 1;
    }
    out
}

/// The middle of an empty chart says why it is empty.
fn empty(s: &mut String, w: f64, h: f64, what: &str) {
    let _ = write!(
        s,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" class=\"empty\">{}</text></svg>",
        w / 2.0,
        h / 2.0,
        escape(what)
    );
}

/// `2026-11-21` → `11-21`; other keys unchanged.
pub(super) fn short_period(key: &str) -> String {
    if key.len() == 10 && key.as_bytes().get(4) == Some(&b'-') {
        key[5..].to_owned()
    } else {
        key.to_owned()
    }
}

/// `text` centred on `x` at baseline `y`.
fn centred_text(s: &mut String, x: f64, y: f64, text: &str) {
    let _ = write!(
        s,
        "<text x=\"{x:.1}\" y=\"{y:.1}\" text-anchor=\"middle\">{}</text>",
        escape(text)
    );
}

/// Whether to draw x label `i` of `n` so that about `max` appear, the first and the last
/// always, and none crowding the last.
fn show_label(i: usize, n: usize, max: usize) -> bool {
    let every = n.div_ceil(max.max(1)).max(1);
    let last = n.saturating_sub(1);
    i == last || (i.is_multiple_of(every) && last - i >= every)
}

/// Width of a chart in half of the grid, and of one across it (SVG units; the page scales
/// them to the panel).
pub(super) const W: f64 = 560.0;
pub(super) const WIDE: f64 = 1120.0;
const H: f64 = 240.0;

/// The trend: responses as grey columns (right axis), the average as a line on the 1–5 scale
/// (left axis), gaps where a period had no responses.
pub(super) fn trend_chart(trend: &[CsiGroup], scale: (u8, u8)) -> String {
    let (lowest, highest) = (f64::from(scale.0), f64::from(scale.1));
    const W: f64 = WIDE;
    let (left, right, top, bottom) = (34.0, 40.0, 14.0, 34.0);
    let pw = W - left - right;
    let ph = H - top - bottom;
    let mut s =
        format!("<svg viewBox=\"0 0 {W} {H}\" role=\"img\" aria-label=\"average score trend\">");
    if trend.iter().all(|g| g.stats.responses == 0) {
        empty(&mut s, W, H, "No responses in this range.");
        return s;
    }
    let n = trend.len();
    let step = pw / n as f64;
    let x = |i: usize| left + step * (i as f64 + 0.5);
    let y = |v: f64| top + ph * (highest - v) / (highest - lowest).max(1.0);
    let ticks = nice_ticks(trend.iter().map(|g| g.stats.responses).max().unwrap_or(0) as f64);
    let max_resp = ticks.last().copied().unwrap_or(1.0).max(1.0);
    // Grid and left axis (scores).
    for v in (scale.0..=scale.1).step_by(usize::from((scale.1 - scale.0).div_ceil(5)).max(1)) {
        grid_row(&mut s, left, W - right, y(f64::from(v)), &v.to_string());
    }
    // Right axis (responses).
    for t in &ticks {
        let _ = write!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"start\">{t}</text>",
            W - right + 6.0,
            top + ph - ph * t / max_resp + 4.0,
        );
    }
    for (i, g) in trend.iter().enumerate() {
        let h = ph * g.stats.responses as f64 / max_resp;
        let bw = (step * 0.6).max(1.0);
        let _ = write!(
            s,
            "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{bw:.1}\" height=\"{h:.1}\" fill=\"#dde3ea\">\
             <title>{}: {} responses</title></rect>",
            x(i) - bw / 2.0,
            top + ph - h,
            escape(&g.key),
            g.stats.responses
        );
    }
    // The average line, in segments over periods that have one.
    let mut segment: Vec<String> = Vec::new();
    for (i, g) in trend.iter().enumerate() {
        match g.stats.average {
            Some(a) => segment.push(format!("{:.1},{:.1}", x(i), y(a))),
            None => flush_line(&mut s, &mut segment, ACCENT),
        }
    }
    flush_line(&mut s, &mut segment, ACCENT);
    for (i, g) in trend.iter().enumerate() {
        if let Some(a) = g.stats.average {
            let _ = write!(
                s,
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{ACCENT}\"><title>{}: average \
                 {a:.2} ({} responses)</title></circle>",
                x(i),
                y(a),
                escape(&g.key),
                g.stats.responses
            );
        }
    }
    for (i, g) in trend.iter().enumerate() {
        if show_label(i, n, 16) {
            centred_text(&mut s, x(i), H - bottom + 16.0, &short_period(&g.key));
        }
    }
    let _ = write!(
        s,
        "<text x=\"{left}\" y=\"{:.1}\" text-anchor=\"start\" fill=\"{ACCENT}\">— average ({}–{})\
         </text><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">▮ responses</text></svg>",
        H - 4.0,
        scale.0,
        scale.1,
        W - right,
        H - 4.0
    );
    s
}

/// Vertical columns with their value on top (and their share, adding up to 100 %, when
/// `pct`); with many columns the values are left to the tooltips and a scale is drawn.
pub(super) fn column_chart(bars: &[(String, f64, &str)], pct: bool, w: f64) -> String {
    let stacked: Vec<Column> = bars
        .iter()
        .map(|(label, value, colour)| (label.clone(), vec![(*value, *colour, "")]))
        .collect();
    columns(&stacked, pct, w, &[])
}

/// Columns of stacked parts `(value, colour, name)`, with a legend of `legend` (name, colour).
pub(super) fn columns(bars: &[Column], pct: bool, w: f64, legend: &[(&str, &str)]) -> String {
    let (left, right, top) = (34.0, 16.0, 22.0);
    let bottom = if legend.is_empty() { 30.0 } else { 46.0 };
    let pw = w - left - right;
    let ph = H - top - bottom;
    let mut s = format!("<svg viewBox=\"0 0 {w} {H}\" role=\"img\">");
    let totals: Vec<f64> = bars
        .iter()
        .map(|(_, parts)| parts.iter().map(|p| p.0).sum())
        .collect();
    if totals.iter().all(|t| *t <= 0.0) {
        empty(&mut s, w, H, "Nothing in this range.");
        return s;
    }
    let n = bars.len().max(1);
    let step = pw / n as f64;
    let values_on_bars = bars.len() <= 16;
    let ticks = nice_ticks(totals.iter().copied().fold(0.0, f64::max));
    let max = if values_on_bars {
        totals.iter().copied().fold(0.0, f64::max).max(1.0)
    } else {
        ticks.last().copied().unwrap_or(1.0)
    };
    let percents = shares(&totals);
    let _ = write!(
        s,
        "<line x1=\"{left}\" x2=\"{:.1}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"#9aa5b1\"/>",
        w - right,
        top + ph,
        top + ph
    );
    if !values_on_bars {
        for t in &ticks {
            grid_row(
                &mut s,
                left,
                w - right,
                top + ph - ph * t / max,
                &t.to_string(),
            );
        }
    }
    for (i, (label, parts)) in bars.iter().enumerate() {
        let bw = (step * 0.7).max(1.0);
        let x = left + step * i as f64 + (step - bw) / 2.0;
        let mut base = top + ph;
        for (value, colour, name) in parts {
            let h = ph * value / max;
            base -= h;
            let what = if name.is_empty() {
                String::new()
            } else {
                format!(" {name}")
            };
            let _ = write!(
                s,
                "<rect x=\"{x:.1}\" y=\"{base:.1}\" width=\"{bw:.1}\" height=\"{h:.1}\" \
                 fill=\"{colour}\" rx=\"2\"><title>{}: {value}{}</title></rect>",
                escape(label),
                escape(&what)
            );
        }
        if values_on_bars {
            let text = if pct {
                format!("{} ({} %)", totals[i], percents[i])
            } else {
                format!("{}", totals[i])
            };
            centred_text(&mut s, x + bw / 2.0, base - 5.0, &text);
        }
        if show_label(i, bars.len(), (w / 70.0) as usize) {
            centred_text(&mut s, x + bw / 2.0, top + ph + 16.0, label);
        }
    }
    let mut lx = left;
    for (name, colour) in legend {
        let _ = write!(
            s,
            "<rect x=\"{lx:.1}\" y=\"{:.1}\" width=\"10\" height=\"10\" fill=\"{colour}\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\">{}</text>",
            H - 14.0,
            lx + 14.0,
            H - 5.0,
            escape(name)
        );
        lx += 24.0 + 7.0 * name.chars().count() as f64;
    }
    s.push_str("</svg>");
    s
}

/// CSAT % (the share of 4–5) per period on a 0–100 axis, gaps where a period had no answers.
pub(super) fn csat_chart(trend: &[CsiGroup]) -> String {
    const W: f64 = WIDE;
    let (left, right, top, bottom) = (40.0, 16.0, 14.0, 30.0);
    let (pw, ph) = (W - left - right, H - top - bottom);
    let mut s = format!("<svg viewBox=\"0 0 {W} {H}\" role=\"img\" aria-label=\"CSAT % trend\">");
    if trend.iter().all(|g| g.stats.positive_pct.is_none()) {
        empty(&mut s, W, H, "No responses in this range.");
        return s;
    }
    let n = trend.len();
    let step = pw / n as f64;
    let x = |i: usize| left + step * (i as f64 + 0.5);
    let y = |v: f64| top + ph * (100.0 - v) / 100.0;
    for v in [0, 25, 50, 75, 100] {
        grid_row(&mut s, left, W - right, y(f64::from(v)), &format!("{v}%"));
    }
    let mut segment: Vec<String> = Vec::new();
    for (i, g) in trend.iter().enumerate() {
        match g.stats.positive_pct {
            Some(p) => {
                segment.push(format!("{:.1},{:.1}", x(i), y(p)));
                let _ = write!(
                    s,
                    "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"#1a9850\"><title>{}: {p:.1} % \
                     (n={})</title></circle>",
                    x(i),
                    y(p),
                    escape(&g.key),
                    g.stats.responses
                );
            }
            None => flush_line(&mut s, &mut segment, "#1a9850"),
        }
        if show_label(i, n, 16) {
            centred_text(&mut s, x(i), H - bottom + 16.0, &short_period(&g.key));
        }
    }
    flush_line(&mut s, &mut segment, "#1a9850");
    s.push_str("</svg>");
    s
}

/// A horizontal gridline from `x1` to `x2` at `y`, labelled `label` left of `x1`.
fn grid_row(s: &mut String, x1: f64, x2: f64, y: f64, label: &str) {
    let _ = write!(
        s,
        "<line x1=\"{x1}\" x2=\"{x2:.1}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#e4e7eb\"/>\
         <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{label}</text>",
        x1 - 6.0,
        y + 4.0
    );
}

/// Writes `points` as one polyline (a segment of a trend between gaps) and empties them.
fn flush_line(s: &mut String, points: &mut Vec<String>, colour: &str) {
    if !points.is_empty() {
        let _ = write!(
            s,
            "<polyline points=\"{}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\"/>",
            points.join(" ")
        );
        points.clear();
    }
}

/// Each group's average on the 1–5 scale with its 95 % interval as a whisker and its n.
/// Groups under the minimum sample get a hollow dot, not a bar: three answers are not a
/// result to compare, and must not look like the best one.
pub(super) fn group_bars(groups: &[CsiGroup], min_sample: u64, scale: (u8, u8)) -> String {
    let (lowest, highest) = (f64::from(scale.0), f64::from(scale.1));
    let shown: Vec<&CsiGroup> = groups.iter().take(MAX_BARS).collect();
    let row = 22.0;
    let (left, right, top) = (150.0, 110.0, 8.0);
    let height = top + row * shown.len().max(1) as f64 + 26.0;
    let pw = W - left - right;
    let x = |v: f64| left + pw * (v - lowest) / (highest - lowest).max(1.0);
    let mut s = format!("<svg viewBox=\"0 0 {W} {height:.0}\" role=\"img\">");
    if shown.is_empty() {
        empty(&mut s, W, height, "No groups in this range.");
        return s;
    }
    for v in (scale.0..=scale.1).step_by(usize::from((scale.1 - scale.0).div_ceil(5)).max(1)) {
        let xx = x(f64::from(v));
        let _ = write!(
            s,
            "<line x1=\"{xx:.1}\" x2=\"{xx:.1}\" y1=\"{top}\" y2=\"{:.1}\" stroke=\"#e4e7eb\"/>\
             <text x=\"{xx:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{v}</text>",
            height - 22.0,
            height - 8.0
        );
    }
    for (i, g) in shown.iter().enumerate() {
        let y = top + row * i as f64;
        let label: String = if g.key.chars().count() > 22 {
            g.key.chars().take(21).chain(std::iter::once('…')).collect()
        } else {
            g.key.clone()
        };
        let _ = write!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            left - 8.0,
            y + 15.0,
            escape(&label)
        );
        let Some(avg) = g.stats.average else {
            let _ = write!(
                s,
                "<text x=\"{left}\" y=\"{:.1}\" class=\"empty\">no responses</text>",
                y + 15.0
            );
            continue;
        };
        let small = g.stats.insufficient_sample;
        let tip = format!("{}: {avg:.2} (n={})", g.key, g.stats.responses);
        if small {
            let _ = write!(
                s,
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"4\" fill=\"#fff\" stroke=\"{MUTED}\" \
                 stroke-width=\"2\"><title>{}</title></circle>",
                x(avg),
                y + 11.0,
                escape(&tip)
            );
        } else {
            let _ = write!(
                s,
                "<rect x=\"{left}\" y=\"{:.1}\" width=\"{:.1}\" height=\"14\" fill=\"{ACCENT}\" \
                 rx=\"2\"><title>{}</title></rect>",
                y + 4.0,
                (x(avg) - left).max(1.0),
                escape(&tip)
            );
        }
        if let Some([lo, hi]) = g.stats.ci95 {
            let (lo, hi) = (x(lo.max(lowest)), x(hi.min(highest)));
            let colour = if small { MUTED } else { "#1f2933" };
            let _ = write!(
                s,
                "<line x1=\"{lo:.1}\" x2=\"{hi:.1}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"{colour}\"/>\
                 <line x1=\"{lo:.1}\" x2=\"{lo:.1}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"{colour}\"/>\
                 <line x1=\"{hi:.1}\" x2=\"{hi:.1}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"{colour}\"/>",
                y + 11.0,
                y + 11.0,
                y + 7.0,
                y + 15.0,
                y + 7.0,
                y + 15.0
            );
        }
        let _ = write!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\"{}>{avg:.2} · n={}{}</text>",
            W - right + 6.0,
            y + 15.0,
            if small { " class=\"empty\"" } else { "" },
            g.stats.responses,
            if small {
                format!(" (&lt;{min_sample})")
            } else {
                String::new()
            }
        );
    }
    s.push_str("</svg>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_add_up_to_100_by_largest_remainder() {
        assert_eq!(shares(&[1.0, 1.0, 1.0]), [34, 33, 33]);
        assert_eq!(
            shares(&[3.0, 33.0, 150.0, 446.0, 271.0])
                .iter()
                .sum::<u64>(),
            100
        );
        assert_eq!(shares(&[0.0, 0.0]), [0, 0]);
    }

    #[test]
    fn ticks_are_round_and_cover_the_maximum() {
        assert_eq!(nice_ticks(39.0), [0.0, 10.0, 20.0, 30.0, 40.0]);
        assert_eq!(nice_ticks(3.0), [0.0, 1.0, 2.0, 3.0]);
        assert_eq!(nice_ticks(0.0), [0.0, 1.0]);
        assert_eq!(*nice_ticks(1234.0).last().unwrap(), 1500.0);
    }
}
