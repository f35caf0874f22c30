//! Reports through the product's doors: the HTTP routes over a real socket
//! (`/api/v1/reports/csi`, `/api/v1/reports/incidents`, `/reports`) and `smsflow report` as a
//! process, reading the store directly or, when a running service holds it, asking that
//! service. Every test name contains `reports`, so `cargo test reports` selects them.

use std::path::Path;
use std::sync::Arc;

use serde_json::{Value, json};
use smsflow::flow::engine::{EngineConfig, FlowEngine};
use smsflow::http::{ApiState, serve};
use smsflow::report::{Kind, Report};
use smsflow::store::{
    Commit, Conversation, ConversationStatus, Direction, Incident, Rating, Store, TimelineEntry,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::Command;

use crate::http::raw;
use crate::util::TempDir;

const TOKEN: &str = "rep0rt-token";
/// 2026-11-21 12:00 in Tashkent (07:00 UTC).
const DAY: i64 = 1_795_244_400_000;
const RANGE: &str = "from=2026-11-01&to=2026-11-22";

fn zone() -> jiff::tz::TimeZone {
    jiff::tz::TimeZone::get("Asia/Tashkent").unwrap()
}

/// Six surveys (five delivered, one never sent) and five ratings of op-17/op-23, plus three
/// incidents: the numbers the tests expect.
fn seed(store: &Store) {
    let scores = [
        (5, "op-17", "Вежливый оператор"),
        (
            4,
            "op-17",
            "Оператор был вежлив, но долго пришлось ждать на линии.",
        ),
        (2, "op-23", "Очень долго ждать"),
        (1, "op-23", "долго, не дозвонился"),
        (5, "op-23", ""),
    ];
    for i in 0..6u64 {
        let id = 100 + i;
        let at = DAY + i as i64 * 60_000;
        let operator = if i < 2 { "op-17" } else { "op-23" };
        let mut commit = Commit {
            conversation: Some(Conversation {
                id,
                flow: "survey".into(),
                flow_version: "v1".into(),
                state: json!({"msisdn": format!("99890123456{i}"), "operator": operator,
                              "channel": "call"}),
                parties: vec![],
                status: ConversationStatus::Finished {
                    outcome: "rated".into(),
                },
                created_at: at,
                updated_at: at,
                ..Default::default()
            }),
            ..Commit::default()
        };
        // The sixth survey's question was suppressed (opted out): not sent.
        let status = match i {
            5 => "suppressed (opted out)",
            4 => "sent",
            _ => "delivered",
        };
        commit.timeline.push((
            id,
            TimelineEntry {
                at,
                direction: Direction::Out,
                party: format!("99890123456{i}"),
                text: "Спасибо за ваш звонок. Оцените...".into(),
                status: status.into(),
                message_id: Some(id),
            },
        ));
        if let Some((score, op, comment)) = scores.get(i as usize) {
            commit.ratings.push(Rating {
                conversation: id,
                flow: "survey".into(),
                at: at + 30_000,
                msisdn: format!("99890123456{i}"),
                score: *score,
                operator: (*op).into(),
                channel: "call".into(),
                comment: (*comment).into(),
            });
        }
        store.commit(commit).unwrap();
    }
    let incidents = [
        json!({"acknowledged": true, "level": 1, "escalated": false, "ack_seconds": 35.0,
               "location": "терапевтическое отделение", "button": "Палата 315"}),
        json!({"acknowledged": true, "level": 2, "escalated": true, "ack_seconds": 120.0,
               "location": "терапевтическое отделение", "button": "Палата 316"}),
        json!({"acknowledged": false, "level": null, "escalated": true, "ack_seconds": null,
               "location": "хирургия", "button": "Палата 204"}),
    ];
    for (i, fields) in incidents.into_iter().enumerate() {
        store
            .commit(Commit {
                incidents: vec![Incident {
                    conversation: 200 + i as u64,
                    at: DAY + i as i64 * 1000,
                    updated_at: 0,
                    fields,
                }],
                ..Commit::default()
            })
            .unwrap();
    }
}

struct Service {
    addr: std::net::SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    _engine: Arc<FlowEngine>,
}

impl Drop for Service {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// The HTTP API over `store` (seeded), its clock on 2026-11-23.
async fn service(store: Store) -> Service {
    seed(&store);
    let (engine, errors) = FlowEngine::new(
        store,
        EngineConfig {
            scripts_dir: Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts")),
            timezone: zone(),
            ..EngineConfig::default()
        },
    );
    assert!(errors.is_empty(), "{errors:?}");
    let engine = Arc::new(engine);
    let state = ApiState {
        store: engine.store().clone(),
        engine: engine.clone(),
        tokens: vec![TOKEN.to_owned(), NUMBERS_TOKEN.to_owned()],
        number_tokens: vec![NUMBERS_TOKEN.to_owned()],
        ready: Arc::new(|| true),
        start: smsflow::http::direct_start(engine.clone()),
        on_accepted: Arc::new(|| {}),
        now: Arc::new(|| smsflow::flow::check::START),
        buttons: smsflow::config::ButtonRoutes::shipped(),
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(serve(listener, state, async move {
        let _ = stopped.await;
    }));
    Service {
        addr,
        stop: Some(stop),
        _engine: engine,
    }
}

/// A token that may see whole MSISDNs in the response feed.
const NUMBERS_TOKEN: &str = "numbers-token";

async fn get_json(s: &Service, path: &str) -> (u16, Value) {
    let headers = [("Authorization".to_owned(), format!("Bearer {TOKEN}"))];
    let r = raw(s.addr, "GET", path, &headers, None).await;
    (r.status, r.json)
}

/// A GET whose body is not JSON: (status, head, body).
async fn get_text(addr: std::net::SocketAddr, path: &str) -> (u16, String, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {TOKEN}\r\n\
         Connection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut received = Vec::new();
    stream.read_to_end(&mut received).await.unwrap();
    let text = String::from_utf8(received).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, head.to_owned(), body.to_owned())
}

#[tokio::test]
async fn reports_csi_json_over_http() {
    let s = service(Store::temporary().unwrap()).await;
    let (status, doc) = get_json(&s, &format!("/api/v1/reports/csi?{RANGE}&by=operator")).await;
    assert_eq!(status, 200, "{doc}");
    assert_eq!(doc["from"], "2026-11-01");
    assert_eq!(doc["to"], "2026-11-22");
    assert_eq!(doc["by"], "operator");
    let t = &doc["total"];
    assert_eq!(t["surveys_sent"], 5, "the suppressed one was not sent");
    assert_eq!(t["delivered"], 4);
    assert_eq!(t["responses"], 5);
    assert_eq!(t["response_rate"], 100.0);
    assert_eq!(t["average"], 3.4);
    assert_eq!(t["positive_pct"], 60.0);
    assert_eq!(t["negative_pct"], 40.0);
    assert_eq!(
        t["distribution"],
        json!({"1": 1, "2": 1, "3": 0, "4": 1, "5": 2})
    );
    let groups = doc["groups"].as_array().unwrap();
    let keys: Vec<&str> = groups.iter().map(|g| g["key"].as_str().unwrap()).collect();
    assert_eq!(keys, ["op-17", "op-23"]);
    assert_eq!(groups[0]["surveys_sent"], 2);
    assert_eq!(groups[0]["responses"], 2);
    assert_eq!(groups[0]["average"], 4.5);
    assert_eq!(groups[0]["insufficient_sample"], true);
    assert_eq!(groups[1]["average"], 2.67);
    assert_eq!(doc["comments"]["negative_terms"][0], json!(["долг", 2]));
    assert!(doc["anomalies"].as_array().unwrap().is_empty());

    // Defaults: the last 30 days up to today (2026-11-23 by the service's clock).
    let (status, doc) = get_json(&s, "/api/v1/reports/csi").await;
    assert_eq!(status, 200, "{doc}");
    assert_eq!(
        (doc["from"].as_str(), doc["to"].as_str()),
        (Some("2026-10-25"), Some("2026-11-23"))
    );
    assert_eq!(doc["total"]["responses"], 5);
}

#[tokio::test]
async fn reports_incidents_json_over_http() {
    let s = service(Store::temporary().unwrap()).await;
    let (status, doc) = get_json(&s, &format!("/api/v1/reports/incidents?{RANGE}")).await;
    assert_eq!(status, 200, "{doc}");
    assert_eq!(doc["by"], "location");
    let t = &doc["total"];
    assert_eq!(t["incidents"], 3);
    assert_eq!(t["acknowledged"], 2);
    assert_eq!(t["unacknowledged"], 1);
    assert_eq!(t["escalated"], 2);
    assert_eq!(t["median_ack_seconds"], 35.0);
    assert_eq!(t["p90_ack_seconds"], 120.0);
    assert_eq!(t["acknowledged_at_level"], json!({"1": 1, "2": 1}));
    assert_eq!(doc["groups"][0]["key"], "терапевтическое отделение");
    assert_eq!(doc["groups"][0]["incidents"], 2);
    let (status, doc) = get_json(&s, &format!("/api/v1/reports/incidents?{RANGE}&by=day")).await;
    assert_eq!(status, 200);
    assert_eq!(doc["groups"].as_array().unwrap().len(), 22);
    assert_eq!(doc["groups"][20]["key"], "2026-11-21");
    assert_eq!(doc["groups"][20]["incidents"], 3);
}

#[tokio::test]
async fn reports_bad_queries_are_400_with_a_json_error() {
    let s = service(Store::temporary().unwrap()).await;
    for (path, needle) in [
        ("/api/v1/reports/csi?from=2026-13-01", "not a date"),
        ("/api/v1/reports/csi?from=2026-11-05&to=2026-11-01", "after"),
        (
            "/api/v1/reports/csi?by=location",
            "not a grouping of the csi report",
        ),
        ("/api/v1/reports/incidents?by=operator", "location, button"),
        ("/api/v1/reports/csi?form=2026-11-01", "unknown parameter"),
    ] {
        let (status, doc) = get_json(&s, path).await;
        assert_eq!(status, 400, "{path}: {doc}");
        assert_eq!(doc["error"], "bad request", "{path}");
        let detail = doc["detail"].as_str().unwrap();
        assert!(detail.contains(needle), "{path}: {detail}");
    }
    // The dashboard says so in HTML, for the person in the browser.
    let (status, _, body) = get_text(s.addr, "/reports?by=nonsense").await;
    assert_eq!(status, 400);
    assert!(body.contains("not a grouping"), "{body}");
}

#[tokio::test]
async fn reports_api_needs_the_token() {
    let s = service(Store::temporary().unwrap()).await;
    let r = raw(s.addr, "GET", "/api/v1/reports/csi", &[], None).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json["error"], "unauthorized");
}

/// The dashboard holds customer comments: a browser gives a token as the Basic password.
#[tokio::test]
async fn reports_dashboard_needs_the_token_as_bearer_or_basic_password() {
    use base64::Engine;
    let s = service(Store::temporary().unwrap()).await;
    let basic = |credentials: &str| {
        let encoded = base64::engine::general_purpose::STANDARD.encode(credentials);
        vec![("Authorization".to_owned(), format!("Basic {encoded}"))]
    };
    let r = raw(s.addr, "GET", "/reports", &[], None).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json["error"], "unauthorized");
    let head = r.head.to_ascii_lowercase();
    assert!(
        head.contains("www-authenticate: basic realm=\"smsflow\""),
        "{head}"
    );
    assert!(!r.head.contains("op-23"), "nothing of the report");
    for wrong in [
        format!("manager:{TOKEN}x"),
        TOKEN.to_owned(),
        "manager:".to_owned(),
    ] {
        let r = raw(s.addr, "GET", "/reports", &basic(&wrong), None).await;
        assert_eq!(r.status, 401, "{wrong}");
    }
    let r = raw(
        s.addr,
        "GET",
        "/reports",
        &basic(&format!("manager:{TOKEN}")),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("op-23"));
    // The scheme is case-insensitive (RFC 7235).
    let lower = vec![("Authorization".to_owned(), format!("bearer {TOKEN}"))];
    assert_eq!(
        raw(s.addr, "GET", "/reports", &lower, None).await.status,
        200
    );
    let api = raw(s.addr, "GET", "/api/v1/reports/csi", &lower, None).await;
    assert_eq!(api.status, 200);
}

#[tokio::test]
async fn reports_dashboard_is_one_self_contained_page() {
    let s = service(Store::temporary().unwrap()).await;
    let (status, head, body) = get_text(s.addr, &format!("/reports?{RANGE}")).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/html; charset=utf-8"),
        "{head}"
    );
    assert!(body.starts_with("<!doctype html>"));
    assert!(body.matches("<svg").count() >= 5);
    for external in ["http://", "https://", "<script", "<link", "src=", "url("] {
        assert!(!body.contains(external), "{external}");
    }
    assert!(body.contains("op-23") && body.contains("хирургия"));
    // Controls, when it was generated, the newest responses with their comments.
    assert!(body.contains("<form class=\"controls\" method=\"get\" action=\"/reports\">"));
    assert!(
        body.contains("value=\"2026-11-01\""),
        "the range is in the form"
    );
    assert!(body.contains("generated 2026-"), "generated-at");
    assert!(body.contains("Newest responses") && body.contains("долго, не дозвонился"));
    assert!(
        !body.contains("http-equiv=\"refresh\""),
        "no refresh unless asked"
    );
    let (_, _, body) = get_text(s.addr, "/reports?days=7&by=week&refresh=60&from=").await;
    assert!(
        body.contains("<meta http-equiv=\"refresh\" content=\"60\">"),
        "{body}"
    );
    assert!(body.contains("<option selected>week</option>"));
}

#[tokio::test]
async fn reports_dashboard_bad_parameters_get_an_html_400_and_root_redirects() {
    let s = service(Store::temporary().unwrap()).await;
    for bad in [
        "by=colour",
        "from=2026-13-01",
        "refresh=1",
        "days=0",
        "sort=up",
    ] {
        let (status, head, body) = get_text(s.addr, &format!("/reports?{bad}")).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(
            head.to_ascii_lowercase().contains("text/html"),
            "{bad}: {head}"
        );
        assert!(
            body.contains("This report cannot be shown"),
            "{bad}: {body}"
        );
    }
    let (status, head, _) = get_text(s.addr, "/").await;
    assert_eq!(status, 303, "{head}");
    assert!(
        head.to_ascii_lowercase().contains("location: /reports"),
        "{head}"
    );
}

fn config_file(dir: &Path, data: &Path, http: std::net::SocketAddr) -> std::path::PathBuf {
    let path = dir.join("smsflow.toml");
    std::fs::write(
        &path,
        format!(
            "[service]\ndata_dir = \"{}\"\ntimezone = \"Asia/Tashkent\"\n\n[[smsc]]\nname = \
             \"a\"\npassword = \"x\"\n\n[http]\nlisten = \"{http}\"\ntokens = [\"{TOKEN}\"]\n\n\
             [metrics]\nlisten = \"127.0.0.1:0\"\n",
            data.display()
        ),
    )
    .unwrap();
    path
}

async fn smsflow(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_smsflow"))
        .args(args)
        .output()
        .await
        .unwrap()
}

#[tokio::test]
async fn reports_cli_reads_the_store_in_every_format() {
    let dir = TempDir::new("report-cli");
    let data = dir.path().join("data");
    {
        let store = Store::open(&data).unwrap();
        seed(&store);
        store.flush_sync().unwrap();
    }
    let config = config_file(dir.path(), &data, "127.0.0.1:9".parse().unwrap());
    let config = config.to_str().unwrap();
    let base = [
        "report",
        "csi",
        "--config",
        config,
        "--from",
        "2026-11-01",
        "--to",
        "2026-11-22",
    ];

    let out = smsflow(&[&base[..], &["--format", "json"]].concat()).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["total"]["surveys_sent"], 5);
    assert_eq!(doc["total"]["average"], 3.4);

    let out = smsflow(&base).await;
    assert!(out.status.success());
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(
        table.contains("CSI report 2026-11-01 .. 2026-11-22"),
        "{table}"
    );
    assert!(table.lines().all(|l| l.chars().count() <= 100), "{table}");

    let out = smsflow(&[&base[..], &["--format", "csv"]].concat()).await;
    let csv = String::from_utf8(out.stdout).unwrap();
    assert!(
        csv.starts_with("\u{feff}from,to,operator,surveys_sent,"),
        "{csv}"
    );
    let out = smsflow(&[&base[..], &["--format", "csv", "--no-bom"]].concat()).await;
    let csv = String::from_utf8(out.stdout).unwrap();
    assert!(csv.starts_with("from,to,operator,surveys_sent,"), "{csv}");

    let xlsx = dir.path().join("r.xlsx");
    let out = smsflow(
        &[
            &base[..],
            &["--format", "xlsx", "--out", xlsx.to_str().unwrap()],
        ]
        .concat(),
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        std::fs::read(&xlsx).unwrap().starts_with(b"PK"),
        "a zip package"
    );

    let html = dir.path().join("r.html");
    let inc = [
        "report",
        "incidents",
        "--config",
        config,
        "--from",
        "2026-11-01",
        "--to",
        "2026-11-22",
        "--format",
        "html",
        "--out",
        html.to_str().unwrap(),
    ];
    let out = smsflow(&inc).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("<svg") && page.contains("хирургия"));
}

#[tokio::test]
async fn reports_cli_bad_usage_exits_2() {
    let dir = TempDir::new("report-usage");
    let data = dir.path().join("data");
    let config = config_file(dir.path(), &data, "127.0.0.1:9".parse().unwrap());
    let config = config.to_str().unwrap();
    for (args, needle) in [
        (
            vec!["report", "csi", "--config", config, "--from", "yesterday"],
            "not a date",
        ),
        (
            vec![
                "report",
                "incidents",
                "--config",
                config,
                "--by",
                "operator",
            ],
            "location, button",
        ),
        (
            vec!["report", "csi", "--config", config, "--by", "weekly"],
            "day, week, month",
        ),
        (
            vec!["report", "csi", "--config", config, "--format", "pdf"],
            "pdf",
        ),
        (
            vec!["report", "csi", "--config", "/nonexistent/smsflow.toml"],
            "nonexistent",
        ),
    ] {
        let out = smsflow(&args).await;
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
}

/// A manager's config: where the data is, no SMPP account (issue 19). On day one (no data
/// dir, or an empty one) every format is an empty report, exit 0, and nothing is created.
#[tokio::test]
async fn reports_cli_without_smsc_on_no_store_gives_an_empty_report_in_each_format() {
    let dir = TempDir::new("report-empty");
    let missing = dir.path().join("missing");
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    for data in [&missing, &empty] {
        let config = dir.path().join("manager.toml");
        std::fs::write(
            &config,
            format!(
                "[service]\ndata_dir = {:?}\ntimezone = \"Asia/Tashkent\"\n",
                data.display().to_string()
            ),
        )
        .unwrap();
        let config = config.to_str().unwrap();
        for kind in ["csi", "incidents"] {
            for format in ["table", "csv", "json", "html", "xlsx"] {
                let out_file = dir.path().join(format!("{kind}.{format}"));
                let out = smsflow(&[
                    "report",
                    kind,
                    "-c",
                    config,
                    "-f",
                    format,
                    "-o",
                    out_file.to_str().unwrap(),
                ])
                .await;
                let stderr = String::from_utf8_lossy(&out.stderr);
                assert_eq!(out.status.code(), Some(0), "{kind} {format}: {stderr}");
                assert!(stderr.contains("nothing recorded yet"), "{stderr}");
                let bytes = std::fs::read(&out_file).unwrap();
                assert!(!bytes.is_empty(), "{kind} {format}");
                if format == "json" {
                    let doc: Value = serde_json::from_slice(&bytes).unwrap();
                    let total = &doc["total"];
                    let count = if kind == "csi" {
                        "surveys_sent"
                    } else {
                        "incidents"
                    };
                    assert_eq!(total[count], 0, "{doc}");
                    assert_eq!(doc["groups"], json!([]), "{doc}");
                }
            }
        }
        // The table on standard output says what it covers.
        let out = smsflow(&["report", "csi", "-c", config]).await;
        assert_eq!(out.status.code(), Some(0));
        let table = String::from_utf8_lossy(&out.stdout);
        assert!(table.contains("surveys sent 0"), "{table}");
    }
    assert!(!missing.exists(), "report created the data dir");
    assert_eq!(
        std::fs::read_dir(&empty).unwrap().count(),
        0,
        "report wrote a store"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_cli_asks_the_service_when_it_holds_the_store() {
    let dir = TempDir::new("report-locked");
    let data = dir.path().join("data");
    // The "service" holds the store open (sled's lock) and serves its API.
    let s = service(Store::open(&data).unwrap()).await;
    let config = config_file(dir.path(), &data, s.addr);
    let out = smsflow(&[
        "report",
        "csi",
        "--config",
        config.to_str().unwrap(),
        "--from",
        "2026-11-01",
        "--to",
        "2026-11-22",
        "--format",
        "json",
    ])
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("the running service at"), "{stderr}");
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["total"]["surveys_sent"], 5);
    assert_eq!(doc["groups"][1]["key"], "op-23");

    // A wrong token: the service's 401 is reported, exit 1.
    let wrong = dir.path().join("wrong.toml");
    std::fs::write(
        &wrong,
        std::fs::read_to_string(&config)
            .unwrap()
            .replace(TOKEN, "nope"),
    )
    .unwrap();
    let out = smsflow(&["report", "csi", "--config", wrong.to_str().unwrap()]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("401"));
}

#[tokio::test]
async fn reports_csi_has_problems_praise_and_outcomes() {
    let s = service(Store::temporary().unwrap()).await;
    let (status, doc) = get_json(&s, &format!("/api/v1/reports/csi?{RANGE}&by=operator")).await;
    assert_eq!(status, 200, "{doc}");
    let terms = |side: &str| -> Vec<String> {
        (doc["comments"][side].as_array().unwrap().iter())
            .map(|f| f["term"].as_str().unwrap().to_owned())
            .collect()
    };
    // The seed's example: praise for politeness, a problem about waiting on the line, and
    // the 1–2 comments' complaints.
    assert!(terms("praise").contains(&"вежлив".to_owned()), "{doc}");
    // "Очень долго ждать" and "долго пришлось ждать на линии": one problem, two comments.
    assert_eq!(
        doc["comments"]["problems"][0]["lemma"], "долго ждать",
        "{doc}"
    );
    assert_eq!(doc["comments"]["problems"][0]["count"], 2);
    assert!(
        terms("problems").contains(&"не дозвонился".to_owned()),
        "{doc}"
    );
    // The seed marks all six conversations finished "rated", the suppressed one too (it
    // sent nothing): outcomes count how conversations ended, whether or not they sent.
    let o = &doc["outcomes"];
    assert_eq!(o["rated"], 6, "{o}");
    assert_eq!(o["open"], 0);
    // Per operator.
    let op23 = (doc["groups"].as_array().unwrap().iter())
        .find(|g| g["key"] == "op-23")
        .unwrap();
    assert!(
        op23["problems"].as_array().is_some_and(|p| !p.is_empty()),
        "{op23}"
    );
    let op17 = (doc["groups"].as_array().unwrap().iter())
        .find(|g| g["key"] == "op-17")
        .unwrap();
    assert_eq!(
        op17["problems"][0]["term"], "долго ждать на линии",
        "{op17}"
    );
}

#[tokio::test]
async fn responses_feed_pages_filters_and_masks_over_http() {
    let s = service(Store::temporary().unwrap()).await;
    let (status, page) = get_json(&s, "/api/v1/responses?limit=2").await;
    assert_eq!(status, 200, "{page}");
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    // Newest first: the seed's fifth rating (op-23, score 5, no comment).
    assert_eq!(items[0]["conversation"], 104);
    assert_eq!(items[0]["msisdn"], "99890*****64", "masked");
    assert_eq!(items[1]["comment"], "долго, не дозвонился");
    let next = page["next"].as_str().unwrap().to_owned();
    let (_, rest) = get_json(&s, &format!("/api/v1/responses?limit=2&cursor={next}")).await;
    let (_, last) = get_json(
        &s,
        &format!(
            "/api/v1/responses?limit=2&cursor={}",
            rest["next"].as_str().unwrap()
        ),
    )
    .await;
    let ids: Vec<u64> = [&page, &rest, &last]
        .iter()
        .flat_map(|p| p["items"].as_array().unwrap().iter())
        .map(|i| i["conversation"].as_u64().unwrap())
        .collect();
    assert_eq!(
        ids,
        [104, 103, 102, 101, 100],
        "every rating once, newest first"
    );
    assert_eq!(last["next"], Value::Null);

    let (_, fives) = get_json(&s, "/api/v1/responses?score=5&operator=op-17").await;
    assert_eq!(fives["items"].as_array().unwrap().len(), 1, "{fives}");
    let (_, dated) = get_json(&s, "/api/v1/responses?from=2026-11-23").await;
    assert!(dated["items"].as_array().unwrap().is_empty(), "{dated}");

    // A token that may see numbers sees them whole.
    let headers = [(
        "Authorization".to_owned(),
        format!("Bearer {NUMBERS_TOKEN}"),
    )];
    let r = raw(s.addr, "GET", "/api/v1/responses?limit=1", &headers, None).await;
    assert_eq!(r.json["items"][0]["msisdn"], "998901234564");

    for bad in [
        "score=x",
        "limit=0",
        "cursor=zz",
        "colour=red",
        "from=yesterday",
    ] {
        let (status, body) = get_json(&s, &format!("/api/v1/responses?{bad}")).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert_eq!(body["error"], "bad request");
    }
}

#[tokio::test]
async fn reports_cli_prints_the_response_feed() {
    let dir = TempDir::new("report-feed");
    let data = dir.path().join("data");
    {
        let store = Store::open(&data).unwrap();
        seed(&store);
        store.flush_sync().unwrap();
    }
    let config = config_file(dir.path(), &data, "127.0.0.1:9".parse().unwrap());
    let config = config.to_str().unwrap();
    let out = smsflow(&[
        "report",
        "responses",
        "--config",
        config,
        "--format",
        "csv",
        "--no-bom",
    ])
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let csv = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "at,conversation,flow,score,operator,channel,msisdn,comment"
    );
    assert_eq!(lines.len(), 1 + 5, "{csv}");
    assert!(
        lines[2].contains(",op-23,call,99890*****63,\"долго, не дозвонился\""),
        "{csv}"
    );

    let out = smsflow(&[
        "report",
        "responses",
        "--config",
        config,
        "--score",
        "2",
        "--format",
        "json",
    ])
    .await;
    let page: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    assert_eq!(page["items"][0]["comment"], "Очень долго ждать");

    let out = smsflow(&["report", "responses", "--config", config, "--limit", "2"]).await;
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("more: --cursor "), "{table}");
}

/// The shipped NPS flow end to end through the engine: the report of `flow=nps` computes NPS
/// on 0–10, counts the flow's own surveys, and the detractor's follow-up answer is the
/// rating's comment in the feed and in the comment analysis.
#[test]
fn nps_flow_reports_nps_with_its_follow_up_as_the_comment() {
    // In the zone the report is in, as `smsflow run` opens it: the report reads the tallies
    // the steps counted, not a recount of the raw records.
    let store = Store::temporary_in(&zone()).unwrap();
    assert_eq!(store.tally_zone(), "Asia/Tashkent");
    let (engine, errors) = FlowEngine::new(
        store.clone(),
        EngineConfig {
            scripts_dir: Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts")),
            timezone: zone(),
            ..EngineConfig::default()
        },
    );
    assert!(errors.is_empty(), "{errors:?}");
    let t = DAY;
    // 4 promoters, 2 passives, 2 detractors: NPS 25.
    for (i, answer) in ["10", "9", "9 спасибо", "10", "8", "7", "3", "0"]
        .iter()
        .enumerate()
    {
        let msisdn = format!("99890765432{i}");
        let event = json!({"id": format!("o-{i}"), "msisdn": msisdn, "operator": "op-17"});
        engine.start(t, "nps", event, None).unwrap();
        engine.reply(t + 1000, &msisdn, answer, t + 1000).unwrap();
    }
    // One detractor says why; the other's follow-up window passes.
    engine
        .reply(
            t + 2000,
            "998907654326",
            "Курьер опоздал на два часа",
            t + 2000,
        )
        .unwrap();
    engine.fire_due_timers(t + 3 * 3_600_000).unwrap();

    let query = smsflow::report::Query::parse(
        Kind::Csi,
        Some("2026-11-01"),
        Some("2026-11-22"),
        None,
        jiff::civil::date(2026, 11, 22),
    )
    .unwrap()
    .for_flow(Some("nps"))
    .unwrap();
    let scale = engine.flow("nps").map(|f| f.scale.clone());
    let Report::Csi(r) =
        smsflow::report::source::build_with(&store, &query, &zone(), scale).unwrap()
    else {
        panic!("a CSI report")
    };
    let t = &r.total;
    assert_eq!((r.flow.as_str(), r.scale.kind.as_str()), ("nps", "nps"));
    assert_eq!(
        t.surveys_sent, 8,
        "the flow's own surveys, not the survey flow's"
    );
    assert_eq!(t.responses, 8);
    assert_eq!(t.nps, Some(25.0));
    assert_eq!(
        (t.promoters_pct, t.passives_pct, t.detractors_pct),
        (Some(50.0), Some(25.0), Some(25.0))
    );
    assert_eq!(t.distribution.scores().count(), 11, "a key per score 0–10");
    assert_eq!(t.distribution.count(0), 1);
    assert!(
        t.ci95
            .is_some_and(|[lo, hi]| (0.0..=10.0).contains(&lo) && hi <= 10.0)
    );
    // The follow-up answer is the comment, and a problem.
    let problems: Vec<&str> = (r.comments.problems.iter())
        .map(|f| f.term.as_str())
        .collect();
    assert!(
        problems.iter().any(|p| p.contains("опоздал")),
        "{problems:?}"
    );
    let page = smsflow::report::feed::page(
        &store,
        &smsflow::report::feed::FeedQuery {
            flow: Some("nps".into()),
            score: Some(3),
            ..Default::default()
        },
        DAY + 86_400_000,
    )
    .unwrap();
    assert_eq!(page.items[0].comment, "Курьер опоздал на два часа");
    // The shipped survey's report is untouched by the NPS flow's ratings.
    let survey = smsflow::report::Query {
        flow: "survey".into(),
        ..query
    };
    let Report::Csi(s) = smsflow::report::source::build(&store, &survey, &zone()).unwrap() else {
        panic!("a CSI report")
    };
    assert_eq!(s.total.responses, 0);
    assert_eq!(s.total.distribution.scores().count(), 5);
    assert!(s.total.nps.is_none());
}
