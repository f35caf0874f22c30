//! The service pipeline in-process against the simulator over TCP, on a store on disk: what
//! happens across a restart (stored parts, redelivered MOs) and when a submit gets no answer.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use smsflow::esme::{Pool, PoolConfig, tcp_connector};
use smsflow::flow::engine::{EngineConfig, FlowEngine};
use smsflow::service::driver::{Pipeline, Settings, now_ms};
use smsflow::sim::{self, RawDeliver, SimAddress, SimConfig, SmscHandle};
use smsflow::store::{MoMark, MoRecord};

use crate::util::{TempDir, WAIT, open_store, send_mo, until};

const MSISDN: &str = "998901234567";

struct Service {
    pipeline: Arc<Pipeline>,
    pool: Arc<Pool>,
}

fn open_engine(data: &Path) -> Arc<FlowEngine> {
    let store = open_store(data);
    let (engine, errors) = FlowEngine::new(
        store,
        EngineConfig {
            scripts_dir: Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts")),
            ..EngineConfig::default()
        },
    );
    assert!(errors.is_empty(), "{errors:?}");
    Arc::new(engine)
}

async fn start(engine: Arc<FlowEngine>, smsc: &SmscHandle, response_timeout: Duration) -> Service {
    let addr = smsc.local_addr();
    let mut config = PoolConfig::new("sim", tcp_connector(addr.ip().to_string(), addr.port()));
    config.session.response_timeout = response_timeout;
    config.reconnect_min = Duration::from_millis(50);
    let (pool, inbound) = Pool::start(config, 1024);
    let pool = Arc::new(pool);
    let store = engine.store().clone();
    let pipeline = Pipeline::start(
        engine,
        store,
        vec![pool.clone()],
        inbound,
        Settings::default(),
    );
    Service { pipeline, pool }
}

impl Service {
    async fn stop(self) {
        self.pipeline.shutdown().await;
        self.pool.shutdown().await;
        self.pipeline.engine().store().flush().await.unwrap();
    }
}

async fn simulator() -> SmscHandle {
    simulator_with_receipts_after(Duration::from_millis(10)).await
}

async fn simulator_with_receipts_after(receipt_delay: Duration) -> SmscHandle {
    sim::start(SimConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        receipt_delay,
        retry_delay: Duration::from_millis(100),
        ..SimConfig::default()
    })
    .await
    .unwrap()
}

fn survey_event() -> serde_json::Value {
    serde_json::json!({"id": "call-1", "msisdn": MSISDN, "operator": "op-1", "channel": "call"})
}

/// One part of a two-part GSM MO with an 8-bit concatenation UDH.
fn part(seq: u8, text: &str) -> RawDeliver {
    let mut short_message = vec![0x05, 0x00, 0x03, 0x42, 0x02, seq];
    short_message.extend_from_slice(text.as_bytes());
    RawDeliver {
        service_type: String::new(),
        source: SimAddress::guess(MSISDN),
        destination: SimAddress::guess("5700"),
        esm_class: 0x40,
        registered_delivery: 0,
        data_coding: 0,
        short_message,
        tlvs: Vec::new(),
    }
}

async fn inject(smsc: &SmscHandle, raw: RawDeliver) -> smsflow::smpp::pdu::CommandStatus {
    let delivery = smsc.inject_deliver(raw).unwrap();
    tokio::time::timeout(WAIT, delivery.outcome())
        .await
        .unwrap()
        .unwrap()
}

/// The first part arrives before a restart, the second after: the message is whole, because
/// the first part was stored before it was acknowledged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_concatenated_reply_survives_a_restart_between_its_parts() {
    let dir = TempDir::new("pipeline-parts");
    let data = dir.path().join("data");
    let smsc = simulator().await;
    let mut submitted = smsc.submitted();

    let engine = open_engine(&data);
    let (started, _) = engine
        .start(now_ms(), "survey", survey_event(), Some("call-1"))
        .unwrap();
    let service = start(engine, &smsc, Duration::from_secs(5)).await;
    let question = tokio::time::timeout(WAIT, submitted.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(question.destination, MSISDN);
    let first = inject(&smsc, part(1, "4 operator was polite ")).await;
    assert!(first.is_ok(), "{first:?}");
    service.stop().await;

    let engine = open_engine(&data);
    assert_eq!(
        engine.store().parts().unwrap().len(),
        1,
        "part 1 is on disk"
    );
    let service = start(engine.clone(), &smsc, Duration::from_secs(5)).await;
    let second = inject(&smsc, part(2, "but I waited long")).await;
    assert!(second.is_ok(), "{second:?}");
    let thanks = tokio::time::timeout(WAIT, submitted.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(
        thanks.text.starts_with("Спасибо за вашу оценку!"),
        "{}",
        thanks.text
    );

    let ratings = engine.store().ratings(0, i64::MAX).unwrap();
    assert_eq!(ratings.len(), 1);
    assert_eq!(ratings[0].conversation, started.conversation);
    assert_eq!(ratings[0].score, 4);
    assert_eq!(ratings[0].comment, "operator was polite but I waited long");
    assert!(
        engine.store().parts().unwrap().is_empty(),
        "consumed parts are removed"
    );
    service.stop().await;
    smsc.shutdown().await;
}

/// A crash after an MO's step was stored but before its response left: the SMSC delivers it
/// again, and it is acknowledged without a second step.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivered_mo_is_acknowledged_and_processed_once() {
    let dir = TempDir::new("pipeline-redelivery");
    let engine = open_engine(&dir.path().join("data"));
    engine
        .start(now_ms(), "survey", survey_event(), Some("call-1"))
        .unwrap();
    // What the pipeline stores for the MO "5" from MSISDN to 5700 (GSM, one part).
    let mark = MoMark::new(MSISDN, "5700", 0, None, None, b"5");
    let record = MoRecord {
        pending_ack: vec![mark.clone()],
        parts: Vec::new(),
        received_at: now_ms(),
    };
    engine
        .reply_mo(now_ms(), MSISDN, "5", now_ms(), Some(record))
        .unwrap();
    assert!(engine.store().mo_seen(&mark, now_ms()).unwrap());

    let smsc = simulator().await;
    let mut submitted = smsc.submitted();
    let service = start(engine.clone(), &smsc, Duration::from_secs(5)).await;
    let status = send_mo(&smsc, MSISDN, "5").await;
    assert!(status.is_ok(), "{status:?}");
    let pipeline = service.pipeline.clone();
    until(
        || pipeline.counts().mo_redelivered == 1,
        "the redelivery is recognised",
    )
    .await;
    assert_eq!(pipeline.counts().mo, 0, "no second step");
    assert_eq!(engine.store().ratings(0, i64::MAX).unwrap().len(), 1);
    assert!(
        engine.store().mo_seen(&mark, now_ms()).unwrap(),
        "the mark outlives the response, for the redelivery window"
    );

    // Sent once more on the same live bind after our response went out: with only its
    // content to go by, that is someone writing again (the inbox takes it), not the SMSC.
    assert!(send_mo(&smsc, MSISDN, "5").await.is_ok());
    until(
        || pipeline.counts().mo == 1,
        "a copy on a live bind after our response is a new message",
    )
    .await;
    assert_eq!(pipeline.counts().mo_redelivered, 1);
    service.stop().await;
    // Only what the first steps queued: the question and the thanks.
    let mut texts = Vec::new();
    while let Ok(m) = submitted.try_recv() {
        texts.push(m.text);
    }
    assert_eq!(texts.len(), 2, "{texts:?}");
    smsc.shutdown().await;
}

/// A GSM MO from MSISDN with the SMSC's `user_message_reference`.
fn referenced(text: &str, reference: u16) -> RawDeliver {
    RawDeliver {
        service_type: String::new(),
        source: SimAddress::guess(MSISDN),
        destination: SimAddress::guess("5700"),
        esm_class: 0,
        registered_delivery: 0,
        data_coding: 0,
        short_message: text.as_bytes().to_vec(),
        tlvs: vec![(0x0204, reference.to_be_bytes().to_vec())],
    }
}

/// The SMSC sends an MO again, once before our deliver_sm_resp can have reached it and once
/// after it did (the response lost on the way): each copy is acknowledged and none is
/// processed again. The same text under another reference is a new message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivery_before_or_after_the_response_is_processed_once() {
    let dir = TempDir::new("pipeline-redelivery-window");
    let engine = open_engine(&dir.path().join("data"));
    let smsc = simulator().await;
    let mut submitted = smsc.submitted();
    let service = start(engine.clone(), &smsc, Duration::from_secs(5)).await;
    let pipeline = service.pipeline.clone();
    let (step, _) = engine
        .start(now_ms(), "survey", survey_event(), Some("call-1"))
        .unwrap();
    let id = step.conversation;
    service.pipeline.outbox_changed();
    let question = tokio::time::timeout(WAIT, submitted.recv()).await.unwrap();
    assert!(question.unwrap().text.contains("1 до 5"));

    // Before: the copy goes out right behind the first, before its response.
    smsc.resend_next_mos_early(1);
    assert!(inject(&smsc, referenced("hmm", 4242)).await.is_ok());
    until(
        || pipeline.counts().mo_redelivered == 1,
        "the early copy is recognised",
    )
    .await;
    // After: the first was acknowledged; the SMSC never saw it and sends it again.
    assert!(inject(&smsc, referenced("hmm", 4242)).await.is_ok());
    until(
        || pipeline.counts().mo_redelivered == 2,
        "the late copy is recognised",
    )
    .await;
    assert_eq!(pipeline.counts().mo, 1, "one step for three copies");
    let not_understood = tokio::time::timeout(WAIT, submitted.recv()).await.unwrap();
    assert!(not_understood.unwrap().text.starts_with("Извините"));
    let open = engine.store().conversation(id).unwrap().unwrap();
    assert!(
        open.status.is_open(),
        "one \"not understood\" does not close the survey"
    );

    // Another reference: the customer wrote the same again, a second "not understood".
    assert!(inject(&smsc, referenced("hmm", 4243)).await.is_ok());
    until(
        || pipeline.counts().mo == 2,
        "a new reference is a new message",
    )
    .await;
    let again = tokio::time::timeout(WAIT, submitted.recv()).await.unwrap();
    assert!(again.unwrap().text.starts_with("Извините"));
    service.stop().await;
    assert!(submitted.try_recv().is_err(), "nothing else was sent");
    smsc.shutdown().await;
}

/// A part of a long MT that the SMSC never answers is sent again alone, under the message's
/// concatenation reference: the handset assembles one message, no orphan and no copy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multipart_retry_resends_only_the_lost_part_under_the_same_reference() {
    let dir = TempDir::new("pipeline-part-retry");
    let engine = open_engine(&dir.path().join("data"));
    let smsc = simulator().await;
    smsc.swallow_next_submits(1);
    let mut submitted = smsc.submitted();
    let service = start(engine.clone(), &smsc, Duration::from_millis(300)).await;
    let (step, _) = engine
        .start(now_ms(), "survey", survey_event(), Some("call-1"))
        .unwrap();
    let question = step.outbox[0].text.clone();
    assert_eq!(smsflow::smpp::text::encode(&question, 0).parts.len(), 3);
    service.pipeline.outbox_changed();
    let whole = tokio::time::timeout(WAIT, submitted.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(whole.text, question);
    assert_eq!(whole.message_ids.len(), 3);
    let id = step.conversation;
    until(
        || {
            let timeline = engine.store().timeline(id).unwrap();
            timeline.iter().any(|e| e.status.to_string() != "queued")
        },
        "the outcome is recorded",
    )
    .await;
    service.stop().await;
    assert_eq!(
        smsc.stats().submit_sm_received,
        4,
        "three parts, then the lost one alone"
    );
    assert!(submitted.try_recv().is_err(), "no second copy");
    smsc.shutdown().await;
}

/// A submit the SMSC does not answer in time is sent again later; the message leaves the
/// outbox only once accepted, and its timeline entry follows it to "delivered".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_submit_without_answer_is_retried_until_accepted() {
    let dir = TempDir::new("pipeline-retry");
    let engine = open_engine(&dir.path().join("data"));
    let smsc = simulator().await;
    smsc.set_submit_latency(Duration::from_secs(2));
    let mut submitted = smsc.submitted();
    let service = start(engine.clone(), &smsc, Duration::from_millis(300)).await;
    let (started, _) = engine
        .start(now_ms(), "survey", survey_event(), Some("call-1"))
        .unwrap();
    service.pipeline.outbox_changed();

    let pipeline = service.pipeline.clone();
    until(
        || pipeline.counts().mt_retried >= 1,
        "a timed-out submit is retried",
    )
    .await;
    assert_eq!(
        engine.store().outbox(10).unwrap().len(),
        1,
        "still in the outbox"
    );
    smsc.set_submit_latency(Duration::ZERO);
    until(
        || pipeline.counts().mt_accepted == 1,
        "the retry is accepted",
    )
    .await;
    assert!(engine.store().outbox(10).unwrap().is_empty());
    let question = tokio::time::timeout(WAIT, submitted.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(question.destination, MSISDN);

    let store = engine.store().clone();
    let id = started.conversation;
    until(
        || {
            store
                .timeline(id)
                .unwrap()
                .iter()
                .any(|e| e.status.to_string() == "delivered")
        },
        "the receipt marks the question delivered",
    )
    .await;
    service.stop().await;
    smsc.shutdown().await;
}

/// An SMSC that sends the receipt right behind the submit_sm_resp: the receipt can arrive
/// before the pipeline recorded which message that SMSC id belongs to, and still counts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receipt_that_overtakes_the_submit_record_still_counts() {
    let dir = TempDir::new("pipeline-early-receipt");
    let engine = open_engine(&dir.path().join("data"));
    let smsc = simulator_with_receipts_after(Duration::ZERO).await;
    let service = start(engine.clone(), &smsc, Duration::from_secs(5)).await;
    let mut ids = Vec::new();
    for i in 0..20 {
        let event = serde_json::json!({"id": format!("call-{i}"), "msisdn": format!("99890765{i:04}"),
            "operator": "op-1", "channel": "call"});
        let (started, _) = engine.start(now_ms(), "survey", event, None).unwrap();
        ids.push(started.conversation);
    }
    service.pipeline.outbox_changed();
    let store = engine.store().clone();
    until(
        || {
            ids.iter().all(|&id| {
                store
                    .timeline(id)
                    .unwrap()
                    .iter()
                    .any(|e| e.status.to_string() == "delivered")
            })
        },
        "every question marked delivered",
    )
    .await;
    service.stop().await;
    smsc.shutdown().await;
}

/// A part whose concatenation info cannot be right (part 3 of 2) is taken as a message of
/// its own, and its stored copy goes with that step.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_part_that_cannot_be_placed_is_a_message_and_leaves_no_stored_part() {
    let dir = TempDir::new("pipeline-bad-part");
    let engine = open_engine(&dir.path().join("data"));
    engine
        .start(now_ms(), "survey", survey_event(), Some("call-1"))
        .unwrap();
    let smsc = simulator().await;
    let service = start(engine.clone(), &smsc, Duration::from_secs(5)).await;
    assert!(inject(&smsc, part(3, "5")).await.is_ok());
    let ratings = engine.store().ratings(0, i64::MAX).unwrap();
    assert_eq!(ratings.len(), 1, "rated from the part alone");
    assert_eq!(ratings[0].score, 5);
    assert!(
        engine.store().parts().unwrap().is_empty(),
        "nothing left to restore"
    );
    service.stop().await;
    smsc.shutdown().await;
}

/// A receipt per part, as most carriers send them for a long MT: the message is delivered
/// when all of its parts are (receipts for parts 3, 1, 2 in that order), undeliverable as
/// soon as one part fails (part 2 of the second message), and `on_delivery` hears each change
/// of the message's status once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_10_receipts_for_every_part_of_a_long_message_decide_its_status() {
    let dir = TempDir::new("pipeline-part-receipts");
    let engine = open_engine(&dir.path().join("data"));
    engine
        .load_source(
            "long",
            r#"
            fn on_event(event) {
                this.seen = [];
                send(event.msisdn, event.text);
            }
            fn on_delivery(receipt) { this.seen.push(receipt.status); }
            "#,
        )
        .unwrap();
    // The simulator's own receipts would come an hour later: the test sends its own.
    let smsc = simulator_with_receipts_after(Duration::from_secs(3600)).await;
    let mut submitted = smsc.submitted();
    let service = start(engine.clone(), &smsc, Duration::from_secs(5)).await;
    let long = "Спасибо! ".repeat(20);
    let mut sent = Vec::new();
    for msisdn in ["998901110001", "998901110002"] {
        let event = serde_json::json!({"msisdn": msisdn, "text": long});
        let (started, _) = engine.start(now_ms(), "long", event, None).unwrap();
        service.pipeline.outbox_changed();
        let message = tokio::time::timeout(WAIT, submitted.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(message.message_ids.len(), 3, "three parts");
        sent.push((started.conversation, message.message_ids));
    }
    let store = engine.store().clone();
    let pipeline = service.pipeline.clone();
    until(
        || pipeline.counts().mt_accepted == 2,
        "both messages recorded",
    )
    .await;
    let receipt = |id: &str, stat: &str| {
        RawDeliver {
        service_type: String::new(),
        source: SimAddress::guess("998901110001"),
        destination: SimAddress::guess("5700"),
        esm_class: 0x04,
        registered_delivery: 0,
        data_coding: 0,
        short_message: format!(
            "id:{id} sub:001 dlvrd:001 submit date:2612011200 done date:2612011201 stat:{stat} err:000 text:"
        )
        .into_bytes(),
        tlvs: Vec::new(),
    }
    };
    let status = |conversation: u64| store.timeline(conversation).unwrap()[0].status.to_string();
    let seen = |conversation: u64| {
        store.conversation(conversation).unwrap().unwrap().state["seen"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };

    let (a, ids) = &sent[0];
    assert!(inject(&smsc, receipt(&ids[2], "DELIVRD")).await.is_ok());
    assert_eq!(status(*a), "enroute", "part 3 of 3 delivered");
    assert!(inject(&smsc, receipt(&ids[0], "DELIVRD")).await.is_ok());
    assert_eq!(status(*a), "enroute", "parts 3 and 1 delivered");
    assert!(inject(&smsc, receipt(&ids[1], "DELIVRD")).await.is_ok());
    assert_eq!(status(*a), "delivered", "every part delivered");
    assert_eq!(seen(*a), ["enroute", "delivered"]);

    let (b, ids) = &sent[1];
    assert!(inject(&smsc, receipt(&ids[1], "UNDELIV")).await.is_ok());
    assert_eq!(status(*b), "undeliverable", "part 2 failed");
    assert!(inject(&smsc, receipt(&ids[0], "DELIVRD")).await.is_ok());
    assert!(inject(&smsc, receipt(&ids[2], "DELIVRD")).await.is_ok());
    assert_eq!(status(*b), "undeliverable", "later parts change nothing");
    assert_eq!(seen(*b), ["undeliverable"]);
    service.stop().await;
    smsc.shutdown().await;
}
