//! What every part of the HTML page shares: escaping, the colours, the style sheet, cards
//! and chart panels. It imports no other part of the page, so the page, its sections and the
//! SVG charts all stand on it.

use std::fmt::Write;

use crate::report::scale::Scale;

/// Score colours, 1 (red) to 5 (green).
pub(super) const SCORE_COLOURS: [&str; 5] = ["#d73027", "#fc8d59", "#e6c229", "#91cf60", "#1a9850"];
pub(super) const ACCENT: &str = "#2f6fb3";
pub(super) const MUTED: &str = "#b8c2cc";
pub(super) const WARN: &str = "#d9534f";

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

pub(super) fn card(out: &mut String, label: &str, value: &str, note: &str) {
    let _ = write!(
        out,
        "<div class=\"card\"><div class=\"label\">{}</div><div class=\"value\">{}</div>\
         <div class=\"note\">{note}</div></div>",
        escape(label),
        escape(value)
    );
}

/// A score's colour: red to green across its scale, whatever the scale's length.
pub(super) fn score_colour(scale: &Scale, score: u8) -> &'static str {
    let span = usize::from(scale.max.saturating_sub(scale.min)).max(1);
    let at = usize::from(score.clamp(scale.min, scale.max) - scale.min);
    SCORE_COLOURS[at * (SCORE_COLOURS.len() - 1) / span]
}

/// A chart panel across the whole width of the grid (the trends).
pub(super) fn panel_wide(out: &mut String, title: &str, svg: &str) {
    let _ = writeln!(
        out,
        "<div class=\"panel wide\"><h3>{}</h3>{svg}</div>",
        escape(title)
    );
}

/// A chart panel in one cell of the grid.
pub(super) fn panel(out: &mut String, title: &str, svg: &str) {
    let _ = writeln!(
        out,
        "<div class=\"panel\"><h3>{}</h3>{svg}</div>",
        escape(title)
    );
}
