//! Arbitrary octets through the framer and the decoder, as a peer would send them.
//!
//! The first octet picks the read size, so frames also arrive split across reads. Invariants:
//! nothing panics; the framer only yields frames within 16..=max; a decode error always names
//! a non-zero status to answer with.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use smsflow::smpp::{codec::FrameCodec, concat::Part, decode, pdu::Pdu, receipt, text};
use tokio_util::codec::Decoder;

const MAX: usize = 4096;

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, stream)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(chunk).max(1);
    let mut codec = FrameCodec::new(MAX);
    let mut buf = BytesMut::new();
    for piece in stream.chunks(chunk) {
        buf.extend_from_slice(piece);
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(frame)) => {
                    assert!((16..=MAX).contains(&frame.len()));
                    check(&frame);
                }
                Ok(None) => break,
                // Framing lost: the session closes the link; so do we.
                Err(_) => return,
            }
        }
    }
});

fn check(frame: &[u8]) {
    match decode(frame) {
        Ok(cmd) => {
            if let Pdu::DeliverSm(sm) | Pdu::SubmitSm(sm) = cmd.pdu {
                let _ = text::decode(sm.data_coding, sm.payload());
                let _ = Part::from_sm(&sm);
                for tlv in sm.tlvs {
                    let _ = tlv.typed();
                }
                let _ = sm.tlvs.delivery_receipt(sm.short_message);
            }
        }
        Err(e) => {
            assert!(!e.command_status().is_ok());
            let _ = e.to_string();
        }
    }
}
