//! Interoperability with an independent SMPP implementation: the npm package `smpp` (pinned in
//! `peer/package.json`), driven through the JSON-lines scripts in `peer/` (see its README).
//!
//! Real TCP on 127.0.0.1 and real time; every wait is for an event, bounded by a timeout so a
//! broken peer fails the test instead of hanging it. The first test to need the peer runs
//! `npm ci` in `protocol-tests/peer` if its `node_modules` is missing.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::{Value, json};
use smsflow::esme::{InboundMessage, Pool, PoolConfig, tcp_connector, tls_connector};
use smsflow::smpp::{
    concat::{Offer, Part, Reassembler},
    text::{self, MessageBody},
};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(15);

const SURVEY: &str = "Спасибо за ваш звонок. Оцените, пожалуйста, нашу работу по шкале от 1 до 5, где 1 - очень плохо, 5 - отлично. Можете также оставить комментарий. Ваш отзыв важен для нас!";

/// The peer's directory, with its pinned node dependencies installed (`npm ci`, once per test
/// run, so `cargo test` works on a fresh checkout).
fn install_peer() -> PathBuf {
    static INSTALLED: OnceLock<PathBuf> = OnceLock::new();
    INSTALLED
        .get_or_init(|| {
            let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("protocol-tests/peer");
            if !dir.join("node_modules/smpp").exists() {
                let status = std::process::Command::new("npm")
                    .args(["ci", "--no-audit", "--no-fund"])
                    .current_dir(&dir)
                    .status()
                    .expect("npm runs (node >= 18 is needed for the interop tests)");
                assert!(status.success(), "npm ci failed in {}", dir.display());
            }
            dir
        })
        .clone()
}

/// One node script, its stdin for commands and its stdout events.
pub struct NodePeer {
    child: Child,
    stdin: ChildStdin,
    events: mpsc::UnboundedReceiver<Value>,
    /// Events read while waiting for something else, in order.
    backlog: Vec<Value>,
    next_id: u64,
}

impl NodePeer {
    pub async fn spawn(script: &str, args: &[&str]) -> NodePeer {
        let dir = install_peer();
        let mut child = Command::new("node")
            .arg(script)
            .args(args)
            .current_dir(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("node runs");
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, events) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let value: Value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("peer printed a non-JSON line {line:?}: {e}"));
                if tx.send(value).is_err() {
                    break;
                }
            }
        });
        NodePeer {
            child,
            stdin,
            events,
            backlog: Vec::new(),
            next_id: 1,
        }
    }

    /// The first event (backlog first) for which `pred` holds; other events stay queued.
    pub async fn event(&mut self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        if let Some(i) = self.backlog.iter().position(&pred) {
            return self.backlog.remove(i);
        }
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let next = tokio::time::timeout_at(deadline, self.events.recv())
                .await
                .unwrap_or_else(|_| {
                    panic!(
                        "no {what} from the peer within {WAIT:?}; saw {:#?}",
                        self.backlog
                    )
                })
                .unwrap_or_else(|| panic!("peer exited while waiting for {what}"));
            if pred(&next) {
                return next;
            }
            self.backlog.push(next);
        }
    }

    /// A PDU event of `command` from the peer's point of view (`pdu` = received by it).
    pub async fn pdu(&mut self, command: &str) -> Value {
        self.event(command, |e| e["event"] == "pdu" && e["command"] == command)
            .await
    }

    /// Sends a command and returns its `done` event; a `done` with `error` fails the test.
    pub async fn command(&mut self, mut cmd: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        cmd["id"] = json!(id);
        let mut line = cmd.to_string();
        line.push('\n');
        self.stdin
            .write_all(line.as_bytes())
            .await
            .expect("peer stdin open");
        let done = self
            .event("done", |e| e["event"] == "done" && e["id"] == json!(id))
            .await;
        assert!(done.get("error").is_none(), "peer refused {cmd}: {done}");
        done
    }

    pub async fn quit(mut self) {
        let _ = self.stdin.write_all(b"{\"id\":0,\"cmd\":\"quit\"}\n").await;
        let _ = tokio::time::timeout(WAIT, self.child.wait()).await;
    }
}

async fn next_inbound(inbound: &mut mpsc::Receiver<InboundMessage>) -> InboundMessage {
    tokio::time::timeout(WAIT, inbound.recv())
        .await
        .expect("an inbound message in time")
        .expect("pool alive")
}

fn hex(bytes: &[u8]) -> String {
    hex::encode(bytes)
}

/// Short messages the node SMSC saw as submit_sm since `from`, joined without their UDH.
fn joined_payload(submits: &[Value]) -> (u64, Vec<u8>) {
    let mut data = Vec::new();
    let mut coding = 0;
    for s in submits {
        let fields = &s["fields"];
        coding = fields["data_coding"].as_u64().unwrap();
        let sm = hex::decode(fields["short_message_hex"].as_str().unwrap()).unwrap();
        let udhi = fields["esm_class"].as_u64().unwrap() & 0x40 != 0;
        let body = if udhi {
            &sm[usize::from(sm[0]) + 1..]
        } else {
            &sm[..]
        };
        data.extend_from_slice(body);
    }
    (coding, data)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_esme_against_node_smsc() {
    let mut smsc = NodePeer::spawn(
        "smsc.js",
        &[
            "--port",
            "0",
            "--system-id",
            "smsflow",
            "--password",
            "smsflow",
        ],
    )
    .await;
    let port = smsc.event("listening", |e| e["event"] == "listening").await["port"]
        .as_u64()
        .unwrap() as u16;
    let mut config = PoolConfig::new("node", tcp_connector("127.0.0.1".into(), port));
    config.reconnect_min = Duration::from_millis(100);
    config.reconnect_max = Duration::from_millis(500);
    config.session.enquire_link_interval = Duration::from_millis(300);
    let (pool, mut inbound) = Pool::start(config, 64);

    // Bind: transceiver, SMPP 3.4.
    let bind = smsc.pdu("bind_transceiver").await;
    assert_eq!(bind["fields"]["interface_version"], 0x34);
    assert_eq!(bind["fields"]["system_id"], "smsflow");
    smsc.event("bound", |e| e["event"] == "bound").await;

    // enquire_link from us when idle, and from the SMSC to us.
    smsc.pdu("enquire_link").await;
    let done = smsc.command(json!({"cmd": "enquire_link"})).await;
    assert_eq!(done["response_command"], "enquire_link_resp");
    assert_eq!(done["command_status"], 0);

    // MT in GSM 7-bit, two parts with UDH.
    let gsm = "Thank you for your call! ".repeat(7);
    let sent = pool.send_text("998901234567", &gsm).await.unwrap();
    assert_eq!(sent.message_ids.len(), 2);
    let submits = vec![smsc.pdu("submit_sm").await, smsc.pdu("submit_sm").await];
    assert!(submits.iter().all(|s| s["fields"]["esm_class"] == 0x40));
    let (coding, data) = joined_payload(&submits);
    assert_eq!(
        (coding, text::decode(coding as u8, &data)),
        (0, MessageBody::Text(gsm.clone()))
    );

    // MT in UCS-2: the survey text, three parts.
    let sent = pool.send_text("998901234567", SURVEY).await.unwrap();
    assert_eq!(sent.message_ids.len(), 3);
    let mut submits = Vec::new();
    for _ in 0..3 {
        submits.push(smsc.pdu("submit_sm").await);
    }
    // Parts may travel in any order; put them back by their UDH sequence number.
    submits.sort_by_key(|s| {
        let sm = hex::decode(s["fields"]["short_message_hex"].as_str().unwrap()).unwrap();
        sm[5]
    });
    let (coding, data) = joined_payload(&submits);
    assert_eq!(
        (coding, text::decode(coding as u8, &data)),
        (8, MessageBody::Text(SURVEY.into()))
    );

    // MO in each coding, acknowledged only after we take it.
    let latin1: Vec<u8> = "café olé".chars().map(|c| c as u8).collect();
    let cases: Vec<(u8, Vec<u8>, &str)> = vec![
        (
            0,
            text::gsm7_encode("5 Super! {ok}").unwrap(),
            "5 Super! {ok}",
        ),
        (
            8,
            text::ucs2_encode("4. Оператор был вежлив 👍"),
            "4. Оператор был вежлив 👍",
        ),
        (3, latin1, "café olé"),
        (1, b"3 ok".to_vec(), "3 ok"),
    ];
    for (coding, octets, expected) in cases {
        let mo = json!({"cmd": "deliver_sm", "source_addr": "998901234567", "destination_addr": "5700",
                        "data_coding": coding, "short_message_hex": hex(&octets)});
        let ack = async {
            let message = next_inbound(&mut inbound).await;
            assert_eq!(message.inbound.data_coding, coding);
            assert_eq!(
                text::decode(coding, &message.inbound.payload),
                MessageBody::Text(expected.into()),
                "data_coding {coding}"
            );
            message.ack.ack();
        };
        let (done, ()) = tokio::join!(smsc.command(mo), ack);
        assert_eq!(done["response_command"], "deliver_sm_resp");
        assert_eq!(done["command_status"], 0, "acked ESME_ROK");
    }

    // Concatenated MO: 8-bit UDH parts, then SAR parts, reassembled to the same text.
    let comment =
        text::ucs2_encode("Оператор был вежлив, но долго пришлось ждать на линии. Спасибо!");
    let halves: Vec<&[u8]> = comment.chunks(comment.len().div_ceil(2)).collect();
    for method in ["udh", "sar"] {
        let mut reassembler = Reassembler::new(Duration::from_secs(60), 100);
        let mut result = None;
        // Second part first: order must not matter.
        for (seq, half) in [(2u8, halves[1]), (1, halves[0])] {
            let cmd = if method == "udh" {
                let mut sm = vec![5, 0, 3, 0x2A, 2, seq];
                sm.extend_from_slice(half);
                json!({"cmd": "deliver_sm", "source_addr": "998901234567", "destination_addr": "5700",
                       "esm_class": 0x40, "data_coding": 8, "short_message_hex": hex(&sm)})
            } else {
                json!({"cmd": "deliver_sm", "source_addr": "998901234567", "destination_addr": "5700",
                       "data_coding": 8, "short_message_hex": hex(half),
                       "tlvs": {"sar_msg_ref_num": 513, "sar_total_segments": 2, "sar_segment_seqnum": seq}})
            };
            let take = async {
                let message = next_inbound(&mut inbound).await;
                let i = &message.inbound;
                let part = Part {
                    source: i.source_addr.clone(),
                    destination: i.destination_addr.clone(),
                    concat: i.concat.expect("a part of a concatenated message"),
                    data_coding: i.data_coding,
                    payload: i.payload.to_vec(),
                };
                let offer = reassembler
                    .offer(std::time::SystemTime::now(), part)
                    .unwrap();
                message.ack.ack();
                offer
            };
            let (_, offer) = tokio::join!(smsc.command(cmd), take);
            if let Offer::Complete(message) = offer {
                result = Some(message.body());
            }
        }
        assert_eq!(
            result,
            Some(MessageBody::Text(
                "Оператор был вежлив, но долго пришлось ждать на линии. Спасибо!".into()
            )),
            "{method}"
        );
    }

    // A delivery receipt with TLVs.
    let receipt_text = format!(
        "id:{} sub:001 dlvrd:001 submit date:2611221430 done date:2611221431 stat:DELIVRD err:000 text:Thanks",
        sent.message_ids[0]
    );
    let cmd = json!({"cmd": "deliver_sm", "source_addr": "998901234567", "destination_addr": "5700",
                     "esm_class": 4, "short_message_hex": hex(receipt_text.as_bytes()),
                     "tlvs": {"receipted_message_id": sent.message_ids[0], "message_state": 2}});
    let take = async {
        let message = next_inbound(&mut inbound).await;
        let receipt = message
            .inbound
            .receipt
            .clone()
            .expect("a receipt")
            .expect("parses");
        message.ack.ack();
        receipt
    };
    let (_, receipt) = tokio::join!(smsc.command(cmd), take);
    assert_eq!(receipt.message_id, sent.message_ids[0]);
    assert!(receipt.state.is_success());

    // Throttled twice, then accepted: one message id, delivered once.
    smsc.command(json!({"cmd": "throttle", "count": 2})).await;
    let id = pool
        .send_text("998901234567", "Thanks!")
        .await
        .unwrap()
        .message_ids;
    assert_eq!(id.len(), 1);
    for _ in 0..2 {
        smsc.event("throttled", |e| e["event"] == "throttled").await;
    }

    // The link drops: we reconnect, rebind and carry on.
    smsc.command(json!({"cmd": "close"})).await;
    smsc.event("second bind", |e| e["event"] == "bound").await;
    let sent = pool
        .send_text("998901234567", "after reconnect")
        .await
        .unwrap();
    assert_eq!(sent.message_ids.len(), 1);

    // Shutdown unbinds.
    pool.shutdown().await;
    smsc.pdu("unbind").await;
    smsc.quit().await;
}

/// node `smpp`'s TLS server (`createServer({key, cert})`) with a certificate from the test CA:
/// our ESME verifies it, binds and submits over TLS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_esme_over_tls_against_node_smsc() {
    let pki = crate::tls::Pki::new("interop");
    let (mut smsc, addr) = node_tls_smsc(&pki.path("server.pem"), &pki.path("server.key")).await;
    let connector = tls_connector(
        "node",
        "127.0.0.1".into(),
        addr.port(),
        pki.client_tls("localhost", false),
    );
    let mut config = PoolConfig::new("node", connector);
    config.reconnect_min = Duration::from_millis(100);
    config.reconnect_max = Duration::from_millis(500);
    let (pool, _inbound) = Pool::start(config, 64);

    let bind = smsc.pdu("bind_transceiver").await;
    assert_eq!(bind["fields"]["interface_version"], 0x34);
    smsc.event("bound", |e| e["event"] == "bound").await;
    let sent = tokio::time::timeout(WAIT, pool.send_text("998901234567", "5 отлично"))
        .await
        .expect("submit answered over TLS")
        .unwrap();
    assert_eq!(sent.message_ids.len(), 1);
    let submit = smsc.pdu("submit_sm").await;
    assert_eq!(submit["fields"]["destination_addr"], "998901234567");
    let (coding, data) = joined_payload(&[submit]);
    assert_eq!(
        text::decode(coding as u8, &data),
        MessageBody::Text("5 отлично".into())
    );
    assert!(
        !smsc.backlog.iter().any(|e| e["event"] == "tls_error"),
        "{:#?}",
        smsc.backlog
    );
    pool.shutdown().await;
    smsc.pdu("unbind").await;
    smsc.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_esme_against_our_simulator() {
    use smsflow::sim::{self, Mo, SimConfig};

    let smsc = sim::start(SimConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        receipt_delay: Duration::from_millis(50),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let port = smsc.local_addr().port().to_string();

    // A wrong password is refused.
    let mut intruder = NodePeer::spawn(
        "esme.js",
        &[
            "--host",
            "127.0.0.1",
            "--port",
            &port,
            "--system-id",
            "smsflow",
            "--password",
            "nope",
        ],
    )
    .await;
    let failed = intruder
        .event("bind_failed", |e| e["event"] == "bind_failed")
        .await;
    assert_eq!(failed["command_status"], 0x0E);
    intruder.quit().await;

    let mut esme = NodePeer::spawn(
        "esme.js",
        &[
            "--host",
            "127.0.0.1",
            "--port",
            &port,
            "--system-id",
            "smsflow",
            "--password",
            "smsflow",
        ],
    )
    .await;
    let bound = esme.event("bound", |e| e["event"] == "bound").await;
    assert_eq!(bound["system_id"], "SMSFLOWSIM");

    // submit_sm with a receipt requested: a message id, then a receipt naming it.
    let mut submitted = smsc.submitted();
    let text = text::ucs2_encode("Спасибо за вашу оценку!");
    let done = esme
        .command(json!({"cmd": "submit_sm", "source_addr": "5700", "destination_addr": "998901234567",
                        "data_coding": 8, "registered_delivery": 1, "short_message_hex": hex(&text)}))
        .await;
    assert_eq!(done["command_status"], 0);
    let message_id = done["message_id"]
        .as_str()
        .expect("a message id")
        .to_owned();
    let seen = tokio::time::timeout(WAIT, submitted.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(seen.text, "Спасибо за вашу оценку!");
    assert_eq!(seen.message_ids, std::slice::from_ref(&message_id));
    let receipt = esme
        .event("receipt", |e| {
            e["event"] == "pdu" && e["command"] == "deliver_sm" && e["fields"]["esm_class"] == 4
        })
        .await;
    assert_eq!(
        receipt["fields"]["receipted_message_id"],
        message_id.as_str()
    );
    assert_eq!(receipt["fields"]["message_state"], 2);

    // An injected MO reaches the node ESME, which acknowledges it.
    let delivery = smsc
        .inject_mo(Mo {
            source: "998901234567".into(),
            destination: "5700".into(),
            text: "5 отлично".into(),
        })
        .unwrap();
    let mo = esme
        .event("mo", |e| {
            e["event"] == "pdu" && e["command"] == "deliver_sm" && e["fields"]["esm_class"] == 0
        })
        .await;
    assert_eq!(mo["fields"]["data_coding"], 8);
    let octets = hex::decode(mo["fields"]["short_message_hex"].as_str().unwrap()).unwrap();
    assert_eq!(
        text::decode(8, &octets),
        MessageBody::Text("5 отлично".into())
    );
    let status = tokio::time::timeout(WAIT, delivery.outcome())
        .await
        .unwrap()
        .unwrap();
    assert!(status.is_ok(), "acknowledged by node: {status}");

    // enquire_link and unbind from the node side.
    let done = esme.command(json!({"cmd": "enquire_link"})).await;
    assert_eq!(done["command_status"], 0);
    let done = esme.command(json!({"cmd": "unbind"})).await;
    assert_eq!(done["response_command"], "unbind_resp");
    esme.quit().await;
    smsc.shutdown().await;
}
/// Starts node `smpp`'s TLS server with `cert` and `key`; the peer and its address.
pub(crate) async fn node_tls_smsc(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> (NodePeer, SocketAddr) {
    let (cert, key) = (cert.to_str().unwrap(), key.to_str().unwrap());
    let mut smsc = NodePeer::spawn(
        "smsc.js",
        &["--port", "0", "--tls-cert", cert, "--tls-key", key],
    )
    .await;
    let listening = smsc.event("listening", |e| e["event"] == "listening").await;
    assert_eq!(listening["tls"], true, "{listening}");
    let port = listening["port"].as_u64().unwrap() as u16;
    (smsc, SocketAddr::from(([127, 0, 0, 1], port)))
}
