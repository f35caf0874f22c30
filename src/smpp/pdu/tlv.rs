//! The TLVs of a PDU (SMPP 3.4 §5.3): the well-known tags, the typed view of one TLV, and the
//! checked TLV area read lazily, borrowing from the frame.

use std::fmt;

use super::super::receipt::{self, DeliveryReceipt, ReceiptError};
use super::super::udh::ConcatInfo;
use super::COctetStr;

/// Well-known TLV tags (SMPP 3.4 §5.3.2).
pub mod tag {
    pub const DEST_ADDR_SUBUNIT: u16 = 0x0005;
    pub const SOURCE_ADDR_SUBUNIT: u16 = 0x000D;
    pub const QOS_TIME_TO_LIVE: u16 = 0x0017;
    pub const PAYLOAD_TYPE: u16 = 0x0019;
    pub const ADDITIONAL_STATUS_INFO_TEXT: u16 = 0x001D;
    pub const RECEIPTED_MESSAGE_ID: u16 = 0x001E;
    pub const PRIVACY_INDICATOR: u16 = 0x0201;
    pub const USER_MESSAGE_REFERENCE: u16 = 0x0204;
    pub const USER_RESPONSE_CODE: u16 = 0x0205;
    pub const SOURCE_PORT: u16 = 0x020A;
    pub const DESTINATION_PORT: u16 = 0x020B;
    pub const SAR_MSG_REF_NUM: u16 = 0x020C;
    pub const LANGUAGE_INDICATOR: u16 = 0x020D;
    pub const SAR_TOTAL_SEGMENTS: u16 = 0x020E;
    pub const SAR_SEGMENT_SEQNUM: u16 = 0x020F;
    pub const SC_INTERFACE_VERSION: u16 = 0x0210;
    pub const CALLBACK_NUM: u16 = 0x0381;
    pub const NETWORK_ERROR_CODE: u16 = 0x0423;
    pub const MESSAGE_PAYLOAD: u16 = 0x0424;
    pub const DELIVERY_FAILURE_REASON: u16 = 0x0425;
    pub const MORE_MESSAGES_TO_SEND: u16 = 0x0426;
    pub const MESSAGE_STATE: u16 = 0x0427;
    pub const USSD_SERVICE_OP: u16 = 0x0501;
    pub const MS_AVAILABILITY_STATUS: u16 = 0x0422;
}

/// One TLV, typed when the tag is known and its length is what the specification says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TlvValue<'a> {
    SarMsgRefNum(u16),
    SarTotalSegments(u8),
    SarSegmentSeqnum(u8),
    MessagePayload(&'a [u8]),
    ReceiptedMessageId(COctetStr<'a, 65>),
    MessageState(u8),
    NetworkErrorCode {
        network_type: u8,
        error_code: u16,
    },
    UserMessageReference(u16),
    SourcePort(u16),
    DestinationPort(u16),
    ScInterfaceVersion(u8),
    PayloadType(u8),
    LanguageIndicator(u8),
    PrivacyIndicator(u8),
    QosTimeToLive(u32),
    DeliveryFailureReason(u8),
    MoreMessagesToSend(u8),
    MsAvailabilityStatus(u8),
    AdditionalStatusInfoText(COctetStr<'a, 256>),
    /// An unknown tag, or a known tag whose length is not the one the specification gives
    /// (kept rather than rejected: the MO it rides on matters more than the TLV).
    Other {
        tag: u16,
        value: &'a [u8],
    },
}

/// One TLV as it was on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tlv<'a> {
    pub tag: u16,
    pub value: &'a [u8],
}

impl<'a> Tlv<'a> {
    /// The typed value (see [`TlvValue`]).
    pub fn typed(&self) -> TlvValue<'a> {
        let v = self.value;
        let be16 = |v: &[u8]| u16::from_be_bytes([v[0], v[1]]);
        match (self.tag, v.len()) {
            (tag::SAR_MSG_REF_NUM, 2) => TlvValue::SarMsgRefNum(be16(v)),
            (tag::SAR_TOTAL_SEGMENTS, 1) => TlvValue::SarTotalSegments(v[0]),
            (tag::SAR_SEGMENT_SEQNUM, 1) => TlvValue::SarSegmentSeqnum(v[0]),
            (tag::MESSAGE_PAYLOAD, _) => TlvValue::MessagePayload(v),
            (tag::RECEIPTED_MESSAGE_ID, _) => TlvValue::ReceiptedMessageId(COctetStr(trim_nul(v))),
            (tag::MESSAGE_STATE, 1) => TlvValue::MessageState(v[0]),
            (tag::NETWORK_ERROR_CODE, 3) => TlvValue::NetworkErrorCode {
                network_type: v[0],
                error_code: be16(&v[1..]),
            },
            (tag::USER_MESSAGE_REFERENCE, 2) => TlvValue::UserMessageReference(be16(v)),
            (tag::SOURCE_PORT, 2) => TlvValue::SourcePort(be16(v)),
            (tag::DESTINATION_PORT, 2) => TlvValue::DestinationPort(be16(v)),
            (tag::SC_INTERFACE_VERSION, 1) => TlvValue::ScInterfaceVersion(v[0]),
            (tag::PAYLOAD_TYPE, 1) => TlvValue::PayloadType(v[0]),
            (tag::LANGUAGE_INDICATOR, 1) => TlvValue::LanguageIndicator(v[0]),
            (tag::PRIVACY_INDICATOR, 1) => TlvValue::PrivacyIndicator(v[0]),
            (tag::QOS_TIME_TO_LIVE, 4) => {
                TlvValue::QosTimeToLive(u32::from_be_bytes([v[0], v[1], v[2], v[3]]))
            }
            (tag::DELIVERY_FAILURE_REASON, 1) => TlvValue::DeliveryFailureReason(v[0]),
            (tag::MORE_MESSAGES_TO_SEND, 1) => TlvValue::MoreMessagesToSend(v[0]),
            (tag::MS_AVAILABILITY_STATUS, 1) => TlvValue::MsAvailabilityStatus(v[0]),
            (tag::ADDITIONAL_STATUS_INFO_TEXT, _) => {
                TlvValue::AdditionalStatusInfoText(COctetStr(trim_nul(v)))
            }
            (tag, _) => TlvValue::Other { tag, value: v },
        }
    }
}

/// C-string TLV values end in a NUL; some carriers leave it out.
fn trim_nul(v: &[u8]) -> &[u8] {
    v.strip_suffix(&[0]).unwrap_or(v)
}

/// The TLV area of a PDU: checked for structure when decoded, read lazily.
///
/// Keeping the raw slice instead of a `Vec` means decoding allocates nothing; the lookups below
/// scan a few dozen octets at most.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct Tlvs<'a>(&'a [u8]);

impl<'a> Tlvs<'a> {
    /// Wraps an area whose structure the decoder has checked: every TLV header is complete and
    /// every length fits. [`Tlvs::iter`] relies on that.
    pub(crate) const fn checked(raw: &'a [u8]) -> Self {
        Self(raw)
    }

    /// The TLV octets as on the wire.
    pub const fn as_bytes(&self) -> &'a [u8] {
        self.0
    }

    pub const fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> TlvIter<'a> {
        TlvIter(self.0)
    }

    /// The first TLV with `tag`.
    pub fn find(&self, tag: u16) -> Option<Tlv<'a>> {
        self.iter().find(|tlv| tlv.tag == tag)
    }

    pub fn message_payload(&self) -> Option<&'a [u8]> {
        self.find(tag::MESSAGE_PAYLOAD).map(|tlv| tlv.value)
    }

    /// The SMSC's reference of an MO (`user_message_reference`): the same on a redelivery.
    pub fn user_message_reference(&self) -> Option<u16> {
        match self.find(tag::USER_MESSAGE_REFERENCE)?.typed() {
            TlvValue::UserMessageReference(r) => Some(r),
            _ => None,
        }
    }

    pub fn receipted_message_id(&self) -> Option<COctetStr<'a, 65>> {
        self.find(tag::RECEIPTED_MESSAGE_ID)
            .map(|tlv| COctetStr(trim_nul(tlv.value)))
    }

    pub fn message_state(&self) -> Option<u8> {
        match self.find(tag::MESSAGE_STATE)?.typed() {
            TlvValue::MessageState(state) => Some(state),
            _ => None,
        }
    }

    /// The raw 3 octets of `network_error_code` (network type, error code).
    pub fn network_error_code(&self) -> Option<&'a [u8]> {
        self.find(tag::NETWORK_ERROR_CODE).map(|tlv| tlv.value)
    }

    /// The delivery receipt a PDU with these TLVs and receipt `text` reports: the
    /// receipted_message_id, message_state and network_error_code TLVs win over the text.
    pub fn delivery_receipt(&self, text: &[u8]) -> Result<DeliveryReceipt, ReceiptError> {
        receipt::receipt(
            text,
            self.receipted_message_id().map(|id| id.as_bytes()),
            self.message_state(),
            self.network_error_code(),
        )
    }

    /// Concatenation by SAR TLVs, when all three are present and well-formed.
    pub fn sar(&self) -> Option<ConcatInfo> {
        let (mut reference, mut total, mut seq) = (None, None, None);
        // The first of each wins, as in `find`.
        for tlv in self.iter() {
            match tlv.typed() {
                TlvValue::SarMsgRefNum(v) => reference = reference.or(Some(v)),
                TlvValue::SarTotalSegments(v) => total = total.or(Some(v)),
                TlvValue::SarSegmentSeqnum(v) => seq = seq.or(Some(v)),
                _ => {}
            }
        }
        Some(ConcatInfo {
            reference: reference?,
            total: total?,
            seq: seq?,
        })
    }
}

impl fmt::Debug for Tlvs<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.iter().map(|t| t.typed()))
            .finish()
    }
}

impl<'a> IntoIterator for Tlvs<'a> {
    type Item = Tlv<'a>;
    type IntoIter = TlvIter<'a>;
    fn into_iter(self) -> TlvIter<'a> {
        self.iter()
    }
}

/// Iterator over a checked TLV area.
#[derive(Debug, Clone)]
pub struct TlvIter<'a>(&'a [u8]);

impl<'a> Iterator for TlvIter<'a> {
    type Item = Tlv<'a>;

    fn next(&mut self) -> Option<Tlv<'a>> {
        // The area was checked by the decoder (`Tlvs::checked`); the `get`s keep a hand-built
        // `Tlvs` from panicking all the same.
        let header = self.0.get(..4)?;
        let tag = u16::from_be_bytes([header[0], header[1]]);
        let len = usize::from(u16::from_be_bytes([header[2], header[3]]));
        let value = self.0.get(4..4 + len)?;
        self.0 = &self.0[4 + len..];
        Some(Tlv { tag, value })
    }
}
