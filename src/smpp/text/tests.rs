use super::*;
use crate::smpp::udh::UserDataHeader;
use proptest::prelude::*;

const SURVEY: &str = "Спасибо за ваш звонок. Оцените, пожалуйста, нашу работу по шкале от 1 до 5, где 1 - очень плохо, 5 - отлично. Можете также оставить комментарий. Ваш отзыв важен для нас!";

#[test]
fn cost_counts_parts_units_and_what_forces_ucs2() {
    let survey = cost(SURVEY);
    assert_eq!((survey.alphabet, survey.parts), (Alphabet::Ucs2, 3));
    assert_eq!(survey.units, SURVEY.chars().count());
    assert!(survey.units > Alphabet::Ucs2.capacity(2));
    assert!(survey.units <= Alphabet::Ucs2.capacity(3));
    let plain = cost("Rahmat! Xizmatimizni 1 dan 5 gacha baholang.");
    assert_eq!((plain.alphabet, plain.parts), (Alphabet::Gsm7, 1));
    assert!(plain.not_gsm7.is_empty());
    // One typographic apostrophe (Uzbek o‘) makes a Latin text UCS-2.
    let uzbek = cost("Xizmatimiz sizga yoqdimi? Javobingiz biz uchun muhim, rahmat, bo‘lsa");
    assert_eq!(
        (uzbek.alphabet, uzbek.not_gsm7.as_slice()),
        (Alphabet::Ucs2, &['‘'][..])
    );
    assert_eq!(
        [1, 2, 3].map(|n| Alphabet::Gsm7.capacity(n)),
        [160, 306, 459]
    );
    assert_eq!(
        [1, 2, 3].map(|n| Alphabet::Ucs2.capacity(n)),
        [70, 134, 201]
    );
    // An extension character counts two.
    assert_eq!(cost("€").units, 2);
}

/// `cost` counts the parts `encode` makes, and goes on counting past the 255 it sends:
/// a 32 000-character text is 478 parts, not a silent 255.
#[test]
fn cost_counts_the_parts_encode_makes_and_past_its_cap() {
    for text in [
        String::new(),
        "a".repeat(160),
        "a".repeat(161),
        "€".repeat(77),
        "ж".repeat(135),
        "😀".repeat(34),
        format!("{}€", "a".repeat(152)),
    ] {
        assert_eq!(cost(&text).parts, encode(&text, 0).parts.len(), "{text}");
    }
    assert_eq!(cost(&"ж".repeat(32_000)).parts, 32_000usize.div_ceil(67));
}

/// Every char GSM 03.38 can carry: the default table without the escape, and the extension.
#[test]
fn every_gsm7_character_but_the_euro_is_at_or_below_omega() {
    let chars = (GSM7_DEFAULT.iter().copied()).chain(GSM7_EXTENSION.iter().map(|&(_, c)| c));
    for c in chars.filter(|&c| c != '€') {
        assert!(c <= LAST_NON_ASCII_GSM7, "{c:?} (U+{:04X})", c as u32);
    }
    assert_eq!(gsm7_char('Ω'), Some(([0x15, 0], 1)));
    assert_eq!(gsm7_char('€'), Some(([ESC, 0x65], 2)));
    assert_eq!(gsm7_char('Ж'), None);
}

fn gsm_chars() -> Vec<char> {
    let default = GSM7_DEFAULT
        .iter()
        .enumerate()
        .filter(|&(code, _)| code != usize::from(ESC))
        .map(|(_, &c)| c);
    default
        .chain(GSM7_EXTENSION.iter().map(|&(_, c)| c))
        .collect()
}

/// The user data of each part: everything after the UDH when there is one.
fn payloads(encoded: &EncodedText) -> Vec<Vec<u8>> {
    encoded
        .parts
        .iter()
        .map(|part| {
            if encoded.needs_udhi() {
                UserDataHeader::parse(part).unwrap().payload.to_vec()
            } else {
                part.clone()
            }
        })
        .collect()
}

fn payloads_of(s: &str) -> Vec<Vec<u8>> {
    payloads(&encode(s, 0))
}

fn text(body: MessageBody) -> String {
    match body {
        MessageBody::Text(text) => text,
        MessageBody::Binary(octets) => panic!("expected text, got binary {octets:02x?}"),
    }
}

#[test]
fn every_gsm_char_round_trips() {
    for c in gsm_chars() {
        let s = c.to_string();
        let septets = gsm7_encode(&s).unwrap();
        assert_eq!(gsm7_decode(&septets), s, "{c:?}");
        assert_eq!(gsm7_len(&s), Some(septets.len()), "{c:?}");
        let encoded = encode(&s, 0);
        assert_eq!(encoded.alphabet, Alphabet::Gsm7, "{c:?}");
        assert_eq!(encoded.parts, vec![septets.clone()], "{c:?}");
        assert_eq!(text(decode(0, &encoded.parts[0])), s, "{c:?}");
    }
}

#[test]
fn whole_gsm_repertoire_fits_one_part() {
    let all: String = gsm_chars().into_iter().collect();
    assert_eq!(gsm7_len(&all), Some(127 + 2 * 10));
    let encoded = encode(&all, 0);
    assert_eq!(encoded.data_coding(), 0x00);
    assert!(!encoded.needs_udhi());
    assert_eq!(text(decode(0, &encoded.parts[0])), all);
}

#[test]
fn gsm7_encode_table() {
    let cases: &[(&str, &[u8])] = &[
        ("", &[]),
        ("@£$¥", &[0x00, 0x01, 0x02, 0x03]),
        ("€", &[0x1B, 0x65]),
        ("{}", &[0x1B, 0x28, 0x1B, 0x29]),
        ("[~]", &[0x1B, 0x3C, 0x1B, 0x3D, 0x1B, 0x3E]),
        ("^\\|", &[0x1B, 0x14, 0x1B, 0x2F, 0x1B, 0x40]),
        ("\u{0C}", &[0x1B, 0x0A]),
        ("\r\n", &[0x0D, 0x0A]),
        ("Hi!", &[0x48, 0x69, 0x21]),
        ("¤§¿¡", &[0x24, 0x5F, 0x60, 0x40]),
        ("ΔΩ_", &[0x10, 0x15, 0x11]),
        (
            "ÄÖÑÜäöñüà",
            &[0x5B, 0x5C, 0x5D, 0x5E, 0x7B, 0x7C, 0x7D, 0x7E, 0x7F],
        ),
        ("a b", &[0x61, 0x20, 0x62]),
    ];
    for &(s, septets) in cases {
        assert_eq!(gsm7_encode(s).as_deref(), Some(septets), "{s:?}");
        assert_eq!(gsm7_len(s), Some(septets.len()), "{s:?}");
        assert_eq!(gsm7_decode(septets), s, "{s:?}");
    }
}

#[test]
fn chars_outside_gsm_do_not_fit() {
    for s in ["á", "ç", "Ж", "👍", "`", "\u{1B}", "\0", "\t", "oʻ"] {
        assert_eq!(gsm7_encode(s), None, "{s:?}");
        assert_eq!(gsm7_len(s), None, "{s:?}");
        assert_eq!(encode(s, 0).alphabet, Alphabet::Ucs2, "{s:?}");
    }
}

#[test]
fn gsm7_decode_reads_high_octets_as_latin1() {
    assert_eq!(gsm7_decode(&[0x63, 0x61, 0x66, 0xE9]), "café");
    assert_eq!(gsm7_decode(&[0x80, 0xFF]), "\u{80}ÿ");
    assert_eq!(text(decode(0, b"na\xefve")), "naïve");
}

#[test]
fn gsm7_decode_trailing_escape_is_space() {
    assert_eq!(gsm7_decode(&[0x61, ESC]), "a ");
    assert_eq!(gsm7_decode(&[ESC]), " ");
}

#[test]
fn gsm7_decode_escape_before_high_octet_is_space() {
    assert_eq!(gsm7_decode(&[ESC, 0xE9]), " é");
}

#[test]
fn gsm7_decode_double_escape_is_space() {
    assert_eq!(gsm7_decode(&[ESC, ESC, 0x61]), " a");
}

#[test]
fn gsm7_decode_unknown_escape_gives_default_char() {
    assert_eq!(gsm7_decode(&[ESC, 0x41]), "A");
    assert_eq!(gsm7_decode(&[ESC, 0x00, ESC, 0x65]), "@€");
}

#[test]
fn gsm7_pack_table() {
    let cases: &[(&[u8], &[u8])] = &[
        (b"", &[]),
        (b"hello", &[0xE8, 0x32, 0x9B, 0xFD, 0x06]),
        (
            b"hellohello",
            &[0xE8, 0x32, 0x9B, 0xFD, 0x46, 0x97, 0xD9, 0xEC, 0x37],
        ),
        // Eight septets fill seven octets exactly.
        (b"12345678", &[0x31, 0xD9, 0x8C, 0x56, 0xB3, 0xDD, 0x70]),
        // Seven septets leave seven zero bits: also seven octets.
        (b"1234567", &[0x31, 0xD9, 0x8C, 0x56, 0xB3, 0xDD, 0x00]),
    ];
    for &(septets, packed) in cases {
        assert_eq!(gsm7_pack(septets), packed, "{septets:?}");
        assert_eq!(gsm7_unpack(packed, septets.len()), septets, "{septets:?}");
    }
}

#[test]
fn gsm7_unpack_needs_the_septet_count() {
    let packed = gsm7_pack(b"1234567");
    // The zero padding reads as an eighth septet, '@', unless the count says otherwise.
    assert_eq!(gsm7_unpack(&packed, 8), b"1234567\0");
    assert_eq!(gsm7_decode(&gsm7_unpack(&packed, 8)), "1234567@");
}

#[test]
fn gsm7_unpack_stops_at_the_data() {
    assert_eq!(gsm7_unpack(&[0xE8, 0x32], 100), b"he");
    assert_eq!(gsm7_unpack(&[], usize::MAX), b"");
    assert_eq!(gsm7_unpack(&[0xFF; 7], usize::MAX).len(), 8);
}

#[test]
fn gsm7_pack_ignores_the_eighth_bit() {
    assert_eq!(gsm7_pack(&[0xE8]), gsm7_pack(&[0x68]));
}

#[test]
fn ucs2_round_trips() {
    let cases = [
        "Привет, мир!",
        "Ўзбекистон: ў қ ғ ҳ Ў Қ Ғ Ҳ",
        "Oʻzbekiston, gʻalaba, maʼlumot",
        "👍🏽",
        "Salom 👋 Привет ў oʻ € 😀!",
        "",
    ];
    for s in cases {
        let octets = ucs2_encode(s);
        assert_eq!(octets.len(), 2 * s.encode_utf16().count(), "{s:?}");
        assert_eq!(ucs2_decode(&octets), s, "{s:?}");
        assert_eq!(text(decode(0x08, &octets)), s, "{s:?}");
    }
}

#[test]
fn ucs2_encode_is_utf16be() {
    assert_eq!(ucs2_encode("Aʻ"), [0x00, 0x41, 0x02, 0xBB]);
    assert_eq!(ucs2_encode("👍"), [0xD8, 0x3D, 0xDC, 0x4D]);
}

#[test]
fn ucs2_lone_surrogates_become_replacement() {
    assert_eq!(ucs2_decode(&[0xD8, 0x3D]), "\u{FFFD}");
    assert_eq!(ucs2_decode(&[0xDC, 0x4D, 0xD8, 0x3D]), "\u{FFFD}\u{FFFD}");
    assert_eq!(ucs2_decode(&[0xD8, 0x3D, 0x00, 0x41]), "\u{FFFD}A");
    assert_eq!(ucs2_decode(&[0x00, 0x41, 0xDC, 0x4D]), "A\u{FFFD}");
}

#[test]
fn ucs2_odd_length_ends_in_replacement() {
    assert_eq!(ucs2_decode(&[0x00, 0x41, 0x00]), "A\u{FFFD}");
    assert_eq!(ucs2_decode(&[0x04]), "\u{FFFD}");
    assert_eq!(ucs2_decode(&[]), "");
}

#[test]
fn latin1_spot_checks() {
    assert_eq!(text(decode(0x03, b"caf\xe9 \xa3\xff")), "café £ÿ");
    assert_eq!(text(decode(0x03, &[0x80, 0xA0])), "\u{80}\u{A0}");
}

#[test]
fn ia5_is_ascii_with_latin1_above() {
    assert_eq!(text(decode(0x01, b"Hello {x}")), "Hello {x}");
    assert_eq!(text(decode(0x01, b"na\xefve")), "naïve");
}

#[test]
fn iso8859_5_spot_checks() {
    let privet = [0xBF, 0xE0, 0xD8, 0xD2, 0xD5, 0xE2];
    assert_eq!(text(decode(0x06, &privet)), "Привет");
    let cases = [
        (0x41, 'A'),
        (0x9F, '\u{9F}'),
        (0xA0, '\u{A0}'),
        (0xA1, 'Ё'),
        (0xAC, 'Ќ'),
        (0xAD, '\u{AD}'),
        (0xAE, 'Ў'),
        (0xAF, 'Џ'),
        (0xB0, 'А'),
        (0xCF, 'Я'),
        (0xD0, 'а'),
        (0xEF, 'я'),
        (0xF0, '№'),
        (0xF1, 'ё'),
        (0xFC, 'ќ'),
        (0xFD, '§'),
        (0xFE, 'ў'),
        (0xFF, 'џ'),
    ];
    for (octet, c) in cases {
        assert_eq!(iso8859_5(octet), c, "0x{octet:02x}");
    }
}

#[test]
fn data_coding_groups() {
    use Coding::*;
    let cases = [
        (0x00, Gsm7),
        (0x01, Latin1),
        (0x02, Binary),
        (0x03, Latin1),
        (0x04, Binary),
        (0x05, Unknown),
        (0x06, Iso8859_5),
        (0x07, Unknown),
        (0x08, Ucs2),
        (0x09, Unknown),
        (0x0E, Unknown),
        (0x0F, Unknown),
        (0x10, Gsm7),
        (0x11, Gsm7),
        (0x14, Binary),
        (0x18, Ucs2),
        (0x1A, Ucs2),
        (0x1C, Binary),
        (0x20, Binary),
        (0x28, Binary),
        (0x30, Binary),
        (0x3F, Binary),
        (0x40, Gsm7),
        (0x48, Ucs2),
        (0x44, Binary),
        (0x58, Ucs2),
        (0x68, Binary),
        (0x80, Unknown),
        (0xBF, Unknown),
        (0xC0, Gsm7),
        (0xD8, Gsm7),
        (0xE0, Ucs2),
        (0xEF, Ucs2),
        (0xF0, Gsm7),
        (0xF3, Gsm7),
        (0xF4, Binary),
        (0xF7, Binary),
        (0xFB, Gsm7),
        (0xFF, Binary),
    ];
    for (dc, expected) in cases {
        assert_eq!(coding(dc), expected, "data_coding 0x{dc:02x}");
    }
}

#[test]
fn decode_dispatches_by_data_coding() {
    assert_eq!(
        decode(0x00, &[0x00, 0x1B, 0x65]),
        MessageBody::Text("@€".into())
    );
    assert_eq!(decode(0xF1, b"hi"), MessageBody::Text("hi".into()));
    assert_eq!(decode(0x18, &[0x04, 0x16]), MessageBody::Text("Ж".into()));
    assert_eq!(decode(0x04, b"hi"), MessageBody::Binary(b"hi".to_vec()));
    assert_eq!(decode(0x02, &[0xFF]), MessageBody::Binary(vec![0xFF]));
    assert_eq!(decode(0xF5, &[0x01]), MessageBody::Binary(vec![0x01]));
}

#[test]
fn unknown_coding_is_text_only_when_ascii() {
    assert_eq!(decode(0x05, b"Hello"), MessageBody::Text("Hello".into()));
    assert_eq!(decode(0x09, b""), MessageBody::Text(String::new()));
    assert_eq!(
        decode(0x0E, &[0xB0, 0xA1]),
        MessageBody::Binary(vec![0xB0, 0xA1])
    );
}

#[test]
fn alphabet_data_coding() {
    assert_eq!(Alphabet::Gsm7.data_coding(), 0x00);
    assert_eq!(Alphabet::Ucs2.data_coding(), 0x08);
}

#[test]
fn empty_text_is_one_empty_gsm_part() {
    let encoded = encode("", 9);
    assert_eq!(encoded.alphabet, Alphabet::Gsm7);
    assert_eq!(encoded.parts, vec![Vec::<u8>::new()]);
    assert!(!encoded.needs_udhi());
}

#[test]
fn gsm_160_is_one_part() {
    let encoded = encode(&"a".repeat(160), 1);
    assert_eq!(encoded.parts, vec![vec![0x61; 160]]);
    assert!(!encoded.needs_udhi());
    // Extension chars count two: 80 euros are 160 septets.
    assert_eq!(encode(&"€".repeat(80), 1).parts.len(), 1);
    assert_eq!(encode(&"€".repeat(81), 1).parts.len(), 2);
}

#[test]
fn gsm_161_is_two_parts() {
    let encoded = encode(&"a".repeat(161), 0x2A);
    assert_eq!(encoded.data_coding(), 0x00);
    assert!(encoded.needs_udhi());
    assert_eq!(encoded.parts.len(), 2);
    assert_eq!(encoded.parts[0][..6], concat_8bit(0x2A, 2, 1));
    assert_eq!(encoded.parts[1][..6], concat_8bit(0x2A, 2, 2));
    let lens: Vec<usize> = payloads(&encoded).iter().map(Vec::len).collect();
    assert_eq!(lens, [153, 8]);
}

#[test]
fn gsm_escape_is_not_split() {
    // The escape would be septet 153: the first part stops at 152.
    let s = format!("{}€{}", "a".repeat(152), "b".repeat(10));
    let encoded = encode(&s, 3);
    let payloads = payloads(&encoded);
    assert_eq!(payloads.len(), 2);
    assert_eq!(payloads[0], vec![0x61; 152]);
    assert_eq!(payloads[1][..2], [ESC, 0x65]);
    assert_eq!(payloads[1].len(), 12);
    // One septet earlier, the whole escape fits at the end of the first part.
    let s = format!("{}€{}", "a".repeat(151), "b".repeat(10));
    let payloads = payloads_of(&s);
    assert_eq!(payloads[0].len(), 153);
    assert_eq!(payloads[0][151..], [ESC, 0x65]);
}

#[test]
fn ucs2_70_is_one_part() {
    let encoded = encode(&"Ж".repeat(70), 1);
    assert_eq!(encoded.data_coding(), 0x08);
    assert!(!encoded.needs_udhi());
    assert_eq!(encoded.parts, vec![[0x04, 0x16].repeat(70)]);
}

#[test]
fn ucs2_71_is_two_parts() {
    let encoded = encode(&"Ж".repeat(71), 5);
    assert!(encoded.needs_udhi());
    assert_eq!(encoded.parts[0][..6], concat_8bit(5, 2, 1));
    assert_eq!(encoded.parts[1][..6], concat_8bit(5, 2, 2));
    let lens: Vec<usize> = payloads(&encoded).iter().map(Vec::len).collect();
    assert_eq!(lens, [2 * 67, 2 * 4]);
}

#[test]
fn surrogate_pair_is_not_split() {
    // The emoji would take units 67 and 68: the first part stops at 66.
    let s = format!("{}👍{}", "Ж".repeat(66), "Ж".repeat(10));
    let payloads = payloads_of(&s);
    assert_eq!(payloads.len(), 2);
    assert_eq!(payloads[0].len(), 2 * 66);
    assert_eq!(payloads[1][..4], [0xD8, 0x3D, 0xDC, 0x4D]);
    assert_eq!(payloads[1].len(), 2 * 12);
    // One unit earlier, it fits at the end of the first part.
    let s = format!("{}👍{}", "Ж".repeat(65), "Ж".repeat(10));
    let payloads = payloads_of(&s);
    assert_eq!(payloads[0].len(), 2 * 67);
    assert_eq!(payloads[0][130..], [0xD8, 0x3D, 0xDC, 0x4D]);
}

#[test]
fn survey_text_is_three_ucs2_parts() {
    assert_eq!(SURVEY.chars().count(), 169);
    assert_eq!(SURVEY.encode_utf16().count(), 169);
    let encoded = encode(SURVEY, 0x7B);
    assert_eq!(encoded.alphabet, Alphabet::Ucs2);
    assert!(encoded.needs_udhi());
    assert_eq!(encoded.parts.len(), 3);
    for (part, seq) in encoded.parts.iter().zip(1..) {
        assert_eq!(part[..6], concat_8bit(0x7B, 3, seq));
    }
    let payloads = payloads(&encoded);
    let units: Vec<usize> = payloads.iter().map(|p| p.len() / 2).collect();
    assert_eq!(units, [67, 67, 35]);
    assert_eq!(text(decode(0x08, &payloads.concat())), SURVEY);
}

#[test]
fn more_than_255_parts_is_truncated_to_255() {
    let encoded = encode(&"a".repeat(255 * 153 + 10), 4);
    assert_eq!(encoded.parts.len(), 255);
    assert_eq!(encoded.parts[0][..6], concat_8bit(4, 255, 1));
    assert_eq!(encoded.parts[254][..6], concat_8bit(4, 255, 255));
    assert_eq!(encoded.parts[254].len(), 6 + 153);
}

#[test]
fn message_body_serde_derives() {
    fn assert_serde<T: serde::Serialize + serde::de::DeserializeOwned>() {}
    assert_serde::<MessageBody>();
}

/// Text from the GSM repertoire, so long texts exercise escapes at part boundaries.
fn gsm_text() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(gsm_chars()), 0..700)
        .prop_map(|chars| chars.into_iter().collect())
}

/// Text heavy in surrogate pairs, so long texts exercise pairs at part boundaries.
fn ucs2_text() -> impl Strategy<Value = String> {
    let chars = vec!['Ж', 'ў', 'ʻ', 'a', '€', '👍', '🏽', '😀', '\u{10FFFF}'];
    prop::collection::vec(prop::sample::select(chars), 0..400)
        .prop_map(|chars| chars.into_iter().collect())
}

fn assert_round_trip(s: &str, reference: u8) -> Result<(), TestCaseError> {
    let encoded = encode(s, reference);
    let payloads = payloads(&encoded);
    let total = encoded.parts.len();
    prop_assert!((1..=255).contains(&total));
    let (single, per_part) = encoded.alphabet.limits();
    if total == 1 {
        prop_assert!(encoded.parts[0].len() <= single);
    } else {
        for (i, part) in encoded.parts.iter().enumerate() {
            prop_assert_eq!(
                &part[..6],
                &concat_8bit(reference, total as u8, i as u8 + 1)
            );
            prop_assert!(part.len() <= 6 + per_part);
        }
    }
    if encoded.alphabet == Alphabet::Gsm7 {
        prop_assert_eq!(gsm7_len(s), Some(payloads.iter().map(Vec::len).sum()));
    }
    let body = decode(encoded.data_coding(), &payloads.concat());
    prop_assert_eq!(body, MessageBody::Text(s.to_owned()));
    Ok(())
}

proptest! {
    #[test]
    fn any_string_round_trips(s in any::<String>(), reference in any::<u8>()) {
        assert_round_trip(&s, reference)?;
    }

    #[test]
    fn gsm_text_round_trips(s in gsm_text(), reference in any::<u8>()) {
        prop_assert_eq!(encode(&s, reference).alphabet, Alphabet::Gsm7);
        assert_round_trip(&s, reference)?;
    }

    #[test]
    fn ucs2_text_round_trips(s in ucs2_text(), reference in any::<u8>()) {
        assert_round_trip(&s, reference)?;
    }

    #[test]
    fn gsm7_pack_round_trips(septets in prop::collection::vec(0u8..0x80, 0..400)) {
        let packed = gsm7_pack(&septets);
        prop_assert_eq!(packed.len(), (septets.len() * 7).div_ceil(8));
        prop_assert_eq!(gsm7_unpack(&packed, septets.len()), septets);
    }

    #[test]
    fn decode_never_panics(dc in any::<u8>(), payload in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = decode(dc, &payload);
        let _ = gsm7_unpack(&payload, usize::MAX);
    }
}
