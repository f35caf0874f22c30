//! The dashboard's sections a manager acts on: how surveys ended, the problems and praise in
//! the comments (overall and per group), and the staff-call lists (time to ack per level and
//! per staff member, the calls nobody took). Plain HTML tables and CSS bars, no script.

use std::fmt::Write;

use super::duration;
use super::html_common::{SCORE_COLOURS, escape, score_colour};
use crate::report::clauses::Finding;
use crate::report::comments::Comments;
use crate::report::csi::CsiGroup;
use crate::report::feed::Page;
use crate::report::incidents::IncidentReport;
use crate::report::open_calls::OpenPage;
use crate::report::outcomes::Outcomes;
use crate::report::scale::Scale;

/// How the surveys of the range ended, as one stacked bar and its legend.
pub fn outcomes(out: &mut String, o: &Outcomes, sent: u64) {
    let _ = writeln!(
        out,
        "<div class=\"panel\" style=\"margin-top:12px\"><h3>How the {sent} surveys sent ended</h3>"
    );
    let colours = [
        ("rated", SCORE_COLOURS[4]),
        ("not_understood", SCORE_COLOURS[2]),
        ("no_response", "#b8c2cc"),
        ("errored", SCORE_COLOURS[0]),
        ("open", "#2f6fb3"),
    ];
    let rows = o.rows();
    let total: u64 = (rows.iter())
        .filter(|(k, _)| !Outcomes::not_sent(k))
        .map(|(_, n)| n)
        .sum();
    if total == 0 {
        let _ = writeln!(
            out,
            "<p class=\"empty\">No survey was sent in this range.</p>"
        );
    } else {
        let _ = write!(
            out,
            "<div style=\"display:flex;height:18px;border-radius:3px;overflow:hidden\">"
        );
        for (name, n) in rows.iter().filter(|(k, _)| !Outcomes::not_sent(k)) {
            let colour = (colours.iter())
                .find(|(k, _)| k == name)
                .map_or("#8e7cc3", |(_, c)| c);
            if *n > 0 {
                let _ = write!(
                    out,
                    "<span title=\"{} {n}\" style=\"flex:{n};background:{colour}\"></span>",
                    escape(name)
                );
            }
        }
        let _ = writeln!(out, "</div>");
    }
    let legend: Vec<String> = (rows.iter())
        .map(|(name, n)| format!("{} <b>{n}</b>", escape(&name.replace('_', " "))))
        .collect();
    let _ = writeln!(
        out,
        "<p>{}</p><p class=\"empty\">Opted out and fatigue (surveyed recently) are events that \
         sent nothing.</p></div>",
        legend.join(" · ")
    );
}

/// Problems and praise, side by side, then per group.
pub fn findings(out: &mut String, c: &Comments, groups: &[CsiGroup]) {
    let _ = writeln!(out, "<div class=\"terms\">");
    for (title, list, colour) in [
        ("Problems", &c.problems, SCORE_COLOURS[0]),
        ("Praise", &c.praise, SCORE_COLOURS[4]),
    ] {
        let _ = writeln!(
            out,
            "<div class=\"panel\"><h3>{title} · of {} comment{}{}</h3>",
            c.commented,
            if c.commented == 1 { "" } else { "s" },
            escape(&c.sample_note())
        );
        if list.is_empty() {
            let _ = writeln!(out, "<p class=\"empty\">None found.</p>");
        }
        let max = list.iter().map(|f| f.count).max().unwrap_or(1) as f64;
        for f in list {
            let _ = writeln!(
                out,
                "<div class=\"term\"><span class=\"w\" title=\"{}\">{}</span>\
                 <span class=\"bar\" style=\"width:{:.0}px;background:{colour}\"></span>\
                 <span class=\"n\">{} · {:.1} %</span></div>",
                escape(&f.lemma),
                escape(&f.term),
                6.0 + 160.0 * f.count as f64 / max,
                f.count,
                f.share
            );
            if let Some(example) = f.examples.first() {
                let _ = writeln!(out, "<blockquote>{}</blockquote>", escape(example));
            }
        }
        let _ = writeln!(out, "</div>");
    }
    let _ = writeln!(out, "</div>");
    let with: Vec<&CsiGroup> = (groups.iter())
        .filter(|g| !g.problems.is_empty() || !g.praise.is_empty())
        .collect();
    if with.is_empty() {
        return;
    }
    let list = |f: &[Finding]| {
        f.iter()
            .map(|f| format!("{} ({})", escape(&f.term), f.count))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let _ = writeln!(
        out,
        "<div class=\"panel\" style=\"margin-top:12px\"><h3>Problems and praise per group</h3>\
         <table><tr><th>group</th><th class=\"text\">problems</th><th class=\"text\">praise</th></tr>"
    );
    for g in with {
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td class=\"text\">{}</td><td class=\"text\">{}</td></tr>",
            escape(&g.key),
            list(&g.problems),
            list(&g.praise)
        );
    }
    let _ = writeln!(out, "</table></div>");
}

/// Time to ack per level and per staff member, and the calls nobody took.
/// "Open calls now": each call ringing or taken and not resolved, newest first.
pub fn open_calls(out: &mut String, page: &OpenPage) {
    let _ = writeln!(
        out,
        "<div class=\"panel\" style=\"margin-top:12px\" id=\"open-calls\"><h3>Open calls now: {}{}</h3>",
        page.items.len(),
        if page.next.is_some() { "+" } else { "" }
    );
    if page.items.is_empty() {
        let _ = writeln!(out, "<p class=\"empty\">No call is waiting.</p></div>");
        return;
    }
    let _ = writeln!(
        out,
        "<table><tr><th class=\"text\">button</th><th class=\"text\">location</th>\
         <th class=\"text\">state</th><th>level</th><th>round</th><th class=\"text\">taken by</th>\
         <th>age</th></tr>"
    );
    for c in &page.items {
        let n = |x: Option<u64>| x.map(|x| x.to_string()).unwrap_or_default();
        let state = if c.state == "ringing" {
            "ringing, nobody took it yet"
        } else {
            "taken, not resolved"
        };
        let _ = writeln!(
            out,
            "<tr><td class=\"text\">{}</td><td class=\"text\">{}</td><td class=\"text\">{}</td>\
             <td>{}</td><td>{}</td><td class=\"text\">{}</td><td>{}</td></tr>",
            escape(&c.button),
            escape(&c.location),
            state,
            n(c.level),
            n(c.round),
            escape(c.taken_by.as_deref().unwrap_or("")),
            escape(&duration(Some(c.age_seconds)))
        );
    }
    let _ = writeln!(out, "</table></div>");
}

/// Emergency alerts per person: time from the press to delivery and to `OK`.
fn alert_recipients(out: &mut String, people: &[crate::report::alerts::AlertRecipient]) {
    if people.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "<div class=\"panel\" style=\"margin-top:12px\" id=\"alert-recipients\">\
         <h3>Alerts per person</h3><table><tr><th class=\"text\">number</th><th>alerts</th>\
         <th>sent</th><th>failed</th><th>delivered</th><th>to deliver, median</th><th>p90</th>\
         <th>OK</th><th>to OK, median</th><th>p90</th></tr>"
    );
    for p in people {
        let _ = writeln!(
            out,
            "<tr><td class=\"text\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&p.msisdn),
            p.alerts,
            p.sends,
            p.failed,
            p.delivered,
            escape(&duration(p.median_deliver_seconds)),
            escape(&duration(p.p90_deliver_seconds)),
            p.acknowledged,
            escape(&duration(p.median_ack_seconds)),
            escape(&duration(p.p90_ack_seconds))
        );
    }
    let _ = writeln!(out, "</table></div>");
}

pub fn incident_lists(out: &mut String, r: &IncidentReport) {
    let _ = writeln!(
        out,
        "<div class=\"terms\"><div class=\"panel\"><h3>Time to ack by level</h3><table>\
         <tr><th>level</th><th>acknowledged</th><th>median</th><th>p90</th></tr>"
    );
    for l in &r.levels {
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            l.level,
            l.acknowledged,
            escape(&duration(l.median_ack_seconds)),
            escape(&duration(l.p90_ack_seconds))
        );
    }
    let _ = writeln!(
        out,
        "</table></div><div class=\"panel\"><h3>Acknowledged by</h3><table>\
         <tr><th>staff</th><th>calls</th><th>median</th><th>p90</th></tr>"
    );
    for p in &r.staff {
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&p.staff),
            p.acknowledged,
            escape(&duration(p.median_ack_seconds)),
            escape(&duration(p.p90_ack_seconds))
        );
    }
    let _ = writeln!(out, "</table></div></div>");
    alert_recipients(out, &r.alert_recipients);
    let _ = writeln!(
        out,
        "<div class=\"panel\" style=\"margin-top:12px\"><h3>Unacknowledged calls: {}</h3>",
        r.total.unacknowledged
    );
    if r.unacknowledged_calls.is_empty() {
        let _ = writeln!(out, "<p class=\"empty\">Every call was taken.</p></div>");
        return;
    }
    let _ = writeln!(
        out,
        "<table><tr><th>given up at</th><th class=\"text\">button</th>\
         <th class=\"text\">location</th><th>levels tried</th><th>rounds</th></tr>"
    );
    for c in r.unacknowledged_calls.iter().take(UNACKNOWLEDGED_SHOWN) {
        let count = |x: Option<u64>| x.map(|x| x.to_string()).unwrap_or_default();
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td class=\"text\">{}</td><td class=\"text\">{}</td><td>{}</td>\
             <td>{}</td></tr>",
            escape(&c.at.replace('T', " ")),
            escape(&c.button),
            escape(&c.location),
            count(c.levels_tried),
            count(c.rounds)
        );
    }
    let _ = writeln!(out, "</table>");
    let more = r
        .total
        .unacknowledged
        .saturating_sub(UNACKNOWLEDGED_SHOWN as u64);
    if more > 0 {
        let _ = writeln!(
            out,
            "<p class=\"empty\">The newest {UNACKNOWLEDGED_SHOWN}; {more} more in the JSON, CSV and \
             XLSX report.</p>"
        );
    }
    let _ = writeln!(out, "</div>");
}

/// Unacknowledged calls listed on the page (the report lists up to 100).
const UNACKNOWLEDGED_SHOWN: usize = 20;

/// The newest responses of the survey flow shown (the feed's first page), with their comments;
/// scores coloured on its `scale`.
pub fn feed(out: &mut String, page: &Page, scale: &Scale) {
    let _ = writeln!(
        out,
        "<div class=\"panel\" style=\"margin-top:12px\"><h3>Newest responses</h3>"
    );
    if page.items.is_empty() {
        let _ = writeln!(out, "<p class=\"empty\">No responses yet.</p></div>");
        return;
    }
    let _ = writeln!(
        out,
        "<table><tr><th>at (UTC)</th><th>flow</th><th>score</th><th>operator</th>\
         <th>channel</th><th style=\"text-align:left\">comment</th></tr>"
    );
    for r in &page.items {
        let at: String = r.at.chars().take(16).collect::<String>().replace('T', " ");
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td style=\"color:{}\">{}</td><td>{}</td><td>{}</td>\
             <td style=\"text-align:left;white-space:normal\">{}</td></tr>",
            escape(&at),
            escape(&r.flow),
            score_colour(scale, r.score),
            r.score,
            escape(&r.operator),
            escape(&r.channel),
            escape(&r.comment)
        );
    }
    let _ = writeln!(
        out,
        "</table><p class=\"empty\">Every response: GET /api/v1/responses or smsflow report \
         responses.</p></div>"
    );
}
