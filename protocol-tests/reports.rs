//! Reports through the product's doors: the HTTP routes over a real socket
//! (`/api/v1/reports/csi`, `/api/v1/reports/incidents`, `/reports`) and `smsflow report` as a
//! process, reading the store directly or, when a running service holds it, asking that
//! service. Every test name contains `reports`, so `cargo test reports` selects them.

use std::path::Path;
use std::sync::Arc;

use serde_json::{Value, json};
use smsflow::flow::engine::{EngineConfig, FlowEngine};
use smsflow::http::{ApiState, serve};
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
                event_key: None,
                event_digest: None,
                created_at: at,
                updated_at: at,
                reply_code: None,
                join_key: None,
                notifications: 0,
                updates: Vec::new(),
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
        tokens: vec![TOKEN.to_owned()],
        ready: Arc::new(|| true),
        on_accepted: Arc::new(|| {}),
        now: Arc::new(|| smsflow::flow::check::START),
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
    let (status, _, body) = get_text(s.addr, "/reports?by=nonsense").await;
    assert_eq!(status, 400);
    assert!(body.contains("\"error\":\"bad request\""), "{body}");
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
    assert!(csv.starts_with("operator,surveys_sent,"), "{csv}");

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
    // No store yet: the job fails (1), it is not bad usage.
    let out = smsflow(&["report", "csi", "--config", config]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no store"));
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
