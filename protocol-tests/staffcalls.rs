//! What a ward sees (issue 25): `smsflow run` with the shipped flows against node `smpp` as
//! the SMSC, a third-party implementation that, like many carriers, sends no
//! `user_message_reference`: a nurse's second `OK` for the next call is a new message, while a
//! copy the SMSC sends after the link dropped right behind our response is a redelivery.

use std::collections::HashMap;
use std::net::SocketAddr;

use serde_json::{Value, json};
use smsflow::smpp::text::{self, MessageBody};
use smsflow::smpp::udh::UserDataHeader;
use tokio::process::Child;

use crate::http::raw;
use crate::interop::NodePeer;
use crate::run::{ServiceSetup, service_setup, spawn_service, stop_with_sigterm};
use crate::util::{TempDir, WAIT, until_ready};

/// node `smpp` as the SMSC and `smsflow run` bound to it, with `extra` appended to the
/// config; the SMSC has seen the bind.
pub(crate) struct NodeRun {
    pub smsc: NodePeer,
    pub setup: ServiceSetup,
    pub service: Child,
    /// Parts of MT messages seen so far, by (destination, concatenation reference).
    parts: HashMap<(String, u16), Vec<Option<String>>>,
    _dir: TempDir,
}

impl NodeRun {
    pub async fn start(name: &str, extra: &str) -> NodeRun {
        let mut smsc = NodePeer::spawn("smsc.js", &[]).await;
        let listening = smsc.event("listening", |e| e["event"] == "listening").await;
        let port = listening["port"].as_u64().unwrap() as u16;
        let dir = TempDir::new(name);
        let setup = service_setup(dir.path(), port, &[]);
        let mut config = std::fs::read_to_string(&setup.config).unwrap();
        config.push_str(extra);
        std::fs::write(&setup.config, config).unwrap();
        let service = spawn_service(&setup.config);
        until_ready(setup.http).await;
        smsc.event("bound", |e| e["event"] == "bound").await;
        NodeRun {
            smsc,
            setup,
            service,
            parts: HashMap::new(),
            _dir: dir,
        }
    }

    pub fn http(&self) -> SocketAddr {
        self.setup.http
    }

    /// An MO from `from` to 5700, with no reference (GSM for ASCII text, else UCS-2);
    /// answered ESME_ROK.
    pub async fn mo(&mut self, from: &str, text: &str) -> Value {
        let (coding, octets) = if text.is_ascii() {
            (0, text.as_bytes().to_vec())
        } else {
            (8, text.encode_utf16().flat_map(u16::to_be_bytes).collect())
        };
        let done = self
            .smsc
            .command(
                json!({"cmd": "deliver_sm", "source_addr": from, "destination_addr": "5700",
                            "data_coding": coding, "short_message_hex": hex::encode(octets)}),
            )
            .await;
        assert_eq!(done["response_status"], 0, "{done}");
        done
    }

    /// The next whole MT message to `to` (its parts joined), waiting for it.
    pub async fn mt_to(&mut self, to: &str) -> String {
        loop {
            let submit = self
                .smsc
                .event(&format!("a submit_sm to {to}"), |e| {
                    e["event"] == "pdu"
                        && e["command"] == "submit_sm"
                        && e["fields"]["destination_addr"] == to
                })
                .await;
            if let Some(text) = self.part(&submit) {
                return text;
            }
        }
    }

    /// One submit_sm: the whole message's text once its last part is in.
    fn part(&mut self, submit: &Value) -> Option<String> {
        let fields = &submit["fields"];
        let coding = fields["data_coding"].as_u64().unwrap() as u8;
        let sm = hex::decode(fields["short_message_hex"].as_str().unwrap()).unwrap();
        let to = fields["destination_addr"].as_str().unwrap().to_owned();
        let decode = |payload: &[u8]| match text::decode(coding, payload) {
            MessageBody::Text(t) => t,
            MessageBody::Binary(b) => String::from_utf8_lossy(&b).into_owned(),
        };
        if fields["esm_class"].as_u64().unwrap() & 0x40 == 0 {
            return Some(decode(&sm));
        }
        let udh = UserDataHeader::parse(&sm).unwrap();
        let concat = udh.concat().unwrap();
        let parts = (self.parts.entry((to.clone(), concat.reference)))
            .or_insert_with(|| vec![None; usize::from(concat.total)]);
        parts[usize::from(concat.seq) - 1] = Some(decode(udh.payload));
        if parts.iter().all(Option::is_some) {
            let whole = parts.iter().flatten().cloned().collect();
            self.parts.remove(&(to, concat.reference));
            return Some(whole);
        }
        None
    }

    /// `GET path` on the API, as JSON.
    pub async fn get(&self, path: &str) -> Value {
        let resp = raw(self.http(), "GET", path, &[], None).await;
        assert_eq!(resp.status, 200, "{path}: {}", resp.json);
        resp.json
    }

    /// The value of the series `name{labels}` on /metrics (0 when absent).
    pub async fn metric(&self, series: &str) -> f64 {
        let text = raw(self.setup.metrics, "GET", "/metrics", &[], None)
            .await
            .body;
        (text.lines())
            .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
            .unwrap_or(0.0)
    }

    pub async fn stop(mut self) {
        stop_with_sigterm(&mut self.service).await;
        self.smsc.quit().await;
    }
}

/// A staff call for `button` to one nurse, with a long ack timeout (no escalation).
pub(crate) fn call(id: &str, button: u32, name: &str, nurse: &str) -> String {
    json!({"id": id, "button": {"id": button, "name": name, "location": "терапия", "type": 102},
           "concentrator": {"host": "NURSE-PC-3"}, "levels": [[nurse]], "ack_timeout": "10m"})
    .to_string()
}

pub(crate) async fn post(run: &NodeRun, flow: &str, body: &str) -> Value {
    crate::http::post_event(run.http(), flow, &[], body)
        .await
        .json
}

const NURSE: &str = "998911000009";

/// Issue 25, item 1: the second `OK`, a few seconds after the first and on the same live
/// bind, is for the other call; dropping it as a redelivery left the call to escalate and
/// close "unacknowledged" although she answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nurses_second_ok_for_the_next_call_is_a_new_message() {
    let mut run = NodeRun::start("ward-second-ok", "").await;
    post(&run, "escalation", &call("inc-1", 1, "Палата 1", NURSE)).await;
    assert!(run.mt_to(NURSE).await.contains("Ответьте OK 100"));
    run.mo(NURSE, "OK").await;
    let taken = run.mt_to(NURSE).await;
    assert!(taken.starts_with("Вы приняли вызов 100"), "{taken}");

    post(&run, "escalation", &call("inc-2", 2, "Палата 2", NURSE)).await;
    assert!(run.mt_to(NURSE).await.contains("Ответьте OK 101"));
    run.mo(NURSE, "OK").await;
    let taken = run.mt_to(NURSE).await;
    assert!(taken.starts_with("Вы приняли вызов 101"), "{taken}");

    let second = run.get("/api/v1/flows/escalation/events/inc-2").await;
    assert_eq!(second["state"]["phase"], "acknowledged", "{second}");
    assert_eq!(second["state"]["acked_by"], NURSE, "{second}");
    let redelivered = run
        .metric("smsflow_mo_redelivered_total{smsc=\"sim\"}")
        .await;
    assert_eq!(redelivered, 0.0);
    run.stop().await;
}

/// The other half of the rule: the link drops right behind our deliver_sm_resp, so the SMSC
/// cannot know we had the MO and sends it again on the next bind. Same text, no reference:
/// acknowledged, counted, not processed a second time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_after_the_link_dropped_behind_our_response_is_a_redelivery() {
    let mut run = NodeRun::start("ward-redelivery", "").await;
    // To nobody's conversation (the inbox takes it and answers nothing), so no submit_sm on
    // the link shows the SMSC read on past our response.
    let first = run.mo("998901230000", "привет").await;
    run.smsc
        .command(json!({"cmd": "close", "session": first["session"]}))
        .await;
    run.smsc
        .event("bound again", |e| e["event"] == "bound")
        .await;
    run.mo("998901230000", "привет").await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while run
        .metric("smsflow_mo_redelivered_total{smsc=\"sim\"}")
        .await
        < 1.0
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the copy is recognised"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let mo = run
        .metric("smsflow_mo_messages_total{flow=\"inbox\"}")
        .await;
    assert_eq!(mo, 1.0, "processed once");
    run.stop().await;
}

const HEAD_NURSE: &str = "998911000002";

/// `smsflow report …` against the running service's config: stdout, exit code.
fn report_cli(run: &NodeRun, args: &[&str]) -> (String, Option<i32>) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_smsflow"))
        .arg("report")
        .args(args)
        .arg("-c")
        .arg(&run.setup.config)
        .output()
        .unwrap();
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        out.status.code(),
    )
}

async fn until_metric(run: &NodeRun, series: &str, value: f64) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while run.metric(series).await != value {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{series} never {value}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Issue 25, items 2, 3 and 5: a call raised, escalated to level 2 and taken is in today's
/// report (it used to count only once resolved: `incidents: 0`) and in the open calls, over
/// HTTP, the CLI, the dashboard and /metrics; resolved, its time to resolve is in every
/// format; the log tells its story with the staff number masked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_taken_at_level_two_counts_at_once_and_is_listed_open_until_resolved() {
    let mut run = NodeRun::start("ward-open-call", "").await;
    let call = json!({"id": "inc-7", "button": {"id": 7, "name": "Палата 7", "location": "хирургия", "type": 102},
                      "levels": [[NURSE], [HEAD_NURSE]], "ack_timeout": "2s"})
    .to_string();
    post(&run, "escalation", &call).await;
    run.mt_to(NURSE).await;
    let escalated = run.mt_to(HEAD_NURSE).await;
    assert!(escalated.contains("Ответьте OK 100"), "{escalated}");
    let ringing = run.get("/api/v1/incidents?state=ringing").await;
    assert_eq!(ringing["items"][0]["level"], 2, "{ringing}");
    assert_eq!(ringing["items"][0]["taken_by"], Value::Null, "{ringing}");

    run.mo(HEAD_NURSE, "OK").await;
    assert!(
        run.mt_to(HEAD_NURSE)
            .await
            .starts_with("Вы приняли вызов 100")
    );
    let report = run.get("/api/v1/reports/incidents").await;
    let t = &report["total"];
    assert_eq!(
        (
            &t["incidents"],
            &t["acknowledged"],
            &t["open"],
            &t["ringing"],
            &t["escalated"]
        ),
        (&json!(1), &json!(1), &json!(1), &json!(0), &json!(1)),
        "{report}"
    );
    assert_eq!(t["acknowledged_at_level"], json!({"2": 1}), "{report}");
    let open = run.get("/api/v1/incidents").await;
    let row = &open["items"][0];
    assert_eq!(
        (&row["id"], &row["button"], &row["location"]),
        (&json!("inc-7"), &json!("Палата 7"), &json!("хирургия")),
        "{open}"
    );
    assert_eq!(
        (&row["state"], &row["level"], &row["round"]),
        (&json!("acknowledged"), &json!(2), &json!(1)),
        "{open}"
    );
    assert_eq!(
        row["taken_by"], "99891*****02",
        "masked without a number token: {open}"
    );
    assert!(row["age_seconds"].as_f64().unwrap() >= 2.0, "{open}");
    assert_eq!(
        run.get("/api/v1/incidents?state=ringing").await["items"],
        json!([])
    );
    let bad = raw(
        run.http(),
        "GET",
        "/api/v1/incidents?state=closed",
        &[],
        None,
    )
    .await;
    assert_eq!(bad.status, 400, "{}", bad.json);

    let (listed, code) = report_cli(&run, &["incidents", "--open"]);
    assert_eq!(code, Some(0), "{listed}");
    assert!(
        listed.contains("Палата 7") && listed.contains("acknowledged"),
        "{listed}"
    );
    let (table, _) = report_cli(&run, &["incidents"]);
    assert!(table.contains("open 1 (ringing 0)"), "{table}");
    let page = raw(run.http(), "GET", "/reports", &[], None).await.body;
    assert!(
        page.contains("Open calls now: 1") && page.contains("taken, not resolved"),
        "{page}"
    );
    until_metric(&run, "smsflow_incidents_open{state=\"acknowledged\"}", 1.0).await;

    run.mo(HEAD_NURSE, "готово").await;
    assert!(run.mt_to(HEAD_NURSE).await.contains("закрыт"));
    let t = run.get("/api/v1/reports/incidents").await["total"].clone();
    assert_eq!((&t["open"], &t["resolved"]), (&json!(0), &json!(1)), "{t}");
    assert!(t["median_resolve_seconds"].as_f64().is_some(), "{t}");
    assert_eq!(run.get("/api/v1/incidents").await["items"], json!([]));
    let (csv, _) = report_cli(&run, &["incidents", "-f", "csv"]);
    let header = csv.lines().next().unwrap();
    for column in [
        "open",
        "ringing",
        "cancelled",
        "resolved",
        "median_resolve_seconds",
        "p90_resolve_seconds",
    ] {
        assert!(
            header.split(',').any(|c| c == column),
            "{column} in {header}"
        );
    }
    let (table, _) = report_cli(&run, &["incidents"]);
    assert!(
        table.contains("resolved 1, time to resolve: median"),
        "{table}"
    );
    let page = raw(run.http(), "GET", "/reports", &[], None).await.body;
    assert!(
        page.contains("Resolved") && page.contains("No call is waiting."),
        "{page}"
    );
    let xlsx = run.setup.config.with_file_name("calls.xlsx");
    let (_, code) = report_cli(
        &run,
        &["incidents", "-f", "xlsx", "-o", xlsx.to_str().unwrap()],
    );
    assert_eq!(code, Some(0));
    use calamine::{Reader, open_workbook_auto};
    let mut book = open_workbook_auto(&xlsx).unwrap();
    let sheet = book.worksheet_range_at(0).unwrap().unwrap();
    // The total sheet: a row per field, named in words.
    let fields: Vec<String> = sheet
        .rows()
        .filter_map(|r| r.first().map(|c| c.to_string()))
        .collect();
    for field in [
        "Resolved",
        "Median time to resolve (s)",
        "Open now",
        "Cancelled at the button",
    ] {
        assert!(fields.iter().any(|f| f == field), "{field} in {fields:?}");
    }

    let log = std::fs::read_to_string(crate::run::service_log(&run.setup.config)).unwrap();
    for story in [
        "call inc-7 (Палата 7): level 1, round 1 called",
        "call inc-7 (Палата 7): level 2, round 1 called",
        "call inc-7 (Палата 7): taken by 99891*****02 at level 2",
        "call inc-7 (Палата 7): resolved by 99891*****02",
        "call inc-7 (Палата 7): closed, resolved",
    ] {
        assert!(log.contains(story), "{story:?} in the log:\n{log}");
    }
    assert!(
        !log.contains(HEAD_NURSE),
        "the staff number is masked in the log"
    );
    run.stop().await;
}

/// Issue 25, item 4: cancelled at the button before anyone answered, a call is `cancelled`
/// (not acknowledged by "concentrator" at level 1), with the level it reached, and no time to
/// ack.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_cancelled_at_the_button_before_any_answer_is_cancelled() {
    let mut run = NodeRun::start("ward-cancelled", "").await;
    let call = json!({"id": "inc-8", "button": {"id": 8, "name": "Палата 8", "location": "хирургия", "type": 102},
                      "concentrator": {"host": "NURSE-PC-3"},
                      "levels": [[NURSE], [HEAD_NURSE]], "ack_timeout": "2s"})
    .to_string();
    post(&run, "escalation", &call).await;
    run.mt_to(NURSE).await;
    run.mt_to(HEAD_NURSE).await;
    post(
        &run,
        "escalation",
        &json!({"id": "inc-8", "resolve": true}).to_string(),
    )
    .await;
    assert_eq!(
        run.mt_to(HEAD_NURSE).await,
        "Вызов Палата 8 отменён на месте."
    );
    let t = run.get("/api/v1/reports/incidents").await["total"].clone();
    assert_eq!(
        (
            &t["incidents"],
            &t["cancelled"],
            &t["acknowledged"],
            &t["unacknowledged"],
            &t["open"]
        ),
        (&json!(1), &json!(1), &json!(0), &json!(0), &json!(0)),
        "{t}"
    );
    assert_eq!(t["median_ack_seconds"], Value::Null, "{t}");
    let call = run.get("/api/v1/flows/escalation/events/inc-8").await;
    assert_eq!(call["outcome"], "cancelled", "{call}");
    run.stop().await;
}
