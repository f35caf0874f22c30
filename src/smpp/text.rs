//! Text in SMPP user data: turning `short_message` / `message_payload` octets into text by
//! `data_coding` (MO), and turning text into `submit_sm` parts (MT).
//!
//! Owns the character sets we meet on the wire (GSM 03.38 with its extension table, UCS-2 /
//! UTF-16BE, Latin-1, ISO-8859-5), GSM 7-bit packing, the choice of alphabet for MT and the
//! segmentation of long MT texts into concatenated parts. It does no I/O, never panics, and
//! knows nothing about PDUs beyond user data octets; UDH parsing lives in [`crate::smpp::udh`].

use crate::smpp::udh::concat_8bit;

/// What an MO's user data turned out to be.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum MessageBody {
    Text(String),
    Binary(Vec<u8>),
}

/// The alphabet of an MT text, which fixes its `data_coding`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alphabet {
    /// GSM 03.38 default alphabet plus extension table, one septet per octet (data_coding 0).
    Gsm7,
    /// UTF-16BE (data_coding 8).
    Ucs2,
}

impl Alphabet {
    /// The `data_coding` value to put in `submit_sm`.
    pub fn data_coding(self) -> u8 {
        match self {
            Alphabet::Gsm7 => 0x00,
            Alphabet::Ucs2 => 0x08,
        }
    }

    /// How carriers and handsets name it.
    pub fn name(self) -> &'static str {
        match self {
            Alphabet::Gsm7 => "GSM-7",
            Alphabet::Ucs2 => "UCS-2",
        }
    }

    /// Characters (septets for GSM, UTF-16 code units for UCS-2) that fit in `parts` parts:
    /// 160 / 70 in one, 153 / 67 per part of more.
    pub fn capacity(self, parts: usize) -> usize {
        let (single, per_part) = self.limits();
        let unit = match self {
            Alphabet::Gsm7 => 1,
            Alphabet::Ucs2 => 2,
        };
        match parts {
            0 => 0,
            1 => single / unit,
            n => n * per_part / unit,
        }
    }

    /// Octets of user data in a single-part message and per part of a concatenated one (after
    /// the 6-octet UDH): 160 / 153 septets for GSM (one per octet), 70 / 67 code units for UCS-2.
    fn limits(self) -> (usize, usize) {
        match self {
            Alphabet::Gsm7 => (160, 153),
            Alphabet::Ucs2 => (140, 134),
        }
    }

    /// Where the part starting at `rest` ends: as many octets as fit in `max`, one unit less if
    /// the cut would separate an escape from its code or a high surrogate from its low half.
    /// `rest` must come from our own encoders, where ESC only ever starts an escape sequence and
    /// surrogates always come in pairs.
    fn cut(self, rest: &[u8], max: usize) -> usize {
        if rest.len() <= max {
            return rest.len();
        }
        match self {
            Alphabet::Gsm7 if rest.get(max - 1) == Some(&ESC) => max - 1,
            Alphabet::Ucs2 if rest.get(max - 2).is_some_and(|&b| is_high_surrogate(b)) => max - 2,
            _ => max,
        }
    }
}

/// An MT text ready for submit_sm: one entry per SMS part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedText {
    pub alphabet: Alphabet,
    /// Each part's complete `short_message` octets. With more than one part, each starts with
    /// the 6-octet concatenation UDH and the caller must set esm_class UDHI (0x40).
    pub parts: Vec<Vec<u8>>,
}

impl EncodedText {
    /// The `data_coding` every part must be sent with.
    pub fn data_coding(&self) -> u8 {
        self.alphabet.data_coding()
    }

    /// Whether the parts carry a UDH, so `esm_class` needs UDHI (0x40).
    pub fn needs_udhi(&self) -> bool {
        self.parts.len() > 1
    }
}

/// The most parts a concatenated message can have: the UDH counts them in one octet.
const MAX_PARTS: usize = u8::MAX as usize;

/// Choose the alphabet and split into parts. `reference` goes in the UDH of multi-part messages.
///
/// GSM 7-bit when every char is in the default or extension table, else UCS-2. Parts never split
/// an escape sequence or a surrogate pair. A text needing more than 255 parts (~34 KB) is
/// truncated to 255 parts, because the UDH cannot count more; real flows never get near that.
pub fn encode(text: &str, reference: u8) -> EncodedText {
    let (alphabet, octets) = user_data(text);
    let (single, per_part) = alphabet.limits();
    if octets.len() <= single {
        return EncodedText {
            alphabet,
            parts: vec![octets],
        };
    }
    let mut chunks = Vec::new();
    let mut rest = octets.as_slice();
    while !rest.is_empty() && chunks.len() < MAX_PARTS {
        let (chunk, tail) = rest
            .split_at_checked(alphabet.cut(rest, per_part))
            .unwrap_or((rest, &[]));
        chunks.push(chunk);
        rest = tail;
    }
    let total = u8::try_from(chunks.len()).unwrap_or(u8::MAX);
    let parts = chunks
        .into_iter()
        .zip(1..=u8::MAX)
        .map(|(chunk, seq)| [&concat_8bit(reference, total, seq)[..], chunk].concat())
        .collect();
    EncodedText { alphabet, parts }
}

/// GSM 7-bit septets when every char has one, else UCS-2 octets.
fn user_data(text: &str) -> (Alphabet, Vec<u8>) {
    match gsm7_encode(text) {
        Some(septets) => (Alphabet::Gsm7, septets),
        None => (Alphabet::Ucs2, ucs2_encode(text)),
    }
}

/// The parts [`encode`] splits `octets` into, without its cap of 255.
fn part_count(alphabet: Alphabet, octets: &[u8]) -> usize {
    let (single, per_part) = alphabet.limits();
    if octets.len() <= single {
        return 1;
    }
    let (mut parts, mut rest) = (0, octets);
    while !rest.is_empty() {
        rest = rest.get(alphabet.cut(rest, per_part)..).unwrap_or_default();
        parts += 1;
    }
    parts
}

/// What an MT text costs as SMS: the parts it is sent (and billed) as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cost {
    pub alphabet: Alphabet,
    /// Parts it takes, counted past the 255 [`encode`] sends at most (a flow may send 10).
    pub parts: usize,
    /// Its length in the alphabet's units (septets, an extension-table character counting
    /// two; UTF-16 code units), what [`Alphabet::capacity`] counts.
    pub units: usize,
    /// For UCS-2: the characters GSM 03.38 lacks, each once, in order of appearance (a
    /// Latin text with one `‘` costs UCS-2's shorter parts).
    pub not_gsm7: Vec<char>,
}

/// The cost of sending `text` as [`encode`] splits it.
pub fn cost(text: &str) -> Cost {
    let (alphabet, octets) = user_data(text);
    let (units, not_gsm7) = match alphabet {
        Alphabet::Gsm7 => (gsm7_len(text).unwrap_or_default(), Vec::new()),
        Alphabet::Ucs2 => {
            let mut not_gsm7: Vec<char> = Vec::new();
            for c in text.chars().filter(|&c| gsm7_char(c).is_none()) {
                if !not_gsm7.contains(&c) {
                    not_gsm7.push(c);
                }
            }
            (text.encode_utf16().count(), not_gsm7)
        }
    };
    Cost {
        alphabet,
        parts: part_count(alphabet, &octets),
        units,
        not_gsm7,
    }
}

/// How the octets of a `data_coding` are to be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Coding {
    Gsm7,
    Latin1,
    Iso8859_5,
    Ucs2,
    Binary,
    /// A scheme we do not decode (JIS, KS C 5601, reserved values, ...).
    Unknown,
}

/// Maps `data_coding` to a [`Coding`]: SMPP 3.4 §5.2.19 values for 0x00..=0x0F, the GSM 03.38
/// (23.038 §4) coding groups above that.
fn coding(data_coding: u8) -> Coding {
    match data_coding {
        0x00 => Coding::Gsm7,
        // IA5 is ASCII; octets >= 0x80 are Latin-1, which is what carriers send there.
        0x01 | 0x03 => Coding::Latin1,
        0x02 | 0x04 => Coding::Binary,
        0x06 => Coding::Iso8859_5,
        0x08 => Coding::Ucs2,
        // General data coding group (00xx_xxxx) and, coded the same way, the automatic
        // deletion group (01xx_xxxx).
        0x10..=0x7F => general_group(data_coding),
        // Message waiting indication groups: discard / store (GSM 7-bit), store (UCS-2).
        0xC0..=0xDF => Coding::Gsm7,
        0xE0..=0xEF => Coding::Ucs2,
        // Data coding / message class group: bit 2 picks GSM 7-bit or 8-bit data.
        0xF0..=0xFF if data_coding & 0x04 == 0 => Coding::Gsm7,
        0xF0..=0xFF => Coding::Binary,
        _ => Coding::Unknown,
    }
}

/// Bits 5..0 of the general data coding group: bit 5 compressed, bits 3..2 the alphabet.
fn general_group(data_coding: u8) -> Coding {
    if data_coding & 0x20 != 0 {
        // Compressed (23.042); we have no decompressor, so hand the octets over as they are.
        return Coding::Binary;
    }
    match data_coding & 0x0C {
        0x00 => Coding::Gsm7,
        0x08 => Coding::Ucs2,
        // 01 is 8-bit data; 11 is reserved, and guessing at it would only garble it.
        _ => Coding::Binary,
    }
}

/// Decode SMPP `short_message` / `message_payload` octets (UDH already stripped) by `data_coding`.
///
/// Never fails: text codings decode tolerantly (see [`gsm7_decode`], [`ucs2_decode`]). For a
/// `data_coding` we do not decode (JIS, ISO-2022-JP, KS C 5601, reserved values), octets that
/// are all ASCII come back as text, since those schemes leave ASCII as it is; anything else comes
/// back as binary rather than as garbled text.
pub fn decode(data_coding: u8, payload: &[u8]) -> MessageBody {
    match coding(data_coding) {
        Coding::Gsm7 => MessageBody::Text(gsm7_decode(payload)),
        Coding::Latin1 => MessageBody::Text(latin1_decode(payload)),
        Coding::Iso8859_5 => MessageBody::Text(payload.iter().map(|&b| iso8859_5(b)).collect()),
        Coding::Ucs2 => MessageBody::Text(ucs2_decode(payload)),
        Coding::Unknown if payload.is_ascii() => MessageBody::Text(latin1_decode(payload)),
        Coding::Binary | Coding::Unknown => MessageBody::Binary(payload.to_vec()),
    }
}

/// Latin-1 maps each octet to the code point of the same value.
fn latin1_decode(octets: &[u8]) -> String {
    octets.iter().map(|&b| char::from(b)).collect()
}

/// ISO-8859-5: Latin-1 below 0xA0; above, Cyrillic sits at a fixed offset from U+0400 except
/// for the soft hyphen (0xAD), the numero sign (0xF0) and the section sign (0xFD).
fn iso8859_5(octet: u8) -> char {
    let code_point = match octet {
        0x00..=0xA0 | 0xAD => u32::from(octet),
        0xF0 => 0x2116,
        0xFD => 0xA7,
        _ => u32::from(octet) + 0x360,
    };
    char::from_u32(code_point).unwrap_or(char::REPLACEMENT_CHARACTER)
}

/// The escape to the GSM 03.38 extension table.
const ESC: u8 = 0x1B;

/// GSM 03.38 default alphabet, indexed by septet. Slot 0x1B is the escape: a lone escape is
/// shown as a space (23.038 note), hence the space there; encoding never picks that slot.
#[rustfmt::skip]
const GSM7_DEFAULT: [char; 128] = [
    '@', '£', '$', '¥', 'è', 'é', 'ù', 'ì', 'ò', 'Ç', '\n', 'Ø', 'ø', '\r', 'Å', 'å',
    'Δ', '_', 'Φ', 'Γ', 'Λ', 'Ω', 'Π', 'Ψ', 'Σ', 'Θ', 'Ξ', ' ', 'Æ', 'æ', 'ß', 'É',
    ' ', '!', '"', '#', '¤', '%', '&', '\'', '(', ')', '*', '+', ',', '-', '.', '/',
    '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', ':', ';', '<', '=', '>', '?',
    '¡', 'A', 'B', 'C', 'D', 'E', 'F', 'G', 'H', 'I', 'J', 'K', 'L', 'M', 'N', 'O',
    'P', 'Q', 'R', 'S', 'T', 'U', 'V', 'W', 'X', 'Y', 'Z', 'Ä', 'Ö', 'Ñ', 'Ü', '§',
    '¿', 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k', 'l', 'm', 'n', 'o',
    'p', 'q', 'r', 's', 't', 'u', 'v', 'w', 'x', 'y', 'z', 'ä', 'ö', 'ñ', 'ü', 'à',
];

/// GSM 03.38 extension table: the code that follows an escape, and its char.
const GSM7_EXTENSION: [(u8, char); 10] = [
    (0x0A, '\u{0C}'),
    (0x14, '^'),
    (0x28, '{'),
    (0x29, '}'),
    (0x2F, '\\'),
    (0x3C, '['),
    (0x3D, '~'),
    (0x3E, ']'),
    (0x40, '|'),
    (0x65, '€'),
];

/// The highest character of either table but the extension table's `€`.
const LAST_NON_ASCII_GSM7: char = 'Ω';

/// [`GSM7_FROM_ASCII`] entry for an ASCII char with no GSM 03.38 septet.
const NOT_GSM: u8 = 0xFF;
/// [`GSM7_FROM_ASCII`] flag: the char is in the extension table (escape + the low 7 bits).
const EXTENDED: u8 = 0x80;

/// ASCII char → its septet, `EXTENDED | code` for extension-table chars, or [`NOT_GSM`]; built
/// at compile time from the two tables above so they stay the single source of truth.
const GSM7_FROM_ASCII: [u8; 128] = {
    let mut table = [NOT_GSM; 128];
    let mut i = 0;
    while i < GSM7_EXTENSION.len() {
        let (code, c) = GSM7_EXTENSION[i];
        if (c as u32) < 128 {
            table[c as usize] = EXTENDED | code;
        }
        i += 1;
    }
    let mut code = 0;
    while code < 128 {
        let c = GSM7_DEFAULT[code] as u32;
        // Slot ESC holds a display space, not an encoding of ' ' (0x20 is).
        if c < 128 && code != ESC as usize {
            table[c as usize] = code as u8;
        }
        code += 1;
    }
    table
};

/// The septets of one char: `[code]` from the default table or `[ESC, code]` from the extension
/// table; the count is 1 or 2.
fn gsm7_char(c: char) -> Option<([u8; 2], usize)> {
    // Most texts are ASCII: answer those from a table instead of scanning the alphabet.
    if let Some(&entry) = GSM7_FROM_ASCII.get(c as usize) {
        return match entry {
            NOT_GSM => None,
            code if code & EXTENDED != 0 => Some(([ESC, code & !EXTENDED], 2)),
            code => Some(([code, 0], 1)),
        };
    }
    // Past Greek Ω only the euro sign is GSM 03.38: Cyrillic, Uzbek and emoji answer here
    // instead of scanning both tables (that was 7 % of the service's CPU per survey event:
    // each Cyrillic character of a question scanned 138 entries, twice per send).
    if c > LAST_NON_ASCII_GSM7 && c != '€' {
        return None;
    }
    let default = GSM7_DEFAULT
        .iter()
        .zip(0u8..)
        .find(|&(&d, code)| d == c && code != ESC);
    if let Some((_, code)) = default {
        return Some(([code, 0], 1));
    }
    GSM7_EXTENSION
        .iter()
        .find(|&&(_, e)| e == c)
        .map(|&(code, _)| ([ESC, code], 2))
}

/// GSM 03.38 septets of `text` (extension-table chars count two), or None if some char does not fit.
pub fn gsm7_len(text: &str) -> Option<usize> {
    text.chars().map(|c| gsm7_char(c).map(|(_, n)| n)).sum()
}

/// GSM 03.38, unpacked (one septet per octet, as SMPP carries data_coding 0). None if some char doesn't fit.
pub fn gsm7_encode(text: &str) -> Option<Vec<u8>> {
    let mut septets = Vec::with_capacity(text.len());
    for c in text.chars() {
        let (code, n) = gsm7_char(c)?;
        septets.extend(code.iter().take(n));
    }
    Some(septets)
}

/// Inverse of gsm7_encode; tolerant, because carriers are:
/// - an octet >= 0x80 cannot be a septet, so the carrier really sent Latin-1: decoded as such;
/// - an escape at the end (or before an octet >= 0x80) is shown as a space (23.038 note);
/// - escape + escape (reserved for a further extension table) is shown as a space;
/// - escape + a code not in the extension table gives that code's default-table char (23.038).
pub fn gsm7_decode(septets: &[u8]) -> String {
    let mut text = String::with_capacity(septets.len());
    let mut octets = septets.iter().copied().peekable();
    while let Some(octet) = octets.next() {
        let c = match octet {
            ESC => match octets.next_if(|&next| next < 0x80) {
                Some(code) => GSM7_EXTENSION
                    .iter()
                    .find(|&&(e, _)| e == code)
                    .map_or_else(|| gsm7_default(code), |&(_, c)| c),
                None => ' ',
            },
            _ => gsm7_default(octet),
        };
        text.push(c);
    }
    text
}

/// The default-table char of a septet, or the Latin-1 char of an octet >= 0x80.
fn gsm7_default(octet: u8) -> char {
    GSM7_DEFAULT
        .get(usize::from(octet))
        .copied()
        .unwrap_or(char::from(octet))
}

/// GSM 7-bit packing (8 septets in 7 octets, LSB first, as on the air interface / some carriers) and its inverse.
///
/// Only the low 7 bits of each septet are used. Unused bits of the last octet are zero; when
/// they are 7 bits the receiver needs the septet count (see [`gsm7_unpack`]) to not read an
/// extra '@'.
pub fn gsm7_pack(septets: &[u8]) -> Vec<u8> {
    let mut packed = Vec::with_capacity((septets.len() * 7).div_ceil(8));
    let (mut acc, mut bits) = (0u16, 0u32);
    for &septet in septets {
        acc |= u16::from(septet & 0x7F) << bits;
        bits += 7;
        if bits >= 8 {
            packed.push(acc.to_le_bytes()[0]);
            acc >>= 8;
            bits -= 8;
        }
    }
    if bits > 0 {
        packed.push(acc.to_le_bytes()[0]);
    }
    packed
}

/// Inverse of [`gsm7_pack`]: the first `septet_count` septets of `packed`, or as many as it
/// holds if it is shorter.
pub fn gsm7_unpack(packed: &[u8], septet_count: usize) -> Vec<u8> {
    let available = packed.len().saturating_mul(8) / 7;
    let mut septets = Vec::with_capacity(septet_count.min(available));
    let (mut acc, mut bits) = (0u16, 0u32);
    for &octet in packed {
        acc |= u16::from(octet) << bits;
        bits += 8;
        while bits >= 7 && septets.len() < septet_count {
            septets.push(acc.to_le_bytes()[0] & 0x7F);
            acc >>= 7;
            bits -= 7;
        }
    }
    septets
}

/// Whether an octet is the high byte of a UTF-16 high (leading) surrogate.
fn is_high_surrogate(octet: u8) -> bool {
    (0xD8..=0xDB).contains(&octet)
}

/// UTF-16BE (UCS-2 with surrogate pairs).
pub fn ucs2_encode(text: &str) -> Vec<u8> {
    // Every UTF-16 unit (two octets) comes from at least one UTF-8 byte: this never regrows.
    let mut octets = Vec::with_capacity(text.len() * 2);
    for unit in text.encode_utf16() {
        octets.extend_from_slice(&unit.to_be_bytes());
    }
    octets
}

/// UTF-16BE (UCS-2 with surrogate pairs) decoded tolerantly: a lone surrogate and an odd trailing
/// octet each become U+FFFD, so a damaged message still shows what it can.
pub fn ucs2_decode(octets: &[u8]) -> String {
    let (pairs, odd) = octets.as_chunks::<2>();
    let mut text: String = char::decode_utf16(pairs.iter().map(|&pair| u16::from_be_bytes(pair)))
        .map(|unit| unit.unwrap_or(char::REPLACEMENT_CHARACTER))
        .collect();
    if !odd.is_empty() {
        text.push(char::REPLACEMENT_CHARACTER);
    }
    text
}

#[cfg(test)]
mod tests;
