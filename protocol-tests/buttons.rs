//! A restaurant's evening through `POST /api/v1/buttons` (issue 28): `smsflow run` with the
//! shipped flows against node `smpp` as the SMSC. Cancel presses are complaints the manager is
//! texted about (at once, or in a digest); a call press calls the manager with the table and
//! the order, escalating when unanswered; the service quality audit counts exactly the presses
//! posted, in every format.

use serde_json::{Value, json};

use crate::http::raw;
use crate::staffcalls::NodeRun;

const MANAGER: &str = "998901110001";
const OWNER: &str = "998901110002";

/// A press of table `table`'s button (type 101) as the concentrator posts it.
fn press(id: &str, table: u32, action: &str, extra: Value) -> String {
    let mut p = json!({"id": id,
        "button": {"id": table, "name": format!("Стол {table}"), "location": "зал 1", "type": 101},
        "concentrator": {"host": "HALL-PC-1"},
        "levels": [[MANAGER], [OWNER]], "info": {"order": "плов, чай"}, "action": action});
    for (k, v) in extra.as_object().unwrap() {
        p[k] = v.clone();
    }
    p.to_string()
}

async fn post_press(run: &NodeRun, body: &str) -> Value {
    let json = [("Content-Type".to_owned(), "application/json".to_owned())];
    let resp = raw(
        run.http(),
        "POST",
        "/api/v1/buttons",
        &json,
        Some(body.as_bytes()),
    )
    .await;
    assert!(
        resp.status / 100 == 2,
        "{body}: {} {}",
        resp.status,
        resp.json
    );
    resp.json
}

/// `smsflow report audit …` against the running service's config: stdout.
fn audit_cli(run: &NodeRun, args: &[&str]) -> String {
    report_cli(run, "audit", args)
}

/// `smsflow report <what> …` against the running service's config: stdout.
fn report_cli(run: &NodeRun, what: &str, args: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_smsflow"))
        .args(["report", what])
        .args(args)
        .arg("-c")
        .arg(&run.setup.config)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restaurant_evening_is_texted_escalated_and_in_the_audit_in_every_format() {
    let mut run = NodeRun::start("restaurant-evening", "").await;
    // Three complaints, the manager texted the table at once each time.
    for (id, table) in [("c-1", 12), ("c-2", 12), ("c-3", 7)] {
        post_press(&run, &press(id, table, "cancel", json!({}))).await;
        assert_eq!(
            run.mt_to(MANAGER).await,
            format!("Жалоба гостя: Стол {table} (зал 1). Заказ: плов, чай.")
        );
    }
    // A manager call nobody answers in time goes to the next level, who comes.
    post_press(&run, &press("m-1", 7, "call", json!({"ack_timeout": "2s"}))).await;
    let call = run.mt_to(MANAGER).await;
    assert_eq!(
        call,
        "Вызов менеджера: Стол 7 (зал 1). Заказ: плов, чай. Ответьте OK 100"
    );
    assert_eq!(run.mt_to(OWNER).await, call, "escalated to level 2");
    run.mo(OWNER, "OK").await;
    assert_eq!(run.mt_to(OWNER).await, "Вы приняли вызов: Стол 7.");

    let doc = run.get("/api/v1/reports/audit").await;
    let t = &doc["total"];
    let counts = [
        "presses",
        "complaints",
        "manager_calls",
        "answered",
        "not_answered",
        "open",
    ]
    .map(|k| t[k].as_u64().unwrap());
    assert_eq!(counts, [4, 3, 1, 1, 0, 0], "{doc}");
    let median = t["median_answer_seconds"].as_f64().unwrap();
    assert!(median >= 2.0, "answered after the escalation: {doc}");
    assert_eq!(doc["groups"][0]["key"], "зал 1", "{doc}");
    let heat: u64 = (doc["heatmap"].as_array().unwrap().iter())
        .flat_map(|d| d["complaints"].as_array().unwrap().iter())
        .map(|n| n.as_u64().unwrap())
        .sum();
    assert_eq!(heat, 3, "{doc}");

    // The CLI's JSON is the API's; the other formats carry the same numbers.
    let cli: Value = serde_json::from_str(&audit_cli(&run, &["-f", "json"])).unwrap();
    assert_eq!(cli["total"], doc["total"]);
    let table = audit_cli(&run, &[]);
    assert!(
        table.contains("presses 4: complaints 3 (no call), manager calls 1")
            && table.contains("calls answered 1 (100.0 %), not answered 0"),
        "{table}"
    );
    let csv = audit_cli(&run, &["-f", "csv"]);
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let total: Vec<&str> = lines.next().unwrap().split(',').collect();
    let cell = |name: &str| total[header.iter().position(|h| *h == name).unwrap()];
    assert_eq!(
        ["presses", "complaints", "manager_calls", "answered"].map(cell),
        ["4", "3", "1", "1"],
        "{csv}"
    );
    let xlsx = run.setup.config.with_file_name("audit.xlsx");
    audit_cli(&run, &["-f", "xlsx", "-o", xlsx.to_str().unwrap()]);
    use calamine::{Reader, open_workbook_auto};
    let mut book = open_workbook_auto(&xlsx).unwrap();
    let summary = book.worksheet_range("Summary").unwrap();
    let value = |field: &str| {
        (summary.rows())
            .find(|r| r.first().map(|c| c.to_string()).as_deref() == Some(field))
            .map(|r| r[1].to_string())
    };
    let found = ["Presses", "Complaints", "Manager calls", "Answered"].map(value);
    assert!(
        found.iter().all(Option::is_some),
        "summary rows: {:?}",
        summary.rows().map(|r| r[0].to_string()).collect::<Vec<_>>()
    );
    assert_eq!(found.map(Option::unwrap), ["4", "3", "1", "1"]);
    let html = audit_cli(&run, &["-f", "html"]);
    assert!(html.contains("Complaints by hour and weekday"), "{html}");
    let page = raw(run.http(), "GET", "/reports", &[], None).await.body;
    assert!(page.contains("Complaints by hour and weekday"));
    run.stop().await;
}

/// Digest mode: the period's complaints of a location are one SMS, the most complained-of
/// table first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_digest_groups_the_presses_of_its_period_in_one_sms() {
    let mut run = NodeRun::start("restaurant-digest", "").await;
    let digest = json!({"notify": "digest", "digest_every": "3s"});
    for (id, table) in [("d-1", 7), ("d-2", 12), ("d-3", 12)] {
        post_press(&run, &press(id, table, "cancel", digest.clone())).await;
    }
    assert_eq!(
        run.mt_to(MANAGER).await,
        "3 жалобы за последние 3 с (зал 1): Стол 12 ×2, Стол 7."
    );
    let t = run.get("/api/v1/reports/audit").await["total"].clone();
    assert_eq!(
        (&t["complaints"], &t["manager_calls"]),
        (&json!(3), &json!(0)),
        "{t}"
    );
    run.stop().await;
}

const GUARDS: [&str; 3] = ["998901110011", "998901110012", "998901110013"];

/// The next alert submit_sm to `to`: its text and the message id the SMSC answered with.
async fn alert_sent(run: &mut NodeRun, to: &str) -> (String, String) {
    let submit = (run.smsc)
        .event(&format!("a submit_sm to {to}"), |e| {
            e["event"] == "pdu"
                && e["command"] == "submit_sm"
                && e["fields"]["destination_addr"] == to
        })
        .await;
    assert_eq!(
        submit["fields"]["esm_class"].as_u64().unwrap() & 0x40,
        0,
        "the alert fits one part: {submit}"
    );
    let sm = hex::decode(submit["fields"]["short_message_hex"].as_str().unwrap()).unwrap();
    let coding = submit["fields"]["data_coding"].as_u64().unwrap() as u8;
    let text = match smsflow::smpp::text::decode(coding, &sm) {
        smsflow::smpp::text::MessageBody::Text(t) => t,
        other => panic!("{other:?}"),
    };
    let (session, seq) = (submit["session"].clone(), submit["sequence_number"].clone());
    let resp = (run.smsc)
        .event("its submit_sm_resp", |e| {
            e["event"] == "sent"
                && e["command"] == "submit_sm_resp"
                && e["session"] == session
                && e["sequence_number"] == seq
        })
        .await;
    (
        text,
        resp["fields"]["message_id"].as_str().unwrap().to_owned(),
    )
}

/// Issue 28's alert acceptance: a type 103 press texts three guards at once; the SMSC's
/// failed receipt for one brings a re-send to that one only; three OKs close the alert, and
/// its record gives each person's sends, failures and times to deliver and acknowledge.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_is_resent_on_a_failed_receipt_and_closes_when_all_said_ok() {
    let mut run = NodeRun::start("alert-three", "").await;
    let body = json!({"id": "a-1",
        "button": {"id": 9, "name": "Склад", "location": "двор", "type": 103},
        "concentrator": {"host": "GATE-PC"}, "phones": GUARDS, "action": "call"})
    .to_string();
    post_press(&run, &body).await;
    let mut ids = Vec::new();
    for to in GUARDS {
        let (text, id) = alert_sent(&mut run, to).await;
        assert!(
            text.starts_with("ТРЕВОГА: ") && text.contains("Ответьте OK 100"),
            "{text}"
        );
        ids.push(id);
    }
    let receipt = format!(
        "id:{} sub:001 dlvrd:000 submit date:2612072050 done date:2612072050 stat:UNDELIV err:001 text:x",
        ids[1]
    );
    let done = run
        .smsc
        .command(
            json!({"cmd": "deliver_sm", "source_addr": GUARDS[1], "destination_addr": "5700",
                        "esm_class": 4, "short_message_hex": hex::encode(receipt.as_bytes()),
                        "tlvs": {"receipted_message_id": ids[1], "message_state": 5}}),
        )
        .await;
    assert_eq!(done["response_status"], 0, "{done}");
    let (again, _) = alert_sent(&mut run, GUARDS[1]).await;
    assert!(again.starts_with("ТРЕВОГА: "), "{again}");

    for (i, to) in GUARDS.iter().enumerate() {
        run.mo(to, "OK").await;
        let answer = run.mt_to(to).await;
        assert!(
            answer.starts_with("Принято: тревога 100")
                && answer.contains(&format!("{} из 3", i + 1)),
            "{answer}"
        );
    }
    let alert = run.get("/api/v1/flows/alert/events/a-1").await;
    let people = &alert["state"]["people"];
    let sends: Vec<_> = GUARDS.iter().map(|n| people[n]["sends"].clone()).collect();
    assert_eq!(
        sends,
        [json!(1), json!(2), json!(1)],
        "only the failed one again: {alert}"
    );
    let failed: Vec<_> = GUARDS.iter().map(|n| people[n]["failed"].clone()).collect();
    assert_eq!(failed, [json!(0), json!(1), json!(0)], "{alert}");
    assert_eq!(alert["state"]["acked_by"], GUARDS[2], "{alert}");
    assert!(alert["state"]["closed_at"].is_number(), "closed: {alert}");
    for n in GUARDS {
        assert!(
            people[n]["acked_at"].is_number(),
            "{n} acknowledged: {alert}"
        );
        assert!(
            people[n]["delivered_at"].is_number(),
            "{n} counted delivered: {alert}"
        );
    }
    // The conversation closed acknowledged; the failed copy and the one re-send in its timeline.
    assert_eq!(
        (&alert["status"], &alert["outcome"]),
        (&json!("finished"), &json!("acknowledged")),
        "{alert}"
    );
    let to_second: Vec<_> = (alert["timeline"].as_array().unwrap().iter())
        .filter(|m| m["direction"] == "out" && m["party"] == GUARDS[1])
        .map(|m| m["status"].as_str().unwrap())
        .collect();
    assert_eq!(to_second, ["undeliverable", "sent", "sent"], "{alert}");

    // The report gives each person's sends, failed receipts, and time to deliver and to OK.
    let doc = run.get("/api/v1/reports/incidents").await;
    let people = doc["alert_recipients"]
        .as_array()
        .expect("alert_recipients");
    let row = |n: &str| people.iter().find(|p| p["msisdn"] == n).cloned();
    for (n, sends, failed) in [(GUARDS[0], 1, 0), (GUARDS[1], 2, 1), (GUARDS[2], 1, 0)] {
        let p = row(n).unwrap_or_else(|| panic!("{n} in {doc}"));
        assert_eq!(
            [
                &p["alerts"],
                &p["sends"],
                &p["failed"],
                &p["delivered"],
                &p["acknowledged"]
            ],
            [
                &json!(1),
                &json!(sends),
                &json!(failed),
                &json!(1),
                &json!(1)
            ],
            "{n}: {p}"
        );
        let (deliver, ok) = (&p["median_deliver_seconds"], &p["median_ack_seconds"]);
        assert!(
            deliver.as_f64().is_some_and(|d| d >= 0.0)
                && ok.as_f64().is_some_and(|o| o >= deliver.as_f64().unwrap()),
            "delivered, then OK: {p}"
        );
    }
    let cli: Value = serde_json::from_str(&report_cli(&run, "incidents", &["-f", "json"])).unwrap();
    assert_eq!(cli["alert_recipients"], doc["alert_recipients"]);
    let table = report_cli(&run, "incidents", &[]);
    let (_, per_person) = table
        .split_once("Alerts per person")
        .unwrap_or_else(|| panic!("{table}"));
    let line = (per_person.lines())
        .find(|l| l.contains(GUARDS[1]))
        .unwrap_or_else(|| panic!("{table}"));
    assert!(
        line.contains("1 alerts, 2 sent, 1 failed, delivered 1"),
        "{table}"
    );
    let csv = report_cli(&run, "incidents", &["-f", "csv"]);
    let line = (csv.lines())
        .find(|l| l.starts_with(GUARDS[1]))
        .unwrap_or_else(|| panic!("{csv}"));
    assert!(
        line.starts_with(&format!("{},1,2,1,1,", GUARDS[1])),
        "{csv}"
    );
    let xlsx = run.setup.config.with_file_name("incidents.xlsx");
    report_cli(
        &run,
        "incidents",
        &["-f", "xlsx", "-o", xlsx.to_str().unwrap()],
    );
    use calamine::{Reader, open_workbook_auto};
    let sheet = (open_workbook_auto(&xlsx).unwrap())
        .worksheet_range("Alert recipients")
        .unwrap();
    let cells: Vec<Vec<String>> = (sheet.rows())
        .map(|r| r.iter().map(|c| c.to_string()).collect())
        .collect();
    let second = (cells.iter()).find(|r| r[0] == GUARDS[1]);
    assert_eq!(
        second.map(|r| &r[1..4]),
        Some(&["1".to_owned(), "2".to_owned(), "1".to_owned()][..]),
        "alerts, sends, failed: {cells:?}"
    );
    let html = report_cli(&run, "incidents", &["-f", "html"]);
    assert!(
        html.contains("Alerts per person") && html.contains(GUARDS[1]),
        "{html}"
    );
    run.stop().await;
}
