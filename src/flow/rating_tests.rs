//! The rating grammar against replies from the 5700 survey's three languages (1–5) and an NPS
//! survey's (0–10), its scale handling, and arbitrary text (proptest).

use super::*;
use proptest::prelude::*;

/// Replies from the 5700 survey's three languages, with what a 1..=5 survey must read.
#[rustfmt::skip]
const TABLE: &[(&str, Option<(u8, &str)>)] = &[
    // Digits
    ("5", Some((5, ""))),
    ("1", Some((1, ""))),
    (" 3 ", Some((3, ""))),
    ("\u{00A0}4\u{200B}\u{FEFF}", Some((4, ""))),
    ("\n\t2\r\n", Some((2, ""))),
    ("５", Some((5, ""))),
    ("３ хорошо", Some((3, "хорошо"))),
    ("5\u{FE0F}\u{20E3}", Some((5, ""))),
    // Separators and comments
    ("5!", Some((5, ""))),
    ("5)", Some((5, ""))),
    ("5)))", Some((5, ""))),
    ("5!!!", Some((5, ""))),
    ("4.", Some((4, ""))),
    ("4,хорошо", Some((4, "хорошо"))),
    ("4. Оператор был вежлив, но долго пришлось ждать на линии.",
        Some((4, "Оператор был вежлив, но долго пришлось ждать на линии."))),
    ("1 очень плохо, никто не помог", Some((1, "очень плохо, никто не помог"))),
    ("2 - долго ждал", Some((2, "долго ждал"))),
    ("3 – долго ждал", Some((3, "долго ждал"))),
    ("3: нормально", Some((3, "нормально"))),
    ("5 отлично", Some((5, "отлично"))),
    ("3 ok", Some((3, "ok"))),
    ("5 👍", Some((5, "👍"))),
    ("5👍", Some((5, "👍"))),
    ("5 - :)", Some((5, ":)"))),
    ("5?", Some((5, "?"))),
    ("4. 5 звёзд не дам", Some((4, "5 звёзд не дам"))),
    ("5 4", Some((5, "4"))),
    ("5 2 часа ждал, но решили", Some((5, "2 часа ждал, но решили"))),
    ("3 из-за очереди", Some((3, "из-за очереди"))),
    // Scale
    ("4/5", Some((4, ""))),
    ("5/5", Some((5, ""))),
    ("4 / 5", Some((4, ""))),
    ("4/5.", Some((4, ""))),
    ("4 из 5", Some((4, ""))),
    ("4 из 5, спасибо", Some((4, "спасибо"))),
    ("4 out of 5", Some((4, ""))),
    ("four out of five", Some((4, ""))),
    ("3 of 5 slow", Some((3, "slow"))),
    // Units
    ("5 баллов", Some((5, ""))),
    ("4 балла из 5", Some((4, ""))),
    ("5баллов!", Some((5, ""))),
    ("5 ball", Some((5, ""))),
    ("5 points", Some((5, ""))),
    ("5 звёзд, супер", Some((5, "супер"))),
    // Prefix words
    ("оценка: 4", Some((4, ""))),
    ("Оценка 5", Some((5, ""))),
    ("ОЦЕНКА:5!", Some((5, ""))),
    ("Моя  оценка - пять", Some((5, ""))),
    ("ставлю 3, могло быть лучше", Some((3, "могло быть лучше"))),
    ("Baho: 5 rahmat", Some((5, "rahmat"))),
    ("bahom 4", Some((4, ""))),
    ("Mening bahom: 5", Some((5, ""))),
    ("баҳо 5", Some((5, ""))),
    ("Баҳом: тўрт", Some((4, ""))),
    ("бахо 3", Some((3, ""))),
    ("My rating is 4", Some((4, ""))),
    ("Rating: 2 rude operator", Some((2, "rude operator"))),
    ("score 5/5", Some((5, ""))),
    ("I give five", Some((5, ""))),
    // Russian words
    ("пять", Some((5, ""))),
    ("Пятёрка!", Some((5, ""))),
    ("пятерка", Some((5, ""))),
    ("четыре, хорошо", Some((4, "хорошо"))),
    ("Четвёрка", Some((4, ""))),
    ("тройка", Some((3, ""))),
    ("два", Some((2, ""))),
    ("единица. ужас", Some((1, "ужас"))),
    ("кол", Some((1, ""))),
    // Uzbek (Latin) words
    ("besh", Some((5, ""))),
    ("Besh!", Some((5, ""))),
    ("to'rt", Some((4, ""))),
    ("toʻrt juda yaxshi", Some((4, "juda yaxshi"))),
    ("to‘rt", Some((4, ""))),
    ("to’rt", Some((4, ""))),
    ("tort", Some((4, ""))),
    ("uch", Some((3, ""))),
    ("ikki, kutdim", Some((2, "kutdim"))),
    ("bir", Some((1, ""))),
    // Uzbek (Cyrillic) words
    ("беш", Some((5, ""))),
    ("ТЎРТ", Some((4, ""))),
    ("уч", Some((3, ""))),
    ("икки", Some((2, ""))),
    ("бир", Some((1, ""))),
    // English words
    ("five, great service", Some((5, "great service"))),
    ("Four", Some((4, ""))),
    ("one - never again", Some((1, "never again"))),
    // Not ratings
    ("0", None),
    ("6", None),
    ("45", None),
    ("10", None),
    ("12", None),
    ("05", None),
    ("", None),
    ("   ", None),
    ("hello", None),
    ("кто это", None),
    ("пятница", None),
    ("пятьсот", None),
    ("oneself", None),
    ("спасибо 5", None),
    ("4.5", None),
    ("4,5", None),
    ("6/5", None),
    ("3/10", None),
    ("4 из 10", None),
    ("-5", None),
    ("+5", None),
    ("5а", None),
    ("👍", None),
    ("👍👍👍", None),
    ("👍 5", None),
    ("оценка", None),
    ("оценка: шесть", None),
    ("(5)", None),
    ("12.05 звонил", None),
    ("+998901234567", None),
];

/// The rows of `table` that `parse_rating` on `min..=max` reads otherwise, described.
fn table_failures(table: &[(&str, Option<(u8, &str)>)], min: u8, max: u8) -> Vec<String> {
    let mut failures = Vec::new();
    for (row, &(input, expected)) in table.iter().enumerate() {
        let got = parse_rating(input, min, max);
        let want = expected.map(|(score, comment)| Rating {
            score,
            comment: comment.to_owned(),
        });
        if got != want {
            failures.push(format!("row {row}: {input:?}: got {got:?}, want {want:?}"));
        }
    }
    failures
}

#[test]
fn rating_table() {
    assert!(TABLE.len() >= 60, "the table is the acceptance criterion");
    let failures = table_failures(TABLE, 1, 5);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_scale_is_the_callers() {
    let score = |text, min, max| parse_rating(text, min, max).map(|r| r.score);
    assert_eq!(score("7", 1, 10), Some(7));
    assert_eq!(score("10", 1, 10), Some(10));
    assert_eq!(score("10/10", 1, 10), Some(10));
    assert_eq!(score("7 из 10", 1, 10), Some(7));
    assert_eq!(score("7/5", 1, 10), None);
    assert_eq!(score("11", 1, 10), None);
    assert_eq!(score("0", 0, 10), Some(0));
    assert_eq!(score("255", 1, 255), Some(255));
    assert_eq!(score("256", 1, 255), None);
    assert_eq!(score("1000", 1, 255), None);
    // Number words respect the range like digits.
    assert_eq!(score("пять", 1, 10), Some(5));
    assert_eq!(score("десять", 1, 5), None);
    assert_eq!(score("nine", 1, 7), None);
    assert_eq!(score("пять", 1, 3), None);
    assert_eq!(score("один", 2, 5), None);
    assert_eq!(score("3", 5, 1), None);
}

/// Replies to a 0–10 (NPS) survey: the words of each language up to ten, as digits are.
#[rustfmt::skip]
const NPS_TABLE: &[(&str, Option<(u8, &str)>)] = &[
    ("0", Some((0, ""))),
    ("10", Some((10, ""))),
    ("10/10", Some((10, ""))),
    ("11", None),
    // Russian
    ("ноль", Some((0, ""))),
    ("шесть, так себе", Some((6, "так себе"))),
    ("Семь", Some((7, ""))),
    ("восемь", Some((8, ""))),
    ("Восьмёрка", Some((8, ""))),
    ("девять!", Some((9, ""))),
    ("десять", Some((10, ""))),
    ("Десятка, спасибо", Some((10, "спасибо"))),
    ("восемь из десяти", Some((8, ""))),
    ("оценка: девять", Some((9, ""))),
    ("одиннадцать", None),
    ("семьсот", None),
    // Uzbek (Latin)
    ("nol", Some((0, ""))),
    ("olti", Some((6, ""))),
    ("yetti", Some((7, ""))),
    ("sakkiz yaxshi", Some((8, "yaxshi"))),
    ("toʻqqiz", Some((9, ""))),
    ("to'qqiz", Some((9, ""))),
    ("toqqiz", Some((9, ""))),
    ("o'n", Some((10, ""))),
    ("oʻn rahmat", Some((10, "rahmat"))),
    ("O‘N", Some((10, ""))),
    ("baho: o'n", Some((10, ""))),
    ("on time", None),
    // Uzbek (Cyrillic)
    ("нол", Some((0, ""))),
    ("олти", Some((6, ""))),
    ("етти", Some((7, ""))),
    ("саккиз", Some((8, ""))),
    ("тўққиз", Some((9, ""))),
    ("туккиз", Some((9, ""))),
    ("ўн", Some((10, ""))),
    ("ун", Some((10, ""))),
    ("он не ответил", None),
    // English
    ("zero", Some((0, ""))),
    ("six", Some((6, ""))),
    ("Seven.", Some((7, ""))),
    ("eight, ok", Some((8, "ok"))),
    ("nine", Some((9, ""))),
    ("ten out of ten", Some((10, ""))),
    ("I give nine", Some((9, ""))),
    ("tent", None),
];

#[test]
fn number_words_read_on_a_0_to_10_scale() {
    let failures = table_failures(NPS_TABLE, 0, 10);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // The 1–5 survey reads none of the words above five, and its old answers as before.
    for word in [
        "ноль",
        "шесть",
        "десять",
        "nol",
        "o'n",
        "ўн",
        "zero",
        "nine",
        "ten",
    ] {
        assert_eq!(parse_rating(word, 1, 5), None, "{word}");
    }
    assert_eq!(
        parse_rating("четыре из пяти", 1, 5).map(|r| r.score),
        Some(4)
    );
}

/// nom's `tag_no_case` over `&str` would slice `ik\u{212A}i` at byte 4, inside the KELVIN
/// SIGN (which lowercases to `k`), and panic.
#[test]
fn a_letter_of_another_length_does_not_split_the_reply() {
    assert_eq!(parse_rating("ik\u{212A}i", 1, 5).map(|r| r.score), Some(2));
    assert_eq!(parse_rating("ik\u{212A}", 1, 5), None);
}

/// Pieces of real replies, so that generated strings reach deep into the grammar.
fn reply_like() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        Just("5".to_owned()),
        Just("10".to_owned()),
        Just("０".to_owned()),
        Just("４".to_owned()),
        Just("оценка".to_owned()),
        Just("baho".to_owned()),
        Just("моя".to_owned()),
        Just("пять".to_owned()),
        Just("toʻrt".to_owned()),
        Just("to".to_owned()),
        Just("из".to_owned()),
        Just("out of".to_owned()),
        Just("баллов".to_owned()),
        Just("/".to_owned()),
        Just(".".to_owned()),
        Just(" ".to_owned()),
        Just("\u{200B}".to_owned()),
        Just("\u{212A}".to_owned()),
        Just("\u{FE0F}\u{20E3}".to_owned()),
        Just("👍".to_owned()),
        any::<char>().prop_map(String::from),
    ];
    proptest::collection::vec(token, 0..12).prop_map(|tokens| tokens.concat())
}

proptest! {
    #[test]
    fn any_text_is_read_without_panic(text in any::<String>(), min in any::<u8>(), max in any::<u8>()) {
        if let Some(rating) = parse_rating(&text, min, max) {
            prop_assert!((min..=max).contains(&rating.score));
        }
    }

    #[test]
    fn reply_like_text_stays_in_range(text in reply_like(), min in 0u8..=6, max in 0u8..=12) {
        if let Some(rating) = parse_rating(&text, min, max) {
            prop_assert!((min..=max).contains(&rating.score));
            prop_assert_eq!(rating.comment.trim_matches(is_blank), rating.comment.as_str());
        }
    }
}
