//! Hand-annotated frames (`frames.rs`): each decodes to the expected fields, and the frames we
//! send are exactly what our rusmpp-based encoder writes. Then one test per decoder tolerance
//! (named `tolerance_*`) and per strictness rule (`strict_*`).

mod frames;

use bytes::BytesMut;
use smsflow::smpp::{
    codec::{FrameCodec, FrameError},
    decode,
    decode::DecodeErrorKind,
    encode::{self, Address, BindMode, BindParams, Param, ShortMessage},
    pdu::{CommandId, CommandStatus, Npi, Pdu, TlvValue, Ton, tag},
    udh::ConcatInfo,
};
use tokio_util::codec::Decoder;

use crate::util::{DeliverBody, frame, hex, tlv};
use frames::*;

fn decoded(vector: &str) -> (Vec<u8>, smsflow::smpp::pdu::Header) {
    let bytes = hex(vector);
    let cmd = decode(&bytes).unwrap_or_else(|e| panic!("vector does not decode: {e}"));
    (bytes.clone(), cmd.header)
}

#[test]
fn bind_transmitter_spec_example() {
    let bytes = hex(BIND_TRANSMITTER);
    let cmd = decode(&bytes).unwrap();
    assert_eq!(cmd.header.command_length, 47);
    assert_eq!(cmd.command_id(), CommandId::BindTransmitter);
    assert_eq!(cmd.sequence_number(), 1);
    let Pdu::BindTransmitter(b) = cmd.pdu else {
        panic!("{:?}", cmd.pdu)
    };
    assert_eq!(b.system_id, "SMPP3TEST");
    assert_eq!(b.password, "secret08");
    assert_eq!(b.system_type, "SUBMIT1");
    assert_eq!(b.interface_version, 0x34);
    assert_eq!((b.addr_ton, b.addr_npi), (Ton::International, Npi::Isdn));
    assert!(b.address_range.is_empty());
}

#[test]
fn bind_receiver_and_transceiver() {
    let bytes = hex(BIND_RECEIVER);
    let Pdu::BindReceiver(b) = decode(&bytes).unwrap().pdu else {
        panic!()
    };
    assert_eq!((b.system_id, b.password), ("smsflow".into(), "pw".into()));
    assert_eq!(b.addr_ton, Ton::NetworkSpecific);
    assert_eq!(b.address_range, "5700");

    let bytes = hex(BIND_TRANSCEIVER);
    let Pdu::BindTransceiver(b) = decode(&bytes).unwrap().pdu else {
        panic!()
    };
    assert_eq!(b.system_type, "CSI");
}

#[test]
fn bind_responses() {
    let bytes = hex(BIND_TRANSCEIVER_RESP);
    let Pdu::BindTransceiverResp(r) = decode(&bytes).unwrap().pdu else {
        panic!()
    };
    assert_eq!(r.system_id, "SMSC");
    assert_eq!(
        r.tlvs.iter().map(|t| t.typed()).collect::<Vec<_>>(),
        [TlvValue::ScInterfaceVersion(0x34)]
    );

    let bytes = hex(BIND_TRANSMITTER_RESP);
    let Pdu::BindTransmitterResp(r) = decode(&bytes).unwrap().pdu else {
        panic!()
    };
    assert_eq!(r.system_id, "playmobile");
    assert!(r.tlvs.is_empty());
}

#[test]
fn outbind() {
    let bytes = hex(OUTBIND);
    let Pdu::Outbind(o) = decode(&bytes).unwrap().pdu else {
        panic!()
    };
    assert_eq!((o.system_id, o.password), ("SMSC".into(), "pw".into()));
}

#[test]
fn submit_sm_and_resp() {
    let bytes = hex(SUBMIT_SM_GSM);
    let Pdu::SubmitSm(sm) = decode(&bytes).unwrap().pdu else {
        panic!()
    };
    assert_eq!(sm.source_addr, "5700");
    assert_eq!(sm.destination_addr, "998901234567");
    assert_eq!(sm.registered_delivery, 1);
    assert_eq!(sm.short_message, b"Thanks!");

    let bytes = hex(SUBMIT_SM_RESP);
    let Pdu::SubmitSmResp(r) = decode(&bytes).unwrap().pdu else {
        panic!()
    };
    assert_eq!(r.message_id, "5E0F1A2B");
}

#[test]
fn deliver_sm_gsm_rating() {
    let bytes = hex(DELIVER_SM_GSM_RATING);
    let cmd = decode(&bytes).unwrap();
    let Pdu::DeliverSm(sm) = cmd.pdu else {
        panic!()
    };
    assert_eq!(sm.source_addr_ton, Ton::International);
    assert_eq!(sm.source_addr, "998901234567");
    assert_eq!(sm.destination_addr, "5700");
    assert!(!sm.esm_class.is_receipt());
    assert_eq!(sm.data_coding, 0);
    assert_eq!(sm.payload(), b"5");
    assert_eq!(sm.concat(), None);
}

#[test]
fn deliver_sm_ucs2_with_udh() {
    let bytes = hex(DELIVER_SM_UCS2_UDH);
    let Pdu::DeliverSm(sm) = decode(&bytes).unwrap().pdu else {
        panic!()
    };
    assert!(sm.esm_class.udhi());
    assert_eq!(
        sm.concat(),
        Some(ConcatInfo {
            reference: 0x2A,
            total: 2,
            seq: 1
        })
    );
    assert_eq!(
        smsflow::smpp::text::decode(sm.data_coding, sm.payload()),
        smsflow::smpp::text::MessageBody::Text("Оператор был вежлив".into())
    );
}

#[test]
fn deliver_sm_receipt_with_tlvs() {
    let bytes = hex(DELIVER_SM_RECEIPT);
    let Pdu::DeliverSm(sm) = decode(&bytes).unwrap().pdu else {
        panic!()
    };
    assert!(sm.esm_class.is_receipt());
    assert_eq!(sm.tlvs.receipted_message_id().unwrap(), "5E0F1A2B");
    assert_eq!(sm.tlvs.message_state(), Some(2));
    assert_eq!(sm.tlvs.network_error_code(), Some(&[3, 0, 0][..]));
    let receipt = sm.tlvs.delivery_receipt(sm.short_message).unwrap();
    assert_eq!(receipt.message_id, "5E0F1A2B");
    assert!(receipt.state.is_success());
}

#[test]
fn deliver_sm_resp() {
    let bytes = hex(DELIVER_SM_RESP);
    let Pdu::DeliverSmResp(r) = decode(&bytes).unwrap().pdu else {
        panic!()
    };
    assert!(r.message_id.is_empty());
}

#[test]
fn data_sm_and_resp() {
    let bytes = hex(DATA_SM);
    let Pdu::DataSm(d) = decode(&bytes).unwrap().pdu else {
        panic!()
    };
    assert_eq!(d.source_addr, "998901234567");
    assert_eq!(d.tlvs.message_payload(), Some(&b"4 ok"[..]));

    let bytes = hex(DATA_SM_RESP);
    let Pdu::DataSmResp(r) = decode(&bytes).unwrap().pdu else {
        panic!()
    };
    assert_eq!(r.message_id, "77");
}

#[test]
fn query_sm_and_resp() {
    let bytes = hex(QUERY_SM);
    let Pdu::QuerySm(q) = decode(&bytes).unwrap().pdu else {
        panic!()
    };
    assert_eq!(
        (q.message_id, q.source_addr),
        ("5E0F1A2B".into(), "5700".into())
    );

    let bytes = hex(QUERY_SM_RESP);
    let Pdu::QuerySmResp(r) = decode(&bytes).unwrap().pdu else {
        panic!()
    };
    assert_eq!(r.final_date, "261122143100000+");
    assert_eq!((r.message_state, r.error_code), (2, 0));
}

#[test]
fn submit_multi_resp() {
    let bytes = hex(SUBMIT_MULTI_RESP);
    let Pdu::SubmitMultiResp(r) = decode(&bytes).unwrap().pdu else {
        panic!()
    };
    assert_eq!(r.message_id, "M1");
    assert_eq!(r.unsuccess_sme.len(), 1);
    assert_eq!(r.unsuccess_sme[0].destination_addr, "998900000000");
    assert_eq!(
        r.unsuccess_sme[0].error_status_code,
        CommandStatus::ESME_RINVDSTADR
    );
}

#[test]
fn alert_notification() {
    let bytes = hex(ALERT_NOTIFICATION);
    let Pdu::AlertNotification(a) = decode(&bytes).unwrap().pdu else {
        panic!()
    };
    assert_eq!(
        (a.source_addr, a.esme_addr),
        ("998901234567".into(), "5700".into())
    );
    assert_eq!(
        a.tlvs.iter().map(|t| t.typed()).collect::<Vec<_>>(),
        [TlvValue::MsAvailabilityStatus(0)]
    );
}

#[test]
fn header_only_pdus() {
    for (vector, pdu, seq) in [
        (ENQUIRE_LINK, Pdu::EnquireLink, 13),
        (ENQUIRE_LINK_RESP, Pdu::EnquireLinkResp, 13),
        (UNBIND, Pdu::Unbind, 14),
        (UNBIND_RESP, Pdu::UnbindResp, 14),
        (GENERIC_NACK, Pdu::GenericNack, 15),
    ] {
        let bytes = hex(vector);
        let cmd = decode(&bytes).unwrap();
        assert_eq!(cmd.pdu, pdu);
        assert_eq!(cmd.sequence_number(), seq);
    }
    let (_, header) = decoded(GENERIC_NACK);
    assert_eq!(header.command_status, CommandStatus::ESME_RINVCMDID);
}

/// What we send must be byte-for-byte the annotated frames.
#[test]
fn encoder_writes_the_annotated_frames() {
    let bind_params = BindParams {
        system_id: "smsflow",
        password: "smsflow",
        system_type: "CSI",
        addr_ton: 0,
        addr_npi: 0,
        address_range: "",
    };
    let submit = ShortMessage::new(
        Address::short_code("5700"),
        Address::international("998901234567"),
        0,
        b"Thanks!",
    )
    .registered_delivery(1);
    let mo = |esm_class, data_coding, short_message, params| {
        ShortMessage::new(
            Address::international("998901234567"),
            Address::short_code("5700"),
            data_coding,
            short_message,
        )
        .esm_class(esm_class)
        .params(params)
    };
    let ucs2_frame = hex(DELIVER_SM_UCS2_UDH);
    let Pdu::DeliverSm(ucs2_sm) = decode(&ucs2_frame).unwrap().pdu else {
        panic!()
    };
    let udh_part = ucs2_sm.short_message;
    let receipt_text = b"id:5E0F1A2B sub:001 dlvrd:001 submit date:2611221430 done date:2611221431 stat:DELIVRD err:000 text:Thanks!";
    let cases: Vec<(&str, rusmpp::Command)> = vec![
        (
            BIND_TRANSCEIVER,
            encode::bind(BindMode::Transceiver, 3, &bind_params).unwrap(),
        ),
        (
            BIND_TRANSCEIVER_RESP,
            encode::bind_resp(BindMode::Transceiver, 3, CommandStatus::ESME_ROK, "SMSC").unwrap(),
        ),
        (
            BIND_RECEIVER_RESP_INVALID_PASSWORD,
            encode::bind_resp(BindMode::Receiver, 2, CommandStatus::ESME_RINVPASWD, "SMSC")
                .unwrap(),
        ),
        (SUBMIT_SM_GSM, encode::submit_sm(5, &submit).unwrap()),
        (
            SUBMIT_SM_RESP,
            encode::submit_sm_resp(5, CommandStatus::ESME_ROK, "5E0F1A2B").unwrap(),
        ),
        (
            DELIVER_SM_GSM_RATING,
            encode::deliver_sm(6, &mo(0, 0, b"5", vec![])).unwrap(),
        ),
        (
            DELIVER_SM_UCS2_UDH,
            encode::deliver_sm(7, &mo(0x40, 8, udh_part, vec![])).unwrap(),
        ),
        (
            DELIVER_SM_RECEIPT,
            encode::deliver_sm(
                8,
                &mo(
                    0x04,
                    0,
                    receipt_text,
                    vec![
                        Param::ReceiptedMessageId("5E0F1A2B"),
                        Param::MessageState(2),
                        Param::NetworkErrorCode {
                            network_type: 3,
                            error_code: 0,
                        },
                    ],
                ),
            )
            .unwrap(),
        ),
        (
            DELIVER_SM_RESP,
            encode::deliver_sm_resp(6, CommandStatus::ESME_ROK),
        ),
        (ENQUIRE_LINK, encode::enquire_link(13)),
        (ENQUIRE_LINK_RESP, encode::enquire_link_resp(13)),
        (UNBIND, encode::unbind(14)),
        (UNBIND_RESP, encode::unbind_resp(14)),
        (
            GENERIC_NACK,
            encode::generic_nack(15, CommandStatus::ESME_RINVCMDID),
        ),
    ];
    for (vector, command) in cases {
        let expected = hex(vector);
        let actual = encode::to_frame(&command);
        assert_eq!(
            hex::encode(&actual),
            hex::encode(&expected),
            "encoder differs from vector:\n{vector}"
        );
    }
}

// ---- tolerances ---------------------------------------------------------------------------

/// Carriers drop the NUL of a C-string that ends the body.
#[test]
fn tolerance_missing_nul_on_last_cstring() {
    let f = frame(0x8000_0004, 0, 1, b"5E0F1A2B");
    let Pdu::SubmitSmResp(r) = decode(&f).unwrap().pdu else {
        panic!()
    };
    assert_eq!(r.message_id, "5E0F1A2B");

    let f = frame(0x8000_0009, 0, 1, b"SMSC");
    let Pdu::BindTransceiverResp(r) = decode(&f).unwrap().pdu else {
        panic!()
    };
    assert_eq!(r.system_id, "SMSC");

    // Not in the middle: a missing NUL there swallows the fields after it, and the PDU fails.
    let f = frame(0x0000_0009, 0, 1, b"smsflow");
    let err = decode(&f).unwrap_err();
    assert!(matches!(
        err.kind,
        DecodeErrorKind::Truncated {
            field: "interface_version",
            ..
        }
    ));
}

/// An MSISDN longer than the 20 digits SMPP 3.4 allows is kept whole, not truncated.
#[test]
fn tolerance_overlong_source_addr() {
    let long = b"99890123456789012345678901234";
    let f = DeliverBody {
        source_addr: long,
        short_message: b"5",
        ..Default::default()
    }
    .frame(1);
    let Pdu::DeliverSm(sm) = decode(&f).unwrap().pdu else {
        panic!()
    };
    assert_eq!(sm.source_addr.as_bytes(), long);
    assert!(!sm.source_addr.within_spec());
    assert_eq!(sm.short_message, b"5");
}

/// A response with an error status may come as a bare header.
#[test]
fn tolerance_error_response_without_body() {
    let f = frame(0x8000_0004, CommandStatus::ESME_RTHROTTLED.0, 9, b"");
    let cmd = decode(&f).unwrap();
    assert_eq!(cmd.command_status(), CommandStatus::ESME_RTHROTTLED);
    assert!(matches!(cmd.pdu, Pdu::SubmitSmResp(r) if r.message_id.is_empty()));

    let bytes = hex(BIND_RECEIVER_RESP_INVALID_PASSWORD);
    let cmd = decode(&bytes).unwrap();
    assert_eq!(cmd.command_status(), CommandStatus::ESME_RINVPASWD);
    assert!(matches!(cmd.pdu, Pdu::BindReceiverResp(r) if r.system_id.is_empty()));
}

/// SMPP 5-style TLVs after a response's message_id are kept, not rejected.
#[test]
fn tolerance_tlvs_after_response() {
    let mut body = b"42\0".to_vec();
    body.extend(tlv(tag::ADDITIONAL_STATUS_INFO_TEXT, b"queued\0"));
    let f = frame(0x8000_0004, 0, 1, &body);
    let Pdu::SubmitSmResp(r) = decode(&f).unwrap().pdu else {
        panic!()
    };
    assert_eq!(r.message_id, "42");
    let tlv = r.tlvs.find(tag::ADDITIONAL_STATUS_INFO_TEXT).unwrap();
    assert!(matches!(tlv.typed(), TlvValue::AdditionalStatusInfoText(t) if t == "queued"));
}

/// A known TLV with the wrong length is kept raw; the MO it rides on is not lost.
#[test]
fn tolerance_known_tlv_with_odd_length() {
    let mut tlvs = tlv(tag::SAR_MSG_REF_NUM, &[7]);
    tlvs.extend(tlv(tag::SAR_TOTAL_SEGMENTS, &[2]));
    tlvs.extend(tlv(tag::SAR_SEGMENT_SEQNUM, &[1]));
    let f = DeliverBody {
        short_message: b"hi",
        tlvs: &tlvs,
        ..Default::default()
    }
    .frame(1);
    let Pdu::DeliverSm(sm) = decode(&f).unwrap().pdu else {
        panic!()
    };
    assert_eq!(
        sm.tlvs.iter().next().unwrap().typed(),
        TlvValue::Other {
            tag: tag::SAR_MSG_REF_NUM,
            value: &[7]
        }
    );
    assert_eq!(sm.tlvs.sar(), None, "a malformed SAR set is not half-used");
    assert_eq!(sm.payload(), b"hi");
}

/// receipted_message_id without its NUL still names the message.
#[test]
fn tolerance_receipted_message_id_without_nul() {
    let tlvs = tlv(tag::RECEIPTED_MESSAGE_ID, b"ABC123");
    let f = DeliverBody {
        esm_class: 0x04,
        tlvs: &tlvs,
        ..Default::default()
    }
    .frame(1);
    let Pdu::DeliverSm(sm) = decode(&f).unwrap().pdu else {
        panic!()
    };
    assert_eq!(sm.tlvs.receipted_message_id().unwrap(), "ABC123");
}

/// message_payload supersedes short_message, UDH included.
#[test]
fn message_payload_supersedes_short_message() {
    let mut payload = vec![5, 0, 3, 9, 2, 2];
    payload.extend_from_slice(b"second part");
    let tlvs = tlv(tag::MESSAGE_PAYLOAD, &payload);
    let f = DeliverBody {
        esm_class: 0x40,
        tlvs: &tlvs,
        ..Default::default()
    }
    .frame(1);
    let Pdu::DeliverSm(sm) = decode(&f).unwrap().pdu else {
        panic!()
    };
    assert_eq!(sm.payload(), b"second part");
    assert_eq!(
        sm.concat(),
        Some(ConcatInfo {
            reference: 9,
            total: 2,
            seq: 2
        })
    );
}

/// Operations an ESME never receives, and unknown ids, come out as `Other` for the session to
/// answer with generic_nack ESME_RINVCMDID.
#[test]
fn unknown_and_undecoded_commands_are_kept() {
    for id in [0x0000_0008, 0x0000_0111, 0x8000_1234] {
        let f = frame(id, 0, 3, b"xyz");
        let cmd = decode(&f).unwrap();
        assert_eq!(
            cmd.pdu,
            Pdu::Other {
                command_id: CommandId::from(id),
                body: b"xyz"
            }
        );
    }
}

// ---- strictness ---------------------------------------------------------------------------

#[test]
fn strict_tlv_overrun() {
    let mut tlvs = tlv(tag::MESSAGE_PAYLOAD, b"abc");
    tlvs.truncate(tlvs.len() - 1);
    let f = DeliverBody {
        tlvs: &tlvs,
        ..Default::default()
    }
    .frame(4);
    let err = decode(&f).unwrap_err();
    assert!(matches!(
        err.kind,
        DecodeErrorKind::TlvOverrun {
            tag: tag::MESSAGE_PAYLOAD,
            length: 3,
            available: 2,
            ..
        }
    ));
    assert_eq!(err.command_status(), CommandStatus::ESME_RINVOPTPARSTREAM);
    assert_eq!(err.sequence_number(), 4);
}

#[test]
fn strict_stray_octets_where_a_tlv_should_be() {
    let f = DeliverBody {
        tlvs: &[0x04, 0x24],
        ..Default::default()
    }
    .frame(4);
    let err = decode(&f).unwrap_err();
    assert!(matches!(
        err.kind,
        DecodeErrorKind::TlvHeaderTruncated { available: 2, .. }
    ));
    assert_eq!(err.command_status(), CommandStatus::ESME_RINVOPTPARSTREAM);
}

#[test]
fn strict_sm_length_overrun() {
    let mut body = DeliverBody {
        short_message: b"hello",
        ..Default::default()
    }
    .build();
    body.truncate(body.len() - 2);
    let f = frame(5, 0, 4, &body);
    let err = decode(&f).unwrap_err();
    assert!(matches!(
        err.kind,
        DecodeErrorKind::ShortMessageOverrun {
            sm_length: 5,
            available: 3,
            ..
        }
    ));
    assert_eq!(err.command_status(), CommandStatus::ESME_RINVMSGLEN);
}

#[test]
fn strict_command_length_must_match_the_frame() {
    let mut f = hex(ENQUIRE_LINK);
    f.push(0);
    let err = decode(&f).unwrap_err();
    assert_eq!(
        err.kind,
        DecodeErrorKind::LengthMismatch {
            declared: 16,
            actual: 17
        }
    );
    assert_eq!(err.command_status(), CommandStatus::ESME_RINVCMDLEN);
}

#[test]
fn strict_header_only_pdu_with_a_body() {
    let f = frame(0x15, 0, 2, b"\0\0");
    let err = decode(&f).unwrap_err();
    assert_eq!(
        err.kind,
        DecodeErrorKind::TrailingOctets {
            offset: 0,
            count: 2
        }
    );
    assert_eq!(err.command_status(), CommandStatus::ESME_RINVCMDLEN);
}

#[test]
fn strict_truncated_bind_names_the_field() {
    let f = frame(0x9, 0, 1, b"smsflow\0pw\0\0");
    let err = decode(&f).unwrap_err();
    assert_eq!(
        err.kind,
        DecodeErrorKind::Truncated {
            field: "interface_version",
            offset: 12
        }
    );
    assert_eq!(
        err.to_string(),
        "bind_transceiver: body ends inside interface_version at offset 12"
    );
}

#[test]
fn strict_framing_rejects_impossible_lengths() {
    let mut codec = FrameCodec::new(4096);
    let mut buf = BytesMut::from(&[0, 0, 0, 8, 0, 0, 0, 0][..]);
    assert!(matches!(
        codec.decode(&mut buf),
        Err(FrameError::TooShort { command_length: 8 })
    ));
    let mut buf = BytesMut::from(&[0, 0, 0x10, 0x01][..]);
    assert!(matches!(
        codec.decode(&mut buf),
        Err(FrameError::TooLong {
            command_length: 4097,
            max: 4096
        })
    ));
}

#[test]
fn framing_splits_a_stream_of_frames() {
    let mut stream = BytesMut::new();
    for vector in [BIND_TRANSCEIVER, DELIVER_SM_RECEIPT, ENQUIRE_LINK] {
        stream.extend_from_slice(&hex(vector));
    }
    let mut codec = FrameCodec::default();
    let mut ids = Vec::new();
    // Feed the stream three octets at a time, as a slow socket would.
    let mut input = BytesMut::new();
    for chunk in stream.chunks(3) {
        input.extend_from_slice(chunk);
        while let Some(frame) = codec.decode(&mut input).unwrap() {
            ids.push(decode(&frame).unwrap().command_id());
        }
    }
    assert_eq!(
        ids,
        [
            CommandId::BindTransceiver,
            CommandId::DeliverSm,
            CommandId::EnquireLink
        ]
    );
    assert!(input.is_empty());
}

/// Repeated TLVs: the first of each tag wins, for `find` and for the SAR triple alike.
#[test]
fn repeated_tlvs_first_wins() {
    let mut tlvs = tlv(tag::SAR_MSG_REF_NUM, &[0, 1]);
    tlvs.extend(tlv(tag::SAR_TOTAL_SEGMENTS, &[2]));
    tlvs.extend(tlv(tag::SAR_SEGMENT_SEQNUM, &[1]));
    tlvs.extend(tlv(tag::SAR_MSG_REF_NUM, &[0, 9]));
    let f = DeliverBody {
        tlvs: &tlvs,
        ..Default::default()
    }
    .frame(1);
    let Pdu::DeliverSm(sm) = decode(&f).unwrap().pdu else {
        panic!()
    };
    assert_eq!(
        sm.tlvs.find(tag::SAR_MSG_REF_NUM).unwrap().typed(),
        TlvValue::SarMsgRefNum(1)
    );
    assert_eq!(sm.tlvs.sar().map(|c| c.reference), Some(1));
}
