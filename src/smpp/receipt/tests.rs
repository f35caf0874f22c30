use super::*;
use proptest::prelude::*;

#[test]
fn parses_the_smpp_3_4_appendix_b_example() {
    let sm = b"id:0123456789 sub:001 dlvrd:001 submit date:0610191018 \
               done date:0610191020 stat:DELIVRD err:000 Text:Hello world";
    assert_eq!(
        parse_text(sm),
        Some(ReceiptText {
            id: Some("0123456789"),
            sub: Some("001"),
            dlvrd: Some("001"),
            submit_date: Some("0610191018"),
            done_date: Some("0610191020"),
            stat: Some("DELIVRD"),
            err: Some("000"),
            text: Some("Hello world"),
        })
    );
    let r = receipt(sm, None, None, None).unwrap();
    assert_eq!(
        r,
        DeliveryReceipt {
            message_id: "0123456789".into(),
            state: MessageState::Delivered,
            error: Some("000".into()),
            done_at: Some("0610191020".into()),
        }
    );
}

#[test]
fn parses_the_appendix_b_template_literally() {
    let sm = b"id:IIIIIIIIII sub:SSS dlvrd:DDD submit date:YYMMDDhhmm done date:YYMMDDhhmm \
               stat:DDDDDDD err:E Text: . . . . . . . . .";
    let t = parse_text(sm).unwrap();
    assert_eq!(t.id, Some("IIIIIIIIII"));
    assert_eq!(t.stat, Some("DDDDDDD"));
    assert_eq!(t.err, Some("E"));
    assert_eq!(t.text, Some(" . . . . . . . . ."));
    assert_eq!(
        receipt(sm, None, None, None),
        Err(ReceiptError::UnrecognisedState {
            message_state: None,
            stat: Some("DDDDDDD".into())
        })
    );
}

#[test]
fn uppercase_and_mixed_case_keys_are_recognised() {
    let t = parse_text(b"ID:abc SUB:001 DLVRD:001 SUBMIT DATE:2401011200 Done Date:2401011201 STAT:delivrd ERR:000 TEXT:x")
        .unwrap();
    assert_eq!(t.id, Some("abc"));
    assert_eq!(t.submit_date, Some("2401011200"));
    assert_eq!(t.done_date, Some("2401011201"));
    assert_eq!(t.stat, Some("delivrd"));
    assert_eq!(t.text, Some("x"));
}

#[test]
fn missing_sub_and_dlvrd_are_none() {
    let t = parse_text(b"id:42 submit date:2401011200 done date:2401011201 stat:UNDELIV err:001")
        .unwrap();
    assert_eq!(t.sub, None);
    assert_eq!(t.dlvrd, None);
    assert_eq!(t.text, None);
    assert_eq!(t.stat, Some("UNDELIV"));
}

#[test]
fn underscore_date_keys_are_recognised() {
    let t = parse_text(b"id:1 submit_date:2401011200 done_date:2401011201 stat:DELIVRD").unwrap();
    assert_eq!(t.submit_date, Some("2401011200"));
    assert_eq!(t.done_date, Some("2401011201"));
}

#[test]
fn dates_with_seconds_are_kept_verbatim() {
    let sm = b"id:1 submit date:240101120005 done date:240101120159 stat:DELIVRD";
    let t = parse_text(sm).unwrap();
    assert_eq!(t.submit_date, Some("240101120005"));
    assert_eq!(t.done_date, Some("240101120159"));
    let r = receipt(sm, None, None, None).unwrap();
    assert_eq!(r.done_at.as_deref(), Some("240101120159"));
}

#[test]
fn extra_unknown_keys_and_junk_tokens_are_ignored() {
    let t =
        parse_text(b"msisdn:447700900000 id:7 mccmnc:23410 stat:DELIVRD noise err:000 price:0.01")
            .unwrap();
    assert_eq!(t.id, Some("7"));
    assert_eq!(t.stat, Some("DELIVRD"));
    assert_eq!(t.err, Some("000"));
}

#[test]
fn key_must_start_a_token() {
    // `msgid:` is an unknown key, not `id:`.
    assert_eq!(parse_text(b"msgid:9 xstat:DELIVRD"), None);
}

#[test]
fn extra_spaces_tabs_newlines_and_nul_padding_are_tolerated() {
    let t = parse_text(
        b"  id:5   sub:001\t dlvrd:001\r\nsubmit   date:2401011200  done date:2401011201 stat: DELIVRD err: text:hi\0\0",
    )
    .unwrap();
    assert_eq!(t.id, Some("5"));
    assert_eq!(t.sub, Some("001"));
    assert_eq!(t.submit_date, Some("2401011200"));
    assert_eq!(t.stat, Some("DELIVRD"), "value after `: ` is taken");
    assert_eq!(t.err, None, "`err: text:` leaves err empty");
    assert_eq!(t.text, Some("hi"), "trailing NULs removed");
}

#[test]
fn text_with_colons_and_stat_inside_does_not_confuse_the_parser() {
    let t = parse_text(b"id:1 stat:UNDELIV err:034 text:Meet at 10:30 stat:DELIVRD id:2 err:000")
        .unwrap();
    assert_eq!(t.id, Some("1"));
    assert_eq!(t.stat, Some("UNDELIV"));
    assert_eq!(t.err, Some("034"));
    assert_eq!(t.text, Some("Meet at 10:30 stat:DELIVRD id:2 err:000"));
}

#[test]
fn repeated_key_keeps_the_first_value() {
    let t = parse_text(b"id:first id:second stat:DELIVRD").unwrap();
    assert_eq!(t.id, Some("first"));
}

#[test]
fn non_utf8_value_loses_only_that_field() {
    let t = parse_text(b"id:1 foo:\xff stat:DELIVRD text:caf\xe9").unwrap();
    assert_eq!(t.id, Some("1"));
    assert_eq!(t.stat, Some("DELIVRD"));
    assert_eq!(t.text, None);
}

#[test]
fn no_recognised_key_is_none() {
    assert_eq!(parse_text(b""), None);
    assert_eq!(parse_text(b"hello world"), None);
    assert_eq!(parse_text(b"foo:bar baz:1"), None);
    assert_eq!(parse_text(b"\0\0\0"), None);
    // A recognised key with an empty value still counts.
    assert_eq!(parse_text(b"stat:"), Some(ReceiptText::default()));
}

#[test]
fn every_stat_form_parses_in_both_cases() {
    use MessageState::*;
    let forms = [
        ("ENROUTE", Enroute),
        ("DELIVRD", Delivered),
        ("DELIVERED", Delivered),
        ("EXPIRED", Expired),
        ("DELETED", Deleted),
        ("UNDELIV", Undeliverable),
        ("UNDELIVERABLE", Undeliverable),
        ("UNDELIVERED", Undeliverable),
        ("ACCEPTD", Accepted),
        ("ACCEPTED", Accepted),
        ("UNKNOWN", Unknown),
        ("REJECTD", Rejected),
        ("REJECTED", Rejected),
        ("SKIPPED", Skipped),
    ];
    for (form, state) in forms {
        for text in [form.to_owned(), form.to_ascii_lowercase()] {
            assert_eq!(MessageState::from_stat(&text), Some(state), "{text}");
            let sm = format!("id:1 stat:{text} err:000");
            assert_eq!(
                receipt(sm.as_bytes(), None, None, None).map(|r| r.state),
                Ok(state)
            );
        }
    }
    assert_eq!(MessageState::from_stat("DELIVR"), None);
    assert_eq!(MessageState::from_stat(""), None);
}

#[test]
fn tlv_values_map_to_states_and_as_str_round_trips() {
    assert_eq!(MessageState::from_tlv(0), None);
    assert_eq!(MessageState::from_tlv(10), None);
    for value in 1..=9 {
        let state = MessageState::from_tlv(value).unwrap();
        assert_eq!(MessageState::from_stat(state.as_str()), Some(state));
        assert_eq!(state.to_string(), state.as_str());
        assert_eq!(state.as_str().len(), 7);
    }
    assert_eq!(MessageState::from_tlv(2), Some(MessageState::Delivered));
    assert_eq!(MessageState::from_tlv(9), Some(MessageState::Skipped));
}

#[test]
fn finality_and_success() {
    use MessageState::*;
    for s in [Enroute, Accepted] {
        assert!(!s.is_final(), "{s}");
    }
    for s in [
        Delivered,
        Expired,
        Deleted,
        Undeliverable,
        Unknown,
        Rejected,
        Skipped,
    ] {
        assert!(s.is_final(), "{s}");
    }
    assert!(Delivered.is_success());
    assert!(!Accepted.is_success());
    assert!(!Undeliverable.is_success());
}

#[test]
fn tlvs_override_text_id_state_and_error() {
    let sm = b"id:111 stat:ENROUTE err:000 done date:2401011201";
    let r = receipt(sm, Some(b"ABC222\0"), Some(5), Some(&[3, 0x00, 0x22])).unwrap();
    assert_eq!(
        r,
        DeliveryReceipt {
            message_id: "ABC222".into(),
            state: MessageState::Undeliverable,
            error: Some("gsm:34".into()),
            done_at: Some("2401011201".into()),
        }
    );
}

#[test]
fn unusable_tlvs_fall_back_to_text() {
    let sm = b"id:111 stat:DELIVRD err:000";
    let r = receipt(sm, Some(b"\0"), Some(0), Some(&[3, 0])).unwrap();
    assert_eq!(r.message_id, "111");
    assert_eq!(r.state, MessageState::Delivered);
    assert_eq!(r.error.as_deref(), Some("000"));
    let r = receipt(sm, Some(b"\xff\xfe"), Some(42), None).unwrap();
    assert_eq!(r.message_id, "111");
}

#[test]
fn tlv_only_receipt_with_empty_short_message() {
    let r = receipt(b"", Some(b"0A1B2C\0"), Some(2), None).unwrap();
    assert_eq!(
        r,
        DeliveryReceipt {
            message_id: "0A1B2C".into(),
            state: MessageState::Delivered,
            error: None,
            done_at: None,
        }
    );
    // Without the trailing NUL too.
    let r = receipt(b"", Some(b"0A1B2C"), Some(8), Some(&[8, 0x01, 0x00])).unwrap();
    assert_eq!(r.message_id, "0A1B2C");
    assert_eq!(r.state, MessageState::Rejected);
    assert_eq!(r.error.as_deref(), Some("mc:256"));
}

#[test]
fn network_error_code_names_each_network_type() {
    assert_eq!(
        network_error(&[1, 0, 1]).as_deref(),
        Some("ansi136-access-denied:1")
    );
    assert_eq!(
        network_error(&[7, 0xff, 0xff]).as_deref(),
        Some("smpp:65535")
    );
    assert_eq!(network_error(&[200, 0, 5]).as_deref(), Some("net200:5"));
    assert_eq!(network_error(&[3, 0]), None);
    assert_eq!(network_error(&[3, 0, 1, 0]), None);
}

#[test]
fn missing_id_or_state_is_an_error() {
    assert_eq!(
        receipt(b"stat:DELIVRD", None, None, None),
        Err(ReceiptError::NoMessageId)
    );
    assert_eq!(
        receipt(b"", None, Some(2), None),
        Err(ReceiptError::NoMessageId)
    );
    assert_eq!(
        receipt(b"", Some(b"\0"), Some(2), None),
        Err(ReceiptError::NoMessageId)
    );
    assert_eq!(
        receipt(b"id:1 err:000", None, None, None),
        Err(ReceiptError::NoState)
    );
    assert_eq!(
        receipt(b"", Some(b"9"), None, None),
        Err(ReceiptError::NoState)
    );
    let err = receipt(b"id:1 stat:WEIRD", None, Some(12), None).unwrap_err();
    assert_eq!(
        err,
        ReceiptError::UnrecognisedState {
            message_state: Some(12),
            stat: Some("WEIRD".into())
        }
    );
    assert_eq!(
        err.to_string(),
        "receipt state not recognised (message_state tlv Some(12), stat Some(\"WEIRD\"))"
    );
    assert_eq!(
        ReceiptError::NoState.to_string(),
        "receipt carries no state (no message_state tlv, no stat: field)"
    );
}

#[test]
fn ids_match_table() {
    let rows = [
        ("abc123", "abc123", true),
        ("ABC123", "abc123", true),
        ("000123", "123", true),
        ("0000", "0", true),
        ("10", "a", true),   // decimal 10 = hex a
        ("a", "10", true),   // either way round
        ("16", "10", true),  // decimal 16 = hex 10
        ("10", "16", true),  // either way round
        ("10", "10", true),  // plain equality
        ("255", "FF", true), // hex case ignored
        ("0255", "00ff", true),
        ("3735928559", "DEADBEEF", true),
        ("12345678901234567890", "AB54A98CEB1F0AD2", true),
        ("10", "b", false),
        ("17", "10", false),
        ("abc", "abd", false),
        ("12a", "12", false), // neither reading makes them equal
        ("-10", "a", false),  // signs are not digits
        ("+16", "10", false),
        ("0x10", "16", false), // no prefixes
        ("", "", false),
        ("", "0", false),
        ("1 0", "a", false),
    ];
    for (a, b, expected) in rows {
        assert_eq!(ids_match(a, b), expected, "ids_match({a:?}, {b:?})");
    }
}

#[test]
fn ids_match_falls_back_to_strings_on_overflow() {
    let long_decimal = "9".repeat(60);
    let long_hex = "f".repeat(60);
    assert!(ids_match(&long_decimal, &long_decimal));
    assert!(!ids_match(&long_decimal, &long_hex));
    assert!(ids_match(&long_hex.to_uppercase(), &long_hex));
}

fn soup() -> impl Strategy<Value = Vec<u8>> {
    let tokens = prop_oneof![
        Just(b"id:".to_vec()),
        Just(b"ID".to_vec()),
        Just(b"stat:".to_vec()),
        Just(b"submit".to_vec()),
        Just(b"done".to_vec()),
        Just(b" date".to_vec()),
        Just(b"_date:".to_vec()),
        Just(b"text:".to_vec()),
        Just(b"err:".to_vec()),
        Just(b":".to_vec()),
        Just(b" ".to_vec()),
        Just(b"\0".to_vec()),
        Just(b"DELIVRD".to_vec()),
        proptest::collection::vec(any::<u8>(), 0..4),
    ];
    proptest::collection::vec(tokens, 0..30).prop_map(|v| v.concat())
}

proptest! {
    #[test]
    fn parse_text_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = parse_text(&bytes);
    }

    #[test]
    fn parse_text_never_panics_on_key_soup(bytes in soup()) {
        if let Some(t) = parse_text(&bytes) {
            // Every value is a sub-slice of the input.
            for v in [t.id, t.sub, t.dlvrd, t.submit_date, t.done_date, t.stat, t.err, t.text].into_iter().flatten() {
                prop_assert!(!v.is_empty());
            }
        }
    }

    #[test]
    fn receipt_never_panics_on_arbitrary_inputs(
        sm in prop_oneof![soup(), proptest::collection::vec(any::<u8>(), 0..200)],
        id in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..70)),
        state in proptest::option::of(any::<u8>()),
        nec in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..5)),
    ) {
        let _ = receipt(&sm, id.as_deref(), state, nec.as_deref());
    }

    #[test]
    fn formatted_receipts_parse_back_whatever_the_key_case_and_spacing(
        id in "[0-9A-Fa-f]{1,20}",
        stat in 1u8..=9,
        upper in any::<bool>(),
        gap in " {1,3}",
        seconds in any::<bool>(),
        text in "[ -~]{0,20}",
    ) {
        let state = MessageState::from_tlv(stat).unwrap();
        let date = if seconds { "240102030405" } else { "2401020304" };
        let fields = format!(
            "id:{id}{gap}sub:001{gap}dlvrd:001{gap}submit date:{date}{gap}done date:{date}{gap}stat:{}{gap}err:000{gap}text:",
            state.as_str()
        );
        let fields = if upper { fields.to_ascii_uppercase() } else { fields };
        let line = format!("{fields}{text}");
        let t = parse_text(line.as_bytes()).unwrap();
        // Uppercasing touched the id too; the parser keeps it verbatim.
        let expected_id = if upper { id.to_ascii_uppercase() } else { id };
        prop_assert_eq!(t.id, Some(expected_id.as_str()));
        prop_assert_eq!(t.done_date, Some(date));
        prop_assert_eq!(t.text, (!text.is_empty()).then_some(text.as_str()));
        let r = receipt(line.as_bytes(), None, None, None).unwrap();
        prop_assert_eq!(r.state, state);
    }

    #[test]
    fn ids_match_is_symmetric_and_decimal_matches_its_hex(n in any::<u64>(), a in "[0-9a-fA-F]{0,12}", b in "[0-9a-fA-F]{0,12}") {
        let (decimal, hex) = (n.to_string(), format!("{n:x}"));
        let (upper_hex, padded_decimal) = (hex.to_ascii_uppercase(), format!("000{decimal}"));
        prop_assert!(ids_match(&decimal, &hex));
        prop_assert!(ids_match(&upper_hex, &padded_decimal));
        prop_assert_eq!(ids_match(&a, &b), ids_match(&b, &a));
    }

    /// A receipt id finds the submitted id kept under its canonical form whenever
    /// [`ids_match`] says they are the same message.
    #[test]
    fn id_forms_find_every_matching_id(n in any::<u64>(), a in "[0-9a-fA-F]{1,12}", b in "[0-9a-fA-F]{1,12}") {
        let kept = canonical_id;
        let (decimal, hex) = (n.to_string(), format!("{n:X}"));
        prop_assert!(id_forms(&hex).contains(&kept(&decimal)));
        let padded = format!("00{decimal}");
        prop_assert!(id_forms(&padded).contains(&kept(&hex)));
        if ids_match(&a, &b) && !a.trim_start_matches('0').is_empty() {
            prop_assert!(id_forms(&b).contains(&kept(&a)));
        }
    }
}
