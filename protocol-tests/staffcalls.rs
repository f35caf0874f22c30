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

    /// An MO from `from` to 5700 in GSM 7-bit, with no reference; answered ESME_ROK.
    pub async fn mo(&mut self, from: &str, text: &str) -> Value {
        let done = self
            .smsc
            .command(
                json!({"cmd": "deliver_sm", "source_addr": from, "destination_addr": "5700",
                            "data_coding": 0, "short_message_hex": hex::encode(text.as_bytes())}),
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
