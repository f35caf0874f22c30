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
mod tests;
