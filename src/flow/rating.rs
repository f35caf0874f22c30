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
#[path = "rating_tests.rs"]
mod tests;
