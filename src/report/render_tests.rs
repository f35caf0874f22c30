//! The reports rendered: every format of the same report carries the same numbers (JSON,
//! table, CSV, XLSX, HTML), at scale (100 000 ratings, from the store and from its tallies),
//! and on the CES scale. The data sets are `tests.rs`'.

use jiff::civil::date;

use super::csi::{self, CsiOptions};
use super::query::{Grouping, Kind, Query, day_start};
use super::render::{self, Format};
use super::{CsiData, Report};
use crate::store::Rating;

use super::tests::{HOUR, csi_of, incidents, november, pattern, rating, zone};

fn full_report() -> Report {
    Report::Csi(Box::new(csi_of(&pattern(), &november(Grouping::Operator))))
}

#[test]
fn json_round_trips_through_the_http_shape() {
    let report = full_report();
    let text = String::from_utf8(render::render(&report, Format::Json).unwrap()).unwrap();
    let back = Report::from_json(Kind::Csi, &text).unwrap();
    assert_eq!(back, report);
}

#[test]
fn table_fits_100_columns() {
    let q = Query {
        kind: Kind::Incidents,
        ..november(Grouping::Location)
    };
    let incidents = Report::Incidents(Box::new(super::incidents::compute(
        &q,
        &zone(),
        &incidents(),
    )));
    for report in [full_report(), incidents] {
        let text = String::from_utf8(render::render(&report, Format::Table).unwrap()).unwrap();
        for line in text.lines() {
            assert!(
                line.chars().count() <= 100,
                "{} > 100: {line}",
                line.chars().count()
            );
        }
        assert!(text.lines().count() > 8, "{text}");
    }
    let text = String::from_utf8(render::render(&full_report(), Format::Table).unwrap()).unwrap();
    assert!(text.contains("op-11"), "{text}");
    assert!(text.contains("долго (36)"), "{text}");
    assert!(text.contains("operator op-17 2026-11-21"), "{text}");
}

#[test]
fn csv_has_a_total_row_and_one_row_per_group() {
    let text = String::from_utf8(render::render(&full_report(), Format::Csv).unwrap()).unwrap();
    // A byte order mark, so Excel reads the Cyrillic right.
    let text = text.strip_prefix('\u{feff}').expect("a BOM");
    let lines: Vec<&str> = text.lines().take_while(|l| !l.is_empty()).collect();
    assert_eq!(lines.len(), 1 + 1 + 6);
    assert!(lines[0].starts_with("from,to,operator,surveys_sent,delivered,responses,"));
    assert!(
        lines[1].starts_with("2026-11-01,2026-11-30,total,1203,1053,903,75.1,4.05,"),
        "{}",
        lines[1]
    );
    assert!(
        lines[2].starts_with("2026-11-01,2026-11-30,op-11,240,210,180,75,4.67,4.6,4.74,"),
        "{}",
        lines[2]
    );
}

#[test]
fn xlsx_reads_back_as_a_workbook_with_numbers_and_a_chart() {
    use calamine::{Data, Reader, Xlsx, open_workbook_from_rs};
    let bytes = render::render(&full_report(), Format::Xlsx).unwrap();
    let mut book: Xlsx<_> = open_workbook_from_rs(std::io::Cursor::new(bytes.clone())).unwrap();
    assert_eq!(
        book.sheet_names(),
        [
            "Summary",
            "Groups",
            "Trend",
            "Problems and praise",
            "Outcomes",
            "Comments",
            "Anomalies"
        ]
    );
    let groups = book.worksheet_range("Groups").unwrap();
    // Headers in words.
    let header: Vec<String> = (groups.rows().next().unwrap().iter())
        .map(|c| c.to_string())
        .collect();
    assert_eq!(
        header[..5],
        [
            "Key",
            "Surveys sent",
            "Delivered",
            "Responses",
            "Response rate, %"
        ]
    );
    assert!(header.contains(&"95% CI low".to_owned()), "{header:?}");
    // Percentages are fractions with a percent format: 75 % is 0.75.
    assert_eq!(groups.get_value((1, 4)), Some(&Data::Float(0.75)));
    let styles = zip_entry(&bytes, "xl/styles.xml");
    assert!(styles.contains("formatCode=\"0.0%\""), "{styles}");
    assert_eq!(
        groups.get_value((1, 0)),
        Some(&Data::String("op-11".into()))
    );
    // Numbers are numbers, not text.
    assert_eq!(groups.get_value((1, 3)), Some(&Data::Float(180.0)));
    assert_eq!(groups.get_value((1, 5)), Some(&Data::Float(4.67)));
    let summary = book.worksheet_range("Summary").unwrap();
    let value = |field: &str| {
        summary
            .rows()
            .find(|row| row[0] == Data::String(field.into()))
            .map(|row| row[1].clone())
    };
    assert_eq!(value("Responses"), Some(Data::Float(903.0)));
    assert_eq!(value("Positive (4–5), %"), Some(Data::Float(0.794)));
    assert_eq!(value("Average"), Some(Data::Float(4.05)));
    let trend = book.worksheet_range("Trend").unwrap();
    assert_eq!(trend.height(), 31);
    // No column that is empty in every row (a trend point has no rank or previous period).
    let width = trend.width();
    for c in 0..width {
        assert!(
            (1..trend.height()).any(|r| !matches!(trend.get((r, c)), None | Some(Data::Empty))),
            "column {c} of Trend is empty"
        );
    }
    // The chart has axis titles and the 1–5 scale.
    let chart = zip_entry(&bytes, "xl/charts/chart1.xml");
    assert!(
        chart.contains("Average score") && chart.contains("<c:max val=\"5\"/>"),
        "{chart}"
    );
    let anomalies = book.worksheet_range("Anomalies").unwrap();
    assert_eq!(
        anomalies.get_value((1, 0)),
        Some(&Data::String("op-17".into()))
    );
    let comments = book.worksheet_range("Comments").unwrap();
    assert_eq!(
        comments.get_value((1, 3)),
        Some(&Data::String("долго".into()))
    );
    // The trend chart is a part of the package (zip entry names are stored in clear).
    let needle = b"xl/charts/chart1.xml";
    assert!(bytes.windows(needle.len()).any(|w| w == needle));
}

#[test]
fn html_is_self_contained_with_svg_charts() {
    let q = Query {
        kind: Kind::Incidents,
        ..november(Grouping::Location)
    };
    let inc = super::incidents::compute(&q, &zone(), &incidents());
    let Report::Csi(csi) = full_report() else {
        unreachable!("full_report is a CSI report")
    };
    let page = render::html::page(Some(&csi), Some(&inc), &Default::default());
    assert!(page.starts_with("<!doctype html>"));
    // Trend, CSAT %, distribution, per operator, calls per day, time to ack, levels.
    assert_eq!(page.matches("<svg").count(), 7, "seven charts");
    for external in [
        "http://", "https://", "url(", "<script", "<link", "src=", "@import",
    ] {
        assert!(!page.contains(external), "{external} in the page");
    }
    assert!(page.contains("op-17"));
    assert!(page.contains("терапевтическое отделение"));
    assert!(page.contains("<polyline"), "the trend line");
    // Text from comments is escaped.
    let mut data = pattern();
    data.ratings.push(rating(
        day_start(&zone(), date(2026, 11, 30)) + HOUR,
        1,
        "<b>op</b>",
        "call",
        "долго <script>alert(1)</script>",
    ));
    let r = csi_of(&data, &november(Grouping::Operator));
    let page = render::html::page(Some(&r), None, &Default::default());
    assert!(!page.contains("<script"));
    assert!(page.contains("&lt;b&gt;op&lt;/b&gt;"));
}

/// The sections a manager acts on are in every format: problems and praise and outcomes
/// (CSI), levels, staff and unacknowledged calls (incidents).
#[test]
fn every_format_carries_the_analysis_sections() {
    use calamine::{Reader, Xlsx, open_workbook_from_rs};
    let q = Query {
        kind: Kind::Incidents,
        ..november(Grouping::Location)
    };
    let inc = super::incidents::compute(&q, &zone(), &incidents());
    let Report::Csi(csi) = full_report() else {
        unreachable!("full_report is a CSI report")
    };
    assert!(
        !csi.comments.problems.is_empty(),
        "the pattern has complaints"
    );
    let problem = csi.comments.problems[0].term.clone();
    assert!(inc.total.unacknowledged > 0 && !inc.staff.is_empty() && !inc.levels.is_empty());
    let incidents_report = Report::Incidents(Box::new(inc.clone()));
    let csi_report = Report::Csi(csi.clone());
    let text = |r: &Report, f| String::from_utf8(render::render(r, f).unwrap()).unwrap();

    let json: serde_json::Value = serde_json::from_str(&text(&csi_report, Format::Json)).unwrap();
    assert_eq!(json["comments"]["problems"][0]["term"], problem.as_str());
    assert!(json["outcomes"]["rated"].is_u64());
    assert!(
        json["comments"]["negative_terms"].is_array(),
        "the old keys stay"
    );
    let json: serde_json::Value =
        serde_json::from_str(&text(&incidents_report, Format::Json)).unwrap();
    assert!(json["unacknowledged_calls"].is_array() && json["staff"].is_array());

    let table = text(&csi_report, Format::Table);
    assert!(
        table.contains("Problems:") && table.contains(&problem),
        "{table}"
    );
    assert!(table.contains("Outcomes of the"), "{table}");
    let table = text(&incidents_report, Format::Table);
    assert!(table.contains("Unacknowledged calls:") && table.contains("Acknowledged by:"));

    let csv = text(&csi_report, Format::Csv);
    assert!(csv.contains("\r\noutcome,count\r\n") && csv.contains(&format!("problem,{problem}")));
    let csv = text(&incidents_report, Format::Csv);
    assert!(csv.contains("\r\nstaff,acknowledged,") && csv.contains("\r\nunacknowledged_at,"));

    let page = render::html::page(Some(&csi), Some(&inc), &Default::default());
    assert!(page.contains("Problems · of") && page.contains("How the "));
    assert!(page.contains("Unacknowledged calls:") && page.contains("Acknowledged by"));

    let bytes = render::render(&incidents_report, Format::Xlsx).unwrap();
    let book: Xlsx<_> = open_workbook_from_rs(std::io::Cursor::new(bytes)).unwrap();
    for sheet in ["By level", "Staff", "Unacknowledged"] {
        assert!(book.sheet_names().iter().any(|s| s == sheet), "{sheet}");
    }
}

/// One file of an XLSX package, as text (the package is a zip).
fn zip_entry(bytes: &[u8], name: &str) -> String {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
    let mut file = archive.by_name(name).unwrap();
    let mut text = String::new();
    std::io::Read::read_to_string(&mut file, &mut text).unwrap();
    text
}

#[test]
fn an_empty_xlsx_section_says_none() {
    use calamine::{Data, Reader, Xlsx, open_workbook_from_rs};
    let empty = Report::Csi(Box::new(csi_of(
        &CsiData::default(),
        &november(Grouping::Operator),
    )));
    let bytes = render::render(&empty, Format::Xlsx).unwrap();
    let mut book: Xlsx<_> = open_workbook_from_rs(std::io::Cursor::new(bytes)).unwrap();
    for sheet in ["Groups", "Anomalies", "Problems and praise"] {
        let range = book.worksheet_range(sheet).unwrap();
        assert_eq!(
            range.get_value((1, 0)),
            Some(&Data::String("none".into())),
            "{sheet}"
        );
    }
}

/// The report of five CES answers on 1–7 (7, 6, 5, 2, 1) of a flow `effort`.
fn ces_report() -> csi::CsiReport {
    let t0 = day_start(&zone(), date(2026, 11, 10)) + HOUR;
    let ratings = [7u8, 6, 5, 2, 1]
        .iter()
        .enumerate()
        .map(|(i, s)| Rating {
            flow: "effort".into(),
            ..rating(t0 + i as i64, *s, "op-1", "call", "")
        })
        .collect();
    let options = CsiOptions {
        scale: crate::report::scale::Scale {
            kind: "ces".into(),
            min: 1,
            max: 7,
        },
        ..CsiOptions::default()
    };
    let data = CsiData {
        ratings,
        ..CsiData::default()
    };
    csi::compute(&november(Grouping::Operator), &zone(), &data, &options)
}

/// A CES survey's exports speak of easy and hard answers on 1–7, not of positive (4–5) ones;
/// its workbook's trend is on a 1–7 axis.
#[test]
fn a_ces_report_speaks_of_easy_and_hard_answers_in_every_format() {
    use calamine::{Data, Reader, Xlsx, open_workbook_from_rs};
    let r = ces_report();
    let report = Report::Csi(Box::new(r.clone()));

    let table = String::from_utf8(render::render(&report, Format::Table).unwrap()).unwrap();
    assert!(
        table.contains("easy (5-7) 60.0 %, hard (1-3) 40.0 %"),
        "{table}"
    );
    assert!(
        table.contains("easy%") && table.contains("hard%"),
        "{table}"
    );
    assert!(!table.contains("positive"), "{table}");

    let page = render::html::page(Some(&r), None, &Default::default());
    assert!(page.contains("Easy (5–7)") && page.contains("Hard (1–3)"));
    assert!(!page.contains("Positive ("), "CES has easy answers");

    let bytes = render::render(&report, Format::Xlsx).unwrap();
    let mut book: Xlsx<_> = open_workbook_from_rs(std::io::Cursor::new(bytes.clone())).unwrap();
    let summary = book.worksheet_range("Summary").unwrap();
    let rows: Vec<(String, Data)> = (summary.rows())
        .map(|row| (row[0].to_string(), row[1].clone()))
        .collect();
    let value = |field: &str| {
        rows.iter()
            .find(|(f, _)| f == field)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(value("Easy (5–7), %"), Some(Data::Float(0.6)));
    assert_eq!(value("Hard (1–3), %"), Some(Data::Float(0.4)));
    assert_eq!(
        rows.iter().filter(|(f, _)| f.starts_with("Easy")).count(),
        1,
        "one easy share: {rows:?}"
    );
    let chart = zip_entry(&bytes, "xl/charts/chart1.xml");
    assert!(
        chart.contains("<c:min val=\"1\"/>") && chart.contains("<c:max val=\"7\"/>"),
        "{chart}"
    );
}

#[test]
fn a_ces_survey_reports_the_share_of_easy_on_1_to_7() {
    let r = ces_report();
    assert_eq!(r.total.easy_pct, Some(60.0));
    assert_eq!(r.total.negative_pct, Some(40.0), "hard: 1–3");
    assert_eq!(
        r.total.distribution.scores().collect::<Vec<_>>(),
        [1, 2, 3, 4, 5, 6, 7]
    );
    assert_eq!(r.total.average, Some(4.2));
    assert!(r.total.nps.is_none());
    let doc = serde_json::to_value(&r).unwrap();
    assert_eq!(
        doc["scale"],
        serde_json::json!({"kind": "ces", "min": 1, "max": 7})
    );
}
