//! Concatenated MO messages end to end through the wire layer: deliver_sm frames (8-bit UDH,
//! 16-bit UDH, SAR TLVs) → decode → [`Part::from_sm`] → [`Reassembler`] → text.

use std::time::{Duration, SystemTime};

use proptest::prelude::*;
use smsflow::smpp::{
    concat::{Offer, Part, Reassembler},
    decode,
    pdu::{Pdu, tag},
    text::{self, MessageBody},
};

use crate::util::{DeliverBody, tlv};

const COMMENT: &str = "4. Оператор был вежлив, но долго пришлось ждать на линии. \
                       Операторга раҳмат, лекин узоқ кутдим. Please call back 👍";

#[derive(Debug, Clone, Copy)]
enum Method {
    Udh8,
    Udh16,
    Sar,
}

/// The frames a subscriber's phone (via the SMSC) would produce for `COMMENT`, in order.
fn frames(method: Method, reference: u16) -> Vec<Vec<u8>> {
    let units = text::ucs2_encode(COMMENT);
    // 64 UTF-16 units per part: the split falls inside the emoji's surrogate pair on purpose
    // (phones do split there), so only whole-message decoding gets it right.
    let chunks: Vec<&[u8]> = units.chunks(128).collect();
    let total = chunks.len() as u8;
    chunks
        .iter()
        .enumerate()
        .map(|(i, chunk)| {
            let seq = i as u8 + 1;
            let [hi, lo] = reference.to_be_bytes();
            let (short_message, esm_class, tlvs) = match method {
                Method::Udh8 => (
                    [&[5, 0, 3, lo, total, seq][..], chunk].concat(),
                    0x40,
                    vec![],
                ),
                Method::Udh16 => (
                    [&[6, 8, 4, hi, lo, total, seq][..], chunk].concat(),
                    0x40,
                    vec![],
                ),
                Method::Sar => (chunk.to_vec(), 0, {
                    let mut t = tlv(tag::SAR_MSG_REF_NUM, &reference.to_be_bytes());
                    t.extend(tlv(tag::SAR_TOTAL_SEGMENTS, &[total]));
                    t.extend(tlv(tag::SAR_SEGMENT_SEQNUM, &[seq]));
                    t
                }),
            };
            DeliverBody {
                esm_class,
                data_coding: 8,
                short_message: &short_message,
                tlvs: &tlvs,
                ..Default::default()
            }
            .frame(u32::from(seq))
        })
        .collect()
}

fn part_of(frame: &[u8]) -> Part {
    let cmd = decode(frame).expect("frame decodes");
    let Pdu::DeliverSm(sm) = cmd.pdu else {
        panic!("not a deliver_sm: {:?}", cmd.pdu)
    };
    Part::from_sm(&sm).expect("frame is a part of a concatenated message")
}

/// Offers frames in the given order; returns the text of the one completed message.
fn reassemble(frames: &[Vec<u8>]) -> String {
    let mut reassembler = Reassembler::new(Duration::from_secs(300), 1000);
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let mut completed = Vec::new();
    for frame in frames {
        match reassembler.offer(now, part_of(frame)).unwrap() {
            Offer::Complete(message) => completed.push(message),
            Offer::Stored { .. } | Offer::Duplicate => {}
        }
    }
    assert_eq!(completed.len(), 1, "exactly one message completes");
    assert_eq!(reassembler.pending(), 0);
    let MessageBody::Text(text) = completed[0].body() else {
        panic!("binary body")
    };
    text
}

fn check_orders(method: Method, reference: u16) {
    let frames = frames(method, reference);
    assert!(frames.len() >= 2, "the comment spans several parts");
    assert_eq!(reassemble(&frames), COMMENT, "{method:?} in order");
    let reversed: Vec<_> = frames.iter().rev().cloned().collect();
    assert_eq!(reassemble(&reversed), COMMENT, "{method:?} reversed");
    let mut with_duplicate = frames.clone();
    with_duplicate.insert(1, frames[0].clone());
    assert_eq!(reassemble(&with_duplicate), COMMENT, "{method:?} duplicate");
}

#[test]
fn concatenated_mo_udh_8bit_reference() {
    check_orders(Method::Udh8, 0xA7);
}

#[test]
fn concatenated_mo_udh_16bit_reference() {
    check_orders(Method::Udh16, 0xBEEF);
}

#[test]
fn concatenated_mo_sar_tlvs() {
    check_orders(Method::Sar, 0x1234);
}

#[test]
fn incomplete_message_is_released_flagged_after_ttl() {
    let frames = frames(Method::Udh16, 77);
    let ttl = Duration::from_secs(60);
    let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let mut reassembler = Reassembler::new(ttl, 1000);
    // Part 2 never arrives.
    for frame in frames
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 1)
        .map(|(_, f)| f)
    {
        assert!(matches!(
            reassembler.offer(start, part_of(frame)).unwrap(),
            Offer::Stored { .. }
        ));
    }
    assert_eq!(reassembler.next_expiry(), Some(start + ttl));
    assert!(
        reassembler
            .expire(start + ttl - Duration::from_millis(1))
            .is_empty()
    );
    let released = reassembler.expire(start + ttl);
    assert_eq!(released.len(), 1);
    assert!(!released[0].is_complete());
    assert_eq!(released[0].missing, [2]);
    assert_eq!(reassembler.pending(), 0);
}

/// A whole long message in one `message_payload` TLV needs no reassembly.
#[test]
fn long_mo_in_message_payload() {
    let payload = tlv(tag::MESSAGE_PAYLOAD, &text::ucs2_encode(COMMENT));
    let frame = DeliverBody {
        data_coding: 8,
        tlvs: &payload,
        ..Default::default()
    }
    .frame(1);
    let Pdu::DeliverSm(sm) = decode(&frame).unwrap().pdu else {
        panic!()
    };
    assert!(Part::from_sm(&sm).is_none());
    assert_eq!(
        text::decode(sm.data_coding, sm.payload()),
        MessageBody::Text(COMMENT.into())
    );
}

fn part_count() -> usize {
    frames(Method::Udh8, 0).len()
}

proptest! {
    /// Any arrival order, with any parts repeated, yields the original text exactly once.
    #[test]
    fn concatenated_mo_any_order(
        method in prop_oneof![Just(Method::Udh8), Just(Method::Udh16), Just(Method::Sar)],
        order in Just((0..part_count()).collect::<Vec<_>>()).prop_shuffle(),
        repeats in proptest::collection::vec(0..part_count(), 0..4),
    ) {
        let frames = frames(method, 5);
        let mut sequence: Vec<Vec<u8>> = order.iter().map(|&i| frames[i].clone()).collect();
        // Repeats of parts other than the last go before it, so the message is still pending
        // when they arrive (a copy after completion is the service's dedup, not this one's).
        let last = order[order.len() - 1];
        for r in repeats.into_iter().filter(|&r| r != last) {
            sequence.insert(sequence.len() - 1, frames[r].clone());
        }
        prop_assert_eq!(reassemble(&sequence), COMMENT);
    }
}
