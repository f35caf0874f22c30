//! Outbound PDUs, built with rusmpp's types and encoded by rusmpp.
//!
//! We keep our own decoder (tolerant, zero-copy, see [`decode`](super::decode())) but let rusmpp
//! write what we send: its types carry the specification's bounds, so a field we could not
//! legally send is an [`EncodeError`] here rather than a rejection by the carrier later. Every
//! bind announces interface_version 0x34 (rusmpp defaults to 5.0).
//!
//! The builders cover what smsflow sends as an ESME and what the built-in SMSC simulator sends.

use bytes::{BufMut, Bytes, BytesMut};
use rusmpp::{
    Command, CommandStatus as RStatus, Pdu as RPdu,
    encode::{Length, owned::Encode},
    pdus::{
        BindReceiver, BindReceiverResp, BindTransceiver, BindTransceiverResp, BindTransmitter,
        BindTransmitterResp, DeliverSm, DeliverSmResp, SubmitSm, SubmitSmResp,
    },
    tlvs::{
        MessageDeliveryRequestTlvValue as DeliverTlv,
        MessageSubmissionRequestTlvValue as SubmitTlv, TlvTag,
    },
    types::{AnyOctetString, COctetString, EmptyOrFullCOctetString, OctetString},
    values::{
        DataCoding, ErrorCodeNetworkType, EsmClass, InterfaceVersion, MessagePayload, MessageState,
        NetworkErrorCode, Npi, PriorityFlag, RegisteredDelivery, ReplaceIfPresentFlag, ServiceType,
        Ton, UserMessageReference,
    },
};

use super::pdu::CommandStatus;
use super::text::EncodedText;
use super::udh::UDHI;

/// A field we were asked to send does not fit the specification.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// A C-octet string is too long, contains a NUL, or is not ASCII.
    #[error("{field} {value:?} cannot be sent: {reason}")]
    InvalidField {
        field: &'static str,
        value: String,
        reason: String,
    },
    /// More than 255 octets in `short_message` (use `message_payload` or split the text).
    #[error("short_message of {len} octets exceeds 255")]
    ShortMessageTooLong { len: usize },
}

/// Writes `command` as one frame: `command_length`, then the command as rusmpp encodes it.
pub fn write_command(command: &Command, dst: &mut BytesMut) {
    let command_length = 4 + command.length();
    dst.reserve(command_length);
    // Frames are capped far below 4 GiB by every builder here (255-octet fields at most).
    dst.put_u32(command_length as u32);
    command.encode(dst);
}

/// `command` as one frame in its own buffer.
pub fn to_frame(command: &Command) -> Bytes {
    let mut buf = BytesMut::new();
    write_command(command, &mut buf);
    buf.freeze()
}

/// Which bind: transceiver, or one half of a transmitter + receiver pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindMode {
    Transmitter,
    Receiver,
    Transceiver,
}

/// What an ESME presents when it binds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BindParams<'a> {
    pub system_id: &'a str,
    pub password: &'a str,
    pub system_type: &'a str,
    pub addr_ton: u8,
    pub addr_npi: u8,
    pub address_range: &'a str,
}

/// bind_transmitter / bind_receiver / bind_transceiver, interface_version 0x34.
pub fn bind(
    mode: BindMode,
    sequence_number: u32,
    p: &BindParams<'_>,
) -> Result<Command, EncodeError> {
    let system_id = cstring("system_id", p.system_id)?;
    let password = cstring("password", p.password)?;
    let system_type = cstring("system_type", p.system_type)?;
    let address_range = cstring("address_range", p.address_range)?;
    let (version, ton, npi) = (
        InterfaceVersion::Smpp3_4,
        Ton::from(p.addr_ton),
        Npi::from(p.addr_npi),
    );
    let pdu = match mode {
        BindMode::Transmitter => RPdu::BindTransmitter(BindTransmitter::new(
            system_id,
            password,
            system_type,
            version,
            ton,
            npi,
            address_range,
        )),
        BindMode::Receiver => RPdu::BindReceiver(BindReceiver::new(
            system_id,
            password,
            system_type,
            version,
            ton,
            npi,
            address_range,
        )),
        BindMode::Transceiver => RPdu::BindTransceiver(BindTransceiver::new(
            system_id,
            password,
            system_type,
            version,
            ton,
            npi,
            address_range,
        )),
    };
    Ok(Command::new(RStatus::EsmeRok, sequence_number, pdu))
}

/// The SMSC's answer to a bind (used by the simulator). An error status sends no body.
pub fn bind_resp(
    mode: BindMode,
    sequence_number: u32,
    status: CommandStatus,
    system_id: &str,
) -> Result<Command, EncodeError> {
    let system_id = cstring("system_id", system_id)?;
    let version = Some(InterfaceVersion::Smpp3_4);
    let pdu = match mode {
        BindMode::Transmitter => {
            RPdu::BindTransmitterResp(BindTransmitterResp::new(system_id, version))
        }
        BindMode::Receiver => RPdu::BindReceiverResp(BindReceiverResp::new(system_id, version)),
        BindMode::Transceiver => {
            RPdu::BindTransceiverResp(BindTransceiverResp::new(system_id, version))
        }
    };
    if status.is_ok() {
        Ok(Command::new(status.into(), sequence_number, pdu))
    } else {
        Ok(header_only(pdu.command_id(), status, sequence_number))
    }
}

/// An SMPP address: type of number, numbering plan, digits (or alphanumeric sender).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Address<'a> {
    pub ton: u8,
    pub npi: u8,
    pub addr: &'a str,
}

impl<'a> Address<'a> {
    /// A subscriber's number: international (TON 1), E.164 (NPI 1).
    pub fn international(addr: &'a str) -> Address<'a> {
        Address {
            ton: 1,
            npi: 1,
            addr,
        }
    }

    /// A short code such as 5700: network specific (TON 3), unknown plan (NPI 0).
    pub fn short_code(addr: &'a str) -> Address<'a> {
        Address {
            ton: 3,
            npi: 0,
            addr,
        }
    }
}

/// The optional parameters smsflow and its simulator send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Param<'a> {
    SarMsgRefNum(u16),
    SarTotalSegments(u8),
    SarSegmentSeqnum(u8),
    MessagePayload(&'a [u8]),
    UserMessageReference(u16),
    /// Delivery receipts only.
    ReceiptedMessageId(&'a str),
    /// Delivery receipts only; SMPP 3.4 §5.2.28 values (2 = DELIVERED).
    MessageState(u8),
    /// Delivery receipts only; `network_type` 3 = GSM.
    NetworkErrorCode {
        network_type: u8,
        error_code: u16,
    },
    /// Anything else, as raw octets.
    Other {
        tag: u16,
        value: &'a [u8],
    },
}

/// The body shared by submit_sm and deliver_sm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShortMessage<'a> {
    pub service_type: &'a str,
    pub source: Address<'a>,
    pub destination: Address<'a>,
    pub esm_class: u8,
    pub registered_delivery: u8,
    pub data_coding: u8,
    pub short_message: &'a [u8],
    pub params: Vec<Param<'a>>,
}

struct SmFields {
    service_type: ServiceType,
    source_addr: COctetString<1, 21>,
    destination_addr: COctetString<1, 21>,
    short_message: OctetString<0, 255>,
}

/// Building one: [`ShortMessage::new`] for raw octets, [`ShortMessage::part`] for one part of
/// an encoded text; the rest is plain (no service type, no receipt asked, no TLVs) until a
/// setter says otherwise.
impl<'a> ShortMessage<'a> {
    /// `short_message` octets in `data_coding` from `source` to `destination`, esm_class 0.
    pub fn new(
        source: Address<'a>,
        destination: Address<'a>,
        data_coding: u8,
        short_message: &'a [u8],
    ) -> ShortMessage<'a> {
        ShortMessage {
            service_type: "",
            source,
            destination,
            esm_class: 0,
            registered_delivery: 0,
            data_coding,
            short_message,
            params: Vec::new(),
        }
    }

    /// One of `text`'s parts: its data_coding, and UDHI in esm_class when the parts carry the
    /// concatenation header.
    pub fn part(
        source: Address<'a>,
        destination: Address<'a>,
        text: &EncodedText,
        part: &'a [u8],
    ) -> ShortMessage<'a> {
        let esm_class = if text.needs_udhi() { UDHI } else { 0 };
        ShortMessage::new(source, destination, text.data_coding(), part).esm_class(esm_class)
    }

    pub fn esm_class(mut self, esm_class: u8) -> Self {
        self.esm_class = esm_class;
        self
    }

    /// SMPP 3.4 §5.2.17: 1 asks for a delivery receipt.
    pub fn registered_delivery(mut self, registered_delivery: u8) -> Self {
        self.registered_delivery = registered_delivery;
        self
    }

    pub fn service_type(mut self, service_type: &'a str) -> Self {
        self.service_type = service_type;
        self
    }

    /// The TLVs, in the order they are written.
    pub fn params(mut self, params: Vec<Param<'a>>) -> Self {
        self.params = params;
        self
    }
}

impl ShortMessage<'_> {
    fn fields(&self) -> Result<SmFields, EncodeError> {
        Ok(SmFields {
            service_type: ServiceType::new(cstring("service_type", self.service_type)?),
            source_addr: cstring("source_addr", self.source.addr)?,
            destination_addr: cstring("destination_addr", self.destination.addr)?,
            short_message: OctetString::from_slice(self.short_message).map_err(|_| {
                EncodeError::ShortMessageTooLong {
                    len: self.short_message.len(),
                }
            })?,
        })
    }
}

/// submit_sm and deliver_sm share one body layout; rusmpp gives them separate types with the
/// same constructor, so one macro fills in either from a [`ShortMessage`].
macro_rules! sm_body {
    ($pdu:ident, $m:expr, $tlvs:expr) => {{
        let m: &ShortMessage<'_> = $m;
        let f = m.fields()?;
        $pdu::new(
            f.service_type,
            Ton::from(m.source.ton),
            Npi::from(m.source.npi),
            f.source_addr,
            Ton::from(m.destination.ton),
            Npi::from(m.destination.npi),
            f.destination_addr,
            EsmClass::from(m.esm_class),
            0,
            PriorityFlag::default(),
            EmptyOrFullCOctetString::empty(),
            EmptyOrFullCOctetString::empty(),
            RegisteredDelivery::from(m.registered_delivery),
            ReplaceIfPresentFlag::default(),
            DataCoding::from(m.data_coding),
            0,
            f.short_message,
            $tlvs,
        )
    }};
}

/// submit_sm: one SMS (or one part of a concatenated one) towards a subscriber.
pub fn submit_sm(sequence_number: u32, m: &ShortMessage<'_>) -> Result<Command, EncodeError> {
    let tlvs = m
        .params
        .iter()
        .map(|p| match *p {
            Param::SarMsgRefNum(v) => SubmitTlv::SarMsgRefNum(v),
            Param::SarTotalSegments(v) => SubmitTlv::SarTotalSegments(v),
            Param::SarSegmentSeqnum(v) => SubmitTlv::SarSegmentSeqnum(v),
            Param::MessagePayload(v) => {
                SubmitTlv::MessagePayload(MessagePayload::new(AnyOctetString::from_slice(v)))
            }
            Param::UserMessageReference(v) => {
                SubmitTlv::UserMessageReference(UserMessageReference::new(v))
            }
            other => {
                let (tag, value) = raw_param(&other);
                SubmitTlv::Other {
                    tag: TlvTag::from(tag),
                    value: AnyOctetString::from_vec(value),
                }
            }
        })
        .collect();
    let pdu = sm_body!(SubmitSm, m, tlvs);
    Ok(Command::new(RStatus::EsmeRok, sequence_number, pdu))
}

/// deliver_sm: an MO or a delivery receipt (used by the simulator).
pub fn deliver_sm(sequence_number: u32, m: &ShortMessage<'_>) -> Result<Command, EncodeError> {
    let mut tlvs = Vec::with_capacity(m.params.len());
    for p in &m.params {
        tlvs.push(match *p {
            Param::SarMsgRefNum(v) => DeliverTlv::SarMsgRefNum(v),
            Param::SarTotalSegments(v) => DeliverTlv::SarTotalSegments(v),
            Param::SarSegmentSeqnum(v) => DeliverTlv::SarSegmentSeqnum(v),
            Param::MessagePayload(v) => {
                DeliverTlv::MessagePayload(MessagePayload::new(AnyOctetString::from_slice(v)))
            }
            Param::UserMessageReference(v) => {
                DeliverTlv::UserMessageReference(UserMessageReference::new(v))
            }
            Param::ReceiptedMessageId(id) => {
                DeliverTlv::ReceiptedMessageId(cstring("receipted_message_id", id)?)
            }
            Param::MessageState(v) => DeliverTlv::MessageState(MessageState::from(v)),
            Param::NetworkErrorCode {
                network_type,
                error_code,
            } => DeliverTlv::NetworkErrorCode(NetworkErrorCode::new(
                ErrorCodeNetworkType::from(network_type),
                error_code,
            )),
            Param::Other { tag, value } => DeliverTlv::Other {
                tag: TlvTag::from(tag),
                value: AnyOctetString::from_slice(value),
            },
        });
    }
    let pdu = sm_body!(DeliverSm, m, tlvs);
    Ok(Command::new(RStatus::EsmeRok, sequence_number, pdu))
}

/// Raw tag and value of a parameter the typed TLV set of a PDU has no variant for.
fn raw_param(p: &Param<'_>) -> (u16, Vec<u8>) {
    use super::pdu::tag;
    match *p {
        Param::SarMsgRefNum(v) => (tag::SAR_MSG_REF_NUM, v.to_be_bytes().to_vec()),
        Param::SarTotalSegments(v) => (tag::SAR_TOTAL_SEGMENTS, vec![v]),
        Param::SarSegmentSeqnum(v) => (tag::SAR_SEGMENT_SEQNUM, vec![v]),
        Param::MessagePayload(v) => (tag::MESSAGE_PAYLOAD, v.to_vec()),
        Param::UserMessageReference(v) => (tag::USER_MESSAGE_REFERENCE, v.to_be_bytes().to_vec()),
        Param::ReceiptedMessageId(id) => {
            let mut v = id.as_bytes().to_vec();
            v.push(0);
            (tag::RECEIPTED_MESSAGE_ID, v)
        }
        Param::MessageState(v) => (tag::MESSAGE_STATE, vec![v]),
        Param::NetworkErrorCode {
            network_type,
            error_code,
        } => {
            let [hi, lo] = error_code.to_be_bytes();
            (tag::NETWORK_ERROR_CODE, vec![network_type, hi, lo])
        }
        Param::Other { tag, value } => (tag, value.to_vec()),
    }
}

/// submit_sm_resp with the SMSC's message id (simulator); an error status sends no body.
pub fn submit_sm_resp(
    sequence_number: u32,
    status: CommandStatus,
    message_id: &str,
) -> Result<Command, EncodeError> {
    if !status.is_ok() {
        return Ok(header_only(
            rusmpp::CommandId::SubmitSmResp,
            status,
            sequence_number,
        ));
    }
    let pdu = SubmitSmResp::new(cstring("message_id", message_id)?, Vec::new());
    Ok(Command::new(status.into(), sequence_number, pdu))
}

/// deliver_sm_resp: ESME_ROK once an MO is stored, ESME_RX_T_APPN to make the SMSC retry.
pub fn deliver_sm_resp(sequence_number: u32, status: CommandStatus) -> Command {
    Command::new(status.into(), sequence_number, DeliverSmResp::default())
}

pub fn enquire_link(sequence_number: u32) -> Command {
    Command::new(RStatus::EsmeRok, sequence_number, RPdu::EnquireLink)
}

pub fn enquire_link_resp(sequence_number: u32) -> Command {
    Command::new(RStatus::EsmeRok, sequence_number, RPdu::EnquireLinkResp)
}

pub fn unbind(sequence_number: u32) -> Command {
    Command::new(RStatus::EsmeRok, sequence_number, RPdu::Unbind)
}

pub fn unbind_resp(sequence_number: u32) -> Command {
    Command::new(RStatus::EsmeRok, sequence_number, RPdu::UnbindResp)
}

/// generic_nack for a PDU we could not take: its sequence number and the reason as status.
pub fn generic_nack(sequence_number: u32, status: CommandStatus) -> Command {
    Command::new(status.into(), sequence_number, RPdu::GenericNack)
}

/// A response that is only a header (error statuses; SMPP 3.4 §4.4.2).
pub fn header_only(
    command_id: rusmpp::CommandId,
    status: CommandStatus,
    sequence_number: u32,
) -> Command {
    Command::new(
        status.into(),
        sequence_number,
        RPdu::Other {
            command_id,
            body: AnyOctetString::empty(),
        },
    )
}

impl From<CommandStatus> for RStatus {
    fn from(status: CommandStatus) -> Self {
        RStatus::from(status.0)
    }
}

/// A rusmpp C-octet string from text, with the field named in the error.
fn cstring<const MIN: usize, const MAX: usize>(
    field: &'static str,
    value: &str,
) -> Result<COctetString<MIN, MAX>, EncodeError> {
    let mut bytes = Vec::with_capacity(value.len() + 1);
    bytes.extend_from_slice(value.as_bytes());
    bytes.push(0);
    COctetString::from_vec(bytes).map_err(|e| EncodeError::InvalidField {
        field,
        value: value.to_owned(),
        reason: e.to_string().to_lowercase(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smpp::{decode, pdu::Pdu};

    #[test]
    fn bind_announces_smpp_34() {
        let cmd = bind(
            BindMode::Transceiver,
            1,
            &BindParams {
                system_id: "smsflow",
                password: "secret",
                system_type: "",
                addr_ton: 3,
                addr_npi: 0,
                address_range: "5700",
            },
        )
        .unwrap();
        let frame = to_frame(&cmd);
        let decoded = decode(&frame).unwrap();
        let Pdu::BindTransceiver(b) = decoded.pdu else {
            panic!("not a bind: {decoded:?}")
        };
        assert_eq!(b.interface_version, 0x34);
        assert_eq!(b.system_id, "smsflow");
        assert_eq!(b.address_range, "5700");
    }

    #[test]
    fn over_long_password_is_an_error_not_a_truncation() {
        let err = bind(
            BindMode::Transmitter,
            1,
            &BindParams {
                system_id: "smsflow",
                password: "much-too-long",
                system_type: "",
                addr_ton: 0,
                addr_npi: 0,
                address_range: "",
            },
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("password \"much-too-long\" cannot be sent"),
            "{err}"
        );
    }

    #[test]
    fn error_responses_are_header_only() {
        let frame = to_frame(&submit_sm_resp(9, CommandStatus::ESME_RTHROTTLED, "x").unwrap());
        assert_eq!(frame.len(), 16);
        let decoded = decode(&frame).unwrap();
        assert_eq!(decoded.command_status(), CommandStatus::ESME_RTHROTTLED);
        assert!(matches!(decoded.pdu, Pdu::SubmitSmResp(r) if r.message_id.is_empty()));
    }
}
