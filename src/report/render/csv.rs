//! CSV: one header, a `total` row, then one row per group; numbers unformatted (`.` decimal
//! point), empty cells for "no value". Comments and anomalies are in the JSON, XLSX and HTML
//! formats: they do not fit one rectangular table.

use super::{Field, csi_fields, incident_fields, incident_levels};
use crate::report::Report;
use crate::report::csi::CsiStats;
use crate::report::incidents::IncidentStats;

pub fn render(report: &Report) -> String {
    let mut out = String::new();
    match report {
        Report::Csi(r) => {
            let mut header = vec![r.by.clone()];
            header.extend(
                csi_fields(&r.total, None)
                    .into_iter()
                    .map(|(name, _)| name.to_owned()),
            );
            row(&mut out, header);
            row(&mut out, csi_cells("total", &r.total, None));
            for g in &r.groups {
                row(&mut out, csi_cells(&g.key, &g.stats, g.rank));
            }
        }
        Report::Incidents(r) => {
            let levels = incident_levels(r);
            let mut header = vec![r.by.clone()];
            header.extend(
                incident_fields(&r.total, levels)
                    .into_iter()
                    .map(|(name, _)| name),
            );
            row(&mut out, header);
            row(&mut out, incident_cells("total", &r.total, levels));
            for g in &r.groups {
                row(&mut out, incident_cells(&g.key, &g.stats, levels));
            }
        }
    }
    out
}

fn opt(x: Option<f64>) -> String {
    x.map(|x| x.to_string()).unwrap_or_default()
}

fn csi_cells(key: &str, s: &CsiStats, rank: Option<u32>) -> Vec<String> {
    let mut cells = vec![key.to_owned()];
    cells.extend(
        csi_fields(s, rank)
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

/// One CSV record (RFC 4180 quoting), CRLF-terminated.
fn row(out: &mut String, cells: impl IntoIterator<Item = String>) {
    let cells: Vec<String> = cells.into_iter().map(|c| quote(&c)).collect();
    out.push_str(&cells.join(","));
    out.push_str("\r\n");
}

fn quote(cell: &str) -> String {
    if cell.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", cell.replace('"', "\"\""))
    } else {
        cell.to_owned()
    }
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
}
