//! CSV: a UTF-8 byte order mark (so Excel reads Cyrillic right; `--no-bom` leaves it out), one
//! header, a `total` row, then one row per group, each starting with the report's `from` and
//! `to`; numbers unformatted (`.` decimal point), empty cells for "no value". Then, each after an empty line with its own header, the
//! sections a manager acts on: outcomes, problems and praise (CSI); time to ack per level,
//! acknowledgements per staff member and the unacknowledged calls (incidents). The per-score
//! terms and the anomalies are in the JSON, XLSX and HTML formats.

use super::{Field, csi_fields, incident_fields, incident_levels};
use crate::report::alerts::{self, AlertRecipient};
use crate::report::csi::{CsiReport, CsiStats};
use crate::report::incidents::{IncidentReport, IncidentStats};

/// What Excel needs to read the file as UTF-8.
pub const BOM: &str = "\u{feff}";

/// A CSI report's rows (after the [`BOM`]).
pub fn csi(out: &mut String, r: &CsiReport) {
    let kind = &r.scale.kind;
    let names = csi_fields(&r.total, None, kind)
        .into_iter()
        .map(|(name, _)| name);
    let total = csi_cells("total", &r.total, None, kind);
    let groups = (r.groups.iter()).map(|g| csi_cells(&g.key, &g.stats, g.rank, kind));
    grouped(
        out,
        [&r.from, &r.to, &r.by],
        names,
        std::iter::once(total).chain(groups),
    );
    section(out, ["outcome", "count"]);
    for (name, n) in r.outcomes.rows() {
        row(out, [name, n.to_string()]);
    }
    section(
        out,
        [
            "finding",
            "term",
            "lemma",
            "comments",
            "share_pct",
            "example",
        ],
    );
    let c = &r.comments;
    for (kind, list) in [("problem", &c.problems), ("praise", &c.praise)] {
        for f in list {
            row(
                out,
                [
                    kind.to_owned(),
                    f.term.clone(),
                    f.lemma.clone(),
                    f.count.to_string(),
                    f.share.to_string(),
                    f.examples.first().cloned().unwrap_or_default(),
                ],
            );
        }
    }
}

/// An incident report's rows (after the [`BOM`]).
pub fn incidents(out: &mut String, r: &IncidentReport) {
    let levels = incident_levels(r);
    let names = incident_fields(&r.total, levels)
        .into_iter()
        .map(|(name, _)| name);
    let total = incident_cells("total", &r.total, levels);
    let groups = (r.groups.iter()).map(|g| incident_cells(&g.key, &g.stats, levels));
    grouped(
        out,
        [&r.from, &r.to, &r.by],
        names,
        std::iter::once(total).chain(groups),
    );
    // Time to ack per level, then per staff member: the same columns.
    let levels = (r.levels.iter()).map(|l| {
        (
            l.level.to_string(),
            l.acknowledged,
            l.median_ack_seconds,
            l.p90_ack_seconds,
        )
    });
    ack_times(out, "level", levels);
    let staff = (r.staff.iter()).map(|p| {
        (
            p.staff.clone(),
            p.acknowledged,
            p.median_ack_seconds,
            p.p90_ack_seconds,
        )
    });
    ack_times(out, "staff", staff);
    section(
        out,
        [
            "unacknowledged_at",
            "conversation",
            "id",
            "button",
            "location",
            "levels_tried",
            "rounds",
        ],
    );
    for c in &r.unacknowledged_calls {
        row(
            out,
            [
                c.at.clone(),
                c.conversation.to_string(),
                c.id.clone(),
                c.button.clone(),
                c.location.clone(),
                c.levels_tried.map(|n| n.to_string()).unwrap_or_default(),
                c.rounds.map(|n| n.to_string()).unwrap_or_default(),
            ],
        );
    }
    if !r.alert_recipients.is_empty() {
        alert_recipients(out, &r.alert_recipients);
    }
}

pub(super) fn opt(x: Option<f64>) -> String {
    x.map(|x| x.to_string()).unwrap_or_default()
}

/// The header (`from`, `to`, the grouping, then `names`) and a row of `cells` per key, each
/// over the report's whole range.
fn grouped(
    out: &mut String,
    [from, to, by]: [&String; 3],
    names: impl Iterator<Item = String>,
    cells: impl Iterator<Item = Vec<String>>,
) {
    let mut header = vec!["from".to_owned(), "to".to_owned(), by.clone()];
    header.extend(names);
    row(out, header);
    for cells in cells {
        row(out, [from.clone(), to.clone()].into_iter().chain(cells));
    }
}

fn csi_cells(key: &str, s: &CsiStats, rank: Option<u32>, kind: &str) -> Vec<String> {
    let mut cells = vec![key.to_owned()];
    cells.extend(
        csi_fields(s, rank, kind)
            .into_iter()
            .map(|(_, field)| match field {
                Field::Number(x) => opt(x),
                Field::Flag(b) => b.to_string(),
            }),
    );
    cells
}

fn incident_cells(key: &str, s: &IncidentStats, levels: u32) -> Vec<String> {
    let mut cells = vec![key.to_owned()];
    cells.extend(incident_fields(s, levels).into_iter().map(|(_, f)| cell(f)));
    cells
}

fn cell(field: Field) -> String {
    match field {
        Field::Number(x) => opt(x),
        Field::Flag(b) => b.to_string(),
    }
}

/// Emergency alerts per person (only where the range had alerts).
fn alert_recipients(out: &mut String, people: &[AlertRecipient]) {
    section(
        out,
        std::iter::once("alert_recipient").chain(alerts::FIGURES),
    );
    for p in people {
        row(
            out,
            std::iter::once(p.msisdn.clone()).chain(p.figures().map(opt)),
        );
    }
}

/// A section of time to ack by `what` (level or staff member): who, how many acknowledged,
/// median and p90.
fn ack_times(
    out: &mut String,
    what: &str,
    rows: impl Iterator<Item = (String, u64, Option<f64>, Option<f64>)>,
) {
    section(
        out,
        [
            what,
            "acknowledged",
            "median_ack_seconds",
            "p90_ack_seconds",
        ],
    );
    for (key, acknowledged, median, p90) in rows {
        row(out, [key, acknowledged.to_string(), opt(median), opt(p90)]);
    }
}

/// An empty line, then the header of the next section.
pub(super) fn section<'a>(out: &mut String, header: impl IntoIterator<Item = &'a str>) {
    out.push_str("\r\n");
    row(out, header.into_iter().map(str::to_owned));
}

/// One CSV record (RFC 4180 quoting), CRLF-terminated.
pub(super) fn row(out: &mut String, cells: impl IntoIterator<Item = String>) {
    let cells: Vec<String> = cells.into_iter().map(|c| quote(&c)).collect();
    out.push_str(&cells.join(","));
    out.push_str("\r\n");
}

/// One cell as written: defused, then quoted where RFC 4180 needs it.
pub(crate) fn quote(cell: &str) -> String {
    let cell = defuse(cell);
    if cell.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", cell.replace('"', "\"\""))
    } else {
        cell.into_owned()
    }
}

/// A text Excel (or LibreOffice, Sheets) would run as a formula: it starts with `=`, `+`,
/// `-`, `@`, tab or CR (OWASP's CSV injection rule). A subscriber's SMS or an operator's name
/// can be anything, so such a cell gets a leading `'` and is shown as the text it is. A plain
/// number (`-0.4`, our change columns) is left alone: it can run nothing and must stay a
/// number for the sheet to sum it.
fn defuse(cell: &str) -> std::borrow::Cow<'_, str> {
    let risky = cell.starts_with(['=', '+', '-', '@', '\t', '\r']);
    if risky && !is_plain_number(cell) {
        format!("'{cell}").into()
    } else {
        cell.into()
    }
}

/// `-?digits[.digits]`: how we write a number, and nothing a spreadsheet evaluates.
fn is_plain_number(cell: &str) -> bool {
    let digits = cell.strip_prefix('-').unwrap_or(cell);
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, "0"));
    [whole, fraction]
        .iter()
        .all(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_are_quoted_when_needed() {
        assert_eq!(quote("ресторан, зал 1"), "\"ресторан, зал 1\"");
        assert_eq!(quote("a\"b"), "\"a\"\"b\"");
        assert_eq!(quote("op-17"), "op-17");
    }

    #[test]
    fn formulas_become_text_and_numbers_stay_numbers() {
        assert_eq!(quote("=cmd|' /C calc'!A0"), "'=cmd|' /C calc'!A0");
        assert_eq!(quote("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        for risky in ["+1", "-1+1", "@SUM(A1)", "\t=1", "-", "-inf", "-.5", "-1."] {
            assert!(
                quote(risky).trim_start_matches('"').starts_with('\''),
                "{risky}"
            );
        }
        assert_eq!(quote("\r=1"), "\"'\r=1\"");
        for number in ["-0.4", "-4", "12", "3.25"] {
            assert_eq!(quote(number), number);
        }
    }
}
