//! The served dashboard's form (range, grouping, survey, auto-refresh: a plain GET, no
//! script), its quick ranges, and the page a bad request gets instead of the dashboard.

use std::fmt::Write;

use super::duration;
use super::html_common::{STYLE, escape};

/// The current values of the dashboard's controls.
#[derive(Debug, Clone, Default)]
pub struct Controls {
    pub from: String,
    pub to: String,
    pub by: String,
    /// The survey flow shown, and every survey flow to choose from.
    pub flow: String,
    pub flows: Vec<String>,
}

/// The choices of the grouping control.
const GROUPINGS: [&str; 5] = ["operator", "channel", "day", "week", "month"];
/// The choices of the auto-refresh control, seconds (0: off).
const REFRESHES: [u32; 4] = [0, 60, 300, 900];

/// The range and grouping form (plain GET, no script) and quick ranges.
pub(super) fn controls(out: &mut String, c: &Controls, refresh: Option<u32>) {
    let _ = write!(
        out,
        "<form class=\"controls\" method=\"get\" action=\"/reports\">\
         <label>from<input type=\"date\" name=\"from\" value=\"{}\"></label>\
         <label>to<input type=\"date\" name=\"to\" value=\"{}\"></label><label>by<select name=\"by\">",
        escape(&c.from),
        escape(&c.to)
    );
    for by in GROUPINGS {
        let selected = if by == c.by { " selected" } else { "" };
        let _ = write!(out, "<option{selected}>{by}</option>");
    }
    // The survey flows to choose from (the one shown even if it runs no more); the form
    // sends the choice with the rest, so Show keeps it.
    let mut flows = c.flows.clone();
    if !flows.contains(&c.flow) {
        flows.push(c.flow.clone());
    }
    flows.sort();
    let _ = write!(out, "</select></label><label>survey<select name=\"flow\">");
    for flow in &flows {
        let selected = if *flow == c.flow { " selected" } else { "" };
        let _ = write!(out, "<option{selected}>{}</option>", escape(flow));
    }
    let _ = write!(
        out,
        "</select></label><label>refresh<select name=\"refresh\">"
    );
    for n in REFRESHES {
        let selected = if refresh.unwrap_or(0) == n {
            " selected"
        } else {
            ""
        };
        let label = if n == 0 {
            "off".to_owned()
        } else {
            duration(Some(f64::from(n)))
        };
        let value = if n == 0 { String::new() } else { n.to_string() };
        let _ = write!(
            out,
            "<option value=\"{value}\"{selected}>{}</option>",
            escape(&label)
        );
    }
    let _ = writeln!(
        out,
        "</select></label><button type=\"submit\">Show</button></form>"
    );
    let by = format!("{}&amp;flow={}", escape(&c.by), escape(&c.flow));
    let _ = writeln!(
        out,
        "<p class=\"quick\">Last <a href=\"/reports?days=7&amp;by={by}\">7 days</a>\
         <a href=\"/reports?days=30&amp;by={by}\">30 days</a>\
         <a href=\"/reports?days=90&amp;by={by}\">90 days</a></p>"
    );
}

/// A page for a bad dashboard request: what was wrong, and the way back.
pub fn error_page(detail: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"ru\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>smsflow reports: bad request</title>\n<style>{STYLE}</style>\n</head>\n<body>\n\
         <h1>smsflow reports</h1>\n<div class=\"error\"><h3>This report cannot be shown</h3>\
         <p>{}</p><p><a href=\"/reports\">Show the last 30 days</a></p></div>\n</body>\n</html>\n",
        escape(detail)
    )
}
