//! Codec benchmarks: our nom decoder against rusmpp's decoders on the same deliver_sm frames,
//! and MT encoding + segmentation of the survey text.
//!
//! `cargo bench --bench codec`. Report ratios (rusmpp time / our time), not absolute numbers:
//! both run in the same process on the same frames.

use std::hint::black_box;

use bytes::BytesMut;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use rusmpp_core::decode::borrowed::DecodeWithLength as _;
use smsflow::smpp::{
    decode,
    encode::{self, Address, Param, ShortMessage},
    pdu::Pdu,
    text,
};
use tokio_util::codec::Decoder as _;

const SURVEY: &str = "Спасибо за ваш звонок. Оцените, пожалуйста, нашу работу по шкале от 1 до 5, \
    где 1 - очень плохо, 5 - отлично. Можете также оставить комментарий. Ваш отзыв важен для нас!";
const SURVEY_GSM: &str = "Thank you for your call. Please rate our work on a scale from 1 to 5, \
    where 1 is very bad and 5 is excellent. You may also leave a comment. Your feedback matters!";

fn mo<'a>(esm_class: u8, data_coding: u8, sm: &'a [u8], params: Vec<Param<'a>>) -> Vec<u8> {
    let m = ShortMessage::new(
        Address::international("998901234567"),
        Address::short_code("5700"),
        data_coding,
        sm,
    )
    .esm_class(esm_class)
    .params(params);
    encode::to_frame(&encode::deliver_sm(1, &m).expect("valid deliver_sm")).to_vec()
}

/// The three frames of the issue: a GSM "5", a 140-octet UCS-2 part with UDH, a receipt.
fn frames() -> Vec<(&'static str, Vec<u8>)> {
    let comment =
        "Оператор был вежлив, но долго пришлось ждать на линии. Спасибо за помощь, всё ок!!";
    let mut ucs2 = vec![5, 0, 3, 0x2A, 2, 1];
    ucs2.extend_from_slice(&text::ucs2_encode(comment)[..134]);
    assert_eq!(ucs2.len(), 140);
    let receipt = b"id:5E0F1A2B sub:001 dlvrd:001 submit date:2611221430 done date:2611221431 stat:DELIVRD err:000 text:Thanks!";
    vec![
        ("gsm_rating", mo(0, 0, b"5", vec![])),
        ("ucs2_udh_140", mo(0x40, 8, &ucs2, vec![])),
        (
            "receipt_tlvs",
            mo(
                0x04,
                0,
                receipt,
                vec![
                    Param::ReceiptedMessageId("5E0F1A2B"),
                    Param::MessageState(2),
                    Param::NetworkErrorCode {
                        network_type: 3,
                        error_code: 0,
                    },
                ],
            ),
        ),
    ]
}

fn decode_deliver_sm(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode_deliver_sm");
    for (name, frame) in frames() {
        // Both decoders must accept the frame, or the comparison means nothing.
        assert!(matches!(decode(&frame).unwrap().pdu, Pdu::DeliverSm(_)));
        rusmpp_core::command::borrowed::Command::<'_, 16>::decode(&frame[4..], frame.len() - 4)
            .expect("rusmpp decodes the frame");

        group.bench_with_input(BenchmarkId::new("nom", name), &frame, |b, f| {
            b.iter(|| decode(black_box(f)).map(|c| c.header.sequence_number))
        });
        group.bench_with_input(BenchmarkId::new("rusmpp", name), &frame, |b, f| {
            b.iter(|| {
                let f = black_box(f);
                rusmpp_core::command::borrowed::Command::<'_, 16>::decode(&f[4..], f.len() - 4)
                    .map(|(c, _)| c.sequence_number)
            })
        });
        // rusmpp's owned decoder, as the rusmpp tokio codec runs it (copies into Bytes).
        group.bench_with_input(BenchmarkId::new("rusmpp_owned", name), &frame, |b, f| {
            let mut codec = rusmpp::tokio_codec::CommandCodec::new();
            b.iter(|| {
                let mut buf = BytesMut::from(black_box(&f[..]));
                codec.decode(&mut buf).map(|c| c.map(|c| c.sequence_number))
            })
        });
    }
    group.finish();
}

fn encode_survey(c: &mut Criterion) {
    let mut group = c.benchmark_group("encode_survey");
    for (name, survey) in [("ucs2", SURVEY), ("gsm", SURVEY_GSM)] {
        group.bench_with_input(BenchmarkId::new("segment", name), survey, |b, s| {
            b.iter(|| text::encode(black_box(s), 7))
        });
        // Segmentation plus one submit_sm frame per part, as the session will send them.
        group.bench_with_input(
            BenchmarkId::new("submit_sm_frames", name),
            survey,
            |b, s| {
                b.iter(|| {
                    let encoded = text::encode(black_box(s), 7);
                    let mut out = BytesMut::new();
                    for (i, part) in encoded.parts.iter().enumerate() {
                        let m = ShortMessage::part(
                            Address::short_code("5700"),
                            Address::international("998901234567"),
                            &encoded,
                            part,
                        )
                        .registered_delivery(1);
                        let cmd = encode::submit_sm(i as u32 + 1, &m).expect("valid submit_sm");
                        encode::write_command(&cmd, &mut out);
                    }
                    out.len()
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, decode_deliver_sm, encode_survey);
criterion_main!(benches);
