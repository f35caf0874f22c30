//! XLSX (rust_xlsxwriter): one sheet per section, numbers stored as numbers (so the workbook
//! sums, sorts and charts without conversion), empty cells for "no value", and a native line
//! chart of the trend next to its data.

use rust_xlsxwriter::{Chart, ChartType, Format, Workbook, Worksheet, XlsxError};

use super::xlsx_labels::{fraction, is_percent, label, repeated};
use super::{Field, csi_fields, incident_fields, incident_levels};
use crate::report::alerts;
use crate::report::csi::{CsiReport, CsiStats};
use crate::report::incidents::{IncidentReport, IncidentStats};
use crate::report::scale::Scale;

/// One cell to write.
pub(super) enum Cell {
    Text(String),
    Number(f64),
    Flag(bool),
    Empty,
}

pub(super) fn t(s: impl Into<String>) -> Cell {
    Cell::Text(s.into())
}

pub(super) fn n(x: impl Into<f64>) -> Cell {
    Cell::Number(x.into())
}

pub(super) fn o(x: Option<f64>) -> Cell {
    x.map(Cell::Number).unwrap_or(Cell::Empty)
}

/// Rows of one sheet, header first (bold, frozen): column names in words, percentages as
/// percent cells, columns empty in every row left out, and a "none" row for an empty
/// section. A `["field", "value"]` sheet names each row instead. Returns the columns kept.
pub(super) fn sheet(
    book: &mut Workbook,
    name: &str,
    header: &[&str],
    rows: Vec<Vec<Cell>>,
    scale: &Scale,
) -> Result<Vec<String>, XlsxError> {
    let bold = Format::new().set_bold();
    let percent = Format::new().set_num_format("0.0%");
    let summary = header == ["field", "value"];
    let keep: Vec<usize> = (0..header.len())
        .filter(|&c| {
            summary
                || c == 0
                || rows.is_empty()
                || rows
                    .iter()
                    .any(|r| !matches!(r.get(c), None | Some(Cell::Empty)))
        })
        .collect();
    let ws: &mut Worksheet = book.add_worksheet();
    ws.set_name(name)?;
    for (c, &i) in keep.iter().enumerate() {
        ws.write_string_with_format(0, c as u16, label(header[i], scale), &bold)?;
        ws.set_column_width(c as u16, if c == 0 { 26 } else { 16 })?;
    }
    ws.set_freeze_panes(1, 0)?;
    if rows.is_empty() {
        ws.write_string(1, 0, "none")?;
    }
    for (r, row) in rows.into_iter().enumerate() {
        let r = r as u32 + 1;
        let row_name = match row.first() {
            Some(Cell::Text(s)) if summary => s.clone(),
            _ => String::new(),
        };
        let mut cells: Vec<Option<Cell>> = row.into_iter().map(Some).collect();
        for (c, &i) in keep.iter().enumerate() {
            let Some(cell) = cells.get_mut(i).and_then(Option::take) else {
                continue;
            };
            let c = c as u16;
            let pct = if summary {
                i == 1 && is_percent(&row_name)
            } else {
                is_percent(header[i])
            };
            match cell {
                Cell::Text(s) if summary && i == 0 => {
                    ws.write_string(r, c, label(&s, scale))?;
                }
                Cell::Text(s) => {
                    ws.write_string(r, c, s)?;
                }
                Cell::Number(x) if pct => {
                    ws.write_number_with_format(r, c, fraction(x), &percent)?;
                }
                Cell::Number(x) => {
                    ws.write_number(r, c, x)?;
                }
                Cell::Flag(b) => {
                    ws.write_boolean(r, c, b)?;
                }
                Cell::Empty => {}
            }
        }
    }
    Ok(keep.iter().map(|&i| header[i].to_owned()).collect())
}

/// The value axis of a trend chart: its title, and the fixed range of a score scale (a count
/// starts at 0 and grows with the data).
pub(super) struct Axis<'a> {
    pub title: &'a str,
    pub scores: Option<&'a Scale>,
}

/// A line chart of the `series` columns (by field name) of sheet `name` over `points` rows,
/// placed right of the data, on `axis`.
pub(super) fn trend_chart(
    book: &mut Workbook,
    name: &str,
    columns: &[String],
    points: u32,
    series: &[&str],
    title: &str,
    axis: Axis,
) -> Result<(), XlsxError> {
    if points == 0 {
        return Ok(());
    }
    let mut chart = Chart::new(ChartType::Line);
    let mut charted = 0;
    for field in series {
        // A column left out as empty in every row has nothing to chart.
        let Some(col) = columns.iter().position(|c| c == field) else {
            continue;
        };
        charted += 1;
        let col = col as u16;
        chart
            .add_series()
            .set_name(label(field, axis.scores.unwrap_or(&Scale::default())).as_str())
            .set_categories((name, 1, 0, points, 0))
            .set_values((name, 1, col, points, col));
    }
    if charted == 0 {
        return Ok(());
    }
    chart.title().set_name(title);
    chart.x_axis().set_name("Period");
    let y = chart.y_axis().set_name(axis.title);
    match axis.scores {
        Some(scale) => y.set_min(scale.min).set_max(scale.max),
        None => y.set_min(0),
    };
    chart.set_width(720).set_height(360);
    let ws = book.worksheet_from_name(name)?;
    ws.insert_chart(1, columns.len() as u16 + 1, &chart)?;
    Ok(())
}

/// The CSI columns: the key, then [`csi_fields`]'s (the same for any row) but the ones
/// [`repeated`] under the scale's words.
fn csi_header(any_row: &CsiStats, scale: &Scale) -> Vec<String> {
    let mut header = vec!["key".to_owned()];
    header.extend(
        (csi_fields(any_row, None, &scale.kind).into_iter())
            .map(|(name, _)| name)
            .filter(|name| !repeated(name, scale)),
    );
    header
}

fn csi_row(key: &str, s: &CsiStats, rank: Option<u32>, scale: &Scale) -> Vec<Cell> {
    let mut row = vec![t(key)];
    row.extend(
        (csi_fields(s, rank, &scale.kind).into_iter())
            .filter(|(name, _)| !repeated(name, scale))
            .map(|(_, field)| match field {
                Field::Number(x) => o(x),
                Field::Flag(b) => Cell::Flag(b),
            }),
    );
    row
}

/// A CSI report's sheets.
pub fn csi(book: &mut Workbook, r: &CsiReport) -> Result<(), XlsxError> {
    let (s, scale) = (&r.total, &r.scale);
    let mut summary = vec![
        vec![t("from"), t(&r.from)],
        vec![t("to"), t(&r.to)],
        vec![t("by"), t(&r.by)],
        vec![t("timezone"), t(&r.timezone)],
        vec![t("flow"), t(&r.flow)],
        vec![
            t("scale"),
            t(format!("{} {}–{}", scale.kind, scale.min, scale.max)),
        ],
        vec![t("surveys_sent"), n(s.surveys_sent as f64)],
        vec![t("delivered"), n(s.delivered as f64)],
        vec![t("responses"), n(s.responses as f64)],
        vec![t("response_rate"), o(s.response_rate)],
        vec![t("average"), o(s.average)],
        vec![t("ci95_low"), o(s.ci95.map(|c| c[0]))],
        vec![t("ci95_high"), o(s.ci95.map(|c| c[1]))],
    ];
    if let Some(nps) = s.nps {
        summary.extend([
            vec![t("nps"), n(nps)],
            vec![t("nps_ci95_low"), o(s.nps_ci95.map(|c| c[0]))],
            vec![t("nps_ci95_high"), o(s.nps_ci95.map(|c| c[1]))],
            vec![t("promoters_pct"), o(s.promoters_pct)],
            vec![t("passives_pct"), o(s.passives_pct)],
            vec![t("detractors_pct"), o(s.detractors_pct)],
        ]);
    }
    summary.extend([
        vec![t("positive_pct"), o(s.positive_pct)],
        vec![t("negative_pct"), o(s.negative_pct)],
    ]);
    if scale.kind == "ces" {
        summary.push(vec![t("easy_pct"), o(s.easy_pct)]);
    }
    summary.retain(|row| !matches!(&row[..], [Cell::Text(field), _] if repeated(field, scale)));
    summary.extend([
        vec![
            t("previous_average"),
            o(s.previous.as_ref().and_then(|p| p.average)),
        ],
        vec![
            t("change_average"),
            o(s.change.as_ref().and_then(|c| c.average)),
        ],
        vec![t("confidence_interval"), t(&r.confidence_interval)],
    ]);
    for (score, count) in s.distribution.0.iter() {
        summary.push(vec![t(format!("score_{score}")), n(count as f64)]);
    }
    sheet(book, "Summary", &["field", "value"], summary, scale)?;
    let header = csi_header(&r.total, scale);
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    sheet(
        book,
        "Groups",
        &header,
        (r.groups.iter())
            .map(|g| csi_row(&g.key, &g.stats, g.rank, scale))
            .collect(),
        scale,
    )?;
    let columns = sheet(
        book,
        "Trend",
        &header,
        (r.trend.iter())
            .map(|g| csi_row(&g.key, &g.stats, None, scale))
            .collect(),
        scale,
    )?;
    trend_chart(
        book,
        "Trend",
        &columns,
        r.trend.len() as u32,
        &["average"],
        &format!("Average score by {}", r.trend_period),
        Axis {
            title: &format!("Average score ({}–{})", scale.min, scale.max),
            scores: Some(scale),
        },
    )?;
    let c = &r.comments;
    let mut rows = Vec::new();
    for (polarity, negative, terms, bigrams, examples) in [
        (
            "negative",
            true,
            &c.negative_terms,
            &c.negative_bigrams,
            &c.negative_examples,
        ),
        (
            "positive",
            false,
            &c.positive_terms,
            &c.positive_bigrams,
            &c.positive_examples,
        ),
    ] {
        for (kind, list) in [("term", terms), ("phrase", bigrams)] {
            for (term, count) in list {
                let mut row = vec![
                    t(polarity),
                    t(kind),
                    t(term),
                    t(c.word(negative, term)),
                    n(*count as f64),
                ];
                if let Some(e) = examples.get(term) {
                    row.extend(e.comments.iter().map(t));
                }
                rows.push(row);
            }
        }
    }
    let mut findings = Vec::new();
    for (kind, list) in [("problem", &c.problems), ("praise", &c.praise)] {
        for f in list {
            let mut row = vec![
                t(kind),
                t(&f.term),
                t(&f.lemma),
                n(f.count as f64),
                n(f.share),
            ];
            row.extend(f.examples.iter().map(t));
            findings.push(row);
        }
    }
    sheet(
        book,
        "Problems and praise",
        &[
            "finding",
            "term",
            "lemma",
            "comments",
            "share_pct",
            "example_1",
            "example_2",
            "example_3",
        ],
        findings,
        scale,
    )?;
    sheet(
        book,
        "Outcomes",
        &["outcome", "surveys"],
        (r.outcomes.rows().into_iter())
            .map(|(name, count)| vec![t(name), n(count as f64)])
            .collect(),
        scale,
    )?;
    sheet(
        book,
        "Comments",
        &[
            "polarity",
            "kind",
            "term",
            "word",
            "comments",
            "example_1",
            "example_2",
            "example_3",
        ],
        rows,
        scale,
    )?;
    sheet(
        book,
        "Anomalies",
        &[
            "key",
            "dimension",
            "period",
            "average",
            "baseline",
            "responses",
            "baseline_responses",
            "lower_limit",
            "z",
        ],
        r.anomalies
            .iter()
            .map(|a| {
                vec![
                    t(&a.key),
                    t(&a.dimension),
                    t(&a.period),
                    n(a.average),
                    n(a.baseline),
                    n(a.responses as f64),
                    n(a.baseline_responses as f64),
                    n(a.lower_limit),
                    o(a.z),
                ]
            })
            .collect(),
        scale,
    )?;
    Ok(())
}

fn incident_row(key: &str, s: &IncidentStats, levels: u32) -> Vec<Cell> {
    let mut row = vec![t(key)];
    row.extend(incident_fields(s, levels).into_iter().map(|(_, f)| cell(f)));
    row
}

fn cell(field: Field) -> Cell {
    match field {
        Field::Number(x) => o(x),
        Field::Flag(b) => Cell::Flag(b),
    }
}

/// An incident report's sheets.
pub fn incidents(book: &mut Workbook, r: &IncidentReport) -> Result<(), XlsxError> {
    // No survey scale: the incident columns have no scale words.
    let none = Scale::default();
    let levels = incident_levels(r);
    let mut header = vec!["key".to_owned()];
    header.extend(
        incident_fields(&r.total, levels)
            .into_iter()
            .map(|(name, _)| name),
    );
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    let mut summary = vec![
        vec![t("from"), t(&r.from)],
        vec![t("to"), t(&r.to)],
        vec![t("by"), t(&r.by)],
        vec![t("timezone"), t(&r.timezone)],
    ];
    let total = incident_row("total", &r.total, levels);
    for (name, cell) in header.iter().zip(total).skip(1) {
        summary.push(vec![t(*name), cell]);
    }
    sheet(book, "Summary", &["field", "value"], summary, &none)?;
    sheet(
        book,
        "Groups",
        &header,
        r.groups
            .iter()
            .map(|g| incident_row(&g.key, &g.stats, levels))
            .collect(),
        &none,
    )?;
    let columns = sheet(
        book,
        "Trend",
        &header,
        r.trend
            .iter()
            .map(|g| incident_row(&g.key, &g.stats, levels))
            .collect(),
        &none,
    )?;
    trend_chart(
        book,
        "Trend",
        &columns,
        r.trend.len() as u32,
        &["incidents", "escalated"],
        &format!("Staff calls by {}", r.trend_period),
        Axis {
            title: "Calls",
            scores: None,
        },
    )?;
    sheet(
        book,
        "By level",
        &[
            "level",
            "acknowledged",
            "median_ack_seconds",
            "p90_ack_seconds",
        ],
        (r.levels.iter())
            .map(|l| {
                vec![
                    n(l.level),
                    n(l.acknowledged as f64),
                    o(l.median_ack_seconds),
                    o(l.p90_ack_seconds),
                ]
            })
            .collect(),
        &none,
    )?;
    sheet(
        book,
        "Staff",
        &[
            "staff",
            "acknowledged",
            "median_ack_seconds",
            "p90_ack_seconds",
        ],
        (r.staff.iter())
            .map(|p| {
                vec![
                    t(&p.staff),
                    n(p.acknowledged as f64),
                    o(p.median_ack_seconds),
                    o(p.p90_ack_seconds),
                ]
            })
            .collect(),
        &none,
    )?;
    if !r.alert_recipients.is_empty() {
        let header: Vec<&str> = std::iter::once("msisdn").chain(alerts::FIGURES).collect();
        sheet(
            book,
            "Alert recipients",
            &header,
            (r.alert_recipients.iter())
                .map(|p| {
                    std::iter::once(t(&p.msisdn))
                        .chain(p.figures().map(o))
                        .collect()
                })
                .collect(),
            &none,
        )?;
    }
    let count = |x: Option<u64>| o(x.map(|x| x as f64));
    sheet(
        book,
        "Unacknowledged",
        &[
            "at",
            "conversation",
            "id",
            "button",
            "location",
            "levels_tried",
            "rounds",
        ],
        (r.unacknowledged_calls.iter())
            .map(|c| {
                vec![
                    t(&c.at),
                    n(c.conversation as f64),
                    t(&c.id),
                    t(&c.button),
                    t(&c.location),
                    count(c.levels_tried),
                    count(c.rounds),
                ]
            })
            .collect(),
        &none,
    )?;
    sheet(
        book,
        "Time to ack",
        &["bucket", "from_seconds", "to_seconds", "acknowledged"],
        r.ack_histogram
            .iter()
            .map(|b| {
                vec![
                    t(&b.label),
                    n(b.from_seconds),
                    o(b.to_seconds),
                    n(b.count as f64),
                ]
            })
            .collect(),
        &none,
    )?;
    Ok(())
}
