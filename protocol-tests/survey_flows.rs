//! Survey flows other than `survey` (issue 25, items 6–11), the way an operator meets them:
//! `smsflow run` with the shipped `nps` flow against the simulator, events posted over HTTP,
//! the customers' answers sent as MOs over SMPP, and the numbers read where a manager or an
//! SRE reads them: the report over HTTP, `smsflow report` against the running service and
//! against the stopped store (table, JSON, CSV, XLSX), the `/reports` dashboard and
//! `/metrics`.

use std::path::Path;

use serde_json::{Value, json};
use smsflow::sim::SmscHandle;
use tokio::process::Child;

use crate::http::{post_event, raw};
use crate::metrics::scrape_until;
use crate::run::{ServiceSetup, simulator_and_service, stop_with_sigterm};
use crate::store_ops::smsflow;
use crate::util::{TempDir, next_submitted, send_mo};

/// The NPS customers and their answers: digits, and number words on the 0–10 scale in
/// Russian, Uzbek (Latin and Cyrillic) and English; the last one never answers.
const ANSWERS: [(&str, Option<&str>, u8); 10] = [
    ("998907000000", Some("10"), 10),
    ("998907000001", Some("nine"), 9),
    ("998907000002", Some("o'n"), 10),
    ("998907000003", Some("десять, всё отлично"), 10),
    ("998907000004", Some("toʻqqiz"), 9),
    ("998907000005", Some("восемь"), 8),
    ("998907000006", Some("саккиз"), 8),
    ("998907000007", Some("етти"), 7),
    ("998907000008", Some("2 курьер опоздал"), 2),
    ("998907000009", None, 0),
];

/// What the shipped `nps.rhai` thanks a rated customer with.
const THANKS: &str = "Спасибо за ваш отзыв!";

/// 5 promoters, 3 passives, 1 detractor of 9 answers: NPS 55.6 − 11.1 = 44.4; average 73/9.
const NPS: f64 = 44.4;

/// `smsflow run` with the shipped flows, ten NPS surveys posted and nine answered: returns
/// once each answer was thanked (so it was read as a rating) and every question and thanks
/// has its delivery receipt counted.
async fn nps_surveys(name: &str) -> (SmscHandle, TempDir, ServiceSetup, Child) {
    let (smsc, dir, setup, service) = simulator_and_service(name).await;
    let mut submitted = smsc.submitted();
    for (i, (msisdn, _, _)) in ANSWERS.iter().enumerate() {
        let body = json!({"id": format!("order-{i}"), "msisdn": msisdn, "operator": "op-17",
                          "channel": "order"});
        post_event(setup.http, "nps", &[], &body.to_string()).await;
    }
    for _ in ANSWERS {
        let question = next_submitted(&mut submitted).await;
        assert!(question.text.contains("от 0 до 10"), "{}", question.text);
    }
    for (msisdn, answer, _) in ANSWERS {
        let Some(answer) = answer else { continue };
        assert!(send_mo(&smsc, msisdn, answer).await.is_ok());
        let reply = next_submitted(&mut submitted).await;
        assert_eq!(
            (reply.destination.as_str(), reply.text.as_str()),
            (msisdn, THANKS),
            "{answer:?} is a rating on 0–10"
        );
    }
    // Ten questions and nine thanks, each with its receipt.
    let delivered = "smsflow_mt_receipts_total{flow=\"nps\",status=\"delivered\"} 19\n";
    scrape_until(&setup, delivered).await;
    (smsc, dir, setup, service)
}

/// `smsflow report csi --flow nps --format FORMAT` (more `args` after it); its stdout, after
/// asserting it succeeded.
async fn nps_report(config: &Path, format: &str, args: &[&str]) -> Vec<u8> {
    let base = ["report", "csi", "--flow", "nps", "--format", format];
    let out = smsflow(&[&base[..], args].concat(), config).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{format}: {stderr}");
    out.stdout
}

/// The numbers of the NPS surveys, in the report's JSON (`total`).
fn assert_nps_total(doc: &Value) {
    assert_eq!(
        (&doc["flow"], &doc["scale"]["kind"]),
        (&json!("nps"), &json!("nps"))
    );
    let t = &doc["total"];
    assert_eq!(t["surveys_sent"], 10, "{t}");
    assert_eq!(t["delivered"], 10, "{t}");
    assert_eq!(t["responses"], 9, "{t}");
    assert_eq!(t["response_rate"], 90.0, "{t}");
    assert_eq!(t["nps"], NPS, "{t}");
    assert_eq!(t["passives_pct"], 33.3, "{t}");
    assert_eq!(t["average"], 8.11, "{t}");
    let o = &doc["outcomes"];
    assert_eq!((&o["rated"], &o["open"]), (&json!(9), &json!(1)), "{o}");
}

/// Items 6, 10 and 11: the NPS flow's sends, deliveries and outcomes in the report over HTTP
/// and from `smsflow report` against the running service and the stopped store (which reads
/// the tallies the service counted); the word answers are their scores in the feed;
/// `store verify` finds the tallies in agreement with the records; a mistyped flow is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_of_the_nps_flow_count_its_surveys_over_http_and_the_cli() {
    let (smsc, _dir, setup, mut service) = nps_surveys("survey-flows-counts").await;
    let resp = raw(setup.http, "GET", "/api/v1/reports/csi?flow=nps", &[], None).await;
    assert_eq!(resp.status, 200, "{}", resp.json);
    assert_nps_total(&resp.json);
    let feed = raw(setup.http, "GET", "/api/v1/responses?flow=nps", &[], None).await;
    let mut scores: Vec<(String, u64)> = (feed.json["items"].as_array().unwrap().iter())
        .map(|i| {
            let msisdn = i["msisdn"].as_str().unwrap();
            (
                msisdn[msisdn.len() - 2..].to_owned(),
                i["score"].as_u64().unwrap(),
            )
        })
        .collect();
    scores.sort();
    let expected: Vec<(String, u64)> = (ANSWERS.iter())
        .filter(|(_, answer, _)| answer.is_some())
        .map(|(msisdn, _, score)| (msisdn[msisdn.len() - 2..].to_owned(), u64::from(*score)))
        .collect();
    assert_eq!(scores, expected, "{}", feed.json);
    // A flow nobody runs is a 400 naming the ones there are.
    let resp = raw(setup.http, "GET", "/api/v1/reports/csi?flow=nsp", &[], None).await;
    assert_eq!(resp.status, 400, "{}", resp.json["detail"]);
    let detail = resp.json["detail"].as_str().unwrap();
    assert!(
        detail.contains("\"nsp\"") && detail.contains("nps, survey"),
        "{detail}"
    );

    // The CLI finds the store in use and asks the service.
    let table = nps_report(&setup.config, "table", &[]).await;
    let table = String::from_utf8(table).unwrap();
    assert!(
        table.contains("surveys sent 10, delivered 10, responses 9 (response rate 90.0 %)"),
        "{table}"
    );
    assert!(table.contains("NPS 44.4"), "{table}");
    // The service's refusal is the CLI's: exit 2 with its message.
    let out = smsflow(&["report", "csi", "--flow", "nsp"], &setup.config).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(detail), "{stderr}");
    let page = raw(setup.http, "GET", "/reports?flow=nsp", &[], None).await;
    assert_eq!(page.status, 400);
    assert!(page.body.contains("nps, survey"), "{}", page.body);
    stop_with_sigterm(&mut service).await;
    smsc.shutdown().await;

    // Stopped: the CLI reads the tallies the service counted in its zone.
    let doc: Value = serde_json::from_slice(&nps_report(&setup.config, "json", &[]).await).unwrap();
    assert_nps_total(&doc);
    let table = String::from_utf8(nps_report(&setup.config, "table", &[]).await).unwrap();
    assert!(
        table.contains("surveys sent 10, delivered 10, responses 9 (response rate 90.0 %)"),
        "{table}"
    );
    let out = smsflow(&["store", "verify"], &setup.config).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("no problems found"), "{stdout}");

    // A mistyped flow: exit 2 naming the flows there are, as the HTTP API says it.
    let out = smsflow(&["report", "csi", "--flow", "nsp"], &setup.config).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(detail), "{stderr}\nvs the API's: {detail}");
    assert!(out.stdout.is_empty(), "no report printed");
}

/// Items 7 and 8: the dashboard of the NPS flow (its selector kept by the form, its own
/// responses with a flow column, its words and scale) and the survey page without NPS
/// answers; CSV and XLSX in the flow's words, the XLSX trend on 0–10, percent cells rounded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_of_the_nps_flow_speak_its_words_on_the_dashboard_and_in_exports() {
    let (smsc, dir, setup, mut service) = nps_surveys("survey-flows-words").await;

    let page = raw(setup.http, "GET", "/reports?flow=nps", &[], None).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let body = &page.body;
    // The survey selector is in the form the Show button submits, with NPS chosen.
    let form = &body[body.find("<form class=\"controls\"").unwrap()..];
    let form = &form[..form.find("</form>").unwrap()];
    assert!(form.contains("<select name=\"flow\">"), "{form}");
    assert!(form.contains("<option selected>nps</option>"), "{form}");
    assert!(form.contains("<option>survey</option>"), "{form}");
    assert!(
        !form.contains("<option>escalation</option>"),
        "not a survey: {form}"
    );
    for words in ["Promoters (9–10)", "Detractors (0–6)", "Passives (7–8)"] {
        assert!(body.contains(words), "no {words}");
    }
    assert!(!body.contains("Positive (9–10)"), "NPS has promoters");
    let feed = &body[body.find("Newest responses").unwrap()..];
    assert!(feed.contains("<th>flow</th>"), "{feed}");
    assert!(
        feed.contains("<td>nps</td>") && feed.contains("курьер опоздал"),
        "{feed}"
    );
    // The 1–5 survey's page has none of the NPS answers (no 0–10 scores there).
    let survey = raw(setup.http, "GET", "/reports", &[], None).await.body;
    let survey_feed = &survey[survey.find("Newest responses").unwrap()..];
    assert!(survey_feed.contains("No responses yet."), "{survey_feed}");
    assert!(
        !survey.contains("курьер опоздал"),
        "an NPS answer on the 1–5 page"
    );

    let csv = String::from_utf8(nps_report(&setup.config, "csv", &["--no-bom"]).await).unwrap();
    let header = csv.lines().next().unwrap();
    assert!(
        header.contains(",promoters_pct,passives_pct,detractors_pct,"),
        "{header}"
    );
    let xlsx = dir.path().join("nps.xlsx");
    nps_report(&setup.config, "xlsx", &["--out", xlsx.to_str().unwrap()]).await;
    stop_with_sigterm(&mut service).await;
    smsc.shutdown().await;

    use calamine::{Data, Reader, Xlsx, open_workbook};
    let mut book: Xlsx<_> = open_workbook(&xlsx).unwrap();
    let summary = book.worksheet_range("Summary").unwrap();
    let value = |field: &str| {
        (summary.rows())
            .find(|row| row[0] == Data::String(field.into()))
            .map(|row| row[1].clone())
    };
    assert_eq!(value("Surveys sent"), Some(Data::Float(10.0)));
    assert_eq!(value("Promoters, %"), Some(Data::Float(0.556)));
    assert_eq!(value("Passives, %"), Some(Data::Float(0.333)), "rounded");
    assert_eq!(value("Detractors, %"), Some(Data::Float(0.111)));
    assert_eq!(value("Response rate, %"), Some(Data::Float(0.9)));
    let labels: Vec<String> = (summary.rows()).map(|r| r[0].to_string()).collect();
    assert!(
        !labels
            .iter()
            .any(|l| l.contains("Positive") || l.contains("Negative")),
        "{labels:?}"
    );
    let groups = book.worksheet_range("Groups").unwrap();
    let header: Vec<String> = (groups.rows().next().unwrap().iter())
        .map(|c| c.to_string())
        .collect();
    for words in ["Promoters, %", "Passives, %", "Detractors, %", "NPS"] {
        assert!(header.contains(&words.to_owned()), "{words}: {header:?}");
    }
    let mut archive = zip::ZipArchive::new(std::fs::File::open(&xlsx).unwrap()).unwrap();
    let mut chart = String::new();
    std::io::Read::read_to_string(
        &mut archive.by_name("xl/charts/chart1.xml").unwrap(),
        &mut chart,
    )
    .unwrap();
    assert!(
        chart.contains("<c:min val=\"0\"/>") && chart.contains("<c:max val=\"10\"/>"),
        "the average of 0–10 answers on a 0–10 axis: {chart}"
    );
}

/// Item 9: `/metrics` counts the NPS flow's ratings and funnel under its own name, apart
/// from the 1–5 survey's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_the_ratings_and_funnel_of_each_survey_flow() {
    let (smsc, _dir, setup, mut service) = nps_surveys("survey-flows-metrics").await;
    // The funnel counts a delivered question with its receipt, which nps_surveys awaited.
    let text = raw(setup.metrics, "GET", "/metrics", &[], None).await.body;
    for needle in [
        "smsflow_ratings_total{flow=\"nps\",score=\"10\"} 3",
        "smsflow_ratings_total{flow=\"nps\",score=\"9\"} 2",
        "smsflow_ratings_total{flow=\"nps\",score=\"8\"} 2",
        "smsflow_ratings_total{flow=\"nps\",score=\"0\"} 0",
        "smsflow_ratings_total{flow=\"survey\",score=\"5\"} 0",
        "smsflow_survey_funnel_total{flow=\"nps\",stage=\"sent\"} 10",
        "smsflow_survey_funnel_total{flow=\"nps\",stage=\"delivered\"} 10",
        "smsflow_survey_funnel_total{flow=\"nps\",stage=\"replied\"} 9",
        "smsflow_survey_funnel_total{flow=\"nps\",stage=\"rated\"} 9",
        "smsflow_survey_funnel_total{flow=\"survey\",stage=\"sent\"} 0",
    ] {
        assert!(
            text.contains(&format!("\n{needle}\n")),
            "no {needle} in\n{text}"
        );
    }
    // Flows that record no ratings have no rating or funnel series.
    for flow in ["escalation", "inbox"] {
        let labelled = format!("{{flow=\"{flow}\",s");
        assert!(
            !(text.lines())
                .filter(|l| l.starts_with("smsflow_ratings_total")
                    || l.starts_with("smsflow_survey_funnel_total"))
                .any(|l| l.contains(&labelled)),
            "{flow}: {text}"
        );
    }
    stop_with_sigterm(&mut service).await;
    smsc.shutdown().await;
}
