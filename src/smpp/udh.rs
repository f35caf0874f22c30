//! User data header (3GPP TS 23.040 §9.2.3.24): the octets at the start of `short_message`
//! when `esm_class` has the UDHI bit (0x40) set.
//!
//! Owns parsing a UDH into its information elements and building the concatenation header we
//! put on multi-part MT messages. Knows nothing about PDUs beyond the raw `short_message`.

/// `esm_class` bit that says `short_message` starts with a UDH.
pub const UDHI: u8 = 0x40;

/// IE identifier: concatenated short message, 8-bit reference number.
pub const IE_CONCAT_8BIT: u8 = 0x00;
/// IE identifier: concatenated short message, 16-bit reference number.
pub const IE_CONCAT_16BIT: u8 = 0x08;

/// Where a part sits in a concatenated message, from a UDH or from SAR TLVs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct ConcatInfo {
    /// The sender's reference; 8-bit references are widened, so the two UDH kinds and SAR share
    /// one key space per sender (a sender uses one kind per message).
    pub reference: u16,
    /// Number of parts, 1..=255.
    pub total: u8,
    /// This part's number, 1-based.
    pub seq: u8,
}

/// One information element, borrowing its data from the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InformationElement<'a> {
    pub id: u8,
    pub data: &'a [u8],
}

/// A parsed UDH: its elements and the user data that follows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserDataHeader<'a> {
    pub elements: Vec<InformationElement<'a>>,
    /// The octets after the header: the text (or binary data) of this part.
    pub payload: &'a [u8],
}

/// Why a UDH could not be parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UdhError {
    /// `short_message` is empty although UDHI is set.
    #[error("udhi set but short_message is empty")]
    Empty,
    /// UDHL points past the end of `short_message`.
    #[error("udh length {udhl} exceeds the {available} octets that follow it")]
    TooLong { udhl: usize, available: usize },
    /// An element's length points past the end of the header.
    #[error("information element 0x{id:02x} at offset {offset} runs past the header")]
    ElementOverrun { id: u8, offset: usize },
}

impl<'a> UserDataHeader<'a> {
    /// Splits `short_message` (which must carry a UDH) into elements and payload.
    pub fn parse(short_message: &'a [u8]) -> Result<Self, UdhError> {
        let (&udhl, rest) = short_message.split_first().ok_or(UdhError::Empty)?;
        let udhl = usize::from(udhl);
        if udhl > rest.len() {
            return Err(UdhError::TooLong {
                udhl,
                available: rest.len(),
            });
        }
        let (mut header, payload) = rest.split_at(udhl);
        let mut elements = Vec::new();
        let mut offset = 1;
        while !header.is_empty() {
            let id = header[0];
            let Some(&len) = header.get(1) else {
                return Err(UdhError::ElementOverrun { id, offset });
            };
            let end = 2 + usize::from(len);
            if end > header.len() {
                return Err(UdhError::ElementOverrun { id, offset });
            }
            elements.push(InformationElement {
                id,
                data: &header[2..end],
            });
            header = &header[end..];
            offset += end;
        }
        Ok(Self { elements, payload })
    }

    /// The concatenation element, if any (the first valid 0x00 or 0x08 element wins).
    pub fn concat(&self) -> Option<ConcatInfo> {
        self.elements.iter().find_map(|ie| match (ie.id, ie.data) {
            (IE_CONCAT_8BIT, &[reference, total, seq]) => Some(ConcatInfo {
                reference: u16::from(reference),
                total,
                seq,
            }),
            (IE_CONCAT_16BIT, &[hi, lo, total, seq]) => Some(ConcatInfo {
                reference: u16::from_be_bytes([hi, lo]),
                total,
                seq,
            }),
            _ => None,
        })
    }
}

/// The 6-octet UDH we put in front of each part of a multi-part MT message.
pub fn concat_8bit(reference: u8, total: u8, seq: u8) -> [u8; 6] {
    [0x05, IE_CONCAT_8BIT, 0x03, reference, total, seq]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_8bit_concat() {
        let sm = [0x05, 0x00, 0x03, 0x2a, 0x02, 0x01, b'h', b'i'];
        let udh = UserDataHeader::parse(&sm).unwrap();
        assert_eq!(udh.payload, b"hi");
        assert_eq!(
            udh.concat(),
            Some(ConcatInfo {
                reference: 0x2a,
                total: 2,
                seq: 1
            })
        );
    }

    #[test]
    fn parses_16bit_concat_after_other_element() {
        // A port-addressing element (0x05) first, then 16-bit concatenation.
        let sm = [
            0x0c, 0x05, 0x04, 0x0b, 0x84, 0x23, 0xf0, 0x08, 0x04, 0xbe, 0xef, 0x03, 0x02, b'x',
        ];
        let udh = UserDataHeader::parse(&sm).unwrap();
        assert_eq!(udh.elements.len(), 2);
        assert_eq!(udh.payload, b"x");
        assert_eq!(
            udh.concat(),
            Some(ConcatInfo {
                reference: 0xbeef,
                total: 3,
                seq: 2
            })
        );
    }

    #[test]
    fn rejects_overruns() {
        assert_eq!(UserDataHeader::parse(&[]), Err(UdhError::Empty));
        assert_eq!(
            UserDataHeader::parse(&[0x05, 0x00, 0x03]),
            Err(UdhError::TooLong {
                udhl: 5,
                available: 2
            })
        );
        assert_eq!(
            UserDataHeader::parse(&[0x03, 0x00, 0x03, 0x01]),
            Err(UdhError::ElementOverrun { id: 0, offset: 1 })
        );
    }

    #[test]
    fn builds_what_it_parses() {
        let udh = concat_8bit(7, 3, 2);
        let parsed = UserDataHeader::parse(&udh).unwrap();
        assert_eq!(
            parsed.concat(),
            Some(ConcatInfo {
                reference: 7,
                total: 3,
                seq: 2
            })
        );
        assert!(parsed.payload.is_empty());
    }
}
