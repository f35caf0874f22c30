//! The HTML dashboard (`--format html`, `GET /reports`, the demo's report file): one
//! self-contained page, inline CSS and inline SVG charts: the CSI trend, the score
//! distribution, the average per group with its confidence interval, staff calls per period
//! and the time-to-ack distribution. No scripts, fonts, images or links to anything outside
//! the page: it renders the same offline, from a file or behind a strict proxy. (Inline SVG in
//! HTML5 needs no `xmlns`, so the page contains no URL at all.)

use std::fmt::Write;

use super::{duration, num, signed};
use crate::report::csi::CsiReport;
use crate::report::feed::Page;
use crate::report::incidents::IncidentReport;
use crate::report::scale::{self, Scale};

/// Score colours, 1 (red) to 5 (green).
pub(super) const SCORE_COLOURS: [&str; 5] = ["#d73027", "#fc8d59", "#e6c229", "#91cf60", "#1a9850"];
pub(super) const ACCENT: &str = "#2f6fb3";
pub(super) const MUTED: &str = "#b8c2cc";
pub(super) const WARN: &str = "#d9534f";

pub use super::html_form::{Controls, error_page};
pub use super::svg::MAX_BARS;
use super::svg::{
    Column, W, WIDE, column_chart, columns, csat_chart, group_bars, short_period, trend_chart,
};

/// Text safe inside HTML elements and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

pub(super) const STYLE: &str = r#"
:root { color-scheme: light; }
* { box-sizing: border-box; }
body { margin: 0; padding: 24px 32px 48px; background: #f4f6f8; color: #1f2933;
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", "DejaVu Sans", sans-serif; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 18px; margin: 32px 0 12px; padding-bottom: 4px; border-bottom: 2px solid #d5dde5; }
h3 { font-size: 14px; margin: 0 0 8px; color: #52606d; font-weight: 600; }
.sub { color: #616e7c; margin: 0 0 8px; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(150px, 1fr)); gap: 12px; }
.card { background: #fff; border-radius: 8px; padding: 12px 14px; box-shadow: 0 1px 2px rgba(0,0,0,.08); }
.card .label { color: #616e7c; font-size: 12px; text-transform: uppercase; letter-spacing: .03em;
  white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
.card .value { font-size: 24px; font-weight: 650; margin-top: 2px; }
.card .note { color: #616e7c; font-size: 12px; }
.up { color: #1a7f37; } .down { color: #c62828; }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(min(460px, 100%), 1fr)); gap: 12px; margin-top: 12px; }
.wide { grid-column: 1 / -1; }
.panel { background: #fff; border-radius: 8px; padding: 12px 14px; box-shadow: 0 1px 2px rgba(0,0,0,.08); overflow-x: auto; }
svg { display: block; width: 100%; height: auto; }
svg text { font: 11px system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", "DejaVu Sans", sans-serif; fill: #3e4c59; }
table { border-collapse: collapse; width: 100%; font-size: 13px; }
th, td { padding: 4px 8px; text-align: right; border-bottom: 1px solid #e4e7eb; white-space: nowrap; }
th:first-child, td:first-child { text-align: left; }
th { color: #52606d; font-weight: 600; background: #f9fafb; }
td.muted, tr.muted td { color: #9aa5b1; }
th.text, td.text { text-align: left; white-space: normal; }
.terms { display: grid; grid-template-columns: 1fr 1fr; gap: 12px; margin-top: 12px; }
.term { display: flex; align-items: center; gap: 8px; margin: 3px 0; }
.term .w { width: 150px; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.term .bar { height: 10px; border-radius: 3px; }
.term .n { color: #616e7c; font-size: 12px; }
blockquote { margin: 6px 0; padding: 4px 10px; border-left: 3px solid #d5dde5; color: #52606d; font-size: 13px; }
.empty { color: #9aa5b1; font-style: italic; }
footer { margin-top: 32px; color: #9aa5b1; font-size: 12px; }
form.controls { display: flex; flex-wrap: wrap; gap: 8px 14px; align-items: end; margin: 8px 0 4px; }
form.controls label { display: flex; flex-direction: column; font-size: 12px; color: #52606d; }
form.controls input, form.controls select, form.controls button { font: inherit; padding: 3px 6px; }
.quick a { margin-right: 10px; color: #2f6fb3; }
.error { background: #fff; border-left: 4px solid #d9534f; padding: 12px 16px; border-radius: 4px; }
@media (max-width: 600px) {
  body { padding: 12px 10px 32px; }
  .cards { grid-template-columns: repeat(2, minmax(0, 1fr)); gap: 8px; }
  .card .value { font-size: 20px; }
  .terms { grid-template-columns: 1fr; }
  .term .w { width: 110px; }
  table { font-size: 12px; }
  th, td { padding: 3px 5px; }
  /* Wide charts keep a readable scale and scroll sideways instead of shrinking to 1/3. */
  .wide svg { min-width: 680px; }
}
"#;

/// What the page shows beyond the reports.
#[derive(Debug, Clone, Default)]
pub struct PageOptions<'a> {
    /// When the data was read, as the reader should see it (`2026-12-01 13:45 Asia/Tashkent`).
    pub generated_at: Option<String>,
    /// Reload the page every this many seconds.
    pub refresh: Option<u32>,
    /// The range and grouping controls of the served dashboard (a file has none).
    pub controls: Option<Controls>,
    /// The newest responses, for the feed section.
    pub responses: Option<&'a Page>,
    /// The staff calls not over yet, for the "Open calls now" panel.
    pub open_calls: Option<&'a crate::report::open_calls::OpenPage>,
    /// The service quality audit (complaints, manager calls, the heat map).
    pub audit: Option<&'a crate::report::audit::AuditReport>,
}

/// The whole page with whichever reports are given.
pub fn page(
    csi: Option<&CsiReport>,
    incidents: Option<&IncidentReport>,
    options: &PageOptions,
) -> String {
    let mut out = String::new();
    let refresh = options
        .refresh
        .map(|n| format!("<meta http-equiv=\"refresh\" content=\"{n}\">\n"))
        .unwrap_or_default();
    let _ = write!(
        out,
        "<!doctype html>\n<html lang=\"ru\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n{refresh}\
         <title>smsflow reports</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
    );
    let range = (csi.map(|r| (&r.from, &r.to, &r.timezone)))
        .or(incidents.map(|r| (&r.from, &r.to, &r.timezone)))
        .or(options.audit.map(|r| (&r.from, &r.to, &r.timezone)));
    let _ = writeln!(out, "<h1>smsflow reports</h1>");
    if let Some((from, to, zone)) = range {
        let generated = options
            .generated_at
            .as_ref()
            .map(|at| format!(" · generated {}", escape(at)))
            .unwrap_or_default();
        let refreshing = options
            .refresh
            .map(|n| {
                format!(
                    " · refreshes every {}",
                    escape(&duration(Some(f64::from(n))))
                )
            })
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "<p class=\"sub\">{} – {} · {}{generated}{refreshing}</p>",
            escape(from),
            escape(to),
            escape(zone)
        );
    }
    if let Some(c) = &options.controls {
        super::html_form::controls(&mut out, c, options.refresh);
    }
    if let Some(r) = csi {
        csi_section(&mut out, r);
    }
    if let Some(page) = options.responses {
        let scale = csi.map(|r| r.scale.clone()).unwrap_or_default();
        super::html_analysis::feed(&mut out, page, &scale);
    }
    if let Some(r) = incidents {
        incident_section(&mut out, r);
    }
    if let Some(calls) = options.open_calls {
        super::html_analysis::open_calls(&mut out, calls);
    }
    if let Some(r) = options.audit {
        super::html_audit::section(&mut out, r);
    }
    let _ = writeln!(
        out,
        "<footer>Generated by smsflow. Averages are on the survey's scale (CSAT 1–5: positive \
         4–5, negative 1–2; NPS 0–10: promoters 9–10, detractors 0–6; CES 1–7: easy 5–7). Ranks \
         count only groups clearly better (95 % intervals apart).</footer>\n\
         </body>\n</html>"
    );
    out
}

pub(super) fn card(out: &mut String, label: &str, value: &str, note: &str) {
    let _ = write!(
        out,
        "<div class=\"card\"><div class=\"label\">{}</div><div class=\"value\">{}</div>\
         <div class=\"note\">{note}</div></div>",
        escape(label),
        escape(value)
    );
}

/// A change with an arrow and colour (`note` HTML).
fn change_note(delta: Option<f64>, places: usize, what: &str) -> String {
    match delta {
        Some(d) if d != 0.0 => format!(
            "<span class=\"{}\">{} {}</span> {}",
            if d > 0.0 { "up" } else { "down" },
            if d > 0.0 { "▲" } else { "▼" },
            escape(&signed(Some(d), places)),
            escape(what)
        ),
        Some(_) => format!("no change {}", escape(what)),
        None => String::new(),
    }
}

/// A score's colour: red to green across its scale, whatever the scale's length.
pub(super) fn score_colour(scale: &Scale, score: u8) -> &'static str {
    let span = usize::from(scale.max.saturating_sub(scale.min)).max(1);
    let at = usize::from(score.clamp(scale.min, scale.max) - scale.min);
    SCORE_COLOURS[at * (SCORE_COLOURS.len() - 1) / span]
}

fn csi_section(out: &mut String, r: &CsiReport) {
    let t = &r.total;
    let _ = writeln!(
        out,
        "<h2>Customer satisfaction (CSI){}</h2>\n<div class=\"cards\">",
        if r.flow == crate::report::query::SURVEY_FLOW {
            String::new()
        } else {
            format!(
                " · {} ({} {}–{})",
                escape(&r.flow),
                escape(&r.scale.kind.to_uppercase()),
                r.scale.min,
                r.scale.max
            )
        }
    );
    let vs = format!("vs {}..{}", r.previous_from, r.previous_to);
    let change = t.change.as_ref();
    card(
        out,
        "Surveys sent",
        &t.surveys_sent.to_string(),
        &format!("{} delivered", t.delivered),
    );
    card(
        out,
        "Responses",
        &t.responses.to_string(),
        &format!("response rate {}&nbsp;%", num(t.response_rate, 1)),
    );
    card(
        out,
        "Average",
        &num(t.average, 2),
        &match t.ci95 {
            Some([lo, hi]) => format!(
                "95% CI {lo:.2}–{hi:.2}<br>{}",
                change_note(change.and_then(|c| c.average), 2, &vs)
            ),
            None => change_note(change.and_then(|c| c.average), 2, &vs),
        },
    );
    let (positive, negative) = (scale::positive(&r.scale), scale::negative(&r.scale));
    let words = scale::words(&r.scale);
    if let Some(nps) = t.nps {
        card(
            out,
            "NPS",
            &format!("{nps:.0}"),
            &match t.nps_ci95 {
                Some([lo, hi]) => format!("95% CI {lo:.0} to {hi:.0}"),
                None => String::new(),
            },
        );
    }
    card(
        out,
        &scale::named(words.positive, &positive),
        &format!("{} %", num(t.positive_pct, 1)),
        &change_note(change.and_then(|c| c.positive_pct), 1, "pp"),
    );
    if let (Some(passives), Some(middle)) = (t.passives_pct, scale::middle(&r.scale)) {
        card(
            out,
            &scale::named(words.middle, &middle),
            &format!("{passives:.1} %"),
            "",
        );
    }
    card(
        out,
        &scale::named(words.negative, &negative),
        &format!("{} %", num(t.negative_pct, 1)),
        "",
    );
    card(
        out,
        "Anomalies",
        &r.anomalies.len().to_string(),
        "periods clearly below baseline",
    );
    let _ = writeln!(out, "</div>\n<div class=\"charts\">");

    panel_wide(
        out,
        &format!("Average score and responses by {}", r.trend_period),
        &trend_chart(&r.trend, (r.scale.min, r.scale.max)),
    );
    panel_wide(
        out,
        &format!(
            "{} % (share of {}–{}) by {}",
            scale::capitalised(words.positive),
            positive.start(),
            positive.end(),
            r.trend_period
        ),
        &csat_chart(&r.trend),
    );
    let dist: Vec<(String, f64, &str)> = t
        .distribution
        .scores()
        .map(|s| {
            let colour = score_colour(&r.scale, s);
            (s.to_string(), t.distribution.count(s) as f64, colour)
        })
        .collect();
    panel(out, "Distribution of scores", &column_chart(&dist, true, W));
    panel(
        out,
        &format!("Average by {} (95% CI)", r.by),
        &group_bars(&r.groups, r.min_sample, (r.scale.min, r.scale.max)),
    );
    let _ = writeln!(out, "</div>");

    // Groups table.
    let _ = writeln!(
        out,
        "<div class=\"panel\" style=\"margin-top:12px\"><h3>By {}</h3><table>\n\
         <tr><th>{}</th><th>sent</th><th>delivered</th><th>responses</th><th>rate %</th>\
         <th>average</th><th>95% CI</th><th>positive %</th><th>negative %</th><th>Δ average</th>\
         <th>Δ responses</th><th>rank</th></tr>",
        escape(&r.by),
        escape(&r.by)
    );
    for g in &r.groups {
        let s = &g.stats;
        let c = s.change.as_ref();
        let _ = writeln!(
            out,
            "<tr{}><td>{}{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            if s.insufficient_sample {
                " class=\"muted\""
            } else {
                ""
            },
            escape(&g.key),
            if g.partial { " (partial)" } else { "" },
            s.surveys_sent,
            s.delivered,
            s.responses,
            num(s.response_rate, 1),
            num(s.average, 2),
            s.ci95
                .map(|[lo, hi]| format!("{lo:.2}–{hi:.2}"))
                .unwrap_or_else(|| "–".into()),
            num(s.positive_pct, 1),
            num(s.negative_pct, 1),
            escape(&signed(c.and_then(|c| c.average), 2)),
            escape(&signed(c.map(|c| c.responses as f64), 0)),
            match (g.rank, s.insufficient_sample) {
                (Some(rank), _) if g.tied => format!("{rank} (tied)"),
                (Some(rank), _) => rank.to_string(),
                (None, true) => format!("fewer than {} responses", r.min_sample),
                (None, false) => String::new(),
            }
        );
    }
    let _ = writeln!(out, "</table></div>");

    // What to act on: how surveys ended, problems and praise.
    super::html_analysis::outcomes(out, &r.outcomes, r.total.surveys_sent);
    super::html_analysis::findings(out, &r.comments, &r.groups);

    // Anomalies.
    let _ = writeln!(
        out,
        "<div class=\"panel\" style=\"margin-top:12px\"><h3>Anomalies: averages clearly below \
         their trailing baseline</h3>"
    );
    if r.anomalies.is_empty() {
        let _ = writeln!(out, "<p class=\"empty\">None in this range.</p>");
    } else {
        let _ = writeln!(
            out,
            "<table><tr><th>key</th><th>period</th><th>average</th><th>baseline</th>\
             <th>limit</th><th>responses</th></tr>"
        );
        for a in &r.anomalies {
            let _ = writeln!(
                out,
                "<tr><td>{} {}</td><td>{}</td><td class=\"down\">{:.2}</td><td>{:.2}</td>\
                 <td>{:.2}</td><td>{}</td></tr>",
                escape(&a.dimension),
                escape(&a.key),
                escape(&a.period),
                a.average,
                a.baseline,
                a.lower_limit,
                a.responses
            );
        }
        let _ = writeln!(out, "</table>");
    }
    let _ = writeln!(out, "</div>");
}

fn incident_section(out: &mut String, r: &IncidentReport) {
    let t = &r.total;
    let _ = writeln!(
        out,
        "<h2>Staff calls and escalation</h2>\n<div class=\"cards\">"
    );
    card(out, "Incidents", &t.incidents.to_string(), "");
    card(
        out,
        "Acknowledged",
        &t.acknowledged.to_string(),
        &format!("{} %", num(t.acknowledged_pct, 1)),
    );
    card(
        out,
        "Unacknowledged",
        &t.unacknowledged.to_string(),
        "over, nobody took it",
    );
    card(
        out,
        "Open now",
        &t.open.to_string(),
        &format!("{} ringing", t.ringing),
    );
    card(
        out,
        "Escalated",
        &t.escalated.to_string(),
        &format!("{} %", num(t.escalated_pct, 1)),
    );
    card(
        out,
        "Median ack",
        &duration(t.median_ack_seconds),
        "time to acknowledge",
    );
    card(
        out,
        "p90 ack",
        &duration(t.p90_ack_seconds),
        "9 in 10 taken within",
    );
    card(
        out,
        "Resolved",
        &t.resolved.to_string(),
        &format!(
            "median {}, p90 {}",
            duration(t.median_resolve_seconds),
            duration(t.p90_resolve_seconds)
        ),
    );
    if t.cancelled > 0 {
        card(out, "Cancelled", &t.cancelled.to_string(), "at the button");
    }
    let _ = writeln!(out, "</div>\n<div class=\"charts\">");
    let (first, later) = (
        ("taken at level 1", ACCENT),
        ("taken after escalating", "#f0ad4e"),
    );
    let never = ("not taken", WARN);
    let trend: Vec<Column> = r
        .trend
        .iter()
        .map(|g| {
            let s = &g.stats;
            let at_first = s.acknowledged_at_level.get(1);
            (
                short_period(&g.key),
                vec![
                    (at_first as f64, first.1, first.0),
                    ((s.acknowledged - at_first) as f64, later.1, later.0),
                    (s.unacknowledged as f64, never.1, never.0),
                ],
            )
        })
        .collect();
    panel_wide(
        out,
        &format!("Staff calls by {}", r.trend_period),
        &columns(&trend, false, WIDE, &[first, later, never]),
    );
    let hist: Vec<(String, f64, &str)> = r
        .ack_histogram
        .iter()
        .map(|b| (b.label.clone(), b.count as f64, ACCENT))
        .collect();
    panel(out, "Time to acknowledge", &column_chart(&hist, true, W));
    let levels: Vec<(String, f64, &str)> = t
        .acknowledged_at_level
        .iter()
        .map(|(l, n)| (format!("level {l}"), n as f64, ACCENT))
        .chain(std::iter::once((
            "none".to_owned(),
            t.unacknowledged as f64,
            WARN,
        )))
        .collect();
    panel(
        out,
        "Acknowledged at level",
        &column_chart(&levels, true, W),
    );
    let _ = writeln!(out, "</div>");
    let _ = writeln!(
        out,
        "<div class=\"panel\" style=\"margin-top:12px\"><h3>By {}</h3><table>\n<tr><th>{}</th>\
         <th>incidents</th><th>acknowledged</th><th>unacknowledged</th><th>open</th>\
         <th>escalated</th><th>median</th><th>p90</th><th>resolved</th><th>median resolve</th>\
         <th>by level</th></tr>",
        escape(&r.by),
        escape(&r.by)
    );
    for g in &r.groups {
        let s = &g.stats;
        let levels: Vec<String> = s
            .acknowledged_at_level
            .iter()
            .map(|(l, n)| format!("L{l}: {n}"))
            .collect();
        let _ = writeln!(
            out,
            "<tr{}><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            if s.incidents == 0 {
                " class=\"muted\""
            } else {
                ""
            },
            escape(&g.key),
            s.incidents,
            s.acknowledged,
            s.unacknowledged,
            s.open,
            s.escalated,
            escape(&duration(s.median_ack_seconds)),
            escape(&duration(s.p90_ack_seconds)),
            s.resolved,
            escape(&duration(s.median_resolve_seconds)),
            escape(&levels.join(", "))
        );
    }
    let _ = writeln!(out, "</table></div>");
    super::html_analysis::incident_lists(out, r);
}

/// A chart panel across the whole width of the grid (the trends).
pub(super) fn panel_wide(out: &mut String, title: &str, svg: &str) {
    let _ = writeln!(
        out,
        "<div class=\"panel wide\"><h3>{}</h3>{svg}</div>",
        escape(title)
    );
}

pub(super) fn panel(out: &mut String, title: &str, svg: &str) {
    let _ = writeln!(
        out,
        "<div class=\"panel\"><h3>{}</h3>{svg}</div>",
        escape(title)
    );
}
