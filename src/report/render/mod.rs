//! The report formats: an aligned terminal table (fits 100 columns), CSV (the groups, one row
//! per group after a `total` row), JSON (the document itself), XLSX (a sheet per section with a
//! trend chart) and a self-contained HTML page with inline SVG charts (no external URL of any
//! kind, so it opens offline and from a file).

pub mod audit;
pub mod csv;
pub mod html;
mod html_analysis;
mod html_audit;
mod html_common;
mod html_form;
pub mod responses;
mod svg;
pub mod table;
pub mod xlsx;
mod xlsx_labels;

use super::Report;
use super::csi::CsiStats;
use super::incidents::{IncidentReport, IncidentStats};

/// `--format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Table,
    Csv,
    Json,
    Html,
    Xlsx,
}

impl Format {
    /// Binary formats are not written to a terminal.
    pub fn is_binary(self) -> bool {
        self == Format::Xlsx
    }
}

/// Why a report could not be rendered.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RenderError {
    #[error("cannot build the workbook: {0}")]
    Xlsx(#[from] rust_xlsxwriter::XlsxError),
    #[error("{0}")]
    Other(String),
}

/// `report` in `format`, as the bytes to write.
pub fn render(report: &Report, format: Format) -> Result<Vec<u8>, RenderError> {
    Ok(match format {
        Format::Table => match report {
            Report::Csi(r) => table::csi(r),
            Report::Incidents(r) => table::incidents(r),
            Report::Audit(r) => audit::table(r),
        }
        .into_bytes(),
        Format::Csv => {
            let mut out = csv::BOM.to_owned();
            match report {
                Report::Csi(r) => csv::csi(&mut out, r),
                Report::Incidents(r) => csv::incidents(&mut out, r),
                Report::Audit(r) => audit::csv(&mut out, r),
            }
            out.into_bytes()
        }
        Format::Json => {
            let mut s = serde_json::to_string_pretty(&report.to_json()).unwrap_or_default();
            s.push('\n');
            s.into_bytes()
        }
        Format::Html => {
            let (csi, incidents, audit) = match report {
                Report::Csi(r) => (Some(&**r), None, None),
                Report::Incidents(r) => (None, Some(&**r), None),
                Report::Audit(r) => (None, None, Some(&**r)),
            };
            let options = html::PageOptions {
                audit,
                ..html::PageOptions::default()
            };
            html::page(csi, incidents, &options).into_bytes()
        }
        Format::Xlsx => {
            let mut book = rust_xlsxwriter::Workbook::new();
            match report {
                Report::Csi(r) => xlsx::csi(&mut book, r)?,
                Report::Incidents(r) => xlsx::incidents(&mut book, r)?,
                Report::Audit(r) => audit::xlsx(&mut book, r)?,
            }
            book.save_to_buffer()?
        }
    })
}

/// `x` with `places` decimals, or `–` for no value.
pub(crate) fn num(x: Option<f64>, places: usize) -> String {
    match x {
        Some(x) => format!("{x:.places$}"),
        None => "–".to_owned(),
    }
}

/// A signed change (`+0.12`, `−3`), or blank.
pub(crate) fn signed(x: Option<f64>, places: usize) -> String {
    match x {
        Some(x) if x > 0.0 => format!("+{x:.places$}"),
        Some(x) if x < 0.0 => format!("−{:.places$}", -x),
        Some(_) => format!("{:.places$}", 0.0),
        None => String::new(),
    }
}

/// Seconds as `35 s`, `2m 05s`, `1h 02m`.
pub(crate) fn duration(seconds: Option<f64>) -> String {
    let Some(s) = seconds else {
        return "–".to_owned();
    };
    let s = s.round() as i64;
    match s {
        ..60 => format!("{s} s"),
        60..3600 => format!("{}m {:02}s", s / 60, s % 60),
        _ => format!("{}h {:02}m", s / 3600, (s % 3600) / 60),
    }
}

/// One value of a tabular report row: XLSX keeps numbers as numbers, CSV writes text.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Field {
    /// `None` is an empty cell ("no value").
    Number(Option<f64>),
    Flag(bool),
}

/// The CSI columns of one row (the total, a group or a trend period) after its key, in the
/// order CSV and XLSX both write them; XLSX charts `average`. A score column per score of
/// the scale (`score_0`..`score_10` for NPS), and the NPS or CES columns for those kinds.
pub(crate) fn csi_fields(s: &CsiStats, rank: Option<u32>, kind: &str) -> Vec<(String, Field)> {
    let count = |n: u64| Field::Number(Some(n as f64));
    let mut fields: Vec<(String, Field)> = vec![
        ("surveys_sent".into(), count(s.surveys_sent)),
        ("delivered".into(), count(s.delivered)),
        ("responses".into(), count(s.responses)),
        ("response_rate".into(), Field::Number(s.response_rate)),
        ("average".into(), Field::Number(s.average)),
        ("ci95_low".into(), Field::Number(s.ci95.map(|c| c[0]))),
        ("ci95_high".into(), Field::Number(s.ci95.map(|c| c[1]))),
        ("positive_pct".into(), Field::Number(s.positive_pct)),
        ("negative_pct".into(), Field::Number(s.negative_pct)),
    ];
    match kind {
        "nps" => fields.extend([
            ("nps".into(), Field::Number(s.nps)),
            (
                "nps_ci95_low".into(),
                Field::Number(s.nps_ci95.map(|c| c[0])),
            ),
            (
                "nps_ci95_high".into(),
                Field::Number(s.nps_ci95.map(|c| c[1])),
            ),
            ("promoters_pct".into(), Field::Number(s.promoters_pct)),
            ("passives_pct".into(), Field::Number(s.passives_pct)),
            ("detractors_pct".into(), Field::Number(s.detractors_pct)),
        ]),
        "ces" => fields.push(("easy_pct".into(), Field::Number(s.easy_pct))),
        _ => {}
    }
    for (score, n) in s.distribution.0.iter() {
        fields.push((format!("score_{score}"), count(n)));
    }
    fields.extend([
        (
            "insufficient_sample".into(),
            Field::Flag(s.insufficient_sample),
        ),
        ("rank".into(), Field::Number(rank.map(f64::from))),
        (
            "previous_average".into(),
            Field::Number(s.previous.as_ref().and_then(|p| p.average)),
        ),
        (
            "change_average".into(),
            Field::Number(s.change.as_ref().and_then(|c| c.average)),
        ),
        (
            "change_responses".into(),
            Field::Number(s.change.as_ref().map(|c| c.responses as f64)),
        ),
    ]);
    fields
}

/// How many `acknowledged_at_level_N` columns the incident rows need: the highest level any
/// row (total or group) was acknowledged at.
pub(crate) fn incident_levels(r: &IncidentReport) -> u32 {
    std::iter::once(&r.total)
        .chain(r.groups.iter().map(|g| &g.stats))
        .filter_map(|s| s.acknowledged_at_level.max_key())
        .max()
        .unwrap_or(0)
}

/// The incident columns of one row after its key, in the order CSV and XLSX both write them;
/// XLSX charts `incidents` (1st) and `escalated` (4th).
pub(crate) fn incident_fields(s: &IncidentStats, levels: u32) -> Vec<(String, Field)> {
    let count = |n: u64| Field::Number(Some(n as f64));
    let mut fields = vec![
        ("incidents", count(s.incidents)),
        ("acknowledged", count(s.acknowledged)),
        ("unacknowledged", count(s.unacknowledged)),
        ("open", count(s.open)),
        ("ringing", count(s.ringing)),
        ("cancelled", count(s.cancelled)),
        ("escalated", count(s.escalated)),
        ("acknowledged_pct", Field::Number(s.acknowledged_pct)),
        ("escalated_pct", Field::Number(s.escalated_pct)),
        ("median_ack_seconds", Field::Number(s.median_ack_seconds)),
        ("p90_ack_seconds", Field::Number(s.p90_ack_seconds)),
        ("max_ack_seconds", Field::Number(s.max_ack_seconds)),
        ("resolved", count(s.resolved)),
        (
            "median_resolve_seconds",
            Field::Number(s.median_resolve_seconds),
        ),
        ("p90_resolve_seconds", Field::Number(s.p90_resolve_seconds)),
    ]
    .into_iter()
    .map(|(name, field)| (name.to_owned(), field))
    .collect::<Vec<_>>();
    fields.extend((1..=levels).map(|l| {
        (
            format!("acknowledged_at_level_{l}"),
            count(s.acknowledged_at_level.get(l)),
        )
    }));
    fields
}
