//! Session scenarios, driven frame by frame with explicit instants (no clock, no socket).

use super::*;
use crate::smpp::encode::{Address, Param, ShortMessage};

const SECOND: Duration = Duration::from_secs(1);

fn config(mode: BindMode, window: usize) -> SessionConfig {
    SessionConfig {
        bind_mode: mode,
        window,
        ..SessionConfig::default()
    }
}

/// What the session wrote, decoded: (command id, status, sequence number) per frame.
fn sent(session: &mut Session) -> Vec<(CommandId, CommandStatus, u32)> {
    let Some(bytes) = session.poll_transmit() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut rest = &bytes[..];
    while !rest.is_empty() {
        let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let cmd = decode(&rest[..len]).expect("session writes valid frames");
        out.push((
            cmd.command_id(),
            cmd.command_status(),
            cmd.sequence_number(),
        ));
        rest = &rest[len..];
    }
    out
}

fn events(session: &mut Session) -> Vec<Event> {
    std::iter::from_fn(|| session.poll_event()).collect()
}

fn submit_command(to: &str) -> rusmpp::Command {
    encode::submit_sm(
        0,
        &ShortMessage::new(
            Address::short_code("5700"),
            Address::international(to),
            0,
            b"Thanks!",
        )
        .registered_delivery(1),
    )
    .unwrap()
}

fn submit_resp(seq: u32, status: CommandStatus, id: &str) -> Bytes {
    encode::to_frame(&encode::submit_sm_resp(seq, status, id).unwrap())
}

fn deliver(seq: u32, text: &[u8], params: Vec<Param<'_>>, esm_class: u8) -> Bytes {
    let mut command = encode::deliver_sm(
        0,
        &ShortMessage::new(
            Address::international("998901234567"),
            Address::short_code("5700"),
            0,
            text,
        )
        .esm_class(esm_class)
        .params(params),
    )
    .unwrap();
    command.sequence_number = seq;
    encode::to_frame(&command)
}

/// A session bound in `mode` at `t0`, with its output drained.
fn bound(mode: BindMode, window: usize, t0: Instant) -> Session {
    let mut s = Session::new(config(mode, window), t0);
    s.bind(t0).unwrap();
    let bind_seq = sent(&mut s)[0].2;
    let resp = encode::bind_resp(mode, bind_seq, CommandStatus::ESME_ROK, "SMSC").unwrap();
    s.handle_frame(t0, encode::to_frame(&resp));
    assert_eq!(
        events(&mut s),
        [Event::Bound {
            system_id: "SMSC".into()
        }]
    );
    s
}

// ---- the operation matrix, one test per state ---------------------------------------------

#[test]
fn matrix_open() {
    let s = State::Open;
    for id in [
        CommandId::BindTransmitter,
        CommandId::BindReceiver,
        CommandId::BindTransceiver,
    ] {
        assert!(s.may_send(id, None), "{id:?}");
    }
    for id in [
        CommandId::SubmitSm,
        CommandId::EnquireLink,
        CommandId::Unbind,
        CommandId::DeliverSmResp,
    ] {
        assert!(!s.may_send(id, None), "{id:?}");
    }
    assert!(s.may_receive(CommandId::BindTransceiverResp, None));
    assert!(s.may_receive(CommandId::GenericNack, None));
    assert!(!s.may_receive(CommandId::DeliverSm, None));
    // Binding counts as open: a second bind is refused by the session itself (see below).
    assert!(
        State::Binding(BindMode::Transceiver).may_receive(CommandId::BindTransceiverResp, None)
    );
}

#[test]
fn matrix_bound_transmitter() {
    let s = State::Bound(BindMode::Transmitter);
    assert!(s.may_send(CommandId::SubmitSm, None));
    assert!(s.may_send(CommandId::QuerySm, None));
    assert!(s.may_send(CommandId::EnquireLink, None));
    assert!(!s.may_send(CommandId::DeliverSmResp, None));
    assert!(!s.may_send(CommandId::BindTransmitter, None));
    assert!(s.may_receive(CommandId::SubmitSmResp, None));
    assert!(!s.may_receive(CommandId::DeliverSm, None));
    assert!(!s.may_receive(CommandId::AlertNotification, None));
}

#[test]
fn matrix_bound_receiver() {
    let s = State::Bound(BindMode::Receiver);
    assert!(!s.may_send(CommandId::SubmitSm, None));
    assert!(s.may_send(CommandId::DeliverSmResp, None));
    assert!(s.may_send(CommandId::DataSmResp, None));
    assert!(s.may_receive(CommandId::DeliverSm, None));
    assert!(s.may_receive(CommandId::DataSm, None));
    assert!(!s.may_receive(CommandId::SubmitSmResp, None));
}

#[test]
fn matrix_bound_transceiver() {
    let s = State::Bound(BindMode::Transceiver);
    assert!(s.may_send(CommandId::SubmitSm, None));
    assert!(s.may_send(CommandId::DeliverSmResp, None));
    assert!(s.may_receive(CommandId::DeliverSm, None));
    assert!(s.may_receive(CommandId::SubmitSmResp, None));
    assert!(s.may_send(CommandId::Unbind, None));
}

#[test]
fn matrix_unbinding_follows_the_state_it_leaves() {
    let s = State::Unbinding;
    let rx = Some(BindMode::Receiver);
    assert!(s.may_send(CommandId::DeliverSmResp, rx));
    assert!(s.may_receive(CommandId::DeliverSm, rx));
    assert!(!s.may_send(CommandId::SubmitSm, rx));
    let tx = Some(BindMode::Transmitter);
    assert!(s.may_receive(CommandId::SubmitSmResp, tx));
    assert!(!s.may_receive(CommandId::DeliverSm, tx));
}

#[test]
fn matrix_closed_allows_nothing() {
    for row in matrix::ROWS {
        assert!(!State::Closed.may_send(row.0, Some(BindMode::Transceiver)));
        assert!(!State::Closed.may_receive(row.0, Some(BindMode::Transceiver)));
    }
}

#[test]
fn submit_before_bind_is_refused() {
    let t0 = Instant::now();
    let mut s = Session::new(config(BindMode::Transceiver, 4), t0);
    assert!(matches!(
        s.submit(t0, 1, submit_command("998901234567")),
        Err(SessionError::InvalidState {
            command: "submit_sm",
            state: State::Open
        })
    ));
    let mut rx = bound(BindMode::Receiver, 4, t0);
    assert!(matches!(
        rx.submit(t0, 1, submit_command("998901234567")),
        Err(SessionError::InvalidState { .. })
    ));
}

// ---- bind -----------------------------------------------------------------------------------

#[test]
fn bind_sends_smpp_34_and_binds() {
    let t0 = Instant::now();
    let mut s = Session::new(config(BindMode::Transceiver, 4), t0);
    s.bind(t0).unwrap();
    let bytes = s.poll_transmit().unwrap();
    let cmd = decode(&bytes).unwrap();
    let Pdu::BindTransceiver(b) = cmd.pdu else {
        panic!("{cmd:?}")
    };
    assert_eq!((b.interface_version, b.system_id), (0x34, "smsflow".into()));
    assert_eq!(s.state(), State::Binding(BindMode::Transceiver));
    let resp = encode::bind_resp(
        BindMode::Transceiver,
        cmd.sequence_number(),
        CommandStatus::ESME_ROK,
        "SMSC",
    )
    .unwrap();
    s.handle_frame(t0, encode::to_frame(&resp));
    assert_eq!(s.state(), State::Bound(BindMode::Transceiver));
}

#[test]
fn bind_rejected_closes_with_the_status() {
    let t0 = Instant::now();
    let mut s = Session::new(config(BindMode::Transmitter, 4), t0);
    s.bind(t0).unwrap();
    let seq = sent(&mut s)[0].2;
    let resp = encode::bind_resp(
        BindMode::Transmitter,
        seq,
        CommandStatus::ESME_RINVPASWD,
        "",
    )
    .unwrap();
    s.handle_frame(t0, encode::to_frame(&resp));
    assert_eq!(s.state(), State::Closed);
    assert_eq!(
        events(&mut s),
        [Event::Closed {
            reason: CloseReason::BindRejected {
                status: CommandStatus::ESME_RINVPASWD
            }
        }]
    );
}

#[test]
fn bind_timeout_closes() {
    let t0 = Instant::now();
    let mut s = Session::new(config(BindMode::Transceiver, 4), t0);
    s.bind(t0).unwrap();
    assert_eq!(s.poll_timeout(), Some(t0 + 10 * SECOND));
    s.handle_timeout(t0 + 10 * SECOND);
    assert_eq!(
        events(&mut s),
        [Event::Closed {
            reason: CloseReason::BindTimedOut
        }]
    );
}

// ---- window, timeouts, throttling ---------------------------------------------------------

#[test]
fn window_full_refuses_then_frees() {
    let t0 = Instant::now();
    let mut s = bound(BindMode::Transceiver, 2, t0);
    let a = s.submit(t0, 10, submit_command("1")).unwrap();
    let _b = s.submit(t0, 11, submit_command("2")).unwrap();
    assert!(!s.can_submit(t0));
    assert_eq!(
        s.submit(t0, 12, submit_command("3")),
        Err(SessionError::WindowFull { window: 2 })
    );
    assert_eq!(
        sent(&mut s).len(),
        2,
        "nothing beyond the window is written"
    );
    s.handle_frame(t0, submit_resp(a, CommandStatus::ESME_ROK, "A1"));
    assert_eq!(
        events(&mut s),
        [Event::Completed {
            token: 10,
            sequence_number: a,
            outcome: Outcome::Accepted {
                message_id: "A1".into()
            }
        }]
    );
    assert!(s.can_submit(t0));
    s.submit(t0, 12, submit_command("3")).unwrap();
}

#[test]
fn response_timeout_reports_and_frees_the_window() {
    let t0 = Instant::now();
    let mut s = bound(BindMode::Transceiver, 1, t0);
    let seq = s.submit(t0, 7, submit_command("1")).unwrap();
    sent(&mut s);
    s.handle_timeout(t0 + 10 * SECOND - Duration::from_millis(1));
    assert!(events(&mut s).is_empty());
    s.handle_timeout(t0 + 10 * SECOND);
    assert_eq!(
        events(&mut s),
        [Event::Completed {
            token: 7,
            sequence_number: seq,
            outcome: Outcome::TimedOut { after: 10 * SECOND }
        }]
    );
    assert!(s.can_submit(t0 + 10 * SECOND));
    // The late response is noticed, not mistaken for another request's.
    s.handle_frame(
        t0 + 11 * SECOND,
        submit_resp(seq, CommandStatus::ESME_ROK, "late"),
    );
    assert_eq!(
        events(&mut s),
        [Event::UnexpectedResponse {
            command_id: CommandId::SubmitSmResp,
            sequence_number: seq
        }]
    );
}

#[test]
fn throttled_submit_is_resent_after_the_pause_and_completes_once() {
    let t0 = Instant::now();
    let mut s = bound(BindMode::Transceiver, 4, t0);
    let first = s.submit(t0, 42, submit_command("998901234567")).unwrap();
    let original = s.poll_transmit().unwrap();
    s.handle_frame(t0, submit_resp(first, CommandStatus::ESME_RTHROTTLED, ""));
    assert_eq!(
        events(&mut s),
        [Event::Throttled {
            status: CommandStatus::ESME_RTHROTTLED,
            pause: Duration::from_millis(100)
        }]
    );
    // Paused: no new submits, nothing re-sent yet.
    assert!(!s.can_submit(t0));
    assert!(matches!(
        s.submit(t0, 43, submit_command("1")),
        Err(SessionError::Throttled { .. })
    ));
    assert_eq!(s.poll_timeout(), Some(t0 + Duration::from_millis(100)));
    assert!(s.poll_transmit().is_none());

    let t1 = t0 + Duration::from_millis(100);
    s.handle_timeout(t1);
    let resent = s.poll_transmit().unwrap();
    let again = decode(&resent).unwrap();
    assert_ne!(again.sequence_number(), first, "a new sequence number");
    assert_eq!(resent[16..], original[16..], "the same submit_sm body");

    s.handle_frame(
        t1,
        submit_resp(again.sequence_number(), CommandStatus::ESME_ROK, "B2"),
    );
    let done: Vec<_> = events(&mut s)
        .into_iter()
        .filter(|e| matches!(e, Event::Completed { .. }))
        .collect();
    assert_eq!(
        done,
        [Event::Completed {
            token: 42,
            sequence_number: again.sequence_number(),
            outcome: Outcome::Accepted {
                message_id: "B2".into()
            }
        }]
    );
}

#[test]
fn consecutive_throttles_double_the_pause() {
    let t0 = Instant::now();
    let mut s = bound(BindMode::Transceiver, 4, t0);
    let mut now = t0;
    let mut seq = s.submit(now, 1, submit_command("1")).unwrap();
    let mut pauses = Vec::new();
    for _ in 0..4 {
        s.handle_frame(now, submit_resp(seq, CommandStatus::ESME_RMSGQFUL, ""));
        for e in events(&mut s) {
            if let Event::Throttled { pause, .. } = e {
                pauses.push(pause);
            }
        }
        sent(&mut s);
        now = s.poll_timeout().unwrap();
        s.handle_timeout(now);
        seq = sent(&mut s)[0].2;
    }
    assert_eq!(
        pauses,
        [100, 200, 400, 800].map(Duration::from_millis),
        "back-off grows"
    );
}

// ---- enquire_link ---------------------------------------------------------------------------

#[test]
fn enquire_link_when_idle_and_dead_link_closes() {
    let t0 = Instant::now();
    let mut s = bound(BindMode::Transceiver, 4, t0);
    assert_eq!(s.poll_timeout(), Some(t0 + 30 * SECOND));
    s.handle_timeout(t0 + 30 * SECOND);
    let out = sent(&mut s);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0, CommandId::EnquireLink);
    // Answered: the link lives on and the next probe is due 30 s after the answer.
    let t1 = t0 + 31 * SECOND;
    s.handle_frame(
        t1,
        encode::to_frame(&{
            let mut r = encode::enquire_link_resp(out[0].2);
            r.sequence_number = out[0].2;
            r
        }),
    );
    assert_eq!(s.poll_timeout(), Some(t1 + 30 * SECOND));
    // Unanswered: after the response timeout the link is declared dead.
    s.handle_timeout(t1 + 30 * SECOND);
    sent(&mut s);
    s.handle_timeout(t1 + 40 * SECOND);
    assert_eq!(
        events(&mut s),
        [Event::Closed {
            reason: CloseReason::LinkDead
        }]
    );
}

#[test]
fn enquire_link_from_the_smsc_is_answered() {
    let t0 = Instant::now();
    let mut s = bound(BindMode::Transceiver, 4, t0);
    s.handle_frame(t0, encode::to_frame(&encode::enquire_link(77)));
    assert_eq!(
        sent(&mut s),
        [(CommandId::EnquireLinkResp, CommandStatus::ESME_ROK, 77)]
    );
}

// ---- inbound ----------------------------------------------------------------------------------

#[test]
fn deliver_sm_waits_for_the_application_ack_in_any_order() {
    let t0 = Instant::now();
    let mut s = bound(BindMode::Receiver, 4, t0);
    s.handle_frame(t0, deliver(101, b"5", vec![], 0));
    s.handle_frame(t0, deliver(102, b"4 ok", vec![], 0));
    assert!(
        s.poll_transmit().is_none(),
        "no deliver_sm_resp before the ack"
    );
    let inbound: Vec<Inbound> = events(&mut s)
        .into_iter()
        .map(|e| match e {
            Event::Inbound(i) => i,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(inbound[0].payload, b"5"[..]);
    assert_eq!(inbound[1].source_addr, "998901234567");
    assert_eq!(s.unacked(), 2);
    s.ack(102, CommandStatus::ESME_ROK);
    s.ack(101, CommandStatus::ESME_RX_T_APPN);
    s.ack(101, CommandStatus::ESME_ROK); // a second ack of the same message is ignored
    assert_eq!(
        sent(&mut s),
        [
            (CommandId::DeliverSmResp, CommandStatus::ESME_ROK, 102),
            (CommandId::DeliverSmResp, CommandStatus::ESME_RX_T_APPN, 101)
        ]
    );
}

#[test]
fn delivery_receipt_is_parsed() {
    let t0 = Instant::now();
    let mut s = bound(BindMode::Transceiver, 4, t0);
    s.handle_frame(
        t0,
        deliver(
            5,
            b"id:1A sub:001 dlvrd:001 submit date:2611221430 done date:2611221431 stat:UNDELIV err:001 text:x",
            vec![Param::ReceiptedMessageId("1A")],
            0x04,
        ),
    );
    let [Event::Inbound(inbound)] = &events(&mut s)[..] else {
        panic!()
    };
    let receipt = inbound.receipt.clone().unwrap().unwrap();
    assert_eq!(receipt.message_id, "1A");
    assert!(!receipt.state.is_success());
}

#[test]
fn deliver_sm_on_a_transmitter_is_refused() {
    let t0 = Instant::now();
    let mut s = bound(BindMode::Transmitter, 4, t0);
    s.handle_frame(t0, deliver(9, b"5", vec![], 0));
    assert_eq!(
        sent(&mut s),
        [(CommandId::GenericNack, CommandStatus::ESME_RINVBNDSTS, 9)]
    );
    assert!(matches!(&events(&mut s)[..], [Event::Refused { .. }]));
}

#[test]
fn unknown_command_gets_generic_nack() {
    let t0 = Instant::now();
    let mut s = bound(BindMode::Transceiver, 4, t0);
    let mut f = BytesMut::new();
    f.extend_from_slice(&[0, 0, 0, 16, 0, 0, 0x77, 0x77, 0, 0, 0, 0, 0, 0, 0, 3]);
    s.handle_frame(t0, f.freeze());
    assert_eq!(
        sent(&mut s),
        [(CommandId::GenericNack, CommandStatus::ESME_RINVCMDID, 3)]
    );
}

#[test]
fn malformed_pdu_gets_generic_nack_with_its_status() {
    let t0 = Instant::now();
    let mut s = bound(BindMode::Transceiver, 4, t0);
    let mut f = deliver(8, b"hello", vec![], 0).to_vec();
    // Cut two octets off short_message and fix command_length: sm_length now overruns.
    f.truncate(f.len() - 2);
    let len = f.len() as u32;
    f[..4].copy_from_slice(&len.to_be_bytes());
    s.handle_frame(t0, Bytes::from(f));
    assert_eq!(
        sent(&mut s),
        [(CommandId::GenericNack, CommandStatus::ESME_RINVMSGLEN, 8)]
    );
    assert_eq!(s.state(), State::Bound(BindMode::Transceiver));
}

// ---- link loss and unbind -------------------------------------------------------------------

#[test]
fn link_cut_mid_window_reports_every_submit_once() {
    let t0 = Instant::now();
    let mut s = bound(BindMode::Transceiver, 8, t0);
    let a = s.submit(t0, 1, submit_command("1")).unwrap();
    let b = s.submit(t0, 2, submit_command("2")).unwrap();
    let c = s.submit(t0, 3, submit_command("3")).unwrap();
    // One is answered, one throttled (deferred), one still in flight.
    s.handle_frame(t0, submit_resp(a, CommandStatus::ESME_ROK, "X"));
    s.handle_frame(t0, submit_resp(b, CommandStatus::ESME_RTHROTTLED, ""));
    events(&mut s);
    s.handle_close();
    let lost: Vec<u64> = events(&mut s)
        .into_iter()
        .filter_map(|e| match e {
            Event::Completed {
                token,
                outcome: Outcome::LinkLost,
                ..
            } => Some(token),
            _ => None,
        })
        .collect();
    assert_eq!(lost, [3, 2], "in flight (seq {c}) then deferred");
    assert_eq!(s.pending_submits(), 0);
    assert_eq!(s.poll_timeout(), None);
}

#[test]
fn unbind_handshake() {
    let t0 = Instant::now();
    let mut s = bound(BindMode::Transceiver, 4, t0);
    s.unbind(t0).unwrap();
    let [(CommandId::Unbind, _, seq)] = sent(&mut s)[..] else {
        panic!()
    };
    assert_eq!(s.state(), State::Unbinding);
    assert!(matches!(
        s.submit(t0, 1, submit_command("1")),
        Err(SessionError::InvalidState { .. })
    ));
    s.handle_frame(
        t0,
        encode::to_frame(&{
            let mut r = encode::unbind_resp(seq);
            r.sequence_number = seq;
            r
        }),
    );
    assert_eq!(
        events(&mut s),
        [Event::Closed {
            reason: CloseReason::Unbound
        }]
    );
}

#[test]
fn unbind_from_the_smsc_is_answered_and_closes() {
    let t0 = Instant::now();
    let mut s = bound(BindMode::Transceiver, 4, t0);
    s.handle_frame(t0, encode::to_frame(&encode::unbind(55)));
    assert_eq!(
        sent(&mut s),
        [(CommandId::UnbindResp, CommandStatus::ESME_ROK, 55)]
    );
    assert_eq!(s.state(), State::Closed);
}

#[test]
fn sequence_numbers_wrap_within_the_spec_range() {
    let t0 = Instant::now();
    let mut s = Session::new(config(BindMode::Transceiver, 4), t0);
    s.next_sequence = 0x7FFF_FFFF;
    assert_eq!(s.next_sequence(), 0x7FFF_FFFF);
    assert_eq!(s.next_sequence(), 1);
}
