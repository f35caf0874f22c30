//! The service quality audit as a terminal table, CSV and XLSX (its HTML is in
//! `html_audit.rs`): the same figures in each, the columns of `fields` in one order.

use std::fmt::Write;

use rust_xlsxwriter::{Workbook, XlsxError};

use super::csv::{opt, row};
use super::table::{Align, WIDTH, line};
use super::xlsx::{Axis, Cell, n, o, sheet, t, trend_chart};
use super::{Field, duration, num};
use crate::report::audit::{AuditReport, AuditStats};
use crate::report::scale::Scale;

/// The audit columns of one row after its key, in the order CSV and XLSX write them.
pub(crate) fn fields(s: &AuditStats) -> Vec<(&'static str, Field)> {
    let count = |n: u64| Field::Number(Some(n as f64));
    vec![
        ("presses", count(s.presses)),
        ("complaints", count(s.complaints)),
        ("manager_calls", count(s.manager_calls)),
        ("answered", count(s.answered)),
        ("not_answered", count(s.not_answered)),
        ("open", count(s.open)),
        ("cancelled", count(s.cancelled)),
        ("answered_pct", Field::Number(s.answered_pct)),
        (
            "median_answer_seconds",
            Field::Number(s.median_answer_seconds),
        ),
        ("p90_answer_seconds", Field::Number(s.p90_answer_seconds)),
    ]
}

/// Hours of the heat map's columns: `h00` … `h23`.
fn hours() -> impl Iterator<Item = String> {
    (0..24).map(|h| format!("h{h:02}"))
}

pub fn table(r: &AuditReport) -> String {
    use Align::*;
    let mut out = String::new();
    let s = &r.total;
    let _ = writeln!(
        out,
        "Service quality audit {} .. {} ({}), by {}",
        r.from, r.to, r.timezone, r.by
    );
    let _ = writeln!(
        out,
        "  presses {}: complaints {} (no call), manager calls {}",
        s.presses, s.complaints, s.manager_calls
    );
    let _ = writeln!(
        out,
        "  calls answered {} ({} %), not answered {}, ringing now {}, cancelled at the button {}",
        s.answered,
        num(s.answered_pct, 1),
        s.not_answered,
        s.open,
        s.cancelled
    );
    let _ = writeln!(
        out,
        "  time until the manager came: median {}, p90 {}",
        duration(s.median_answer_seconds),
        duration(s.p90_answer_seconds)
    );
    let _ = writeln!(out);
    let head = |t: &str, w, a| (t.to_owned(), w, a);
    let widths = [
        head(&r.by, 26, Left),
        head("presses", 7, Right),
        head("complaints", 10, Right),
        head("calls", 6, Right),
        head("answered", 8, Right),
        head("no answer", 9, Right),
        head("ringing", 7, Right),
        head("median", 8, Right),
        head("p90", 8, Right),
    ];
    let _ = writeln!(out, "{}", line(&widths));
    for g in &r.groups {
        let s = &g.stats;
        let cells = [
            g.key.clone(),
            s.presses.to_string(),
            s.complaints.to_string(),
            s.manager_calls.to_string(),
            s.answered.to_string(),
            s.not_answered.to_string(),
            s.open.to_string(),
            duration(s.median_answer_seconds),
            duration(s.p90_answer_seconds),
        ];
        let row: Vec<(String, usize, Align)> = (cells.into_iter().zip(&widths))
            .map(|(c, (_, w, a))| (c, *w, *a))
            .collect();
        let _ = writeln!(out, "{}", line(&row));
    }
    if r.groups.is_empty() {
        let _ = writeln!(out, "(no presses in this range)");
    }
    let _ = writeln!(out, "\nComplaints by hour ({}; . = none)", r.timezone);
    let mut header = "     ".to_owned();
    for h in 0..24 {
        let _ = write!(header, "{h:>3}");
    }
    let _ = writeln!(out, "{header}");
    for day in &r.heatmap {
        let mut l = format!("{:<5}", day.weekday);
        for n in &day.complaints {
            let cell = if *n == 0 {
                ".".to_owned()
            } else {
                n.to_string()
            };
            let _ = write!(l, "{cell:>3}");
        }
        let _ = writeln!(out, "{l}");
    }
    debug_assert!(out.lines().all(|l| l.chars().count() <= WIDTH));
    out
}

fn cells(key: &str, s: &AuditStats) -> Vec<String> {
    let mut out = vec![key.to_owned()];
    out.extend(fields(s).into_iter().map(|(_, f)| match f {
        Field::Number(x) => opt(x),
        Field::Flag(b) => b.to_string(),
    }));
    out
}

/// The total and group rows, then the heat map (a row per weekday and kind, a column per hour).
pub fn csv(out: &mut String, r: &AuditReport) {
    let mut header = vec!["from".to_owned(), "to".to_owned(), r.by.clone()];
    header.extend(
        fields(&r.total)
            .into_iter()
            .map(|(name, _)| name.to_owned()),
    );
    row(out, header);
    let range = [r.from.clone(), r.to.clone()];
    row(out, range.iter().cloned().chain(cells("total", &r.total)));
    for g in &r.groups {
        row(out, range.iter().cloned().chain(cells(&g.key, &g.stats)));
    }
    out.push_str("\r\n");
    let head = ["weekday", "presses"].map(str::to_owned);
    row(out, head.into_iter().chain(hours()));
    for day in &r.heatmap {
        for (kind, counts) in [
            ("complaints", &day.complaints),
            ("manager_calls", &day.manager_calls),
        ] {
            let values = counts.iter().map(|n| n.to_string());
            row(
                out,
                [day.weekday.clone(), kind.to_owned()]
                    .into_iter()
                    .chain(values),
            );
        }
    }
}

fn xlsx_row(key: &str, s: &AuditStats) -> Vec<Cell> {
    let mut row = vec![t(key)];
    row.extend(fields(s).into_iter().map(|(_, f)| match f {
        Field::Number(x) => o(x),
        Field::Flag(b) => Cell::Flag(b),
    }));
    row
}

/// Summary, groups, the trend with a chart, and the heat maps of complaints and of calls.
pub fn xlsx(book: &mut Workbook, r: &AuditReport) -> Result<(), XlsxError> {
    let none = Scale::default();
    let mut header = vec!["key"];
    header.extend(fields(&r.total).into_iter().map(|(name, _)| name));
    let mut summary = vec![
        vec![t("from"), t(&r.from)],
        vec![t("to"), t(&r.to)],
        vec![t("by"), t(&r.by)],
        vec![t("timezone"), t(&r.timezone)],
    ];
    for (name, cell) in header.iter().zip(xlsx_row("total", &r.total)).skip(1) {
        summary.push(vec![t(*name), cell]);
    }
    sheet(book, "Summary", &["field", "value"], summary, &none)?;
    let groups = r
        .groups
        .iter()
        .map(|g| xlsx_row(&g.key, &g.stats))
        .collect();
    sheet(book, "Groups", &header, groups, &none)?;
    let trend = r.trend.iter().map(|g| xlsx_row(&g.key, &g.stats)).collect();
    let columns = sheet(book, "Trend", &header, trend, &none)?;
    trend_chart(
        book,
        "Trend",
        &columns,
        r.trend.len() as u32,
        &["complaints", "manager_calls"],
        &format!("Presses by {}", r.trend_period),
        Axis {
            title: "Presses",
            scores: None,
        },
    )?;
    let hour_names: Vec<String> = hours().collect();
    let mut by_hour = vec!["weekday"];
    by_hour.extend(hour_names.iter().map(String::as_str));
    for (name, of) in [("Complaints by hour", 0), ("Manager calls by hour", 1)] {
        let rows = (r.heatmap.iter())
            .map(|day| {
                let counts = if of == 0 {
                    &day.complaints
                } else {
                    &day.manager_calls
                };
                std::iter::once(t(&day.weekday))
                    .chain(counts.iter().map(|c| n(*c as f64)))
                    .collect()
            })
            .collect();
        sheet(book, name, &by_hour, rows, &none)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::audit::{AuditData, compute};
    use crate::report::query::{Kind, Query};
    use crate::store::Incident;
    use jiff::tz::TimeZone;
    use serde_json::json;

    fn report() -> AuditReport {
        // Monday 2026-11-23, 19:00 and 19:30 in Tashkent.
        let at = 1_795_442_400_000;
        let record = |n: u64, at: i64, fields: serde_json::Value| Incident {
            conversation: n,
            at,
            updated_at: at,
            fields,
        };
        let records = [
            record(
                1,
                at,
                json!({"kind": "complaint", "state": "closed", "location": "зал 1, у окна", "button": "Стол 12"}),
            ),
            record(
                2,
                at + 1_800_000,
                json!({"kind": "manager_call", "state": "closed", "location": "зал 1, у окна",
                "button": "Стол 12", "acknowledged": true, "ack_seconds": 95.0}),
            ),
        ];
        let today = jiff::civil::date(2026, 11, 30);
        let query = Query::parse(Kind::Audit, None, None, None, today).unwrap();
        let zone = TimeZone::get("Asia/Tashkent").unwrap();
        compute(&query, &zone, &AuditData::from_incidents(&records))
    }

    #[test]
    fn every_format_carries_the_same_figures() {
        let r = report();
        let text = table(&r);
        assert!(text.lines().all(|l| l.chars().count() <= WIDTH), "{text}");
        assert!(
            text.contains("complaints 1 (no call), manager calls 1"),
            "{text}"
        );
        assert!(text.contains("median 1m 35s"), "{text}");
        let monday = text.lines().find(|l| l.starts_with("Mon")).unwrap();
        assert_eq!(
            monday.split_whitespace().filter(|c| *c == "1").count(),
            1,
            "{monday}"
        );

        let mut out = String::new();
        csv(&mut out, &r);
        let lines: Vec<&str> = out.lines().collect();
        assert!(lines[0].starts_with("from,to,location,presses,complaints,manager_calls"));
        assert!(
            lines[1].contains(",total,2,1,1,1,0,0,0,100,95,95"),
            "{}",
            lines[1]
        );
        assert!(
            lines[2].contains(",\"зал 1, у окна\",2,1,1"),
            "{}",
            lines[2]
        );
        let heat = lines
            .iter()
            .position(|l| l.starts_with("weekday,presses,h00"))
            .unwrap();
        let complaints: Vec<&str> = lines[heat + 1].split(',').collect();
        assert_eq!(
            (complaints[0], complaints[1], complaints[2 + 19]),
            ("Mon", "complaints", "1")
        );

        let mut book = Workbook::new();
        xlsx(&mut book, &r).unwrap();
        assert!(book.save_to_buffer().unwrap().starts_with(b"PK"));

        let mut html = String::new();
        super::super::html_audit::section(&mut html, &r);
        assert!(html.contains("Mon 19:00–20:00: 1 complaint<"), "{html}");
        assert!(
            html.contains("<td>зал 1, у окна</td><td>2</td><td>1</td><td>1</td><td>1</td>"),
            "{html}"
        );
    }
}
