//! Nothing in the wire layer panics on input a peer controls: arbitrary octets as frames, as
//! framed streams, as UDHs, as receipt text, as text in any data_coding.

use bytes::BytesMut;
use proptest::prelude::*;
use smsflow::smpp::{codec::FrameCodec, decode, pdu::Pdu, receipt, text, udh::UserDataHeader};
use tokio_util::codec::Decoder;

use crate::util::frame;

/// Every command id the decoder takes apart, plus one it does not.
const COMMAND_IDS: [u32; 24] = [
    0x8000_0000,
    0x1,
    0x8000_0001,
    0x2,
    0x8000_0002,
    0x3,
    0x8000_0003,
    0x4,
    0x8000_0004,
    0x5,
    0x8000_0005,
    0x6,
    0x8000_0006,
    0x9,
    0x8000_0009,
    0xB,
    0x15,
    0x8000_0015,
    0x8000_0021,
    0x102,
    0x103,
    0x8000_0103,
    0x8,
    0x7777,
];

/// Exercise every accessor of a decoded PDU, so lazily read parts are covered too.
fn touch(pdu: &Pdu<'_>) {
    if let Pdu::DeliverSm(sm) | Pdu::SubmitSm(sm) = pdu {
        let _ = (sm.concat(), sm.payload(), sm.udh());
        for tlv in sm.tlvs {
            let _ = tlv.typed();
        }
        let _ = text::decode(sm.data_coding, sm.payload());
        let _ = sm.tlvs.delivery_receipt(sm.short_message);
        if let Some(part) = smsflow::smpp::concat::Part::from_sm(sm) {
            let _ = part;
        }
    }
    let _ = format!("{pdu:?}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic_the_decoder(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        if let Ok(cmd) = decode(&bytes) {
            touch(&cmd.pdu);
        }
    }

    /// A well-formed header in front of arbitrary bodies reaches every body parser.
    #[test]
    fn arbitrary_bodies_never_panic_the_decoder(
        id in proptest::sample::select(&COMMAND_IDS[..]),
        status in prop_oneof![Just(0u32), any::<u32>()],
        body in proptest::collection::vec(any::<u8>(), 0..400),
    ) {
        let f = frame(id, status, 1, &body);
        match decode(&f) {
            Ok(cmd) => touch(&cmd.pdu),
            Err(e) => {
                // Every error can be answered: it names a status and the sequence number.
                prop_assert!(!e.command_status().is_ok());
                prop_assert_eq!(e.sequence_number(), 1);
                let _ = e.to_string();
            }
        }
    }

    #[test]
    fn arbitrary_streams_never_panic_the_framer(
        bytes in proptest::collection::vec(any::<u8>(), 0..2000),
        chunk in 1..64usize,
    ) {
        let mut codec = FrameCodec::new(1024);
        let mut buf = BytesMut::new();
        'feed: for piece in bytes.chunks(chunk) {
            buf.extend_from_slice(piece);
            loop {
                match codec.decode(&mut buf) {
                    Ok(Some(f)) => {
                        prop_assert!(f.len() >= 16 && f.len() <= 1024);
                        let _ = decode(&f);
                    }
                    Ok(None) => break,
                    Err(_) => break 'feed,
                }
            }
        }
    }

    #[test]
    fn arbitrary_udh_and_receipts_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        if let Ok(udh) = UserDataHeader::parse(&bytes) {
            let _ = udh.concat();
        }
        let _ = receipt::parse_text(&bytes);
        let _ = receipt::receipt(&bytes, Some(&bytes), bytes.first().copied(), Some(&bytes));
    }
}
