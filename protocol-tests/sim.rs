//! The SMSC simulator over real TCP on loopback, driven by a minimal ESME built from our own
//! codec, encoder and decoder. No test sleeps to synchronise: each awaits the PDU it expects
//! (with a generous guard timeout so a bug fails instead of hanging), and absence is shown by
//! ordering (an enquire_link answered before anything else arrives).

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};
use smsflow::sim::handsets::Handsets;
use smsflow::sim::{self, Mo, RawDeliver, SimAddress, SimConfig, SmscHandle, SubscribersConfig};
use smsflow::smpp::concat::{Offer, Part, Reassembler};
use smsflow::smpp::encode::{self, Address, BindMode, BindParams, ShortMessage};
use smsflow::smpp::pdu::{Sm, tag};
use smsflow::smpp::receipt::{self, MessageState};
use smsflow::smpp::text::{self, MessageBody};
use smsflow::smpp::udh::UDHI;
use smsflow::smpp::{CommandId, CommandStatus, FrameCodec, Pdu, decode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::codec::Decoder;

use crate::util::frame;

/// The survey question of SPEC.md ("ask", comment allowed): UCS-2, three parts.
const ASK: &str = "Спасибо за ваш звонок. Оцените, пожалуйста, нашу работу по шкале от 1 до 5, где 1 - очень плохо, 5 - отлично. Можете также оставить комментарий. Ваш отзыв важен для нас!";
const SUBSCRIBER: &str = "998901234567";
const SHORT_CODE: &str = "5700";
/// Only a guard against hangs; every wait ends as soon as its PDU arrives.
const GUARD: Duration = Duration::from_secs(10);

fn config() -> SimConfig {
    SimConfig {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        receipt_delay: Duration::from_millis(5),
        retry_delay: Duration::from_millis(5),
        ..SimConfig::default()
    }
}

async fn start(config: SimConfig) -> SmscHandle {
    sim::start(config).await.expect("simulator starts")
}

/// Closes the ESMEs first, so their sessions end at once instead of waiting for an
/// unbind_resp nobody sends, then shuts the simulator down.
async fn stop(smsc: SmscHandle, esmes: Vec<Esme>) {
    drop(esmes);
    smsc.shutdown().await;
}

/// A minimal ESME: frames in, frames out, nothing automatic.
struct Esme {
    stream: TcpStream,
    codec: FrameCodec,
    rbuf: BytesMut,
    seq: u32,
}

impl Esme {
    async fn connect(smsc: &SmscHandle) -> Self {
        let stream = TcpStream::connect(smsc.local_addr())
            .await
            .expect("connect");
        Self {
            stream,
            codec: FrameCodec::default(),
            rbuf: BytesMut::new(),
            seq: 0,
        }
    }

    /// Connects and binds with the default account; panics unless ESME_ROK.
    async fn bound(smsc: &SmscHandle, mode: BindMode) -> Self {
        let mut esme = Self::connect(smsc).await;
        let (status, _) = esme.bind(mode, "smsflow", "smsflow").await;
        assert_eq!(status, CommandStatus::ESME_ROK);
        esme
    }

    fn next_seq(&mut self) -> u32 {
        self.seq += 1;
        self.seq
    }

    async fn send(&mut self, command: &rusmpp::Command) {
        self.send_raw(&encode::to_frame(command)).await;
    }

    async fn send_raw(&mut self, octets: &[u8]) {
        self.stream.write_all(octets).await.expect("write");
    }

    /// The next whole frame; `None` when the simulator closed the connection.
    async fn try_recv(&mut self) -> Option<Bytes> {
        let read = async {
            loop {
                if let Some(frame) = self.codec.decode(&mut self.rbuf).expect("framing") {
                    return Some(frame);
                }
                match self.stream.read_buf(&mut self.rbuf).await {
                    Ok(0) | Err(_) => return None,
                    Ok(_) => {}
                }
            }
        };
        tokio::time::timeout(GUARD, read)
            .await
            .expect("nothing arrived in time")
    }

    async fn recv(&mut self) -> Bytes {
        self.try_recv().await.expect("connection closed")
    }

    /// The next frame, which must be a deliver_sm; returns it with its sequence number.
    async fn recv_deliver(&mut self) -> (Bytes, u32) {
        let frame = self.recv().await;
        let command = decode(&frame).expect("decodes");
        assert_eq!(command.command_id(), CommandId::DeliverSm, "{command:?}");
        let seq = command.sequence_number();
        (frame, seq)
    }

    async fn ack(&mut self, seq: u32, status: CommandStatus) {
        self.send(&encode::deliver_sm_resp(seq, status)).await;
    }

    /// Binds; returns the status and the whole response frame.
    async fn bind(
        &mut self,
        mode: BindMode,
        system_id: &str,
        password: &str,
    ) -> (CommandStatus, Bytes) {
        let seq = self.next_seq();
        let params = BindParams {
            system_id,
            password,
            system_type: "",
            addr_ton: 3,
            addr_npi: 0,
            address_range: SHORT_CODE,
        };
        self.send(&encode::bind(mode, seq, &params).expect("bind encodes"))
            .await;
        let frame = self.recv().await;
        let command = decode(&frame).expect("decodes");
        assert_eq!(command.sequence_number(), seq);
        (command.command_status(), frame)
    }

    /// Submits one part; returns the submit_sm_resp's status and message id.
    async fn submit_part(
        &mut self,
        to: &str,
        data_coding: u8,
        esm_class: u8,
        registered_delivery: u8,
        short_message: &[u8],
    ) -> (CommandStatus, String) {
        let seq = self.next_seq();
        let message = ShortMessage::new(
            Address::short_code(SHORT_CODE),
            Address::international(to),
            data_coding,
            short_message,
        )
        .esm_class(esm_class)
        .registered_delivery(registered_delivery);
        self.send(&encode::submit_sm(seq, &message).expect("submit_sm encodes"))
            .await;
        let frame = self.recv().await;
        let command = decode(&frame).expect("decodes");
        assert_eq!(command.sequence_number(), seq);
        let Pdu::SubmitSmResp(resp) = command.pdu else {
            panic!("expected submit_sm_resp, got {command:?}");
        };
        (
            command.command_status(),
            resp.message_id.to_str_lossy().into_owned(),
        )
    }

    /// Submits a text as the service would (GSM or UCS-2, parts with UDH); returns the ids.
    async fn submit_text(&mut self, to: &str, text: &str, registered_delivery: u8) -> Vec<String> {
        let encoded = text::encode(text, 0x42);
        let esm_class = if encoded.needs_udhi() { UDHI } else { 0 };
        let mut ids = Vec::new();
        for part in &encoded.parts {
            let (status, id) = self
                .submit_part(
                    to,
                    encoded.data_coding(),
                    esm_class,
                    registered_delivery,
                    part,
                )
                .await;
            assert_eq!(status, CommandStatus::ESME_ROK);
            ids.push(id);
        }
        ids
    }

    /// Proves nothing was sent to us before this point: the enquire_link_resp comes first.
    async fn assert_nothing_pending(&mut self) {
        let seq = self.next_seq();
        self.send(&encode::enquire_link(seq)).await;
        let frame = self.recv().await;
        let command = decode(&frame).expect("decodes");
        assert_eq!(
            command.command_id(),
            CommandId::EnquireLinkResp,
            "{command:?}"
        );
        assert_eq!(command.sequence_number(), seq);
    }
}

fn sm<'a>(frame: &'a Bytes) -> Sm<'a> {
    match decode(frame).expect("decodes").pdu {
        Pdu::DeliverSm(sm) => sm,
        other => panic!("expected deliver_sm, got {other:?}"),
    }
}

fn text_of(sm: &Sm<'_>) -> String {
    match text::decode(sm.data_coding, sm.payload()) {
        MessageBody::Text(text) => text,
        MessageBody::Binary(octets) => panic!("binary {octets:02x?}"),
    }
}

/// Receives deliver_sm (acking each) until they reassemble into one message.
async fn recv_message(esme: &mut Esme) -> (String, String, usize) {
    let mut reassembler = Reassembler::new(Duration::from_secs(60), 16);
    let mut parts = 0;
    loop {
        let (frame, seq) = esme.recv_deliver().await;
        esme.ack(seq, CommandStatus::ESME_ROK).await;
        parts += 1;
        let sm = sm(&frame);
        let Some(part) = Part::from_sm(&sm) else {
            return (
                sm.source_addr.to_str_lossy().into_owned(),
                text_of(&sm),
                parts,
            );
        };
        if let Offer::Complete(message) = reassembler
            .offer(SystemTime::now(), part)
            .expect("valid part")
        {
            let MessageBody::Text(text) = message.body() else {
                panic!("binary message");
            };
            return (message.key.source, text, parts);
        }
    }
}

#[tokio::test]
async fn bind_checks_the_account() {
    let smsc = start(config()).await;
    let mut esme = Esme::connect(&smsc).await;
    let (status, resp) = esme.bind(BindMode::Transceiver, "smsflow", "smsflow").await;
    assert_eq!(status, CommandStatus::ESME_ROK);
    let Pdu::BindTransceiverResp(body) = decode(&resp).expect("decodes").pdu else {
        panic!("not a bind_transceiver_resp");
    };
    assert_eq!(body.system_id, "SMSFLOWSIM");

    let mut esme = Esme::connect(&smsc).await;
    let (status, resp) = esme.bind(BindMode::Transmitter, "smsflow", "wrong").await;
    assert_eq!(status, CommandStatus::ESME_RINVPASWD);
    assert_eq!(resp.len(), 16, "error responses are header only");
    let (status, _) = esme.bind(BindMode::Receiver, "someone", "smsflow").await;
    assert_eq!(status, CommandStatus::ESME_RINVSYSID);

    smsc.reject_binds(true);
    let (status, _) = esme.bind(BindMode::Receiver, "smsflow", "smsflow").await;
    assert_eq!(status, CommandStatus::ESME_RBINDFAIL);
    let stats = smsc.stats();
    assert_eq!((stats.binds_accepted, stats.binds_rejected), (1, 3));
    stop(smsc, vec![esme]).await;
}

#[tokio::test]
async fn submit_needs_a_transmitting_bind() {
    let smsc = start(config()).await;
    let mut esme = Esme::connect(&smsc).await;
    let (status, _) = esme.submit_part(SUBSCRIBER, 0, 0, 0, b"hi").await;
    assert_eq!(status, CommandStatus::ESME_RINVBNDSTS);

    let mut receiver = Esme::bound(&smsc, BindMode::Receiver).await;
    let (status, id) = receiver.submit_part(SUBSCRIBER, 0, 0, 0, b"hi").await;
    assert_eq!(status, CommandStatus::ESME_RINVBNDSTS);
    assert_eq!(id, "");

    // Other operations before bind get generic_nack ESME_RINVBNDSTS.
    esme.send_raw(&frame(0x0000_0008, 0, 31, &[0; 8])).await;
    let nack = esme.recv().await;
    let command = decode(&nack).expect("decodes");
    assert_eq!(command.command_id(), CommandId::GenericNack);
    assert_eq!(command.command_status(), CommandStatus::ESME_RINVBNDSTS);
    assert_eq!(command.sequence_number(), 31);
    stop(smsc, vec![esme, receiver]).await;
}

#[tokio::test]
async fn submit_sm_gets_unique_hex_ids() {
    let smsc = start(config()).await;
    let mut esme = Esme::bound(&smsc, BindMode::Transmitter).await;
    let mut ids = HashSet::new();
    for i in 0..200 {
        let (status, id) = esme
            .submit_part(SUBSCRIBER, 0, 0, 0, format!("message {i}").as_bytes())
            .await;
        assert_eq!(status, CommandStatus::ESME_ROK);
        assert!(
            id.len() >= 8
                && id
                    .bytes()
                    .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase()),
            "{id}"
        );
        assert!(ids.insert(id), "ids repeat");
    }
    // A second session draws from the same counter.
    let mut other = Esme::bound(&smsc, BindMode::Transceiver).await;
    let (_, id) = other.submit_part(SUBSCRIBER, 0, 0, 0, b"x").await;
    assert!(ids.insert(id));
    assert_eq!(smsc.stats().submit_sm_received, 201);
    stop(smsc, vec![esme, other]).await;
}

#[tokio::test]
async fn receipt_names_the_submitted_message() {
    let smsc = start(config()).await;
    let mut esme = Esme::bound(&smsc, BindMode::Transceiver).await;
    let ids = esme.submit_text(SUBSCRIBER, "Your code is 1234", 1).await;
    let (frame, seq) = esme.recv_deliver().await;
    let sm = sm(&frame);
    assert!(sm.esm_class.is_receipt());
    assert_eq!(sm.source_addr, SUBSCRIBER);
    assert_eq!(sm.destination_addr, SHORT_CODE);
    assert_eq!(
        sm.tlvs
            .receipted_message_id()
            .map(|id| id.to_str_lossy().into_owned()),
        Some(ids[0].clone())
    );
    assert_eq!(sm.tlvs.message_state(), Some(2));
    let parsed = receipt::receipt(sm.short_message, None, None, None).expect("text alone parses");
    assert_eq!(parsed.message_id, ids[0]);
    assert_eq!(parsed.state, MessageState::Delivered);
    assert_eq!(parsed.error.as_deref(), Some("000"));
    let text = std::str::from_utf8(sm.short_message).expect("ascii");
    assert!(text.ends_with("text:Your code is 1234"), "{text}");
    esme.ack(seq, CommandStatus::ESME_ROK).await;
    esme.assert_nothing_pending().await;
    assert_eq!(smsc.stats().receipts_sent, 1);
    stop(smsc, vec![esme]).await;
}

#[tokio::test]
async fn receipt_failure_share_one_makes_every_receipt_undeliv() {
    let smsc = start(SimConfig {
        receipt_failure_share: 1.0,
        ..config()
    })
    .await;
    let mut esme = Esme::bound(&smsc, BindMode::Transceiver).await;
    for _ in 0..3 {
        let ids = esme.submit_text(SUBSCRIBER, "hello", 1).await;
        let (frame, seq) = esme.recv_deliver().await;
        let sm = sm(&frame);
        let parsed = receipt::receipt(
            sm.short_message,
            sm.tlvs.receipted_message_id().map(|id| id.as_bytes()),
            sm.tlvs.message_state(),
            None,
        )
        .expect("parses");
        assert_eq!(parsed.message_id, ids[0]);
        assert_eq!(parsed.state, MessageState::Undeliverable);
        assert_eq!(sm.tlvs.message_state(), Some(5));
        let text = std::str::from_utf8(sm.short_message).expect("ascii");
        assert!(text.contains("stat:UNDELIV err:001"), "{text}");
        esme.ack(seq, CommandStatus::ESME_ROK).await;
    }
    stop(smsc, vec![esme]).await;
}

#[tokio::test]
async fn throttle_next_refuses_exactly_n() {
    let smsc = start(config()).await;
    let mut esme = Esme::bound(&smsc, BindMode::Transmitter).await;
    smsc.throttle_next(2);
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(esme.submit_part(SUBSCRIBER, 0, 0, 0, b"hi").await.0);
    }
    assert_eq!(
        statuses,
        [
            CommandStatus::ESME_RTHROTTLED,
            CommandStatus::ESME_RTHROTTLED,
            CommandStatus::ESME_ROK
        ]
    );
    assert_eq!(smsc.stats().submit_sm_throttled, 2);
    stop(smsc, vec![esme]).await;
}

#[tokio::test]
async fn submit_latency_holds_the_answer_back() {
    let smsc = start(config()).await;
    let mut esme = Esme::bound(&smsc, BindMode::Transmitter).await;
    smsc.set_submit_latency(Duration::from_millis(100));
    // Both PDUs in one write, so the simulator reads them together: the enquire_link is
    // answered at once, the submit_sm only after the latency.
    let message = ShortMessage::new(
        Address::short_code(SHORT_CODE),
        Address::international(SUBSCRIBER),
        0,
        b"slow",
    );
    let mut both = encode::to_frame(&encode::submit_sm(7, &message).expect("encodes")).to_vec();
    both.extend_from_slice(&encode::to_frame(&encode::enquire_link(8)));
    esme.send_raw(&both).await;
    let order: Vec<CommandId> = [esme.recv().await, esme.recv().await]
        .iter()
        .map(|frame| decode(frame).expect("decodes").command_id())
        .collect();
    assert_eq!(order, [CommandId::EnquireLinkResp, CommandId::SubmitSmResp]);
    stop(smsc, vec![esme]).await;
}

#[tokio::test]
async fn max_tps_throttles_beyond_the_burst() {
    let smsc = start(SimConfig {
        max_tps: Some(1),
        ..config()
    })
    .await;
    let mut esme = Esme::bound(&smsc, BindMode::Transmitter).await;
    let mut statuses = Vec::new();
    for _ in 0..10 {
        statuses.push(esme.submit_part(SUBSCRIBER, 0, 0, 0, b"hi").await.0);
    }
    // One second of burst (one submit) passes; the bucket refills at one a second, so of nine
    // more back-to-back submits at least one is refused however slow the machine is.
    assert_eq!(statuses[0], CommandStatus::ESME_ROK);
    assert!(
        statuses.contains(&CommandStatus::ESME_RTHROTTLED),
        "{statuses:?}"
    );
    stop(smsc, vec![esme]).await;
}

#[tokio::test]
async fn inject_mo_gsm_text() {
    let smsc = start(config()).await;
    let mut esme = Esme::bound(&smsc, BindMode::Transceiver).await;
    let handle = smsc
        .inject_mo(Mo {
            source: SUBSCRIBER.into(),
            destination: SHORT_CODE.into(),
            text: "5 rahmat, juda yaxshi".into(),
        })
        .expect("injects");
    assert_eq!(handle.parts(), 1);
    let (frame, seq) = esme.recv_deliver().await;
    let sm = sm(&frame);
    assert_eq!(sm.data_coding, 0);
    assert!(!sm.esm_class.is_receipt());
    assert_eq!(sm.source_addr, SUBSCRIBER);
    assert_eq!(sm.destination_addr, SHORT_CODE);
    assert_eq!(text_of(&sm), "5 rahmat, juda yaxshi");
    esme.ack(seq, CommandStatus::ESME_ROK).await;
    assert_eq!(
        handle.outcome().await.expect("answered"),
        CommandStatus::ESME_ROK
    );
    let stats = smsc.stats();
    assert_eq!(
        (
            stats.mo_injected,
            stats.mo_delivered,
            stats.mo_pending,
            stats.mo_redelivered
        ),
        (1, 1, 0, 0)
    );
    stop(smsc, vec![esme]).await;
}

#[tokio::test]
async fn inject_mo_long_cyrillic_arrives_in_udh_parts() {
    let smsc = start(config()).await;
    let mut esme = Esme::bound(&smsc, BindMode::Receiver).await;
    let handle = smsc
        .inject_mo(Mo {
            source: SUBSCRIBER.into(),
            destination: SHORT_CODE.into(),
            text: ASK.into(),
        })
        .expect("injects");
    assert_eq!(handle.parts(), 3);
    let (source, text, parts) = recv_message(&mut esme).await;
    assert_eq!(
        (source.as_str(), text.as_str(), parts),
        (SUBSCRIBER, ASK, 3)
    );
    assert_eq!(
        handle.outcome().await.expect("answered"),
        CommandStatus::ESME_ROK
    );
    stop(smsc, vec![esme]).await;
}

#[tokio::test]
async fn inject_deliver_sends_raw_fields_and_tlvs() {
    let smsc = start(config()).await;
    let mut esme = Esme::bound(&smsc, BindMode::Transceiver).await;
    let raw = RawDeliver {
        source: SimAddress::guess(SUBSCRIBER),
        destination: SimAddress::guess(SHORT_CODE),
        data_coding: 0x03,
        short_message: b"caf\xe9".to_vec(),
        tlvs: vec![
            (tag::SAR_MSG_REF_NUM, vec![0x01, 0x02]),
            (tag::SAR_TOTAL_SEGMENTS, vec![2]),
            (tag::SAR_SEGMENT_SEQNUM, vec![1]),
        ],
        ..RawDeliver::default()
    };
    let handle = smsc.inject_deliver(raw).expect("injects");
    let (frame, seq) = esme.recv_deliver().await;
    let sm = sm(&frame);
    assert_eq!(
        (sm.source_addr_ton.value(), sm.dest_addr_ton.value()),
        (1, 3)
    );
    assert_eq!(text_of(&sm), "café");
    let concat = sm.concat().expect("sar tlvs");
    assert_eq!((concat.reference, concat.total, concat.seq), (0x0102, 2, 1));
    esme.ack(seq, CommandStatus::ESME_ROK).await;
    assert_eq!(
        handle.outcome().await.expect("answered"),
        CommandStatus::ESME_ROK
    );
    stop(smsc, vec![esme]).await;
}

#[tokio::test]
async fn temporary_error_means_redelivery() {
    let smsc = start(config()).await;
    let mut esme = Esme::bound(&smsc, BindMode::Transceiver).await;
    let handle = smsc
        .inject_mo(Mo {
            source: SUBSCRIBER.into(),
            destination: SHORT_CODE.into(),
            text: "4".into(),
        })
        .expect("injects");
    let (first, first_seq) = esme.recv_deliver().await;
    esme.ack(first_seq, CommandStatus::ESME_RX_T_APPN).await;
    let (again, again_seq) = esme.recv_deliver().await;
    assert_ne!(again_seq, first_seq);
    assert_eq!(again[16..], first[16..], "same body, new sequence number");
    assert_eq!(smsc.stats().mo_redelivered, 1);
    esme.ack(again_seq, CommandStatus::ESME_ROK).await;
    assert_eq!(
        handle.outcome().await.expect("answered"),
        CommandStatus::ESME_ROK
    );
    esme.assert_nothing_pending().await;
    let stats = smsc.stats();
    assert_eq!(
        (stats.mo_delivered, stats.mo_pending, stats.mo_redelivered),
        (1, 0, 1)
    );
    stop(smsc, vec![esme]).await;
}

#[tokio::test]
async fn permanent_error_is_final() {
    let smsc = start(config()).await;
    let mut esme = Esme::bound(&smsc, BindMode::Transceiver).await;
    let handle = smsc
        .inject_mo(Mo {
            source: SUBSCRIBER.into(),
            destination: SHORT_CODE.into(),
            text: "spam".into(),
        })
        .expect("injects");
    let (_, seq) = esme.recv_deliver().await;
    esme.ack(seq, CommandStatus::ESME_RX_P_APPN).await;
    assert_eq!(
        handle.outcome().await.expect("answered"),
        CommandStatus::ESME_RX_P_APPN
    );
    esme.assert_nothing_pending().await;
    let stats = smsc.stats();
    assert_eq!(
        (stats.mo_rejected, stats.mo_pending, stats.mo_redelivered),
        (1, 0, 0)
    );
    stop(smsc, vec![esme]).await;
}

#[tokio::test]
async fn unanswered_mo_is_redelivered_after_reconnect() {
    let smsc = start(config()).await;
    let mut esme = Esme::bound(&smsc, BindMode::Transceiver).await;
    let acked = smsc
        .inject_mo(Mo {
            source: SUBSCRIBER.into(),
            destination: SHORT_CODE.into(),
            text: "first".into(),
        })
        .expect("injects");
    let (frame, seq) = esme.recv_deliver().await;
    assert_eq!(text_of(&sm(&frame)), "first");
    esme.ack(seq, CommandStatus::ESME_ROK).await;
    assert_eq!(
        acked.outcome().await.expect("answered"),
        CommandStatus::ESME_ROK
    );

    let lost = smsc
        .inject_mo(Mo {
            source: SUBSCRIBER.into(),
            destination: SHORT_CODE.into(),
            text: "second".into(),
        })
        .expect("injects");
    let (frame, _) = esme.recv_deliver().await;
    assert_eq!(text_of(&sm(&frame)), "second");
    drop(esme); // the ESME dies before answering

    let mut esme = Esme::bound(&smsc, BindMode::Transceiver).await;
    let (frame, seq) = esme.recv_deliver().await;
    assert_eq!(
        text_of(&sm(&frame)),
        "second",
        "only the unanswered MO comes back"
    );
    esme.ack(seq, CommandStatus::ESME_ROK).await;
    assert_eq!(
        lost.outcome().await.expect("answered"),
        CommandStatus::ESME_ROK
    );
    esme.assert_nothing_pending().await;
    let stats = smsc.stats();
    assert_eq!(
        (stats.mo_delivered, stats.mo_pending, stats.mo_redelivered),
        (2, 0, 1)
    );
    stop(smsc, vec![esme]).await;
}

#[tokio::test]
async fn missing_deliver_sm_resp_times_out_into_redelivery() {
    let smsc = start(SimConfig {
        response_timeout: Duration::from_millis(50),
        ..config()
    })
    .await;
    let mut esme = Esme::bound(&smsc, BindMode::Transceiver).await;
    let handle = smsc
        .inject_mo(Mo {
            source: SUBSCRIBER.into(),
            destination: SHORT_CODE.into(),
            text: "3".into(),
        })
        .expect("injects");
    let (first, _) = esme.recv_deliver().await; // never answered
    let (again, seq) = esme.recv_deliver().await;
    assert_eq!(again[16..], first[16..]);
    esme.ack(seq, CommandStatus::ESME_ROK).await;
    assert_eq!(
        handle.outcome().await.expect("answered"),
        CommandStatus::ESME_ROK
    );
    assert_eq!(smsc.stats().mo_redelivered, 1);
    stop(smsc, vec![esme]).await;
}

#[tokio::test]
async fn transmitter_never_gets_deliver_sm() {
    let smsc = start(config()).await;
    let mut transmitter = Esme::bound(&smsc, BindMode::Transmitter).await;
    let handle = smsc
        .inject_mo(Mo {
            source: SUBSCRIBER.into(),
            destination: SHORT_CODE.into(),
            text: "5".into(),
        })
        .expect("injects");
    let mut receiver = Esme::bound(&smsc, BindMode::Receiver).await;
    let (_, seq) = receiver.recv_deliver().await;
    receiver.ack(seq, CommandStatus::ESME_ROK).await;
    assert_eq!(
        handle.outcome().await.expect("answered"),
        CommandStatus::ESME_ROK
    );
    transmitter.assert_nothing_pending().await;
    stop(smsc, vec![transmitter, receiver]).await;
}

#[tokio::test]
async fn window_caps_deliver_sm_in_flight() {
    let smsc = start(SimConfig {
        window: 2,
        ..config()
    })
    .await;
    let mut esme = Esme::bound(&smsc, BindMode::Transceiver).await;
    let handles: Vec<_> = (0..5)
        .map(|i| {
            smsc.inject_mo(Mo {
                source: SUBSCRIBER.into(),
                destination: SHORT_CODE.into(),
                text: format!("{i}"),
            })
            .expect("injects")
        })
        .collect();
    let (_, first) = esme.recv_deliver().await;
    let (_, second) = esme.recv_deliver().await;
    esme.assert_nothing_pending().await;
    esme.ack(first, CommandStatus::ESME_ROK).await;
    let (_, third) = esme.recv_deliver().await;
    esme.assert_nothing_pending().await;
    for seq in [second, third] {
        esme.ack(seq, CommandStatus::ESME_ROK).await;
    }
    for _ in 0..2 {
        let (_, seq) = esme.recv_deliver().await;
        esme.ack(seq, CommandStatus::ESME_ROK).await;
    }
    for handle in handles {
        assert_eq!(
            handle.outcome().await.expect("answered"),
            CommandStatus::ESME_ROK
        );
    }
    stop(smsc, vec![esme]).await;
}

#[tokio::test]
async fn undecodable_pdu_gets_generic_nack_with_its_status_and_seq() {
    let smsc = start(config()).await;
    let mut esme = Esme::bound(&smsc, BindMode::Transceiver).await;
    // submit_sm whose sm_length (200) points past the end of the body.
    let mut body = b"\0\x03\x005700\0\x01\x01998901234567\0".to_vec();
    body.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 200, b'h', b'i']);
    let malformed = frame(0x0000_0004, 0, 77, &body);
    let expected = decode(&malformed).expect_err("malformed");
    esme.send_raw(&malformed).await;
    let nack = esme.recv().await;
    let command = decode(&nack).expect("decodes");
    assert_eq!(command.command_id(), CommandId::GenericNack);
    assert_eq!(command.command_status(), CommandStatus::ESME_RINVMSGLEN);
    assert_eq!(command.command_status(), expected.command_status());
    assert_eq!(command.sequence_number(), 77);
    // The session goes on.
    let (status, _) = esme.submit_part(SUBSCRIBER, 0, 0, 0, b"ok").await;
    assert_eq!(status, CommandStatus::ESME_ROK);
    stop(smsc, vec![esme]).await;
}

#[tokio::test]
async fn unknown_command_gets_generic_nack_rinvcmdid() {
    let smsc = start(config()).await;
    let mut esme = Esme::bound(&smsc, BindMode::Transceiver).await;
    esme.send_raw(&frame(0x0000_0999, 0, 1234, b"junk")).await;
    let command_frame = esme.recv().await;
    let command = decode(&command_frame).expect("decodes");
    assert_eq!(command.command_id(), CommandId::GenericNack);
    assert_eq!(command.command_status(), CommandStatus::ESME_RINVCMDID);
    assert_eq!(command.sequence_number(), 1234);
    assert_eq!(smsc.stats().generic_nacks_sent, 1);
    stop(smsc, vec![esme]).await;
}

#[tokio::test]
async fn bad_command_length_closes_the_connection() {
    let smsc = start(config()).await;
    let mut esme = Esme::bound(&smsc, BindMode::Transceiver).await;
    esme.send_raw(&[0, 0, 0, 8, 0, 0, 0, 0x15, 0, 0, 0, 0, 0, 0, 0, 1])
        .await;
    assert!(esme.try_recv().await.is_none());
    stop(smsc, vec![esme]).await;
}

#[tokio::test]
async fn enquire_link_and_unbind() {
    let smsc = start(config()).await;
    let mut esme = Esme::bound(&smsc, BindMode::Transceiver).await;
    esme.assert_nothing_pending().await;
    esme.send(&encode::unbind(99)).await;
    let resp = esme.recv().await;
    let command = decode(&resp).expect("decodes");
    assert_eq!(
        (command.command_id(), command.sequence_number()),
        (CommandId::UnbindResp, 99)
    );
    assert!(esme.try_recv().await.is_none(), "closed after unbind_resp");
    stop(smsc, vec![esme]).await;
}

#[tokio::test]
async fn unanswered_enquire_link_closes_the_session() {
    let smsc = start(SimConfig {
        enquire_link_interval: Some(Duration::from_millis(20)),
        response_timeout: Duration::from_millis(50),
        ..config()
    })
    .await;
    let mut esme = Esme::bound(&smsc, BindMode::Transceiver).await;
    // Answer the first one: the session stays.
    let frame = esme.recv().await;
    let command = decode(&frame).expect("decodes");
    assert_eq!(command.command_id(), CommandId::EnquireLink);
    esme.send(&encode::enquire_link_resp(command.sequence_number()))
        .await;
    // Ignore the next: the simulator closes the connection.
    while let Some(frame) = esme.try_recv().await {
        let command = decode(&frame).expect("decodes");
        assert_eq!(command.command_id(), CommandId::EnquireLink);
    }
    stop(smsc, vec![esme]).await;
}

#[tokio::test]
async fn shutdown_unbinds_and_disconnect_all_drops() {
    let smsc = start(config()).await;
    let mut dropped = Esme::bound(&smsc, BindMode::Transceiver).await;
    smsc.disconnect_all();
    assert!(dropped.try_recv().await.is_none());

    let mut esme = Esme::bound(&smsc, BindMode::Transceiver).await;
    let pending = smsc
        .inject_mo(Mo {
            source: SUBSCRIBER.into(),
            destination: SHORT_CODE.into(),
            text: "late".into(),
        })
        .expect("injects");
    let (_, _) = esme.recv_deliver().await;
    let stopping = tokio::spawn({
        let smsc = smsc.clone();
        async move { smsc.shutdown().await }
    });
    let unbind = esme.recv().await;
    let command = decode(&unbind).expect("decodes");
    assert_eq!(command.command_id(), CommandId::Unbind);
    esme.send(&encode::unbind_resp(command.sequence_number()))
        .await;
    assert!(esme.try_recv().await.is_none());
    stopping.await.expect("shutdown completes");
    assert!(matches!(
        pending.outcome().await,
        Err(sim::SimError::Stopped)
    ));
}

#[tokio::test]
async fn submitted_view_reassembles_parts() {
    let smsc = start(config()).await;
    let mut submitted = smsc.submitted();
    let mut esme = Esme::bound(&smsc, BindMode::Transmitter).await;
    let ids = esme.submit_text(SUBSCRIBER, ASK, 1).await;
    assert_eq!(ids.len(), 3);
    let event = tokio::time::timeout(GUARD, submitted.recv())
        .await
        .expect("in time")
        .expect("event");
    assert_eq!(event.text, ASK);
    assert_eq!(event.message_ids, ids);
    assert_eq!(
        (event.source.as_str(), event.destination.as_str()),
        (SHORT_CODE, SUBSCRIBER)
    );
    assert_eq!((event.data_coding, event.registered_delivery), (8, 1));
    assert_eq!(event.system_id, "smsflow");
    smsc.shutdown().await;
}

fn subscribers_config(seed: u64) -> SimConfig {
    SimConfig {
        seed,
        subscribers: Some(SubscribersConfig {
            reply_delay: sim::DelayRange::new(Duration::from_millis(1), Duration::from_millis(5)),
            ack_delay: sim::DelayRange::new(Duration::from_millis(1), Duration::from_millis(5)),
        }),
        ..config()
    }
}

/// A recipient whose first text of `text` gets a reply under `config`, and that reply.
fn replying_recipient(config: &SimConfig, text: &str) -> (String, String) {
    let subscribers = config.subscribers.clone().expect("subscribers on");
    (0..100)
        .find_map(|i| {
            let to = format!("99890{i:07}");
            let mt = sim::Submitted {
                system_id: "smsflow".into(),
                source: SHORT_CODE.into(),
                destination: to.clone(),
                text: text.into(),
                message_ids: Vec::new(),
                data_coding: 8,
                registered_delivery: 0,
            };
            let reply = Handsets::new(subscribers.clone(), config.seed).on_mt(&mt)?;
            Some((to, reply.mo.text))
        })
        .expect("someone of 100 replies")
}

#[tokio::test]
async fn subscriber_answers_the_survey_question() {
    let config = subscribers_config(11);
    let (to, planned) = replying_recipient(&config, ASK);
    let smsc = start(config).await;
    let mut esme = Esme::bound(&smsc, BindMode::Transceiver).await;
    let ids = esme.submit_text(&to, ASK, 0).await;
    assert_eq!(ids.len(), 3, "the question goes as 3 UCS-2 parts");
    let (from, reply, _) = recv_message(&mut esme).await;
    assert_eq!(from, to);
    assert_eq!(reply, planned);
    stop(smsc, vec![esme]).await;
}

#[tokio::test]
async fn staff_answer_the_escalation_with_ok() {
    let text = "Вызов: Палата 315, терапевтическое отделение. Ответьте OK, если идёте.";
    let config = subscribers_config(5);
    let (to, planned) = replying_recipient(&config, text);
    let smsc = start(config).await;
    let mut esme = Esme::bound(&smsc, BindMode::Transceiver).await;
    esme.submit_text(&to, text, 0).await;
    let (from, reply, _) = recv_message(&mut esme).await;
    assert_eq!((from, reply.as_str()), (to, planned.as_str()));
    assert!(
        ["OK", "ok", "ок", "ОК", "+", "да", "Ok"].contains(&reply.as_str()),
        "{reply}"
    );
    stop(smsc, vec![esme]).await;
}

#[tokio::test]
async fn config_is_checked_before_listening() {
    let error = sim::start(SimConfig {
        receipt_failure_share: 1.5,
        ..config()
    })
    .await
    .expect_err("refused");
    assert!(
        error.to_string().contains("receipt_failure_share"),
        "{error}"
    );
}
