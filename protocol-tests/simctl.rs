//! The simulator driven by hand, as an operator trying a flow would: `smsflow smsc --control`
//! and `smsflow sim mo|messages` as processes against a running `smsflow run` (issue 25,
//! items 13 and 16): the README's staff call answered by hand, bad input refused naming the
//! field, and an operator's own 0–10 survey answered end to end by the simulated subscribers.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStdout, Command};

use crate::http::{post_event, raw};
use crate::run::{service_setup, setup_in, spawn_service, stop_with_sigterm};
use crate::util::{TempDir, WAIT, until_ready};

/// `smsflow smsc` as a process on free ports, with its control port; its SMPP and control
/// addresses as it printed them.
struct Smsc {
    // Killed when dropped.
    child: Child,
    smpp: SocketAddr,
    control: SocketAddr,
    // Kept open: the simulator's stdout is this pipe.
    _stdout: BufReader<ChildStdout>,
}

impl Smsc {
    /// Kills the simulator and waits for it to be gone: dropping only sends the signal, and
    /// its ports may still accept for a moment.
    async fn stop(mut self) {
        self.child.kill().await.unwrap();
    }

    async fn start(flags: &[&str]) -> Smsc {
        let mut child = Command::new(env!("CARGO_BIN_EXE_smsflow"))
            .args([
                "smsc",
                "--listen",
                "127.0.0.1:0",
                "--control",
                "127.0.0.1:0",
            ])
            .args(flags)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let (mut smpp, mut control) = (None, None);
        while smpp.is_none() || control.is_none() {
            let mut line = String::new();
            let read = tokio::time::timeout(WAIT, stdout.read_line(&mut line)).await;
            assert!(
                read.expect("smsc prints its addresses").unwrap() > 0,
                "smsc ended"
            );
            let addr = |after: &str| -> Option<SocketAddr> {
                let rest = line.split_once(after)?.1;
                rest.split_whitespace().next()?.parse().ok()
            };
            smpp = smpp.or(addr("smsflow smsc listening on "));
            control = control.or(addr("control port on http://"));
        }
        Smsc {
            child,
            smpp: smpp.unwrap(),
            control: control.unwrap(),
            _stdout: stdout,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.control)
    }

    /// `GET /messages?to=` until one of them satisfies `wanted`; that text.
    async fn message_to(&self, to: &str, wanted: impl Fn(&str) -> bool) -> String {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let resp = raw(
                self.control,
                "GET",
                &format!("/messages?to={to}"),
                &[],
                None,
            )
            .await;
            assert_eq!(resp.status, 200, "{}", resp.body);
            let texts: Vec<String> = (resp.json["messages"].as_array().unwrap().iter())
                .map(|m| m["text"].as_str().unwrap().to_owned())
                .collect();
            if let Some(text) = texts.iter().find(|t| wanted(t)) {
                return text.clone();
            }
            assert!(tokio::time::Instant::now() < deadline, "{to} got {texts:?}");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
}

/// `smsflow sim ARGS` as a process: exit code, stdout, stderr.
async fn sim(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_smsflow"))
        .arg("sim")
        .args(args)
        .output()
        .await
        .unwrap();
    (
        out.status.code(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// The README's staff call ("Five minutes with the real service", step 3): the event it
/// posts, and the SMS it says the first level's nurse gets.
fn readme_staff_call() -> (String, String) {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let curl = readme.split("flows/escalation/events").nth(1).unwrap();
    let event = curl
        .split_once("-d '")
        .unwrap()
        .1
        .split_once("' | jq")
        .unwrap()
        .0;
    let said = readme
        .split_once("The first level's nurse gets `")
        .unwrap()
        .1;
    let sms = said.split_once('`').unwrap().0;
    // The README wraps lines; the SMS is one line.
    let sms = sms.split_whitespace().collect::<Vec<_>>().join(" ");
    (event.to_owned(), sms)
}

/// See: issue 25, items 13 and 16. The README's staff call, answered by hand through the
/// control port: the nurse's SMS is the README's, `sim mo "OK 100"` takes the call, bad input
/// is refused naming the field, and an MO nobody can take says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_staff_call_answered_by_hand_through_the_simulators_control_port() {
    let smsc = Smsc::start(&[]).await;
    let dir = TempDir::new("simctl-by-hand");
    let setup = service_setup(dir.path(), smsc.smpp.port(), &[]);
    let mut service = spawn_service(&setup.config);
    until_ready(setup.http).await;

    let (event, readme_sms) = readme_staff_call();
    let resp = post_event(setup.http, "escalation", &[], &event).await;
    assert_eq!(resp.status, 202, "{}", resp.body);
    let sms = smsc.message_to("998901111111", |_| true).await;
    assert_eq!(sms, readme_sms, "the README's staff SMS");

    // `sim messages` shows it too, as a line and as JSON.
    let url = smsc.url();
    let (code, out, err) = sim(&["messages", "--control", &url, "--to", "998901111111"]).await;
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains("5700 → 998901111111 UCS-2 ×1 delivered: Вызов: Палата 315"),
        "{out}"
    );

    // The nurse takes the call by hand.
    let (code, out, err) =
        sim(&["mo", "--control", &url, "--from", "998901111111", "OK 100"]).await;
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(
        out.contains(r#"998901111111 → 5700: "OK 100" (1 part) acknowledged by the service"#),
        "{out}"
    );
    let taken = smsc
        .message_to("998901111111", |t| t.starts_with("Вы приняли вызов 100"))
        .await;
    assert!(taken.contains("ответьте ГОТОВО 100"), "{taken}");
    let (code, out, _) = sim(&[
        "messages",
        "--control",
        &url,
        "--to",
        "998901111111",
        "-f",
        "json",
    ])
    .await;
    assert_eq!(code, Some(0));
    let listed: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(listed["messages"].as_array().unwrap().len(), 2, "{listed}");

    // Bad input: exit 2 naming the field; the port answers 400 JSON naming it.
    let (code, _, err) = sim(&["mo", "--control", &url, "--from", "nurse", "OK"]).await;
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains(r#"from "nurse" is not 1 to 20 digits"#),
        "{err}"
    );
    for (body, field) in [
        (r#"{"from": "998901111111"}"#, Some("text")),
        (
            r#"{"from": "998901111111", "text": "OK", "to": "short code"}"#,
            Some("to"),
        ),
        (
            r#"{"from": "998901111111", "text": "OK", "extra": 1}"#,
            None,
        ),
        ("OK 100", None),
    ] {
        let resp = raw(smsc.control, "POST", "/mo", &[], Some(body.as_bytes())).await;
        assert_eq!(resp.status, 400, "{body}: {}", resp.body);
        assert_eq!(resp.json["error"], "bad request", "{}", resp.body);
        assert_eq!(resp.json["field"].as_str(), field, "{}", resp.body);
        assert!(resp.head.to_ascii_lowercase().contains("application/json"));
    }
    let resp = raw(smsc.control, "GET", "/messages?limit=0", &[], None).await;
    assert_eq!(
        (resp.status, resp.json["field"].as_str()),
        (400, Some("limit"))
    );
    let resp = raw(smsc.control, "GET", "/nothing", &[], None).await;
    assert_eq!(resp.status, 404, "{}", resp.body);
    assert!(resp.json["detail"].as_str().unwrap().contains("POST /mo"));

    // With the service stopped nobody can take an MO: exit 1, saying it stays queued.
    stop_with_sigterm(&mut service).await;
    let (code, _, err) = sim(&[
        "mo",
        "--control",
        &url,
        "--wait",
        "200ms",
        "--from",
        "998901111111",
        "ГОТОВО 100",
    ])
    .await;
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("no ESME answered it within 200ms (0 session(s) bound): it stays queued"),
        "{err}"
    );
    // And a port nobody listens on is exit 1 with a hint.
    smsc.stop().await;
    let (code, _, err) = sim(&["mo", "--control", &url, "--from", "998901111111", "OK"]).await;
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("is `smsflow smsc --control ADDR` running there?"),
        "{err}"
    );
}

/// An operator's own survey, on a 0–10 scale and in its own words: what a newcomer writes
/// after the README. Nothing in it is the shipped survey's wording.
const OWN_FLOW: &str = r#"
fn scale() { #{ kind: "nps", min: 0, max: 10 } }
fn event_fields() { #{ msisdn: "msisdn" } }
fn question() { "Как вам наша доставка? Ответьте числом от 0 до 10." }
fn on_event(event) {
    this.msisdn = event.msisdn;
    this.tries = 0;
    add_party(this.msisdn);
    send(this.msisdn, question());
    set_timer("expire", "1h");
}
fn on_reply(msg) {
    let r = parse_rating(msg.text, 0, 10);
    if !r.ok {
        this.tries += 1;
        if this.tries >= 2 { finish("not_understood"); return; }
        send(this.msisdn, "Не поняли ответ. Ответьте числом от 0 до 10.");
        return;
    }
    cancel_timer("expire");
    record_rating(#{ score: r.score, operator: "courier-1", channel: "order", comment: r.comment, msisdn: this.msisdn });
    send(this.msisdn, "Спасибо!");
    finish("rated");
}
fn on_timer(name) { finish("no_response"); }
"#;

/// See: issue 25, item 13. `smsflow smsc --subscribers` answers an operator's own 0–10
/// question: ratings across the scale reach the service's store and its report.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operators_own_zero_to_ten_survey_is_answered_by_the_simulated_subscribers() {
    let smsc = Smsc::start(&["--subscribers", "--seed", "3"]).await;
    let dir = TempDir::new("simctl-own-flow");
    let scripts = dir.path().join("scripts");
    std::fs::create_dir_all(&scripts).unwrap();
    std::fs::write(scripts.join("delivery.rhai"), OWN_FLOW).unwrap();
    let setup = setup_in(dir.path(), smsc.smpp.port(), &scripts);
    let mut service = spawn_service(&setup.config);
    until_ready(setup.http).await;

    const SURVEYS: usize = 30;
    for i in 0..SURVEYS {
        let body = format!(r#"{{"id": "order-{i}", "msisdn": "99890700{i:04}"}}"#);
        let resp = post_event(setup.http, "delivery", &[], &body).await;
        assert_eq!(resp.status, 202, "{}", resp.body);
    }
    // Subscribers answer within 2 s (some not at all): wait for most of them.
    let deadline = tokio::time::Instant::now() + WAIT;
    let scores: Vec<u64> = loop {
        let resp = raw(
            setup.http,
            "GET",
            "/api/v1/responses?flow=delivery&limit=500",
            &[],
            None,
        )
        .await;
        assert_eq!(resp.status, 200, "{}", resp.body);
        let scores: Vec<u64> = (resp.json["items"].as_array().unwrap().iter())
            .map(|r| r["score"].as_u64().unwrap())
            .collect();
        if scores.len() >= SURVEYS / 2 {
            break scores;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "ratings so far: {scores:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert!(scores.iter().all(|&s| s <= 10), "{scores:?}");
    // The 0–10 scale itself, not 1–5 answers to a question that happens to say 0–10.
    assert!(scores.iter().any(|&s| s > 5), "{scores:?}");
    // The control port saw the question and the thanks go out.
    let question = smsc
        .message_to("998907000000", |t| t.starts_with("Как вам"))
        .await;
    assert!(question.ends_with("от 0 до 10."), "{question}");
    stop_with_sigterm(&mut service).await;
}
