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
mod tests {
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
}
