//! Reading a survey reply's rating: the grammar behind the scripts' `parse_rating(text, min, max)`.
//!
//! Owns the rating grammar of SPEC.md ("Flow scripts"): one rating at the start of the reply,
//! after optional blanks and an optional prefix word (`оценка`, `baho`, …); the rating is
//! digits (ASCII or full-width) or a Russian, Uzbek (Latin and Cyrillic) or English number
//! word; an optional unit (`баллов`) and scale (`/5`, `из 5`) follow; then an optional run of
//! separators (`.`, `,`, `:`, `-`, `!`, `)`, …) and the comment. It is written as a small nom
//! grammar of named parsers over `&str`: `blank`, `prefix`, `score` (`digits` or
//! `number_word`), `unit`, `scale`, `word_end`, `separators` and `comment`, with the word lists
//! as `const` arrays (`PREFIX_WORDS`, `NUMBER_WORDS`, `UNIT_WORDS`, `SCALE_WORDS`).
//!
//! Must not: build the Rhai map (`ok`, `score`, `comment`) the scripts see, record ratings,
//! do I/O, or panic on any input: replies come from subscribers.
//!
//! # Decisions
//!
//! - **Only the start counts.** `спасибо 5` and `👍 5` are not ratings: the grammar allows
//!   nothing before the rating but blanks and a prefix word. A digit in the middle of a reply is
//!   as likely a time, a count or a phone number as a rating, and a reply we cannot read costs
//!   one "not understood" message, while a wrong score corrupts the CSI report.
//! - **The first number wins.** `5 4` is 5 with the comment `4`: the grammar reads one rating
//!   at the start, and the rest is free text (which may legitimately start with a number, as in
//!   `5 2 часа ждал`). Whether two numbers mean two ratings is for whoever reads comments.
//! - **No decimals.** `4.5` and `4,5` are not ratings: rounding either way would invent a
//!   score, and `4,5` may also be a list. A decimal point is told apart from the separator by
//!   the digit right after it, so `4. 5 звёзд` is 4 with the comment `5 звёзд`.
//! - **No signs.** `-5` and `+5` are not ratings: `-5` reads as negative, and `+` starts phone
//!   numbers; nobody writes `+5` for 5 often enough to be worth a second meaning of `+`.
//! - **Whole numbers only.** A run of digits is read whole, so `45`, `10` (on 1..=5) and `12`
//!   are out of range, never `4`, `1`. A leading zero (`05`) is not a rating (it is the same
//!   rule: `0` followed by another digit). More than three digits never fit a `u8` scale.
//! - **Whole words only.** A number word, prefix word or unit ends where letters and digits
//!   end, so `пятница` is not `пять` and `5а` is not 5. Punctuation and emoji end a word, so
//!   `5👍` is 5 with the comment `👍`.
//! - **Units are swallowed.** `5 баллов`, `5 ball`, `5 points`, `5 звёзд` are 5 with an empty
//!   comment: the unit belongs to the rating, not to what the subscriber has to say. A unit may
//!   be glued to digits (`5баллов`).
//! - **The scale must be ours.** `4/5`, `4 / 5`, `4 из 5`, `4 out of 5`, `4 of 5` are 4 when
//!   5 is `max`; `3/10` on a 1..=5 survey is not a rating (reading it as 3 would be wrong), and
//!   `6/5` is out of range. Without a number after it, `из` is just the start of the comment
//!   (`3 из-за очереди`).
//! - **Separators are a run.** After the rating, any run of `.` `,` `:` `;` `-` `–` `—` `!` `)`
//!   (and their full-width forms) is dropped, so `5!!!` and `5)))` have an empty comment and
//!   `4/5.` is 4. The en and em dashes and `;` are beyond the SPEC's list: phones autocorrect
//!   `-` into dashes, and `;` separates as well as `,`. Other punctuation (`?`, `"`) is kept as
//!   the start of the comment.
//! - **Number words may start a sentence.** `toʻrt juda yaxshi` is 4, so `два часа ждал` is 2
//!   and `Bir savol bor edi` is 1: the grammar cannot tell a rating word from a counting word,
//!   and requiring a separator after words would reject replies like the first.
//! - **Prefix words** are the SPEC's and the brief's lists plus `бахо`/`бахом` and `турт`: Uzbek
//!   Cyrillic typed on a Russian keyboard has `х` for `ҳ` and `у` for `ў`. A multi-word prefix
//!   (`моя оценка`) allows any blanks between its words. After a prefix, one `:` or dash may
//!   come before the rating.
//! - **Apostrophes are one letter.** In a word, `'` matches the ASCII apostrophe, `ʻ` (U+02BB,
//!   the official Uzbek letter), `‘` `’` (U+2018/9), `ʼ` (U+02BC) and the backtick, so `to'rt`
//!   covers all the ways phones spell `toʻrt`.
//! - **Blanks** are Unicode whitespace (which includes NBSP) and the zero-width characters
//!   U+200B–U+200D, U+2060, U+FEFF; they are trimmed from both ends of the comment.
//! - **Keycaps.** `5️⃣` (digit, U+FE0F, U+20E3) is the digit: it is what emoji keyboards send
//!   for a tapped number.
//! - **Case** is ignored by comparing lowercase characters one by one, not with nom's
//!   `tag_no_case`: over `&str` that one slices the input at the tag's byte length, which splits
//!   a character (and panics) when a letter that matched has another UTF-8 length, e.g. the
//!   KELVIN SIGN `K` against `k` in `ikki`.
//! - **Number words go from 0 to 10** in every language, so an NPS survey (0–10) reads
//!   `восемь`, `десять`, `o'n` and `nine` as its digits: `ноль`…`десять` with the school marks
//!   (`пятёрка`, `десятка`), `nol`…`o'n`, `нол`…`ўн`, `zero`…`ten`. Left out on purpose:
//!   `on` and `он`, Uzbek `o'n` typed without its apostrophe, because `on time` and `он не
//!   ответил` are English and Russian sentences, not a 10; `ун` (no word of either) stays. A
//!   Russian scale may end in its genitive (`четыре из пяти`, `8 из десяти`), which is no
//!   rating on its own.
//! - **The scale is the caller's.** Digits are checked against `min..=max` (so `10` is a rating
//!   on 1..=10), number words too (`шесть` is no rating on 1–5). `min > max` reads nothing.

use nom::bytes::complete::{take_while, take_while1};
use nom::character::complete::satisfy;
use nom::combinator::{cut, not, opt, rest};
use nom::error::{Error, ErrorKind, ParseError};
use nom::sequence::preceded;
use nom::{IResult, Parser};

/// A reply's rating, if it has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rating {
    pub score: u8,
    /// Trimmed; empty when the reply is only the rating.
    pub comment: String,
}

/// `min..=max` is the scale (the survey uses 1..=5); a number outside it is not a rating.
///
/// `None` means the reply has no rating at its start, and the flow answers "not understood".
pub fn parse_rating(text: &str, min: u8, max: u8) -> Option<Rating> {
    reply(min, max)
        .parse_complete(text)
        .ok()
        .map(|(_, rating)| rating)
}

/// Words that may come before the rating. Lowercase; a space matches any run of blanks, `'`
/// any apostrophe. Longer phrases need not come first: every word must end at a word boundary.
const PREFIX_WORDS: &[&str] = &[
    // Russian
    "оценка",
    "оценку",
    "моя оценка",
    "ставлю",
    // Uzbek (Latin)
    "baho",
    "bahom",
    "mening bahom",
    // Uzbek (Cyrillic), and as typed on a Russian keyboard
    "баҳо",
    "баҳом",
    "бахо",
    "бахом",
    // English
    "rating",
    "score",
    "my rating is",
    "i give",
];

/// Number words and their values, 0–10 (a scale takes those within it: `шесть` is no rating on
/// 1–5). Lowercase; `'` matches any apostrophe (see [`same_letter`]).
const NUMBER_WORDS: &[(&str, u8)] = &[
    // Russian
    ("ноль", 0),
    ("нуль", 0),
    ("один", 1),
    ("одна", 1),
    ("единица", 1),
    ("кол", 1),
    ("два", 2),
    ("двойка", 2),
    ("три", 3),
    ("тройка", 3),
    ("четыре", 4),
    ("четвёрка", 4),
    ("четверка", 4),
    ("пять", 5),
    ("пятёрка", 5),
    ("пятерка", 5),
    ("шесть", 6),
    ("шестёрка", 6),
    ("шестерка", 6),
    ("семь", 7),
    ("семёрка", 7),
    ("семерка", 7),
    ("восемь", 8),
    ("восьмёрка", 8),
    ("восьмерка", 8),
    ("девять", 9),
    ("девятка", 9),
    ("десять", 10),
    ("десятка", 10),
    // Uzbek (Latin)
    ("nol", 0),
    ("bir", 1),
    ("ikki", 2),
    ("uch", 3),
    ("to'rt", 4),
    ("tort", 4),
    ("besh", 5),
    ("olti", 6),
    ("yetti", 7),
    ("sakkiz", 8),
    ("to'qqiz", 9),
    ("toqqiz", 9),
    ("o'n", 10),
    // Uzbek (Cyrillic), and as typed on a Russian keyboard (`у` for `ў`, `к` for `қ`)
    ("нол", 0),
    ("бир", 1),
    ("икки", 2),
    ("уч", 3),
    ("тўрт", 4),
    ("турт", 4),
    ("беш", 5),
    ("олти", 6),
    ("етти", 7),
    ("саккиз", 8),
    ("тўққиз", 9),
    ("туккиз", 9),
    ("ўн", 10),
    ("ун", 10),
    // English
    ("zero", 0),
    ("one", 1),
    ("two", 2),
    ("three", 3),
    ("four", 4),
    ("five", 5),
    ("six", 6),
    ("seven", 7),
    ("eight", 8),
    ("nine", 9),
    ("ten", 10),
];

/// The top of a scale as it follows `из` in Russian (`четыре из пяти`, `8 из десяти`): the
/// genitive, which is no rating on its own.
const SCALE_TOP_WORDS: &[(&str, u8)] = &[("пяти", 5), ("семи", 7), ("десяти", 10)];

/// Units after the rating, swallowed with it.
const UNIT_WORDS: &[&str] = &[
    // Russian (also Uzbek Cyrillic `балл`)
    "балл",
    "балла",
    "баллов",
    "баллы",
    "звезда",
    "звезды",
    "звёзды",
    "звезд",
    "звёзд",
    // Uzbek (Latin)
    "ball",
    "yulduz",
    // English
    "point",
    "points",
    "pts",
    "star",
    "stars",
];

/// What may stand between the rating and the scale's maximum (`4/5`, `4 из 5`).
const SCALE_WORDS: &[&str] = &["/", "／", "из", "out of", "of"];

/// Dropped between the rating and the comment.
const SEPARATORS: &[char] = &[
    '.', ',', ':', ';', '-', '–', '—', '!', ')', '．', '，', '：', '；', '！', '）',
];

/// May come between a prefix word and the rating (`оценка: 4`, `baho - 5`).
const PREFIX_SEPARATORS: &[char] = &[':', '-', '–', '—', '：'];

/// After a digit and followed by another digit, these make a decimal (`4.5`, `4,5`).
const DECIMAL_POINTS: &[char] = &['.', ',', '．', '，'];

/// What `'` in a word matches: the ways phones write the Uzbek `ʻ`/`ʼ`.
const APOSTROPHES: &[char] = &['\'', 'ʻ', '‘', '’', 'ʼ', '`'];

/// Sent by emoji keyboards after a digit to make a keycap (`5️⃣`).
const KEYCAP: &[char] = &['\u{FE0F}', '\u{20E3}'];

/// More digits than this cannot be a score (`u8`), and reading them could overflow.
const MAX_DIGITS: usize = 3;

type Res<'a, T> = IResult<&'a str, T>;

/// The whole reply: `blank prefix? score unit? scale? unit? word_end separators comment`.
fn reply<'a>(min: u8, max: u8) -> impl Parser<&'a str, Output = Rating, Error = Error<&'a str>> {
    (
        blank,
        opt(prefix),
        score(min, max),
        opt(unit),
        opt(scale(max)),
        opt(unit),
        word_end,
        separators,
        comment,
    )
        .map(|(_, _, score, _, _, _, _, _, comment)| Rating { score, comment })
}

/// Whitespace (NBSP included) and zero-width characters, which copy-paste and some keyboards
/// leave around a reply.
fn is_blank(c: char) -> bool {
    c.is_whitespace() || matches!(c, '\u{200B}'..='\u{200D}' | '\u{2060}' | '\u{FEFF}')
}

/// Any run of blanks, possibly empty.
fn blank(input: &str) -> Res<'_, &str> {
    take_while(is_blank)(input)
}

/// A prefix word, then optional blanks, one optional `:` or dash, and optional blanks.
fn prefix(input: &str) -> Res<'_, ()> {
    (
        any_word(PREFIX_WORDS),
        blank,
        opt(satisfy(|c| PREFIX_SEPARATORS.contains(&c))),
        blank,
    )
        .map(|_| ())
        .parse(input)
}

/// The rating: digits or a number word, within `min..=max`.
fn score<'a>(min: u8, max: u8) -> impl Parser<&'a str, Output = u8, Error = Error<&'a str>> {
    move |input: &'a str| {
        let (rest, value) = digits.or(number_word).parse(input)?;
        if (min..=max).contains(&value) {
            Ok((rest, value))
        } else {
            Err(error(input, ErrorKind::Verify))
        }
    }
}

/// A whole run of ASCII or full-width digits without a leading zero (a lone `0` is fine), and
/// an optional keycap. A decimal (`4.5`) fails the whole reply: the digits after the point must
/// not be read as the comment.
fn digits(input: &str) -> Res<'_, u8> {
    let (rest, run) = take_while1(is_digit)(input)?;
    let len = run.chars().count();
    if len > MAX_DIGITS || (len > 1 && run.starts_with(['0', '０'])) {
        return Err(error(input, ErrorKind::Digit));
    }
    let (rest, _) = cut(not(decimal_fraction)).parse(rest)?;
    let (rest, _) = take_while(|c| KEYCAP.contains(&c))(rest)?;
    let value = run
        .chars()
        .filter_map(digit_value)
        .fold(0u32, |sum, d| sum * 10 + d);
    // At most MAX_DIGITS decimal digits, so at most 999: only the u8 range is left to check.
    let value = u8::try_from(value).map_err(|_| error(input, ErrorKind::TooLarge))?;
    Ok((rest, value))
}

/// `.5`, `,5`: what makes `4.5` a decimal rather than `4.` and a comment.
fn decimal_fraction(input: &str) -> Res<'_, (char, char)> {
    (satisfy(|c| DECIMAL_POINTS.contains(&c)), satisfy(is_digit)).parse(input)
}

/// A digit the rating may be written in (see [`digit_value`]).
fn is_digit(c: char) -> bool {
    digit_value(c).is_some()
}

/// `0`–`9` and full-width `０`–`９`.
fn digit_value(c: char) -> Option<u32> {
    match c {
        '0'..='9' => c.to_digit(10),
        '０'..='９' => Some(u32::from(c) - u32::from('０')),
        _ => None,
    }
}

/// A number word from [`NUMBER_WORDS`].
fn number_word(input: &str) -> Res<'_, u8> {
    valued_word(NUMBER_WORDS, input)
}

/// A word from [`SCALE_TOP_WORDS`].
fn scale_top_word(input: &str) -> Res<'_, u8> {
    valued_word(SCALE_TOP_WORDS, input)
}

/// The value of the first of `words` that `input` starts with (see [`word`]).
fn valued_word<'a>(words: &'static [(&'static str, u8)], input: &'a str) -> Res<'a, u8> {
    words
        .iter()
        .find_map(|&(w, value)| word(w).parse(input).ok().map(|(rest, _)| (rest, value)))
        .ok_or_else(|| error(input, ErrorKind::Tag))
}

/// A unit word from [`UNIT_WORDS`], after optional blanks.
fn unit(input: &str) -> Res<'_, &str> {
    preceded(blank, any_word(UNIT_WORDS)).parse(input)
}

/// `/ 5`, `из 5`, `out of five`: the scale's top, which must be `max`. A scale word without a
/// number is not a scale (the comment may start with `из-за`), but a number that is not `max`
/// fails the whole reply.
fn scale<'a>(max: u8) -> impl Parser<&'a str, Output = u8, Error = Error<&'a str>> {
    move |input: &'a str| {
        let (rest, top) = preceded(
            (blank, any_word(SCALE_WORDS), blank),
            digits.or(number_word).or(scale_top_word),
        )
        .parse(input)?;
        if top == max {
            Ok((rest, top))
        } else {
            Err(nom::Err::Failure(Error::from_error_kind(
                input,
                ErrorKind::Verify,
            )))
        }
    }
}

/// The rating ends at a word boundary: `5а` and `4к` are not ratings.
fn word_end(input: &str) -> Res<'_, ()> {
    not(satisfy(char::is_alphanumeric)).parse(input)
}

/// Optional blanks and a possibly empty run of [`SEPARATORS`].
fn separators(input: &str) -> Res<'_, &str> {
    preceded(blank, take_while(|c| SEPARATORS.contains(&c))).parse(input)
}

/// The rest of the reply, without blanks at either end.
fn comment(input: &str) -> Res<'_, String> {
    rest::<&str, Error<&str>>
        .map(|text: &str| text.trim_matches(is_blank).to_owned())
        .parse(input)
}

/// The first of `words` that matches (see [`word`]).
fn any_word<'a>(
    words: &'static [&'static str],
) -> impl Parser<&'a str, Output = &'a str, Error = Error<&'a str>> {
    move |input: &'a str| {
        words
            .iter()
            .find_map(|&w| word(w).parse(input).ok())
            .ok_or_else(|| error(input, ErrorKind::Tag))
    }
}

/// `pattern` as a whole word, ignoring case: each space in it matches a run of one or more
/// blanks, `'` any of [`APOSTROPHES`], and the match must not be followed by a letter or digit.
/// A pattern that does not start with a letter (`/`) needs no boundary.
fn word<'a>(
    pattern: &'static str,
) -> impl Parser<&'a str, Output = &'a str, Error = Error<&'a str>> {
    move |input: &'a str| {
        let mut rest = input;
        for (i, part) in pattern.split(' ').enumerate() {
            if i > 0 {
                rest = take_while1(is_blank)(rest)?.0;
            }
            rest = letters(part, rest).ok_or_else(|| error(input, ErrorKind::Tag))?;
        }
        let needs_boundary = pattern
            .chars()
            .next_back()
            .is_some_and(char::is_alphanumeric);
        if needs_boundary && rest.chars().next().is_some_and(char::is_alphanumeric) {
            return Err(error(input, ErrorKind::Tag));
        }
        Ok((rest, &input[..input.len() - rest.len()]))
    }
}

/// What is left of `input` after `part`, compared character by character; `None` when it does
/// not start with `part`. Slicing only at the boundaries of matched characters keeps this safe
/// for letters whose lowercase has another UTF-8 length.
fn letters<'a>(part: &str, input: &'a str) -> Option<&'a str> {
    let mut chars = input.char_indices();
    for expected in part.chars() {
        let (_, found) = chars.next()?;
        if !same_letter(found, expected) {
            return None;
        }
    }
    Some(chars.as_str())
}

/// `found` (from the reply) is `expected` (lowercase, from a word list), ignoring case.
fn same_letter(found: char, expected: char) -> bool {
    if expected == '\'' {
        APOSTROPHES.contains(&found)
    } else {
        found == expected || found.to_lowercase().eq(expected.to_lowercase())
    }
}

/// A recoverable nom error at `input`.
fn error(input: &str, kind: ErrorKind) -> nom::Err<Error<&str>> {
    nom::Err::Error(Error::from_error_kind(input, kind))
}

#[cfg(test)]
mod tests {
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
}
