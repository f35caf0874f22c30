//! Delivery receipts: what an SMSC reports about a message we submitted.
//!
//! Owns parsing the receipt text in `short_message` (the de-facto SMPP 3.4 Appendix B format,
//! `id:… sub:… dlvrd:… submit date:… done date:… stat:… err:… text:…`, as carriers bend it),
//! combining it with the receipt TLVs (`receipted_message_id` 0x001E, `message_state` 0x0427,
//! `network_error_code` 0x0423; TLVs win over the text), and comparing receipted ids with the
//! ids from `submit_sm_resp`.
//!
//! Must not: decode PDUs or find TLVs (the caller passes their raw values), check the
//! `esm_class` receipt bit, look up or update stored messages, interpret dates (they are passed
//! through as text), do I/O, or panic on any input: receipts come from outside.

use std::fmt;

use nom::bytes::complete::{tag_no_case, take_till, take_while, take_while1};
use nom::character::complete::{char, space0, space1};
use nom::combinator::opt;
use nom::sequence::preceded;
use nom::{IResult, Parser};
use serde::{Deserialize, Serialize};

/// The state of a submitted message (SMPP 3.4 §5.2.28 `message_state`, or the receipt text's
/// `stat:`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MessageState {
    Enroute,
    Delivered,
    Expired,
    Deleted,
    Undeliverable,
    Accepted,
    Unknown,
    Rejected,
    Skipped,
}

impl MessageState {
    /// From the `message_state` TLV value (1..=9); anything else is `None`.
    pub fn from_tlv(value: u8) -> Option<Self> {
        Some(match value {
            1 => Self::Enroute,
            2 => Self::Delivered,
            3 => Self::Expired,
            4 => Self::Deleted,
            5 => Self::Undeliverable,
            6 => Self::Accepted,
            7 => Self::Unknown,
            8 => Self::Rejected,
            9 => Self::Skipped,
            _ => return None,
        })
    }

    /// From the text's `stat:` value, ignoring ASCII case and surrounding whitespace. Accepts
    /// the 7-character SMPP forms (`DELIVRD`, `UNDELIV`, …), the full words (`DELIVERED`,
    /// `UNDELIVERABLE`, …) and the common carrier spelling `UNDELIVERED`.
    pub fn from_stat(text: &str) -> Option<Self> {
        const FORMS: &[(&str, MessageState)] = &[
            ("ENROUTE", MessageState::Enroute),
            ("DELIVRD", MessageState::Delivered),
            ("DELIVERED", MessageState::Delivered),
            ("EXPIRED", MessageState::Expired),
            ("DELETED", MessageState::Deleted),
            ("UNDELIV", MessageState::Undeliverable),
            ("UNDELIVERABLE", MessageState::Undeliverable),
            ("UNDELIVERED", MessageState::Undeliverable),
            ("ACCEPTD", MessageState::Accepted),
            ("ACCEPTED", MessageState::Accepted),
            ("UNKNOWN", MessageState::Unknown),
            ("REJECTD", MessageState::Rejected),
            ("REJECTED", MessageState::Rejected),
            ("SKIPPED", MessageState::Skipped),
        ];
        let text = text.trim();
        FORMS
            .iter()
            .find(|(form, _)| form.eq_ignore_ascii_case(text))
            .map(|&(_, state)| state)
    }

    /// Whether no further receipt is expected for the message.
    ///
    /// False for `Enroute` (in progress) and for `Accepted`: SMPP 3.4 means "manually accepted
    /// by customer service", but many carriers send `ACCEPTD` as an intermediate "accepted by
    /// the network" receipt and a `DELIVRD`/`UNDELIV` later; treating it as final would make
    /// us ignore the real outcome, while treating it as intermediate only costs waiting for the
    /// service's receipt timeout. `Unknown` counts as final: the SMSC is saying it cannot tell,
    /// and no carrier we know follows it with another receipt.
    pub fn is_final(self) -> bool {
        !matches!(self, Self::Enroute | Self::Accepted)
    }

    /// Whether the message reached the handset.
    pub fn is_success(self) -> bool {
        self == Self::Delivered
    }

    /// The 7-character SMPP form used in receipt text, e.g. `"DELIVRD"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Enroute => "ENROUTE",
            Self::Delivered => "DELIVRD",
            Self::Expired => "EXPIRED",
            Self::Deleted => "DELETED",
            Self::Undeliverable => "UNDELIV",
            Self::Accepted => "ACCEPTD",
            Self::Unknown => "UNKNOWN",
            Self::Rejected => "REJECTD",
            Self::Skipped => "SKIPPED",
        }
    }
}

impl fmt::Display for MessageState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The fields of the receipt text, all optional because carriers omit them. Borrowed from the
/// input. A field is `Some` only when its key is present with a non-empty, UTF-8 value; when a
/// key repeats, the first non-empty value wins. Values are verbatim (dates are `YYMMDDhhmm` or
/// `YYMMDDhhmmss`, as the carrier sent them).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReceiptText<'a> {
    pub id: Option<&'a str>,
    pub sub: Option<&'a str>,
    pub dlvrd: Option<&'a str>,
    pub submit_date: Option<&'a str>,
    pub done_date: Option<&'a str>,
    pub stat: Option<&'a str>,
    pub err: Option<&'a str>,
    /// Everything after `text:` to the end (trailing NULs removed), colons and all.
    pub text: Option<&'a str>,
}

/// Which field a key names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    Id,
    Sub,
    Dlvrd,
    SubmitDate,
    DoneDate,
    Stat,
    Err,
    Text,
    /// A key we do not know (carrier extras such as `msisdn:`); its value is skipped.
    Other,
}

type Res<'a, T> = IResult<&'a [u8], T>;

/// Field separators: ASCII whitespace, plus NUL because some SMSCs pad or terminate
/// `short_message` with it.
fn is_sep(b: u8) -> bool {
    b.is_ascii_whitespace() || b == 0
}

fn is_key_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

/// A key and its colon: a word, case-insensitive, where `submit`/`done` may be followed by
/// spaces and `date` (the Appendix B spelling) or joined to it by `_`/`-` (carrier spelling).
fn key(input: &[u8]) -> Res<'_, Key> {
    let (rest, word) = take_while1(is_key_char).parse(input)?;
    let spaced_date = word.eq_ignore_ascii_case(b"submit") || word.eq_ignore_ascii_case(b"done");
    let (rest, date) = if spaced_date {
        opt(preceded(space1, tag_no_case("date"))).parse(rest)?
    } else {
        (rest, None)
    };
    let (rest, _) = char(':').parse(rest)?;
    Ok((rest, classify(word, date.is_some())))
}

fn classify(word: &[u8], spaced_date: bool) -> Key {
    // Normalised: lowercase, without `_`/`-`; a key longer than any we know is `Other`.
    let mut buf = [0u8; 16];
    let mut len = 0;
    for &b in word.iter().filter(|&&b| b != b'_' && b != b'-') {
        let Some(slot) = buf.get_mut(len) else {
            return Key::Other;
        };
        *slot = b.to_ascii_lowercase();
        len += 1;
    }
    match (&buf[..len], spaced_date) {
        (b"submit", true) | (b"submitdate", false) => Key::SubmitDate,
        (b"done", true) | (b"donedate", false) => Key::DoneDate,
        (_, true) => Key::Other,
        (b"id", _) => Key::Id,
        (b"sub", _) => Key::Sub,
        (b"dlvrd", _) => Key::Dlvrd,
        (b"stat", _) => Key::Stat,
        (b"err", _) => Key::Err,
        (b"text", _) => Key::Text,
        _ => Key::Other,
    }
}

/// The value after a (non-`text`) key's colon: up to the next separator. Some carriers put a
/// space after the colon (`stat: DELIVRD`), so an empty value followed by spaces takes the next
/// token instead, unless that token is itself a key (`err: text:…` means `err` is empty).
fn value(input: &[u8]) -> (&[u8], &[u8]) {
    let (rest, direct) = split_token(input);
    if !direct.is_empty() {
        return (rest, direct);
    }
    let after_spaces = match space0::<_, nom::error::Error<&[u8]>>.parse(input) {
        Ok((after, _)) => after,
        Err(_) => input,
    };
    if key(after_spaces).is_ok() {
        return (input, direct);
    }
    split_token(after_spaces)
}

/// Splits off everything up to the next separator, returning `(rest, token)`.
fn split_token(input: &[u8]) -> (&[u8], &[u8]) {
    match take_till::<_, _, nom::error::Error<&[u8]>>(is_sep).parse(input) {
        Ok(split) => split,
        // `take_till` on complete input cannot fail; treat the whole input as the token.
        Err(_) => (&input[input.len()..], input),
    }
}

fn skip_separators(input: &[u8]) -> &[u8] {
    match take_while::<_, _, nom::error::Error<&[u8]>>(is_sep).parse(input) {
        Ok((rest, _)) => rest,
        Err(_) => input,
    }
}

fn store<'a>(slot: &mut Option<&'a str>, value: &'a [u8]) {
    if slot.is_none() && !value.is_empty() {
        *slot = std::str::from_utf8(value).ok();
    }
}

/// Parse the text. Returns `None` only when no recognised key is present at all.
///
/// Works on bytes, field by field: a value that is not UTF-8 (e.g. Latin-1 in `text:`) makes
/// only that field `None`; the ASCII fields around it are kept. Unknown keys and tokens
/// without a colon are skipped; `text:` ends parsing, so nothing inside it (colons, `stat:`)
/// is read as a field.
pub fn parse_text(short_message: &[u8]) -> Option<ReceiptText<'_>> {
    let mut fields = ReceiptText::default();
    let mut recognised = false;
    let mut input = short_message;
    loop {
        input = skip_separators(input);
        if input.is_empty() {
            break;
        }
        let Ok((after_colon, field)) = key(input) else {
            // Not `key:`; skip the token. `input` starts with a non-separator, so this
            // always consumes at least one byte.
            input = split_token(input).0;
            continue;
        };
        if field == Key::Text {
            recognised = true;
            let end = after_colon
                .iter()
                .rposition(|&b| b != 0)
                .map_or(0, |last| last + 1);
            store(&mut fields.text, &after_colon[..end]);
            break;
        }
        let (rest, value) = value(after_colon);
        input = rest;
        let slot = match field {
            Key::Id => &mut fields.id,
            Key::Sub => &mut fields.sub,
            Key::Dlvrd => &mut fields.dlvrd,
            Key::SubmitDate => &mut fields.submit_date,
            Key::DoneDate => &mut fields.done_date,
            Key::Stat => &mut fields.stat,
            Key::Err => &mut fields.err,
            Key::Text | Key::Other => continue,
        };
        recognised = true;
        store(slot, value);
    }
    recognised.then_some(fields)
}

/// What the service needs, after applying "TLVs win over text".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryReceipt {
    /// From `receipted_message_id`, else the text's `id:`; verbatim (compare with
    /// [`ids_match`], not `==`).
    pub message_id: String,
    pub state: MessageState,
    /// From `network_error_code` as `"<network>:<code>"` with the code in decimal
    /// (e.g. `"gsm:1"`, see [`network_error`]), else the text's `err:` verbatim (e.g. `"000"`);
    /// the colon tells the two apart. `None` when neither is present.
    pub error: Option<String>,
    /// The text's `done date:` verbatim (`YYMMDDhhmm` or `YYMMDDhhmmss`, SMSC local time).
    pub done_at: Option<String>,
}

/// Why a deliver_sm marked as a receipt cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReceiptError {
    /// Neither a usable `receipted_message_id` TLV nor an `id:` field.
    #[error("receipt carries no message id (no receipted_message_id tlv, no id: field)")]
    NoMessageId,
    /// Neither a `message_state` TLV nor a `stat:` field.
    #[error("receipt carries no state (no message_state tlv, no stat: field)")]
    NoState,
    /// A state was given but none we recognise (`message_state` outside 1..=9, unknown `stat:`).
    #[error("receipt state not recognised (message_state tlv {message_state:?}, stat {stat:?})")]
    UnrecognisedState {
        message_state: Option<u8>,
        stat: Option<String>,
    },
}

/// Combine the receipt text with the receipt TLVs; each TLV, when present and usable, wins
/// over the corresponding text field. An unusable TLV (empty or non-UTF-8 id, `message_state`
/// outside 1..=9, `network_error_code` not 3 octets) falls back to the text rather than failing.
pub fn receipt(
    short_message: &[u8],
    receipted_message_id: Option<&[u8]>,
    message_state: Option<u8>,
    network_error_code: Option<&[u8]>,
) -> Result<DeliveryReceipt, ReceiptError> {
    let text = parse_text(short_message).unwrap_or_default();
    let message_id = receipted_message_id
        .and_then(c_string)
        .or(text.id)
        .ok_or(ReceiptError::NoMessageId)?
        .to_owned();
    let state = message_state
        .and_then(MessageState::from_tlv)
        .or_else(|| text.stat.and_then(MessageState::from_stat));
    let state = match (state, message_state, text.stat) {
        (Some(state), _, _) => state,
        (None, None, None) => return Err(ReceiptError::NoState),
        (None, message_state, stat) => {
            return Err(ReceiptError::UnrecognisedState {
                message_state,
                stat: stat.map(str::to_owned),
            });
        }
    };
    let error = network_error_code
        .and_then(network_error)
        .or_else(|| text.err.map(str::to_owned));
    Ok(DeliveryReceipt {
        message_id,
        state,
        error,
        done_at: text.done_date.map(str::to_owned),
    })
}

/// A C-octet-string TLV value: up to the first NUL, trimmed; `None` if empty or not UTF-8.
fn c_string(value: &[u8]) -> Option<&str> {
    let end = value.iter().position(|&b| b == 0).unwrap_or(value.len());
    let text = std::str::from_utf8(&value[..end]).ok()?.trim();
    (!text.is_empty()).then_some(text)
}

/// Formats a `network_error_code` TLV value (SMPP 3.4 §5.3.2.31: network type octet, then the
/// error code as u16 big-endian) as `"<network>:<code>"`, e.g. `[3, 0, 1]` → `"gsm:1"`.
/// Network names: 1 `ansi136-access-denied`, 2 `is95-access-denied`, 3 `gsm`,
/// 4 `ansi136-cause`, 5 `is95-cause`, 6 `ansi41`, 7 `smpp`, 8 `mc`, others `net<n>`.
/// `None` unless the value is exactly 3 octets.
pub fn network_error(value: &[u8]) -> Option<String> {
    let &[network, hi, lo] = value else {
        return None;
    };
    let code = u16::from_be_bytes([hi, lo]);
    let name = match network {
        1 => "ansi136-access-denied",
        2 => "is95-access-denied",
        3 => "gsm",
        4 => "ansi136-cause",
        5 => "is95-cause",
        6 => "ansi41",
        7 => "smpp",
        8 => "mc",
        other => return Some(format!("net{other}:{code}")),
    };
    Some(format!("{name}:{code}"))
}

/// Whether the id a receipt names is the id the SMSC gave in submit_sm_resp, tolerating the
/// common carrier quirk of one being decimal and the other hex, case, and leading zeros.
///
/// True when the ids are equal ignoring ASCII case and leading zeros, or when one is all
/// decimal digits, the other all hex digits, and they denote the same number (either way
/// round, so `"16"`/`"10"` match as decimal 16 = hex 0x10). Empty ids never match. Numbers
/// beyond `u128` fall back to the string comparison only.
pub fn ids_match(submitted: &str, receipted: &str) -> bool {
    if submitted.is_empty() || receipted.is_empty() {
        return false;
    }
    let (a, b) = (
        submitted.trim_start_matches('0'),
        receipted.trim_start_matches('0'),
    );
    if a.eq_ignore_ascii_case(b) {
        return true;
    }
    decimal_equals_hex(a, b) || decimal_equals_hex(b, a)
}

/// The form under which a submitted SMSC message id is kept: leading zeros dropped, lowercase
/// (the first of [`id_forms`]).
pub fn canonical_id(id: &str) -> String {
    id.trim_start_matches('0').to_ascii_lowercase()
}

/// The forms an SMSC message id may take in a receipt, for lookups by exact key: first the
/// canonical form (leading zeros dropped, lowercase) under which a submitted id is kept, then
/// the same number read the other way round (decimal ↔ hex), as [`ids_match`] tolerates.
pub fn id_forms(id: &str) -> Vec<String> {
    let canonical = canonical_id(id);
    let mut forms = vec![canonical.clone()];
    if canonical.is_empty() {
        return forms;
    }
    if canonical.bytes().all(|b| b.is_ascii_digit())
        && let Ok(n) = canonical.parse::<u128>()
    {
        forms.push(format!("{n:x}"));
    }
    if canonical.bytes().all(|b| b.is_ascii_hexdigit())
        && let Ok(n) = u128::from_str_radix(&canonical, 16)
    {
        forms.push(n.to_string());
    }
    forms.dedup();
    forms
}

/// `decimal` read in base 10 equals `hex` read in base 16; both must consist only of their
/// digits (no sign, no `0x`), and must fit in a `u128`.
fn decimal_equals_hex(decimal: &str, hex: &str) -> bool {
    if !decimal.bytes().all(|b| b.is_ascii_digit()) || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return false;
    }
    // Leading zeros are already stripped, so an empty string here means the number zero.
    let parse = |s: &str, radix| {
        if s.is_empty() {
            Some(0)
        } else {
            u128::from_str_radix(s, radix).ok()
        }
    };
    match (parse(decimal, 10), parse(hex, 16)) {
        (Some(d), Some(h)) => d == h,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
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
        let t =
            parse_text(b"id:42 submit date:2401011200 done date:2401011201 stat:UNDELIV err:001")
                .unwrap();
        assert_eq!(t.sub, None);
        assert_eq!(t.dlvrd, None);
        assert_eq!(t.text, None);
        assert_eq!(t.stat, Some("UNDELIV"));
    }

    #[test]
    fn underscore_date_keys_are_recognised() {
        let t =
            parse_text(b"id:1 submit_date:2401011200 done_date:2401011201 stat:DELIVRD").unwrap();
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
        let t = parse_text(
            b"msisdn:447700900000 id:7 mccmnc:23410 stat:DELIVRD noise err:000 price:0.01",
        )
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
        let t =
            parse_text(b"id:1 stat:UNDELIV err:034 text:Meet at 10:30 stat:DELIVRD id:2 err:000")
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
}
